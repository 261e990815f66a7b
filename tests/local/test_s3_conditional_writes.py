"""S3's conditional writes and deletes through boto3's own S3 client (in-process): If-None-Match: *
creates only, If-Match writes or deletes only over the version it names, each checked as the write
commits, and the values S3 does not accept are its 501, in its words."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from pipelines.local.errors import ServiceError
from pipelines.local.service.backend import LocalSageMaker
from pipelines.local.storage.objects import ObjectStore

from .s3_support import HeldBody, error_of

PRECONDITION = "At least one of the pre-conditions you specified did not hold"
UNSUPPORTED = "A header you provided implies functionality that is not implemented"
NOT_STAR = "We don't accept the provided value of If-None-Match header for this API"


@pytest.fixture(autouse=True)
def existing(store: ObjectStore) -> None:
    """`a.txt`, an object the tests find in the bucket."""
    store.put_bytes("s3://bucket/a.txt", b"a.txt")


def put(s3: Any, key: str, body: bytes, **condition: str) -> dict[str, Any]:
    return dict(s3.put_object(Bucket="bucket", Key=key, Body=body, **condition))


def etag(s3: Any, key: str) -> str:
    return str(s3.head_object(Bucket="bucket", Key=key)["ETag"])


def test_if_none_match_creates_only_where_no_object_is(s3: Any, store: ObjectStore) -> None:
    put(s3, "lock", b"first", IfNoneMatch="*")

    status, error = error_of(lambda: put(s3, "lock", b"second", IfNoneMatch="*"))

    assert (status, error) == (412, {"Code": "PreconditionFailed", "Message": PRECONDITION,
                                     "Condition": "If-None-Match"})
    assert store.get_bytes("s3://bucket/lock") == b"first"
    assert len(store.versions("s3://bucket/lock")) == 1
    s3.delete_object(Bucket="bucket", Key="lock")  # a delete marker on top: no object is there
    put(s3, "lock", b"third", IfNoneMatch="*")
    assert store.get_bytes("s3://bucket/lock") == b"third"


def test_if_match_writes_only_over_the_version_it_names(s3: Any, store: ObjectStore) -> None:
    put(s3, "state.json", b"v1")
    read = etag(s3, "state.json")
    put(s3, "state.json", b"v2", IfMatch=read)

    stale = error_of(lambda: put(s3, "state.json", b"v3", IfMatch=read))

    assert stale == (412, {"Code": "PreconditionFailed", "Message": PRECONDITION, "Condition": "If-Match"})
    assert store.get_bytes("s3://bucket/state.json") == b"v2"
    assert error_of(lambda: put(s3, "missing.json", b"x", IfMatch=read)) == (
        404, {"Code": "NoSuchKey", "Message": "The specified key does not exist.", "Key": "missing.json"})
    s3.delete_object(Bucket="bucket", Key="state.json")
    current = etag_of_version(store, "s3://bucket/state.json")
    assert error_of(lambda: put(s3, "state.json", b"v4", IfMatch=current))[0] == 404
    assert not store.exists("s3://bucket/missing.json")


def etag_of_version(store: ObjectStore, uri: str) -> str:
    """The ETag of the newest version that holds bytes (under a delete marker)."""
    return store.describe(uri, store.versions(uri)[-2]).etag


@pytest.mark.parametrize(("condition", "header", "detail"), [
    ({"IfMatch": "*"}, "If-None-Match", NOT_STAR),
    ({"IfNoneMatch": '"0123"'}, "If-None-Match", NOT_STAR),
    ({"IfMatch": '"0123"', "IfNoneMatch": "*"}, "If-Match,If-None-Match",
     "Multiple conditional request headers present in the request"),
])
def test_values_s3_does_not_take_are_its_not_implemented(
    s3: Any, store: ObjectStore, condition: dict[str, str], header: str, detail: str
) -> None:
    status, error = error_of(lambda: put(s3, "a.txt", b"new", **condition))

    assert (status, error) == (501, {"Code": "NotImplemented", "Message": UNSUPPORTED, "Header": header,
                                     "additionalMessage": detail})
    assert store.get_bytes("s3://bucket/a.txt") == b"a.txt"


def test_the_condition_is_checked_as_the_write_lands_not_as_it_starts(
    s3: Any, service: LocalSageMaker, store: ObjectStore
) -> None:
    """Two create-only writers of one key: the one whose body arrives last finds the other's object."""
    put_object = service.operation("S3", "PutObject")
    assert put_object is not None
    body = HeldBody(b"slow writer")
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(put_object, {"Bucket": "bucket", "Key": "claim", "Body": body, "IfNoneMatch": "*"})
        assert body.reading.wait(10)
        put(s3, "claim", b"quick writer", IfNoneMatch="*")
        body.release.set()
        refused = slow.exception(10)

    assert isinstance(refused, ServiceError)
    assert (refused.status, refused.code, refused.fields) == (412, "PreconditionFailed",
                                                              {"Condition": "If-None-Match"})
    assert store.get_bytes("s3://bucket/claim") == b"quick writer"
    assert not any((store.root / ".tmp").iterdir())


def upload(s3: Any, key: str) -> tuple[str, dict[str, Any]]:
    upload_id = s3.create_multipart_upload(Bucket="bucket", Key=key)["UploadId"]
    part = s3.upload_part(Bucket="bucket", Key=key, UploadId=upload_id, PartNumber=1, Body=b"parts")
    return upload_id, {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}


def complete(s3: Any, key: str, upload_id: str, parts: dict[str, Any], **condition: str) -> dict[str, Any]:
    return dict(s3.complete_multipart_upload(Bucket="bucket", Key=key, UploadId=upload_id,
                                             MultipartUpload=parts, **condition))


def test_a_completion_is_conditional_as_a_put_is_and_its_upload_survives_a_refusal(
    s3: Any, store: ObjectStore
) -> None:
    put(s3, "model.tar.gz", b"old")
    upload_id, parts = upload(s3, "model.tar.gz")

    status, error = error_of(lambda: complete(s3, "model.tar.gz", upload_id, parts, IfNoneMatch="*"))

    assert (status, error["Code"], error["Condition"]) == (412, "PreconditionFailed", "If-None-Match")
    assert store.get_bytes("s3://bucket/model.tar.gz") == b"old"
    complete(s3, "model.tar.gz", upload_id, parts, IfMatch=etag(s3, "model.tar.gz"))
    assert store.get_bytes("s3://bucket/model.tar.gz") == b"parts"


def test_a_completion_over_a_version_stored_after_its_upload_began_is_a_conflict(
    s3: Any, store: ObjectStore
) -> None:
    put(s3, "model.tar.gz", b"old")
    upload_id, parts = upload(s3, "model.tar.gz")
    put(s3, "model.tar.gz", b"written meanwhile")

    status, error = error_of(
        lambda: complete(s3, "model.tar.gz", upload_id, parts, IfMatch=etag(s3, "model.tar.gz"))
    )

    assert (status, error) == (409, {
        "Code": "ConditionalRequestConflict",
        "Message": "The conditional request cannot succeed due to a conflicting operation against this "
                   "resource.",
        "Condition": "If-Match", "Key": "model.tar.gz",
    })
    assert store.get_bytes("s3://bucket/model.tar.gz") == b"written meanwhile"


def test_a_copy_is_conditional_on_its_target(s3: Any, store: ObjectStore) -> None:
    put(s3, "target", b"kept")

    status, error = error_of(lambda: s3.copy_object(Bucket="bucket", Key="target", CopySource="bucket/a.txt",
                                                    IfNoneMatch="*"))

    assert (status, error["Condition"]) == (412, "If-None-Match")
    assert store.get_bytes("s3://bucket/target") == b"kept"
    s3.copy_object(Bucket="bucket", Key="target", CopySource="bucket/a.txt", IfMatch=etag(s3, "target"))
    assert store.get_bytes("s3://bucket/target") == b"a.txt"


def test_a_conditional_delete_deletes_only_the_version_it_names(s3: Any, store: ObjectStore) -> None:
    put(s3, "model.tar.gz", b"v1")
    read = etag(s3, "model.tar.gz")
    put(s3, "model.tar.gz", b"v2")

    stale = error_of(lambda: s3.delete_object(Bucket="bucket", Key="model.tar.gz", IfMatch=read))

    assert stale == (412, {"Code": "PreconditionFailed", "Message": PRECONDITION, "Condition": "If-Match"})
    assert store.get_bytes("s3://bucket/model.tar.gz") == b"v2"
    assert s3.delete_object(Bucket="bucket", Key="model.tar.gz", IfMatch="*")["DeleteMarker"] is True
    gone = error_of(lambda: s3.delete_object(Bucket="bucket", Key="model.tar.gz", IfMatch="*"))
    assert gone == (404, {"Code": "NoSuchKey", "Message": "The specified key does not exist.",
                          "Key": "model.tar.gz"})
    assert len(store.versions("s3://bucket/model.tar.gz")) == 3  # no second marker


def test_a_conditional_delete_of_a_version_by_id_is_not_implemented(s3: Any, store: ObjectStore) -> None:
    version = put(s3, "model.tar.gz", b"v1")["VersionId"]

    status, error = error_of(lambda: s3.delete_object(
        Bucket="bucket", Key="model.tar.gz", VersionId=version, IfMatch=etag(s3, "model.tar.gz")))

    assert (status, error["Code"], error["Header"]) == (501, "NotImplemented", "If-Match")
    assert error["additionalMessage"] == (
        "Conditional delete operations are not allowed when a version ID is included in the request "
        "parameters."
    )
    assert store.versions("s3://bucket/model.tar.gz") == [version]


def test_delete_objects_checks_each_entrys_etag_and_reports_a_failed_one_as_its_error(
    s3: Any, store: ObjectStore
) -> None:
    put(s3, "keep", b"changed since read")
    put(s3, "drop", b"unchanged")
    stale = '"0123456789abcdef0123456789abcdef"'

    answer = s3.delete_objects(Bucket="bucket", Delete={"Objects": [
        {"Key": "keep", "ETag": stale}, {"Key": "drop", "ETag": etag(s3, "drop")},
    ]})

    assert [entry["Key"] for entry in answer["Deleted"]] == ["drop"]
    assert answer["Errors"] == [{"Key": "keep", "Code": "PreconditionFailed", "Message": PRECONDITION}]
    assert store.get_bytes("s3://bucket/keep") == b"changed since read"
    assert not store.exists("s3://bucket/drop")


@pytest.mark.parametrize("condition", [{"Size": 1}, {"LastModifiedTime": "2026-01-01T00:00:00Z"}])
def test_the_delete_conditions_of_directory_buckets_are_refused_by_name(
    s3: Any, store: ObjectStore, condition: dict[str, Any]
) -> None:
    status, error = error_of(lambda: s3.delete_objects(Bucket="bucket", Delete={"Objects": [
        {"Key": "a.txt"}, {"Key": "a.txt", **condition},
    ]}))

    assert (status, error["Code"], error["Header"]) == (501, "NotImplemented", next(iter(condition)))
    assert store.exists("s3://bucket/a.txt")  # nothing deleted, not even the unconditional entry
