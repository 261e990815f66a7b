"""Lambda's asynchronous invocation: Invoke with InvocationType Event (and EventBridge's targets)
queue the event and get their answer at once; the function then runs as Lambda runs it.

A function error (an exception, a timeout, a runtime that exits) is retried up to the function's
MaximumRetryAttempts (2 unless its event invoke config says otherwise), about one minute after the
first attempt and two minutes after the second, as Lambda documents; an event that would be older
than MaximumEventAgeInSeconds (6 hours by default) before its next attempt is discarded instead.
The outcome goes to the config's OnSuccess or OnFailure destination as Lambda's invocation record,
and a discarded event is logged in any case. Waits go through a `Clock`, so tests need not wait
minutes.

An accepted event is durable, as Lambda's queue is: the state keeps it (its request id, attempts and
when the next one is due) from acceptance until its record is delivered, so a server that stops or
crashes resumes it when it starts again, with the times measured from what was recorded. An attempt
the server stopped under counts as a failed one: Lambda cannot tell whether the handler ran, and
the handler may get the event again, as Lambda warns it may.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from pipelines.local.errors import ServiceError
from pipelines.local.lambdas.event_invoke import AsyncSettings, EventInvokeConfigs
from pipelines.local.lambdas.functions import LATEST, Functions, Invocation
from pipelines.local.storage.database import Body
from pipelines.local.storage.durable_work import DurableWork
from pipelines.local.system.clock import Clock, format_timestamp

log = logging.getLogger(__name__)
# Lambda waits about a minute before an event's first retry, and two minutes before its second.
RETRY_DELAYS = (60.0, 120.0)
QUEUE = "async_events"  # the state's table of accepted events
SUCCESS, RETRIES_EXHAUSTED, EVENT_AGE_EXCEEDED = "Success", "RetriesExhausted", "EventAgeExceeded"
STOPPED = "The local SageMaker server stopped during the invocation, so it counts as a failed attempt."
# What an attempt the server stopped under answered, in the words Lambda's runtime uses for an exit.
INTERRUPTED = Invocation(
    {"errorType": "Runtime.ExitError", "errorMessage": STOPPED}, f"Runtime.ExitError: {STOPPED}"
)


class EventBus(Protocol):
    """Where an event bus destination's records go (the service's EventBridge)."""

    def send(self, source: str, detail_type: str, resources: list[str], detail: Body) -> None: ...


@dataclass(frozen=True)
class Queued:
    """An accepted event as the state keeps it: its retries keep the first attempt's request id.
    Times are epoch seconds by the service's clock."""

    function: str
    function_arn: str  # qualified with $LATEST, as the invocation record names it
    event: Any
    request_id: str
    accepted: float  # the event's age counts from here
    due: float  # when its next attempt runs (or it is discarded, past its maximum age)
    attempts: int = 0  # attempts started
    started: float | None = None  # when the attempt in progress started
    payload: Any = None  # the last attempt's result or error document
    error: str = ""  # the last attempt's error, "" if it succeeded
    outcome: Body | None = None  # its destination's invocation record, decided but not yet delivered


class AsyncInvocations:
    def __init__(self, functions: Functions, configs: EventInvokeConfigs, clock: Clock) -> None:
        self.functions = functions
        self.configs = configs
        self.clock = clock
        self.bus: EventBus | None = None  # EventBridge, which sits above this layer, sets itself
        self.work = DurableWork(
            functions.database, QUEUE, Queued, self._run, lambda queued: f"async-{queued.function}"
        )

    def submit(self, name_or_arn: str, event: Any, qualifier: str | None = None) -> str:
        """Accept an event as Invoke with InvocationType Event does, refusing at once what Invoke
        refuses (no such function, a Pending one), keep it, and run it on a thread of its own; its
        request id."""
        body = self.functions.invocable(name_or_arn, qualifier)
        now = self.clock.now()
        queued = Queued(body["FunctionName"], f"{body['FunctionArn']}:{LATEST}", event, str(uuid.uuid4()),
                        now, due=now)
        self._save(queued)
        self.work.start(queued)
        return queued.request_id

    def resume(self) -> None:
        """After a restart: every event the state still holds goes on from where it was."""
        self.work.resume()

    def close(self) -> None:
        """The server is stopping: waiting events stay in the state for the next start."""
        self.work.close()

    def _run(self, queued: Queued) -> None:
        """Take the event from where the state has it to its delivered outcome; a stop leaves it
        where it is, as a crash would."""
        if queued.started is not None:  # the server stopped under this attempt
            queued = self._answered(queued, INTERRUPTED, queued.started)
        while queued.outcome is None:
            if self.clock.wait_until(queued.due, self.work.stopping):
                return
            settings = self.configs.settings(queued.function)
            if self.clock.now() >= queued.accepted + settings.max_age:
                queued = self._concluded(queued, settings, EVENT_AGE_EXCEEDED)
                break
            queued = replace(queued, attempts=queued.attempts + 1, started=self.clock.now())
            self._save(queued)
            invocation = self._attempt(queued)
            if self.work.stopping.is_set():  # the attempt stays in progress: the next start counts it failed
                return
            queued = self._answered(queued, invocation, self.clock.now())
        self._deliver(queued)
        self.work.forget(queued.request_id)

    def _attempt(self, queued: Queued) -> Invocation:
        """One run of the function; what keeps it from running at all counts as its error."""
        try:
            return self.functions.invoke(queued.function, queued.event, request_id=queued.request_id)
        except ServiceError as error:
            document = {"errorMessage": error.message, "errorType": error.code}
            return Invocation(document, f"{error.code}: {error.message}", "", queued.request_id)

    def _answered(self, queued: Queued, invocation: Invocation, moment: float) -> Queued:
        """The event after an attempt that ended at `moment`: concluded, or due for its retry."""
        queued = replace(queued, started=None, payload=invocation.payload, error=invocation.error)
        settings = self.configs.settings(queued.function)
        if not invocation.error:
            return self._concluded(queued, settings, SUCCESS)
        log.error("asynchronous invocation %s of %s failed (attempt %d of %d): %s\n%s",
                  queued.request_id, queued.function, queued.attempts, settings.retries + 1, invocation.error,
                  invocation.log.rstrip())
        if queued.attempts > settings.retries:
            return self._concluded(queued, settings, RETRIES_EXHAUSTED)
        retry = moment + RETRY_DELAYS[queued.attempts - 1]
        queued = replace(queued, due=min(retry, queued.accepted + settings.max_age))
        self._save(queued)
        return queued

    def _concluded(self, queued: Queued, settings: AsyncSettings, condition: str) -> Queued:
        """The event with its outcome decided and kept: a restart delivers it if this server cannot."""
        destination = settings.on_success if condition == SUCCESS else settings.on_failure
        if condition != SUCCESS:
            log.error("asynchronous invocation %s of %s discarded (%s after %d attempts); on-failure "
                      "destination: %s", queued.request_id, queued.function, condition, queued.attempts,
                      destination or "none")
        record = invocation_record(condition, queued, self.clock.now())
        queued = replace(queued, outcome={"destination": destination, "record": record})
        self._save(queued)
        return queued

    def _deliver(self, queued: Queued) -> None:
        """Send Lambda's invocation record to its destination: a function gets it as an asynchronous
        invocation's event, the event bus as the detail of an event from `lambda`."""
        assert queued.outcome is not None
        destination, record = queued.outcome["destination"], queued.outcome["record"]
        if not destination:
            return
        try:
            if destination.split(":")[2] == "lambda":
                self.submit(destination, record)
            else:
                assert self.bus is not None, "EventBridge attaches itself at start-up"
                outcome = "Success" if record["requestContext"]["condition"] == SUCCESS else "Failure"
                self.bus.send("lambda", f"Lambda Function Invocation Result - {outcome}",
                              [destination, queued.function_arn], record)
        except ServiceError as error:
            log.error("asynchronous invocation %s of %s: its record was not delivered to %s: %s",
                      queued.request_id, queued.function, destination, error.message)

    def _save(self, queued: Queued) -> None:
        self.work.keep(queued.request_id, queued.accepted, queued)


def invocation_record(condition: str, queued: Queued, moment: float) -> Body:
    """Lambda's invocation record: the request, the last attempt's response, and why it was sent."""
    response: Body = {"statusCode": 200, "executedVersion": LATEST}
    if queued.error:
        response["functionError"] = "Unhandled"
    return {
        "version": "1.0",
        "timestamp": format_timestamp(datetime.fromtimestamp(moment, UTC)),
        "requestContext": {
            "requestId": queued.request_id,
            "functionArn": queued.function_arn,
            "condition": condition,
            "approximateInvokeCount": queued.attempts,
        },
        "requestPayload": queued.event,
        "responseContext": response,
        "responsePayload": queued.payload,
    }
