"""S3's server-side copies through boto3's own S3 client (in-process): CopyObject with S3's metadata
directives, versions, checksums, conditions and refusals, and boto3's managed copy of a large object
in parts (UploadPartCopy)."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from typing import Any

from boto3.s3.transfer import TransferConfig

from pipelines.local.storage.objects import ObjectStore

from .s3_support import b64, crc, error_of

MIB = 1024 * 1024


def test_a_copy_is_a_new_version_of_the_target_with_the_sources_headers(s3: Any, store: ObjectStore) -> None:
    s3.put_object(Bucket="bucket", Key="data/v1.csv", Body=b"reviews", ContentType="text/csv",
                  Metadata={"source": "shop"})
    copied = s3.copy_object(Bucket="bucket", Key="data/current.csv", CopySource="bucket/data/v1.csv")
    assert copied["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(b"reviews").hexdigest()}"'
    assert copied["VersionId"] == store.versions("s3://bucket/data/current.csv")[-1]
    head = s3.head_object(Bucket="bucket", Key="data/current.csv")
    assert (head["ContentType"], head["Metadata"]) == ("text/csv", {"source": "shop"})
    assert store.get_bytes("s3://bucket/data/current.csv") == b"reviews"


def test_replace_takes_the_requests_headers_and_an_earlier_version_can_be_the_source(s3: Any) -> None:
    first = s3.put_object(Bucket="bucket", Key="model", Body=b"v1", ContentType="a/b")["VersionId"]
    s3.put_object(Bucket="bucket", Key="model", Body=b"v2")
    restored = s3.copy_object(
        Bucket="bucket", Key="model", CopySource={"Bucket": "bucket", "Key": "model", "VersionId": first},
        MetadataDirective="REPLACE", ContentType="application/gzip", Metadata={"restored": "yes"},
    )
    assert restored["CopySourceVersionId"] == first
    current = s3.get_object(Bucket="bucket", Key="model")
    assert (current["Body"].read(), current["ContentType"], current["Metadata"]) == (
        b"v1", "application/gzip", {"restored": "yes"})


def test_an_earlier_version_copied_onto_its_own_key_is_current_again_as_s3_restores_one(s3: Any) -> None:
    # "you can make any earlier version the current version by copying a specific version of the
    # object into the same bucket" (S3 user guide, Restoring previous versions): no REPLACE needed.
    first = s3.put_object(Bucket="bucket", Key="model", Body=b"v1", Metadata={"run": "1"})["VersionId"]
    current = s3.put_object(Bucket="bucket", Key="model", Body=b"v2")["VersionId"]
    restored = s3.copy_object(Bucket="bucket", Key="model",
                              CopySource={"Bucket": "bucket", "Key": "model", "VersionId": first})

    assert restored["CopySourceVersionId"] == first and restored["VersionId"] not in (first, current)
    got = s3.get_object(Bucket="bucket", Key="model")
    assert (got["Body"].read(), got["Metadata"]) == (b"v1", {"run": "1"})
    named_current = {"Bucket": "bucket", "Key": "model", "VersionId": restored["VersionId"]}
    assert error_of(lambda: s3.copy_object(Bucket="bucket", Key="model", CopySource=named_current))[1][
        "Code"] == "InvalidRequest"  # the current version onto itself is still a copy to itself


def test_a_copy_keeps_a_checksum_of_the_bytes_it_copies(s3: Any) -> None:
    s3.put_object(Bucket="bucket", Key="summed", Body=b"checked", ChecksumAlgorithm="SHA256")
    s3.copy_object(Bucket="bucket", Key="copy-of-summed", CopySource="bucket/summed")
    kept = s3.head_object(Bucket="bucket", Key="copy-of-summed", ChecksumMode="ENABLED")
    assert kept["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(b"checked").digest()).decode()
    s3.copy_object(Bucket="bucket", Key="crc", CopySource="bucket/summed", ChecksumAlgorithm="CRC32")
    crc32 = s3.head_object(Bucket="bucket", Key="crc", ChecksumMode="ENABLED")["ChecksumCRC32"]
    assert crc32 == base64.b64encode(zlib.crc32(b"checked").to_bytes(4, "big")).decode()
    s3.copy_object(Bucket="bucket", Key="crc64", CopySource="bucket/summed", ChecksumAlgorithm="CRC64NVME")
    crc64 = s3.head_object(Bucket="bucket", Key="crc64", ChecksumMode="ENABLED")["ChecksumCRC64NVME"]
    assert crc64 == b64(crc("CRC64NVME", b"checked"))


def test_s3s_refusals_of_a_copy_store_nothing(s3: Any, store: ObjectStore) -> None:
    s3.put_object(Bucket="bucket", Key="same", Body=b"x")
    assert error_of(lambda: s3.copy_object(Bucket="bucket", Key="same", CopySource="bucket/same"))[1][
        "Code"] == "InvalidRequest"
    assert error_of(lambda: s3.copy_object(Bucket="bucket", Key="t", CopySource="bucket/missing"))[:2] == (
        404, {"Code": "NoSuchKey", "Message": "The specified key does not exist.", "Key": "missing"})
    same_etag = f'"{hashlib.md5(b"x").hexdigest()}"'
    unchanged = error_of(lambda: s3.copy_object(
        Bucket="bucket", Key="t", CopySource="bucket/same", CopySourceIfNoneMatch=same_etag
    ))
    assert (unchanged[0], unchanged[1]["Code"]) == (412, "PreconditionFailed")
    assert not store.exists("s3://bucket/t")
    reserved = "a/.key-part-empty"  # where the store keeps a key's empty part
    unnamed = error_of(lambda: s3.copy_object(Bucket="bucket", Key=reserved, CopySource="bucket/same"))
    assert (unnamed[0], unnamed[1]["Code"]) == (400, "InvalidArgument")
    tagged = error_of(lambda: s3.copy_object(Bucket="bucket", Key="t", CopySource="bucket/same",
                                             TaggingDirective="REPLACE", Tagging="a=b"))
    assert (tagged[0], tagged[1]["Code"]) == (501, "NotImplemented")
    directive = error_of(lambda: s3.copy_object(Bucket="bucket", Key="t", CopySource="bucket/same",
                                                MetadataDirective="KEEP"))
    assert directive == (400, {"Code": "InvalidArgument", "Message": "Unknown metadata directive.",
                               "ArgumentName": "x-amz-metadata-directive", "ArgumentValue": "KEEP"})
    assert not store.exists("s3://bucket/t")


def test_boto3s_managed_copy_of_a_large_object_goes_in_parts(s3: Any, store: ObjectStore) -> None:
    data = os.urandom(12 * MIB + 7)
    s3.put_object(Bucket="bucket", Key="big/source.bin", Body=data)
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    s3.copy({"Bucket": "bucket", "Key": "big/source.bin"}, "bucket", "big/copy.bin", Config=config)
    assert store.get_bytes("s3://bucket/big/copy.bin") == data
    assert s3.head_object(Bucket="bucket", Key="big/copy.bin")["ETag"].endswith('-3"')
    upload_id = s3.create_multipart_upload(Bucket="bucket", Key="ranged")["UploadId"]

    def ranged(copied: str) -> tuple[int, dict[str, str]]:
        return error_of(lambda: s3.upload_part_copy(
            Bucket="bucket", Key="ranged", UploadId=upload_id, PartNumber=1,
            CopySource="bucket/big/source.bin", CopySourceRange=copied))

    size = len(data)
    assert ranged(f"bytes=0-{size}") == (400, {  # ends past the source's last byte
        "Code": "InvalidArgument",
        "Message": f"Range specified is not valid for source object of size: {size}",
        "ArgumentName": "x-amz-copy-source-range", "ArgumentValue": f"bytes=0-{size}"})
    assert ranged(f"bytes={size}-{size + 1}") == (400, {  # starts past it
        "Code": "InvalidRequest",
        "Message": "The specified copy range is invalid for the source object size"})
