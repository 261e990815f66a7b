"""The pipeline API's requests through boto3's own client, as SageMaker answers them: what it
refuses (a parameter named twice, a step text its listing cannot hold), what an update versions,
version aliases, and members answered only when they were given."""

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


def test_an_alias_names_a_version_to_start_describe_and_list_executions_by(sagemaker: Any) -> None:
    """CreatePipeline and UpdatePipeline give a new version its aliases; a start, a description and
    a listing by alias reach that version, and an execution answers the aliases its version has now."""
    sagemaker.create_pipeline(PipelineName="P", PipelineDefinition=fail_only(), RoleArn=ROLE,
                              PipelineVersionAliases=["prod", "v1.0"])
    sagemaker.update_pipeline(PipelineName="P", PipelineDefinition=fail_only(DisplayName="Halt"),
                              PipelineVersionAliases=["candidate"])
    described = sagemaker.describe_pipeline(PipelineName="P", PipelineVersionAlias="prod")
    assert (described["PipelineDefinition"], described["PipelineVersionAliases"]) == (
        fail_only(), ["prod", "v1.0"])
    assert sagemaker.describe_pipeline(PipelineName="P")["PipelineVersionAliases"] == ["candidate"]
    on_prod = sagemaker.start_pipeline_execution(PipelineName="P", PipelineVersionAlias="prod")
    latest = sagemaker.start_pipeline_execution(PipelineName="P")
    assert ended(sagemaker, on_prod["PipelineExecutionArn"])["PipelineVersionId"] == 1
    assert ended(sagemaker, latest["PipelineExecutionArn"])["PipelineVersionAliases"] == ["candidate"]
    listed = sagemaker.list_pipeline_executions(PipelineName="P", PipelineVersionAlias="prod")
    assert [(e["PipelineExecutionArn"], e["PipelineVersionAliases"]) for e in listed[
        "PipelineExecutionSummaries"]] == [(on_prod["PipelineExecutionArn"], ["prod", "v1.0"])]
    versions = sagemaker.list_pipeline_versions(PipelineName="P")["PipelineVersionSummaries"]
    assert [v["PipelineVersionAliases"] for v in versions] == [["candidate"], ["prod", "v1.0"]]


def test_an_alias_moves_between_versions_only_once_removed(sagemaker: Any) -> None:
    """The alias is unique within the pipeline: UpdatePipelineVersion adds it to another version
    only after removing it from the one that has it, and executions listed by it follow it."""
    arn = sagemaker.create_pipeline(PipelineName="P", PipelineDefinition=fail_only(), RoleArn=ROLE,
                                    PipelineVersionAliases=["prod"])["PipelineArn"]
    first = sagemaker.start_pipeline_execution(PipelineName="P")["PipelineExecutionArn"]
    sagemaker.update_pipeline(PipelineName="P", PipelineDefinition=fail_only(DisplayName="Halt"))
    taken = refusal(sagemaker.update_pipeline_version, PipelineArn=arn, PipelineVersionId=2,
                    PipelineVersionAliasOperations={"Add": ["prod"]})
    assert taken == {"Code": "ValidationException", "Message": (
        "Pipeline version alias 'prod' is assigned to version 1; an alias is unique within the pipeline: "
        "remove it from that version with UpdatePipelineVersion first.")}
    sagemaker.update_pipeline_version(PipelineArn=arn, PipelineVersionId=1,
                                      PipelineVersionAliasOperations={"Remove": ["prod"]})
    sagemaker.update_pipeline_version(PipelineArn=arn, PipelineVersionId=2,
                                      PipelineVersionAliasOperations={"Add": ["prod"]})
    assert "PipelineVersionAliases" not in sagemaker.describe_pipeline(PipelineName="P", PipelineVersionId=1)
    assert "PipelineVersionAliases" not in ended(sagemaker, first)
    second = sagemaker.start_pipeline_execution(PipelineName="P", PipelineVersionAlias="prod")
    listed = sagemaker.list_pipeline_executions(PipelineName="P", PipelineVersionAlias="prod")
    assert [e["PipelineExecutionArn"] for e in listed["PipelineExecutionSummaries"]] == [
        second["PipelineExecutionArn"]]


@pytest.mark.parametrize(
    ("call", "request_", "code", "message"),
    [
        ("create_pipeline", {"PipelineVersionAliases": ["2024"]}, "ValidationException",
         "Pipeline version alias '2024' consists of numbers only; an alias needs a letter, period, hyphen "
         "or underscore."),
        ("create_pipeline", {"PipelineVersionAliases": ["prod", "prod"]}, "ValidationException",
         "Pipeline version alias(es) prod given more than once."),
        ("update_pipeline", {"PipelineVersionAliases": ["prod"]}, "ValidationException",
         "PipelineVersionAliases can be given only when the update changes the pipeline definition; to "
         "change the aliases of an existing version, use UpdatePipelineVersion."),
        ("start_pipeline_execution", {"PipelineVersionAlias": "staging"}, "ResourceNotFound",
         "Pipeline 'P' has no version with alias 'staging'."),
        ("describe_pipeline", {"PipelineVersionAlias": "prod", "PipelineVersionId": 1}, "ValidationException",
         "PipelineVersionId and PipelineVersionAlias cannot both be given."),
        ("list_pipeline_executions", {"PipelineVersionAlias": "staging"}, "ResourceNotFound",
         "Pipeline 'P' has no version with alias 'staging'."),
    ],
)
def test_aliases_are_refused_as_the_api_reference_rules_them(
    sagemaker: Any, call: str, request_: dict[str, Any], code: str, message: str
) -> None:
    name = "Q" if call == "create_pipeline" else "P"
    sagemaker.create_pipeline(PipelineName="P", PipelineDefinition=fail_only(), RoleArn=ROLE,
                              PipelineVersionAliases=["prod"])
    more = {"PipelineDefinition": fail_only(), "RoleArn": ROLE} if call == "create_pipeline" else {}
    assert refusal(getattr(sagemaker, call), PipelineName=name, **more, **request_) == {
        "Code": code, "Message": message}
    assert executions(sagemaker) == []
    assert [p["PipelineName"] for p in sagemaker.list_pipelines()["PipelineSummaries"]] == ["P"]


def test_a_version_holds_ten_aliases_at_most(sagemaker: Any) -> None:
    arn = sagemaker.create_pipeline(PipelineName="P", PipelineDefinition=fail_only(), RoleArn=ROLE,
                                    PipelineVersionAliases=[f"a{i}" for i in range(10)])["PipelineArn"]
    full = refusal(sagemaker.update_pipeline_version, PipelineArn=arn, PipelineVersionId=1,
                   PipelineVersionAliasOperations={"Add": ["a10"]})
    assert full["Message"] == "Pipeline version 1 would have 11 aliases; a version has at most 10."
    swap = {"Add": ["a10"], "Remove": ["a0"]}
    swapped = sagemaker.update_pipeline_version(PipelineArn=arn, PipelineVersionId=1,
                                                PipelineVersionAliasOperations=swap)
    assert swapped["PipelineVersionId"] == 1
    assert sagemaker.describe_pipeline(PipelineName="P")["PipelineVersionAliases"] == [
        *(f"a{i}" for i in range(1, 10)), "a10"]


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
