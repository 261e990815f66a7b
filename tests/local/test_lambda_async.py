"""Lambda's asynchronous invocation as boto3 drives it: retries and their waits, the event's maximum
age, and invocation records sent to Lambda and EventBridge destinations.

The retry waits (a minute, then two) go through a clock whose time moves on at once, so no test
waits for them; what a test waits for is a handler's mark (marks.py), polled with a deadline.
"""

from __future__ import annotations

import io
import json
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_until

from pipelines.local.api.protocol import Dispatcher
from pipelines.local.service.backend import LocalSageMaker
from pipelines.local.system.clock import Clock

from .inprocess import client
from .marks import CLIENT, Marks
from .world import ROLE

HANDLER = """
import json, time
from marks import mark

def note(context):
    return len(mark("attempts", context.aws_request_id))

def fail(event, context):
    note(context)
    raise RuntimeError("deploy failed")

def succeed(event, context):
    note(context)
    return {"done": event}

def hang_once(event, context):
    if note(context) == 1:  # the first attempt runs until the test releases it
        deadline = time.monotonic() + 60
        while not mark("release") and time.monotonic() < deadline:
            time.sleep(0.05)
    return {"done": event}

def sink(event, context):
    mark("records", json.dumps(event))
"""
FUNCTIONS = ("fail", "succeed", "hang_once", "sink")
START = 1_700_000_000.0  # 2023-11-14T22:13:20Z
ARN = "arn:aws:lambda:us-east-1:000000000000:function:{}"
BUS = "arn:aws:events:us-east-1:000000000000:event-bus/default"


class InstantClock(Clock):
    """Time that moves on by exactly what is waited, at once."""

    def __init__(self) -> None:
        self.moment = START
        self.waits: list[float] = []

    def now(self) -> float:
        return self.moment

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        self.waits.append(seconds)
        self.moment += seconds
        return stop.is_set()


def package(source: str) -> bytes:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as archive:
        archive.writestr("app.py", source)
        archive.writestr("marks.py", CLIENT)
    return raw.getvalue()


@dataclass
class Local:
    lambda_: Any
    events: Any
    clock: InstantClock
    marks: Marks

    def records(self, count: int) -> list[dict[str, Any]]:
        """The first `count` events the sink function received, oldest first."""

        def arrived() -> list[str]:
            found = self.marks.lines("records")
            return found if len(found) >= count else []

        return [json.loads(record) for record in wait_until(arrived, 30, f"{count} records")]

    def attempts(self) -> list[str]:
        return self.marks.lines("attempts")


@pytest.fixture
def local(tmp_path: Path, marks: Marks) -> Iterator[Local]:
    clock = InstantClock()
    backend = LocalSageMaker(tmp_path / "state", "us-east-1", "http://127.0.0.1:1", clock)
    dispatcher = Dispatcher(backend, check_responses=True)
    made = Local(client(dispatcher, "lambda"), client(dispatcher, "events"), clock, marks)
    create_functions(made.lambda_, marks)
    yield made
    backend.shutdown()


def create_functions(lambda_: Any, marks: Marks) -> None:
    """The handlers above as functions, Active, that leave their marks in `marks`."""
    for handler in FUNCTIONS:
        lambda_.create_function(
            FunctionName=handler, Runtime="python3.12", Role=ROLE, Handler=f"app.{handler}",
            Code={"ZipFile": package(HANDLER)}, Environment={"Variables": {"MARKS": marks.address}},
        )
    for handler in FUNCTIONS:
        lambda_.get_waiter("function_active_v2").wait(FunctionName=handler, WaiterConfig={"Delay": 0.2})


def on_failure(destination: str) -> dict[str, Any]:
    return {"OnFailure": {"Destination": destination}}


@pytest.mark.parametrize(
    ("config", "attempts", "waits"),
    [
        ({}, 3, [60.0, 120.0]),  # Lambda's defaults: two retries, a minute then two minutes apart
        ({"MaximumRetryAttempts": 1}, 2, [60.0]),
        ({"MaximumRetryAttempts": 0}, 1, []),
    ],
)
def test_a_function_error_is_retried_as_configured_then_recorded_as_retries_exhausted(
    local: Local, config: dict[str, int], attempts: int, waits: list[float]
) -> None:
    local.lambda_.put_function_event_invoke_config(
        FunctionName="fail", DestinationConfig=on_failure(ARN.format("sink")), **config)
    answer = local.lambda_.invoke(FunctionName="fail", InvocationType="Event", Payload=b'{"version": 7}')
    assert answer["StatusCode"] == 202

    (record,) = local.records(1)
    tried = local.attempts()
    assert len(tried) == attempts and len(set(tried)) == 1, "every retry keeps the request id"
    assert local.clock.waits == waits
    assert record == {
        "version": "1.0",
        "timestamp": record["timestamp"],
        "requestContext": {"requestId": tried[0], "functionArn": ARN.format("fail") + ":$LATEST",
                           "condition": "RetriesExhausted", "approximateInvokeCount": attempts},
        "requestPayload": {"version": 7},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": record["responsePayload"],
    }
    assert record["timestamp"] == {0: "2023-11-14T22:13:20.000Z", 60: "2023-11-14T22:14:20.000Z",
                                   180: "2023-11-14T22:16:20.000Z"}[int(sum(waits))], "when it gave up"
    payload = record["responsePayload"]
    assert (payload["errorType"], payload["errorMessage"], payload["requestId"]) == (
        "RuntimeError", "deploy failed", tried[0])


@pytest.mark.parametrize(("age", "attempts", "waits"), [(100, 2, [60.0, 40.0]), (60, 1, [60.0])])
def test_an_event_older_than_its_maximum_age_is_discarded_before_its_next_retry(
    local: Local, age: int, attempts: int, waits: list[float]
) -> None:
    local.lambda_.put_function_event_invoke_config(
        FunctionName="fail", MaximumEventAgeInSeconds=age, DestinationConfig=on_failure(ARN.format("sink")))
    local.lambda_.invoke(FunctionName="fail", InvocationType="Event", Payload=b"{}")

    (record,) = local.records(1)
    assert len(local.attempts()) == attempts
    assert local.clock.waits == waits  # the event expires at its maximum age, not at the retry's time
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == attempts


def test_a_success_is_recorded_to_the_on_success_function(local: Local) -> None:
    local.lambda_.put_function_event_invoke_config(
        FunctionName="succeed", DestinationConfig={"OnSuccess": {"Destination": ARN.format("sink")}})
    local.lambda_.invoke(FunctionName="succeed", InvocationType="Event", Payload=b'{"a": 1}')

    (record,) = local.records(1)
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert (record["requestPayload"], record["responsePayload"]) == ({"a": 1}, {"done": {"a": 1}})
    assert local.clock.waits == []


def test_a_failure_is_recorded_to_the_default_event_bus_as_lambdas_event(local: Local) -> None:
    pattern = {"source": ["lambda"], "detail-type": ["Lambda Function Invocation Result - Failure"]}
    local.events.put_rule(Name="failures", EventPattern=json.dumps(pattern))
    local.events.put_targets(Rule="failures", Targets=[{"Id": "sink", "Arn": ARN.format("sink")}])
    local.lambda_.put_function_event_invoke_config(
        FunctionName="fail", MaximumRetryAttempts=0, DestinationConfig=on_failure(BUS))
    local.lambda_.invoke(FunctionName="fail", InvocationType="Event", Payload=b'{"b": 2}')

    (event,) = local.records(1)
    assert event["source"] == "lambda"
    assert event["detail-type"] == "Lambda Function Invocation Result - Failure"
    assert event["resources"] == [BUS, ARN.format("fail") + ":$LATEST"]
    assert event["detail"]["requestContext"]["condition"] == "RetriesExhausted"
    assert event["detail"]["requestPayload"] == {"b": 2}


def test_an_asynchronous_invoke_answers_with_the_request_id_its_invocation_runs_under(local: Local) -> None:
    """Lambda's 202 carries the invocation's request id (the handler's context.aws_request_id), so
    the caller can find that invocation in the function's log."""
    answer = local.lambda_.invoke(FunctionName="succeed", InvocationType="Event", Payload=b"{}")
    assert answer["StatusCode"] == 202
    attempts = wait_until(local.attempts, 30, "the invocation to run")
    assert attempts == [answer["ResponseMetadata"]["RequestId"]]
