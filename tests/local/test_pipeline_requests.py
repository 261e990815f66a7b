"""The pipeline API's requests through boto3's own client, as SageMaker answers them: what it
refuses (a parameter named twice, a version alias, a step text its listing cannot hold), what an
update versions, and members answered only when they were given."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from waiting import wait_until

from pipelines.local.api.protocol import Dispatcher
from pipelines.local.service.backend import LocalSageMaker

from . import inprocess

ROLE = "arn:aws:iam::000000000000:role/local"


def fail_only(**step: Any) -> str:
    """A pipeline of one Fail step (with the members given) that reads the parameter Why."""
    return json.dumps({
        "Version": "2020-12-01",
        "Parameters": [{"Name": "Why", "Type": "String", "DefaultValue": "no reason"}],
        "Steps": [{"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": {"Get": "Parameters.Why"}},
                   **step}],
    })


@pytest.fixture
def sagemaker(tmp_path: Path) -> Iterator[Any]:
    backend = LocalSageMaker(tmp_path / "state", "us-east-1", "http://127.0.0.1:1")
    yield inprocess.client(Dispatcher(backend, check_responses=True), "sagemaker")
    backend.shutdown()


def refusal(action: Any, **request: Any) -> dict[str, str]:
    with pytest.raises(ClientError) as caught:
        action(**request)
    return dict(caught.value.response["Error"])


def ended(sagemaker: Any, arn: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
        return body if body["PipelineExecutionStatus"] not in ("Executing", "Stopping") else None

    return wait_until(done, 30, "the execution to end")


def executions(sagemaker: Any, name: str = "P") -> list[dict[str, Any]]:
    return list(sagemaker.list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"])


def test_a_parameter_named_twice_is_refused_and_starts_nothing(sagemaker: Any) -> None:
    sagemaker.create_pipeline(PipelineName="P", PipelineDefinition=fail_only(), RoleArn=ROLE)
    error = refusal(sagemaker.start_pipeline_execution, PipelineName="P", PipelineParameters=[
        {"Name": "Why", "Value": "first"}, {"Name": "Why", "Value": "second"}])
    assert error["Code"] == "ValidationException"
    assert error["Message"] == "Pipeline parameter names must be unique; given more than once: Why"
    assert executions(sagemaker) == []


def test_a_version_alias_is_refused_at_start_rather_than_ignored(sagemaker: Any) -> None:
    sagemaker.create_pipeline(PipelineName="P", PipelineDefinition=fail_only(), RoleArn=ROLE)
    error = refusal(sagemaker.start_pipeline_execution, PipelineName="P", PipelineVersionAlias="prod")
    assert error == {"Code": "ValidationException",
                     "Message": "PipelineVersionAlias is not supported by the local SageMaker."}
    assert executions(sagemaker) == []


def test_only_an_update_that_gives_a_definition_makes_a_version(sagemaker: Any) -> None:
    sagemaker.create_pipeline(PipelineName="P", PipelineDefinition=fail_only(), RoleArn=ROLE)
    renamed = sagemaker.update_pipeline(PipelineName="P", PipelineDescription="described",
                                        ParallelismConfiguration={"MaxParallelExecutionSteps": 2})
    assert renamed["PipelineVersionId"] == 1
    redefined = sagemaker.update_pipeline(PipelineName="P", PipelineDefinition=fail_only(DisplayName="Halt"))
    assert redefined["PipelineVersionId"] == 2
    versions = sagemaker.list_pipeline_versions(PipelineName="P")["PipelineVersionSummaries"]
    assert [v["PipelineVersionId"] for v in versions] == [2, 1]
    described = sagemaker.describe_pipeline(PipelineName="P")
    assert (described["PipelineDescription"], described["ParallelismConfiguration"]) == (
        "described", {"MaxParallelExecutionSteps": 2})
    first = sagemaker.describe_pipeline(PipelineName="P", PipelineVersionId=1)["PipelineDefinition"]
    assert first == fail_only()
    arn = sagemaker.start_pipeline_execution(PipelineName="P")["PipelineExecutionArn"]
    assert ended(sagemaker, arn)["PipelineVersionId"] == 2


def test_a_version_is_named_and_described_without_changing_its_definition(sagemaker: Any) -> None:
    created = sagemaker.create_pipeline(PipelineName="P", PipelineDefinition=fail_only(), RoleArn=ROLE)
    arn = created["PipelineArn"]
    sagemaker.update_pipeline(PipelineName="P", PipelineDefinition=fail_only(DisplayName="Halt"))
    named = sagemaker.update_pipeline_version(
        PipelineArn=arn, PipelineVersionId=1, PipelineVersionDisplayName="first-cut",
        PipelineVersionDescription="before the halt",
    )
    assert (named["PipelineArn"], named["PipelineVersionId"]) == (arn, 1)
    versions = sagemaker.list_pipeline_versions(PipelineName="P")["PipelineVersionSummaries"]
    assert [(v["PipelineVersionId"], v.get("PipelineVersionDisplayName")) for v in versions] == [
        (2, None), (1, "first-cut")]
    first = sagemaker.describe_pipeline(PipelineName="P", PipelineVersionId=1)
    assert (first["PipelineVersionDisplayName"], first["PipelineVersionDescription"]) == (
        "first-cut", "before the halt")
    assert first["PipelineDefinition"] == fail_only()
    assert "PipelineVersionDisplayName" not in sagemaker.describe_pipeline(PipelineName="P")  # version 2's
    assert refusal(sagemaker.update_pipeline_version, PipelineArn=arn, PipelineVersionId=3)["Code"] == (
        "ResourceNotFound")
    aliased = refusal(sagemaker.update_pipeline_version, PipelineArn=arn, PipelineVersionId=1,
                      PipelineVersionAliasOperations={"Add": ["prod"]})
    assert aliased["Code"] == "ValidationException"


def test_descriptions_and_step_texts_are_answered_only_when_given(sagemaker: Any) -> None:
    sagemaker.create_pipeline(PipelineName="P", PipelineDefinition=fail_only(), RoleArn=ROLE)
    assert "PipelineDescription" not in sagemaker.describe_pipeline(PipelineName="P")
    plain = sagemaker.start_pipeline_execution(PipelineName="P")["PipelineExecutionArn"]
    assert "PipelineExecutionDescription" not in ended(sagemaker, plain)
    assert "PipelineExecutionDescription" not in executions(sagemaker)[0]
    step = sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=plain)["PipelineExecutionSteps"][0]
    assert "StepDisplayName" not in step and "StepDescription" not in step

    sagemaker.update_pipeline(PipelineName="P", PipelineDefinition=fail_only(
        DisplayName="Halt", Description="Stops with the reason given"))
    told = sagemaker.start_pipeline_execution(PipelineName="P", PipelineExecutionDescription="why not")[
        "PipelineExecutionArn"]
    assert ended(sagemaker, told)["PipelineExecutionDescription"] == "why not"
    step = sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=told)["PipelineExecutionSteps"][0]
    assert (step["StepDisplayName"], step["StepDescription"]) == ("Halt", "Stops with the reason given")


@pytest.mark.parametrize(
    ("member", "limit"), [("DisplayName", 256), ("Description", 3072)]
)
def test_a_step_text_longer_than_its_listing_holds_is_refused_at_create(
    sagemaker: Any, member: str, limit: int
) -> None:
    error = refusal(sagemaker.create_pipeline, PipelineName="P", RoleArn=ROLE,
                    PipelineDefinition=fail_only(**{member: "x" * (limit + 1)}))
    assert error["Code"] == "ValidationException"
    assert error["Message"].endswith(
        f"at '{member}' failed to satisfy constraint: Member must have length less than or equal to {limit}"
    )
    assert sagemaker.list_pipelines()["PipelineSummaries"] == []
    at_limit = fail_only(**{member: "x" * limit})
    sagemaker.create_pipeline(PipelineName="P", RoleArn=ROLE, PipelineDefinition=at_limit)
