"""S3's buckets over the local object store, through boto3's own S3 client (in-process): CreateBucket
with S3's naming, LocationConstraint, ownership and ACL rules and its refusals of what the store
cannot keep; HeadBucket, ListBuckets and its paging, DeleteBucket, the bucket's versioning, location
and default encryption; object operations on a bucket that does not exist; x-amz-expected-bucket-owner
on every operation that takes it; SSE-C headers on a read; and the folders of a store kept before
buckets had records."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pipelines.local.api.protocol import Dispatcher
from pipelines.local.layout import StateLayout
from pipelines.local.service.backend import LocalSageMaker
from pipelines.local.service.buckets import valid_name
from pipelines.local.system.identity import ACCOUNT, CANONICAL_USER_ID

from . import inprocess
from .test_s3 import error_of


def served(state: Path, region: str) -> tuple[LocalSageMaker, Any]:
    backend = LocalSageMaker(state, region, "http://127.0.0.1:1")
    return backend, inprocess.client(Dispatcher(backend, check_responses=True), "s3", region)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[LocalSageMaker, Any]]:
    """A server answering for us-east-1, and its client."""
    made = served(tmp_path / "state", "us-east-1")
    yield made
    made[0].shutdown()


@pytest.fixture
def s3(server: tuple[LocalSageMaker, Any]) -> Any:
    return server[1]


@pytest.fixture
def s3_eu(tmp_path: Path) -> Iterator[Any]:
    """A client of a server answering for eu-west-1."""
    backend, client = served(tmp_path / "eu", "eu-west-1")
    yield client
    backend.shutdown()


def names(s3: Any, **request: Any) -> list[str]:
    return [bucket["Name"] for bucket in s3.list_buckets(**request)["Buckets"]]


# --- CreateBucket -----------------------------------------------------------------------------------


def test_a_bucket_is_created_headed_listed_and_deleted(s3: Any) -> None:
    assert names(s3) == []
    assert s3.create_bucket(Bucket="project-data")["Location"] == "/project-data"
    head = s3.head_bucket(Bucket="project-data")
    assert head["BucketRegion"] == "us-east-1" and head["AccessPointAlias"] is False
    listed = s3.list_buckets()
    [bucket] = listed["Buckets"]
    assert (bucket["Name"], bucket["CreationDate"].tzinfo is not None) == ("project-data", True)
    assert "BucketRegion" not in listed["Buckets"][0]  # only once ListBuckets is given a parameter
    assert listed["Owner"] == {"ID": CANONICAL_USER_ID}
    assert s3.delete_bucket(Bucket="project-data")["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert error_of(lambda: s3.head_bucket(Bucket="project-data"))[0] == 404
    assert names(s3) == []


@pytest.mark.parametrize("name", [
    "ab", "a" * 64, "Upper-case", "under_score", "-starts-with-hyphen", "ends-with-dot.", "two..dots",
    "192.168.5.4", "xn--punycode", "sthree-reserved", "amzn-s3-demo-bucket", "alias-s3alias", "lambda--ol-s3",
    "region.mrap",
])
def test_a_name_against_s3s_naming_rules_is_invalid_bucket_name(s3: Any, name: str) -> None:
    assert error_of(lambda: s3.create_bucket(Bucket=name)) == (
        400, {"Code": "InvalidBucketName", "Message": "The specified bucket is not valid.",
              "BucketName": name})
    assert names(s3) == []


def test_a_directory_bucket_name_is_no_general_purpose_bucket_name() -> None:
    assert not valid_name("express--x-s3")  # an SDK sends a name with this suffix to S3 Express, not here


@pytest.mark.parametrize("name", ["abc", "a" * 63, "my.bucket-1", "192.168.5.4a", "x-n--not-a-prefix"])
def test_names_within_the_rules_are_created(s3: Any, name: str) -> None:
    s3.create_bucket(Bucket=name)
    assert names(s3) == [name]


def test_in_us_east_1_a_bucket_names_no_location_and_an_owned_one_is_created_again(s3: Any) -> None:
    s3.create_bucket(Bucket="plain", CreateBucketConfiguration={})
    created = s3.list_buckets()["Buckets"][0]["CreationDate"]
    assert s3.create_bucket(Bucket="plain")["ResponseMetadata"]["HTTPStatusCode"] == 200  # legacy: 200 OK
    assert s3.list_buckets()["Buckets"][0]["CreationDate"] == created
    assert error_of(lambda: s3.create_bucket(
        Bucket="named", CreateBucketConfiguration={"LocationConstraint": "us-east-1"})) == (
        400, {"Code": "InvalidLocationConstraint",
              "Message": "The specified location constraint is not valid.",
              "LocationConstraint": "us-east-1"})
    assert error_of(lambda: s3.create_bucket(
        Bucket="named", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})) == (
        400, {"Code": "IllegalLocationConstraintException",
              "Message": "The eu-west-1 location constraint is incompatible for the region specific endpoint "
                         "this request was sent to."})
    assert s3.get_bucket_location(Bucket="plain")["LocationConstraint"] is None
    assert names(s3) == ["plain"]


def test_elsewhere_a_bucket_names_its_region_and_an_owned_one_is_already_owned(s3_eu: Any) -> None:
    assert error_of(lambda: s3_eu.create_bucket(Bucket="european"))[1] == {
        "Code": "IllegalLocationConstraintException",
        "Message": "The unspecified location constraint is incompatible for the region specific endpoint "
                   "this request was sent to."}
    assert error_of(lambda: s3_eu.create_bucket(
        Bucket="european", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}))[1]["Code"] == (
        "IllegalLocationConstraintException")
    assert error_of(lambda: s3_eu.create_bucket(
        Bucket="european", CreateBucketConfiguration={"LocationConstraint": "mars-1"}))[1]["Code"] == (
        "InvalidLocationConstraint")
    configuration = {"LocationConstraint": "eu-west-1"}
    created = s3_eu.create_bucket(Bucket="european", CreateBucketConfiguration=configuration)
    assert created["Location"] == "http://european.s3.amazonaws.com/"
    again = error_of(lambda: s3_eu.create_bucket(Bucket="european", CreateBucketConfiguration=configuration))
    assert again == (
        409, {"Code": "BucketAlreadyOwnedByYou",
              "Message": "Your previous request to create the named bucket succeeded and you already own it.",
              "BucketName": "european"})
    s3_eu.create_bucket(Bucket="also-european", CreateBucketConfiguration={"LocationConstraint": "EU"})
    assert s3_eu.get_bucket_location(Bucket="european")["LocationConstraint"] == "eu-west-1"
    assert s3_eu.get_bucket_location(Bucket="also-european")["LocationConstraint"] == "EU"
    assert s3_eu.head_bucket(Bucket="also-european")["BucketRegion"] == "eu-west-1"


@pytest.mark.parametrize("acl", [{"ACL": "public-read"}, {"ACL": "authenticated-read"},
                                 {"GrantRead": "id=someone"}, {"GrantFullControl": "id=someone"}])
def test_acls_are_refused_as_a_bucket_owner_enforced_bucket_refuses_them(
    s3: Any, acl: dict[str, str]
) -> None:
    assert error_of(lambda: s3.create_bucket(Bucket="with-acl", **acl)) == (
        400, {"Code": "InvalidBucketAclWithObjectOwnership",
              "Message": "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting"})
    assert names(s3) == []
    s3.create_bucket(Bucket="private", ACL="private", ObjectOwnership="BucketOwnerEnforced")
    assert names(s3) == ["private"]


@pytest.mark.parametrize(("request_members", "named"), [
    ({"ObjectLockEnabledForBucket": True}, "x-amz-bucket-object-lock-enabled"),
    ({"ObjectOwnership": "ObjectWriter"}, "x-amz-object-ownership"),
    ({"ObjectOwnership": "BucketOwnerPreferred"}, "x-amz-object-ownership"),
    ({"BucketNamespace": "account-regional"}, "x-amz-bucket-namespace"),
    ({"CreateBucketConfiguration": {"Tags": [{"Key": "team", "Value": "ml"}]}},
     "CreateBucketConfiguration.Tags"),
    ({"CreateBucketConfiguration": {"Location": {"Type": "AvailabilityZone", "Name": "use1-az4"}}},
     "CreateBucketConfiguration.Location"),
])
def test_what_the_store_cannot_keep_is_refused_by_name(
    s3: Any, request_members: dict[str, Any], named: str
) -> None:
    status, error = error_of(lambda: s3.create_bucket(Bucket="unkept", **request_members))
    assert (status, error["Code"], error["Header"]) == (501, "NotImplemented", named)
    assert named in error["Message"]
    assert names(s3) == []
    s3.create_bucket(Bucket="kept", ObjectLockEnabledForBucket=False, BucketNamespace="global")
    assert names(s3) == ["kept"]


def test_a_configuration_that_is_not_well_formed_xml_is_refused(s3: Any) -> None:
    def garble(request: Any, **_: Any) -> None:
        request.data = b"<CreateBucketConfiguration><LocationConstraint>"

    s3.meta.events.register("before-sign.s3.CreateBucket", garble)
    assert error_of(lambda: s3.create_bucket(Bucket="garbled", CreateBucketConfiguration={})) == (
        400, {"Code": "MalformedXML",
              "Message": "The XML you provided was not well-formed or did not validate against our published "
                         "schema"})
    assert names(s3) == []


# --- the other bucket operations --------------------------------------------------------------------


def test_list_buckets_pages_filters_and_names_regions_once_asked(s3: Any) -> None:
    for name in ("alpha-1", "alpha-2", "alpha-3", "beta-1"):
        s3.create_bucket(Bucket=name)
    first = s3.list_buckets(MaxBuckets=2)
    assert [b["Name"] for b in first["Buckets"]] == ["alpha-1", "alpha-2"]
    assert {b["BucketRegion"] for b in first["Buckets"]} == {"us-east-1"}
    second = s3.list_buckets(MaxBuckets=2, ContinuationToken=first["ContinuationToken"])
    assert [b["Name"] for b in second["Buckets"]] == ["alpha-3", "beta-1"]
    assert "ContinuationToken" not in second
    paged = [b["Name"] for page in s3.get_paginator("list_buckets").paginate(PaginationConfig={"PageSize": 3})
             for b in page["Buckets"]]
    assert paged == ["alpha-1", "alpha-2", "alpha-3", "beta-1"]
    prefixed = s3.list_buckets(Prefix="alpha-")
    assert [b["Name"] for b in prefixed["Buckets"]] == ["alpha-1", "alpha-2", "alpha-3"]
    assert prefixed["Prefix"] == "alpha-"
    assert names(s3, BucketRegion="us-east-1") == ["alpha-1", "alpha-2", "alpha-3", "beta-1"]
    assert names(s3, BucketRegion="eu-west-1") == []
    assert error_of(lambda: s3.list_buckets(ContinuationToken="not*a*token"))[1]["Code"] == "InvalidArgument"
    assert error_of(lambda: s3.list_buckets(MaxBuckets=10001))[1]["Code"] == "InvalidArgument"


def test_a_bucket_holding_an_object_is_not_deleted(server: tuple[LocalSageMaker, Any]) -> None:
    backend, s3 = server
    s3.create_bucket(Bucket="holding")
    s3.put_object(Bucket="holding", Key="deep/key", Body=b"x")
    assert error_of(lambda: s3.delete_bucket(Bucket="holding")) == (
        409, {"Code": "BucketNotEmpty",
              "Message": "The bucket you tried to delete is not empty. You must delete all versions in the "
                         "bucket.",
              "BucketName": "holding"})
    assert s3.get_object(Bucket="holding", Key="deep/key")["Body"].read() == b"x"
    s3.create_bucket(Bucket="captured")  # an object written in place (data capture's) has no version
    live = backend.context.store.path_for("s3://captured/ep/AllTraffic/a.jsonl")
    live.parent.mkdir(parents=True)
    live.write_bytes(b"{}\n")
    assert error_of(lambda: s3.delete_bucket(Bucket="captured"))[1]["Code"] == "BucketNotEmpty"
    s3.create_bucket(Bucket="emptied-folders")
    backend.context.store.path_for("s3://emptied-folders/a/b").mkdir(parents=True)
    s3.delete_bucket(Bucket="emptied-folders")
    assert names(s3) == ["captured", "holding"]
    assert error_of(lambda: s3.delete_bucket(Bucket="emptied-folders"))[1]["Code"] == "NoSuchBucket"


def test_a_bucket_is_versioned_located_and_encrypted_as_a_new_s3_bucket_is(s3: Any) -> None:
    s3.create_bucket(Bucket="described")
    versioning = s3.get_bucket_versioning(Bucket="described")
    assert (versioning["Status"], "MFADelete" in versioning) == ("Enabled", False)
    assert s3.get_bucket_encryption(Bucket="described")["ServerSideEncryptionConfiguration"] == {
        "Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": False}
        ]}


def test_versioning_can_be_enabled_again_but_never_suspended(s3: Any) -> None:
    s3.create_bucket(Bucket="kept")
    s3.put_bucket_versioning(Bucket="kept", VersioningConfiguration={"Status": "Enabled"})
    suspended = error_of(lambda: s3.put_bucket_versioning(
        Bucket="kept", VersioningConfiguration={"Status": "Suspended"}))
    assert (suspended[0], suspended[1]["Code"], suspended[1]["Header"]) == (
        501, "NotImplemented", "Status=Suspended")
    assert s3.get_bucket_versioning(Bucket="kept")["Status"] == "Enabled"


@pytest.mark.parametrize("call", [
    lambda s3: s3.get_bucket_versioning(Bucket="nowhere"),
    lambda s3: s3.put_bucket_versioning(Bucket="nowhere", VersioningConfiguration={"Status": "Enabled"}),
    lambda s3: s3.get_bucket_location(Bucket="nowhere"),
    lambda s3: s3.get_bucket_encryption(Bucket="nowhere"),
    lambda s3: s3.delete_bucket(Bucket="nowhere"),
    lambda s3: s3.put_object(Bucket="nowhere", Key="k", Body=b"x"),
    lambda s3: s3.get_object(Bucket="nowhere", Key="k"),
    lambda s3: s3.list_objects_v2(Bucket="nowhere"),
])
def test_an_operation_on_a_bucket_that_does_not_exist_is_no_such_bucket(s3: Any, call: Any) -> None:
    assert error_of(lambda: call(s3)) == (
        404, {"Code": "NoSuchBucket", "Message": "The specified bucket does not exist",
              "BucketName": "nowhere"})
    assert error_of(lambda: s3.head_object(Bucket="nowhere", Key="k"))[0] == 404
    assert names(s3) == []


# --- the bucket owner, and SSE-C ------------------------------------------------------------------------


@pytest.mark.parametrize("call", [
    lambda s3, owner: s3.head_bucket(Bucket="owned", ExpectedBucketOwner=owner),
    lambda s3, owner: s3.get_bucket_versioning(Bucket="owned", ExpectedBucketOwner=owner),
    lambda s3, owner: s3.get_bucket_location(Bucket="owned", ExpectedBucketOwner=owner),
    lambda s3, owner: s3.get_bucket_encryption(Bucket="owned", ExpectedBucketOwner=owner),
    lambda s3, owner: s3.list_objects_v2(Bucket="owned", ExpectedBucketOwner=owner),
    lambda s3, owner: s3.get_object(Bucket="owned", Key="k", ExpectedBucketOwner=owner),
    lambda s3, owner: s3.head_object(Bucket="owned", Key="k", ExpectedBucketOwner=owner),
    lambda s3, owner: s3.put_object(Bucket="owned", Key="k", Body=b"y", ExpectedBucketOwner=owner),
    lambda s3, owner: s3.delete_bucket(Bucket="owned", ExpectedBucketOwner=owner),
])
def test_an_expected_bucket_owner_other_than_this_account_is_access_denied(s3: Any, call: Any) -> None:
    s3.create_bucket(Bucket="owned")
    s3.put_object(Bucket="owned", Key="k", Body=b"x")
    status, error = error_of(lambda: call(s3, "111122223333"))
    assert status == 403 and error["Code"] in ("AccessDenied", "403")  # a HEAD answer has no body
    assert s3.get_object(Bucket="owned", Key="k")["Body"].read() == b"x"
    assert names(s3) == ["owned"]
    try:
        call(s3, ACCOUNT)
    except ClientError as error:  # the account's own: no refusal but the operation's own
        assert error.response["Error"]["Code"] == "BucketNotEmpty"


@pytest.mark.parametrize("read", ["get_object", "head_object"])
def test_sse_c_headers_on_an_object_stored_without_them_are_refused(s3: Any, read: str) -> None:
    s3.create_bucket(Bucket="plain-objects")
    s3.put_object(Bucket="plain-objects", Key="k", Body=b"x")
    status, error = error_of(lambda: getattr(s3, read)(
        Bucket="plain-objects", Key="k", SSECustomerAlgorithm="AES256", SSECustomerKey="k" * 32))
    assert status == 400
    if read == "get_object":  # a HEAD answer has no body to say why
        message = "The encryption parameters are not applicable to this object."
        assert error == {"Code": "InvalidRequest", "Message": message}


# --- buckets across restarts, and stores kept before buckets had records ---------------------------------


def test_a_bucket_keeps_its_creation_date_and_region_across_a_restart(tmp_path: Path) -> None:
    backend, s3 = served(tmp_path / "state", "us-east-1")
    s3.create_bucket(Bucket="lasting")
    created = s3.list_buckets()["Buckets"][0]["CreationDate"]
    backend.shutdown()
    backend, s3 = served(tmp_path / "state", "us-east-1")
    try:
        assert s3.list_buckets(MaxBuckets=1)["Buckets"] == [
            {"Name": "lasting", "CreationDate": created, "BucketRegion": "us-east-1"}]
    finally:
        backend.shutdown()


def test_the_folders_of_a_store_kept_before_buckets_had_records_are_its_buckets(tmp_path: Path) -> None:
    objects = StateLayout(tmp_path / "state").objects
    (objects / "older-bucket" / "data").mkdir(parents=True)
    (objects / "older-bucket" / "data" / "train.csv").write_bytes(b"kept")
    os.utime(objects / "older-bucket", (1_600_000_000, 1_600_000_000))
    backend, s3 = served(tmp_path / "state", "us-east-1")
    try:
        [listed] = s3.list_buckets()["Buckets"]
        folder_date = datetime.fromtimestamp(1_600_000_000, UTC)
        assert (listed["Name"], listed["CreationDate"]) == ("older-bucket", folder_date)
        assert s3.get_object(Bucket="older-bucket", Key="data/train.csv")["Body"].read() == b"kept"
        (objects / "folder-made-since").mkdir()  # once buckets have records, a folder is no bucket
    finally:
        backend.shutdown()
    backend, s3 = served(tmp_path / "state", "us-east-1")
    try:
        assert names(s3) == ["older-bucket"]
        assert error_of(lambda: s3.list_objects_v2(Bucket="folder-made-since"))[1]["Code"] == "NoSuchBucket"
    finally:
        backend.shutdown()
