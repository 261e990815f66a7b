"""EventBridge Scheduler's schedules, as far as the project needs them: the monitoring pipeline run
on a timer (`monitor setup`), in the default schedule group.

A schedule's target is SageMaker's StartPipelineExecution, through Scheduler's universal target
(`arn:aws:scheduler:::aws-sdk:sagemaker:startPipelineExecution`, the request as its Input) or its
templated one (the pipeline's ARN, with SageMakerPipelineParameters). What the local target cannot
reproduce is refused by name when the schedule is created or updated, not accepted and ignored:
another target, a dead-letter queue (there is no SQS), a customer managed KMS key, another
schedule group. The schedule timer (schedule_timer.py) invokes the targets; a flexible time window
lets Scheduler invoke anywhere within it, and the local scheduler invokes at its start. A target's
RetryPolicy is kept and answered: Scheduler retries a target that throttles or is unavailable, and
the local start, a call inside the server, is neither (what it refuses is the request's fault).
"""

from __future__ import annotations

import json
import math
import threading
import time
from datetime import UTC, datetime, timedelta

from pipelines.local.errors import ServiceError, invalid
from pipelines.local.service.context import ServiceContext
from pipelines.local.service.listing import Listing, equals, prefix, seconds
from pipelines.local.service.schedule_expressions import Schedule, parse
from pipelines.local.storage.database import Body, public
from pipelines.local.system.identity import arn

KIND = "schedule"
GROUP = "default"
START_PIPELINE = "arn:aws:scheduler:::aws-sdk:sagemaker:startPipelineExecution"
PIPELINE_ARN = "arn:aws:sagemaker:"  # a templated target: the pipeline itself
RETRY_DEFAULTS = {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}
PAST_START_SECONDS = 300  # how far in the past Scheduler takes a StartDate (on create and on update)
SETTINGS = (
    "ScheduleExpression", "StartDate", "EndDate", "Description", "ScheduleExpressionTimezone", "State",
    "Target", "FlexibleTimeWindow", "ActionAfterCompletion",
)
OTHER_TARGETS = (
    "EcsParameters", "EventBridgeParameters", "EventBridgePutEventsV2Parameters",
    "EventBridgePutRawEventsParameters", "KinesisParameters", "SqsParameters",
)
SCHEDULES = Listing(
    "ListSchedules", "Schedules", {"Name": "Name"}, identity="Arn", default_sort="Name",
    default_order="Ascending", filters={"NamePrefix": prefix("Name"), "State": equals("State")},
    scope=("GroupName",), default_limit=100,
)


def _group(request: Body) -> None:
    """The local scheduler has the default schedule group only."""
    group = request.get("GroupName", GROUP)
    if group != GROUP:
        raise ServiceError("ResourceNotFoundException", f"Schedule group {group} does not exist.", 404)


def _not_found(name: str) -> ServiceError:
    return ServiceError("ResourceNotFoundException", f"Schedule {name} does not exist.", 404)


def _check_target(target: Body) -> None:
    """A target the local scheduler can invoke, with nothing it would have to ignore."""
    target_arn = target["Arn"]
    if target_arn == START_PIPELINE:
        try:
            json.loads(target.get("Input", ""))
        except ValueError:
            raise invalid("Target Input must be valid JSON: the request of StartPipelineExecution.") from None
        if "SageMakerPipelineParameters" in target:
            raise invalid("SageMakerPipelineParameters apply to a pipeline's ARN as the target; the "
                          "universal target takes the parameters in its Input.")
    elif not target_arn.startswith(PIPELINE_ARN) or ":pipeline/" not in target_arn:
        raise invalid(
            f"Target {target_arn} is not supported locally: the local scheduler starts SageMaker pipeline "
            f"executions only ({START_PIPELINE}, or a pipeline's ARN with SageMakerPipelineParameters)."
        )
    if "DeadLetterConfig" in target:
        raise invalid("DeadLetterConfig is not supported locally: there is no SQS queue to send an "
                      "undelivered invocation to (the server's log records it).")
    given = [member for member in OTHER_TARGETS if member in target]
    if given:
        raise invalid(f"{', '.join(given)} apply to other targets than a SageMaker pipeline.")


def _check_window(window: Body) -> None:
    if window["Mode"] == "FLEXIBLE" and "MaximumWindowInMinutes" not in window:
        raise invalid("MaximumWindowInMinutes is required when the flexible time window's Mode is FLEXIBLE.")


def _settings(request: Body) -> Body:
    """What a create or update sets: every member it gives, with Scheduler's defaults."""
    if "KmsKeyArn" in request:
        raise invalid("KmsKeyArn is not supported locally: the local state is not encrypted with KMS keys.")
    _check_target(request["Target"])
    _check_window(request["FlexibleTimeWindow"])
    settings = {member: request[member] for member in SETTINGS if member in request}
    for member in ("StartDate", "EndDate"):
        if member in settings:
            settings[member] = _epoch(member, settings[member])
    if settings.get("StartDate", math.inf) < time.time() - PAST_START_SECONDS:
        raise invalid("The StartDate you specify cannot be earlier than 5 minutes ago.")
    if "StartDate" in settings and "EndDate" in settings and settings["EndDate"] <= settings["StartDate"]:
        raise invalid("The EndDate must be after the StartDate.")
    settings.setdefault("State", "ENABLED")
    settings.setdefault("ActionAfterCompletion", "NONE")
    settings["Target"] = {**settings["Target"], "RetryPolicy": {
        **RETRY_DEFAULTS, **settings["Target"].get("RetryPolicy", {})}}
    return settings


def _epoch(member: str, moment: float | str) -> float:
    """A date of the request as epoch seconds, refused when no calendar date is that moment."""
    try:
        epoch = seconds(moment)
        datetime.fromtimestamp(epoch, UTC)
    except (ValueError, OverflowError, OSError):
        raise invalid(f"Invalid {member}: {moment}") from None
    return epoch


def schedule_of(body: Body) -> Schedule:
    """When a stored schedule invokes its target."""
    return parse(
        body["ScheduleExpression"], body.get("ScheduleExpressionTimezone"), _moment(body.get("StartDate")),
        _moment(body.get("EndDate")), datetime.fromtimestamp(body["CreationDate"], UTC),
    )


def _moment(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def first_invocation(body: Body) -> float | None:
    """When a schedule, just created or updated, first invokes its target (epoch seconds): never
    before it was set, and never while it is disabled. A rate keeps its start (its StartDate, else
    its creation), so setting a schedule up again does not invoke it again at once. Its expression
    is read (and refused when malformed) whatever its state, as Scheduler checks it."""
    schedule = schedule_of(body)
    if body["State"] != "ENABLED":
        return None
    set_at = datetime.fromtimestamp(body["LastModificationDate"], UTC)
    found = schedule.after(set_at - timedelta(microseconds=1))
    return None if found is None else found.timestamp()


class ScheduleOperations:
    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        self.database = context.database
        self.changed = threading.Event()  # set when the timer must look at the schedules again

    def _schedule(self, name: str) -> Body:
        body = self.database.get(KIND, name)
        if body is None:
            raise _not_found(name)
        return body

    def create_schedule(self, request: Body) -> Body:
        _group(request)
        settings = _settings(request)
        name = request["Name"]
        with self.context.lock:
            existing = self.database.get(KIND, name)
            if existing is not None:
                if request.get("ClientToken") and existing.get("_ClientToken") == request["ClientToken"]:
                    return {"ScheduleArn": existing["Arn"]}  # the same create, retried
                raise ServiceError("ConflictException", f"Schedule {name} already exists.", 409)
            now = time.time()
            body = {
                "Arn": arn("scheduler", self.context.region, f"schedule/{GROUP}/{name}"),
                "GroupName": GROUP,
                "Name": name,
                "CreationDate": now,
                "LastModificationDate": now,
                **settings,
                "_ClientToken": request.get("ClientToken"),
            }
            self._keep(body)
        return {"ScheduleArn": body["Arn"]}

    def update_schedule(self, request: Body) -> Body:
        """Replaces the schedule's settings: a member the request leaves out takes its default, as
        on Scheduler."""
        _group(request)
        settings = _settings(request)
        with self.context.lock:
            before = self._schedule(request["Name"])
            body = {
                **{key: before[key] for key in ("Arn", "GroupName", "Name", "CreationDate")},
                "LastModificationDate": time.time(),
                **settings,
            }
            self._keep(body)
        return {"ScheduleArn": body["Arn"]}

    def _keep(self, body: Body) -> None:
        """Store the schedule with its next invocation, and tell the timer."""
        body["_Next"] = first_invocation(body)
        self.database.put(KIND, body["Name"], body, body["CreationDate"])
        self.changed.set()

    def get_schedule(self, request: Body) -> Body:
        _group(request)
        return public(self._schedule(request["Name"]))

    def list_schedules(self, request: Body) -> Body:
        _group(request)
        return SCHEDULES.page(self.database.all(KIND), request, _summary)

    def delete_schedule(self, request: Body) -> Body:
        _group(request)
        with self.context.lock:
            self._schedule(request["Name"])
            self.database.delete(KIND, request["Name"])
        self.changed.set()
        return {}


SUMMARY = ("Arn", "Name", "GroupName", "State", "CreationDate", "LastModificationDate")


def _summary(body: Body) -> Body:
    return {**{key: body[key] for key in SUMMARY}, "Target": {"Arn": body["Target"]["Arn"]}}
