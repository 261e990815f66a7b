"""S3 over the local object store, through boto3's own S3 client (in-process): paging, delimiters,
versions, ranges, S3's errors, the operations refused; PutObject with its digests, the headers it
refuses and its body streamed to disk; the CLI's storage over it; and the door's S3 signatures."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import time
import zlib
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials
from botocore.exceptions import ClientError

from pipelines.aws import S3Storage
from pipelines.datasets import upload_data
from pipelines.local.api.auth import Door, Refusal
from pipelines.local.api.protocol import Dispatcher
from pipelines.local.api.s3_body import MAX_PUT_BYTES, RequestBody
from pipelines.local.errors import ServiceError
from pipelines.local.service.backend import LocalSageMaker
from pipelines.local.storage import objects
from pipelines.local.storage.credentials import Credentials
from pipelines.local.storage.object_records import CHUNK_BYTES, record_path
from pipelines.local.storage.objects import ObjectStore

from . import inprocess
from .s3_support import b64, crc, error_of

KEYS = ["a.txt", "dir/one", "dir/sub/two", "dir/sub/three", "dir/z", "e/f", "some key+ü"]


@pytest.fixture(autouse=True)
def backend(service: LocalSageMaker) -> LocalSageMaker:
    """The service, its bucket holding KEYS, each object its own key's bytes."""
    for key in KEYS:
        service.context.store.put_bytes(f"s3://bucket/{key}", key.encode())
    return service


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


def test_a_listings_times_are_the_whole_seconds_a_head_names_as_s3_keeps_them(s3: Any) -> None:
    s3.put_object(Bucket="bucket", Key="timed", Body=b"t")
    head = s3.head_object(Bucket="bucket", Key="timed")["LastModified"]
    (listed,) = s3.list_objects_v2(Bucket="bucket", Prefix="timed")["Contents"]
    (version,) = s3.list_object_versions(Bucket="bucket", Prefix="timed")["Versions"]
    copied = s3.copy_object(Bucket="bucket", Key="timed-copy", CopySource="bucket/timed")["CopyObjectResult"]
    assert listed["LastModified"] == version["LastModified"] == head
    assert copied["LastModified"].microsecond == 0


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


def test_a_limit_of_zero_is_an_empty_page_that_is_not_truncated_in_every_listing(s3: Any) -> None:
    upload = s3.create_multipart_upload(Bucket="bucket", Key="dir/one")["UploadId"]
    s3.upload_part(Bucket="bucket", Key="dir/one", UploadId=upload, PartNumber=1, Body=b"part")

    pages = [
        s3.list_objects(Bucket="bucket", MaxKeys=0),
        s3.list_object_versions(Bucket="bucket", MaxKeys=0),
        s3.list_multipart_uploads(Bucket="bucket", MaxUploads=0),
        s3.list_parts(Bucket="bucket", Key="dir/one", UploadId=upload, MaxParts=0),
    ]
    for listed in pages:
        assert listed["IsTruncated"] is False
        assert not {"Contents", "Versions", "DeleteMarkers", "Uploads", "Parts"} & set(listed)


@pytest.mark.parametrize("page_size", [1, 2, 1000])
def test_version_1_listing_pages_as_boto3s_bucket_collections_read_it(s3: Any, page_size: int) -> None:
    sized = {"PageSize": page_size}
    paged = s3.get_paginator("list_objects").paginate(Bucket="bucket", PaginationConfig=sized)
    assert [item["Key"] for page in paged for item in page.get("Contents", [])] == sorted(KEYS)
    rolled = s3.get_paginator("list_objects").paginate(
        Bucket="bucket", Delimiter="/", PaginationConfig={"PageSize": page_size})
    pages = list(rolled)
    entries = [item["Key"] for page in pages for item in page.get("Contents", [])] + [
        prefix["Prefix"] for page in pages for prefix in page.get("CommonPrefixes", [])]
    assert sorted(entries) == ["a.txt", "dir/", "e/", "some key+ü"]
    assert all(page.get("NextMarker") for page in pages if page["IsTruncated"])
    resource = boto3.Session(**inprocess.KEYS, region_name="us-east-1").resource(
        "s3", endpoint_url=inprocess.URL)
    resource.meta.client = s3  # the collection's requests through the same in-process client
    assert [summary.key for summary in resource.Bucket("bucket").objects.filter(Prefix="dir/")] == [
        "dir/one", "dir/sub/three", "dir/sub/two", "dir/z"]


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
    ("PutObjectTagging", lambda s3: s3.put_object_tagging(
        Bucket="bucket", Key="a.txt", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})),
    ("GetObjectTagging", lambda s3: s3.get_object_tagging(Bucket="bucket", Key="a.txt")),
    ("GetObjectAcl", lambda s3: s3.get_object_acl(Bucket="bucket", Key="a.txt")),
    ("GetBucketTagging", lambda s3: s3.get_bucket_tagging(Bucket="bucket")),
])
def test_other_operations_are_refused_by_name_and_change_nothing(
    s3: Any, store: ObjectStore, name: str, call: Any
) -> None:
    assert error_of(lambda: call(s3)) == (400, {
        "Code": "UnknownOperationException", "Message": f"S3.{name} is not supported by the local SageMaker"})
    assert store.get_bytes("s3://bucket/a.txt") == b"a.txt"
    assert len(store.versions("s3://bucket/a.txt")) == 1


# --- PutObject ----------------------------------------------------------------------------------------


def test_a_put_is_a_new_version_with_s3s_etag_and_checksum(s3: Any, store: ObjectStore) -> None:
    older = store.versions("s3://bucket/a.txt")[-1]
    put = s3.put_object(Bucket="bucket", Key="a.txt", Body=b"written through the API")
    assert put["VersionId"] == store.versions("s3://bucket/a.txt")[-1] != older
    assert put["ETag"] == f'"{hashlib.md5(b"written through the API").hexdigest()}"'
    # boto3 sends a CRC32 by default; S3 answers with it and the checksum type
    crc = b64(zlib.crc32(b"written through the API").to_bytes(4, "big"))
    assert (put["ChecksumCRC32"], put["ChecksumType"]) == (crc, "FULL_OBJECT")
    current = s3.get_object(Bucket="bucket", Key="a.txt")
    assert (current["Body"].read(), current["VersionId"], current["ETag"]) == (
        b"written through the API", put["VersionId"], put["ETag"])
    assert s3.get_object(Bucket="bucket", Key="a.txt", VersionId=older)["Body"].read() == b"a.txt"
    missing = error_of(lambda: s3.put_object(Bucket="new-bucket", Key="deep/key", Body=b""))
    assert missing[1]["Code"] == "NoSuchBucket"
    s3.create_bucket(Bucket="new-bucket")
    fresh = s3.put_object(Bucket="new-bucket", Key="deep/key", Body=b"", ChecksumAlgorithm="SHA256",
                          ContentMD5=b64(hashlib.md5(b"").digest()), ACL="bucket-owner-full-control")
    assert fresh["ChecksumSHA256"] == b64(hashlib.sha256(b"").digest())
    assert store.get_bytes("s3://new-bucket/deep/key") == b""


@pytest.mark.parametrize(("arguments", "status", "error"), [
    ({"ContentMD5": b64(hashlib.md5(b"other bytes").digest())}, 400,  # with the digests, as S3 names them
     {"Code": "BadDigest", "Message": "The Content-MD5 you specified did not match what we received.",
      "CalculatedDigest": b64(hashlib.md5(b"data").digest()),
      "ExpectedDigest": b64(hashlib.md5(b"other bytes").digest())}),
    ({"ContentMD5": "not base64"}, 400,
     {"Code": "InvalidDigest", "Message": "The Content-MD5 you specified was invalid.",
      "Content-MD5": "not base64"}),
    ({"ChecksumCRC32": b64(zlib.crc32(b"other bytes").to_bytes(4, "big"))}, 400,
     {"Code": "BadDigest", "Message": "The CRC32 you specified did not match the calculated checksum."}),
    ({"ChecksumSHA1": b64(hashlib.sha1(b"other bytes").digest())}, 400,
     {"Code": "BadDigest", "Message": "The SHA1 you specified did not match the calculated checksum."}),
    ({"ChecksumSHA256": "c2hvcnQ="}, 400,
     {"Code": "InvalidRequest", "Message": "Value for x-amz-checksum-sha256 header is invalid."}),
    ({"ChecksumCRC32": "AAAAAA==", "ChecksumSHA1": b64(hashlib.sha1(b"data").digest())}, 400,
     {"Code": "InvalidRequest",
      "Message": "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."}),
])
def test_a_put_whose_digest_does_not_match_is_refused_and_stores_nothing(
    s3: Any, store: ObjectStore, arguments: dict[str, str], status: int, error: dict[str, str]
) -> None:
    assert error_of(lambda: s3.put_object(Bucket="bucket", Key="a.txt", Body=b"data", **arguments)) == (
        status, error)
    assert store.get_bytes("s3://bucket/a.txt") == b"a.txt"
    assert len(store.versions("s3://bucket/a.txt")) == 1
    assert not list((store.root / ".tmp").iterdir())  # nor left anything behind


def test_the_reference_crcs_give_their_published_check_values() -> None:
    assert crc("CRC32C", b"123456789").hex() == "e3069283"
    assert crc("CRC64NVME", b"123456789").hex() == "ae8b14860a799888"


@pytest.mark.parametrize("algorithm", ["CRC32C", "CRC64NVME"])
def test_the_crcs_the_aws_cli_and_crt_sdks_send_are_checked_and_kept(
    s3: Any, store: ObjectStore, algorithm: str
) -> None:
    """The AWS CLI v2 sums every upload with CRC64NVME; SDKs with the CRT may send CRC32C."""
    data = os.urandom(70_000)
    member = f"Checksum{algorithm}"
    put = s3.put_object(Bucket="bucket", Key="summed", Body=data, **{member: b64(crc(algorithm, data))})
    assert (put[member], put["ChecksumType"]) == (b64(crc(algorithm, data)), "FULL_OBJECT")
    head = s3.head_object(Bucket="bucket", Key="summed", ChecksumMode="ENABLED")
    assert (head[member], head["ChecksumType"]) == (b64(crc(algorithm, data)), "FULL_OBJECT")
    assert store.get_bytes("s3://bucket/summed") == data

    wrong = error_of(lambda: s3.put_object(Bucket="bucket", Key="other", Body=data,
                                           **{member: b64(crc(algorithm, data[1:]))}))
    message = f"The {algorithm} you specified did not match the calculated checksum."
    assert wrong == (400, {"Code": "BadDigest", "Message": message})
    assert not store.exists("s3://bucket/other")


def test_a_new_object_put_or_copied_without_a_checksum_is_summed_with_crc64nvme_as_s3_sums_it(
    service: LocalSageMaker, store: ObjectStore
) -> None:
    """Since 2025 S3 sums every new object its writer declares no checksum for with CRC64NVME."""
    unsummed = inprocess.client(Dispatcher(service, check_responses=True), "s3",
                                config=Config(request_checksum_calculation="when_required"))
    data = os.urandom(30_000)
    summed = {"ChecksumCRC64NVME": b64(crc("CRC64NVME", data)), "ChecksumType": "FULL_OBJECT"}

    put = unsummed.put_object(Bucket="bucket", Key="plain", Body=data)
    head = unsummed.head_object(Bucket="bucket", Key="plain", ChecksumMode="ENABLED")
    store.put_bytes("s3://bucket/written-by-a-job", data)  # kept with no checksum
    unsummed.copy_object(Bucket="bucket", Key="copied", CopySource="bucket/written-by-a-job")
    copied = unsummed.head_object(Bucket="bucket", Key="copied", ChecksumMode="ENABLED")
    listed = unsummed.list_objects_v2(Bucket="bucket", Prefix="plain")["Contents"][0]

    assert {name: put[name] for name in summed} == summed
    assert {name: head[name] for name in summed} == summed
    assert {name: copied[name] for name in summed} == summed
    assert (listed["ChecksumAlgorithm"], listed["ChecksumType"]) == (["CRC64NVME"], "FULL_OBJECT")


def test_a_checksum_no_sdk_computes_without_the_crt_is_refused_not_taken_unchecked(
    s3: Any, store: ObjectStore
) -> None:
    status, error = error_of(lambda: s3.put_object(Bucket="bucket", Key="new", Body=b"data",
                                                   ChecksumXXHASH64="AAAAAAAAAAA="))
    assert (status, error["Code"], error["Header"]) == (501, "NotImplemented", "x-amz-checksum-xxhash64")
    assert "cannot compute XXHASH64" in error["Message"] and "CRC64NVME" in error["Message"]
    assert not store.exists("s3://bucket/new")


def test_every_object_answer_says_it_is_kept_with_sse_s3_and_asking_for_it_is_taken(s3: Any) -> None:
    """S3 encrypts every new object with SSE-S3 and says so (x-amz-server-side-encryption: AES256);
    an upload that asks for it (ExtraArgs={"ServerSideEncryption": "AES256"}) asks for nothing more."""
    answers = [
        s3.put_object(Bucket="bucket", Key="sealed", Body=b"data", ServerSideEncryption="AES256"),
        s3.put_object(Bucket="bucket", Key="plain", Body=b"data"),
        s3.head_object(Bucket="bucket", Key="sealed"),
        s3.get_object(Bucket="bucket", Key="plain"),
        s3.copy_object(Bucket="bucket", Key="copied", CopySource="bucket/plain",
                       ServerSideEncryption="AES256"),
    ]
    upload = s3.create_multipart_upload(Bucket="bucket", Key="parts", ServerSideEncryption="AES256")
    part = s3.upload_part(Bucket="bucket", Key="parts", UploadId=upload["UploadId"], PartNumber=1, Body=b"p")
    done = s3.complete_multipart_upload(Bucket="bucket", Key="parts", UploadId=upload["UploadId"],
                                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert [answer["ServerSideEncryption"] for answer in [*answers, upload, part, done]] == ["AES256"] * 8
    assert s3.get_object(Bucket="bucket", Key="sealed")["Body"].read() == b"data"


@pytest.mark.parametrize(("arguments", "header"), [
    ({"SSECustomerAlgorithm": "AES256", "SSECustomerKey": "k" * 32},
     "x-amz-server-side-encryption-customer-algorithm"),
    ({"ServerSideEncryption": "aws:kms"}, "x-amz-server-side-encryption"),
    ({"ObjectLockLegalHoldStatus": "ON"}, "x-amz-object-lock-legal-hold"),
    ({"Tagging": "team=ml"}, "x-amz-tagging"),
    ({"StorageClass": "GLACIER"}, "x-amz-storage-class"),
])
def test_a_header_asking_for_what_the_store_does_not_keep_is_refused_by_name(
    s3: Any, store: ObjectStore, arguments: dict[str, Any], header: str
) -> None:
    status, error = error_of(lambda: s3.put_object(Bucket="bucket", Key="a.txt", Body=b"data", **arguments))
    assert (status, error["Code"], error["Header"]) == (501, "NotImplemented", header)
    assert f"not what {header} asks for" in error["Message"]
    assert store.get_bytes("s3://bucket/a.txt") == b"a.txt"


def test_acls_and_another_owner_are_refused_as_s3_refuses_them(s3: Any, store: ObjectStore) -> None:
    assert error_of(lambda: s3.put_object(Bucket="bucket", Key="a.txt", Body=b"x", ACL="public-read"))[1] == {
        "Code": "AccessControlListNotSupported", "Message": "The bucket does not allow ACLs (x-amz-acl)"}
    granted = error_of(lambda: s3.put_object(Bucket="bucket", Key="a.txt", Body=b"x", GrantRead="id=someone"))
    assert granted[1]["Code"] == "AccessControlListNotSupported"
    assert error_of(lambda: s3.put_object(
        Bucket="bucket", Key="a.txt", Body=b"x", ExpectedBucketOwner="111122223333")) == (
        403, {"Code": "AccessDenied", "Message": "Access Denied"})
    assert store.get_bytes("s3://bucket/a.txt") == b"a.txt"


def test_a_folder_object_is_kept_listed_read_and_deleted_as_s3_keeps_it(s3: Any) -> None:
    """What S3's console makes with "Create folder": an empty object whose key ends in "/"."""
    assert s3.put_object(Bucket="bucket", Key="dir/", Body=b"")["ResponseMetadata"]["HTTPStatusCode"] == 200

    rolled = s3.list_objects_v2(Bucket="bucket", Delimiter="/")
    assert [item["Prefix"] for item in rolled["CommonPrefixes"]] == ["dir/", "e/"]
    inside = s3.list_objects_v2(Bucket="bucket", Prefix="dir/", Delimiter="/")
    listed = [(item["Key"], item["Size"]) for item in inside["Contents"]]
    assert listed == [("dir/", 0), ("dir/one", 7), ("dir/z", 5)]
    assert s3.head_object(Bucket="bucket", Key="dir/")["ContentLength"] == 0
    assert s3.get_object(Bucket="bucket", Key="dir/")["Body"].read() == b""
    assert error_of(lambda: s3.head_object(Bucket="bucket", Key="dir"))[0] == 404  # another key

    s3.delete_object(Bucket="bucket", Key="dir/")
    after = s3.list_objects_v2(Bucket="bucket", Prefix="dir/", Delimiter="/")
    assert [item["Key"] for item in after["Contents"]] == ["dir/one", "dir/z"]
    assert s3.get_object(Bucket="bucket", Key="dir/sub/two")["Body"].read() == b"dir/sub/two"


@pytest.mark.parametrize("key", ["dir//double", "/leading", "dir/./dot", "dir/../up"])
def test_a_key_with_an_empty_dot_or_dot_dot_part_is_its_own_key_as_on_s3(s3: Any, key: str) -> None:
    s3.put_object(Bucket="bucket", Key=key, Body=b"unusual")

    assert s3.get_object(Bucket="bucket", Key=key)["Body"].read() == b"unusual"
    listed = s3.list_objects_v2(Bucket="bucket", Prefix=key)["Contents"]
    assert [item["Key"] for item in listed] == [key]
    assert s3.get_object(Bucket="bucket", Key="dir/one")["Body"].read() == b"dir/one"


def test_a_key_with_a_part_longer_than_a_file_name_is_kept_as_s3_keeps_it(s3: Any) -> None:
    long = "dir/" + "ü" * 300  # 600 bytes between two slashes
    s3.put_object(Bucket="bucket", Key=long, Body=b"long")
    s3.copy_object(Bucket="bucket", Key=long + "/copy", CopySource={"Bucket": "bucket", "Key": long})
    upload = s3.create_multipart_upload(Bucket="bucket", Key="p" * 1024)["UploadId"]
    part = s3.upload_part(Bucket="bucket", Key="p" * 1024, UploadId=upload, PartNumber=1, Body=b"parts")
    s3.complete_multipart_upload(Bucket="bucket", Key="p" * 1024, UploadId=upload,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})

    assert s3.get_object(Bucket="bucket", Key=long)["Body"].read() == b"long"
    assert s3.get_object(Bucket="bucket", Key=long + "/copy")["Body"].read() == b"long"
    assert s3.get_object(Bucket="bucket", Key="p" * 1024)["Body"].read() == b"parts"
    listed = s3.list_objects_v2(Bucket="bucket", Prefix="dir/", Delimiter="/")
    assert [item["Key"] for item in listed["Contents"]] == ["dir/one", "dir/z", long]
    assert [item["Prefix"] for item in listed["CommonPrefixes"]] == ["dir/sub/", long + "/"]
    status, error = error_of(lambda: s3.put_object(Bucket="bucket", Key="p" * 1025, Body=b"x"))
    assert (status, error["Code"]) == (400, "KeyTooLongError")


def test_a_key_beside_the_keys_below_it_is_kept_as_s3_keeps_both(s3: Any) -> None:
    s3.put_object(Bucket="bucket", Key="a.txt/below", Body=b"below")  # a.txt is an object already
    s3.put_object(Bucket="bucket", Key="dir", Body=b"over")  # dir/one and more are

    kept = (("a.txt", b"a.txt"), ("a.txt/below", b"below"), ("dir", b"over"), ("dir/one", b"dir/one"))
    for key, body in kept:
        assert s3.get_object(Bucket="bucket", Key=key)["Body"].read() == body
    rolled = s3.list_objects_v2(Bucket="bucket", Delimiter="/")
    assert [item["Key"] for item in rolled["Contents"]] == ["a.txt", "dir", "some key+ü"]
    assert [item["Prefix"] for item in rolled["CommonPrefixes"]] == ["a.txt/", "dir/", "e/"]


class SpyBody:
    """A body that, each time it is read, notes how much of it the store has written to disk."""

    def __init__(self, size: int, staging: Path) -> None:
        self.left = size
        self.given = 0
        self.staging = staging
        self.reads: list[tuple[int, int, int]] = []  # (size asked, bytes handed out before, bytes on disk)
        self.md5 = hashlib.md5()

    def read(self, size: int) -> bytes:
        on_disk = sum(path.stat().st_size for path in self.staging.glob("*")) if self.staging.is_dir() else 0
        self.reads.append((size, self.given, on_disk))
        chunk = bytes([len(self.reads) % 256]) * min(size, self.left)
        self.left -= len(chunk)
        self.given += len(chunk)
        self.md5.update(chunk)
        return chunk


def test_a_large_body_goes_to_disk_a_chunk_at_a_time(backend: LocalSageMaker, store: ObjectStore) -> None:
    size = 24 * CHUNK_BYTES + 12345
    body = SpyBody(size, store.root / ".tmp")
    put = backend.operation("S3", "PutObject")
    assert put is not None
    answer = put({"Bucket": "bucket", "Key": "big.bin", "Body": body})
    assert answer["ETag"] == f'"{body.md5.hexdigest()}"'
    assert all(asked <= CHUNK_BYTES for asked, _, _ in body.reads)
    assert len(body.reads) >= size // CHUNK_BYTES
    # whatever was handed out before a read was on disk by then: the body is never held whole
    assert [on_disk for _, _, on_disk in body.reads] == [given for _, given, _ in body.reads]
    assert store.describe("s3://bucket/big.bin").size == size


def test_a_put_body_is_read_to_its_declared_length_and_framing_s3_lacks_is_refused() -> None:
    told: list[str] = []
    headers = inprocess.HTTPHeaders({"Content-Length": "10", "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    cut = RequestBody.of(headers, io.BytesIO(b"short"), lambda: told.append("go on"))
    assert told == []  # no "100 Continue" before the operation reads
    with pytest.raises(ServiceError) as short:
        cut.read(CHUNK_BYTES)
    assert (short.value.code, told, cut.complete) == ("IncompleteBody", ["go on"], False)
    whole = RequestBody.of(headers, io.BytesIO(b"0123456789 and the next request"), lambda: None)
    assert (whole.read(CHUNK_BYTES), whole.read(CHUNK_BYTES), whole.complete) == (b"0123456789", b"", True)
    for framing, code in [
        ({"Content-Length": str(MAX_PUT_BYTES + 1)}, "EntityTooLarge"),
        ({}, "MissingContentLength"),
        ({"Transfer-Encoding": "chunked"}, "NotImplemented"),
        ({"Content-Length": "5", "Content-Encoding": "aws-chunked"}, "NotImplemented"),
        ({"Content-Length": "5", "X-Amz-Content-SHA256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER"},
         "NotImplemented"),
    ]:
        with pytest.raises(ServiceError) as refused:
            RequestBody.of(inprocess.HTTPHeaders(framing), io.BytesIO(b"12345"), lambda: None)
        assert refused.value.code == code


# --- what S3 keeps with a version: headers, user metadata, its ETag -----------------------------------

KEPT = {"ContentType": "text/csv", "ContentEncoding": "gzip", "ContentLanguage": "en",
        "ContentDisposition": 'attachment; filename="a.csv"', "CacheControl": "max-age=60"}


def md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def test_headers_and_user_metadata_are_kept_with_each_version(s3: Any) -> None:
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    first = s3.put_object(Bucket="bucket", Key="kept.csv", Body=b"a,b\n", Expires=expires,
                          Metadata={"Origin": "laptop", "run": "7"}, **KEPT)["VersionId"]
    second = s3.put_object(Bucket="bucket", Key="kept.csv", Body=b"{}", ContentType="application/json")
    current = s3.get_object(Bucket="bucket", Key="kept.csv")
    assert (current["ContentType"], current["Metadata"], current["VersionId"]) == (
        "application/json", {}, second["VersionId"])
    assert not {"ContentEncoding", "CacheControl", "Expires"} & set(current)
    for older in (s3.get_object(Bucket="bucket", Key="kept.csv", VersionId=first),
                  s3.head_object(Bucket="bucket", Key="kept.csv", VersionId=first)):
        assert {name: older[name] for name in KEPT} == KEPT
        assert (older["Expires"], older["Metadata"]) == (expires, {"origin": "laptop", "run": "7"})


def test_response_parameters_override_the_headers_kept(s3: Any) -> None:
    s3.put_object(Bucket="bucket", Key="kept.csv", Body=b"a,b\n", **KEPT)
    later = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    for call in (s3.get_object, s3.head_object):
        answer = call(Bucket="bucket", Key="kept.csv", ResponseContentType="text/plain",
                      ResponseCacheControl="no-cache", ResponseExpires=later)
        assert (answer["ContentType"], answer["CacheControl"], answer["Expires"]) == (
            "text/plain", "no-cache", later)
        assert answer["ContentEncoding"] == "gzip"


def test_the_servers_own_objects_are_binary_octet_stream(s3: Any, store: ObjectStore, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "model.tar.gz").write_bytes(b"model")
    store.upload_dir(tmp_path / "out", "s3://bucket/job/output")
    for key in ("a.txt", "job/output/model.tar.gz"):
        head = s3.head_object(Bucket="bucket", Key=key)
        assert (head["ContentType"], head["Metadata"]) == ("binary/octet-stream", {})


def test_user_metadata_over_2_kb_is_refused_as_s3_refuses_it(s3: Any, store: ObjectStore) -> None:
    s3.put_object(Bucket="bucket", Key="full", Body=b"x", Metadata={"k": "v" * 2045, "ab": ""})
    assert s3.head_object(Bucket="bucket", Key="full")["Metadata"] == {"k": "v" * 2045, "ab": ""}
    status, error = error_of(lambda: s3.put_object(
        Bucket="bucket", Key="a.txt", Body=b"x", Metadata={"k": "v" * 2045, "ab": "!"}))
    assert (status, error["Code"], error["Size"], error["MaxSizeAllowed"]) == (
        400, "MetadataTooLarge", "2049", "2048")
    assert store.get_bytes("s3://bucket/a.txt") == b"a.txt"
    assert len(store.versions("s3://bucket/a.txt")) == 1


def test_the_etag_is_kept_at_write_time_not_hashed_on_read(
    s3: Any, store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put = s3.put_object(Bucket="bucket", Key="put.bin", Body=b"through the API")
    (tmp_path / "file.bin").write_bytes(b"from a job")
    store.put_file("s3://bucket/file.bin", tmp_path / "file.bin")
    monkeypatch.setattr(objects, "file_etag", lambda path: pytest.fail(f"{path} hashed on read"))
    assert put["ETag"] == md5_etag(b"through the API")
    for key, data in (("put.bin", b"through the API"), ("file.bin", b"from a job"), ("a.txt", b"a.txt")):
        listed = s3.list_objects_v2(Bucket="bucket", Prefix=key)["Contents"]
        read = (s3.get_object(Bucket="bucket", Key=key), s3.head_object(Bucket="bucket", Key=key))
        etags = {item["ETag"] for item in (*read, *listed)}
        assert etags == {md5_etag(data)}


def test_an_object_stored_without_a_record_is_served_and_its_etag_kept(s3: Any, store: ObjectStore) -> None:
    version = store.versions("s3://bucket/a.txt")[-1]
    record = record_path(store.describe("s3://bucket/a.txt").path)
    record.unlink()  # as every version was stored before records were kept
    got = s3.get_object(Bucket="bucket", Key="a.txt")
    assert (got["Body"].read(), got["ETag"], got["VersionId"]) == (b"a.txt", md5_etag(b"a.txt"), version)
    assert (got["ContentType"], got["Metadata"]) == ("binary/octet-stream", {})
    assert json.loads(record.read_text())["ETag"] == md5_etag(b"a.txt")  # computed once, now kept


def test_an_object_written_in_place_has_its_etag_computed_on_each_read(s3: Any, store: ObjectStore) -> None:
    path = store.path_for("s3://bucket/capture/records.jsonl")  # as data capture appends to its file
    path.parent.mkdir(parents=True)
    path.write_bytes(b"{}\n")
    first = s3.head_object(Bucket="bucket", Key="capture/records.jsonl")
    with path.open("ab") as handle:
        handle.write(b"{}\n")
    second = s3.get_object(Bucket="bucket", Key="capture/records.jsonl")
    assert (first["ETag"], first["VersionId"]) == (md5_etag(b"{}\n"), "null")
    assert (second["Body"].read(), second["ETag"]) == (b"{}\n{}\n", md5_etag(b"{}\n{}\n"))


def test_a_get_sends_the_object_a_chunk_at_a_time(backend: LocalSageMaker, store: ObjectStore) -> None:
    data = bytes(range(256)) * (20 * CHUNK_BYTES // 256) + b"tail"
    store.put_bytes("s3://bucket/big.bin", data)
    get = backend.operation("S3", "GetObject")
    assert get is not None
    chunks = iter(get({"Bucket": "bucket", "Key": "big.bin"})["Body"])
    sizes = [len(next(chunks))]
    with store.describe("s3://bucket/big.bin").path.open("r+b") as stored:  # the version's own file
        stored.seek(len(data) - 4)
        stored.write(b"TAIL")  # changed after the first chunk went: only a body read as it is sent sees it
    rest = list(chunks)
    sizes += [len(chunk) for chunk in rest]
    assert rest[-1].endswith(b"TAIL") and b"".join(rest)[:-4] == data[CHUNK_BYTES:-4]
    assert max(sizes) == CHUNK_BYTES and len(sizes) == 21
    around = f"bytes={CHUNK_BYTES - 2}-{CHUNK_BYTES + 1}"  # across the first chunk's end
    ranged = get({"Bucket": "bucket", "Key": "big.bin", "Range": around})
    assert (b"".join(ranged["Body"]), ranged["ContentLength"]) == (data[CHUNK_BYTES - 2:CHUNK_BYTES + 2], 4)


# --- the CLI's storage over the local S3 ----------------------------------------------------------------


def test_the_clis_storage_reads_and_writes_through_the_local_s3(
    s3: Any, store: ObjectStore, tmp_path: Path
) -> None:
    storage = S3Storage(s3)
    storage.put_bytes("s3://bucket/data-capture/ep-canary/AllTraffic/a.jsonl", b"{}")
    assert not storage.has_objects("s3://bucket/data-capture/ep")
    assert not storage.has_objects("s3://bucket/data-capture/ep/")
    storage.put_bytes("s3://bucket/data-capture/ep/AllTraffic/2026/b.jsonl", b"{}")
    assert storage.has_objects("s3://bucket/data-capture/ep") and storage.has_objects("s3://bucket/data-capture/ep/")
    assert storage.exists("s3://bucket/a.txt") and not storage.exists("s3://bucket/missing")
    (tmp_path / "data").mkdir()
    for name in ("train.csv", "test.csv"):
        (tmp_path / "data" / name).write_text("review_text,sentiment\ngood,1\n")
    dataset = upload_data(storage, tmp_path / "data", "s3://bucket/project/data")
    assert dataset.files["train.csv"]["version_id"] == store.versions(f"{dataset.uri}/train.csv")[-1]
    assert storage.get_bytes(f"{dataset.uri}/test.csv") == b"review_text,sentiment\ngood,1\n"


def test_a_dataset_file_larger_than_a_part_goes_up_in_parts_and_keeps_its_version_id(
    s3: Any, store: ObjectStore, tmp_path: Path
) -> None:
    part = 5 * 1024 * 1024  # S3's smallest part but the last
    (tmp_path / "data").mkdir()
    train = b"review_text,sentiment\n" + b"a good product,1\n" * (2 * part // 17 + 5)
    (tmp_path / "data" / "train.csv").write_bytes(train)
    (tmp_path / "data" / "test.csv").write_bytes(b"review_text,sentiment\nfine,1\n")
    dataset = upload_data(S3Storage(s3, part_bytes=part), tmp_path / "data", "s3://bucket/project/data")
    stored = store.describe(f"{dataset.uri}/train.csv")
    assert stored.version_id == dataset.files["train.csv"]["version_id"]
    assert stored.parts == (part, part, len(train) - 2 * part)
    assert stored.etag.endswith('-3"') and store.get_bytes(f"{dataset.uri}/train.csv") == train
    assert dataset.files["train.csv"]["sha256"] == hashlib.sha256(train).hexdigest()
    assert "Uploads" not in s3.list_multipart_uploads(Bucket="bucket")


def test_a_failed_part_aborts_the_upload(s3: Any, store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(b"x" * (5 * 1024 * 1024 + 1))
    storage = S3Storage(s3, part_bytes=5 * 1024 * 1024)
    with pytest.raises(ClientError):
        storage.put_file("s3://nobucket/big.bin", source)  # refused at creation: nothing to abort
    real_upload_part = s3.upload_part
    s3.upload_part = lambda **kwargs: (_ for _ in ()).throw(ConnectionError("link down"))
    try:
        with pytest.raises(ConnectionError):
            storage.put_file("s3://bucket/big.bin", source)
    finally:
        s3.upload_part = real_upload_part
    assert "Uploads" not in s3.list_multipart_uploads(Bucket="bucket") and not store.exists("s3://bucket/big.bin")


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


def _http_date(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@pytest.mark.parametrize("read", ["get_object", "head_object"])
def test_conditional_reads_answer_412_or_304_with_s3s_precedence(s3: Any, read: str) -> None:
    head = s3.head_object(Bucket="bucket", Key="a.txt")
    etag, modified = head["ETag"], head["LastModified"]
    earlier, later = _http_date(modified.timestamp() - 60), _http_date(int(time.time()))  # not yet now
    call = getattr(s3, read)

    def status(**conditions: Any) -> int:
        try:
            return call(Bucket="bucket", Key="a.txt", **conditions)["ResponseMetadata"]["HTTPStatusCode"]
        except ClientError as error:
            return error.response["ResponseMetadata"]["HTTPStatusCode"]

    assert status(IfMatch=etag) == status(IfMatch=etag.strip('"')) == status(IfMatch="*") == 200
    assert status(IfMatch='"0123"') == status(IfUnmodifiedSince=earlier) == 412
    assert status(IfUnmodifiedSince=later) == status(IfUnmodifiedSince=modified) == 200
    assert status(IfNoneMatch=etag) == status(IfModifiedSince=later) == 304
    assert status(IfModifiedSince=modified) == 304
    assert status(IfNoneMatch='"0123"') == status(IfModifiedSince=earlier) == 200
    assert status(IfMatch=etag, IfUnmodifiedSince=earlier) == 200  # If-Match true wins
    assert status(IfNoneMatch=etag, IfModifiedSince=earlier) == 304  # If-None-Match false wins
    assert status(IfNoneMatch='"0123"', IfModifiedSince=later) == 200
    assert status(IfMatch='"0123"', IfNoneMatch=etag) == 412  # a 412 before a 304, as HTTP orders them
    # A date later than the server's time is no valid date (RFC 2616, 14.25): S3 sends the object.
    assert status(IfModifiedSince=_http_date(time.time() + 86400)) == 200


def test_a_copy_source_if_modified_since_later_than_now_is_ignored_as_s3_ignores_it(s3: Any) -> None:
    future = _http_date(time.time() + 86400)
    copied = s3.copy_object(Bucket="bucket", Key="copy", CopySource="bucket/a.txt",
                            CopySourceIfModifiedSince=future)
    assert copied["CopySourceVersionId"]
    assert s3.get_object(Bucket="bucket", Key="copy")["Body"].read() == b"a.txt"


def test_a_412_is_s3s_error_and_a_304_has_no_body_but_says_which_version(s3: Any) -> None:
    head = s3.head_object(Bucket="bucket", Key="dir/one")
    assert error_of(lambda: s3.get_object(Bucket="bucket", Key="dir/one", IfMatch='"0123"')) == (
        412, {"Code": "PreconditionFailed", "Condition": "If-Match",
              "Message": "At least one of the pre-conditions you specified did not hold"})
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket="bucket", Key="dir/one", IfNoneMatch=head["ETag"])
    headers = raised.value.response["ResponseMetadata"]["HTTPHeaders"]
    # botocore names an error from its status alone when the answer has no XML document to read
    assert raised.value.response["Error"] == {"Code": "304", "Message": "Not Modified"}
    assert (headers["etag"], "x-amz-version-id" in headers) == (head["ETag"], False)
    assert headers["last-modified"] == head["ResponseMetadata"]["HTTPHeaders"]["last-modified"]
    assert error_of(lambda: s3.get_object(Bucket="bucket", Key="missing", IfMatch='"0123"'))[0] == 404


def test_part_one_is_the_whole_object_and_no_other_part_exists(s3: Any) -> None:
    for read in (s3.get_object, s3.head_object):
        part = read(Bucket="bucket", Key="dir/one", PartNumber=1)
        assert (part["ResponseMetadata"]["HTTPStatusCode"], part["ContentRange"]) == (206, "bytes 0-6/7")
        assert "PartsCount" not in part  # S3 counts parts only of an object uploaded in parts
    assert s3.get_object(Bucket="bucket", Key="dir/one", PartNumber=1)["Body"].read() == b"dir/one"
    assert error_of(lambda: s3.get_object(Bucket="bucket", Key="dir/one", PartNumber=2)) == (
        416, {"Code": "InvalidPartNumber", "Message": "The requested partnumber is not satisfiable",
              "PartNumberRequested": "2", "ActualPartCount": "1"})
    both = {"Bucket": "bucket", "Key": "dir/one", "PartNumber": 1, "Range": "bytes=0-1"}
    message = "Cannot specify both Range header and partNumber query parameter"
    assert error_of(lambda: s3.get_object(**both)) == (400, {"Code": "InvalidRequest", "Message": message})


def test_checksum_mode_answers_the_checksum_the_object_was_put_with(s3: Any) -> None:
    s3.put_object(Bucket="bucket", Key="summed", Body=b"checked bytes", ChecksumAlgorithm="SHA256")
    sha256 = base64.b64encode(hashlib.sha256(b"checked bytes").digest()).decode()
    for read in (s3.get_object, s3.head_object):
        enabled = read(Bucket="bucket", Key="summed", ChecksumMode="ENABLED")
        assert (enabled["ChecksumSHA256"], enabled["ChecksumType"]) == (sha256, "FULL_OBJECT")
    ranged = s3.get_object(Bucket="bucket", Key="summed", ChecksumMode="ENABLED", Range="bytes=0-6")
    assert (ranged["Body"].read(), "ChecksumSHA256" in ranged) == (b"checked", False)
    unsummed = s3.get_object(Bucket="bucket", Key="a.txt", ChecksumMode="ENABLED")  # the server's own
    assert not [name for name in unsummed if name.startswith("Checksum")]


def test_a_server_that_starts_again_serves_each_key_s_current_version_to_jobs(
    service: LocalSageMaker, s3: Any, tmp_path: Path
) -> None:
    s3.put_object(Bucket="bucket", Key="data/train.csv", Body=b"old")
    s3.put_object(Bucket="bucket", Key="data/train.csv", Body=b"new")
    live = service.context.store.path_for("s3://bucket/data/train.csv")
    live.unlink()
    live.write_bytes(b"old")  # a crash between the write's two renames left the live file behind
    service.shutdown()

    again = LocalSageMaker(tmp_path / "state", "us-east-1", "http://127.0.0.1:1")
    try:
        assert again.context.store.path_for("s3://bucket/data/train.csv").read_bytes() == b"new"
    finally:
        again.shutdown()
