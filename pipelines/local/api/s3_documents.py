"""S3's XML request documents (CreateBucket's CreateBucketConfiguration), read into members as the
model shapes them: elements by their wire names, lists flattened or wrapped, scalars typed.

A document is small: one larger than S3 takes for it (a configuration's 64 KB, a completion's list
of up to 10,000 parts) is refused before it is parsed,
and XML that is not well-formed, or whose root is not the document the operation takes, is S3's
MalformedXML. An empty body is no document: the operation gets no member for it.
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element, ParseError, fromstring

from botocore.model import Shape

from pipelines.local.errors import ServiceError
from pipelines.local.storage.object_records import Readable

MAX_DOCUMENT_BYTES = 64 * 1024
# A multipart upload's completion lists up to 10,000 parts, each with its ETag and checksum.
LARGER_DOCUMENTS = {"CompleteMultipartUpload": 4 * 1024 * 1024}


def malformed() -> ServiceError:
    message = "The XML you provided was not well-formed or did not validate against our published schema"
    return ServiceError("MalformedXML", message)


def read_bounded(body: Readable, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
    """The whole document, refused unread past `limit` bytes."""
    data = body.read(limit + 1)
    if len(data) > limit:
        raise ServiceError("MaxMessageLengthExceeded", "Your request was too big.")
    return data


def read_document(shape: Shape, data: bytes) -> dict[str, Any] | None:
    """The payload's members, or None for an empty body."""
    if not data.strip():
        return None
    try:
        root = fromstring(data)
    except ParseError:
        raise malformed() from None
    if _local_name(root) != shape.serialization.get("name", shape.name):
        raise malformed()
    return dict(_value(shape, root))


def _value(shape: Shape, element: Element) -> Any:
    if shape.type_name == "structure":
        members: dict[str, Any] = {}
        for name, member in shape.members.items():
            tag = member.serialization.get("name", name)
            found = [child for child in element if _local_name(child) == tag]
            if member.type_name == "list" and member.serialization.get("flattened"):
                if found:
                    members[name] = [_value(member.member, child) for child in found]
            elif found:
                members[name] = _value(member, found[-1])
        return members
    if shape.type_name == "list":
        return [_value(shape.member, child) for child in element]
    text = (element.text or "").strip()
    if shape.type_name == "boolean":
        return text.lower() == "true"
    if shape.type_name in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            raise malformed() from None
    return text


def _local_name(element: Element) -> str:
    """The tag without its namespace (`{http://s3.amazonaws.com/doc/2006-03-01/}Rule` -> `Rule`)."""
    return element.tag.rpartition("}")[2]
