"""CloudWatch Logs over Lambda functions' groups, through boto3's own clients (in-process): the
stream of each execution environment named as the handler's context names it, START / the
handler's output / END / REPORT, FilterLogEvents as `aws logs tail` reads it (patterns, time
window, paging, 1 MB pages), DescribeLogGroups, and the CLI's `logs` of a Lambda step."""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from pipelines.local.api.protocol import Dispatcher
from pipelines.step_logs import function_log_group, step_log

from . import inprocess
from .world import ROLE, World, local_sagemaker

HANDLER = b"""
import sys
print("cold start")

def handler(event, context):
    print("hello from", event.get("who", "nobody"))
    print("a warning", file=sys.stderr)
    print("x" * event.get("big", 0)) if event.get("big") else None
    return {"stream": context.log_stream_name, "group": context.log_group_name,
            "request": context.aws_request_id}
"""
BIG = 400_000  # three such lines are over 1 MB; two are not
REPORT = re.compile(
    r"REPORT RequestId: (?P<id>[0-9a-f-]{36})\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\t"
    r"Memory Size: 128 MB\tMax Memory Used: \d+ MB\t(?:Init Duration: \d+\.\d\d ms\t)?"
)


def code() -> bytes:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as archive:
        archive.writestr("index.py", HANDLER)
    return raw.getvalue()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = World(local_sagemaker(tmp_path_factory.mktemp("lambda-logs")))
    yield made
    made.backend.shutdown()


@pytest.fixture(scope="module")
def clients(world: World) -> dict[str, Any]:
    dispatcher = Dispatcher(world.backend, check_responses=True)
    return {name: inprocess.client(dispatcher, name) for name in ("lambda", "logs", "sagemaker")}


def function(world: World, clients: dict[str, Any], name: str, **configuration: Any) -> str:
    clients["lambda"].create_function(FunctionName=name, Role=ROLE, Handler="index.handler",
                                      Runtime="python3.12", Code={"ZipFile": code()}, **configuration)
    return world.settled(name)


def invoke(clients: dict[str, Any], name: str, **event: Any) -> dict[str, str]:
    answer = clients["lambda"].invoke(FunctionName=name, Payload=json.dumps(event).encode())
    return dict(json.loads(answer["Payload"].read()))


@pytest.fixture(scope="module")
def said(world: World, clients: dict[str, Any]) -> list[dict[str, str]]:
    function(world, clients, "talker")
    return [invoke(clients, "talker", who="first"), invoke(clients, "talker", who="second")]


def messages(events: list[dict[str, Any]]) -> list[str]:
    return [event["message"] for event in events]


def error_of(call: Any) -> dict[str, str]:
    with pytest.raises(ClientError) as raised:
        call()
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return dict(raised.value.response["Error"])


def test_an_environment_writes_the_stream_its_context_names_in_the_functions_group(
    clients: dict[str, Any], said: list[dict[str, str]]
) -> None:
    assert said[0]["group"] == "/aws/lambda/talker" and said[0]["stream"] == said[1]["stream"]
    streams = clients["logs"].describe_log_streams(logGroupName="/aws/lambda/talker")["logStreams"]
    assert [stream["logStreamName"] for stream in streams] == [said[0]["stream"]]
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", streams[0]["logStreamName"])


def test_each_invocation_is_between_start_and_end_with_a_report_of_what_was_measured(
    clients: dict[str, Any], said: list[dict[str, str]]
) -> None:
    """As `aws logs tail` shows it: FilterLogEvents on the group after the invokes."""
    logs = clients["logs"]
    events = logs.filter_log_events(logGroupName="/aws/lambda/talker", interleaved=True)["events"]
    first, second = said[0]["request"], said[1]["request"]
    init_start, *shown = messages(events)
    # Lambda's first line of each environment names its runtime's version, as the function does
    runtime = clients["lambda"].get_function_configuration(FunctionName="talker")["RuntimeVersionConfig"]
    found = re.fullmatch(r"INIT_START Runtime Version: (python:3\.12\.local-[0-9a-f]{8})\t"
                         r"Runtime Version ARN: (arn:aws:lambda:us-east-1::runtime:[0-9a-f]{64})", init_start)
    assert found is not None and found.group(2) == runtime["RuntimeVersionArn"], init_start
    assert found.group(1).endswith(found.group(2)[-64:][:8])
    assert shown[:6] == [
        "cold start", f"START RequestId: {first} Version: $LATEST", "hello from first", "a warning",
        f"END RequestId: {first}", shown[5],
    ]
    assert shown[6:9] == [f"START RequestId: {second} Version: $LATEST", "hello from second", "a warning"]
    assert shown[9] == f"END RequestId: {second}"
    assert not any(message.startswith("INIT_START") for message in shown)  # once per environment
    reports = [REPORT.fullmatch(message) for message in (shown[5], shown[10])]
    assert [report and report.group("id") for report in reports] == [first, second]
    assert "Init Duration" in shown[5] and "Init Duration" not in shown[10]
    assert {event["logStreamName"] for event in events} == {said[0]["stream"]}
    times = [event["timestamp"] for event in events]
    assert times == sorted(times) and len({event["eventId"] for event in events}) == len(events)
    assert all(re.fullmatch(r"\d{56}", event["eventId"]) for event in events)


def test_filter_patterns_match_terms_phrases_and_any_of(
    clients: dict[str, Any], said: list[dict[str, str]]
) -> None:
    def matched(pattern: str) -> list[str]:
        return messages(clients["logs"].filter_log_events(
            logGroupName="/aws/lambda/talker", filterPattern=pattern)["events"])

    assert matched("hello") == ["hello from first", "hello from second"]
    assert matched('"from second"') == ["hello from second"]
    assert matched("hello second") == ["hello from second"]
    assert matched("hello -second") == ["hello from first"]
    assert matched("?warning ?cold") == ["cold start", "a warning", "a warning"]
    assert matched("Hello") == []  # terms are case-sensitive
    for pattern, named in (('{ $.level = "ERROR" }', "JSON filter patterns"),
                           ("[ip, user]", "space-delimited filter patterns"),
                           ("%hel+o%", "regular expression filter patterns")):
        refused = error_of(lambda pattern=pattern: matched(pattern))
        assert refused["Code"] == "InvalidParameterException"
        assert refused["Message"].startswith(f"The local target does not evaluate {named}")


def test_a_time_window_includes_both_ends_and_names_streams(
    clients: dict[str, Any], said: list[dict[str, str]]
) -> None:
    logs, group = clients["logs"], "/aws/lambda/talker"
    events = logs.filter_log_events(logGroupName=group)["events"]
    start, end = events[2]["timestamp"], events[7]["timestamp"]
    window = logs.filter_log_events(logGroupName=group, startTime=start, endTime=end)["events"]
    assert window == [event for event in events if start <= event["timestamp"] <= end]
    assert events[2] in window and events[7] in window and len(window) < len(events)
    named = logs.filter_log_events(logGroupName=group, logStreamNames=[said[0]["stream"]])["events"]
    assert named == events
    assert logs.filter_log_events(logGroupName=group, logStreamNamePrefix="1999/")["events"] == []
    refused = error_of(lambda: logs.filter_log_events(
        logGroupName=group, logStreamNames=[said[0]["stream"]], logStreamNamePrefix="2"))
    assert refused["Code"] == "InvalidParameterException"
    missing = error_of(lambda: logs.filter_log_events(logGroupName="/aws/lambda/none"))
    assert missing == {
        "Code": "ResourceNotFoundException", "Message": "The specified log group does not exist."}


def test_pages_of_filtered_events_hold_each_event_once(
    clients: dict[str, Any], said: list[dict[str, str]]
) -> None:
    logs, group = clients["logs"], "/aws/lambda/talker"
    whole = logs.filter_log_events(logGroupName=group)
    assert "nextToken" not in whole
    pages = list(logs.get_paginator("filter_log_events").paginate(
        logGroupName=group, PaginationConfig={"PageSize": 5}))
    assert [len(page["events"]) for page in pages] == [5, 5, 2]  # INIT_START and 11 events
    assert [event for page in pages for event in page["events"]] == whole["events"]
    bad = error_of(lambda: logs.filter_log_events(logGroupName=group, nextToken="nope"))
    assert bad["Code"] == "InvalidParameterException"


def test_a_page_of_events_holds_at_most_1_mb(world: World, clients: dict[str, Any]) -> None:
    function(world, clients, "loud")
    said = invoke(clients, "loud", big=BIG)
    invoke(clients, "loud", big=BIG)
    invoke(clients, "loud", big=BIG)
    logs, group = clients["logs"], "/aws/lambda/loud"
    big = logs.filter_log_events(logGroupName=group, filterPattern="xxxxx")
    assert len(big["events"]) == 2 and "nextToken" in big
    rest = logs.filter_log_events(logGroupName=group, filterPattern="xxxxx", nextToken=big["nextToken"])
    assert len(rest["events"]) == 1 and "nextToken" not in rest
    request: dict[str, Any] = {"logGroupName": group, "logStreamName": said["stream"], "startFromHead": True}
    read, bigs = [], []
    while True:
        page = logs.get_log_events(**request)
        read += messages(page["events"])
        bigs.append(sum(len(message) >= BIG for message in messages(page["events"])))
        if page["nextForwardToken"] == request.get("nextToken"):
            break
        request["nextToken"] = page["nextForwardToken"]
    assert bigs[:2] == [2, 1] and sum(bigs) == 3
    filtered = logs.get_paginator("filter_log_events").paginate(logGroupName=group)
    assert read == [message for page in filtered for message in messages(page["events"])]


def test_a_functions_logging_config_names_its_group(world: World, clients: dict[str, Any]) -> None:
    function(world, clients, "routed", LoggingConfig={"LogFormat": "Text", "LogGroup": "/team/routed"})
    said = invoke(clients, "routed", who="routed")
    assert said["group"] == "/team/routed"
    events = clients["logs"].filter_log_events(logGroupName="/team/routed", filterPattern="hello")["events"]
    assert [(event["logStreamName"], event["message"]) for event in events] == [
        (said["stream"], "hello from routed")]


def test_groups_are_listed_by_name_once_they_have_a_stream(
    world: World, clients: dict[str, Any], said: list[dict[str, str]]
) -> None:
    logs = clients["logs"]
    function(world, clients, "silent-never-invoked")
    names = [group["logGroupName"] for page in logs.get_paginator("describe_log_groups").paginate(
        PaginationConfig={"PageSize": 1}) for group in page["logGroups"]]
    assert names == sorted(names) and "/aws/lambda/talker" in names
    assert "/aws/sagemaker/ProcessingJobs" not in names  # no job has run here
    (talker,) = logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/talk")["logGroups"]
    assert talker["arn"] == "arn:aws:logs:us-east-1:000000000000:log-group:/aws/lambda/talker:*"
    assert talker["logGroupArn"] == talker["arn"].removesuffix(":*")
    assert talker["deletionProtectionEnabled"] is False  # as CloudWatch Logs describes a group
    by_pattern = logs.describe_log_groups(logGroupNamePattern="TALK")["logGroups"]
    assert [group["logGroupName"] for group in by_pattern] == ["/aws/lambda/talker"]
    refused = error_of(lambda: logs.describe_log_groups(logGroupNamePrefix="/a", logGroupNamePattern="b"))
    assert refused["Code"] == "InvalidParameterException"
    for linked in ({"includeLinkedAccounts": True}, {"accountIdentifiers": ["111122223333"]}):
        refused = error_of(lambda linked=linked: logs.describe_log_groups(**linked))
        assert refused["Code"] == "InvalidParameterException"
        assert "no linked source accounts" in refused["Message"]


def call_log(clients: dict[str, Any], execution: str) -> list[str]:
    """What `logs Call` prints for the execution's Lambda step."""
    return list(step_log(clients["sagemaker"], clients["logs"], lambda: clients["lambda"], execution, "Call"))


def lambda_step(function_name: str) -> dict[str, Any]:
    """A pipeline of one Lambda step, `Call`, that invokes `function_name`."""
    return {
        "Version": "2020-12-01",
        "Steps": [{"Name": "Call", "Type": "Lambda", "FunctionArn":
                   f"arn:aws:lambda:us-east-1:000000000000:function:{function_name}",
                   "Arguments": {"who": "the pipeline"}, "OutputParameters": []}],
    }


def test_the_cli_prints_a_lambda_steps_invocation_then_what_it_did(
    world: World, clients: dict[str, Any]
) -> None:
    function(world, clients, "stepped")
    invoke(clients, "stepped", who="someone before")  # before the step: not its log
    execution = world.start(world.pipeline(lambda_step("stepped")))
    assert world.finished(execution)["PipelineExecutionStatus"] == "Succeeded"
    invoke(clients, "stepped", who="someone after")  # after the step: not its log
    lines = call_log(clients, execution)
    assert lines[0].startswith("START RequestId: ")
    assert lines[1:3] == ["hello from the pipeline\n", "a warning\n"]
    assert lines[3].startswith("END RequestId: ") and REPORT.fullmatch(lines[4].rstrip("\n"))
    function_arn = "arn:aws:lambda:us-east-1:000000000000:function:stepped"
    assert lines[5:] == ["Call: Succeeded\n", f"  Lambda Arn: {function_arn}\n"]


def test_a_lambda_steps_invocation_is_read_from_the_group_its_function_logs_to(
    world: World, clients: dict[str, Any]
) -> None:
    function(world, clients, "grouped", LoggingConfig={"LogFormat": "Text", "LogGroup": "/team/grouped"})
    execution = world.start(world.pipeline(lambda_step("grouped")))
    assert world.finished(execution)["PipelineExecutionStatus"] == "Succeeded"
    lines = call_log(clients, execution)
    assert lines[0].startswith("START RequestId: ")
    assert lines[1:3] == ["hello from the pipeline\n", "a warning\n"]
    assert not clients["logs"].describe_log_groups(logGroupNamePrefix="/aws/lambda/grouped")["logGroups"]


def test_a_deleted_functions_step_is_read_from_its_log_group_which_outlives_it(
    world: World, clients: dict[str, Any]
) -> None:
    function(world, clients, "removed")
    clients["lambda"].put_function_event_invoke_config(FunctionName="removed", MaximumRetryAttempts=0)
    execution = world.start(world.pipeline(lambda_step("removed")))
    assert world.finished(execution)["PipelineExecutionStatus"] == "Succeeded"

    answer = clients["lambda"].delete_function(FunctionName="removed")

    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 204
    lines = call_log(clients, execution)
    assert lines[0].startswith("START RequestId: ")
    assert lines[1:3] == ["hello from the pipeline\n", "a warning\n"]
    for call in (lambda: clients["lambda"].get_function(FunctionName="removed"),
                 lambda: clients["lambda"].get_function_event_invoke_config(FunctionName="removed")):
        with pytest.raises(ClientError) as missing:
            call()
        assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"


@pytest.mark.parametrize("code", ["AccessDeniedException", "ResourceNotFoundException"])
def test_a_function_whose_configuration_cannot_be_read_is_looked_for_in_lambdas_default_group(
    code: str,
) -> None:
    """A caller without lambda:GetFunctionConfiguration, or a function deleted since the step ran
    (its log group outlives it): Lambda's default group. Any other refusal is the caller's to see."""
    functions = boto3.client(
        "lambda", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )
    arn = "arn:aws:lambda:us-east-1:000000000000:function:gone"
    with Stubber(functions) as stubbed:
        stubbed.add_client_error("get_function_configuration", code, expected_params={"FunctionName": arn})
        assert function_log_group(functions, arn) == "/aws/lambda/gone"
        stubbed.add_client_error("get_function_configuration", "ThrottlingException")
        with pytest.raises(ClientError):
            function_log_group(functions, arn)


def test_the_log_tail_of_an_invocation_is_its_output_between_lambdas_lines(
    world: World, clients: dict[str, Any]
) -> None:
    function(world, clients, "tailed")
    invoke(clients, "tailed", who="first")  # the init phase's output goes with the first invocation
    answer = clients["lambda"].invoke(FunctionName="tailed", Payload=b'{"who": "tail"}', LogType="Tail")
    request_id = json.loads(answer["Payload"].read())["request"]
    start, *output, end, report = base64.b64decode(answer["LogResult"]).decode().splitlines()
    assert (start, output, end) == (
        f"START RequestId: {request_id} Version: $LATEST", ["hello from tail", "a warning"],
        f"END RequestId: {request_id}",
    )
    assert re.fullmatch(rf"REPORT RequestId: {request_id}\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\t"
                        r"Memory Size: 128 MB\tMax Memory Used: \d+ MB\t", report)


def test_the_stream_outlives_the_server(tmp_path: Path) -> None:
    """A stream is state: a later server answers it, as CloudWatch keeps it."""
    first = World(local_sagemaker(tmp_path))
    dispatcher = Dispatcher(first.backend, check_responses=True)
    clients = {"lambda": inprocess.client(dispatcher, "lambda")}
    function(first, clients, "kept")
    said = invoke(clients, "kept", who="before")
    first.backend.shutdown()
    second = local_sagemaker(tmp_path)
    try:
        logs = inprocess.client(Dispatcher(second, check_responses=True), "logs")
        events = logs.get_log_events(logGroupName="/aws/lambda/kept", logStreamName=said["stream"],
                                     startFromHead=True)["events"]
        assert "hello from before" in messages(events)
    finally:
        second.shutdown()
