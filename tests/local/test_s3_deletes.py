"""S3's deletes in a versioned bucket through boto3's own S3 client (in-process): a delete marker hides
the object and keeps its versions, deleting a version (or the marker) makes the one before it current
again, DeleteObjects reports each key, and ListObjectVersions pages versions and markers as S3 does."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import partial
from typing import Any

from botocore.awsrequest import AWSRequest

from pipelines.local.storage.objects import ObjectStore

from .s3_support import b64, error_of, refusal_of

DIGEST_HEADERS = ("Content-MD5", "x-amz-checksum-crc32", "x-amz-sdk-checksum-algorithm")


def put(s3: Any, key: str, body: bytes) -> str:
    return str(s3.put_object(Bucket="bucket", Key=key, Body=body)["VersionId"])


def test_a_delete_puts_a_marker_on_top_and_keeps_every_version(s3: Any, store: ObjectStore) -> None:
    first, second = put(s3, "data/train.csv", b"v1"), put(s3, "data/train.csv", b"v2")
    deleted = s3.delete_object(Bucket="bucket", Key="data/train.csv")
    assert (deleted["ResponseMetadata"]["HTTPStatusCode"], deleted["DeleteMarker"]) == (204, True)
    assert error_of(lambda: s3.get_object(Bucket="bucket", Key="data/train.csv"))[1]["Code"] == "NoSuchKey"
    assert "Contents" not in s3.list_objects_v2(Bucket="bucket", Prefix="data/")
    assert not store.exists("s3://bucket/data/train.csv")  # what jobs read is gone too
    versions = [s3.get_object(Bucket="bucket", Key="data/train.csv", VersionId=v)["Body"].read()
                for v in (first, second)]
    assert versions == [b"v1", b"v2"]
    marker = error_of(lambda: s3.get_object(Bucket="bucket", Key="data/train.csv",
                                            VersionId=deleted["VersionId"]))
    assert marker[0] == 405


def test_deleting_the_marker_or_the_current_version_makes_the_one_before_current(
    s3: Any, store: ObjectStore
) -> None:
    first, second = put(s3, "model.tar.gz", b"v1"), put(s3, "model.tar.gz", b"v2")
    marker = s3.delete_object(Bucket="bucket", Key="model.tar.gz")["VersionId"]
    undone = s3.delete_object(Bucket="bucket", Key="model.tar.gz", VersionId=marker)
    assert (undone["VersionId"], undone["DeleteMarker"]) == (marker, True)
    assert s3.get_object(Bucket="bucket", Key="model.tar.gz")["Body"].read() == b"v2"
    removed = s3.delete_object(Bucket="bucket", Key="model.tar.gz", VersionId=second)
    assert (removed["VersionId"], "DeleteMarker" in removed) == (second, False)
    assert s3.get_object(Bucket="bucket", Key="model.tar.gz")["VersionId"] == first
    assert store.get_bytes("s3://bucket/model.tar.gz") == b"v1"
    s3.delete_object(Bucket="bucket", Key="model.tar.gz", VersionId=first)
    assert error_of(lambda: s3.head_object(Bucket="bucket", Key="model.tar.gz"))[0] == 404
    assert store.versions("s3://bucket/model.tar.gz") == []


def test_a_deleted_folder_frees_its_name_for_an_object(s3: Any) -> None:
    put(s3, "reports/2026/a.json", b"{}")
    s3.delete_object(Bucket="bucket", Key="reports/2026/a.json")
    put(s3, "reports/2026", b"now an object")  # S3 keys are flat: nothing of the folder is left
    assert s3.get_object(Bucket="bucket", Key="reports/2026")["Body"].read() == b"now an object"


def test_an_object_written_in_place_is_kept_as_the_null_version(s3: Any, store: ObjectStore) -> None:
    store.path_for("s3://bucket/capture/1.jsonl").parent.mkdir(parents=True)
    store.path_for("s3://bucket/capture/1.jsonl").write_bytes(b'{"captured": 1}\n')  # as data capture does
    s3.delete_object(Bucket="bucket", Key="capture/1.jsonl")
    kept = s3.get_object(Bucket="bucket", Key="capture/1.jsonl", VersionId="null")
    assert kept["Body"].read() == b'{"captured": 1}\n'


def test_delete_objects_reports_each_key_and_quiet_mode_only_errors(s3: Any) -> None:
    version = put(s3, "a", b"1")
    put(s3, "b", b"2")
    answer = s3.delete_objects(Bucket="bucket", Delete={"Objects": [
        {"Key": "a", "VersionId": version}, {"Key": "b"}, {"Key": "c", "VersionId": "not-a-version"},
    ]})
    by_key = {item["Key"]: item for item in answer["Deleted"]}
    assert by_key["a"]["VersionId"] == version and "DeleteMarker" not in by_key["a"]
    assert by_key["b"]["DeleteMarker"] is True and by_key["b"]["DeleteMarkerVersionId"]
    # S3's entry for a version id in no form it gives (versitygw issue 2119 records it)
    assert answer["Errors"] == [{"Key": "c", "VersionId": "not-a-version", "Code": "NoSuchVersion",
                                 "Message": "The specified version does not exist."}]
    quiet = s3.delete_objects(Bucket="bucket", Delete={"Objects": [{"Key": "b"}], "Quiet": True})
    assert "Deleted" not in quiet and "Errors" not in quiet


def test_deleting_by_a_version_id_in_no_form_s3_gives_is_refused_in_s3s_words(s3: Any) -> None:
    put(s3, "a", b"1")
    refused = error_of(lambda: s3.delete_object(Bucket="bucket", Key="a", VersionId="not-a-version"))
    assert (refused[0], refused[1]["Code"], refused[1]["Message"]) == (
        400, "InvalidArgument", "Invalid version id specified")
    assert s3.get_object(Bucket="bucket", Key="a")["Body"].read() == b"1"


def sent_with(s3: Any, operation: str, change: Callable[[AWSRequest], None]) -> None:
    """Every later `operation` of `s3` has its request changed by `change` just before it is signed,
    after boto3 has added its digest of the body."""
    s3.meta.events.register(f"before-sign.s3.{operation}", lambda request, **_: change(request))


def without_digests(request: AWSRequest) -> None:
    for header in DIGEST_HEADERS:
        del request.headers[header]  # HTTPHeaders: no error for a header it does not hold


def test_delete_objects_without_a_digest_of_its_body_is_refused_and_deletes_nothing(s3: Any) -> None:
    put(s3, "a", b"1")
    sent_with(s3, "DeleteObjects", without_digests)
    refused = error_of(lambda: s3.delete_objects(Bucket="bucket", Delete={"Objects": [{"Key": "a"}]}))
    assert refused == (400, {"Code": "InvalidRequest",
                             "Message": "Missing required header for this request: Content-MD5"})
    assert s3.get_object(Bucket="bucket", Key="a")["Body"].read() == b"1"


def test_delete_objects_whose_body_is_not_what_its_digest_says_is_refused_and_deletes_nothing(
    s3: Any,
) -> None:
    put(s3, "a", b"1")
    put(s3, "b", b"2")

    def altered(request: AWSRequest) -> None:  # the digest of one document, another document sent
        request.data = request.body.replace(b"<Key>a</Key>", b"<Key>b</Key>")
        request.headers["Content-Length"] = str(len(request.data))

    sent_with(s3, "DeleteObjects", altered)
    refused = error_of(lambda: s3.delete_objects(Bucket="bucket", Delete={"Objects": [{"Key": "a"}]}))
    assert (refused[0], refused[1]["Code"]) == (400, "BadDigest")
    assert [s3.get_object(Bucket="bucket", Key=key)["Body"].read() for key in "ab"] == [b"1", b"2"]


def test_delete_objects_with_a_content_md5_instead_of_a_checksum_is_taken(s3: Any) -> None:
    put(s3, "a", b"1")

    def content_md5(request: AWSRequest) -> None:  # what SDKs sent before CRC32 became the default
        without_digests(request)
        request.headers["Content-MD5"] = b64(hashlib.md5(request.body, usedforsecurity=False).digest())

    sent_with(s3, "DeleteObjects", content_md5)
    answer = s3.delete_objects(Bucket="bucket", Delete={"Objects": [{"Key": "a"}]})
    assert [item["Key"] for item in answer["Deleted"]] == ["a"]
    assert error_of(lambda: s3.get_object(Bucket="bucket", Key="a"))[1]["Code"] == "NoSuchKey"


def test_put_bucket_versioning_without_a_digest_of_its_body_is_refused(s3: Any) -> None:
    sent_with(s3, "PutBucketVersioning", without_digests)
    refused = error_of(lambda: s3.put_bucket_versioning(
        Bucket="bucket", VersioningConfiguration={"Status": "Enabled"}
    ))
    assert (refused[0], refused[1]["Code"]) == (400, "InvalidRequest")


def test_list_object_versions_pages_versions_and_markers_newest_first(s3: Any) -> None:
    a1, a2 = put(s3, "a", b"1"), put(s3, "a", b"22")
    marker = s3.delete_object(Bucket="bucket", Key="a")["VersionId"]
    b1 = put(s3, "dir/b", b"333")
    listed = s3.list_object_versions(Bucket="bucket")
    assert [(v["Key"], v["VersionId"], v["IsLatest"], v["Size"]) for v in listed["Versions"]] == [
        ("a", a2, False, 2), ("a", a1, False, 1), ("dir/b", b1, True, 3)]
    markers = [(m["Key"], m["VersionId"], m["IsLatest"]) for m in listed["DeleteMarkers"]]
    assert markers == [("a", marker, True)]
    paginator = s3.get_paginator("list_object_versions")
    paged = paginator.paginate(Bucket="bucket", PaginationConfig={"PageSize": 1})
    seen = [(v["Key"], v["VersionId"]) for page in paged for v in [*page.get("DeleteMarkers", []),
                                                                     *page.get("Versions", [])]]
    assert seen == [("a", marker), ("a", a2), ("a", a1), ("dir/b", b1)]
    rolled = s3.list_object_versions(Bucket="bucket", Delimiter="/")
    assert rolled["CommonPrefixes"] == [{"Prefix": "dir/"}]
    assert error_of(lambda: s3.list_object_versions(Bucket="bucket", VersionIdMarker=a1))[1]["Code"] == (
        "InvalidArgument")


def test_what_a_delete_cannot_honour_is_refused_by_name(s3: Any, store: ObjectStore) -> None:
    put(s3, "locked", b"x")
    bypass = {"Bucket": "bucket", "Key": "locked", "BypassGovernanceRetention": True}
    refused = error_of(lambda: s3.delete_object(**bypass))
    assert (refused[0], refused[1]["Code"]) == (501, "NotImplemented")
    assert store.get_bytes("s3://bucket/locked") == b"x"
    assert error_of(lambda: s3.delete_object(Bucket="nobucket", Key="k"))[1]["Code"] == "NoSuchBucket"


def test_deleting_a_key_that_names_the_folder_of_other_keys_marks_that_key_alone(s3: Any) -> None:
    put(s3, "dir/x", b"1")
    marker = s3.delete_object(Bucket="bucket", Key="dir")  # no object: a delete marker, as S3 puts one
    versions = s3.list_object_versions(Bucket="bucket")
    assert [v["Key"] for v in versions["Versions"]] == ["dir/x"]
    assert [(m["Key"], m["VersionId"]) for m in versions["DeleteMarkers"]] == [("dir", marker["VersionId"])]
    assert s3.get_object(Bucket="bucket", Key="dir/x")["Body"].read() == b"1"


def test_reads_of_a_deleted_object_say_it_is_behind_a_delete_marker(s3: Any) -> None:
    put(s3, "data/train.csv", b"v1")
    marker = s3.delete_object(Bucket="bucket", Key="data/train.csv")["VersionId"]
    for read in (s3.get_object, s3.head_object):
        status, _error, headers = refusal_of(partial(read, Bucket="bucket", Key="data/train.csv"))
        assert status == 404
        assert (headers["x-amz-delete-marker"], headers["x-amz-version-id"]) == ("true", marker)
    never = refusal_of(lambda: s3.head_object(Bucket="bucket", Key="data/never.csv"))
    assert never[0] == 404 and "x-amz-delete-marker" not in never[2]


def test_reading_a_delete_marker_by_its_id_names_the_method_and_allows_only_delete(s3: Any) -> None:
    put(s3, "data/train.csv", b"v1")
    marker = s3.delete_object(Bucket="bucket", Key="data/train.csv")["VersionId"]
    status, error, headers = refusal_of(lambda: s3.get_object(Bucket="bucket", Key="data/train.csv",
                                                             VersionId=marker))
    assert (status, error["Code"], error["Method"], error["ResourceType"]) == (
        405, "MethodNotAllowed", "GET", "DeleteMarker"
    )
    assert (headers["x-amz-delete-marker"], headers["x-amz-version-id"], headers["allow"]) == (
        "true", marker, "DELETE"
    )
    assert "last-modified" in headers
    head = refusal_of(lambda: s3.head_object(Bucket="bucket", Key="data/train.csv", VersionId=marker))
    assert (head[0], head[2]["allow"], head[2]["x-amz-delete-marker"]) == (405, "DELETE", "true")


def test_a_copy_from_a_delete_marker_is_refused_as_s3_refuses_it(s3: Any) -> None:
    put(s3, "data/train.csv", b"v1")
    marker = s3.delete_object(Bucket="bucket", Key="data/train.csv")["VersionId"]
    source = {"Bucket": "bucket", "Key": "data/train.csv", "VersionId": marker}
    by_id = error_of(lambda: s3.copy_object(Bucket="bucket", Key="copy.csv", CopySource=source))
    assert by_id == (400, {"Code": "InvalidRequest", "Message": (
        "The source of a copy request may not specifically refer to a delete marker by version id."
    )})
    current = error_of(lambda: s3.copy_object(
        Bucket="bucket", Key="copy.csv", CopySource={"Bucket": "bucket", "Key": "data/train.csv"}
    ))
    assert (current[0], current[1]["Code"]) == (404, "NoSuchKey")


def _deleting_after_lookup(store: ObjectStore, monkeypatch: Any, uri: str, version_id: str) -> None:
    """The version is deleted by id right after a read has looked it up, before its bytes are opened."""
    describe = store.describe
    pending = [version_id]

    def looked_up_then_deleted(*args: Any, **kwargs: Any) -> Any:
        found = describe(*args, **kwargs)
        if pending:
            store.delete_version(uri, pending.pop())
        return found

    monkeypatch.setattr(store, "describe", looked_up_then_deleted)


def test_a_read_whose_version_is_deleted_as_it_is_looked_up_answers_what_is_there_now(
    s3: Any, store: ObjectStore, monkeypatch: Any
) -> None:
    older, newer = put(s3, "model.tar.gz", b"v1"), put(s3, "model.tar.gz", b"v2")
    _deleting_after_lookup(store, monkeypatch, "s3://bucket/model.tar.gz", newer)
    current = s3.get_object(Bucket="bucket", Key="model.tar.gz")
    assert (current["VersionId"], current["Body"].read()) == (older, b"v1")

    _deleting_after_lookup(store, monkeypatch, "s3://bucket/model.tar.gz", older)
    gone = error_of(lambda: s3.get_object(Bucket="bucket", Key="model.tar.gz", VersionId=older))
    assert (gone[0], gone[1]["Code"]) == (404, "NoSuchVersion")
