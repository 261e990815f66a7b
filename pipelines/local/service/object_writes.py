"""S3's PutObject into the local object store, which versions every write as a versioned bucket does.

The body goes to disk a chunk at a time as it arrives (up to S3's 5 GB a PUT, which the HTTP front
enforces), digested on the way; an object whose digests do not match is refused before it is stored
(checksums.py). The answer names the new version and its ETag, the MD5 of the bytes, which the
store keeps with the version.

The store keeps bytes and versions, and with each version the headers S3 keeps (`Content-Type`,
`Content-Encoding`, `Content-Disposition`, `Cache-Control`, `Content-Language`, `Expires`) and the
user metadata (`x-amz-meta-*`, names in lower case as S3 keeps them, 2 KB in all as S3 allows), and
it honours conditional writes (If-None-Match, If-Match: write_conditions.py). What a PUT may ask
of S3 beyond that (encryption, object lock, tags, a storage class)
is refused by the header's name with S3's `NotImplemented`, and ACLs as a bucket with ACLs disabled
(S3's default) refuses them; nothing is ignored. The bucket must exist (CreateBucket, buckets.py):
a PUT into any other is S3's NoSuchBucket, refused before its body is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from botocore.model import OperationModel

from pipelines.local.contract.models import operation_model
from pipelines.local.errors import ServiceError, not_implemented
from pipelines.local.service.checksums import ALGORITHM_MEMBER, DEFAULT_ALGORITHM, MEMBER, Expected
from pipelines.local.service.context import ServiceContext
from pipelines.local.service.objects import HEADERS, SSE_S3, http_date, no_such_bucket
from pipelines.local.service.write_conditions import MEMBERS as CONDITIONS
from pipelines.local.service.write_conditions import WriteCondition
from pipelines.local.storage.database import Body
from pipelines.local.storage.objects import SCHEME, NoSuchBucket, ObjectStore

# Members whose headers this store honours as S3 does; the framing (Content-Length) is the HTTP front's.
HONOURED = frozenset({"Bucket", "Key", "Body", "ContentLength", "ContentMD5", ALGORITHM_MEMBER,
                      "ExpectedBucketOwner", "ACL", "Metadata", *HEADERS, *CONDITIONS})
# Values of other members that ask for nothing beyond what the store does anyway: the standard
# class, and SSE-S3 (an upload's ExtraArgs={"ServerSideEncryption": "AES256"}).
PLAIN = {"StorageClass": "STANDARD", "ServerSideEncryption": SSE_S3}
MAX_KEY_BYTES = 1024  # S3's longest key, in UTF-8
MAX_METADATA_BYTES = 2048  # S3's limit on user metadata: names and values, in UTF-8
OWNER_ONLY_ACL = "bucket-owner-full-control"  # what a bucket with ACLs disabled accepts


class ObjectWrites:
    def __init__(self, context: ServiceContext) -> None:
        self.store = context.store
        self.model = operation_model("s3", "PutObject")

    def put_object(self, request: Body) -> Body:
        admit(self.store, self.model, request, HONOURED)
        condition = WriteCondition.of_write(request)  # refused before the body is read
        expected = Expected.of(request, default=DEFAULT_ALGORITHM)
        members = kept_members(request)

        def verified() -> None:  # once the last byte is read: the checksum, kept with the version
            expected.verify()
            members.update(expected.members())

        uri = f"{SCHEME}{request['Bucket']}/{request['Key']}"
        with storing(request["Bucket"]):
            version = self.store.put_stream(
                uri, expected.reading(request["Body"]), verified, members,
                condition=condition.checking(self.store, uri),
            )
        etag = self.store.describe(uri, version).etag
        return {"ETag": etag, "VersionId": version, **expected.members()}


@contextmanager
def storing(bucket: str) -> Iterator[None]:
    """A write into the store, its failures in S3's words: NoSuchBucket for a bucket deleted while
    the body arrived, InvalidArgument for a key the store cannot keep as a file (`a//b`, `..`, or
    `a` beside `a/b`)."""
    try:
        yield
    except NoSuchBucket:
        raise no_such_bucket(bucket) from None
    except ValueError as error:
        raise _unstorable(error) from None


def _unstorable(error: ValueError) -> ServiceError:
    message = f"The local SageMaker's S3 keeps objects as files and cannot store this one: {error}"
    return ServiceError("InvalidArgument", message, 400)


def kept_members(request: Body) -> Body:
    """The headers and user metadata kept with the version; S3's MetadataTooLarge over its limit."""
    members = {name: request[name] for name in HEADERS if name in request}
    if "Expires" in members:
        members["Expires"] = http_date(members["Expires"], "Expires")
    metadata = {name.lower(): value for name, value in request.get("Metadata", {}).items()}
    size = sum(len(name.encode()) + len(value.encode()) for name, value in metadata.items())
    if size > MAX_METADATA_BYTES:
        raise ServiceError(
            "MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size", 400,
            {"Size": str(size), "MaxSizeAllowed": str(MAX_METADATA_BYTES)},
        )
    return {**members, "Metadata": metadata} if metadata else members


def admit(store: ObjectStore, model: OperationModel, request: Body, honoured: frozenset[str]) -> None:
    """A request into a bucket that exists, for a key S3 can hold, asking only for what the store
    keeps (S3's NoSuchBucket, KeyTooLongError and refusals by name otherwise)."""
    if not store.bucket_exists(request["Bucket"]):
        raise no_such_bucket(request["Bucket"])
    size = len(request.get("Key", "").encode())
    if size > MAX_KEY_BYTES:
        limit = {"Size": str(size), "MaxSizeAllowed": str(MAX_KEY_BYTES)}
        raise ServiceError("KeyTooLongError", "Your key is too long", 400, limit)
    refuse_what_is_not_kept(model, request, honoured)


def refuse_what_is_not_kept(model: OperationModel, request: Body, honoured: frozenset[str]) -> None:
    """S3's refusal of a header asking for what the store does not keep, named: any member but the
    `honoured` ones, the checksums, and values that ask for nothing (the STANDARD storage class)."""
    members = model.input_shape.members
    for name, value in request.items():
        if name in honoured or name.startswith(MEMBER) or PLAIN.get(name) == value:
            continue
        header = members[name].serialization.get("name", name)
        if name.startswith("Grant"):
            _no_acls(header)
        wire = f"{header}*" if members[name].serialization.get("location") == "headers" else header
        raise not_implemented(
            wire,
            f"the local SageMaker's S3 keeps an object's bytes, versions, headers and user metadata only, "
            f"not what {wire} asks for",
        )
    if request.get("ACL", OWNER_ONLY_ACL) != OWNER_ONLY_ACL:
        _no_acls("x-amz-acl")


def _no_acls(header: str) -> NoReturn:
    raise ServiceError(
        "AccessControlListNotSupported", f"The bucket does not allow ACLs ({header})", 400
    )
