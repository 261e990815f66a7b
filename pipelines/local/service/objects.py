"""S3's read operations over the local object store: GetObject, HeadObject, ListObjectsV2 and
ListObjects (version 1).

What the server's jobs and endpoints write goes into the store directly, what a client writes
comes through PutObject (object_writes.py), and an SDK pointed at this server reads both back (the
CLI, and the deploy Lambda's check of the model data against its registered digest). Every object
is described as the store keeps it: its current version or the version asked for, the ETag kept
with it (the MD5 of its bytes, as S3's is for an object stored in one part), and the headers and
user metadata it was put with; `binary/octet-stream` is the type S3 gives an object stored without
one, as the server's own writers store theirs. GetObject's body is read from the file a chunk at a
time as it is sent, and its `response-*` parameters override the headers it answers, as S3's do.

Both answer S3's conditional requests (If-Match, If-None-Match, If-Modified-Since,
If-Unmodified-Since) with 412 or 304, a `Range` or a `partNumber` (a part of an object uploaded in
parts, multipart.py; part 1 is the whole of any other, as S3 serves an object not uploaded in parts), and with
`ChecksumMode=ENABLED` the checksum the object was put with, when it was put with one. No object
here is stored with a customer's key (PutObject refuses SSE-C), so SSE-C headers are refused as S3
refuses them for an object stored without one.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from email.utils import formatdate, parsedate_to_datetime
from typing import Any, BinaryIO
from urllib.parse import quote

from pipelines.local.errors import ServiceError, not_implemented
from pipelines.local.service.checksums import MEMBER
from pipelines.local.service.context import ServiceContext
from pipelines.local.service.object_listing import Page, asked_for, page, position, token, with_present
from pipelines.local.storage.database import Body
from pipelines.local.storage.object_records import FileSpan
from pipelines.local.storage.objects import SCHEME, DeleteMarkerVersion, NoSuchKey, ObjectStore, StoredObject
from pipelines.local.system.identity import CANONICAL_USER_ID

CONTENT_TYPE = "binary/octet-stream"
COPY_SOURCE = "copy source"  # find_object's method for a copy's source
# The headers S3 keeps with a version as they were put, each of which a `response-*` parameter of
# GetObject and HeadObject overrides (`ResponseContentType`...).
HEADERS = (
    "ContentType", "ContentEncoding", "ContentDisposition", "CacheControl", "ContentLanguage", "Expires"
)
MAX_KEYS = 1000
OWNER: Body = {"ID": CANONICAL_USER_ID}  # every bucket and object here is the local account's
RANGE = re.compile(r"bytes=(\d*)-(\d*)")
SSE_C = ("SSECustomerAlgorithm", "SSECustomerKey", "SSECustomerKeyMD5")
# SSE-S3, with which S3 encrypts every new object since January 2023, and says so on each object
# answer (x-amz-server-side-encryption), as GetBucketEncryption says of every local bucket.
SSE_S3 = "AES256"


class NotModified(Exception):
    """S3's 304 to a conditional GET or HEAD: no body, only the members that say which version."""

    def __init__(self, members: Body) -> None:
        super().__init__("Not Modified")
        self.members = members


def no_such_key(key: str, headers: Mapping[str, str] | None = None) -> ServiceError:
    return ServiceError("NoSuchKey", "The specified key does not exist.", 404, {"Key": key}, headers)


def no_such_bucket(bucket: str) -> ServiceError:
    return ServiceError("NoSuchBucket", "The specified bucket does not exist", 404, {"BucketName": bucket})


class ObjectOperations:
    def __init__(self, context: ServiceContext) -> None:
        self.store = context.store

    def get_object(self, request: Body) -> Body:
        """The object's bytes, or the part of them a `Range` or `PartNumber` asks for, as a span of
        its file that is read while it is sent."""
        answer, start, handle = self._opened(request)
        answer["Body"] = FileSpan(handle, start, answer["ContentLength"])
        return answer

    def _opened(self, request: Body) -> tuple[Body, int, BinaryIO]:
        """GetObject's answer, where its body starts, and the version's file, open. A version
        deleted by id between its lookup and its opening is looked up again: S3's 404 for it, or the
        version that is current now."""
        found = self._find(request, "GET")
        answer, start = self._answer(found, request)
        try:
            return answer, start, found.path.open("rb")
        except FileNotFoundError:
            return self._opened(request)

    def head_object(self, request: Body) -> Body:
        return self._answer(self._find(request, "HEAD"), request)[0]

    def list_objects_v2(self, request: Body) -> Body:
        start_after = request.get("StartAfter", "")
        after = position(request["ContinuationToken"]) if "ContinuationToken" in request else ""
        owned = bool(request.get("FetchOwner", False))
        found, answer, encode = self._key_page(request, start_after, after, owned)
        answer["KeyCount"] = found.count
        return with_present(answer, {
            **asked_for(request, encode), "StartAfter": encode(start_after),
            "ContinuationToken": request.get("ContinuationToken", ""),
            "NextContinuationToken": token(found.last) if found.truncated else "",
        })

    def list_objects(self, request: Body) -> Body:
        """ListObjects, version 1, which boto3's `Bucket.objects` collections page through: after
        `Marker` (a key, or a common prefix the last page ended with), with a NextMarker only when a
        delimiter is given, as S3 answers it (a client goes on from the last key otherwise)."""
        marker = request.get("Marker", "")
        found, answer, encode = self._key_page(request, "", marker, owned=True)
        answer["Marker"] = encode(marker)
        next_marker = encode(found.last) if found.truncated and request.get("Delimiter") else ""
        return with_present(answer, {**asked_for(request, encode), "NextMarker": next_marker})

    def _key_page(
        self, request: Body, start_after: str, after: str, owned: bool
    ) -> tuple[Page, Body, Callable[[str], str]]:
        """A page of keys for either version of ListObjects, the members both answer, and the
        encoder of the names in it; each key with its owner when `owned` (always in version 1, with
        FetchOwner in version 2, as S3 lists them)."""
        bucket, prefix, delimiter = request["Bucket"], request.get("Prefix", ""), request.get("Delimiter", "")
        if not self.store.bucket_exists(bucket):
            raise no_such_bucket(bucket)
        limit = max_items(request.get("MaxKeys", MAX_KEYS), "max-keys")
        found = page(self.store.keys(bucket, prefix), prefix, delimiter, start_after, after, limit)
        encode = url_encoder(request.get("EncodingType"))
        answer: Body = {
            "Name": bucket, "Prefix": encode(prefix), "MaxKeys": limit, "IsTruncated": found.truncated,
            "Contents": [self._listed(bucket, key, encode, owned) for key in found.keys],
            "CommonPrefixes": [{"Prefix": encode(name)} for name in found.prefixes],
        }
        return found, answer, encode

    def _find(self, request: Body, method: str) -> StoredObject:
        """The object (or version) a Get or Head names, or S3's error for what it does not find."""
        return find_object(self.store, request["Bucket"], request["Key"], request.get("VersionId"), method)

    def _answer(self, found: StoredObject, request: Body) -> tuple[Body, int]:
        """What GetObject and HeadObject answer but the body, and where the body starts: the
        conditions checked first, as S3 checks them before the range; the checksum only with a
        whole object, the bytes it is of, which botocore checks."""
        if any(name in request for name in SSE_C):
            message = "The encryption parameters are not applicable to this object."
            raise ServiceError("InvalidRequest", message)
        check_conditions(found, request)
        answer: Body = {
            "ContentLength": found.size, "ETag": found.etag, "LastModified": found.modified,
            "VersionId": found.version_id, "ContentType": CONTENT_TYPE, "AcceptRanges": "bytes",
            **{name: value for name, value in found.members.items() if not name.startswith(MEMBER)},
        }
        for name in HEADERS:
            if f"Response{name}" in request:
                override = request[f"Response{name}"]
                answer[name] = http_date(override, "response-expires") if name == "Expires" else override
        span = _span(request, found)
        if span:
            start, end = span
            answer.update(ContentRange=f"bytes {start}-{end}/{found.size}", ContentLength=end - start + 1)
            if "PartNumber" in request and found.parts:
                answer["PartsCount"] = len(found.parts)
            return answer, start
        if request.get("ChecksumMode") == "ENABLED":
            answer.update({name: value for name, value in found.members.items() if name.startswith(MEMBER)})
        return answer, 0

    def _listed(self, bucket: str, key: str, encode: Callable[[str], str], owned: bool) -> Body:
        found = self.store.describe(f"{SCHEME}{bucket}/{key}")
        return {
            "Key": encode(key), "LastModified": found.modified, "ETag": found.etag, "Size": found.size,
            "StorageClass": "STANDARD", **listed_checksum(found.members),
            **({"Owner": OWNER} if owned else {}),
        }


def listed_checksum(members: Mapping[str, Any]) -> Body:
    """An object's checksum as S3's listings name it, its algorithm (a list of one) and type; none
    for an object stored without one."""
    algorithms = [
        name.removeprefix(MEMBER) for name in members if name.startswith(MEMBER) and name != "ChecksumType"
    ]
    return {"ChecksumAlgorithm": algorithms, "ChecksumType": members["ChecksumType"]} if algorithms else {}


def find_object(
    store: ObjectStore, bucket: str, key: str, version: str | None, method: str = "GET"
) -> StoredObject:
    """The object (or version) named, or S3's error for what is not there. `method` is the read's
    (GET, HEAD, or COPY_SOURCE): S3 says which one a delete marker refuses, and the headers of a
    GET or HEAD that meets one say it is a marker."""
    if not store.bucket_exists(bucket):
        raise no_such_bucket(bucket)
    marker: Mapping[str, str] = {}
    try:
        return store.describe(f"{SCHEME}{bucket}/{key}", version)
    except DeleteMarkerVersion as found:
        if method == COPY_SOURCE:
            raise ServiceError("InvalidRequest", (
                "The source of a copy request may not specifically refer to a delete marker by version id."
            )) from None
        raise ServiceError(
            "MethodNotAllowed", "The specified method is not allowed against this resource.", 405,
            {"Method": method, "ResourceType": "DeleteMarker"},
            {**_marker_headers(found.version_id), "Allow": "DELETE",
             "Last-Modified": formatdate(found.modified, usegmt=True)},
        ) from None
    except NoSuchKey as gone:
        missing = None
        if gone.marker is not None and method != COPY_SOURCE:
            marker = _marker_headers(gone.marker)
    except ValueError as error:  # a key the store cannot hold (`a//b`, `..`) names nothing it holds
        missing = error
    if version is None:
        raise no_such_key(key, marker)
    if missing is not None:
        raise ServiceError(
            "InvalidArgument", "Invalid version id specified", 400,
            {"ArgumentName": "versionId", "ArgumentValue": version},
        )
    raise ServiceError(
        "NoSuchVersion", "The specified version does not exist.", 404, {"Key": key, "VersionId": version}
    )


def _marker_headers(version_id: str) -> dict[str, str]:
    return {"x-amz-delete-marker": "true", "x-amz-version-id": version_id}


def http_date(value: str, name: str) -> float:
    """An `Expires` date as the store keeps it: seconds since the epoch. S3 keeps any text there;
    the local S3 keeps a date only, and says so for anything else."""
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        raise not_implemented(
            name, f"the local SageMaker's S3 keeps {name} only as an HTTP date, not {value!r}"
        ) from None


def check_conditions(found: StoredObject, request: Body) -> None:
    """RFC 7232's order, which is S3's documented precedence: a matching If-Match makes
    If-Unmodified-Since moot (200), and a matching If-None-Match answers 304 whatever
    If-Modified-Since says. Last-Modified goes out in whole seconds, so dates compare in them. An
    If-Modified-Since later than the server's time is no valid date (RFC 2616, 14.25) and S3 ignores
    it: the object is sent, or copied."""
    modified = int(found.modified)
    if "IfMatch" in request:
        if not matches(request["IfMatch"], found.etag):
            raise precondition_failed("If-Match")
    elif modified > _date(request.get("IfUnmodifiedSince"), modified):
        raise precondition_failed("If-Unmodified-Since")
    if "IfNoneMatch" in request:
        if matches(request["IfNoneMatch"], found.etag):
            raise NotModified({"ETag": found.etag, "LastModified": found.modified})
    elif modified <= _date(request.get("IfModifiedSince"), modified - 1) <= time.time():
        raise NotModified({"ETag": found.etag, "LastModified": found.modified})


def matches(header: str, etag: str) -> bool:
    """Whether an If-Match or If-None-Match list names the ETag (quoted or not), or is `*`."""
    tags = [tag.strip().removeprefix("W/").strip('"') for tag in header.split(",")]
    return "*" in tags or etag.strip('"') in tags


def _date(header: str | None, absent: float) -> float:
    """An If-(Un)Modified-Since date in seconds; `absent` for no header or one that is no date,
    which HTTP says to ignore (RFC 7232)."""
    try:
        moment = parsedate_to_datetime(header or "")
    except (TypeError, ValueError):
        return absent
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def precondition_failed(condition: str) -> ServiceError:
    message = "At least one of the pre-conditions you specified did not hold"
    return ServiceError("PreconditionFailed", message, 412, {"Condition": condition})


def _span(request: Body, found: StoredObject) -> tuple[int, int] | None:
    """The inclusive byte span the request asks for: its `Range`, or its `PartNumber`: a part of an
    object uploaded in parts, or of any other part 1, the whole object (None for an empty one)."""
    if "PartNumber" not in request:
        return _range(request.get("Range", ""), found.size)
    if "Range" in request:
        message = "Cannot specify both Range header and partNumber query parameter"
        raise ServiceError("InvalidRequest", message)
    sizes = found.parts or (found.size,)
    number = request["PartNumber"]
    if not isinstance(number, int) or not 1 <= number <= len(sizes):
        raise ServiceError(
            "InvalidPartNumber", "The requested partnumber is not satisfiable", 416,
            {"PartNumberRequested": str(number), "ActualPartCount": str(len(sizes))},
        )
    start = sum(sizes[: number - 1])
    return (start, start + sizes[number - 1] - 1) if sizes[number - 1] else None


def _range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive byte span a `Range: bytes=a-b` (or `a-`, or `-n`) asks for; None for no range
    or one that cannot be read; InvalidRange (416) for a range that starts past the end."""
    match = RANGE.fullmatch(header.strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if not first:  # the last n bytes
        start, end = max(0, size - int(last)), size - 1
        unsatisfiable = int(last) == 0 or size == 0
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
        if last and int(last) < start:
            return None
        unsatisfiable = start >= size
    if unsatisfiable:
        raise ServiceError(
            "InvalidRange", "The requested range is not satisfiable", 416,
            {"RangeRequested": header, "ActualObjectSize": str(size)},
        )
    return start, end


def max_items(value: Any, argument: str) -> int:
    """MaxKeys (or MaxParts, MaxUploads: `argument` names it as the query does) as S3 takes it:
    at most 1000 entries a page whatever is asked."""
    try:
        asked = int(value)
    except (TypeError, ValueError):
        asked = -1
    if asked < 0:
        raise ServiceError(
            "InvalidArgument", f"Provided {argument} not an integer or within integer range", 400,
            {"ArgumentName": argument, "ArgumentValue": str(value)},
        )
    return min(asked, MAX_KEYS)


def url_encoder(encoding: str | None) -> Callable[[str], str]:
    """With `EncodingType=url` (which botocore asks for and decodes), names go back URL-encoded."""
    if encoding is None:
        return lambda name: name
    if encoding != "url":
        raise ServiceError(
            "InvalidArgument", "Invalid Encoding Method specified in Request", 400,
            {"ArgumentName": "encoding-type", "ArgumentValue": encoding},
        )
    return lambda name: quote(name, safe="/")
