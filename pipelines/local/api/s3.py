"""S3's REST-XML protocol, path-style (`/{Bucket}/{Key+}`), over the operations of service/objects.py.

A request is S3's when its signature is scoped to `s3` (the path alone cannot say: `/endpoints/...`
could be a bucket). Its members come from the URI, query and headers as the model places them, and an
operation with a streaming payload (PutObject) gets the body as a stream to read, not as bytes, and
one whose payload is an XML document (CreateBucket's configuration) gets its members (s3_documents.py);
the answer puts them back the same way: headers (user metadata as `x-amz-meta-*`), a raw body
(GetObject's as chunks the server sends as it reads them), or an XML document; errors are S3's XML
`<Error>` with its codes and statuses, and a HEAD answer carries no body at all, errors included, nor
does a 304 to a conditional GET or a 204. Every answer carries S3's two ids, `x-amz-request-id` and
`x-amz-id-2` (botocore's RequestId and HostId), which an error's document repeats.
An operation of S3 this server does not serve is refused by name, as every API here refuses one, and
every one that takes `x-amz-expected-bucket-owner` is refused unless it names this account.
"""

from __future__ import annotations

import base64
import logging
import secrets
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring

from botocore.model import OperationModel, Shape

from pipelines.local.api.reply import Reply
from pipelines.local.api.rest import Headers, request_members
from pipelines.local.api.s3_digests import check_document_digest
from pipelines.local.api.s3_documents import LARGER_DOCUMENTS, MAX_DOCUMENT_BYTES, read_bounded, read_document
from pipelines.local.api.s3_routes import S3Routes, split_path
from pipelines.local.contract.shapes import summary, validate
from pipelines.local.errors import ServiceError
from pipelines.local.service.backend import LocalSageMaker
from pipelines.local.service.objects import SSE_S3, NotModified
from pipelines.local.storage.object_records import Readable
from pipelines.local.system.identity import ACCOUNT

XML_TYPE = "application/xml"
NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
REQUEST_ID = "x-amz-request-id"  # 16 hex digits, as S3's (`4442587FB7D0A2F9`)
HOST_ID = "x-amz-id-2"  # S3's token for the host that answered: 48 bytes in base64
# The document element of each XML answer served whose output shape has no payload member.
ROOTS = {
    "ListObjectsV2": "ListBucketResult", "ListObjects": "ListBucketResult",
    "ListBuckets": "ListAllMyBucketsResult",
    "GetBucketVersioning": "VersioningConfiguration", "GetBucketLocation": "LocationConstraint",
    "CreateMultipartUpload": "InitiateMultipartUploadResult",
    "CompleteMultipartUpload": "CompleteMultipartUploadResult", "ListParts": "ListPartsResult",
    "ListMultipartUploads": "ListMultipartUploadsResult", "ListObjectVersions": "ListVersionsResult",
    "DeleteObjects": "DeleteResult",
}
# Answers whose document element holds the one member as its text (S3's GetBucketLocation).
TEXT_ROOTS = {"GetBucketLocation": "LocationConstraint"}
log = logging.getLogger(__name__)


class S3Front:
    def __init__(self, backend: LocalSageMaker, check_responses: bool) -> None:
        self.backend = backend
        self.check_responses = check_responses
        self.routes = S3Routes()

    def route(self, method: str, path: str, query: str, headers: Headers, body: Readable) -> Reply:
        head = method == "HEAD"
        try:
            reply = self._call(method, path, query, headers, body)
        except ServiceError as error:
            return error_reply(error, head)
        reply.headers.update(request_ids())
        return reply

    def _call(self, method: str, path: str, query: str, headers: Headers, body: Readable) -> Reply:
        level, bucket, key = split_path(path)
        model = self.routes.match(method, level, query, headers)
        if model is None:  # no operation of S3 is this method on this resource: S3's 405
            raise ServiceError(
                "MethodNotAllowed", "The specified method is not allowed against this resource.", 405,
                {"Method": method, "ResourceType": level.upper()},
            )
        operation = self.backend.operation("S3", model.name)
        if operation is None:
            raise ServiceError(
                "UnknownOperationException", f"S3.{model.name} is not supported by the local SageMaker"
            )
        uri = {"Bucket": bucket, "Key": key} if level == "object" else {"Bucket": bucket}
        request = request_members(model, uri, headers, {}, query)
        if request.get("ExpectedBucketOwner", ACCOUNT) != ACCOUNT:
            raise ServiceError("AccessDenied", "Access Denied", 403)
        payload = model.input_shape.serialization.get("payload")
        if model.has_streaming_input:
            request[payload] = body
        elif payload is not None:
            data = read_bounded(body, LARGER_DOCUMENTS.get(model.name, MAX_DOCUMENT_BYTES))
            check_document_digest(model, headers, data)
            document = read_document(model.input_shape.members[payload], data)
            request.pop(payload)
            if document is not None:
                request[payload] = document
        try:
            result = operation(request)
        except NotModified as unchanged:  # no body, not even an error's, and no length to announce
            return replace(encode(model, unchanged.members, head=True), status=304)
        except ServiceError:
            raise
        except Exception:  # a bug is the server's fault: never a client error
            log.exception("S3.%s failed", model.name)
            message = f"{model.name} failed inside the local SageMaker."
            raise ServiceError("InternalError", message, 500) from None
        if model.output_shape is not None and "ServerSideEncryption" in model.output_shape.members:
            result = {"ServerSideEncryption": SSE_S3, **result}  # how every new object is kept
        if self.check_responses and model.output_shape is not None:
            violations = validate(model.output_shape, {k: v for k, v in result.items() if k != "Body"})
            if violations:
                message = f"The response of {model.name} breaks its output shape: {summary(violations)}"
                log.error("%s", message)
                raise ServiceError("InternalError", message, 500)
        return encode(model, result, method == "HEAD")


def encode(model: OperationModel, result: dict[str, Any], head: bool) -> Reply:
    """The answer as the output shape places its members: headers, and the payload member as the
    raw body or an XML document of its own, or the rest as an XML document; a HEAD answer declares
    the length and sends nothing, nor does an answer with no output (DeleteBucket's 204)."""
    shape = model.output_shape
    if shape is None:
        return Reply(int(model.http.get("responseCode", 200)), b"", XML_TYPE)
    headers: dict[str, str] = {}
    for name, member in shape.members.items():
        where, wire = member.serialization.get("location"), member.serialization.get("name")
        if name in result and where == "header":
            headers[wire] = _text(member, result[name], header=True)
        if name in result and where == "headers":  # a map, each entry its own header (x-amz-meta-)
            headers.update({f"{wire}{key}": value for key, value in result[name].items()})
    length = int(headers.pop("Content-Length", "0"))  # the server counts a body given as bytes
    content_type = headers.pop("Content-Type", XML_TYPE)
    status = 206 if "ContentRange" in result else int(model.http.get("responseCode", 200))
    if head:
        return Reply(status, b"", content_type, headers, length)
    payload = shape.serialization.get("payload")
    if payload is not None and shape.members[payload].type_name == "structure":
        member = shape.members[payload]  # a document of its own (GetBucketEncryption's)
        document = Element(member.serialization.get("name", payload), xmlns=NAMESPACE)
        _members(document, member, result[payload])
        return Reply(status, DECLARATION + tostring(document), content_type, headers)
    if payload is not None:
        body = result.get(payload, b"")
        return Reply(status, body, content_type, headers, None if isinstance(body, bytes) else length)
    if model.name not in ROOTS and all(shape.members[name].serialization.get("location") for name in result):
        return Reply(status, b"", content_type, headers)  # every member is a header (PutObject)
    document = Element(ROOTS[model.name], xmlns=NAMESPACE)
    if model.name in TEXT_ROOTS:
        document.text = result.get(TEXT_ROOTS[model.name])
    else:
        _members(document, shape, result)
    return Reply(status, DECLARATION + tostring(document), content_type, headers)


def request_ids() -> dict[str, str]:
    """The ids S3 gives an answer: the request's, and the host's that answered it."""
    host = base64.b64encode(secrets.token_bytes(48)).decode()
    return {REQUEST_ID: secrets.token_hex(8).upper(), HOST_ID: host}


def error_reply(error: ServiceError, head: bool) -> Reply:
    """S3's error document, its ids last, as S3 writes them; a HEAD answer has none, only the status
    and the ids' headers."""
    ids = request_ids()
    document = Element("Error")
    fields = {"Code": error.code, "Message": error.message, **error.fields,
              "RequestId": ids[REQUEST_ID], "HostId": ids[HOST_ID]}
    for name, value in fields.items():
        SubElement(document, name).text = value
    body = b"" if head else DECLARATION + tostring(document)
    return Reply(error.status, body, XML_TYPE, {**error.headers, **ids})


def _members(parent: Element, shape: Shape, value: dict[str, Any]) -> None:
    for name, member in shape.members.items():
        if name not in value or member.serialization.get("location"):
            continue
        tag = member.serialization.get("name", name)
        flattened = member.type_name == "list" and member.serialization.get("flattened")
        for item in value[name] if flattened else [value[name]]:
            _element(parent, tag, member.member if flattened else member, item)


def _element(parent: Element, tag: str, shape: Shape, value: Any) -> None:
    child = SubElement(parent, tag)
    if shape.type_name == "structure":
        _members(child, shape, value)
    elif shape.type_name == "list":
        item_tag = shape.member.serialization.get("name", "member")
        for item in value:
            _element(child, item_tag, shape.member, item)
    else:
        child.text = _text(shape, value)


def _text(shape: Shape, value: Any, header: bool = False) -> str:
    """A scalar as rest-xml writes it: timestamps as HTTP dates in headers, ISO 8601 in the body,
    both in whole seconds, as S3 keeps them (`2009-10-12T17:50:30.000Z`): a listing's LastModified is
    the second a HEAD's Last-Modified names."""
    if shape.type_name == "boolean":
        return "true" if value else "false"
    if shape.type_name == "timestamp":
        if header and shape.serialization.get("timestampFormat") != "iso8601":
            return formatdate(value, usegmt=True)
        moment = datetime.fromtimestamp(int(value), UTC).isoformat(timespec="milliseconds")
        return moment.replace("+00:00", "Z")
    return str(value)
