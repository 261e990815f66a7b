"""Lambda's Invoke and GetFunctionConfiguration as boto3 calls them: invocation types, the error
header and document, the log tail, the synchronous payload limits, and the waiters."""

from __future__ import annotations

import base64
import functools
import io
import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from waiting import wait_until

from pipelines.local.api.protocol import Dispatcher
from pipelines.local.service.backend import LocalSageMaker
from pipelines.local.service.functions import FUNCTIONS

from .inprocess import client
from .marks import CLIENT, Marks
from .world import ROLE

HANDLER = """
import json, os, time
from marks import mark

def echo(event, context):
    print("echo", json.dumps(event))
    sent = context.client_context
    client = None if sent is None else {
        "custom": sent.custom, "env": sent.env, "app_title": sent.client and sent.client.app_title}
    return {"event": event, "request": context.aws_request_id, "invoked": context.invoked_function_arn,
            "client": client}

def fail(event, context):
    raise ValueError("boom")

def chatty(event, context):
    print("x" * 10000)
    print("the end")
    return None

def huge(event, context):
    return "y" * (6 * 1024 * 1024 + 100)  # with its quotes, 2 bytes over the limit

def record(event, context):
    time.sleep(0.2)
    mark(event["mark"], context.aws_request_id)
"""


HANDLERS = ("echo", "fail", "chatty", "huge", "record")


def package(source: str = HANDLER) -> bytes:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as archive:
        archive.writestr("app.py", source)
        archive.writestr("marks.py", CLIENT)
    return raw.getvalue()


@pytest.fixture
def lambda_(tmp_path: Path, marks: Marks) -> Iterator[Any]:
    backend = LocalSageMaker(tmp_path / "state", "us-east-1", "http://127.0.0.1:1")
    made = client(Dispatcher(backend, check_responses=True), "lambda")
    for handler in HANDLERS:
        made.create_function(
            FunctionName=handler, Runtime="python3.12", Role=ROLE,
            Handler=f"app.{handler}", Code={"ZipFile": package()},
            Environment={"Variables": {"MARKS": marks.address}},
        )
    for handler in HANDLERS:  # Invoke refuses a function while it is Pending
        made.get_waiter("function_active_v2").wait(FunctionName=handler, WaiterConfig={"Delay": 0.2})
    yield made
    backend.shutdown()


def test_a_request_response_invocation_answers_the_result(lambda_: Any) -> None:
    lambda_.get_waiter("function_active").wait(FunctionName="echo", WaiterConfig={"Delay": 0.2})
    answer = lambda_.invoke(FunctionName="echo", Payload=json.dumps({"a": 1}))

    result = json.loads(answer["Payload"].read())
    assert (answer["StatusCode"], answer["ExecutedVersion"]) == (200, "$LATEST")
    assert "FunctionError" not in answer
    assert result["event"] == {"a": 1} and len(result["request"]) == 36
    assert "LogResult" not in answer
    assert json.loads(lambda_.invoke(FunctionName="echo")["Payload"].read())["event"] == {}


def test_an_unhandled_error_is_flagged_and_its_document_is_the_payload(lambda_: Any) -> None:
    answer = lambda_.invoke(FunctionName="fail", LogType="Tail")

    document = json.loads(answer["Payload"].read())
    assert (answer["StatusCode"], answer["FunctionError"]) == (200, "Unhandled")
    assert (document["errorType"], document["errorMessage"]) == ("ValueError", "boom")
    assert "[ERROR] ValueError: boom" in base64.b64decode(answer["LogResult"]).decode()


def test_log_type_tail_is_the_last_4_kb_of_the_log(lambda_: Any) -> None:
    answer = lambda_.invoke(FunctionName="chatty", LogType="Tail")

    tail = base64.b64decode(answer["LogResult"])
    assert len(tail) == 4096 and b"the end\n" in tail and tail.startswith(b"x")
    assert json.loads(answer["Payload"].read()) is None


def test_an_event_invocation_runs_in_the_background(lambda_: Any, marks: Marks) -> None:
    started = time.monotonic()
    answer = lambda_.invoke(FunctionName="record", InvocationType="Event", Payload=b'{"mark": "async"}')

    assert (answer["StatusCode"], answer["Payload"].read()) == (202, b"")
    assert time.monotonic() - started < 0.2 or not marks.lines("async")
    assert wait_until(lambda: marks.lines("async"), 30, "the invocation to run")


def test_a_dry_run_checks_the_function_and_runs_nothing(lambda_: Any, marks: Marks) -> None:
    answer = lambda_.invoke(FunctionName="record", InvocationType="DryRun", Payload=b'{"mark": "dry"}')
    assert answer["StatusCode"] == 204
    time.sleep(0.5)
    assert not marks.lines("dry")
    with pytest.raises(ClientError) as missing:
        lambda_.invoke(FunctionName="ghost", InvocationType="DryRun")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_the_synchronous_limits_are_lambdas(lambda_: Any) -> None:
    with pytest.raises(ClientError) as refused:
        lambda_.invoke(FunctionName="echo", Payload=b'"' + b"z" * (6 * 1024 * 1024) + b'"')
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert refused.value.response["Error"] == {
        "Code": "RequestEntityTooLargeException",
        "Message": "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
    }

    answer = lambda_.invoke(FunctionName="huge")
    assert answer["FunctionError"] == "Unhandled"
    assert json.loads(answer["Payload"].read()) == {
        "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }


def test_an_event_invocation_takes_a_megabyte_and_refuses_a_byte_more(lambda_: Any, marks: Marks) -> None:
    """Lambda's limit for an asynchronous payload (1 MB), as it refuses one over it: queued nowhere."""
    def payload(size: int, mark: str) -> bytes:
        head = f'{{"mark": "{mark}", "pad": "'.encode()
        return head + b"z" * (size - len(head) - 2) + b'"}'

    assert lambda_.invoke(FunctionName="record", InvocationType="Event",
                          Payload=payload(1024 * 1024, "whole"))["StatusCode"] == 202
    with pytest.raises(ClientError) as refused:
        lambda_.invoke(FunctionName="record", InvocationType="Event",
                       Payload=payload(1024 * 1024 + 1, "over"))
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert refused.value.response["Error"] == {
        "Code": "RequestEntityTooLargeException",
        "Message": "1048577 byte payload is too large for the Event invocation type (limit 1048576 bytes)",
    }
    wait_until(lambda: marks.lines("whole"), 30, "the megabyte event to run")
    assert not marks.lines("over")


def test_a_payload_that_is_not_json_is_refused(lambda_: Any) -> None:
    with pytest.raises(ClientError) as refused:
        lambda_.invoke(FunctionName="echo", Payload=b"{not json")
    assert refused.value.response["Error"]["Code"] == "InvalidRequestContentException"
    assert refused.value.response["Error"]["Message"].startswith("Could not parse request body into json")


def test_get_function_configuration_and_the_waiters_that_poll_it(lambda_: Any) -> None:
    configuration = lambda_.get_function_configuration(FunctionName="echo")
    del configuration["ResponseMetadata"]
    assert configuration == lambda_.get_function(FunctionName="echo")["Configuration"]
    assert (configuration["FunctionName"], configuration["Handler"]) == ("echo", "app.echo")
    lambda_.get_waiter("function_active").wait(FunctionName="echo", WaiterConfig={"Delay": 0.2})
    variables = {"Variables": {"STAGE": "two"}}
    lambda_.update_function_configuration(FunctionName="echo", Environment=variables)
    lambda_.get_waiter("function_updated").wait(FunctionName="echo", WaiterConfig={"Delay": 0.2})
    assert lambda_.get_function_configuration(FunctionName="echo")["LastUpdateStatus"] == "Successful"
    lambda_.update_function_code(FunctionName="echo", ZipFile=package())
    lambda_.get_waiter("function_updated_v2").wait(FunctionName="echo", WaiterConfig={"Delay": 0.2})
    assert lambda_.get_function(FunctionName="echo")["Configuration"]["Environment"] == variables


ARN = "arn:aws:lambda:us-east-1:000000000000:function:echo"


def error_of(call: Any) -> dict[str, str]:
    with pytest.raises(ClientError) as refused:
        call()
    return dict(refused.value.response["Error"])


@pytest.mark.parametrize(
    ("name", "qualifier", "missing"),
    [
        ("echo", "7", f"{ARN}:7"),
        ("echo:live", None, f"{ARN}:live"),  # an alias
        (f"{ARN}:3", None, f"{ARN}:3"),
        ("arn:aws:lambda:eu-west-1:000000000000:function:echo", None,
         "arn:aws:lambda:eu-west-1:000000000000:function:echo"),
        ("arn:aws:lambda:us-east-1:111111111111:function:echo", None,
         "arn:aws:lambda:us-east-1:111111111111:function:echo"),
        ("111111111111:function:echo", None, "arn:aws:lambda:us-east-1:111111111111:function:echo"),
    ],
)
def test_only_latest_of_this_account_and_region_is_found(
    lambda_: Any, name: str, qualifier: str | None, missing: str
) -> None:
    qualified = {"Qualifier": qualifier} if qualifier else {}
    for call in (lambda_.get_function, lambda_.get_function_configuration, lambda_.invoke):
        assert error_of(functools.partial(call, FunctionName=name, **qualified)) == {
            "Code": "ResourceNotFoundException", "Message": f"Function not found: {missing}"}


def test_latest_may_be_named_and_the_context_says_so(lambda_: Any) -> None:
    configuration = lambda_.get_function(FunctionName="echo", Qualifier="$LATEST")["Configuration"]
    assert configuration["FunctionArn"] == ARN
    assert lambda_.get_function_configuration(FunctionName=f"{ARN}:$LATEST")["FunctionName"] == "echo"
    invoked = [json.loads(lambda_.invoke(**named)["Payload"].read())["invoked"] for named in (
        {"FunctionName": "echo", "Qualifier": "$LATEST"}, {"FunctionName": "echo:$LATEST"},
        {"FunctionName": "echo"})]
    assert invoked == [f"{ARN}:$LATEST", f"{ARN}:$LATEST", ARN]
    assert error_of(lambda: lambda_.get_function(FunctionName="echo:$LATEST", Qualifier="7"))["Message"] == (
        "The derived qualifier from the function name does not match the specified qualifier.")


def test_the_invokers_client_context_reaches_the_handler_and_a_malformed_one_is_refused(lambda_: Any) -> None:
    sent = {"client": {"app_title": "reviews", "installation_id": "i-1"}, "custom": {"tenant": "a"},
            "env": {"locale": "en"}}

    answer = json.loads(lambda_.invoke(FunctionName="echo", ClientContext=encoded(sent))["Payload"].read())

    assert answer["client"] == {"custom": {"tenant": "a"}, "env": {"locale": "en"}, "app_title": "reviews"}
    assert json.loads(lambda_.invoke(FunctionName="echo")["Payload"].read())["client"] is None
    for malformed in ("not base64!", encoded("not an object"), base64.b64encode(b"{not json").decode()):
        assert error_of(functools.partial(lambda_.invoke, FunctionName="echo", ClientContext=malformed)) == {
            "Code": "InvalidRequestContentException",
            "Message": "Client context must be a valid Base64-encoded JSON object."}


def encoded(value: Any) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


def test_a_dry_run_update_checks_the_code_and_changes_nothing(lambda_: Any) -> None:
    before = lambda_.get_function_configuration(FunctionName="echo")
    newer = package(HANDLER.replace('"event": event', '"event": "replaced"'))

    answer = lambda_.update_function_code(FunctionName="echo", ZipFile=newer, DryRun=True)

    after = lambda_.get_function_configuration(FunctionName="echo")
    assert answer["CodeSha256"] == after["CodeSha256"] == before["CodeSha256"]
    assert after["RevisionId"] == before["RevisionId"]
    assert json.loads(lambda_.invoke(FunctionName="echo", Payload=b"1")["Payload"].read())["event"] == 1
    refused = error_of(functools.partial(lambda_.update_function_code, FunctionName="echo", ZipFile=b"no",
                                         DryRun=True))
    assert refused["Code"] == "InvalidParameterValueException"


def test_publishing_a_version_is_refused(lambda_: Any) -> None:
    for call in (
        lambda: lambda_.update_function_code(FunctionName="echo", ZipFile=package(), Publish=True),
        lambda: lambda_.create_function(FunctionName="new", Runtime="python3.12", Role=ROLE,
                                        Handler="app.echo", Code={"ZipFile": package()}, Publish=True),
    ):
        refused = error_of(call)
        assert refused["Code"] == "InvalidParameterValueException"
        assert refused["Message"].startswith("Publish is not supported by the local Lambda")
    assert error_of(lambda: lambda_.get_function(FunctionName="new"))["Code"] == "ResourceNotFoundException"


GATED = """
import time
from marks import mark
while not mark("gate"):  # the init phase lasts until the test opens the gate
    time.sleep(0.01)

def handler(event, context):
    return "ready"
"""


def test_a_pending_function_is_not_invoked(lambda_: Any, marks: Marks) -> None:
    created = lambda_.create_function(
        FunctionName="gated", Runtime="python3.12", Role=ROLE, Handler="app.handler",
        Code={"ZipFile": package(GATED)}, Environment={"Variables": {"MARKS": marks.address}})
    assert created["State"] == "Pending"
    pending = ("The operation cannot be performed at this time. The function is currently in the following "
               "state: Pending")
    for kind in ("RequestResponse", "Event"):
        with pytest.raises(ClientError) as refused:
            lambda_.invoke(FunctionName="gated", InvocationType=kind)
        assert refused.value.response["Error"] == {"Code": "ResourceConflictException", "Message": pending}
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409

    marks.add("gate", "open")
    lambda_.get_waiter("function_active_v2").wait(FunctionName="gated", WaiterConfig={"Delay": 0.2})
    assert json.loads(lambda_.invoke(FunctionName="gated")["Payload"].read()) == "ready"


def test_list_functions_pages_every_function_by_name_without_its_state(lambda_: Any) -> None:
    """Two a page: every function once, in name order, each as GetFunctionConfiguration describes it
    but for the state members ListFunctions leaves out (its API reference sends you to GetFunction)."""
    pages = list(lambda_.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 2}))
    listed = [function for page in pages for function in page["Functions"]]

    assert [function["FunctionName"] for function in listed] == sorted(HANDLERS)
    assert len(pages) == (len(HANDLERS) + 1) // 2
    full = lambda_.get_function_configuration(FunctionName=listed[0]["FunctionName"])
    left_out = {"ResponseMetadata", "State", "LastUpdateStatus"}
    assert listed[0] == {key: value for key, value in full.items() if key not in left_out}
    every_version = lambda_.list_functions(FunctionVersion="ALL")["Functions"]
    assert [function["FunctionName"] for function in every_version] == sorted(HANDLERS)  # $LATEST only


def test_list_functions_answers_50_a_page_at_most_whatever_max_items_asks() -> None:
    """"ListFunctions returns a maximum of 50 items in each response, even if you set the number
    higher" (its API reference); the listing alone, over records as the service keeps them."""
    records = [{"FunctionName": f"f{n:03}"} for n in range(60)]
    first = FUNCTIONS.page(records, {"MaxItems": 60})
    assert [f["FunctionName"] for f in first["Functions"]] == [f"f{n:03}" for n in range(50)]
    rest = FUNCTIONS.page(records, {"MaxItems": 60, "Marker": first["NextMarker"]})
    assert [f["FunctionName"] for f in rest["Functions"]] == [f"f{n:03}" for n in range(50, 60)]
    assert "NextMarker" not in rest


def test_a_deleted_function_is_no_longer_listed_and_no_lambda_edge_replica_ever_is(lambda_: Any) -> None:
    lambda_.delete_function(FunctionName="huge")

    names = [function["FunctionName"] for function in lambda_.list_functions()["Functions"]]
    assert names == sorted(set(HANDLERS) - {"huge"})
    assert lambda_.list_functions(MasterRegion="ALL", FunctionVersion="ALL")["Functions"] == []


def test_master_region_without_every_version_is_refused_as_lambdas_reference_requires(lambda_: Any) -> None:
    with pytest.raises(ClientError) as refused:
        lambda_.list_functions(MasterRegion="us-east-1")
    error = refused.value.response["Error"]
    assert (error["Code"], error["Message"]) == (
        "InvalidParameterValueException", "FunctionVersion must be ALL when MasterRegion is specified.")


def test_a_marker_list_functions_did_not_give_is_refused(lambda_: Any) -> None:
    with pytest.raises(ClientError) as refused:
        lambda_.list_functions(Marker="not-a-marker")
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert refused.value.response["Error"]["Message"] == "The Marker is not valid."
