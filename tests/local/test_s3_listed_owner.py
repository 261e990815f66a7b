"""What S3's listings say of each entry beyond its key, through boto3's own S3 client (in-process):
the owner (ListObjects always, ListObjectsV2 with FetchOwner, ListObjectVersions, the multipart
listings with the initiator) and the checksum an object was stored with."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.local.storage.objects import ObjectStore


@pytest.fixture
def owner(s3: Any) -> dict[str, str]:
    """The account's owner, as ListBuckets names it."""
    return dict(s3.list_buckets()["Owner"])


@pytest.fixture(autouse=True)
def objects(s3: Any, store: ObjectStore) -> None:
    """`summed`, put with a SHA256 checksum; `plain`, written by the server itself, with none."""
    s3.put_object(Bucket="bucket", Key="summed", Body=b"summed", ChecksumAlgorithm="SHA256")
    store.put_bytes("s3://bucket/plain", b"plain")


def test_list_objects_names_each_owner_and_v2_only_when_asked(s3: Any, owner: dict[str, str]) -> None:
    version_1 = s3.list_objects(Bucket="bucket")["Contents"]
    version_2 = s3.list_objects_v2(Bucket="bucket")["Contents"]
    fetched = s3.list_objects_v2(Bucket="bucket", FetchOwner=True)["Contents"]

    assert [entry["Owner"] for entry in version_1] == [owner, owner]
    assert [entry["Owner"] for entry in fetched] == [owner, owner]
    assert not any("Owner" in entry for entry in version_2)
    assert len(owner["ID"]) == 64


def test_a_listing_names_the_checksum_an_object_was_stored_with(s3: Any) -> None:
    listed = {entry["Key"]: entry for entry in s3.list_objects_v2(Bucket="bucket")["Contents"]}
    versions = {entry["Key"]: entry for entry in s3.list_object_versions(Bucket="bucket")["Versions"]}

    for entries in (listed, versions):
        assert (entries["summed"]["ChecksumAlgorithm"], entries["summed"]["ChecksumType"]) == (
            ["SHA256"], "FULL_OBJECT")
        assert "ChecksumAlgorithm" not in entries["plain"]


def test_versions_and_delete_markers_name_their_owner(s3: Any, owner: dict[str, str]) -> None:
    s3.delete_object(Bucket="bucket", Key="plain")

    listed = s3.list_object_versions(Bucket="bucket")

    assert [entry["Owner"] for entry in listed["Versions"]] == [owner, owner]
    assert [entry["Owner"] for entry in listed["DeleteMarkers"]] == [owner]


def test_uploads_and_their_parts_name_owner_and_initiator(s3: Any, owner: dict[str, str]) -> None:
    upload_id = s3.create_multipart_upload(Bucket="bucket", Key="big.bin")["UploadId"]
    s3.upload_part(Bucket="bucket", Key="big.bin", UploadId=upload_id, PartNumber=1, Body=b"part")

    upload = s3.list_multipart_uploads(Bucket="bucket")["Uploads"][0]
    parts = s3.list_parts(Bucket="bucket", Key="big.bin", UploadId=upload_id)

    assert (upload["Owner"], upload["Initiator"]) == (owner, owner)
    assert (parts["Owner"], parts["Initiator"]) == (owner, owner)
