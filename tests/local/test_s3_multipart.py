"""S3's multipart uploads over the local object store, through boto3's own S3 client (in-process):
boto3's managed upload of a large file, S3's ETag and composite and whole-object checksums, parts
read back by number, and S3's refusals (part numbers, order, sizes, ETags, checksums, unknown uploads)
with nothing stored; ListParts and ListMultipartUploads paging; an upload outliving the service."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from buckets import with_buckets

from pipelines.local.api.protocol import Dispatcher
from pipelines.local.errors import ServiceError
from pipelines.local.service.backend import LocalSageMaker
from pipelines.local.storage import uploads
from pipelines.local.storage.objects import ObjectStore
from pipelines.local.storage.uploads import PartReplaced, UploadGone

from . import inprocess
from .s3_support import HeldBody, b64, crc, error_of

MIB = 1024 * 1024
PART = 5 * MIB  # S3's smallest part but the last


def crc32(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


# Each algorithm a test sums parts with, computed here: botocore computes CRC32C and CRC64NVME only
# with the CRT, so every part is sent with its checksum, as a client that sums its own parts sends it.
SUMS = {
    "CRC32": crc32,
    "SHA256": lambda data: hashlib.sha256(data).digest(),
    "CRC32C": partial(crc, "CRC32C"),
    "CRC64NVME": partial(crc, "CRC64NVME"),
}


def s3_etag(parts: list[bytes]) -> str:
    """S3's ETag of an object completed from `parts`: the MD5 of their MD5s, and their count."""
    md5s = b"".join(hashlib.md5(part).digest() for part in parts)
    return f'"{hashlib.md5(md5s).hexdigest()}-{len(parts)}"'


def upload_parts(s3: Any, key: str, parts: list[bytes], **create: Any) -> tuple[str, list[dict[str, Any]]]:
    """Create an upload and send `parts` as parts 1..n; (upload id, what a completion lists)."""
    upload_id = s3.create_multipart_upload(Bucket="bucket", Key=key, **create)["UploadId"]
    algorithm = create.get("ChecksumAlgorithm")
    listed = []
    for number, data in enumerate(parts, start=1):
        summed = {f"Checksum{algorithm}": b64(SUMS[algorithm](data))} if algorithm else {}
        sent = s3.upload_part(
            Bucket="bucket", Key=key, UploadId=upload_id, PartNumber=number, Body=data, **summed
        )
        checksum = {name: value for name, value in sent.items() if name.startswith("Checksum")}
        listed.append({"PartNumber": number, "ETag": sent["ETag"], **checksum})
    return upload_id, listed


def complete(s3: Any, key: str, upload_id: str, listed: list[dict[str, Any]], **extra: Any) -> Any:
    return s3.complete_multipart_upload(
        Bucket="bucket", Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed}, **extra
    )


def test_a_managed_upload_of_a_large_file_arrives_whole_with_s3s_etag_and_checksum(
    s3: Any, store: ObjectStore, tmp_path: Path
) -> None:
    data = os.urandom(2 * PART + 12345)
    source = tmp_path / "reviews.csv"
    source.write_bytes(data)
    config = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=3)
    s3.upload_file(str(source), "bucket", "data/reviews.csv", Config=config)  # boto3's own parts
    parts = [data[:PART], data[PART : 2 * PART], data[2 * PART :]]
    head = s3.head_object(Bucket="bucket", Key="data/reviews.csv", ChecksumMode="ENABLED")
    composite = b64(crc32(b"".join(crc32(part) for part in parts)))
    assert (head["ContentLength"], head["ETag"]) == (len(data), s3_etag(parts))
    assert (head["ChecksumCRC32"], head["ChecksumType"]) == (f"{composite}-3", "COMPOSITE")
    assert store.get_bytes("s3://bucket/data/reviews.csv") == data
    assert s3.get_object(Bucket="bucket", Key="data/reviews.csv")["Body"].read() == data
    kept = [path.name for path in store.uploads.root.rglob("*") if path.is_file()]
    assert kept == ["completed.json"]  # no part is left behind, only what the completion answered


def test_a_part_is_read_back_by_its_number(s3: Any) -> None:
    parts = [b"a" * PART, b"b" * PART, b"tail"]
    complete(s3, "parted", *upload_parts(s3, "parted", parts))
    for read in (s3.get_object, s3.head_object):
        second = read(Bucket="bucket", Key="parted", PartNumber=2)
        span = f"bytes {PART}-{2 * PART - 1}/{2 * PART + 4}"
        assert (second["ContentRange"], second["PartsCount"]) == (span, 3)
    assert s3.get_object(Bucket="bucket", Key="parted", PartNumber=3)["Body"].read() == b"tail"
    assert error_of(lambda: s3.get_object(Bucket="bucket", Key="parted", PartNumber=4)) == (
        416, {"Code": "InvalidPartNumber", "Message": "The requested partnumber is not satisfiable",
              "PartNumberRequested": "4", "ActualPartCount": "3"})


def test_headers_and_metadata_given_at_creation_are_the_objects(s3: Any) -> None:
    upload_id, listed = upload_parts(
        s3, "typed", [b"x"], ContentType="text/csv", Metadata={"Source": "reviews"}
    )
    assert complete(s3, "typed", upload_id, listed)["ETag"] == s3_etag([b"x"])
    head = s3.head_object(Bucket="bucket", Key="typed")
    assert (head["ContentType"], head["Metadata"]) == ("text/csv", {"source": "reviews"})


def test_a_part_sent_again_replaces_the_earlier_one(s3: Any) -> None:
    upload_id, _ = upload_parts(s3, "again", [b"first"])
    sent = s3.upload_part(Bucket="bucket", Key="again", UploadId=upload_id, PartNumber=1, Body=b"second")
    complete(s3, "again", upload_id, [{"PartNumber": 1, "ETag": sent["ETag"]}])
    assert s3.get_object(Bucket="bucket", Key="again")["Body"].read() == b"second"


@pytest.mark.parametrize(("algorithm", "created"), [
    ("CRC32", {"ChecksumType": "FULL_OBJECT"}),
    ("CRC64NVME", {}),  # the AWS CLI v2's default: FULL_OBJECT is its only type, so its default
])
def test_a_full_object_checksum_is_the_checksum_of_the_whole_object_and_is_checked(
    s3: Any, store: ObjectStore, algorithm: str, created: dict[str, str]
) -> None:
    parts = [b"p" * PART, b"q" * 10]
    member, whole = f"Checksum{algorithm}", b64(SUMS[algorithm](b"".join(parts)))
    upload_id, listed = upload_parts(s3, "whole", parts, ChecksumAlgorithm=algorithm, **created)
    wrong = {member: b64(SUMS[algorithm](b"something else"))}
    assert error_of(lambda: complete(s3, "whole", upload_id, listed, **wrong)) == (
        400, {"Code": "BadDigest",
              "Message": f"The {algorithm} you specified did not match the calculated checksum."})
    assert not store.exists("s3://bucket/whole")
    answer = complete(s3, "whole", upload_id, listed, **{member: whole}, ChecksumType="FULL_OBJECT")
    assert (answer[member], answer["ChecksumType"]) == (whole, "FULL_OBJECT")
    head = s3.head_object(Bucket="bucket", Key="whole", ChecksumMode="ENABLED")
    assert (head[member], head["ChecksumType"]) == (whole, "FULL_OBJECT")
    enabled = s3.get_object(Bucket="bucket", Key="whole", ChecksumMode="ENABLED")  # botocore checks CRC32
    assert enabled["Body"].read() == b"".join(parts)


@pytest.mark.parametrize("algorithm", ["SHA256", "CRC32C"])
def test_a_composite_checksum_is_the_checksum_of_the_parts_checksums(s3: Any, algorithm: str) -> None:
    parts = [b"s" * PART, b"t"]
    answer = complete(s3, "sums", *upload_parts(s3, "sums", parts, ChecksumAlgorithm=algorithm))
    composite = b64(SUMS[algorithm](b"".join(SUMS[algorithm](part) for part in parts)))
    assert (answer[f"Checksum{algorithm}"], answer["ChecksumType"]) == (f"{composite}-2", "COMPOSITE")


def test_a_completion_s3_refuses_stores_nothing_and_leaves_the_upload_to_complete(
    s3: Any, store: ObjectStore
) -> None:
    upload_id, listed = upload_parts(s3, "checked", [b"1" * PART, b"2" * 100, b"3" * 100])
    small = error_of(lambda: complete(s3, "checked", upload_id, listed))
    assert small == (400, {
        "Code": "EntityTooSmall",
        "Message": "Your proposed upload is smaller than the minimum allowed object size.",
        "ProposedSize": "100", "MinSizeAllowed": str(PART), "PartNumber": "2",
        "ETag": listed[1]["ETag"].strip('"')})
    assert error_of(lambda: complete(s3, "checked", upload_id, [listed[1], listed[0]]))[1]["Code"] == (
        "InvalidPartOrder")
    forged = {**listed[0], "ETag": '"00000000000000000000000000000000"'}
    assert error_of(lambda: complete(s3, "checked", upload_id, [forged]))[1]["Code"] == "InvalidPart"
    never_sent = {"PartNumber": 9, "ETag": listed[0]["ETag"]}
    missing = error_of(lambda: complete(s3, "checked", upload_id, [listed[0], never_sent]))
    assert (missing[1]["Code"], missing[1]["Message"]) == ("InvalidPart", (  # two spaces, as S3's has
        "One or more of the specified parts could not be found.  The part may not have been uploaded, or "
        "the specified entity tag may not match the part's entity tag."))
    unnamed = {"PartNumber": listed[0]["PartNumber"]}  # no ETag: not S3's schema
    assert error_of(lambda: complete(s3, "checked", upload_id, [unnamed]))[1]["Code"] == "MalformedXML"
    sized = error_of(lambda: complete(s3, "checked", upload_id, listed[:1], MpuObjectSize=1))
    assert sized[1]["Code"] == "InvalidRequest"
    assert not store.exists("s3://bucket/checked")
    assert complete(s3, "checked", upload_id, listed[:1])["ETag"] == s3_etag([b"1" * PART])
    assert store.get_bytes("s3://bucket/checked") == b"1" * PART  # parts not listed are dropped


@pytest.mark.parametrize(("created", "completed", "mode"), [
    ({"ChecksumAlgorithm": "CRC32"}, "FULL_OBJECT", "COMPOSITE"),
    ({"ChecksumAlgorithm": "CRC32", "ChecksumType": "FULL_OBJECT"}, "COMPOSITE", "FULL_OBJECT"),
    ({}, "COMPOSITE", "null"),
])
def test_a_completion_must_name_the_checksum_type_its_upload_was_created_with(
    s3: Any, store: ObjectStore, created: dict[str, str], completed: str, mode: str
) -> None:
    upload_id, listed = upload_parts(s3, "typed", [b"a"], **created)

    refused = error_of(lambda: complete(s3, "typed", upload_id, listed, ChecksumType=completed))

    assert refused == (400, {"Code": "InvalidRequest", "Message": (
        f"The upload was created using the {mode} checksum mode. The complete request must use the same "
        "checksum mode.")})
    assert not store.exists("s3://bucket/typed")


def test_a_composite_upload_needs_every_parts_checksum(s3: Any) -> None:
    upload_id, listed = upload_parts(s3, "summed", [b"a"], ChecksumAlgorithm="CRC32")
    unsummed = [{"PartNumber": 1, "ETag": listed[0]["ETag"]}]
    assert error_of(lambda: complete(s3, "summed", upload_id, unsummed)) == (400, {
        "Code": "InvalidRequest",
        "Message": "The upload was created using a crc32 checksum. The complete request must include the "
                   "checksum for each part. It was missing for part 1 in the request."})
    forged = [{**listed[0], "ChecksumCRC32": b64(crc32(b"b"))}]
    assert error_of(lambda: complete(s3, "summed", upload_id, forged))[1]["Code"] == "InvalidPart"
    other_type = {"Bucket": "bucket", "Key": "summed", "UploadId": upload_id, "PartNumber": 2, "Body": b"c"}
    assert error_of(lambda: s3.upload_part(**other_type, ChecksumAlgorithm="SHA256")) == (400, {
        "Code": "InvalidRequest",
        "Message": "Checksum Type mismatch occurred, expected checksum Type: crc32, actual checksum "
                   "Type: sha256"})


def test_a_part_whose_digest_does_not_match_is_refused_and_the_earlier_part_stays(s3: Any) -> None:
    upload_id, listed = upload_parts(s3, "digest", [b"kept"])
    wrong_md5 = b64(hashlib.md5(b"other").digest())
    resend = {"Bucket": "bucket", "Key": "digest", "UploadId": upload_id, "PartNumber": 1, "Body": b"new"}
    assert error_of(lambda: s3.upload_part(**resend, ContentMD5=wrong_md5))[1]["Code"] == "BadDigest"
    complete(s3, "digest", upload_id, listed)
    assert s3.get_object(Bucket="bucket", Key="digest")["Body"].read() == b"kept"


@pytest.mark.parametrize("number", [0, 10_001])
def test_part_numbers_are_1_to_10000(s3: Any, number: int) -> None:
    upload_id = s3.create_multipart_upload(Bucket="bucket", Key="k")["UploadId"]
    call = {"Bucket": "bucket", "Key": "k", "UploadId": upload_id, "PartNumber": number, "Body": b"x"}
    assert error_of(lambda: s3.upload_part(**call)) == (400, {
        "Code": "InvalidArgument", "Message": "Part number must be an integer between 1 and 10000, inclusive",
        "ArgumentName": "partNumber", "ArgumentValue": str(number)})


def test_an_aborted_or_completed_or_unknown_upload_is_no_such_upload(s3: Any, store: ObjectStore) -> None:
    upload_id, listed = upload_parts(s3, "gone", [b"x"])
    assert s3.abort_multipart_upload(Bucket="bucket", Key="gone", UploadId=upload_id)[
        "ResponseMetadata"]["HTTPStatusCode"] == 204
    for call in (
        lambda: complete(s3, "gone", upload_id, listed),
        lambda: s3.upload_part(Bucket="bucket", Key="gone", UploadId=upload_id, PartNumber=1, Body=b"x"),
        lambda: s3.abort_multipart_upload(Bucket="bucket", Key="gone", UploadId=upload_id),
        lambda: s3.list_parts(Bucket="bucket", Key="gone", UploadId="../../../etc"),
    ):
        status, error = error_of(call)
        assert (status, error["Code"]) == (404, "NoSuchUpload")
    assert not store.exists("s3://bucket/gone")
    other_id, other = upload_parts(s3, "one-key", [b"y"])
    assert error_of(lambda: complete(s3, "another-key", other_id, other))[1]["Code"] == "NoSuchUpload"
    no_bucket = error_of(lambda: s3.create_multipart_upload(Bucket="nobucket", Key="k"))
    assert no_bucket[1]["Code"] == "NoSuchBucket"


def test_what_the_store_does_not_keep_is_refused_at_creation(s3: Any) -> None:
    tagged = error_of(lambda: s3.create_multipart_upload(Bucket="bucket", Key="k", Tagging="a=b"))
    assert (tagged[0], tagged[1]["Code"], tagged[1]["Header"]) == (501, "NotImplemented", "x-amz-tagging")
    xxhash = {"Bucket": "bucket", "Key": "k", "ChecksumAlgorithm": "XXHASH64"}
    assert error_of(lambda: s3.create_multipart_upload(**xxhash))[1]["Code"] == "NotImplemented"
    crc64_parts = {**xxhash, "ChecksumAlgorithm": "CRC64NVME", "ChecksumType": "COMPOSITE"}
    assert error_of(lambda: s3.create_multipart_upload(**crc64_parts)) == (400, {
        "Code": "InvalidRequest",
        "Message": "The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm."})
    sha_whole = {"Bucket": "bucket", "Key": "k", "ChecksumAlgorithm": "SHA256", "ChecksumType": "FULL_OBJECT"}
    assert error_of(lambda: s3.create_multipart_upload(**sha_whole)) == (400, {
        "Code": "InvalidRequest",
        "Message": "The FULL_OBJECT checksum type cannot be used with the sha256 checksum algorithm."})
    unstorable = error_of(lambda: s3.create_multipart_upload(Bucket="bucket", Key="a/.key-part-empty"))
    assert unstorable[1]["Code"] == "InvalidArgument"


def test_list_parts_pages_by_part_number(s3: Any) -> None:
    upload_id, listed = upload_parts(s3, "listed", [b"1", b"22", b"333"], ChecksumAlgorithm="CRC32")
    first = s3.list_parts(Bucket="bucket", Key="listed", UploadId=upload_id, MaxParts=2)
    assert [(part["PartNumber"], part["Size"]) for part in first["Parts"]] == [(1, 1), (2, 2)]
    assert (first["IsTruncated"], first["NextPartNumberMarker"]) == (True, 2)
    assert first["ChecksumAlgorithm"] == "CRC32"
    assert first["Parts"][1]["ChecksumCRC32"] == listed[1]["ChecksumCRC32"]
    rest = s3.list_parts(Bucket="bucket", Key="listed", UploadId=upload_id, PartNumberMarker=2)
    assert ([part["PartNumber"] for part in rest["Parts"]], rest["IsTruncated"]) == ([3], False)
    paged = s3.get_paginator("list_parts").paginate(
        Bucket="bucket", Key="listed", UploadId=upload_id, PaginationConfig={"PageSize": 1}
    )
    assert [part["ETag"] for page in paged for part in page["Parts"]] == [item["ETag"] for item in listed]


def test_list_multipart_uploads_pages_by_key_and_upload_and_rolls_up_prefixes(s3: Any) -> None:
    made = [(key, s3.create_multipart_upload(Bucket="bucket", Key=key)["UploadId"])
            for key in ("a", "b", "b", "dir/x", "dir/y", "z")]
    paged = s3.get_paginator("list_multipart_uploads").paginate(
        Bucket="bucket", PaginationConfig={"PageSize": 2}
    )
    assert [(u["Key"], u["UploadId"]) for page in paged for u in page.get("Uploads", [])] == made
    rolled = s3.list_multipart_uploads(Bucket="bucket", Delimiter="/")
    assert [u["Key"] for u in rolled["Uploads"]] == ["a", "b", "b", "z"]
    assert rolled["CommonPrefixes"] == [{"Prefix": "dir/"}]
    under = s3.list_multipart_uploads(Bucket="bucket", Prefix="dir/", MaxUploads=1)
    assert ([u["Key"] for u in under["Uploads"]], under["IsTruncated"], under["NextKeyMarker"]) == (
        ["dir/x"], True, "dir/x")
    s3.abort_multipart_upload(Bucket="bucket", Key="a", UploadId=made[0][1])
    assert s3.list_multipart_uploads(Bucket="bucket")["Uploads"][0]["Key"] == "b"


def test_an_upload_in_progress_outlives_the_service(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = LocalSageMaker(state, "us-east-1", "http://127.0.0.1:1")
    with_buckets(first.context.store, "bucket")
    upload_id, listed = upload_parts(inprocess.client(Dispatcher(first, True), "s3"), "kept", [b"a" * PART])
    first.shutdown()
    second = LocalSageMaker(state, "us-east-1", "http://127.0.0.1:1")
    try:
        s3 = inprocess.client(Dispatcher(second, True), "s3")
        last = s3.upload_part(Bucket="bucket", Key="kept", UploadId=upload_id, PartNumber=2, Body=b"b")
        complete(s3, "kept", upload_id, [*listed, {"PartNumber": 2, "ETag": last["ETag"]}])
        assert s3.get_object(Bucket="bucket", Key="kept")["Body"].read() == b"a" * PART + b"b"
    finally:
        second.shutdown()


def test_a_deleted_bucket_takes_its_uploads_in_progress_with_it(s3: Any, store: ObjectStore) -> None:
    s3.create_bucket(Bucket="short-lived")
    upload_id = s3.create_multipart_upload(Bucket="short-lived", Key="k")["UploadId"]
    s3.delete_bucket(Bucket="short-lived")
    assert store.uploads.get(upload_id) is None
    s3.create_bucket(Bucket="short-lived")  # the same name again holds nothing of it
    assert "Uploads" not in s3.list_multipart_uploads(Bucket="short-lived")


def _part_arriving_while(service: LocalSageMaker, request: dict[str, Any], meanwhile: Any) -> Any:
    """UploadPart of `request` (its Body held) with `meanwhile` run as it arrives; what it raised."""
    upload_part = service.operation("S3", "UploadPart")
    assert upload_part is not None
    body = request["Body"]
    with ThreadPoolExecutor(1) as pool:
        arriving = pool.submit(upload_part, request)
        assert body.reading.wait(10)
        meanwhile()
        body.release.set()
        return arriving.exception(10)


def test_a_part_arriving_as_its_upload_is_aborted_is_no_such_upload_and_leaves_nothing(
    s3: Any, service: LocalSageMaker, store: ObjectStore
) -> None:
    upload_id = s3.create_multipart_upload(Bucket="bucket", Key="big.bin")["UploadId"]
    request = {"Bucket": "bucket", "Key": "big.bin", "UploadId": upload_id, "PartNumber": 1,
               "Body": HeldBody(b"x" * PART)}

    refused = _part_arriving_while(service, request, partial(
        s3.abort_multipart_upload, Bucket="bucket", Key="big.bin", UploadId=upload_id
    ))

    assert isinstance(refused, ServiceError)
    assert (refused.status, refused.code) == (404, "NoSuchUpload")
    assert not (store.root / ".uploads" / upload_id).exists()
    assert not any((store.root / ".tmp").iterdir())


def test_a_completion_reads_the_parts_it_checked_or_refuses_a_part_replaced_since(
    s3: Any, store: ObjectStore
) -> None:
    upload_id, listed = upload_parts(s3, "big.bin", [b"a" * PART, b"b"])
    upload = store.uploads.get(upload_id)
    assert upload is not None
    checked = list(store.uploads.parts(upload).values())
    s3.upload_part(Bucket="bucket", Key="big.bin", UploadId=upload_id, PartNumber=2, Body=b"c")

    with pytest.raises(PartReplaced) as replaced, store.uploads.joined(upload, checked):
        pass

    assert replaced.value.number == 2
    store.uploads.discard(upload)
    with pytest.raises(UploadGone), store.uploads.joined(upload, checked):
        pass
    assert error_of(lambda: s3.complete_multipart_upload(
        Bucket="bucket", Key="big.bin", UploadId=upload_id, MultipartUpload={"Parts": listed}
    ))[1]["Code"] == "NoSuchUpload"


def test_a_part_sent_again_while_its_upload_completes_is_s3s_invalid_part(
    s3: Any, store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_id, listed = upload_parts(s3, "big.bin", [b"a" * PART, b"b"])
    joined = store.uploads.joined

    def replaced_first(upload: Any, parts: Any) -> Any:  # part 2 arrives again after the check
        s3.upload_part(Bucket="bucket", Key="big.bin", UploadId=upload_id, PartNumber=2, Body=b"c")
        return joined(upload, parts)

    monkeypatch.setattr(store.uploads, "joined", replaced_first)
    status, error = error_of(lambda: s3.complete_multipart_upload(
        Bucket="bucket", Key="big.bin", UploadId=upload_id, MultipartUpload={"Parts": listed}
    ))

    assert (status, error["Code"], error["PartNumber"]) == (400, "InvalidPart", "2")
    assert error_of(lambda: s3.head_object(Bucket="bucket", Key="big.bin"))[0] == 404  # nothing stored


def versions_of(s3: Any, key: str) -> list[str]:
    listed = s3.list_object_versions(Bucket="bucket", Prefix=key).get("Versions", [])
    return [version["VersionId"] for version in listed]


def test_a_completion_sent_again_gets_the_first_answer_and_stores_nothing_more(s3: Any) -> None:
    """What an SDK retrying a completion whose answer was lost sends: S3 answers it as before."""
    s3.put_bucket_versioning(Bucket="bucket", VersioningConfiguration={"Status": "Enabled"})
    upload_id, listed = upload_parts(s3, "again.bin", [b"a" * PART, b"b"], ChecksumAlgorithm="SHA256")
    first = complete(s3, "again.bin", upload_id, listed)
    again = complete(s3, "again.bin", upload_id, listed)

    answered = ("ETag", "VersionId", "ChecksumSHA256", "Key")
    assert [again[name] for name in answered] == [first[name] for name in answered]
    assert versions_of(s3, "again.bin") == [first["VersionId"]]
    for other in (listed[:1], [{**listed[1], "ETag": '"0123"'}, listed[0]][::-1]):
        assert error_of(partial(complete, s3, "again.bin", upload_id, other))[1]["Code"] == "NoSuchUpload"
    assert error_of(lambda: complete(s3, "another.bin", upload_id, listed))[1]["Code"] == "NoSuchUpload"
    for call in (
        lambda: s3.abort_multipart_upload(Bucket="bucket", Key="again.bin", UploadId=upload_id),
        lambda: s3.list_parts(Bucket="bucket", Key="again.bin", UploadId=upload_id),
    ):
        assert error_of(call)[1]["Code"] == "NoSuchUpload"
    assert "Uploads" not in s3.list_multipart_uploads(Bucket="bucket")


def test_a_completion_is_answered_again_for_a_day_only(
    s3: Any, store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_id, listed = upload_parts(s3, "day.bin", [b"d"])
    complete(s3, "day.bin", upload_id, listed)
    monkeypatch.setattr(uploads, "COMPLETION_KEPT_SECONDS", 0)
    assert error_of(lambda: complete(s3, "day.bin", upload_id, listed))[1]["Code"] == "NoSuchUpload"
    assert (store.uploads.root / upload_id).is_dir()
    damaged_id, damaged = upload_parts(s3, "damaged.bin", [b"d"])
    complete(s3, "damaged.bin", damaged_id, damaged)
    (store.uploads.root / damaged_id / "completed.json").write_text("{not json")
    assert error_of(lambda: complete(s3, "damaged.bin", damaged_id, damaged))[1]["Code"] == "NoSuchUpload"
    s3.create_multipart_upload(Bucket="bucket", Key="next.bin")  # a new upload clears old records
    assert not (store.uploads.root / upload_id).exists()
    assert not (store.uploads.root / damaged_id).exists()


def test_two_completions_at_once_store_the_object_once_and_answer_alike(
    s3: Any, store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put_bucket_versioning(Bucket="bucket", VersioningConfiguration={"Status": "Enabled"})
    upload_id, listed = upload_parts(s3, "twice.bin", [b"a" * PART, b"b"])
    joined, reading, release = store.uploads.joined, threading.Event(), threading.Event()

    def held(upload: Any, parts: Any) -> Any:  # the first completion stops as it starts reading
        reading.set()
        assert release.wait(10)
        return joined(upload, parts)

    monkeypatch.setattr(store.uploads, "joined", held)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(complete, s3, "twice.bin", upload_id, listed)
        assert reading.wait(10)
        second = pool.submit(complete, s3, "twice.bin", upload_id, listed)
        deadline = time.monotonic() + 10
        while store.uploads._completing[upload_id][1] < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # until the second completion waits for the first
        release.set()
        answers = [first.result(10), second.result(10)]

    assert answers[0]["VersionId"] == answers[1]["VersionId"]
    assert answers[0]["ETag"] == answers[1]["ETag"] == s3_etag([b"a" * PART, b"b"])
    assert versions_of(s3, "twice.bin") == [answers[0]["VersionId"]]
    assert not store.uploads._completing


def test_a_deleted_bucket_takes_its_completed_uploads_with_it(s3: Any, store: ObjectStore) -> None:
    s3.create_bucket(Bucket="short-lived")
    upload_id = s3.create_multipart_upload(Bucket="short-lived", Key="k")["UploadId"]
    etag = s3.upload_part(Bucket="short-lived", Key="k", UploadId=upload_id, PartNumber=1, Body=b"k")["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    s3.complete_multipart_upload(Bucket="short-lived", Key="k", UploadId=upload_id, MultipartUpload=parts)
    for listed in s3.list_object_versions(Bucket="short-lived").get("Versions", []):
        s3.delete_object(Bucket="short-lived", Key="k", VersionId=listed["VersionId"])
    s3.delete_bucket(Bucket="short-lived")
    assert not (store.uploads.root / upload_id).exists()


def test_a_completion_retried_after_a_crash_between_storing_and_recording_stores_nothing_more(
    tmp_path: Path,
) -> None:
    """The object was stored, then the server died before the completion was recorded: the retry
    after the restart answers with that version, as S3 answers a completion sent again."""
    state = tmp_path / "state"
    first = LocalSageMaker(state, "us-east-1", "http://127.0.0.1:1")
    with_buckets(first.context.store, "bucket")
    s3 = inprocess.client(Dispatcher(first, True), "s3")
    s3.put_bucket_versioning(Bucket="bucket", VersioningConfiguration={"Status": "Enabled"})
    upload_id, listed = upload_parts(s3, "crash.bin", [b"a" * PART, b"b"], ChecksumAlgorithm="SHA256")

    def crash(*_: Any) -> None:
        raise OSError("the server died here")

    first.context.store.uploads.finish = crash  # type: ignore[method-assign]
    assert error_of(lambda: complete(s3, "crash.bin", upload_id, listed))[0] == 500
    stored = versions_of(s3, "crash.bin")
    first.shutdown()
    second = LocalSageMaker(state, "us-east-1", "http://127.0.0.1:1")
    try:
        s3 = inprocess.client(Dispatcher(second, True), "s3")
        other = listed[:1]  # the completion was of both parts
        assert error_of(lambda: complete(s3, "crash.bin", upload_id, other))[1]["Code"] == "NoSuchUpload"
        answer = complete(s3, "crash.bin", upload_id, listed)
        assert [answer["VersionId"]] == stored == versions_of(s3, "crash.bin")
        assert answer["ETag"] == s3_etag([b"a" * PART, b"b"])
        assert answer["ChecksumSHA256"].endswith("-2")
        assert "Uploads" not in s3.list_multipart_uploads(Bucket="bucket")
        assert complete(s3, "crash.bin", upload_id, listed)["VersionId"] == answer["VersionId"]
    finally:
        second.shutdown()
