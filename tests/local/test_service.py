"""The service layer and its wire protocol on a temporary state directory, with no process started
(but one job, to see a stop request reach its process)."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from job_marks import MARKS, marks_of, running_job
from processes import processes_with
from waiting import wait_until

from pipelines.local.api.protocol import Dispatcher
from pipelines.local.contract.models import operation_model
from pipelines.local.errors import ServiceError
from pipelines.local.executor.engine import EXECUTION_FAILURE, StepOutcome
from pipelines.local.executor.runner import ExecutionJournal
from pipelines.local.hosting.model_process import TIMED_OUT_MESSAGE, InvokeResult
from pipelines.local.jobs.images import local_sklearn_release
from pipelines.local.service.backend import LocalSageMaker
from pipelines.publish import approval_rule_pattern
from pipelines.settings import Settings

from . import inprocess
from .world import BUCKET, InstantHosting, local_sagemaker, source_tar, training_step

ROLE = "arn:aws:iam::000000000000:role/pipeline"
FAIL_ONLY = json.dumps(
    {
        "Version": "2020-12-01",
        "Parameters": [{"Name": "Why", "Type": "String", "DefaultValue": "no reason"}],
        "Steps": [{"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": {"Get": "Parameters.Why"}}}],
    }
)


def call(service: LocalSageMaker, name: str, **request: Any) -> dict[str, Any]:
    """The operation through the wire protocol, its request and response checked against the
    service model; idempotency tokens filled in as the SDKs do. An error reply raises."""
    group = "SageMaker" if service.operation("SageMaker", name) else "AWSEvents"
    model = operation_model({"SageMaker": "sagemaker", "AWSEvents": "events"}[group], name)
    for member, shape in model.input_shape.members.items():
        if shape.metadata.get("idempotencyToken"):
            request.setdefault(member, uuid.uuid4().hex)
    dispatcher = Dispatcher(service, check_responses=True)
    reply = dispatcher.json_api(f"{group}.{name}", json.dumps(request).encode())
    body = json.loads(reply.body)
    if reply.status != 200:
        raise ServiceError(body["__type"], body["message"], reply.status)
    return dict(body)


def test_pipeline_versions_count_updates_and_names_are_unique(service: LocalSageMaker) -> None:
    arn = call(
        service, "CreatePipeline", PipelineName="P", PipelineDefinition=FAIL_ONLY, RoleArn=ROLE
    )["PipelineArn"]
    assert arn == "arn:aws:sagemaker:us-east-1:000000000000:pipeline/P"  # in the name's case
    call(service, "UpdatePipeline", PipelineName="P", PipelineDefinition=FAIL_ONLY,
         PipelineDescription="second")
    described = call(service, "DescribePipeline", PipelineName=arn)
    assert described["PipelineDescription"] == "second"
    versions = call(service, "ListPipelineVersions", PipelineName="P")["PipelineVersionSummaries"]
    assert [v["PipelineVersionId"] for v in versions] == [2, 1]
    with pytest.raises(ServiceError) as raised:
        call(service, "CreatePipeline", PipelineName="P", PipelineDefinition=FAIL_ONLY, RoleArn=ROLE)
    # SageMaker's answer, which the SDK's upsert() takes for a name collision (then updates)
    assert raised.value.code == "ValidationException"
    assert str(raised.value) == (
        "Pipeline names must be unique within an AWS account and region. Pipeline with name (P) "
        "already exists."
    )


def test_an_invalid_definition_is_refused_at_create(service: LocalSageMaker) -> None:
    cyclic = {"Version": "2020-12-01", "Steps": [
        {"Name": "A", "Type": "Fail", "DependsOn": ["A"], "Arguments": {}}]}
    with pytest.raises(ServiceError, match="dependency cycle: A -> A"):
        call(service, "CreatePipeline", PipelineName="P", PipelineDefinition=json.dumps(cyclic), RoleArn=ROLE)
    assert call(service, "ListPipelines")["PipelineSummaries"] == []


def test_an_execution_runs_and_records_its_steps(service: LocalSageMaker) -> None:
    call(service, "CreatePipeline", PipelineName="P", PipelineDefinition=FAIL_ONLY, RoleArn=ROLE)
    arn = call(service, "StartPipelineExecution", PipelineName="P",
               PipelineParameters=[{"Name": "Why", "Value": "told to"}])["PipelineExecutionArn"]

    def ended() -> dict[str, Any] | None:
        body = call(service, "DescribePipelineExecution", PipelineExecutionArn=arn)
        return body if body["PipelineExecutionStatus"] != "Executing" else None

    execution = wait_until(ended, 30, "the execution to end")
    assert execution["PipelineExecutionStatus"] == "Failed"
    assert execution["FailureReason"] == "Step failure: One or multiple steps failed."  # a Fail step's too
    (step,) = call(service, "ListPipelineExecutionSteps", PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    assert step["StepName"] == "Stop" and step["StepStatus"] == "Failed" and step["AttemptCount"] == 1
    assert step["FailureReason"] == "told to"
    assert not any(key.startswith("_") for key in execution)


SPECIFICATION = {
    "Containers": [{"Image": "i", "ModelDataUrl": "s3://b/m.tar.gz"}],
    "SupportedContentTypes": ["application/json"], "SupportedResponseMIMETypes": ["application/json"],
}


def test_register_creates_the_group_once_and_numbers_versions(service: LocalSageMaker) -> None:
    request = {"ModelPackageGroupName": "g", "InferenceSpecification": SPECIFICATION}
    first = service.registry.register_model_package(dict(request))
    second = service.registry.register_model_package(dict(request))
    assert first.endswith("model-package/g/1") and second.endswith("model-package/g/2")
    assert len(call(service, "ListModelPackageGroups")["ModelPackageGroupSummaryList"]) == 1


def _version(service: LocalSageMaker, group: str = "g", **request: Any) -> str:
    return service.registry.register_model_package(
        {"ModelPackageGroupName": group, "InferenceSpecification": SPECIFICATION, **request})


def _described(service: LocalSageMaker, arn: str) -> dict[str, Any]:
    return call(service, "DescribeModelPackage", ModelPackageName=arn)


def test_an_update_merges_metadata_and_removes_only_the_keys_it_names(service: LocalSageMaker) -> None:
    arn = _version(service, ModelApprovalStatus="Approved",
                   CustomerMetadataProperties={"ModelDataSha256": "abc", "DataUri": "s3://b/data"})
    call(service, "UpdateModelPackage", ModelPackageArn=arn, CustomerMetadataProperties={"Reviewer": "alice"})
    assert _described(service, arn)["CustomerMetadataProperties"] == {
        "ModelDataSha256": "abc", "DataUri": "s3://b/data", "Reviewer": "alice"}
    call(service, "UpdateModelPackage", ModelPackageArn=arn, CustomerMetadataProperties={"Reviewer": "bob"},
         CustomerMetadataPropertiesToRemove=["DataUri", "NeverSet"])
    kept = {"ModelDataSha256": "abc", "Reviewer": "bob"}
    assert _described(service, arn)["CustomerMetadataProperties"] == kept
    with pytest.raises(ServiceError, match="both set and removed: Reviewer"):
        call(service, "UpdateModelPackage", ModelPackageArn=arn,
             CustomerMetadataProperties={"Reviewer": "eve"}, CustomerMetadataPropertiesToRemove=["Reviewer"])
    with pytest.raises(ServiceError, match="would have 51 entries; at most 50"):
        call(service, "UpdateModelPackage", ModelPackageArn=arn,
             CustomerMetadataProperties={f"k{i}": "v" for i in range(49)})
    assert _described(service, arn)["CustomerMetadataProperties"] == kept


def test_an_update_replaces_the_specification_and_source_and_adds_specifications(
    service: LocalSageMaker,
) -> None:
    arn = _version(service)
    moved = {**SPECIFICATION, "Containers": [{"Image": "i", "ModelDataUrl": "s3://b/other.tar.gz"}]}
    call(service, "UpdateModelPackage", ModelPackageArn=arn, InferenceSpecification=moved)
    call(service, "UpdateModelPackage", ModelPackageArn=arn, SourceUri="s3://b/source")
    described = _described(service, arn)
    assert described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == "s3://b/other.tar.gz"
    assert described["SourceUri"] == "s3://b/source"
    with pytest.raises(ServiceError, match="ModelDataUrl is required"):
        call(service, "UpdateModelPackage", ModelPackageArn=arn,
             InferenceSpecification={"Containers": [{"Image": "i"}]})
    with pytest.raises(ServiceError, match="InferenceSpecification and SourceUri"):
        call(service, "UpdateModelPackage", ModelPackageArn=arn, InferenceSpecification=SPECIFICATION,
             SourceUri="s3://b/elsewhere")

    def added(*names: str) -> dict[str, Any]:
        specifications = [{"Name": name, "Containers": [{"Image": "i"}]} for name in names]
        return call(service, "UpdateModelPackage", ModelPackageArn=arn,
                    AdditionalInferenceSpecificationsToAdd=specifications)

    added("neo-a")
    added("neo-b", "neo-c")
    with pytest.raises(ServiceError, match="must be unique: neo-a"):
        added("neo-a")
    with pytest.raises(ServiceError, match="would have 16 entries; at most 15"):
        added(*(f"more-{i}" for i in range(13)))
    described = _described(service, arn)
    assert [s["Name"] for s in described["AdditionalInferenceSpecifications"]] == ["neo-a", "neo-b", "neo-c"]
    assert described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == "s3://b/other.tar.gz"
    assert described["SourceUri"] == "s3://b/source"


@pytest.mark.parametrize(
    "member",
    [
        {"ModelCard": {"ModelCardStatus": "Draft"}},
        {"ModelLifeCycle": {"Stage": "Production", "StageStatus": "Approved"}},
        {"ModelPackageRegistrationType": "Logged"},
    ],
)
def test_an_update_the_registry_cannot_apply_is_refused_naming_it(
    service: LocalSageMaker, member: dict[str, Any]
) -> None:
    arn = _version(service)
    with pytest.raises(ServiceError, match=f"UpdateModelPackage with {next(iter(member))} is not supported"):
        call(service, "UpdateModelPackage", ModelPackageArn=arn, ModelApprovalStatus="Rejected", **member)
    assert _described(service, arn)["ModelApprovalStatus"] == "PendingManualApproval"


def test_a_group_is_found_by_its_arn_and_its_name_is_unique_regardless_of_case(
    service: LocalSageMaker,
) -> None:
    created = call(service, "CreateModelPackageGroup", ModelPackageGroupName="SentimentModels")
    arn = created["ModelPackageGroupArn"]
    assert arn.endswith(":model-package-group/sentimentmodels")
    assert call(service, "DescribeModelPackageGroup", ModelPackageGroupName=arn)[
        "ModelPackageGroupName"] == "SentimentModels"
    first = call(service, "CreateModelPackage", ModelPackageGroupName=arn,
                 InferenceSpecification=SPECIFICATION)["ModelPackageArn"]
    second = _version(service, "sentimentmodels")  # the RegisterModel step finds the group too
    assert first.endswith("model-package/sentimentmodels/1") and second.endswith("/sentimentmodels/2")
    listed = call(service, "ListModelPackages", ModelPackageGroupName=arn)["ModelPackageSummaryList"]
    assert [(p["ModelPackageGroupName"], p["ModelPackageVersion"]) for p in listed] == [
        ("SentimentModels", 1), ("SentimentModels", 2)]
    # A version is listed by its ARN alone, as SageMaker lists it (sagemaker-python-sdk issue 5606).
    assert [p["ModelPackageArn"] for p in listed] == [first, second]
    assert not any("ModelPackageName" in p for p in listed)
    with pytest.raises(ServiceError, match="already exists") as raised:
        call(service, "CreateModelPackageGroup", ModelPackageGroupName="sentimentmodels")
    assert raised.value.code == "ValidationException"
    assert len(call(service, "ListModelPackageGroups")["ModelPackageGroupSummaryList"]) == 1


def test_registry_listings_default_as_the_api_reference_says(service: LocalSageMaker) -> None:
    for name in ("first", "second", "third"):
        _version(service, name)
    groups = call(service, "ListModelPackageGroups")["ModelPackageGroupSummaryList"]
    assert [g["ModelPackageGroupName"] for g in groups] == ["first", "second", "third"]

    def listed(**request: Any) -> list[str]:
        packages = call(service, "ListModelPackages", **request)["ModelPackageSummaryList"]
        return [p["ModelPackageGroupName"] for p in packages]

    assert listed() == []  # unversioned packages only, and there are none
    every = ["first", "second", "third"]
    assert listed(ModelPackageType="Versioned") == listed(ModelPackageType="Both") == every
    assert listed(ModelPackageType="Unversioned") == listed(ModelPackageGroupName="second",
                                                            ModelPackageType="Unversioned") == []
    assert listed(ModelPackageGroupName="second") == ["second"]


def fn(name: str) -> str:
    """A Lambda function's ARN: what the local EventBridge delivers to."""
    return f"arn:aws:lambda:us-east-1:000000000000:function:{name}"


class RecordingFunctions:
    """What Lambda accepts for asynchronous invocation; a function named fn("missing") it refuses."""

    def __init__(self) -> None:
        self.invoked: list[tuple[str, Any]] = []

    def submit(self, name_or_arn: str, event: Any) -> str:
        if name_or_arn == fn("missing"):
            raise ServiceError("ResourceNotFoundException", f"Function not found: {fn('missing')}", 404)
        self.invoked.append((name_or_arn, event))
        return str(uuid.uuid4())


def recording(
    service: LocalSageMaker, pattern: dict[str, Any], *targets: dict[str, Any]
) -> RecordingFunctions:
    """A rule named "r" with these targets (one plain target if none), whose invocations are recorded."""
    functions = RecordingFunctions()
    service.events.deliveries.invocations = functions  # type: ignore[assignment]
    call(service, "PutRule", Name="r", EventPattern=json.dumps(pattern))
    call(service, "PutTargets", Rule="r", Targets=list(targets) or [{"Id": "1", "Arn": fn("deploy")}])
    return functions


def received(functions: RecordingFunctions, count: int) -> list[Any]:
    """The first `count` payloads the targets received. Events sent close together may arrive in
    either order (each is delivered on a thread of its own, and EventBridge promises no order)."""
    wait_until(lambda: len(functions.invoked) >= count, 10, f"{count} invocations")
    return [payload for _, payload in functions.invoked[:count]]


PACKAGE = {"InferenceSpecification": {"Containers": [{"Image": "i", "ModelDataUrl": "s3://b/m"}]},
           "ModelApprovalStatus": "PendingManualApproval"}
EVERY_PACKAGE_EVENT = {"source": ["aws.sagemaker"], "detail-type": ["SageMaker Model Package State Change"]}


def test_a_package_event_carries_the_envelope_and_the_detail_sagemaker_sends(service: LocalSageMaker) -> None:
    functions = recording(service, EVERY_PACKAGE_EVENT)
    arn = service.registry.register_model_package(
        {"ModelPackageGroupName": "g", **PACKAGE, "CertifyForMarketplace": False,
         "CustomerMetadataProperties": {"ModelDataSha256": "ab"}})
    call(service, "UpdateModelPackage", ModelPackageArn=arn, ModelApprovalStatus="Approved",
         ApprovalDescription="looked at it")
    # the creation's event has no UpdatedModelPackageFields, the approval's has
    created, approved = sorted(
        received(functions, 2), key=lambda event: "UpdatedModelPackageFields" in event["detail"]
    )
    described = call(service, "DescribeModelPackage", ModelPackageName=arn)
    assert set(created) == {"version", "id", "detail-type", "source", "account", "time", "region",
                            "resources", "detail"}
    assert (created["version"], created["source"], created["detail-type"], created["account"],
            created["region"], created["resources"]) == (
        "0", "aws.sagemaker", "SageMaker Model Package State Change", "000000000000", "us-east-1", [arn])
    assert str(uuid.UUID(created["id"])) == created["id"] != approved["id"]
    sent = datetime.strptime(created["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(sent.timestamp() - datetime.now(UTC).timestamp()) < 60
    detail = created["detail"]
    assert detail["CreationTime"] == round(described["CreationTime"] * 1000)
    assert {key: detail[key] for key in (
        "ModelPackageName", "ModelPackageGroupName", "ModelPackageVersion", "ModelPackageArn",
        "InferenceSpecification", "ModelPackageStatus", "ModelApprovalStatus", "CertifyForMarketplace",
        "CustomerMetadataProperties")} == {
        "ModelPackageName": "g/1", "ModelPackageGroupName": "g", "ModelPackageVersion": 1,
        "ModelPackageArn": arn, "InferenceSpecification": PACKAGE["InferenceSpecification"],
        "ModelPackageStatus": "Completed", "ModelApprovalStatus": "PendingManualApproval",
        "CertifyForMarketplace": False, "CustomerMetadataProperties": {"ModelDataSha256": "ab"}}
    assert "UpdatedModelPackageFields" not in detail and "CreatedBy" not in detail
    update = approved["detail"]
    assert update["ModelApprovalStatus"] == "Approved" and update["ApprovalDescription"] == "looked at it"
    assert update["UpdatedModelPackageFields"] == ["ApprovalDescription", "ModelApprovalStatus"]
    assert update["LastModifiedTime"] >= update["CreationTime"] == detail["CreationTime"]


def test_every_change_of_a_package_is_sent_and_rules_pick_by_pattern(service: LocalSageMaker) -> None:
    functions = recording(service, {"detail": {"ModelPackageGroupName": ["g"]}})
    pending = service.registry.register_model_package({"ModelPackageGroupName": "g", **PACKAGE})
    service.registry.register_model_package(
        {"ModelPackageGroupName": "g", **PACKAGE, "ModelApprovalStatus": "Approved"})
    call(service, "UpdateModelPackage", ModelPackageArn=pending, ModelApprovalStatus="Rejected")
    call(service, "UpdateModelPackage", ModelPackageArn=pending, ModelApprovalStatus="Rejected")  # no change
    call(service, "UpdateModelPackage", ModelPackageArn=pending, CustomerMetadataProperties={"k": "v"})
    call(service, "UpdateModelPackage", ModelPackageArn=pending, ModelApprovalStatus="Approved")
    seen = [(e["detail"]["ModelPackageVersion"], e["detail"]["ModelApprovalStatus"],
             e["detail"].get("UpdatedModelPackageFields", [])) for e in received(functions, 5)]
    assert sorted(seen) == sorted([
        (1, "PendingManualApproval", []), (2, "Approved", []), (1, "Rejected", ["ModelApprovalStatus"]),
        (1, "Rejected", ["CustomerMetadataProperties"]), (1, "Approved", ["ModelApprovalStatus"])])
    assert len(functions.invoked) == 5


def test_the_approval_rule_deploys_what_an_update_approves_and_not_what_the_pipeline_registered(
    service: LocalSageMaker,
) -> None:
    functions = recording(service, approval_rule_pattern(Settings(model_package_group="g")))
    registered = service.registry.register_model_package(  # the pipeline's own, deployed by its step
        {"ModelPackageGroupName": "g", **PACKAGE, "ModelApprovalStatus": "Approved"})
    call(service, "UpdateModelPackage", ModelPackageArn=registered, CustomerMetadataProperties={"k": "v"})
    pending = service.registry.register_model_package({"ModelPackageGroupName": "g", **PACKAGE})
    call(service, "UpdateModelPackage", ModelPackageArn=pending, ModelApprovalStatus="Approved")
    (event,) = received(functions, 1)
    assert event["detail"]["ModelPackageArn"] == pending
    call(service, "UpdateModelPackage", ModelPackageArn=pending, ModelApprovalStatus="Rejected")
    for status in ("PendingManualApproval", "Approved"):  # a rollback to the registered version
        call(service, "UpdateModelPackage", ModelPackageArn=registered, ModelApprovalStatus=status)
    assert [e["detail"]["ModelPackageArn"] for e in received(functions, 2)] == [pending, registered]
    assert len(functions.invoked) == 2


def test_targets_are_stored_whole_and_receive_their_input(service: LocalSageMaker) -> None:
    targets = [
        {"Id": "event", "Arn": fn("a"), "RetryPolicy": {"MaximumRetryAttempts": 2},
         "DeadLetterConfig": {"Arn": "arn:aws:sqs:us-east-1:000000000000:dlq"}},
        {"Id": "constant", "Arn": fn("b"), "Input": json.dumps({"rule": "r", "constant": True})},
        {"Id": "path", "Arn": fn("c"), "InputPath": "$.detail.ModelPackageArn"},
        {"Id": "absent", "Arn": fn("d"), "InputPath": "$.detail.Nothing"},
    ]
    functions = recording(service, EVERY_PACKAGE_EVENT, *targets)
    assert call(service, "ListTargetsByRule", Rule="r")["Targets"] == targets
    arn = service.registry.register_model_package({"ModelPackageGroupName": "g", **PACKAGE})
    received(functions, 4)
    payloads = dict(functions.invoked)
    assert payloads[fn("a")]["detail"]["ModelPackageArn"] == arn
    assert payloads[fn("b")] == {"rule": "r", "constant": True}
    assert (payloads[fn("c")], payloads[fn("d")]) == (arn, None)


@pytest.mark.parametrize(
    ("target", "refusal"),
    [
        ({"InputTransformer": {"InputTemplate": "<arn>"}}, "InputTransformer is not supported locally"),
        ({"Input": "{}", "InputPath": "$"}, "only one of Input, InputPath and InputTransformer"),
        ({"Input": "{nope"}, "Input is not valid JSON"),
        ({"InputPath": "$.resources[0]"}, "InputPath '\\$.resources\\[0\\]' is not supported locally"),
    ],
)
def test_a_target_whose_input_cannot_be_given_is_refused(
    service: LocalSageMaker, target: dict[str, Any], refusal: str
) -> None:
    call(service, "PutRule", Name="r", EventPattern=json.dumps(EVERY_PACKAGE_EVENT))
    with pytest.raises(ServiceError, match=refusal) as raised:
        call(service, "PutTargets", Rule="r", Targets=[{"Id": "t", "Arn": fn("a"), **target}])
    assert raised.value.code == "ValidationException"
    assert "Targets" not in call(service, "ListTargetsByRule", Rule="r")


def test_a_target_lambda_refuses_is_logged_with_its_dead_letter_queue(
    service: LocalSageMaker, caplog: pytest.LogCaptureFixture
) -> None:
    """Lambda's retries of a function error are its own (test_lambda_async.py); an event for a function
    that does not exist is what EventBridge sends to the target's dead-letter queue without retrying
    (test_event_deliveries.py retries the others)."""
    dead_letters = {"Arn": "arn:aws:sqs:us-east-1:000000000000:dlq"}
    functions = recording(service, EVERY_PACKAGE_EVENT, {"Id": "1", "Arn": fn("deploy")},
                          {"Id": "2", "Arn": fn("missing"), "DeadLetterConfig": dead_letters})
    service.registry.register_model_package({"ModelPackageGroupName": "g", **PACKAGE})
    assert [arn for arn, _ in functions.invoked] == [fn("deploy")]
    queue = "arn:aws:sqs:us-east-1:000000000000:dlq"
    assert f"target {fn('missing')} not delivered after 1 attempts ({queue}): ResourceNotFoundException: " \
        "Function not found" in caplog.text


def test_list_rules_pages_by_name_within_a_prefix(service: LocalSageMaker) -> None:
    for name in ("b-2", "a", "b-1", "b-3"):
        call(service, "PutRule", Name=name, EventPattern=json.dumps(EVERY_PACKAGE_EVENT), Description=name)
    first = call(service, "ListRules", NamePrefix="b-", Limit=2)
    assert [r["Name"] for r in first["Rules"]] == ["b-1", "b-2"]
    rest = call(service, "ListRules", NamePrefix="b-", Limit=2, NextToken=first["NextToken"])
    assert [r["Name"] for r in rest["Rules"]] == ["b-3"] and "NextToken" not in rest
    (rule,) = call(service, "ListRules", NamePrefix="a")["Rules"]
    assert rule == {**call(service, "DescribeRule", Name="a"), "Arn": rule["Arn"]}
    assert (rule["EventBusName"], rule["State"], rule["Description"]) == ("default", "ENABLED", "a")
    assert len(call(service, "ListRules")["Rules"]) == 4


ENVELOPE_OF_TEST = {"id": "1", "account": "000000000000", "source": "aws.sagemaker", "detail-type": "x",
                    "time": "2024-01-01T00:00:00Z", "region": "us-east-1", "resources": []}


def test_test_event_pattern_matches_a_whole_event(service: LocalSageMaker) -> None:
    event = {**ENVELOPE_OF_TEST, "detail": {"a": "b"}}

    def test(pattern: Any, tried: Any = event) -> bool:
        return bool(call(service, "TestEventPattern", EventPattern=json.dumps(pattern),
                         Event=json.dumps(tried))["Result"])

    assert test({"source": ["aws.sagemaker"], "detail": {"a": ["b"]}})
    assert not test({"detail": {"a": ["c"]}})
    # EventBridge matches an event without resources, whatever its reference says
    assert test({"source": ["aws.sagemaker"]}, {k: v for k, v in event.items() if k != "resources"})
    for broken in ({k: v for k, v in event.items() if k not in ("id", "time")}, "not an event", [event]):
        with pytest.raises(ServiceError) as raised:
            test({"source": ["aws.sagemaker"]}, broken)
        assert (raised.value.code, raised.value.message) == (
            "ValidationException", "Parameter Event is not valid.")
    with pytest.raises(ServiceError, match='Reason: "source" must be an object or an array') as raised:
        test({"source": "aws.sagemaker"})
    assert raised.value.code == "InvalidEventPatternException"


def test_put_events_sends_each_entry_to_the_rules_it_matches(service: LocalSageMaker) -> None:
    functions = recording(service, {"source": ["my.app"], "detail": {"n": [2]}})
    answer = call(service, "PutEvents", Entries=[
        {"Source": "my.app", "DetailType": "t", "Detail": json.dumps({"n": 1})},
        {"Source": "aws.sagemaker", "DetailType": "t", "Detail": "{}"},
        {"Source": "my.app", "DetailType": "t", "Detail": "[1]"},
        {"Source": "my.app", "DetailType": "t", "Detail": "{}", "EventBusName": "other"},
        {"Source": "my.app", "DetailType": "t", "Detail": json.dumps({"n": 2}), "Resources": ["arn:x"],
         "Time": 1700000000},
    ])
    assert answer["FailedEntryCount"] == 3
    assert [e.get("ErrorCode") for e in answer["Entries"]] == [
        None, "NotAuthorizedForSourceException", "MalformedDetail", "ResourceNotFoundException", None]
    (event,) = received(functions, 1)
    assert event["id"] == answer["Entries"][4]["EventId"]
    assert (event["source"], event["detail-type"], event["resources"], event["time"], event["detail"]) == (
        "my.app", "t", ["arn:x"], "2023-11-14T22:13:20Z", {"n": 2})
    assert len(functions.invoked) == 1


def test_put_events_takes_entries_of_one_megabyte_together_and_refuses_a_byte_more(
    service: LocalSageMaker,
) -> None:
    """EventBridge counts an entry as its Source, DetailType, Detail and Resources in UTF-8 bytes and
    14 for a Time, and refuses a request whose entries hold more than 1 MB together, delivering none."""
    functions = recording(service, {"source": ["my.app"]})

    def entries(detail_bytes: int) -> list[dict[str, Any]]:
        # Two entries: the second's Detail holds the rest (é is two bytes in UTF-8).
        first = {"Source": "my.app", "DetailType": "t", "Detail": json.dumps({"é": "x"}, ensure_ascii=False),
                 "Resources": ["arn:aws:s3:::b"], "Time": 1700000000}
        counted = 6 + 1 + len(first["Detail"].encode()) + 14 + 14 + 6 + 1
        padding = detail_bytes - counted - len('{"p": ""}')
        return [first, {"Source": "my.app", "DetailType": "t", "Detail": json.dumps({"p": "y" * padding})}]

    answer = call(service, "PutEvents", Entries=entries(1024 * 1024))
    assert answer["FailedEntryCount"] == 0
    assert len(received(functions, 2)) == 2
    with pytest.raises(ServiceError) as raised:
        call(service, "PutEvents", Entries=entries(1024 * 1024 + 1))
    assert (raised.value.code, raised.value.message) == (
        "ValidationException", "Total size of the entries in the request is over the limit.")
    assert len(functions.invoked) == 2


def test_an_approval_reaches_only_the_rule_of_its_own_group(service: LocalSageMaker) -> None:
    functions = RecordingFunctions()
    service.events.deliveries.invocations = functions  # type: ignore[assignment]
    pattern = {"source": ["aws.sagemaker"], "detail": {
        "ModelPackageGroupName": ["mine"], "ModelApprovalStatus": ["Approved"]}}
    call(service, "PutRule", Name="deploy-mine", EventPattern=json.dumps(pattern))
    call(service, "PutTargets", Rule="deploy-mine", Targets=[{"Id": "1", "Arn": fn("deploy")}])
    request = {"InferenceSpecification": {"Containers": [{"Image": "i", "ModelDataUrl": "s3://b/m"}]},
               "ModelApprovalStatus": "PendingManualApproval"}
    other = service.registry.register_model_package({"ModelPackageGroupName": "other", **request})
    mine = service.registry.register_model_package({"ModelPackageGroupName": "mine", **request})
    for arn in (other, mine):
        call(service, "UpdateModelPackage", ModelPackageArn=arn, ModelApprovalStatus="Approved")
    wait_until(lambda: functions.invoked, 10, "the rule's target to be invoked")
    assert [(target, event["detail"]["ModelPackageArn"]) for target, event in functions.invoked] == [
        (fn("deploy"), mine)]


def test_a_pattern_that_is_not_a_rule_pattern_is_refused(service: LocalSageMaker) -> None:
    with pytest.raises(ServiceError, match="not valid") as raised:
        call(service, "PutRule", Name="r", EventPattern=json.dumps({"source": [{"prefix": 1}]}))
    assert raised.value.code == "InvalidEventPatternException"
    assert "prefix match pattern must be a string" in raised.value.message
    with pytest.raises(ServiceError) as raised:
        call(service, "DescribeRule", Name="r")
    assert (raised.value.code, raised.value.message) == (
        "ResourceNotFoundException", "Rule r does not exist on EventBus default.")


def test_content_filters_pick_the_events_a_rule_delivers(service: LocalSageMaker) -> None:
    functions = recording(service, {"source": [{"prefix": "my."}], "detail": {
        "size": [{"numeric": [">", 10]}], "state": [{"anything-but": "draft"}], "note": [{"exists": False}]}})
    sent = [{"size": 11, "state": "final"}, {"size": 10, "state": "final"}, {"size": 11, "state": "draft"},
            {"size": 11, "state": "final", "note": "x"}, {"size": "11", "state": "final"}]
    answer = call(service, "PutEvents", Entries=[
        {"Source": source, "DetailType": "t", "Detail": json.dumps(detail)}
        for source in ("my.app", "other.app") for detail in sent])
    assert answer["FailedEntryCount"] == 0
    (event,) = received(functions, 1)
    assert (event["source"], event["detail"]) == ("my.app", sent[0])
    assert call(service, "TestEventPattern", EventPattern=json.dumps({"detail": {"$or": [
        {"size": [{"numeric": ["<", 5]}]}, {"state": [{"equals-ignore-case": "FINAL"}]}]}}),
        Event=json.dumps({**ENVELOPE_OF_TEST, "detail": sent[0]}))["Result"] is True
    assert len(functions.invoked) == 1


def test_a_content_filter_picks_the_package_events_a_rule_delivers(service: LocalSageMaker) -> None:
    functions = recording(service, {"source": ["aws.sagemaker"], "detail": {
        "ModelPackageGroupName": [{"wildcard": "team-*-prod"}]}})
    service.registry.register_model_package({"ModelPackageGroupName": "team-a-dev", **PACKAGE})
    arn = service.registry.register_model_package({"ModelPackageGroupName": "team-a-prod", **PACKAGE})
    (event,) = received(functions, 1)
    assert event["detail"]["ModelPackageArn"] == arn and len(functions.invoked) == 1


def test_a_target_the_local_eventbridge_cannot_deliver_to_is_refused_by_name(service: LocalSageMaker) -> None:
    recording(service, EVERY_PACKAGE_EVENT)
    for target in ("arn:aws:sqs:us-east-1:000000000000:queue", "arn:aws:sns:us-east-1:000000000000:topic"):
        with pytest.raises(ServiceError) as raised:
            call(service, "PutTargets", Rule="r", Targets=[{"Id": "2", "Arn": target}])
        service_name = target.split(":")[2]
        assert (raised.value.code, raised.value.message) == ("ValidationException", (
            f"Target 2: {service_name} targets are not supported locally: the local EventBridge delivers "
            "events to Lambda functions only."))
    assert [t["Arn"] for t in call(service, "ListTargetsByRule", Rule="r")["Targets"]] == [fn("deploy")]


def test_a_rule_takes_five_targets(service: LocalSageMaker) -> None:
    targets = [{"Id": str(n), "Arn": fn(str(n))} for n in range(5)]
    recording(service, EVERY_PACKAGE_EVENT, *targets)
    call(service, "PutTargets", Rule="r", Targets=[{"Id": "4", "Arn": fn("replaced")}])  # still five
    with pytest.raises(ServiceError) as raised:
        call(service, "PutTargets", Rule="r",
             Targets=[{"Id": "3", "Arn": fn("c")}, {"Id": "5", "Arn": fn("5")}])
    assert (raised.value.code, raised.value.message) == (
        "LimitExceededException", "The requested resource exceeds the maximum number allowed.")
    listed = call(service, "ListTargetsByRule", Rule="r")["Targets"]
    assert [(t["Id"], t["Arn"]) for t in listed] == [
        ("0", fn("0")), ("1", fn("1")), ("2", fn("2")), ("3", fn("3")), ("4", fn("replaced"))]


def test_a_rule_with_targets_is_not_deleted_and_deleting_it_twice_succeeds(service: LocalSageMaker) -> None:
    recording(service, EVERY_PACKAGE_EVENT, {"Id": "1", "Arn": fn("a")})
    with pytest.raises(ServiceError) as raised:
        call(service, "DeleteRule", Name="r")
    assert (raised.value.code, raised.value.message) == (
        "ValidationException", "Rule can't be deleted since it has targets.")
    assert call(service, "DescribeRule", Name="r")["Name"] == "r"
    call(service, "RemoveTargets", Rule="r", Ids=["1"])
    call(service, "DeleteRule", Name="r")
    call(service, "DeleteRule", Name="r")  # as EventBridge: every call succeeds
    assert call(service, "ListRules")["Rules"] == []


@pytest.mark.parametrize(
    ("request_members", "refusal"),
    [
        ({}, "^Parameter\\(s\\) EventPattern or ScheduleExpression must be specified.$"),
        ({"ScheduleExpression": "rate(5 minutes)"}, "ScheduleExpression is not supported locally"),
        ({"ScheduleExpression": "rate(5 minutes)", "EventPattern": json.dumps(EVERY_PACKAGE_EVENT)},
         "ScheduleExpression is not supported locally"),
    ],
)
def test_a_rule_needs_a_pattern_and_schedules_are_refused_by_name(
    service: LocalSageMaker, request_members: dict[str, Any], refusal: str
) -> None:
    with pytest.raises(ServiceError, match=refusal) as raised:
        call(service, "PutRule", Name="r", **request_members)
    assert raised.value.code == "ValidationException"
    assert call(service, "ListRules")["Rules"] == []


def test_put_rule_replaces_the_rule_and_keeps_its_targets(service: LocalSageMaker) -> None:
    call(service, "PutRule", Name="r", EventPattern=json.dumps(EVERY_PACKAGE_EVENT), Description="first",
         RoleArn=ROLE, State="DISABLED")
    call(service, "PutTargets", Rule="r", Targets=[{"Id": "1", "Arn": fn("a")}])
    assert call(service, "DescribeRule", Name="r")["Description"] == "first"
    pattern = json.dumps({"source": ["my.app"]})
    call(service, "PutRule", Name="r", EventPattern=pattern)
    rule = call(service, "DescribeRule", Name="r")
    assert (rule["EventPattern"], rule["State"]) == (pattern, "ENABLED")
    assert "Description" not in rule and "RoleArn" not in rule
    assert [t["Id"] for t in call(service, "ListTargetsByRule", Rule="r")["Targets"]] == ["1"]


@pytest.mark.parametrize(
    ("target", "body", "status", "code"),
    [
        ("SageMaker.ListPipelines", b"{}", 200, None),
        ("SageMaker.NoSuchOperation", b"{}", 400, "UnknownOperationException"),
        ("Other.ListPipelines", b"{}", 400, "UnknownOperationException"),
        ("SageMaker.ListPipelines", b"[1]", 400, "SerializationException"),
        ("SageMaker.ListPipelines", b"{nope", 400, "SerializationException"),
        ("SageMaker.DescribePipeline", b"{}", 400, "ValidationException"),
        ("SageMaker.DescribePipeline", b'{"PipelineName": "ghost"}', 400, "ResourceNotFound"),
    ],
)
def test_the_json_protocol_answers_in_aws_shapes(
    service: LocalSageMaker, target: str, body: bytes, status: int, code: str | None
) -> None:
    reply = Dispatcher(service).json_api(target, body)
    assert reply.status == status
    document = json.loads(reply.body)
    if code is None:
        assert document == {"PipelineSummaries": []}
    else:
        assert document["__type"] == code and reply.headers["x-amzn-ErrorType"] == code


def test_only_api_operations_are_reachable_by_name(service: LocalSageMaker) -> None:
    # Helpers of the service (what RegisterModel steps call) are not API operations.
    assert service.operation("SageMaker", "RegisterModelPackage") is None
    assert service.operation("SageMaker", "CreatePipeline") is not None
    assert service.operation("AWSEvents", "PutRule") is not None


def test_a_step_whose_resolved_arguments_break_the_request_shape_fails_unrun(service: LocalSageMaker) -> None:
    image = f"683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:{local_sklearn_release()}-1"
    count = {"Get": "Parameters.Count"}
    cluster = {"InstanceType": "ml.m5.large", "InstanceCount": count, "VolumeSizeInGB": 30}
    step = {"Name": "Prep", "Type": "Processing", "Arguments": {
        "ProcessingResources": {"ClusterConfig": cluster},
        "AppSpecification": {"ImageUri": {"Get": "Parameters.Image"}, "ContainerEntrypoint": ["python3"]},
        "RoleArn": "arn:aws:iam::000000000000:role/local-sagemaker"}}
    document = {"Version": "2020-12-01", "Steps": [step], "Parameters": [
        {"Name": "Count", "Type": "String", "DefaultValue": "many"},
        {"Name": "Image", "Type": "String", "DefaultValue": image}]}
    call(service, "CreatePipeline", PipelineName="P", PipelineDefinition=json.dumps(document),
         RoleArn="arn:aws:iam::000000000000:role/local-sagemaker")
    arn = call(service, "StartPipelineExecution", PipelineName="P")["PipelineExecutionArn"]

    def ended() -> dict[str, Any] | None:
        body = call(service, "DescribePipelineExecution", PipelineExecutionArn=arn)
        return body if body["PipelineExecutionStatus"] != "Executing" else None

    assert wait_until(ended, 30, "the execution to end")["PipelineExecutionStatus"] == "Failed"
    (listed,) = call(service, "ListPipelineExecutionSteps", PipelineExecutionArn=arn)[
        "PipelineExecutionSteps"]
    assert listed["FailureReason"].startswith(
        "ClientError: Failed to invoke sagemaker:CreateProcessingJob. Error Details: "
        "1 validation error detected: "
    )
    assert "instanceCount" in listed["FailureReason"]
    assert listed["Metadata"] == {}  # no job was created


# Pipelines' own semantics: caching records, parallelism, selective execution -----------------

GATED = {
    "Version": "2020-12-01",
    "Parameters": [{"Name": "Go", "Type": "Boolean", "DefaultValue": True}],
    "Steps": [
        {"Name": "Gate", "Type": "Condition", "Arguments": {
            "Conditions": [{"Type": "Equals", "LeftValue": {"Get": "Parameters.Go"}, "RightValue": True}],
            "IfSteps": [], "ElseSteps": []}},
        # Stop fails as it runs (no text is greater than a number); a Fail step would end the run
        # too, but SageMaker refuses a step that depends on one
        {"Name": "Stop", "Type": "Condition", "DependsOn": ["Gate"], "Arguments": {
            "Conditions": [{"Type": "GreaterThan", "LeftValue": "after the gate", "RightValue": 2}],
            "IfSteps": [], "ElseSteps": []}},
        {"Name": "After", "Type": "Fail", "DependsOn": ["Stop"], "Arguments": {"ErrorMessage": "never"}},
    ],
}


def ended(service: LocalSageMaker, arn: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body = call(service, "DescribePipelineExecution", PipelineExecutionArn=arn)
        return body if body["PipelineExecutionStatus"] not in ("Executing", "Stopping") else None

    return wait_until(done, 30, "the execution to end")


def listed_steps(service: LocalSageMaker, arn: str) -> dict[str, dict[str, Any]]:
    steps = call(service, "ListPipelineExecutionSteps", PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    return {s["StepName"]: s for s in steps}


def fail_message(service: LocalSageMaker, arn: str) -> str:
    """The message of the Fail step that ended an execution (the execution's own FailureReason is
    SageMaker's one sentence, whichever step failed)."""
    assert ended(service, arn)["FailureReason"] == EXECUTION_FAILURE
    (failed,) = [s for s in listed_steps(service, arn).values() if "Fail" in s.get("Metadata", {})]
    return str(failed["FailureReason"])


def gated_source(service: LocalSageMaker, name: str = "P") -> str:
    """A finished (Failed) execution in which Gate succeeded and Stop failed."""
    call(service, "CreatePipeline", RoleArn=ROLE, PipelineName=name, PipelineDefinition=json.dumps(GATED))
    arn = call(service, "StartPipelineExecution", PipelineName=name)["PipelineExecutionArn"]
    assert ended(service, arn)["PipelineExecutionStatus"] == "Failed"
    return str(arn)


def test_a_selective_execution_lists_reused_steps_and_runs_the_selected_ones(service: LocalSageMaker) -> None:
    source = gated_source(service)
    config = {"SourcePipelineExecutionArn": source, "SelectedSteps": [{"StepName": "Stop"}]}
    arn = call(service, "StartPipelineExecution", PipelineName="P",
               SelectiveExecutionConfig=config)["PipelineExecutionArn"]
    assert ended(service, arn)["SelectiveExecutionConfig"] == config
    steps = listed_steps(service, arn)
    assert set(steps) == {"Gate", "Stop"}  # After is downstream of the selection: not run
    assert steps["Gate"]["StepStatus"] == "Succeeded"
    assert steps["Gate"]["SelectiveExecutionResult"] == {"SourcePipelineExecutionArn": source}
    assert steps["Stop"]["StepStatus"] == "Failed" and "SelectiveExecutionResult" not in steps["Stop"]


@pytest.mark.parametrize(
    ("selected", "with_source", "message"),
    [
        (["Stop"], False,
         r"^Invalid SourcePipelineExecutionArn: null\. "
         r"The selected steps \[Stop\] have dependencies on \[Gate\]$"),
        (["After"], True, "Stop did not succeed in the source execution"),
        (["Gate", "After"], True, "Stop lie between selected steps"),
        (["Ghost"], True, "Ghost are not in the pipeline"),
        ([], True, "selectedSteps' failed to satisfy constraint: Member must have length greater"),
    ],
)
def test_a_selective_execution_is_checked_as_sagemaker_checks_it(
    service: LocalSageMaker, selected: list[str], with_source: bool, message: str
) -> None:
    source = gated_source(service)
    config: dict[str, Any] = {"SelectedSteps": [{"StepName": name} for name in selected]}
    if with_source:
        config["SourcePipelineExecutionArn"] = source
    with pytest.raises(ServiceError, match=message) as raised:
        call(service, "StartPipelineExecution", PipelineName="P", SelectiveExecutionConfig=config)
    assert raised.value.code == "ValidationException"


def test_a_selective_source_must_be_a_finished_execution_of_the_same_pipeline(
    service: LocalSageMaker,
) -> None:
    other = gated_source(service, "Other")
    source = gated_source(service)
    selected = [{"StepName": "Stop"}]
    with pytest.raises(ServiceError, match="is not an execution of P"):
        call(service, "StartPipelineExecution", PipelineName="P",
             SelectiveExecutionConfig={"SourcePipelineExecutionArn": other, "SelectedSteps": selected})
    service.pipelines.update_execution(source, PipelineExecutionStatus="Stopped")
    with pytest.raises(ServiceError, match="is Stopped; it must be Succeeded or Failed"):
        call(service, "StartPipelineExecution", PipelineName="P",
             SelectiveExecutionConfig={"SourcePipelineExecutionArn": source, "SelectedSteps": selected})


def test_parallelism_is_stored_and_the_execution_level_wins(service: LocalSageMaker) -> None:
    call(service, "CreatePipeline", RoleArn=ROLE, PipelineName="P", PipelineDefinition=FAIL_ONLY,
         ParallelismConfiguration={"MaxParallelExecutionSteps": 3})
    assert call(service, "DescribePipeline", PipelineName="P")["ParallelismConfiguration"] == {
        "MaxParallelExecutionSteps": 3}
    inherited = call(service, "StartPipelineExecution", PipelineName="P")["PipelineExecutionArn"]
    own = call(service, "StartPipelineExecution", PipelineName="P",
               ParallelismConfiguration={"MaxParallelExecutionSteps": 1})["PipelineExecutionArn"]
    assert ended(service, inherited)["ParallelismConfiguration"] == {"MaxParallelExecutionSteps": 3}
    assert ended(service, own)["ParallelismConfiguration"] == {"MaxParallelExecutionSteps": 1}
    for bad in (0, "2"):
        with pytest.raises(ServiceError, match="maxParallelExecutionSteps"):
            call(service, "StartPipelineExecution", PipelineName="P",
                 ParallelismConfiguration={"MaxParallelExecutionSteps": bad})


def test_invalid_retry_policies_are_refused_at_create(service: LocalSageMaker) -> None:
    definition = {"Version": "2020-12-01", "Steps": [{
        "Name": "Prep", "Type": "Processing", "Arguments": {},
        "RetryPolicies": [{"ExceptionType": ["Bogus.ERROR"], "MaxAttempts": 999, "IntervalSeconds": -5}]}]}
    with pytest.raises(ServiceError, match="step Prep: MaxAttempts must be between 1 and 20"):
        call(service, "CreatePipeline", RoleArn=ROLE, PipelineName="P",
             PipelineDefinition=json.dumps(definition))


def record_step(service: LocalSageMaker, pipeline: str, step: dict[str, Any]) -> str:
    """An execution of `pipeline` holding one recorded step; its ARN."""
    database = service.context.database
    pipeline_arn = f"arn:aws:sagemaker:us-east-1:000000000000:pipeline/{pipeline}"
    arn = f"{pipeline_arn}/execution/{len(database.executions())}"
    database.save_execution(
        {"PipelineArn": pipeline_arn, "PipelineExecutionArn": arn, "CreationTime": step["EndTime"]})
    service.pipelines.save_step(arn, {"StepName": "Prep", **step})
    return arn


def test_the_cache_serves_the_latest_successful_run_of_the_same_pipeline(service: LocalSageMaker) -> None:
    pipeline = "arn:aws:sagemaker:us-east-1:000000000000:pipeline/p"
    older = record_step(service, "p", {"StepStatus": "Succeeded", "_CacheKey": "k", "EndTime": 100.0})
    record_step(service, "p", {"StepStatus": "Failed", "_CacheKey": "k", "EndTime": 200.0})
    newer = record_step(service, "p", {"StepStatus": "Succeeded", "_CacheKey": "k", "EndTime": 300.0})
    record_step(service, "q", {"StepStatus": "Succeeded", "_CacheKey": "k", "EndTime": 400.0})
    record_step(service, "p", {"StepStatus": "Succeeded", "EndTime": 500.0,  # reused, not run
                               "CacheHitResult": {"SourcePipelineExecutionArn": older}})
    lookup = service.pipelines.cached_step
    assert lookup(pipeline, "Prep", "k", None) == (newer, service.context.database.steps(newer)[0])
    assert lookup(pipeline, "Prep", "k", 150.0)[0] == newer  # type: ignore[index]
    assert lookup(pipeline, "Prep", "k", 301.0) is None  # expired
    assert lookup(pipeline, "Prep", "other-key", None) is None
    assert lookup(pipeline, "Train", "k", None) is None


def test_the_step_list_shows_cache_hits_and_attempts_but_not_the_key(service: LocalSageMaker) -> None:
    source = gated_source(service)
    journal = ExecutionJournal(service.pipelines, source)
    journal.step_started("Prep", "Processing", None, None, datetime.now(UTC))
    journal.step_retried("Prep", "InternalServerError: once")
    hit = StepOutcome("Succeeded", cache_key="k", cache_hit=f"{source}-earlier")
    journal.step_finished("Prep", hit, datetime.now(UTC))
    prep = listed_steps(service, source)["Prep"]
    assert prep["AttemptCount"] == 2
    assert prep["CacheHitResult"] == {"SourcePipelineExecutionArn": f"{source}-earlier"}
    assert "_CacheKey" not in prep and service.context.database.steps(source)[-1]["_CacheKey"] == "k"


# Stop: a real job process --------------------------------------------------------------------

CODE = "s3://bucket/code/sleeper.py"
SLEEPER = b"""
import os, pathlib, time
marks = pathlib.Path(os.environ["MARKS"])
marks.mkdir(parents=True, exist_ok=True)
(marks / "pid").write_text(str(os.getpid()))
time.sleep(300)
"""


def sleeping_pipeline(run: str) -> str:
    """A pipeline whose step Sleep runs SLEEPER, with `run` in its environment (TEST_RUN), which
    finds its process on this machine (its pid is its own PID namespace's)."""
    code_dir = "/opt/ml/processing/input/code"
    sleep = {
        "Name": "Sleep",
        "Type": "Processing",
        "Arguments": {
            "ProcessingResources": {
                "ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30}
            },
            "RoleArn": ROLE,
            "AppSpecification": {
                "ImageUri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:"
                f"{local_sklearn_release()}-1-cpu-py3",
                "ContainerEntrypoint": ["python3", f"{code_dir}/sleeper.py"],
            },
            "Environment": {"MARKS": MARKS, "TEST_RUN": run},
            "ProcessingInputs": [{"InputName": "code", "S3Input": {
                "S3Uri": CODE, "LocalPath": code_dir, "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
        },
    }
    after = {"Name": "After", "Type": "Fail", "DependsOn": ["Sleep"], "Arguments": {"ErrorMessage": "x"}}
    return json.dumps({"Version": "2020-12-01", "Steps": [sleep, after]})


def test_stop_ends_the_running_step_stopped_and_its_process(service: LocalSageMaker) -> None:
    service.context.store.put_bytes(CODE, SLEEPER)
    run = uuid.uuid4().hex
    call(service, "CreatePipeline", RoleArn=ROLE, PipelineName="P",
         PipelineDefinition=sleeping_pipeline(run))
    arn = call(service, "StartPipelineExecution", PipelineName="P")["PipelineExecutionArn"]
    job = running_job(service, arn, "Sleep", "ProcessingJob")  # followable while it runs
    pid_file = marks_of(service, arn, job) / "pid"
    wait_until(lambda: pid_file.is_file() and pid_file.read_text(), 30, "the job to start")
    assert processes_with(f"TEST_RUN={run}"), "the job's processes, found by their environment"
    (running,) = listed_steps(service, arn).values()
    described = call(service, "DescribeProcessingJob", ProcessingJobName=job)
    assert (running["StepStatus"], described["ProcessingJobStatus"]) == ("Executing", "InProgress")
    assert "ProcessingEndTime" not in described

    call(service, "StopPipelineExecution", PipelineExecutionArn=arn)
    status = call(service, "DescribePipelineExecution", PipelineExecutionArn=arn)["PipelineExecutionStatus"]
    assert status in ("Stopping", "Stopped")
    wait_until(
        lambda: call(service, "DescribePipelineExecution", PipelineExecutionArn=arn)[
            "PipelineExecutionStatus"] == "Stopped",
        30, "the execution to stop",
    )
    (step,) = call(service, "ListPipelineExecutionSteps", PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    assert step["StepName"] == "Sleep" and step["StepStatus"] == "Stopped" and "FailureReason" not in step
    assert processes_with(f"TEST_RUN={run}") == []
    assert call(service, "DescribeProcessingJob", ProcessingJobName=job)["ProcessingJobStatus"] == "Stopped"


# A training script that saves its model on SIGTERM, but only once the test lets it: until then its
# job is Stopping, whatever the time it takes (within the 120 s SageMaker gives it).
SAVES_WHEN_RELEASED = b"""
import os, pathlib, signal, time
marks = pathlib.Path(os.environ["MARKS"])
marks.mkdir(parents=True, exist_ok=True)

def save(signum, frame):
    (marks / "term").write_text("")
    while not (marks / "release").exists():
        time.sleep(0.05)
    pathlib.Path(os.environ["SM_MODEL_DIR"], "model.json").write_text("saved on SIGTERM")
    raise SystemExit(0)

signal.signal(signal.SIGTERM, save)
(marks / "pid").write_text(str(os.getpid()))
time.sleep(600)
"""


def running_training(service: LocalSageMaker) -> tuple[str, str, Path, str]:
    """An execution whose one step, Train, runs SAVES_WHEN_RELEASED: (execution ARN, job name, the
    job's marks folder, the TEST_RUN in its environment, which finds its process on this machine)."""
    run = uuid.uuid4().hex
    service.context.store.put_bytes(f"{BUCKET}/code/saves.tar.gz", source_tar(SAVES_WHEN_RELEASED))
    step = training_step("Train", "saves.tar.gz")
    step["Arguments"]["Environment"] = {"MARKS": MARKS, "TEST_RUN": run}
    step["Arguments"]["StoppingCondition"] = {"MaxRuntimeInSeconds": 3600}
    call(service, "CreatePipeline", RoleArn=ROLE, PipelineName="T",
         PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": [step]}))
    arn = call(service, "StartPipelineExecution", PipelineName="T")["PipelineExecutionArn"]
    job = running_job(service, arn, "Train", "TrainingJob")
    marks = marks_of(service, arn, job)
    wait_until(lambda: (marks / "pid").is_file() and (marks / "pid").read_text(), 60, "the job to start")
    return arn, job, marks, run


def training(service: LocalSageMaker, job: str) -> dict[str, Any]:
    return call(service, "DescribeTrainingJob", TrainingJobName=job)


def refusal(service: LocalSageMaker, operation: str, **request: Any) -> str:
    with pytest.raises(ServiceError) as refused:
        call(service, operation, **request)
    assert refused.value.code == "ValidationException"
    return refused.value.message


def phases(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(t["Status"], t["StatusMessage"]) for t in body["SecondaryStatusTransitions"]]


def model_files(service: LocalSageMaker, body: dict[str, Any]) -> set[str]:
    data = service.context.store.get_bytes(body["ModelArtifacts"]["S3ModelArtifacts"])
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return set(archive.getnames())


STOPPING = ("Stopping", "Stopping the training job")  # SageMaker's words, as its SDK logs them
STOPPED = ("Stopped", "Training job stopped")


def test_a_stopped_training_job_is_stopping_until_its_process_has_saved_its_model(
    service: LocalSageMaker,
) -> None:
    _, job, marks, run = running_training(service)
    assert processes_with(f"TEST_RUN={run}"), "the job's processes, found by their environment"
    asked = training(service, job)["LastModifiedTime"]

    assert call(service, "StopTrainingJob", TrainingJobName=job) == {}

    stopping = training(service, job)  # at once
    assert (stopping["TrainingJobStatus"], stopping["SecondaryStatus"]) == ("Stopping", "Stopping")
    assert phases(stopping)[-2:] == [("Training", "Training image download completed. Training in progress."),
                                     STOPPING]
    assert stopping["LastModifiedTime"] >= asked and "TrainingEndTime" not in stopping
    wait_until(lambda: (marks / "term").exists(), 30, "the job's process to get SIGTERM")
    assert training(service, job)["TrainingJobStatus"] == "Stopping"  # still saving its model
    assert refusal(service, "StopTrainingJob", TrainingJobName=job) == (
        "The request was rejected because the training job is in status Stopping."
    )

    (marks / "release").write_text("")
    stopped = wait_until(
        lambda: (body := training(service, job))["TrainingJobStatus"] == "Stopped" and body, 60, "its stop"
    )
    assert stopped["SecondaryStatus"] == "Stopped"
    assert [status for status, _ in phases(stopped)] == [
        "Starting", "Downloading", "Training", "Stopping", "Stopped"
    ]
    assert phases(stopped)[-2:] == [STOPPING, STOPPED]
    assert model_files(service, stopped) == {"model.json"}  # what it saved after SIGTERM
    assert processes_with(f"TEST_RUN={run}") == []
    assert refusal(service, "StopTrainingJob", TrainingJobName=job) == (
        "The request was rejected because the training job is in status Stopped."
    )


def test_only_a_job_in_progress_can_be_stopped(service: LocalSageMaker) -> None:
    started = "2026-01-02T03:04:05.000Z"
    service.jobs.save_job("ProcessingJob", {"ProcessingJobName": "done", "ProcessingJobStatus": "Completed",
                                            "ProcessingStartTime": started})
    service.jobs.save_job("TrainingJob", {"TrainingJobName": "broke", "TrainingJobStatus": "Failed",
                                          "SecondaryStatus": "Failed", "TrainingStartTime": started})

    assert refusal(service, "StopProcessingJob", ProcessingJobName="done") == (
        "The request was rejected because the processing job is in status Completed."
    )
    assert refusal(service, "StopTrainingJob", TrainingJobName="broke") == (
        "The request was rejected because the training job is in status Failed."
    )
    missing = refusal(service, "StopProcessingJob", ProcessingJobName="none")
    assert missing == 'Could not find processing job "none".'
    assert refusal(service, "StopTrainingJob", TrainingJobName="none") == "Requested resource not found."


def test_a_stopped_execution_its_step_and_its_job_are_stopping_together_until_the_job_has_stopped(
    service: LocalSageMaker,
) -> None:
    arn, job, marks, _ = running_training(service)

    def described() -> str:
        execution = call(service, "DescribePipelineExecution", PipelineExecutionArn=arn)
        return str(execution["PipelineExecutionStatus"])

    def statuses() -> tuple[str, str, str]:
        """Describe and List agree: a List read between two equal Describe reads shows the same
        status (one read apart, the execution may move on between them)."""
        status, listed = "", None
        while listed is None or described() != status:
            status = described()
            [listed] = call(service, "ListPipelineExecutions", PipelineName="T")["PipelineExecutionSummaries"]
        assert listed["PipelineExecutionStatus"] == status
        step = listed_steps(service, arn)["Train"]["StepStatus"]
        return status, step, training(service, job)["TrainingJobStatus"]

    assert statuses() == ("Executing", "Executing", "InProgress")
    call(service, "StopPipelineExecution", PipelineExecutionArn=arn)
    assert statuses() == ("Stopping", "Stopping", "Stopping")  # at once
    wait_until(lambda: (marks / "term").exists(), 30, "the job's process to get SIGTERM")
    assert statuses() == ("Stopping", "Stopping", "Stopping")  # its process is still saving its model

    (marks / "release").write_text("")
    wait_until(lambda: statuses()[0] == "Stopped", 60, "the execution to stop")
    assert statuses() == ("Stopped", "Stopped", "Stopped")
    step = listed_steps(service, arn)["Train"]
    assert "FailureReason" not in step and step["EndTime"] >= step["StartTime"]
    assert phases(training(service, job))[-2:] == [STOPPING, STOPPED]


def test_a_job_or_step_left_stopping_by_a_crash_is_stopped_when_the_server_starts_again(
    service: LocalSageMaker,
) -> None:
    started = "2026-01-02T03:04:05.000Z"
    transitions = [{"Status": "Training", "StartTime": started, "StatusMessage": "Training"},
                   {"Status": "Stopping", "StartTime": started, "StatusMessage": STOPPING[1]}]
    service.jobs.save_job("TrainingJob", {
        "TrainingJobName": "cut-short", "TrainingJobStatus": "Stopping", "SecondaryStatus": "Stopping",
        "TrainingStartTime": started, "SecondaryStatusTransitions": transitions})
    service.jobs.save_job("ProcessingJob", {"ProcessingJobName": "cut", "ProcessingJobStatus": "Stopping",
                                            "ProcessingStartTime": started})
    stopping = record_step(service, "p", {"StepStatus": "Stopping", "StartTime": 1.0, "EndTime": 1.0})
    service.pipelines.update_execution(stopping, PipelineExecutionStatus="Stopping")

    service.start()

    trained = service.jobs.describe_training_job({"TrainingJobName": "cut-short"})
    assert (trained["TrainingJobStatus"], trained["SecondaryStatus"]) == ("Stopped", "Stopped")
    assert phases(trained) == [("Training", "Training"), STOPPING, STOPPED]
    _, stopping_phase, stopped_phase = trained["SecondaryStatusTransitions"]
    assert stopping_phase["EndTime"] == stopped_phase["StartTime"]
    assert trained["FailureReason"] == (
        "Stopped: the local SageMaker server stopped while this job was stopping; its model was not uploaded."
    )
    assert trained["TrainingEndTime"] == trained["LastModifiedTime"]
    processed = service.jobs.describe_processing_job({"ProcessingJobName": "cut"})
    assert processed["ProcessingJobStatus"] == "Stopped" and "ProcessingEndTime" in processed
    assert processed["FailureReason"].endswith("; its outputs were not uploaded.")
    assert service.pipelines.execution(stopping)["PipelineExecutionStatus"] == "Stopped"
    assert listed_steps(service, stopping)["Prep"]["StepStatus"] == "Stopped"


def test_a_job_left_in_progress_by_a_crash_fails_when_the_server_starts_again(
    service: LocalSageMaker,
) -> None:
    started = "2026-01-02T03:04:05.000Z"
    service.jobs.save_job("TrainingJob", {"TrainingJobName": "cut-short", "TrainingJobStatus": "InProgress",
                                          "SecondaryStatus": "Training", "TrainingStartTime": started})
    service.jobs.save_job("ProcessingJob", {"ProcessingJobName": "done", "ProcessingJobStatus": "Completed",
                                            "ProcessingStartTime": started})

    service.start()

    training = service.jobs.describe_training_job({"TrainingJobName": "cut-short"})
    assert (training["TrainingJobStatus"], training["SecondaryStatus"]) == ("Failed", "Failed")
    assert training["FailureReason"] == "The local SageMaker server stopped while this job ran."
    completed = service.jobs.describe_processing_job({"ProcessingJobName": "done"})
    assert completed["ProcessingJobStatus"] == "Completed"


def test_invoke_endpoint_passes_the_variant_and_inference_id_and_refuses_other_routing(
    tmp_path: Path,
) -> None:
    backend = local_sagemaker(tmp_path / "state")
    hosting = backend.serving.processes
    assert isinstance(hosting, InstantHosting)
    dispatcher = Dispatcher(backend)
    request = {"EndpointName": "ep", "Body": b'"x"', "ContentType": "application/json"}
    try:
        answered = dispatcher.invoke({**request, "TargetVariant": "B", "InferenceId": "order-17"})
        assert answered.status == 200
        assert hosting.invocations == [("ep", "B", "order-17", "")]
        for parameter, header in (
            ("TargetModel", "target model header"),
            ("TargetContainerHostname", "target container header"),
            ("InferenceComponentName", "inference component header"),
            ("SessionId", "session header"),
            ("EnableExplanations", "explanations"),
        ):
            refused = dispatcher.invoke({**request, parameter: "part-2"})
            document = json.loads(refused.body)
            assert refused.status == 400 and document["__type"] == "ValidationError"
            assert document["message"].endswith(f"does not support {header}.")
        assert len(hosting.invocations) == 1  # nothing refused reached a model
    finally:
        backend.shutdown()


def test_custom_attributes_reach_the_model_verbatim_and_the_models_come_back(tmp_path: Path) -> None:
    backend = local_sagemaker(tmp_path / "state")
    hosting = backend.serving.processes
    assert isinstance(hosting, InstantHosting)
    runtime = inprocess.client(Dispatcher(backend), "sagemaker-runtime")
    request = {"EndpointName": "ep", "Body": b'"x"', "ContentType": "application/json"}
    try:
        plain = runtime.invoke_endpoint(**request)
        assert "CustomAttributes" not in plain  # the model set none: none comes back
        hosting.custom_attributes = "model-version=3"
        sent = ('trace-id=c000b4f9 "a, b"\t;' + "x" * 1024)[:1024]  # the longest the shape allows
        answered = runtime.invoke_endpoint(**request, CustomAttributes=sent)
        assert answered["CustomAttributes"] == "model-version=3"
        assert [call[3] for call in hosting.invocations] == ["", sent]

        for refused in ("x" * 1025, "caf\u00e9", "bell\x07", " leading space"):
            with pytest.raises(ClientError) as error:
                runtime.invoke_endpoint(**request, CustomAttributes=refused)
            assert error.value.response["Error"]["Code"] == "ValidationError"
        assert len(hosting.invocations) == 2
    finally:
        backend.shutdown()


class Answers(InstantHosting):
    """Answers each invocation with the next of `results`."""

    def __init__(self, results: list[InvokeResult]) -> None:
        super().__init__()
        self.results = results

    def invoke(self, endpoint_name: str, *request: Any) -> InvokeResult:
        return self.results.pop(0)


def test_a_model_error_is_worded_as_sagemaker_words_it_and_names_its_log_stream(tmp_path: Path) -> None:
    backend = local_sagemaker(tmp_path / "state")
    long_body = "y" * 3000
    backend.serving.processes = Answers([  # type: ignore[assignment]
        InvokeResult(415, b'{"error": "cannot read text/csv"}', "application/json", "B", "", "B/config-7"),
        InvokeResult(0, TIMED_OUT_MESSAGE.encode(), "text/plain", "B", "", "B/config-7"),
        InvokeResult(500, long_body.encode(), "text/plain", "B", "", "B/config-7"),
    ])
    runtime = inprocess.client(Dispatcher(backend), "sagemaker-runtime")
    see = (
        "See https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1"
        "#logEventViewer:group=/aws/sagemaker/Endpoints/Ep in account 000000000000 for more information."
    )
    stream = "arn:aws:logs:us-east-1:000000000000:log-group:/aws/sagemaker/Endpoints/Ep:log-stream:B/config-7"
    try:
        errors = []
        for _ in range(3):
            with pytest.raises(ClientError) as raised:
                runtime.invoke_endpoint(EndpointName="Ep", Body=b'"x"', ContentType="text/csv")
            assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 424
            errors.append(raised.value.response)
        refused, late, long = errors
        assert refused["Error"] == {
            "Code": "ModelError",
            "Message": 'Received client error (415) from primary with message '
            f'"{{"error": "cannot read text/csv"}}". {see}',
        }
        assert (refused["OriginalStatusCode"], refused["OriginalMessage"], refused["LogStreamArn"]) == (
            415, '{"error": "cannot read text/csv"}', stream
        )
        assert late["Error"]["Message"] == (
            f'Received server error (0) from primary with message "{TIMED_OUT_MESSAGE}". {see}'
        )
        assert (late["OriginalStatusCode"], late["OriginalMessage"]) == (0, TIMED_OUT_MESSAGE)
        assert long["Error"]["Message"].endswith(f'yyy". {see}') and len(long["Error"]["Message"]) == 2048
        assert long["OriginalMessage"] == long_body[:2048]
    finally:
        backend.shutdown()
