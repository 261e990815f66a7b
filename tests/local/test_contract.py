"""The API contract, generated from botocore's service models rather than listed by hand.

For every operation the local SageMaker serves: a valid request is answered with a response that
fits the operation's output shape, and valid requests drawn at random are never a server error;
requests made invalid from the input shape (a required member missing, a wrong type, a number out
of range, a string too long or too short or off its pattern, a value outside its enum, an unknown
member) are refused with a 400 ValidationException that names the member; every List operation
pages (each record exactly once, over at least two pages) and applies every filter its request
shape defines. No server process: the wire protocol is driven in-process.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_until

from pipelines.local.api.protocol import VALIDATION_CODES, Dispatcher
from pipelines.local.contract.shapes import validate
from pipelines.local.service import endpoints, events, jobs, pipelines, registry, schedules, tags
from pipelines.local.service.backend import LocalSageMaker
from pipelines.local.service.context import MAX_TAGS
from pipelines.local.service.listing import Listing

from . import inprocess
from .shapes_support import (
    RUNTIME,
    base_request,
    invalid_requests,
    model,
    random_value,
    send,
    served,
    with_tokens,
)
from .world import (
    FAIL_ONLY,
    IMAGE,
    MODEL_DATA,
    World,
    build_world,
    function_zip,
    local_sagemaker,
    schedule_request,
)

Example = Callable[[World], dict[str, Any]]
TRAINING_LOGS = "/aws/sagemaker/TrainingJobs"
# What a valid request needs beyond the world's resources (`World.known`) and sampled values:
# fresh names for what is created, a resource of its own for what is deleted or changed.
EXAMPLES: dict[str, Example] = {
    "CreatePipeline": lambda w: {
        "PipelineName": w.fresh("created"), "PipelineDefinition": json.dumps(FAIL_ONLY)},
    "UpdatePipeline": lambda w: {"PipelineName": "q", "PipelineDescription": "updated"},
    "UpdatePipelineVersion": lambda w: {
        "PipelineArn": w.sm("DescribePipeline", PipelineName="q")["PipelineArn"], "PipelineVersionId": 1,
        "PipelineVersionDisplayName": "named"},
    "DeletePipeline": lambda w: {"PipelineName": w.pipeline(FAIL_ONLY)},
    "StartPipelineExecution": lambda w: {
        "PipelineName": "q", "PipelineParameters": [{"Name": "Why", "Value": "asked"}]},
    "StopPipelineExecution": lambda w: {"PipelineExecutionArn": w.start("slow")},
    "StopProcessingJob": lambda w: {"ProcessingJobName": w.running_job("slow", "ProcessingJob")},
    "StopTrainingJob": lambda w: {"TrainingJobName": w.running_job("slow-training", "TrainingJob")},
    "RetryPipelineExecution": lambda w: {"PipelineExecutionArn": _failed(w)},
    "ListPipelineExecutionSteps": lambda w: {"PipelineExecutionArn": w.known["PipelineExecutionArn"]},
    "CreateModelPackageGroup": lambda w: {"ModelPackageGroupName": w.fresh("group")},
    "CreateModelPackage": lambda w: {
        "ModelPackageGroupName": "g",
        "InferenceSpecification": {
            "Containers": [{"Image": IMAGE, "ModelDataUrl": MODEL_DATA}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        "ModelApprovalStatus": "PendingManualApproval",
    },
    "UpdateModelPackage": lambda w: {"ModelPackageArn": w.package("g"), "ModelApprovalStatus": "Rejected"},
    "DeleteModelPackage": lambda w: {"ModelPackageName": w.package("g")},
    "DeleteModelPackageGroup": lambda w: {"ModelPackageGroupName": w.sm(
        "CreateModelPackageGroup", ModelPackageGroupName=w.fresh("emptied"))["ModelPackageGroupArn"]},
    "CreateModel": lambda w: {
        "ModelName": w.fresh("model"),
        "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": MODEL_DATA},
    },
    "DeleteModel": lambda w: {"ModelName": w.model()},
    "CreateEndpointConfig": lambda w: {
        "EndpointConfigName": w.fresh("config"),
        "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "m", "InitialInstanceCount": 1,
                                "InstanceType": "ml.m5.large"}],
    },
    "DeleteEndpointConfig": lambda w: {"EndpointConfigName": w.endpoint_config("m")},
    "CreateEndpoint": lambda w: {"EndpointName": w.fresh("endpoint"), "EndpointConfigName": "c"},
    "UpdateEndpoint": lambda w: {"EndpointName": w.endpoint("c"), "EndpointConfigName": "c2"},
    "DeleteEndpoint": lambda w: {"EndpointName": w.endpoint("c")},
    "AddTags": lambda w: {"Tags": [{"Key": "added", "Value": "yes"}]},
    "DeleteTags": lambda w: {"TagKeys": ["added"]},
    "PutRule": lambda w: {"Name": w.fresh("rule"), "EventPattern": json.dumps({"source": ["nothing"]})},
    "DeleteRule": lambda w: {"Name": w.rule()},
    "PutTargets": lambda w: {"Rule": "r", "Targets": [{"Id": "t1", "Arn": w.known["FunctionArn"]}]},
    "TestEventPattern": lambda w: {"EventPattern": json.dumps({"source": ["a"]}), "Event": json.dumps({
        "id": "1", "account": "000000000000", "source": "a", "time": "2024-01-01T00:00:00Z",
        "region": "us-east-1", "resources": [], "detail-type": "t", "detail": {}})},
    "PutEvents": lambda w: {"Entries": [{"Source": "a", "DetailType": "t", "Detail": "{}"}]},
    "RemoveTargets": lambda w: {"Rule": "r", "Ids": ["t1"]},
    "CreateFunction": lambda w: {
        "FunctionName": w.fresh("function"), "Handler": "index.handler", "Runtime": "python3.12",
        "Code": {"ZipFile": function_zip()},
    },
    "DeleteFunction": lambda w: {"FunctionName": w.function()},
    "UpdateFunctionCode": lambda w: {"FunctionName": w.settled("f"), "ZipFile": function_zip()},
    "Invoke": lambda w: {"FunctionName": "f", "Payload": base64.b64encode(b'{"a": 1}').decode()},
    "UpdateFunctionConfiguration": lambda w: {
        "FunctionName": w.settled("f"), "Environment": {"Variables": {"AB": "c"}}},
    "PutFunctionEventInvokeConfig": lambda w: {"FunctionName": "f", "MaximumRetryAttempts": 1},
    "GetFunctionEventInvokeConfig": lambda w: {"FunctionName": w.event_invoke_config("f")},
    "UpdateFunctionEventInvokeConfig": lambda w: {
        "FunctionName": w.event_invoke_config("f"), "MaximumEventAgeInSeconds": 3600},
    "DeleteFunctionEventInvokeConfig": lambda w: {"FunctionName": w.event_invoke_config(w.function())},
    "CreateSchedule": lambda w: schedule_request(w.fresh("schedule")),
    "UpdateSchedule": lambda w: {**schedule_request(w.schedule()), "State": "ENABLED"},
    "DeleteSchedule": lambda w: {"Name": w.schedule()},
    "DescribeLogStreams": lambda w: {"logGroupName": TRAINING_LOGS},
    "DescribeLogGroups": lambda w: {"logGroupNamePrefix": "/aws/sagemaker/"},
    "FilterLogEvents": lambda w: {"logGroupName": TRAINING_LOGS, "filterPattern": "fitting"},
    "GetLogEvents": lambda w: {"logGroupName": TRAINING_LOGS, "logStreamName": w.call(
        "Logs_20140328", "DescribeLogStreams", logGroupName=TRAINING_LOGS)["logStreams"][0]["logStreamName"]},
}


# Operations whose output's StatusCode member sets the HTTP status, answered otherwise than the
# model's responseCode: Lambda deletes a function with 204 No Content.
STATUS_MEMBER_ANSWERS = {"DeleteFunction": 204}


def _failed(world: World) -> str:
    arn = world.start("q")
    world.finished(arn)
    return arn


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = build_world(tmp_path_factory.mktemp("world"))
    yield made
    made.backend.shutdown()


@pytest.fixture(scope="module")
def trampled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A world of its own for random requests, which delete and change what they find."""
    made = build_world(tmp_path_factory.mktemp("trampled"))
    yield made
    made.backend.shutdown()


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dispatcher]:
    """A server with nothing in it: refusals happen before any state is read."""
    backend = LocalSageMaker(tmp_path_factory.mktemp("idle"), "us-east-1", "http://127.0.0.1:1")
    yield Dispatcher(backend, check_responses=True)
    backend.shutdown()


SERVED = served()


@pytest.mark.parametrize(("group", "name"), SERVED, ids=[name for _, name in SERVED])
def test_a_valid_request_is_answered_in_the_output_shape(world: World, group: str, name: str) -> None:
    operation = model(group, name)
    example = EXAMPLES.get(name, lambda _: {})(world)
    request = {**base_request(operation, world.known), **example}
    assert validate(operation.input_shape, request) == []
    reply = send(world.dispatcher, group, name, request)
    status = STATUS_MEMBER_ANSWERS.get(name, int(operation.http.get("responseCode", 200)))
    assert reply.status == status, reply.body
    payload = operation.output_shape is not None and operation.output_shape.serialization.get("payload")
    if group != RUNTIME and not payload:  # InvokeEndpoint's and Invoke's answer is the handler's own body
        answer = json.loads(reply.body) if reply.status != 204 else {}  # a 204 has no body
        assert validate(operation.output_shape, answer) == [] if operation.output_shape else answer == {}


RANDOM_REQUESTS = 50  # per operation, drawn from a generator seeded with the operation's name
# How likely each optional member is to be sent: sparse requests get past the refusals of what the
# local target does not reproduce to the code behind them.
PRESENCE = (0.0, 0.1, 0.25, 0.5)


@pytest.mark.parametrize(("group", "name"), SERVED, ids=[name for _, name in SERVED])
def test_random_requests_in_the_shape_are_answered_without_a_server_error(
    trampled: World, group: str, name: str
) -> None:
    """Whatever combination of optional members a client sends, a request that fits the input
    shape is answered or refused as the client's fault, never with an InternalFailure."""
    operation = model(group, name)
    rng = random.Random(name)
    for _ in range(RANDOM_REQUESTS):
        drawn = random_value(operation.input_shape, rng, trampled.known, rng.choice(PRESENCE))
        request = with_tokens(group, name, drawn)
        assert validate(operation.input_shape, request) == []
        reply = send(trampled.dispatcher, group, name, request)
        assert reply.status < 500, (request, reply.body)


INVALID = [
    pytest.param(group, name, case, id=f"{name}: {case.why}")
    for group, name in SERVED
    for case in invalid_requests(group, model(group, name))
]


@pytest.mark.parametrize(("group", "name", "case"), INVALID)
def test_a_request_that_breaks_its_shape_is_refused_naming_the_member(
    idle: Dispatcher, group: str, name: str, case: Any
) -> None:
    reply = send(idle, group, name, case.request)
    answer = json.loads(reply.body)
    assert reply.status == 400, answer
    expected = "ValidationError" if group == RUNTIME else VALIDATION_CODES.get(group, "ValidationException")
    assert answer["__type"] == expected
    assert f"at '{case.names}'" in answer["message"], answer["message"]


def test_a_null_member_is_a_member_not_given(empty: World) -> None:
    """The shape check reads a null member as one left out, and so does every operation: nothing
    is stored, or answered, as null (an SDK never sends one; a hand-made request may)."""
    pattern = json.dumps({"source": ["nothing"]})
    rule = {"Name": "nulls", "EventPattern": pattern, "Description": None, "RoleArn": None}
    assert send(empty.dispatcher, "AWSEvents", "PutRule", rule).status == 200
    assert "Description" not in empty.call("AWSEvents", "DescribeRule", Name="nulls")
    group = {"ModelPackageGroupName": "nulls", "ModelPackageGroupDescription": None, "Tags": None}
    assert send(empty.dispatcher, "SageMaker", "CreateModelPackageGroup", group).status == 200
    described = empty.sm("DescribeModelPackageGroup", ModelPackageGroupName="nulls")
    assert "ModelPackageGroupDescription" not in described


def test_every_served_operation_is_generated() -> None:
    """A new operation is covered as soon as it is served: its valid example, if it needs one,
    is the only thing to add."""
    assert set(EXAMPLES) <= {name for _, name in SERVED}
    assert len(INVALID) > 10 * len(SERVED)


# ---- List operations ----------------------------------------------------------------------------

LISTINGS = {
    value.operation: value
    for module in (pipelines, registry, endpoints, events, tags, jobs, schedules)
    for value in vars(module).values()
    if isinstance(value, Listing)
}
PAGING = {"NextToken", "MaxResults", "Limit", "SortBy", "SortOrder"}


def test_every_list_operation_has_a_listing_that_applies_every_filter_of_its_request() -> None:
    groups = {name: group for group, name in SERVED}
    listed = {name for group, name in SERVED if "NextToken" in model(group, name).input_shape.members}
    assert listed == set(LISTINGS)
    for name, listing in LISTINGS.items():
        members = model(groups[name], name).input_shape.members
        assert set(members) - PAGING == set(listing.filters) | set(listing.scope), name
        if "SortBy" in members:
            assert set(members["SortBy"].enum) <= set(listing.sort_fields), name


Items = Callable[[World, int], dict[str, Any]]


def _executions(world: World, count: int) -> dict[str, Any]:
    if world.backend.context.database.get("pipeline", "q") is None:
        world.pipeline(FAIL_ONLY, "q")
    for _ in range(count):
        world.finished(world.start("q"))
    return {"PipelineName": "q"}


def _steps(world: World, count: int) -> dict[str, Any]:
    condition = {"Type": "Equals", "LeftValue": 1, "RightValue": 1}
    steps = [{"Name": f"Check{i}", "Type": "Condition",
              "Arguments": {"Conditions": [condition], "IfSteps": [], "ElseSteps": []}} for i in range(count)]
    arn = world.start(world.pipeline({"Version": "2020-12-01", "Steps": steps}))
    world.finished(arn)
    return {"PipelineExecutionArn": arn}


def _parameters(world: World, count: int) -> dict[str, Any]:
    definition = {**FAIL_ONLY, "Parameters": [
        {"Name": f"P{i}", "Type": "String", "DefaultValue": "x"} for i in range(count)]}
    definition["Steps"] = [{"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": "stop"}}]
    return {"PipelineExecutionArn": world.start(world.pipeline(definition))}


def _versions(world: World, count: int) -> dict[str, Any]:
    name = world.pipeline(FAIL_ONLY)
    for _ in range(count - 1):
        world.sm("UpdatePipeline", PipelineName=name, PipelineDefinition=json.dumps(FAIL_ONLY))
    return {"PipelineName": name}


def _packages(world: World, count: int) -> dict[str, Any]:
    world.sm("CreateModelPackageGroup", ModelPackageGroupName="listed")
    for _ in range(count):
        world.package("listed")
    return {"ModelPackageGroupName": "listed"}


def _tags(world: World, count: int) -> dict[str, Any]:
    arn = world.sm("DescribePipeline", PipelineName=world.pipeline(FAIL_ONLY))["PipelineArn"]
    world.sm("AddTags", ResourceArn=arn, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(count)])
    return {"ResourceArn": arn}


def _targets(world: World, count: int) -> dict[str, Any]:
    rule = world.rule()
    function = "arn:aws:lambda:us-east-1:000000000000:function:f"
    targets = [{"Id": f"t{i}", "Arn": function} for i in range(count)]
    world.call("AWSEvents", "PutTargets", Rule=rule, Targets=targets)
    return {"Rule": rule}


def _each(make: Callable[[World], object]) -> Items:
    def items(world: World, count: int) -> dict[str, Any]:
        for _ in range(count):
            make(world)
        return {}

    return items


# Listings whose records a scope holds no more of than this: a resource's tags (MAX_TAGS, one page of
# ListTags, whose MaxResults is at least 50).
MOST = {"ListTags": MAX_TAGS}
ITEMS: dict[str, Items] = {
    "ListPipelines": _each(lambda w: w.pipeline(FAIL_ONLY)),
    "ListPipelineExecutions": _executions,
    "ListPipelineExecutionSteps": _steps,
    "ListPipelineParametersForExecution": _parameters,
    "ListPipelineVersions": _versions,
    "ListModelPackageGroups": _each(lambda w: w.sm("CreateModelPackageGroup",
                                                   ModelPackageGroupName=w.fresh("group"))),
    "ListModelPackages": _packages,
    "ListModels": _each(lambda w: w.model()),
    "ListEndpointConfigs": _each(lambda w: w.endpoint_config(w.model())),
    "ListEndpoints": _each(lambda w: w.endpoint(w.endpoint_config(w.model()))),
    "ListTags": _tags,
    "ListTargetsByRule": _targets,
    "ListRules": _each(lambda w: w.rule()),
    "ListSchedules": _each(lambda w: w.schedule()),
    "ListProcessingJobs": _each(lambda w: w.job("ProcessingJob")),
    "ListTrainingJobs": _each(lambda w: w.job("TrainingJob")),
}


@pytest.fixture
def empty(tmp_path: Path) -> Iterator[World]:
    made = World(local_sagemaker(tmp_path / "state"))
    yield made
    made.backend.shutdown()


@pytest.mark.parametrize("name", sorted(LISTINGS))
def test_a_list_operation_pages_each_record_exactly_once(empty: World, name: str) -> None:
    group = {name: group for group, name in SERVED}[name]
    listing = LISTINGS[name]
    shape = model(group, name).input_shape.members[listing.limit_member]
    page_size = max(1, shape.metadata.get("min", 1))
    count = min(page_size * 2 + 1, MOST.get(name, page_size * 2 + 1))
    scope = ITEMS[name](empty, count)
    seen: list[str] = []
    pages = 0
    request: dict[str, Any] = {**scope, listing.limit_member: page_size}
    while True:
        answer = empty.call(group, name, **request)
        pages += 1
        seen += [json.dumps(item, sort_keys=True) for item in answer[listing.result_key]]
        if "NextToken" not in answer:
            break
        request["NextToken"] = answer["NextToken"]
    assert pages == -(-count // page_size) and len(seen) == count and len(set(seen)) == count


def test_a_paginator_sees_every_execution_once_while_executions_are_added(empty: World) -> None:
    _executions(empty, 3)
    sm = inprocess.client(empty.dispatcher, "sagemaker")
    seen = []
    for page in sm.get_paginator("list_pipeline_executions").paginate(
        PipelineName="q", PaginationConfig={"PageSize": 1}
    ):
        seen += [s["PipelineExecutionArn"] for s in page["PipelineExecutionSummaries"]]
        empty.start("q")  # newer than every page: it must not shift what follows
    assert len(seen) == 3 and len(set(seen)) == 3


def test_a_token_continues_only_the_listing_that_issued_it(empty: World) -> None:
    _each(lambda w: w.model())(empty, 3)
    token = empty.sm("ListModels", MaxResults=1)["NextToken"]
    for request in ({"SortBy": "Name"}, {"SortOrder": "Ascending"}):
        reply = send(empty.dispatcher, "SageMaker", "ListModels", {**request, "NextToken": token})
        assert json.loads(reply.body)["__type"] == "ValidationException"
    for garbage in ("nope", "e30=", "WzEsMl0="):
        reply = send(empty.dispatcher, "SageMaker", "ListModels", {"NextToken": garbage})
        assert reply.status == 400 and "NextToken" in json.loads(reply.body)["message"]


def test_list_filters_and_sorting(empty: World) -> None:
    for name in ("alpha-one", "beta-two", "alpha-three"):
        empty.model(name)
    listed = empty.sm("ListModels", NameContains="ALPHA", SortBy="Name", SortOrder="Ascending")
    assert [m["ModelName"] for m in listed["Models"]] == ["alpha-one", "alpha-three"]
    middle = empty.sm("DescribeModel", ModelName="beta-two")["CreationTime"]
    after = empty.sm("ListModels", CreationTimeAfter=middle, SortOrder="Ascending")["Models"]
    before = empty.sm("ListModels", CreationTimeBefore=middle)["Models"]
    assert [m["ModelName"] for m in after] == ["alpha-three"]
    assert [m["ModelName"] for m in before] == ["alpha-one"]
    empty.pipeline(FAIL_ONLY, "keep-me")
    empty.pipeline(FAIL_ONLY, "other")
    assert [p["PipelineName"] for p in empty.sm("ListPipelines", PipelineNamePrefix="keep")[
        "PipelineSummaries"]] == ["keep-me"]
    assert empty.sm("ListPipelines", ManagedBy="AWS")["PipelineSummaries"] == []


def test_approval_status_and_endpoint_status_filter(empty: World) -> None:
    empty.sm("CreateModelPackageGroup", ModelPackageGroupName="g")
    first, second = empty.package("g"), empty.package("g")
    empty.sm("UpdateModelPackage", ModelPackageArn=second, ModelApprovalStatus="Rejected")
    rejected = empty.sm("ListModelPackages", ModelPackageGroupName="g", ModelApprovalStatus="Rejected")
    assert [p["ModelPackageArn"] for p in rejected["ModelPackageSummaryList"]] == [second]
    newest_first = empty.sm("ListModelPackages", ModelPackageGroupName="g", SortOrder="Descending")
    assert [p["ModelPackageArn"] for p in newest_first["ModelPackageSummaryList"]] == [second, first]
    empty.endpoint(empty.endpoint_config(empty.model()), "served")
    assert [e["EndpointName"] for e in empty.sm("ListEndpoints", StatusEquals="InService")["Endpoints"]] == [
        "served"]
    assert empty.sm("ListEndpoints", StatusEquals="Failed")["Endpoints"] == []


# ---- malformed requests and server faults ------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"PipelineName": 123}', "ValidationException"),
        (b'{"PipelineName": "p", "MaxResults": "x"}', "ValidationException"),
        (b'{"PipelineName": "p", "NextToken": {"a": 1}}', "ValidationException"),
        (b"[" * 100_000 + b"]" * 100_000, "SerializationException"),
        (b'{"a": ' * 50_000 + b"1" + b"}" * 50_000, "SerializationException"),
        (b"\xff\xfe", "SerializationException"),
    ],
)
def test_a_malformed_request_is_a_client_error(idle: Dispatcher, body: bytes, code: str) -> None:
    reply = idle.json_api("SageMaker.ListPipelineExecutions", body)
    assert reply.status == 400 and json.loads(reply.body)["__type"] == code


def test_a_server_fault_is_a_server_error_not_a_client_error(empty: World) -> None:
    def broken(request: dict[str, Any]) -> dict[str, Any]:
        return {"PipelineSummaries": [], "Broken": request["NotThere"]}

    empty.backend._operations["SageMaker"]["ListPipelines"] = broken
    reply = empty.dispatcher.json_api("SageMaker.ListPipelines", b"{}")
    assert reply.status == 500 and json.loads(reply.body)["__type"] == "InternalFailure"
    assert "NotThere" not in json.loads(reply.body)["message"]


def test_a_response_outside_its_shape_is_caught(empty: World) -> None:
    empty.backend._operations["SageMaker"]["ListPipelines"] = lambda request: {"Extra": 1}
    reply = empty.dispatcher.json_api("SageMaker.ListPipelines", b"{}")
    assert reply.status == 500 and "'extra'" in json.loads(reply.body)["message"]


def test_a_running_job_stops_with_its_execution(world: World) -> None:
    arn = world.start("slow")

    def waiting() -> bool:
        steps = world.sm("ListPipelineExecutionSteps", PipelineExecutionArn=arn)["PipelineExecutionSteps"]
        return [(s["StepName"], s["StepStatus"]) for s in steps] == [("Wait", "Executing")]

    wait_until(waiting, 30, "the Wait step to run")
    world.sm("StopPipelineExecution", PipelineExecutionArn=arn)
    assert world.finished(arn)["PipelineExecutionStatus"] == "Stopped"
    assert [s["StepName"] for s in world.sm("ListPipelineExecutionSteps", PipelineExecutionArn=arn)[
        "PipelineExecutionSteps"]] == ["Wait"]
