"""Malformed S3 requests, sent raw past boto3's own checks: each gets S3's 4xx in its XML (501 for
what the local store refuses by name), never a 500, keys too long for S3 or for a file name among
them; and a prefix or version id that would point outside its bucket lists and touches nothing."""

from __future__ import annotations

import base64
import hashlib
import io
from xml.etree import ElementTree

import pytest

from pipelines.local.api.protocol import Dispatcher
from pipelines.local.service.backend import LocalSageMaker

from .inprocess import HTTPHeaders

AUTH = "AWS4-HMAC-SHA256 Credential=K/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=x"
UPLOAD = "{upload}"  # replaced by an upload in progress on `k`
BODY_MD5 = {"Content-MD5": "{md5}"}  # replaced by the MD5 of the body sent: a document S3 must get whole
DELETE_A = b"<Delete><Object><Key>a</Key></Object></Delete>"
COMPLETE = "<CompleteMultipartUpload>{}</CompleteMultipartUpload>"
PART = "<Part><PartNumber>{}</PartNumber></Part>"  # no ETag: S3's schema requires one
TAGGED = '<Part><PartNumber>{}</PartNumber><ETag>"0123"</ETag></Part>'
NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"


def send(
    service: LocalSageMaker, method: str, target: str, headers: dict[str, str], body: bytes
) -> tuple[int, bytes]:
    """The request as the door hands it on (signed for s3), and the status and body it gets."""
    sent = {"Authorization": AUTH, "Host": "h", "Content-Length": str(len(body)),
            "x-amz-content-sha256": hashlib.sha256(body).hexdigest(), **headers}
    reply = Dispatcher(service, check_responses=True).route(
        method, target, HTTPHeaders(sent), io.BytesIO(body) if method == "PUT" else body
    )
    return reply.status, reply.body if isinstance(reply.body, bytes) else b"".join(reply.body)


@pytest.fixture
def upload(service: LocalSageMaker) -> str:
    service.context.store.put_bytes("s3://bucket/k", b"hello world")
    created = send(service, "POST", "/bucket/k?uploads", {}, b"")[1]
    return str(ElementTree.fromstring(created).findtext(f"{{{NAMESPACE}}}UploadId"))


@pytest.mark.parametrize(("method", "target", "headers", "body", "code"), [
    ("POST", "/bucket/k?uploads", {"x-amz-checksum-type": "weird", "x-amz-checksum-algorithm": "CRC32"},
     b"", "InvalidRequest"),
    ("POST", "/bucket/k?uploads", {"x-amz-checksum-type": "FULL_OBJECT"}, b"", "InvalidRequest"),
    ("POST", "/bucket/k?uploads", {"x-amz-checksum-algorithm": "bogus"}, b"", "NotImplemented"),
    ("PUT", f"/bucket/k?partNumber=abc&uploadId={UPLOAD}", {}, b"x", "InvalidArgument"),
    ("PUT", f"/bucket/k?partNumber=-1&uploadId={UPLOAD}", {}, b"x", "InvalidArgument"),
    ("PUT", "/bucket/k?partNumber=1&uploadId=../../../x", {}, b"x", "NoSuchUpload"),
    ("PUT", f"/bucket/k?partNumber=1&uploadId={UPLOAD}", {"x-amz-checksum-crc32": "zz"}, b"x",
     "InvalidRequest"),
    ("POST", f"/bucket/k?uploadId={UPLOAD}", {}, COMPLETE.format(PART.format("x")).encode(), "MalformedXML"),
    ("POST", f"/bucket/k?uploadId={UPLOAD}", {}, b"not xml", "MalformedXML"),
    ("POST", f"/bucket/k?uploadId={UPLOAD}", {}, COMPLETE.format("").encode(), "MalformedXML"),
    ("POST", f"/bucket/k?uploadId={UPLOAD}", {}, COMPLETE.format(PART.format("1")).encode(), "MalformedXML"),
    ("POST", f"/bucket/k?uploadId={UPLOAD}", {}, COMPLETE.format(TAGGED.format("1")).encode(), "InvalidPart"),
    ("GET", f"/bucket/k?uploadId={UPLOAD}&max-parts=abc", {}, b"", "InvalidArgument"),
    ("GET", f"/bucket/k?uploadId={UPLOAD}&part-number-marker=-5", {}, b"", "InvalidArgument"),
    ("GET", "/bucket?uploads&max-uploads=abc", {}, b"", "InvalidArgument"),
    ("GET", "/bucket?uploads&encoding-type=bad", {}, b"", "InvalidArgument"),
    ("DELETE", "/bucket/k?versionId=../../etc", {}, b"", "InvalidArgument"),
    ("POST", "/bucket?delete", BODY_MD5, b"garbage", "MalformedXML"),
    ("POST", "/bucket?delete", BODY_MD5, b"<Delete><Object><VersionId>1</VersionId></Object></Delete>",
     "MalformedXML"),
    ("POST", "/bucket?delete", BODY_MD5,
     b"<Delete>" + b"<Object><Key>a</Key></Object>" * 1001 + b"</Delete>", "MalformedXML"),
    ("POST", "/bucket?delete", {}, DELETE_A, "InvalidRequest"),
    ("POST", "/bucket?delete", {"x-amz-sdk-checksum-algorithm": "CRC32"}, DELETE_A, "InvalidRequest"),
    ("POST", "/bucket?delete", {"Content-MD5": "not base64"}, DELETE_A, "InvalidDigest"),
    ("POST", "/bucket?delete", {"x-amz-checksum-crc32": "AAAAAA=="}, DELETE_A, "BadDigest"),
    ("POST", "/bucket?delete", {"x-amz-checksum-xxhash64": "AAAAAAAAAAA="}, DELETE_A, "NotImplemented"),
    ("POST", "/bucket?delete", {"x-amz-checksum-crc64nvme": "AAAAAAAAAAA="}, DELETE_A, "BadDigest"),
    ("GET", "/bucket?versions&version-id-marker=x", {}, b"", "InvalidArgument"),
    ("GET", "/bucket?versions&max-keys=-1", {}, b"", "InvalidArgument"),
    ("PUT", "/bucket/t", {"x-amz-copy-source": "nobucket"}, b"", "InvalidArgument"),
    ("PUT", "/bucket/t", {"x-amz-copy-source": "bucket/k?versionId=../../x"}, b"", "InvalidArgument"),
    ("PUT", "/bucket/t", {"x-amz-copy-source": "bucket/../k"}, b"", "NoSuchKey"),
    ("PUT", "/bucket/t", {"x-amz-copy-source": "bucket/k", "x-amz-checksum-algorithm": "XXHASH64"}, b"",
     "NotImplemented"),
    ("PUT", f"/bucket/k?partNumber=1&uploadId={UPLOAD}",
     {"x-amz-copy-source": "bucket/k", "x-amz-copy-source-range": "bytes=5-1"}, b"", "InvalidArgument"),
    ("PUT", f"/bucket/k?partNumber=1&uploadId={UPLOAD}",
     {"x-amz-copy-source": "bucket/k", "x-amz-copy-source-range": "bytes=0-99"}, b"", "InvalidArgument"),
    ("PUT", f"/bucket/k?partNumber=1&uploadId={UPLOAD}",
     {"x-amz-copy-source": "bucket/k", "x-amz-copy-source-range": "bytes=99-100"}, b"", "InvalidRequest"),
    ("PUT", "/bucket?versioning", BODY_MD5, b"garbage", "MalformedXML"),
    ("PUT", "/bucket/" + "k" * 1025, {}, b"x", "KeyTooLongError"),  # S3's 1,024 bytes
    ("POST", "/bucket/k", {}, b"", "MethodNotAllowed"),  # no operation is a POST of an object
    ("PUT", "/bucket/k/.key-part-continued/k", {}, b"x", "InvalidArgument"),  # a name the store gives
    ("POST", "/bucket/k/.key-part-continued/k?uploads", {}, b"", "InvalidArgument"),
])
def test_a_malformed_request_is_s3s_client_error(
    service: LocalSageMaker, upload: str, method: str, target: str, headers: dict[str, str], body: bytes,
    code: str,
) -> None:
    md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
    headers = {name: value.replace("{md5}", md5) for name, value in headers.items()}
    status, answer = send(service, method, target.replace(UPLOAD, upload), headers, body)
    refused_by_name = code == "NotImplemented"  # S3's 501 for what the local store does not keep
    assert (status >= 500, ElementTree.fromstring(answer).findtext("Code")) == (refused_by_name, code)


@pytest.mark.parametrize("query", [
    "list-type=2&prefix=../", "list-type=2&prefix=a/../../", "versions&prefix=../", "versions&prefix=./x/",
    "uploads&prefix=../",
])
def test_a_prefix_pointing_outside_the_bucket_lists_nothing(service: LocalSageMaker, query: str) -> None:
    service.context.store.put_bytes("s3://bucket/k", b"x")
    status, answer = send(service, "GET", f"/bucket?{query}", {}, b"")
    assert status == 200 and b"<Key>" not in answer and b"<Prefix>" in answer


def test_a_method_no_operation_has_on_a_resource_is_s3s_405_naming_both(service: LocalSageMaker) -> None:
    status, answer = send(service, "POST", "/bucket/k", {}, b"")
    document = ElementTree.fromstring(answer)
    named = [document.findtext(name) for name in ("Code", "Method", "ResourceType")]
    assert (status, named) == (405, ["MethodNotAllowed", "POST", "OBJECT"])
