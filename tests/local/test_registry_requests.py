"""The model registry's requests through boto3's own client, as SageMaker answers them: a package
named both ways or neither, tags on a version, members the local registry cannot act on, a
container SageMaker refuses, ClientToken retries, and who last changed a version."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pipelines.local.api.protocol import Dispatcher
from pipelines.local.jobs.image_python import image_digest

from . import inprocess
from .shapes_support import model, sample
from .world import IMAGE, MODEL_DATA, ROLE, local_sagemaker

GROUP = "Sentiment"
SPECIFICATION: dict[str, Any] = {
    "Containers": [{"Image": IMAGE, "ModelDataUrl": MODEL_DATA}],
    "SupportedContentTypes": ["application/json"],
    "SupportedResponseMIMETypes": ["application/json"],
}
EXTRA_DATA = {"S3DataType": "S3Object", "S3Uri": "s3://bucket/extra.tar.gz"}
CREATE_INPUT = model("SageMaker", "CreateModelPackage").input_shape


@pytest.fixture
def sagemaker(tmp_path: Path) -> Iterator[Any]:
    backend = local_sagemaker(tmp_path / "state")
    client = inprocess.client(Dispatcher(backend, check_responses=True), "sagemaker")
    client.create_model_package_group(ModelPackageGroupName=GROUP)
    yield client
    backend.shutdown()


def refusal(action: Any, **request: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        action(**request)
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


def versions(sagemaker: Any) -> list[int]:
    listed = sagemaker.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]
    return [package["ModelPackageVersion"] for package in listed]


def version(sagemaker: Any, **request: Any) -> str:
    created = sagemaker.create_model_package(
        ModelPackageGroupName=GROUP, InferenceSpecification=SPECIFICATION, **request)
    return str(created["ModelPackageArn"])


def test_a_package_named_both_ways_or_neither_is_refused_in_sagemakers_words(sagemaker: Any) -> None:
    both = refusal(sagemaker.create_model_package, ModelPackageGroupName=GROUP, ModelPackageName="named",
                   InferenceSpecification=SPECIFICATION)
    assert both == ("ValidationException", "Both ModelPackageName and ModelPackageGroupName are provided "
                    "in the input. Cannot determine which one to use.")
    assert refusal(sagemaker.create_model_package, InferenceSpecification=SPECIFICATION) == (
        "ValidationException", "Missing ARN.")
    code, message = refusal(sagemaker.create_model_package, ModelPackageName="named",
                            InferenceSpecification=SPECIFICATION)
    assert code == "ValidationException"
    assert message.startswith("CreateModelPackage with ModelPackageName")
    assert message.endswith("is not supported locally.")
    assert versions(sagemaker) == []


def test_a_version_takes_no_tags_of_its_own(sagemaker: Any) -> None:
    code, message = refusal(sagemaker.create_model_package, ModelPackageGroupName=GROUP,
                            InferenceSpecification=SPECIFICATION, Tags=[{"Key": "team", "Value": "ml"}])
    assert (code, message) == (
        "ValidationException",
        "Tags are not supported in Model Package versions. Please add them to the Model Package Group.")
    assert versions(sagemaker) == []


@pytest.mark.parametrize(
    "member",
    ["ValidationSpecification", "SourceAlgorithmSpecification", "SecurityConfig", "ModelLifeCycle",
     "ModelPackageRegistrationType", "ManagedStorageType", "ModelCard"],
)
def test_a_creation_the_registry_cannot_act_on_is_refused_naming_it(sagemaker: Any, member: str) -> None:
    value = {"ModelCardStatus": "Draft"} if member == "ModelCard" else sample(CREATE_INPUT.members[member])
    assert refusal(sagemaker.create_model_package, ModelPackageGroupName=GROUP,
                   InferenceSpecification=SPECIFICATION, **{member: value}) == (
        "ValidationException", f"CreateModelPackage with {member} is not supported locally.")
    assert versions(sagemaker) == []


def test_a_group_with_managed_storage_is_refused_naming_it(sagemaker: Any) -> None:
    assert refusal(sagemaker.create_model_package_group, ModelPackageGroupName="managed",
                   ManagedConfiguration={"ManagedStorageType": "Restricted"}) == (
        "ValidationException", "CreateModelPackageGroup with ManagedConfiguration is not supported locally.")
    assert sagemaker.list_model_package_groups(NameContains="managed")["ModelPackageGroupSummaryList"] == []


def test_an_inference_specification_with_additional_s3_data_is_refused(sagemaker: Any) -> None:
    container = {**SPECIFICATION["Containers"][0], "AdditionalS3DataSource": EXTRA_DATA}
    extra = {**SPECIFICATION, "Containers": [container]}
    expected = ("ValidationException", "AdditionalS3DataSource is not allowed in InferenceSpecification")
    assert refusal(sagemaker.create_model_package, ModelPackageGroupName=GROUP,
                   InferenceSpecification=extra) == expected
    arn = version(sagemaker)
    update = refusal(sagemaker.update_model_package, ModelPackageArn=arn, InferenceSpecification=extra)
    assert update == expected
    described = sagemaker.describe_model_package(ModelPackageName=arn)
    assert described["InferenceSpecification"] == resolved(SPECIFICATION)


def test_additional_specifications_named_twice_are_refused_at_creation_as_in_updates(sagemaker: Any) -> None:
    """The API reference: each name is unique within a package's list, whether the list is given
    when the version is created or grown by UpdateModelPackage."""
    neo = {"Name": "neo", "Containers": SPECIFICATION["Containers"]}
    expected = ("ValidationException", "AdditionalInferenceSpecifications names must be unique: neo")
    twice = {"InferenceSpecification": SPECIFICATION, "AdditionalInferenceSpecifications": [neo, neo]}
    assert refusal(sagemaker.create_model_package, ModelPackageGroupName=GROUP, **twice) == expected
    assert versions(sagemaker) == []
    arn = version(sagemaker, AdditionalInferenceSpecifications=[neo])
    assert refusal(sagemaker.update_model_package, ModelPackageArn=arn,
                   AdditionalInferenceSpecificationsToAdd=[neo]) == expected
    described = sagemaker.describe_model_package(ModelPackageName=arn)
    assert [spec["Name"] for spec in described["AdditionalInferenceSpecifications"]] == ["neo"]


def resolved(specification: dict[str, Any]) -> dict[str, Any]:
    """The specification as DescribeModelPackage answers it: each container's image resolved to the
    digest of the local environment that stands in for it, as SageMaker records its image's."""
    containers = [{**container, "ImageDigest": image_digest()} for container in specification["Containers"]]
    return {**specification, "Containers": containers}


def test_a_version_describes_its_images_digest_and_sagemakers_defaults(sagemaker: Any) -> None:
    arn = version(sagemaker)

    described = sagemaker.describe_model_package(ModelPackageName=arn)

    assert described["InferenceSpecification"] == resolved(SPECIFICATION)
    (container,) = described["InferenceSpecification"]["Containers"]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", container["ImageDigest"])
    assert described["ModelPackageStatusDetails"] == {"ValidationStatuses": [], "ImageScanStatuses": []}
    assert described["CertifyForMarketplace"] is False
    other = {"Containers": [{"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgboost:1",
                             "ModelDataUrl": MODEL_DATA}],
             "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]}
    sagemaker.update_model_package(ModelPackageArn=arn, InferenceSpecification=other)
    updated = sagemaker.describe_model_package(ModelPackageName=arn)["InferenceSpecification"]
    assert updated == other  # nothing here stands in for that image: no digest is made up


def test_a_creation_retried_with_its_client_token_makes_one_version(sagemaker: Any) -> None:
    first = version(sagemaker, ClientToken="retry-1")
    assert version(sagemaker, ClientToken="retry-1") == first
    assert versions(sagemaker) == [1]
    code, message = refusal(sagemaker.create_model_package, ModelPackageGroupName=GROUP,
                            ClientToken="retry-1", InferenceSpecification=SPECIFICATION,
                            ModelApprovalStatus="Approved")
    assert (code, message) == (
        "ValidationException", "ClientToken retry-1 was already used by another CreateModelPackage request.")
    assert version(sagemaker) != version(sagemaker)  # botocore fills in a new token for each call
    assert versions(sagemaker) == [1, 2, 3]


def test_an_update_retried_with_its_client_token_changes_nothing_again(sagemaker: Any) -> None:
    arn = version(sagemaker)
    approval = {"ModelPackageArn": arn, "ApprovalDescription": "first", "ClientToken": "update-1"}
    sagemaker.update_model_package(**approval)
    sagemaker.update_model_package(ModelPackageArn=arn, ApprovalDescription="second")
    assert sagemaker.update_model_package(**approval)["ModelPackageArn"] == arn
    assert sagemaker.describe_model_package(ModelPackageName=arn)["ApprovalDescription"] == "second"
    assert refusal(sagemaker.update_model_package, **{**approval, "ApprovalDescription": "third"})[1] == (
        "ClientToken update-1 was already used by another UpdateModelPackage request.")


def test_an_update_records_who_changed_the_version_and_when(sagemaker: Any) -> None:
    arn = version(sagemaker)
    created = sagemaker.describe_model_package(ModelPackageName=arn)
    assert "LastModifiedBy" not in created
    sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    updated = sagemaker.describe_model_package(ModelPackageName=f"{GROUP}/1")
    assert updated["LastModifiedBy"] == created["CreatedBy"]
    assert updated["LastModifiedTime"] >= created["LastModifiedTime"]


def test_a_register_model_step_is_refused_at_upsert_for_what_its_request_would_be(sagemaker: Any) -> None:
    step = {"Name": "Register", "Type": "RegisterModel", "Arguments": {
        "ModelPackageGroupName": GROUP, "InferenceSpecification": SPECIFICATION,
        "Tags": [{"Key": "team", "Value": "ml"}]}}
    definition = json.dumps({"Version": "2020-12-01", "Parameters": [], "Steps": [step]})
    code, message = refusal(sagemaker.create_pipeline, PipelineName="P", PipelineDefinition=definition,
                            RoleArn=ROLE)
    assert code == "ValidationException"
    assert "step Register: Tags are not supported in Model Package versions" in message


def test_a_group_answers_a_description_only_when_it_was_given_one(sagemaker: Any) -> None:
    sagemaker.create_model_package_group(ModelPackageGroupName="described", ModelPackageGroupDescription="d")
    assert "ModelPackageGroupDescription" not in sagemaker.describe_model_package_group(
        ModelPackageGroupName=GROUP)
    assert sagemaker.describe_model_package_group(
        ModelPackageGroupName="described")["ModelPackageGroupDescription"] == "d"
    listed = sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]
    assert [group.get("ModelPackageGroupDescription") for group in listed] == [None, "d"]
