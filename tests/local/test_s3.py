"""S3's reads over the local object store, through boto3's own S3 client (in-process): paging,
delimiters, versions, ranges, S3's errors, the operations refused; and the door's S3 signatures."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from botocore.exceptions import ClientError

from pipelines.local.api.auth import Door, Refusal
from pipelines.local.api.protocol import Dispatcher
from pipelines.local.service.backend import LocalSageMaker
from pipelines.local.storage.credentials import Credentials
from pipelines.local.storage.objects import ObjectStore

from . import inprocess

KEYS = ["a.txt", "dir/one", "dir/sub/two", "dir/sub/three", "dir/z", "e/f", "some key+ü"]


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalSageMaker]:
    made = LocalSageMaker(tmp_path / "state", "us-east-1", "http://127.0.0.1:1")
    for key in KEYS:
        made.context.store.put_bytes(f"s3://bucket/{key}", key.encode())
    yield made
    made.shutdown()


@pytest.fixture
def s3(backend: LocalSageMaker) -> Any:
    return inprocess.client(Dispatcher(backend, check_responses=True), "s3")


@pytest.fixture
def store(backend: LocalSageMaker) -> ObjectStore:
    return backend.context.store


def error_of(call: Any) -> tuple[int, dict[str, str]]:
    with pytest.raises(ClientError) as raised:
        call()
    response = raised.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]


@pytest.mark.parametrize("page_size", [1, 2, 3, 1000])
def test_pages_hold_each_key_and_common_prefix_once(s3: Any, page_size: int) -> None:
    pages = list(s3.get_paginator("list_objects_v2").paginate(
        Bucket="bucket", Delimiter="/", PaginationConfig={"PageSize": page_size}))
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    prefixes = [item["Prefix"] for page in pages for item in page.get("CommonPrefixes", [])]
    assert (keys, prefixes) == (["a.txt", "some key+ü"], ["dir/", "e/"])
    assert [page["KeyCount"] for page in pages[:-1]] == [page_size] * (len(pages) - 1)
    assert len(pages) == -(-4 // page_size)
    assert all(page["IsTruncated"] for page in pages[:-1]) and not pages[-1]["IsTruncated"]


def test_a_prefix_start_after_and_max_keys(s3: Any) -> None:
    listed = s3.list_objects_v2(Bucket="bucket", Prefix="dir/", Delimiter="/", StartAfter="dir/one")
    assert [item["Key"] for item in listed["Contents"]] == ["dir/z"]
    assert [item["Prefix"] for item in listed["CommonPrefixes"]] == ["dir/sub/"]
    whole = s3.list_objects_v2(Bucket="bucket", Prefix="dir/sub/")
    assert [(item["Key"], item["Size"]) for item in whole["Contents"]] == [
        ("dir/sub/three", 13), ("dir/sub/two", 11)]
    nothing = s3.list_objects_v2(Bucket="bucket", MaxKeys=0)
    assert (nothing["KeyCount"], nothing["IsTruncated"], "Contents" in nothing) == (0, False, False)
    assert error_of(lambda: s3.list_objects_v2(Bucket="bucket", ContinuationToken="%%%"))[1]["Code"] == (
        "InvalidArgument")


def test_objects_written_between_pages_do_not_repeat_what_was_listed(s3: Any, store: ObjectStore) -> None:
    first = s3.list_objects_v2(Bucket="bucket", MaxKeys=2)
    store.put_bytes("s3://bucket/0-first", b"before everything listed")
    rest = s3.list_objects_v2(Bucket="bucket", ContinuationToken=first["NextContinuationToken"])
    listed = [item["Key"] for page in (first, rest) for item in page["Contents"]]
    assert listed == sorted(KEYS)


def test_get_and_head_describe_the_current_version_or_the_one_asked_for(s3: Any, store: ObjectStore) -> None:
    older = store.versions("s3://bucket/a.txt")[-1]
    newer = store.put_bytes("s3://bucket/a.txt", b"second version")
    current = s3.get_object(Bucket="bucket", Key="a.txt")
    assert (current["Body"].read(), current["VersionId"]) == (b"second version", newer)
    assert current["ETag"] == f'"{hashlib.md5(b"second version").hexdigest()}"'
    assert current["ContentType"] == "binary/octet-stream"
    before = s3.get_object(Bucket="bucket", Key="a.txt", VersionId=older)
    assert (before["Body"].read(), before["VersionId"]) == (b"a.txt", older)
    head = s3.head_object(Bucket="bucket", Key="a.txt", VersionId=older)
    assert (head["VersionId"], head["ETag"]) == (older, before["ETag"])
    never = "0" * 20 + "-" + "0" * 12
    assert error_of(lambda: s3.get_object(Bucket="bucket", Key="a.txt", VersionId=never)) == (
        404, {"Code": "NoSuchVersion", "Message": "The specified version does not exist.", "Key": "a.txt",
              "VersionId": never})
    assert error_of(lambda: s3.get_object(Bucket="bucket", Key="a.txt", VersionId="v1"))[1]["Code"] == (
        "InvalidArgument")


@pytest.mark.parametrize(("asked", "body", "span"), [
    ("bytes=1-3", b"ir/", "bytes 1-3/7"),
    ("bytes=4-", b"one", "bytes 4-6/7"),
    ("bytes=-2", b"ne", "bytes 5-6/7"),
    ("bytes=5-100", b"ne", "bytes 5-6/7"),
])
def test_a_range_is_a_part_of_the_object(s3: Any, asked: str, body: bytes, span: str) -> None:
    part = s3.get_object(Bucket="bucket", Key="dir/one", Range=asked)
    assert (part["ResponseMetadata"]["HTTPStatusCode"], part["Body"].read(), part["ContentRange"]) == (
        206, body, span)


def test_s3s_errors_in_its_words(s3: Any) -> None:
    assert error_of(lambda: s3.get_object(Bucket="bucket", Key="missing")) == (
        404, {"Code": "NoSuchKey", "Message": "The specified key does not exist.", "Key": "missing"})
    assert error_of(lambda: s3.get_object(Bucket="bucket", Key="dir/../a.txt"))[1]["Code"] == "NoSuchKey"
    assert error_of(lambda: s3.list_objects_v2(Bucket="nobucket")) == (
        404, {"Code": "NoSuchBucket", "Message": "The specified bucket does not exist",
              "BucketName": "nobucket"})
    assert error_of(lambda: s3.head_object(Bucket="bucket", Key="missing")) == (
        404, {"Code": "404", "Message": "Not Found"})  # a HEAD answer has no body to name the error
    assert error_of(lambda: s3.get_object(Bucket="bucket", Key="dir/one", Range="bytes=7-"))[1] == {
        "Code": "InvalidRange", "Message": "The requested range is not satisfiable",
        "RangeRequested": "bytes=7-", "ActualObjectSize": "7"}


@pytest.mark.parametrize(("name", "call"), [
    ("PutObject", lambda s3: s3.put_object(Bucket="bucket", Key="a.txt", Body=b"overwritten")),
    ("GetObjectTagging", lambda s3: s3.get_object_tagging(Bucket="bucket", Key="a.txt")),
    ("DeleteObject", lambda s3: s3.delete_object(Bucket="bucket", Key="a.txt")),
    ("ListObjects", lambda s3: s3.list_objects(Bucket="bucket")),
    ("ListBuckets", lambda s3: s3.list_buckets()),
])
def test_other_operations_are_refused_by_name_and_change_nothing(
    s3: Any, store: ObjectStore, name: str, call: Any
) -> None:
    assert error_of(lambda: call(s3)) == (400, {
        "Code": "UnknownOperationException", "Message": f"S3.{name} is not supported by the local SageMaker"})
    assert store.get_bytes("s3://bucket/a.txt") == b"a.txt"
    assert len(store.versions("s3://bucket/a.txt")) == 1


# --- the door, for requests signed as S3 signs them ------------------------------------------------

PORT = 4567
SECRET = Credentials("LOCALAAAAAAAAAAAAAAA", "secret-of-forty-characters-aaaaaaaaaaaaa")


def s3_request(secret: str = SECRET.secret_access_key, path: str = "/bucket/some%20key%2B%C3%BC") -> Message:
    """A GET signed by botocore's S3SigV4Auth, as the server receives it."""
    request = AWSRequest(method="GET", url=f"http://127.0.0.1:{PORT}{path}")
    S3SigV4Auth(BotoCredentials(SECRET.access_key_id, secret), "s3", "us-east-1").add_auth(request)
    headers = Message()
    headers["Host"] = f"127.0.0.1:{PORT}"
    for name, value in request.headers.items():
        headers[name] = value
    return headers


def door_check(headers: Message, path: str = "/bucket/some%20key%2B%C3%BC") -> None:
    door = Door(SECRET, PORT, "us-east-1")
    door.check_signature(door.check_headers(headers, "s3"), "GET", path, headers, b"")


def test_the_door_checks_an_s3_signature_as_s3_does() -> None:
    door_check(s3_request())  # the path as sent, not encoded a second time
    with pytest.raises(Refusal) as wrong:
        door_check(s3_request(secret="not-the-secret"))
    assert (wrong.value.s3_code, wrong.value.s3_status()) == ("SignatureDoesNotMatch", 403)
    unsigned_payload = s3_request()
    unsigned_payload.replace_header("X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD")
    with pytest.raises(Refusal) as resigned:  # allowed by S3, but the signature covered the hash
        door_check(unsigned_payload)
    assert resigned.value.s3_code == "SignatureDoesNotMatch"
    missing = s3_request()
    del missing["X-Amz-Content-SHA256"]
    with pytest.raises(Refusal) as refused:
        door_check(missing)
    assert (refused.value.s3_code, refused.value.s3_status()) == ("InvalidRequest", 400)
