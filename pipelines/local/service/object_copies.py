"""S3's server-side copies: CopyObject, and UploadPartCopy (a part of a multipart upload taken from an
object), which boto3's managed `copy` sends for an object over 8 MB.

The source is `x-amz-copy-source` (`bucket/key`, URL-encoded, with `?versionId=` for a version), read
from its version file a chunk at a time. CopyObject makes a new version of the target with the
source's headers and user metadata (`MetadataDirective` COPY, the default) or the request's
(REPLACE), any other directive S3's InvalidArgument; copying an object's current version onto itself
without replacing anything is S3's InvalidRequest, while an earlier version copied onto its own key
is made current again. The copy keeps a checksum in the algorithm asked for, or else in
the source's own, or else in S3's default, CRC64NVME, computed over the bytes it copies.
`x-amz-copy-source-if-*` are S3's conditions on the source, a failed one 412; If-None-Match and
If-Match are conditions on the target, as on a PUT (write_conditions.py). A source over 5 GB is
refused for CopyObject as S3 refuses it (UploadPartCopy takes a range of it instead).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, unquote

from pipelines.local.contract.models import operation_model
from pipelines.local.errors import ServiceError
from pipelines.local.service.checksums import (
    ALGORITHM_MEMBER,
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    MEMBER,
    Digesting,
    cannot_compute,
    full_object,
)
from pipelines.local.service.context import ServiceContext
from pipelines.local.service.multipart import MultipartUploads, in_progress
from pipelines.local.service.object_writes import HONOURED as PUT_HONOURED
from pipelines.local.service.object_writes import admit, kept_members, storing
from pipelines.local.service.objects import COPY_SOURCE, HEADERS, NotModified, check_conditions, find_object
from pipelines.local.service.write_conditions import WriteCondition
from pipelines.local.storage.database import Body
from pipelines.local.storage.object_records import Readable
from pipelines.local.storage.objects import SCHEME, StoredObject
from pipelines.local.system.identity import ACCOUNT

MAX_COPY_BYTES = 5 * 1024**3  # S3's largest CopyObject source
COPY_RANGE = re.compile(r"bytes=(\d+)-(\d+)")
SOURCE_CONDITIONS = ("CopySourceIfMatch", "CopySourceIfNoneMatch", "CopySourceIfModifiedSince",
                     "CopySourceIfUnmodifiedSince")
_SOURCE = frozenset({"CopySource", "ExpectedSourceBucketOwner", *SOURCE_CONDITIONS})
HONOURED = {
    "CopyObject": frozenset({*PUT_HONOURED, *_SOURCE, "MetadataDirective"}) - {"Body", "ContentLength"},
    "UploadPartCopy": frozenset(
        {"Bucket", "Key", "UploadId", "PartNumber", "ExpectedBucketOwner", "CopySourceRange", *_SOURCE}
    ),
}
ILLEGAL_SELF_COPY = (
    "This copy request is illegal because it is trying to copy an object to itself without changing the "
    "object's metadata, storage class, website redirect location or encryption attributes."
)


class ObjectCopies:
    def __init__(self, context: ServiceContext, uploads: MultipartUploads) -> None:
        self.store = context.store
        self.uploads = uploads
        self.models = {name: operation_model("s3", name) for name in HONOURED}

    def copy_object(self, request: Body) -> Body:
        admit(self.store, self.models["CopyObject"], request, HONOURED["CopyObject"])
        condition = WriteCondition.of_write(request)
        source, (bucket, key, version) = self._source(request)
        if source.size > MAX_COPY_BYTES:
            raise ServiceError(
                "InvalidRequest", "The specified copy source is larger than the maximum allowable size for a "
                f"copy source: {MAX_COPY_BYTES}",
            )
        directive = request.get("MetadataDirective", "COPY")
        if directive not in ("COPY", "REPLACE"):
            raise ServiceError("InvalidArgument", "Unknown metadata directive.", 400, {
                "ArgumentName": "x-amz-metadata-directive", "ArgumentValue": str(directive)})
        replacing = directive == "REPLACE"
        target = f"{SCHEME}{request['Bucket']}/{request['Key']}"
        onto_itself = (bucket, key) == (request["Bucket"], request["Key"]) and self._current(target, source)
        if onto_itself and not replacing:
            raise ServiceError("InvalidRequest", ILLEGAL_SELF_COPY)
        headers = kept_members(request) if replacing else {
            name: value for name, value in source.members.items() if name in (*HEADERS, "Metadata")
        }
        algorithm = str(request.get(ALGORITHM_MEMBER) or _algorithm_of(source) or DEFAULT_ALGORITHM).upper()
        if algorithm not in ALGORITHMS:
            raise cannot_compute(algorithm, "x-amz-checksum-algorithm", "for the copy")
        hasher = ALGORITHMS[algorithm]()
        members = dict(headers)

        def summed() -> None:  # once the last byte is copied: the copy's checksum, kept with it
            members.update(full_object(algorithm, hasher.digest()))

        with storing(request["Bucket"]), _read(source, 0, source.size) as data:
            new_version = self.store.put_stream(
                target, Digesting(data, [hasher]), summed, members,
                condition=condition.checking(self.store, target),
            )
        copied = self.store.describe(target, new_version)
        result = {"ETag": copied.etag, "LastModified": copied.modified,
                  **{name: value for name, value in copied.members.items() if name.startswith(MEMBER)}}
        return {"CopyObjectResult": result, "VersionId": new_version, "CopySourceVersionId": version}

    def upload_part_copy(self, request: Body) -> Body:
        admit(self.store, self.models["UploadPartCopy"], request, HONOURED["UploadPartCopy"])
        upload, number = self.uploads.target_part(request)
        source, (_, _, version) = self._source(request)
        start, length = _copy_range(request.get("CopySourceRange"), source.size)
        hasher = ALGORITHMS[upload.algorithm]() if upload.algorithm else None  # S3 sums the part itself

        def summed() -> str | None:
            return base64.b64encode(hasher.digest()).decode() if hasher is not None else None

        with _read(source, start, length) as data, in_progress(upload):
            part = self.uploads.uploads.put_part(
                upload, number, Digesting(data, [hasher] if hasher else []), summed
            )
        result = {"ETag": part.etag, "LastModified": part.modified,
                  **({f"{MEMBER}{upload.algorithm}": part.checksum} if part.checksum else {})}
        return {"CopyPartResult": result, "CopySourceVersionId": version}

    def _current(self, uri: str, source: StoredObject) -> bool:
        """Whether `source` is the current version of the object at `uri`: an earlier version copied
        onto its own key is no copy to itself but S3's way of making it current again (the user
        guide's "Restoring previous versions")."""
        versions = self.store.versions(uri)
        return not versions or versions[-1] == source.version_id

    def _source(self, request: Body) -> tuple[StoredObject, tuple[str, str, str]]:
        """The source object, and (bucket, key, version id) as the copy names them; its conditions
        checked, a failed one S3's 412."""
        if request.get("ExpectedSourceBucketOwner", ACCOUNT) != ACCOUNT:
            raise ServiceError("AccessDenied", "Access Denied", 403)
        bucket, key, version = _parse_copy_source(request["CopySource"])
        found = find_object(self.store, bucket, key, version, COPY_SOURCE)
        conditions = {name.removeprefix("CopySource"): request[name] for name in SOURCE_CONDITIONS
                      if name in request}
        try:
            check_conditions(found, conditions)
        except NotModified:  # a copy has no 304: S3 answers a source that did not change with 412
            message = "At least one of the pre-conditions you specified did not hold"
            raise ServiceError("PreconditionFailed", message, 412, {"Condition": "x-amz-copy-source-If-*"}) \
                from None
        return found, (bucket, key, found.version_id)


def _parse_copy_source(value: str) -> tuple[str, str, str | None]:
    """(bucket, key, version id or None) of an `x-amz-copy-source` header."""
    path, _, query = value.partition("?")
    bucket, _, key = unquote(path).lstrip("/").partition("/")
    if not bucket or not key:
        raise ServiceError(
            "InvalidArgument", "Invalid copy source object key", 400,
            {"ArgumentName": "x-amz-copy-source", "ArgumentValue": value},
        )
    versions = parse_qs(query).get("versionId")
    return bucket, key, versions[0] if versions else None


def _copy_range(header: str | None, size: int) -> tuple[int, int]:
    """(start, length) of the source a part copies: its `x-amz-copy-source-range`, or all of it."""
    if header is None:
        return 0, size
    match = COPY_RANGE.fullmatch(header.strip())
    if match is None or int(match.group(2)) < int(match.group(1)):
        raise ServiceError(
            "InvalidArgument", "The x-amz-copy-source-range value must be of the form bytes=first-last where "
            "first and last are the zero-based offsets of the first and last bytes to copy", 400,
            {"ArgumentName": "x-amz-copy-source-range", "ArgumentValue": header},
        )
    first, last = int(match.group(1)), int(match.group(2))
    if first >= size:  # S3 tells a range that starts past the end from one that ends past it
        raise ServiceError("InvalidRequest", "The specified copy range is invalid for the source object size")
    if last >= size:
        raise ServiceError(
            "InvalidArgument", f"Range specified is not valid for source object of size: {size}", 400,
            {"ArgumentName": "x-amz-copy-source-range", "ArgumentValue": header},
        )
    return first, last - first + 1


def _algorithm_of(source: StoredObject) -> str | None:
    """The algorithm of the checksum the source keeps, if any."""
    found = [
        name[len(MEMBER):] for name in source.members if name.startswith(MEMBER) and name != "ChecksumType"
    ]
    return found[0] if found else None


@contextmanager
def _read(source: StoredObject, start: int, length: int) -> Iterator[Readable]:
    """`length` bytes of the source's version file from `start`, read a chunk at a time."""
    with source.path.open("rb") as handle:
        handle.seek(start)
        yield _Limited(handle, length)


class _Limited:
    def __init__(self, handle: Any, left: int) -> None:
        self.handle = handle
        self.left = left

    def read(self, size: int, /) -> bytes:
        chunk = bytes(self.handle.read(min(size, self.left))) if self.left > 0 else b""
        self.left -= len(chunk)
        return chunk
