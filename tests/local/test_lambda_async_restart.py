"""An accepted asynchronous invocation survives a restart, as Lambda's queue is durable: a new service
over the same state directory goes on with each event where the last one left it, with its request id
and attempt count, measuring its waits from the recorded times.

Time is a clock the test moves by hand; what a test waits for is a handler's mark (marks.py) or the
clock's waits, polled with a deadline.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_until

from pipelines.local.api.protocol import Dispatcher
from pipelines.local.service.backend import LocalSageMaker

from .inprocess import client
from .marks import Marks
from .test_lambda_async import ARN, START, InstantClock, Local, create_functions, on_failure

ON_SUCCESS = {"OnSuccess": {"Destination": ARN.format("sink")}}
ON_FAILURE = on_failure(ARN.format("sink"))


class ManualClock(InstantClock):
    """Time that moves only when the test moves it: a wait ends once it has moved far enough, or
    when the service stops."""

    def __init__(self, moment: float) -> None:
        super().__init__()
        self.moment = moment
        self._moved = threading.Condition()

    def advance(self, seconds: float) -> None:
        with self._moved:
            self.moment += seconds
            self._moved.notify_all()

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        with self._moved:
            self.waits.append(seconds)
            end = self.moment + seconds
            while self.moment < end and not stop.is_set():
                self._moved.wait(0.05)  # a stop does not notify: look at it now and then
        return stop.is_set()

    def waited(self, *waits: float) -> None:
        wait_until(lambda: self.waits == list(waits), 30, f"the clock waits {waits}")


class Restarts:
    """One state directory and the service serving it, stopped and started again at a chosen time."""

    def __init__(self, state: Path, marks: Marks) -> None:
        self.state = state
        self.marks = marks
        self.backend: LocalSageMaker | None = None
        self.clock = ManualClock(START)

    @contextmanager
    def served(self, moment: float) -> Iterator[Local]:
        """A service over the state, started as the server starts it, with the clock at `moment`."""
        self.clock = clock = ManualClock(moment)
        backend = LocalSageMaker(self.state, "us-east-1", "http://127.0.0.1:1", clock)
        dispatcher = Dispatcher(backend, check_responses=True)
        backend.start()
        self.backend = backend
        try:
            yield Local(client(dispatcher, "lambda"), client(dispatcher, "events"), clock, self.marks)
        finally:
            backend.shutdown()

    def held(self) -> list[str]:
        """The request ids of the asynchronous events the state holds."""
        assert self.backend is not None
        return [body["request_id"] for body in self.backend.context.database.queued("async_events")]


@pytest.fixture
def restarts(tmp_path: Path, marks: Marks) -> Restarts:
    return Restarts(tmp_path / "state", marks)


def accept_one(local: Local, function: str, **config: Any) -> None:
    """The functions created, `function`'s event invoke config put, and one event for it accepted."""
    create_functions(local.lambda_, local.marks)
    local.lambda_.put_function_event_invoke_config(FunctionName=function, **config)
    local.lambda_.invoke(FunctionName=function, InvocationType="Event", Payload=b'{"version": 7}')


def test_an_event_waiting_for_a_retry_is_retried_after_a_restart_when_its_wait_ends(
    restarts: Restarts,
) -> None:
    with restarts.served(START) as local:
        accept_one(local, "fail", DestinationConfig=ON_FAILURE)
        restarts.clock.waited(60.0)
        (request_id,) = local.attempts()

    with restarts.served(START + 45) as local:  # down for 45 s of the minute before the first retry
        restarts.clock.waited(15.0)
        assert local.attempts() == [request_id]
        restarts.clock.advance(15)
        restarts.clock.waited(15.0, 120.0)
        assert local.attempts() == [request_id, request_id]
        restarts.clock.advance(120)
        (record,) = local.records(1)
        assert local.attempts() == [request_id] * 3
        assert record["requestContext"] == {
            "requestId": request_id, "functionArn": ARN.format("fail") + ":$LATEST",
            "condition": "RetriesExhausted", "approximateInvokeCount": 3,
        }
        assert record["requestPayload"] == {"version": 7}
        assert record["timestamp"] == "2023-11-14T22:16:20.000Z"  # START + 180: the third attempt's end
        wait_until(lambda: not restarts.held(), 30, "the event to leave the state")


def test_an_event_past_its_maximum_age_at_a_restart_is_discarded_with_its_record(restarts: Restarts) -> None:
    with restarts.served(START) as local:
        accept_one(local, "fail", MaximumEventAgeInSeconds=100, DestinationConfig=ON_FAILURE)
        restarts.clock.waited(60.0)
        (request_id,) = local.attempts()

    with restarts.served(START + 500) as local:
        (record,) = local.records(1)
        assert local.attempts() == [request_id] and restarts.clock.waits == []
        assert record["requestContext"]["requestId"] == request_id
        assert record["requestContext"]["condition"] == "EventAgeExceeded"
        assert record["requestContext"]["approximateInvokeCount"] == 1
        assert record["responsePayload"]["errorType"] == "RuntimeError"  # the last attempt's answer
        assert record["timestamp"] == "2023-11-14T22:21:40.000Z"  # START + 500: when it was discarded


def test_an_event_that_succeeded_is_not_run_again_after_a_restart(restarts: Restarts) -> None:
    with restarts.served(START) as local:
        accept_one(local, "succeed", DestinationConfig=ON_SUCCESS)
        local.records(1)
        wait_until(lambda: not restarts.held(), 30, "the event to leave the state")

    with restarts.served(START + 60) as local:
        assert restarts.held() == []  # nothing for the restarted service to resume
        assert len(local.attempts()) == 1


def test_an_attempt_the_server_stopped_under_counts_as_failed_and_is_retried(restarts: Restarts) -> None:
    with restarts.served(START) as local:
        accept_one(local, "hang_once", DestinationConfig=ON_SUCCESS)
        (request_id,) = wait_until(local.attempts, 30, "the first attempt to start")
    restarts.marks.add("release", "go")  # the stopped service's attempt ends, and its answer is not kept

    with restarts.served(START + 20) as local:
        restarts.clock.waited(40.0)  # the retry is due a minute after the interrupted attempt started
        restarts.clock.advance(40)
        (record,) = local.records(1)
        assert local.attempts() == [request_id, request_id]
        assert record["requestContext"]["condition"] == "Success"
        assert record["requestContext"]["approximateInvokeCount"] == 2


class StopSeenLate(threading.Event):
    """A stop the worker only learns of once it has answered: the instant between its last look
    at the stop and its save, in which the server closes the state."""

    def is_set(self) -> bool:
        return False


def test_a_worker_whose_save_meets_the_closed_state_ends_quietly_and_the_event_is_resumed(
    restarts: Restarts, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda hook: failures.append(hook.exc_value))
    with restarts.served(START) as local:
        assert restarts.backend is not None
        accept_one(local, "hang_once", DestinationConfig=ON_SUCCESS)
        (request_id,) = wait_until(local.attempts, 30, "the first attempt to start")
        monkeypatch.setattr(restarts.backend.invocations.work, "stopping", StopSeenLate())
    [worker] = [thread for thread in threading.enumerate() if thread.name == "async-hang_once"]
    restarts.marks.add("release", "go")  # the attempt answers after the state has closed
    worker.join(30)

    assert not worker.is_alive()
    assert failures == []  # no traceback from the worker
    with restarts.served(START + 20) as local:  # the attempt it could not record counts as failed
        restarts.clock.waited(40.0)
        restarts.clock.advance(40)
        (record,) = local.records(1)
        assert local.attempts() == [request_id, request_id]
        assert record["requestContext"]["condition"] == "Success"
