"""The local scheduler's timer: starts each enabled schedule's pipeline execution when it is due.

One thread sleeps until the soonest invocation of any schedule, or until a schedule changes. Each
invocation is SageMaker's StartPipelineExecution, checked against its request shape as the API
checks it, with Scheduler's context attributes (`<aws.scheduler.scheduled-time>` and the rest)
filled in the target's Input. What the invocation answers goes to the server's log: the local
target has no CloudWatch metrics or dead-letter queue for it.

Scheduler invokes a target within a minute of its time. An invocation more than a minute late was
missed: the server was not running then (a schedule's invocations are recorded in the state, so
the next start knows). It is logged, not made late: a monitoring run started hours after its time
would check a window no one asked for at that moment.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from pipelines.local.contract.models import operation_model
from pipelines.local.contract.shapes import summary, validate
from pipelines.local.errors import ServiceError
from pipelines.local.service.schedules import KIND, START_PIPELINE, ScheduleOperations, schedule_of
from pipelines.local.storage.database import Body
from pipelines.local.system.clock import Clock

MISSED_AFTER = 60.0  # seconds: Scheduler's precision
EXECUTION_ID_LENGTH = 16  # as long as the execution ids Scheduler documents (d32c5kddcf5bb8c3)
log = logging.getLogger(__name__)


def scheduled_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def target_request(body: Body, moment: float, execution_id: str) -> Body:
    """StartPipelineExecution's request for the invocation due at `moment`."""
    target = body["Target"]
    if target["Arn"] == START_PIPELINE:
        text = str(target["Input"])
        for attribute, value in (
            ("schedule-arn", body["Arn"]), ("scheduled-time", scheduled_time(moment)),
            ("execution-id", execution_id), ("attempt-number", "1"),
        ):
            text = text.replace(f"<aws.scheduler.{attribute}>", value)
        request: Body = json.loads(text)
        return request
    parameters = target.get("SageMakerPipelineParameters", {}).get("PipelineParameterList", [])
    return {"PipelineName": target["Arn"], "PipelineParameters": parameters,
            "ClientRequestToken": f"{execution_id}-{uuid.uuid4().hex}"}


class ScheduleTimer:
    def __init__(
        self, schedules: ScheduleOperations, start_execution: Callable[[Body], Body], clock: Clock
    ) -> None:
        self.schedules = schedules
        self.database = schedules.database
        self.lock = schedules.context.lock
        self.start_execution = start_execution
        self.clock = clock
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="schedule-timer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.stopping.set()
        self.schedules.changed.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self.stopping.is_set():
            self.schedules.changed.clear()
            soonest = self.invoke_due()
            if soonest is None:  # nothing to invoke until a schedule changes
                self.schedules.changed.wait()
            else:
                self.clock.wait_until(soonest, self.schedules.changed)

    def invoke_due(self) -> float | None:
        """Invoke every schedule that is due; when the next one is."""
        soonest: float | None = None
        for body in self.database.all(KIND):
            due = body.get("_Next")
            if due is not None and due <= self.clock.now():
                due = self._invoke(body["Name"], due)
            if due is not None:
                soonest = due if soonest is None else min(soonest, due)
        return soonest

    def _invoke(self, name: str, due: float) -> float | None:
        """The invocation due at `due`, unless the schedule changed since it was read; the
        schedule's next invocation."""
        now = self.clock.now()
        with self.lock:
            body = self.database.get(KIND, name)
            if body is None or body.get("_Next") != due:
                return None if body is None else body.get("_Next")
            missed = now - due > MISSED_AFTER
            since = max(due, now - MISSED_AFTER) if missed else due
            following = schedule_of(body).after(datetime.fromtimestamp(since, UTC))
            body["_Next"] = None if following is None else following.timestamp()
            if body["_Next"] is None and body.get("ActionAfterCompletion") == "DELETE":
                self.database.delete(KIND, name)
            else:
                self.database.put(KIND, name, body, body["CreationDate"])
        if missed:
            log.warning("schedule %s: its invocation due at %s was missed, with any after it until a "
                        "minute ago: the local server was not running", name, scheduled_time(due))
        else:
            self._start(body, due)
        return body["_Next"]

    def _start(self, body: Body, due: float) -> None:
        execution_id = uuid.uuid4().hex[:EXECUTION_ID_LENGTH]
        try:
            request = target_request(body, due, execution_id)
        except ValueError as error:
            log.error("schedule %s: its Input is not JSON once filled in: %s", body["Name"], error)
            return
        errors = validate(operation_model("sagemaker", "StartPipelineExecution").input_shape, request)
        try:
            if errors:
                raise ServiceError("ValidationException", summary(errors))
            started = self.start_execution(request)
        except ServiceError as error:
            log.error("schedule %s: StartPipelineExecution for %s refused: %s: %s", body["Name"],
                      scheduled_time(due), error.code, error.message)
            return
        except Exception:  # the server's fault: logged, and the timer goes on with other schedules
            log.exception("schedule %s: StartPipelineExecution for %s failed", body["Name"],
                          scheduled_time(due))
            return
        log.info("schedule %s: started %s for %s (invocation %s)", body["Name"],
                 started["PipelineExecutionArn"], scheduled_time(due), execution_id)
