"""EventBridge Scheduler's schedules through boto3's scheduler client, and the timer that starts
their pipeline executions: on time, with Scheduler's context attributes, once for a one-time
schedule, never while disabled, across a restart, and never late (a missed invocation is logged).

The timer's clock is the test's: `invoke_due` runs what is due at the moment the test sets, and the
pipeline's start is a stand-in that records each request after the API's own shape check."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pipelines.local.api.protocol import Dispatcher
from pipelines.local.service.backend import LocalSageMaker
from pipelines.local.service.schedule_timer import ScheduleTimer
from pipelines.local.storage.database import Body
from pipelines.local.system.clock import Clock

from . import inprocess
from .shapes_support import send

START_PIPELINE = "arn:aws:scheduler:::aws-sdk:sagemaker:startPipelineExecution"
ROLE = "arn:aws:iam::000000000000:role/scheduler"
PIPELINE_ARN = "arn:aws:sagemaker:us-east-1:000000000000:pipeline/monitor"
INPUT = {
    "PipelineName": "monitor",
    "ClientRequestToken": "monitoring-0123456789abcdef0123-<aws.scheduler.execution-id>",
    "PipelineParameters": [{"Name": "WindowEnd", "Value": "<aws.scheduler.scheduled-time>"},
                           {"Name": "Attempt", "Value": "<aws.scheduler.attempt-number>"},
                           {"Name": "Schedule", "Value": "<aws.scheduler.schedule-arn>"}],
}


class SetClock(Clock):
    """Time that stands where the test puts it."""

    def __init__(self, moment: float) -> None:
        self.moment = moment

    def now(self) -> float:
        return self.moment


class Local:
    def __init__(self, state: Path, moment: float) -> None:
        self.state = state
        self.clock = SetClock(moment)
        self.started: list[Body] = []
        self.open()

    def open(self) -> None:
        self.service = LocalSageMaker(self.state, "us-east-1", "http://127.0.0.1:1")
        self.scheduler = inprocess.client(Dispatcher(self.service, check_responses=True), "scheduler")
        self.timer = ScheduleTimer(self.service.schedules, self._start, self.clock)

    def restart(self) -> None:
        self.service.shutdown()
        self.open()

    def _start(self, request: Body) -> Body:
        self.started.append(request)
        return {"PipelineExecutionArn": f"{PIPELINE_ARN}/execution/{len(self.started)}"}

    def at(self, text: str) -> float | None:
        """Run what is due at this UTC wall time; when the next invocation is."""
        self.clock.moment = datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()
        return self.timer.invoke_due()

    def create(self, name: str = "monitoring", **overrides: Any) -> str:
        request: dict[str, Any] = {
            "Name": name, "ScheduleExpression": "rate(1 hour)", "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": {"Arn": START_PIPELINE, "RoleArn": ROLE, "Input": json.dumps(INPUT)}, **overrides,
        }
        return str(self.scheduler.create_schedule(**request)["ScheduleArn"])

    def windows(self) -> list[str]:
        """The WindowEnd each started execution was given."""
        return [request["PipelineParameters"][0]["Value"] for request in self.started]


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Local]:
    created = datetime(2026, 12, 6, 17, 0, tzinfo=UTC).timestamp()
    monkeypatch.setattr("pipelines.local.service.schedules.time.time", lambda: created)
    made = Local(tmp_path / "state", created)
    yield made
    made.service.shutdown()


def refusal(call: Any, **request: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as refused:
        call(**request)
    return refused.value.response["Error"]["Code"], refused.value.response["Error"]["Message"]


def test_a_schedule_is_stored_with_schedulers_defaults_and_found_by_name(local: Local) -> None:
    schedule_arn = local.create(Description="hourly")
    assert schedule_arn == "arn:aws:scheduler:us-east-1:000000000000:schedule/default/monitoring"
    got = local.scheduler.get_schedule(Name="monitoring")
    assert (got["State"], got["ActionAfterCompletion"], got["GroupName"], got["Description"]) == (
        "ENABLED", "NONE", "default", "hourly")
    assert got["Target"]["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}
    assert got["CreationDate"] == datetime(2026, 12, 6, 17, 0, tzinfo=UTC)
    local.scheduler.update_schedule(Name="monitoring", ScheduleExpression="rate(2 hours)",
                                    FlexibleTimeWindow={"Mode": "OFF"}, State="DISABLED",
                                    Target={"Arn": START_PIPELINE, "RoleArn": ROLE, "Input": "{}"})
    updated = local.scheduler.get_schedule(Name="monitoring")
    assert (updated["ScheduleExpression"], updated["State"]) == ("rate(2 hours)", "DISABLED")
    assert "Description" not in updated, "an update replaces the settings, as Scheduler's does"
    local.scheduler.delete_schedule(Name="monitoring")
    assert refusal(local.scheduler.get_schedule, Name="monitoring") == (
        "ResourceNotFoundException", "Schedule monitoring does not exist.")


def test_a_name_taken_is_a_conflict_unless_the_same_create_is_retried(local: Local) -> None:
    first = local.create(ClientToken="token-1")
    assert local.create(ClientToken="token-1") == first
    code, _ = refusal(local.create, ClientToken="token-2")
    assert code == "ConflictException"


def test_schedules_are_listed_by_name_a_page_at_a_time_with_filters(local: Local) -> None:
    for name in ("c-hourly", "a-hourly", "b-daily"):
        local.create(name, State="DISABLED" if name == "b-daily" else "ENABLED")
    pages = local.scheduler.get_paginator("list_schedules").paginate(PaginationConfig={"PageSize": 1})
    assert [s["Name"] for page in pages for s in page["Schedules"]] == ["a-hourly", "b-daily", "c-hourly"]
    enabled = local.scheduler.list_schedules(State="ENABLED", NamePrefix="c")["Schedules"]
    assert [(s["Name"], s["Target"]) for s in enabled] == [("c-hourly", {"Arn": START_PIPELINE})]


@pytest.mark.parametrize(("change", "words"), [
    ({"GroupName": "nightly"}, "Schedule group nightly does not exist."),
    ({"Target": {"Arn": "arn:aws:lambda:us-east-1:000000000000:function:f", "RoleArn": ROLE}},
     "is not supported locally: the local scheduler starts SageMaker pipeline executions only"),
    ({"Target": {"Arn": START_PIPELINE, "RoleArn": ROLE, "Input": "{not json"}},
     "Target Input must be valid JSON"),
    ({"Target": {"Arn": START_PIPELINE, "RoleArn": ROLE, "Input": "{}",
                 "DeadLetterConfig": {"Arn": "arn:aws:sqs:us-east-1:000000000000:dlq"}}},
     "DeadLetterConfig is not supported locally"),
    ({"Target": {"Arn": PIPELINE_ARN, "RoleArn": ROLE, "SqsParameters": {"MessageGroupId": "g"}}},
     "SqsParameters apply to other targets"),
    ({"Target": {"Arn": PIPELINE_ARN, "RoleArn": ROLE,
                 "EventBridgePutRawEventsParameters": {"Metadata": {"k": "v"}}}},
     "EventBridgePutRawEventsParameters apply to other targets than a SageMaker pipeline."),
    ({"Target": {"Arn": START_PIPELINE, "RoleArn": ROLE, "Input": "{}",
                 "SageMakerPipelineParameters": {"PipelineParameterList": []}}},
     "the universal target takes the parameters in its Input"),
    ({"KmsKeyArn": "arn:aws:kms:us-east-1:000000000000:key/k"}, "KmsKeyArn is not supported locally"),
    ({"FlexibleTimeWindow": {"Mode": "FLEXIBLE"}}, "MaximumWindowInMinutes is required"),
    ({"StartDate": datetime(2027, 1, 2, tzinfo=UTC), "EndDate": datetime(2027, 1, 1, tzinfo=UTC)},
     "The EndDate must be after the StartDate."),
    ({"StartDate": datetime(2026, 12, 6, 16, 54, tzinfo=UTC)},  # 6 minutes before the fixture's clock
     "The StartDate you specify cannot be earlier than 5 minutes ago."),
    ({"ScheduleExpression": "rate(1 hours)"}, "Invalid Schedule Expression rate(1 hours)."),
    ({"ScheduleExpressionTimezone": "Mars/Olympus"}, "Invalid time zone: Mars/Olympus"),
])
def test_what_the_local_scheduler_cannot_do_is_refused_when_the_schedule_is_made(
    local: Local, change: dict[str, Any], words: str
) -> None:
    code, message = refusal(local.create, **change)
    assert code in ("ValidationException", "ResourceNotFoundException") and words in message
    assert local.scheduler.list_schedules()["Schedules"] == [], "nothing half made"


@pytest.mark.parametrize(("change", "words"), [
    ({"ScheduleExpression": "rate(0 minutes)"}, "Invalid Schedule Expression rate(0 minutes)."),
    ({"ScheduleExpression": "every tuesday"}, "Invalid Schedule Expression every tuesday."),
    ({"ScheduleExpressionTimezone": "Mars/Olympus"}, "Invalid time zone: Mars/Olympus"),
])
def test_a_disabled_schedule_is_checked_as_an_enabled_one_is(
    local: Local, change: dict[str, Any], words: str
) -> None:
    """Scheduler reads the expression whatever the state: one that could never run is refused when
    it is made or changed, not when it is enabled."""
    code, message = refusal(local.create, State="DISABLED", **change)
    assert (code, message) == ("ValidationException", words)
    assert local.scheduler.list_schedules()["Schedules"] == []
    local.create(State="DISABLED")
    target = {"Arn": START_PIPELINE, "RoleArn": ROLE, "Input": json.dumps(INPUT)}
    request = {"Name": "monitoring", "ScheduleExpression": "rate(1 hour)", "Target": target,
               "FlexibleTimeWindow": {"Mode": "OFF"}, "State": "DISABLED", **change}
    assert refusal(local.scheduler.update_schedule, **request) == ("ValidationException", words)
    kept = local.scheduler.get_schedule(Name="monitoring")
    assert (kept["ScheduleExpression"], kept.get("ScheduleExpressionTimezone")) == ("rate(1 hour)", None)


def test_the_timer_starts_the_pipeline_on_time_with_schedulers_context_attributes(local: Local) -> None:
    schedule_arn = local.create()
    assert local.at("2026-12-06T17:00:00") == datetime(2026, 12, 6, 18, 0, tzinfo=UTC).timestamp()
    assert local.at("2026-12-06T17:59:59") is not None and len(local.started) == 1
    local.at("2026-12-06T18:00:20")  # within Scheduler's minute
    assert local.windows() == ["2026-12-06T17:00:00Z", "2026-12-06T18:00:00Z"]
    first = local.started[0]
    assert first["PipelineParameters"][1:] == [{"Name": "Attempt", "Value": "1"},
                                               {"Name": "Schedule", "Value": schedule_arn}]
    tokens = {request["ClientRequestToken"] for request in local.started}
    assert len(tokens) == 2, "one id per invocation"
    assert all(len(token) == len("monitoring-0123456789abcdef0123-") + 16 for token in tokens)
    assert all("<aws.scheduler" not in token for token in tokens)


def test_a_templated_pipeline_target_starts_it_with_its_parameters(local: Local) -> None:
    parameters = [{"Name": "WindowHours", "Value": "1"}]
    local.create(Target={"Arn": PIPELINE_ARN, "RoleArn": ROLE,
                         "SageMakerPipelineParameters": {"PipelineParameterList": parameters}})
    local.at("2026-12-06T17:00:00")
    [request] = local.started
    assert (request["PipelineName"], request["PipelineParameters"]) == (PIPELINE_ARN, parameters)
    assert len(request["ClientRequestToken"]) >= 32


def test_a_disabled_schedule_invokes_nothing_until_enabled(local: Local) -> None:
    local.create(State="DISABLED")
    assert local.at("2026-12-06T19:00:00") is None and local.started == []
    local.scheduler.update_schedule(
        Name="monitoring", ScheduleExpression="rate(1 hour)", FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": START_PIPELINE, "RoleArn": ROLE, "Input": json.dumps(INPUT)})
    local.at("2026-12-06T17:00:00")  # the update's moment: the fixture's clock for the service
    assert local.windows() == ["2026-12-06T17:00:00Z"]


def test_a_one_time_schedule_invokes_once_and_deletes_itself_when_asked(local: Local) -> None:
    local.create("once", ScheduleExpression="at(2026-12-06T18:30:00)", ActionAfterCompletion="DELETE")
    local.create("kept", ScheduleExpression="at(2026-12-06T18:30:00)")
    assert local.at("2026-12-06T18:29:59") is not None and local.started == []
    assert local.at("2026-12-06T18:30:00") is None
    assert local.at("2026-12-06T20:00:00") is None
    assert local.windows() == ["2026-12-06T18:30:00Z"] * 2
    assert [s["Name"] for s in local.scheduler.list_schedules()["Schedules"]] == ["kept"]


def test_an_invocation_the_server_was_not_running_for_is_logged_not_made_late(
    local: Local, caplog: pytest.LogCaptureFixture
) -> None:
    local.create()
    local.at("2026-12-06T17:00:00")
    local.restart()  # the state keeps the next invocation: 18:00
    with caplog.at_level(logging.WARNING):
        assert local.at("2026-12-06T20:30:00") == datetime(2026, 12, 6, 21, 0, tzinfo=UTC).timestamp()
    assert local.windows() == ["2026-12-06T17:00:00Z"]
    assert "its invocation due at 2026-12-06T18:00:00Z was missed" in caplog.text
    local.at("2026-12-06T21:00:00")
    assert local.windows() == ["2026-12-06T17:00:00Z", "2026-12-06T21:00:00Z"]


def test_a_refused_start_is_logged_and_the_other_schedules_still_run(
    local: Local, caplog: pytest.LogCaptureFixture
) -> None:
    local.create("broken", Target={"Arn": START_PIPELINE, "RoleArn": ROLE, "Input": '{"PipelineName": "m"}'})
    local.create("working")
    with caplog.at_level(logging.ERROR):
        local.at("2026-12-06T17:00:00")
    refused = "schedule broken: StartPipelineExecution for 2026-12-06T17:00:00Z refused: ValidationException"
    assert refused in caplog.text
    assert "Value null at 'clientRequestToken'" in caplog.text, "the API's own check"
    assert local.windows() == ["2026-12-06T17:00:00Z"], "working's"


def test_setting_a_rate_schedule_up_again_keeps_its_time(
    local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`monitor setup` run twice updates the schedule: its rate keeps counting from its creation,
    rather than invoking again at the update."""
    local.create()
    local.at("2026-12-06T17:00:00")
    updated = datetime(2026, 12, 6, 17, 20, tzinfo=UTC).timestamp()
    monkeypatch.setattr("pipelines.local.service.schedules.time.time", lambda: updated)
    local.scheduler.update_schedule(
        Name="monitoring", ScheduleExpression="rate(1 hour)", FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": START_PIPELINE, "RoleArn": ROLE, "Input": json.dumps(INPUT)})
    assert local.at("2026-12-06T17:20:00") == datetime(2026, 12, 6, 18, 0, tzinfo=UTC).timestamp()
    assert local.windows() == ["2026-12-06T17:00:00Z"]


def test_a_null_member_is_a_member_left_out(local: Local) -> None:
    """As the shape check reads it: a null KmsKeyArn or DeadLetterConfig is not refused, a null
    RetryPolicy takes Scheduler's defaults, and nothing is stored as null."""
    request = {
        "Name": "nulls", "ScheduleExpression": "rate(1 hour)", "FlexibleTimeWindow": {"Mode": "OFF"},
        "Description": None, "KmsKeyArn": None,
        "Target": {"Arn": START_PIPELINE, "RoleArn": ROLE, "Input": "{}", "RetryPolicy": None,
                   "DeadLetterConfig": None},
    }
    reply = send(Dispatcher(local.service, check_responses=True), "Scheduler", "CreateSchedule", request)
    assert reply.status == 200, reply.body
    got = local.scheduler.get_schedule(Name="nulls")
    assert "Description" not in got and "DeadLetterConfig" not in got["Target"]
    assert got["Target"]["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}
