"""EventBridge's own retries of an event Lambda refuses (a function still Pending): exponential
backoff as the target's RetryPolicy allows, kept across a restart, then the dead-letter queue (logged
here); an error no retry mends is not retried.

Lambda's refusal is a stand-in that refuses as Lambda refuses a Pending function, so no test races a
real function's init; the jitter is fixed at the top of its range, and time is the hand-moved clock.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_until

from pipelines.local.errors import ServiceError

from .marks import Marks
from .test_lambda_async import ARN, START, Local, create_functions
from .test_lambda_async_restart import Restarts

DEAD_LETTERS = "arn:aws:sqs:us-east-1:000000000000:undelivered"


class Refusing:
    """Lambda's asynchronous queue, refusing every event as Lambda refuses one for a Pending function."""

    def submit(self, name_or_arn: str, event: Any) -> str:
        raise ServiceError("ResourceConflictException", "The function is currently in the following state: "
                           "Pending", 409)


def refused_event(
    restarts: Restarts, local: Local, function: str, pending: bool = True, **retry_policy: int
) -> None:
    """A rule whose target is `function` and one event put, with every function Pending."""
    assert restarts.backend is not None
    create_functions(local.lambda_, local.marks)
    if pending:
        restarts.backend.deliveries.invocations = Refusing()  # type: ignore[assignment]
    restarts.backend.deliveries.jitter = lambda most: most
    local.events.put_rule(Name="custom", EventPattern=json.dumps({"source": ["custom.test"]}))
    target = {"Id": "t", "Arn": ARN.format(function), "DeadLetterConfig": {"Arn": DEAD_LETTERS}}
    if retry_policy:
        target["RetryPolicy"] = retry_policy
    local.events.put_targets(Rule="custom", Targets=[target])
    entry = {"Source": "custom.test", "DetailType": "t", "Detail": '{"n": 1}'}
    answer = local.events.put_events(Entries=[entry])
    assert answer["FailedEntryCount"] == 0


def deliveries(restarts: Restarts) -> list[dict[str, Any]]:
    assert restarts.backend is not None
    return restarts.backend.context.database.queued("event_deliveries")


def test_a_refused_event_is_retried_with_backoff_and_delivered_after_a_restart(
    tmp_path: Path, marks: Marks
) -> None:
    restarts = Restarts(tmp_path / "state", marks)
    with restarts.served(START) as local:
        refused_event(restarts, local, "sink")
        restarts.clock.waited(1.0)
        restarts.clock.advance(1.0)
        restarts.clock.waited(1.0, 2.0)  # the second retry waits twice as long
        assert [d["attempts"] for d in deliveries(restarts)] == [2]

    with restarts.served(START + 1.5) as local:  # Lambda accepts again; the retry is due at START + 3
        restarts.clock.waited(1.5)
        restarts.clock.advance(1.5)
        (event,) = local.records(1)
        assert (event["source"], event["detail"]) == ("custom.test", {"n": 1})


def test_an_event_past_its_maximum_age_at_a_restart_goes_to_the_dead_letter_queue(
    tmp_path: Path, marks: Marks, caplog: pytest.LogCaptureFixture
) -> None:
    restarts = Restarts(tmp_path / "state", marks)
    with restarts.served(START) as local:
        refused_event(restarts, local, "sink", MaximumEventAgeInSeconds=60)
        restarts.clock.waited(1.0)

    with restarts.served(START + 100) as local:
        wait_until(lambda: not deliveries(restarts), 30, "the delivery to be given up")
        assert not marks.lines("records")
    assert f"not delivered after 1 attempts ({DEAD_LETTERS}): the event is older" in caplog.text


@pytest.mark.parametrize(
    ("function", "pending", "policy"),
    [("missing", False, {}), ("sink", True, {"MaximumRetryAttempts": 0})],
    ids=["no such function", "no retries allowed"],
)
def test_what_no_retry_may_deliver_goes_to_the_dead_letter_queue_at_once(
    tmp_path: Path, marks: Marks, caplog: pytest.LogCaptureFixture, function: str, pending: bool,
    policy: dict[str, int],
) -> None:
    restarts = Restarts(tmp_path / "state", marks)
    with restarts.served(START) as local:
        refused_event(restarts, local, function, pending, **policy)
        assert deliveries(restarts) == [] and restarts.clock.waits == []
    assert f"not delivered after 1 attempts ({DEAD_LETTERS})" in caplog.text
