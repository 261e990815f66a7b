"""Lambda's asynchronous invocation: Invoke with InvocationType Event (and EventBridge's targets)
queue the event and get their answer at once; the function then runs as Lambda runs it.

A function error (an exception, a timeout, a runtime that exits) is retried up to the function's
MaximumRetryAttempts (2 unless its event invoke config says otherwise), about one minute after the
first attempt and two minutes after the second, as Lambda documents; an event that would be older
than MaximumEventAgeInSeconds (6 hours by default) before its next attempt is discarded instead.
The outcome goes to the config's OnSuccess or OnFailure destination as Lambda's invocation record,
and a discarded event is logged in any case: locally the server's log is where a failed asynchronous
invocation is seen. Waits go through a `Clock`, so tests need not wait minutes. The queue is in
memory: events still waiting for a retry are lost when the server stops (and logged as such).
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pipelines.local.errors import ServiceError
from pipelines.local.lambdas.event_invoke import EventInvokeConfigs
from pipelines.local.lambdas.functions import LATEST, Functions, Invocation
from pipelines.local.storage.database import Body
from pipelines.local.system.clock import Clock, format_timestamp

log = logging.getLogger(__name__)
# Lambda waits about a minute before an event's first retry, and two minutes before its second.
RETRY_DELAYS = (60.0, 120.0)
SUCCESS, RETRIES_EXHAUSTED, EVENT_AGE_EXCEEDED = "Success", "RetriesExhausted", "EventAgeExceeded"


class EventBus(Protocol):
    """Where an event bus destination's records go (the service's EventBridge)."""

    def send(self, source: str, detail_type: str, resources: list[str], detail: Body) -> None: ...


@dataclass(frozen=True)
class Queued:
    """An event accepted for a function: its retries keep the first attempt's request id."""

    function: str
    function_arn: str  # qualified with $LATEST, as the invocation record names it
    event: Any
    request_id: str
    accepted: float  # epoch seconds: the event's age counts from here


class AsyncInvocations:
    def __init__(self, functions: Functions, configs: EventInvokeConfigs, clock: Clock) -> None:
        self.functions = functions
        self.configs = configs
        self.clock = clock
        self.bus: EventBus | None = None  # EventBridge, which sits above this layer, sets itself
        self._stopping = threading.Event()

    def submit(self, name_or_arn: str, event: Any, qualifier: str | None = None) -> str:
        """Accept an event as Invoke with InvocationType Event does, refusing at once what Invoke
        refuses (no such function, a Pending one), and run it on a thread of its own; its request id."""
        body = self.functions.invocable(name_or_arn, qualifier)
        function = body["FunctionName"]
        arn = f"{body['FunctionArn']}:{LATEST}"
        queued = Queued(function, arn, event, str(uuid.uuid4()), self.clock.now())
        threading.Thread(target=self._run, args=(queued,), name=f"async-{function}", daemon=True).start()
        return queued.request_id

    def close(self) -> None:
        """The server is stopping: events waiting for a retry are dropped (and logged)."""
        self._stopping.set()

    def _run(self, queued: Queued) -> None:
        attempts = 0
        while True:
            attempts += 1
            invocation = self._attempt(queued)
            settings = self.configs.settings(queued.function)
            if not invocation.error:
                self._record(settings.on_success, SUCCESS, queued, attempts, invocation)
                return
            log.error("asynchronous invocation %s of %s failed (attempt %d of %d): %s\n%s",
                      queued.request_id, queued.function, attempts, settings.retries + 1, invocation.error,
                      invocation.log.rstrip())
            if attempts > settings.retries:
                condition = RETRIES_EXHAUSTED
                break
            delay = RETRY_DELAYS[attempts - 1]
            expires = queued.accepted + settings.max_age
            if self.clock.now() + delay >= expires:
                if self.clock.wait(max(0.0, expires - self.clock.now()), self._stopping):
                    self._dropped(queued, attempts)
                    return
                condition = EVENT_AGE_EXCEEDED
                break
            if self.clock.wait(delay, self._stopping):
                self._dropped(queued, attempts)
                return
        log.error("asynchronous invocation %s of %s discarded (%s after %d attempts); on-failure "
                  "destination: %s", queued.request_id, queued.function, condition, attempts,
                  settings.on_failure or "none")
        self._record(settings.on_failure, condition, queued, attempts, invocation)

    def _attempt(self, queued: Queued) -> Invocation:
        """One run of the function; what keeps it from running at all counts as its error."""
        try:
            return self.functions.invoke(queued.function, queued.event, request_id=queued.request_id)
        except ServiceError as error:
            document = {"errorMessage": error.message, "errorType": error.code}
            return Invocation(document, f"{error.code}: {error.message}", "", queued.request_id)

    def _dropped(self, queued: Queued, attempts: int) -> None:
        log.warning("asynchronous invocation %s of %s dropped after %d attempts: the server is stopping",
                    queued.request_id, queued.function, attempts)

    def _record(self, destination: str, condition: str, queued: Queued, attempts: int,
                invocation: Invocation) -> None:
        """Send Lambda's invocation record to a destination: a function gets it as an asynchronous
        invocation's event, the event bus as the detail of an event from `lambda`."""
        if not destination:
            return
        record = invocation_record(condition, queued, attempts, invocation, self.clock.now())
        try:
            if destination.split(":")[2] == "lambda":
                self.submit(destination, record)
            else:
                assert self.bus is not None, "EventBridge attaches itself at start-up"
                outcome = "Success" if condition == SUCCESS else "Failure"
                self.bus.send("lambda", f"Lambda Function Invocation Result - {outcome}",
                              [destination, queued.function_arn], record)
        except ServiceError as error:
            log.error("asynchronous invocation %s of %s: its record was not delivered to %s: %s",
                      queued.request_id, queued.function, destination, error.message)


def invocation_record(condition: str, queued: Queued, attempts: int, invocation: Invocation,
                      moment: float) -> Body:
    """Lambda's invocation record: the request, the last attempt's response, and why it was sent."""
    response: Body = {"statusCode": 200, "executedVersion": LATEST}
    if invocation.error:
        response["functionError"] = "Unhandled"
    return {
        "version": "1.0",
        "timestamp": format_timestamp(datetime.fromtimestamp(moment, UTC)),
        "requestContext": {
            "requestId": queued.request_id,
            "functionArn": queued.function_arn,
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "requestPayload": queued.event,
        "responseContext": response,
        "responsePayload": invocation.payload,
    }
