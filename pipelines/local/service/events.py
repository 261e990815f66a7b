"""EventBridge on the default bus, as far as the project and SageMaker's events need it: rules
whose patterns pick events, Lambda targets they invoke, and the events SageMaker's model registry
sends.

On AWS the infra stack's rule filters approvals by model package group and targets the deploy
function; locally `upsert` puts the same rule through the same API calls, so approving a version in
another group deploys nothing, and the function is whatever the rule names.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from pipelines.local.errors import ServiceError, invalid
from pipelines.local.service.context import ServiceContext
from pipelines.local.service.deliveries import Deliveries
from pipelines.local.service.event_patterns import matches, parse
from pipelines.local.service.listing import Listing, numbered, prefix, seconds
from pipelines.local.storage.database import Body, public
from pipelines.local.system.identity import ACCOUNT, arn

MODEL_PACKAGE_EVENT = "SageMaker Model Package State Change"
# What a version's event carries of its description, when set: the members of AWS's event reference
# ("Events that Amazon SageMaker sends to Amazon EventBridge") and of events SageMaker sent.
PACKAGE_DETAIL = (
    "ModelPackageGroupName", "ModelPackageVersion", "ModelPackageArn", "ModelPackageDescription",
    "CreationTime", "InferenceSpecification", "ModelPackageStatus", "ModelPackageStatusDetails",
    "CertifyForMarketplace", "ModelApprovalStatus", "ApprovalDescription", "MetadataProperties",
    "ModelMetrics", "CustomerMetadataProperties", "ModelLifeCycle", "LastModifiedTime",
)
EPOCH_MILLISECONDS = ("CreationTime", "LastModifiedTime")  # as SageMaker writes them in events
TARGETS = Listing.as_recorded(
    "ListTargetsByRule", "Targets", "Id", scope=("Rule", "EventBusName"), limit_member="Limit"
)
# ListRules by name; a caller that does not page gets as many as the API's Limit allows (100).
RULES = Listing(
    "ListRules", "Rules", {"Name": "Name"}, identity="Arn", default_sort="Name", default_order="Ascending",
    filters={"NamePrefix": prefix("Name")}, scope=("EventBusName",), limit_member="Limit", default_limit=100,
)
TARGETS_PER_RULE = 5
# The most a PutEvents request's entries may hold together, in bytes as _entry_size counts them
# (1 MB since January 2026; 256 KB before).
PUT_EVENTS_LIMIT = 1024 * 1024
TIME_SIZE = 14  # what an entry's Time counts, whatever its value
RULE_MEMBERS = ("EventPattern", "Description", "RoleArn")  # what DescribeRule gives back when set
DOTTED_PATH = re.compile(r"\$(\.[^.\[\]]+)*")  # the InputPath form served: $ and object keys
# What TestEventPattern requires of an event: its reference lists `resources` too, which EventBridge
# does not require (localstack's answers recorded from AWS match events without it).
ENVELOPE = ("id", "account", "source", "time", "region", "detail-type")
INVALID_EVENT = "Parameter Event is not valid."  # EventBridge's words for an event it cannot test
# The targets the local EventBridge delivers to: Lambda functions (an SQS queue, an SNS topic... are
# targets EventBridge delivers to, which the local one cannot).
LAMBDA_TARGET = re.compile(
    r"arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+(:[A-Za-z0-9_$-]+)?"
)


def _default_bus(request: Body) -> None:
    """The local EventBridge has the default event bus only."""
    bus = request.get("EventBusName", "default")
    if bus != "default" and not bus.endswith(":event-bus/default"):
        raise ServiceError("ResourceNotFoundException", f"Event bus {bus} does not exist.")


def _check_rule_pattern(request: Body) -> None:
    """A rule's pattern, refused as EventBridge refuses it. EventBridge also takes a
    ScheduleExpression, with or without a pattern; there is no scheduler here to run one, so it is
    refused by name."""
    if "ScheduleExpression" in request:
        raise invalid("ScheduleExpression is not supported locally: there is no scheduler to run the rule; "
                      "give an EventPattern only.")
    if "EventPattern" not in request:
        raise invalid("Parameter(s) EventPattern or ScheduleExpression must be specified.")
    parse(request["EventPattern"])


def _check_target(target: Body) -> None:
    """A Lambda function, and what it receives: the event, `Input` (a constant) or `InputPath` (a
    part of it)."""
    if not LAMBDA_TARGET.fullmatch(target["Arn"]):
        service = target["Arn"].split(":")[2] if target["Arn"].count(":") >= 2 else target["Arn"]
        raise _bad_target(target, f"{service} targets are not supported locally: the local EventBridge "
                          "delivers events to Lambda functions only.")
    given = [member for member in ("Input", "InputPath", "InputTransformer") if member in target]
    if len(given) > 1:
        raise _bad_target(target, "only one of Input, InputPath and InputTransformer may be given.")
    if "InputTransformer" in target:
        raise _bad_target(target, "InputTransformer is not supported locally; use Input or InputPath.")
    if "Input" in target:
        try:
            json.loads(target["Input"])
        except ValueError:
            raise _bad_target(target, "Input is not valid JSON.") from None
    path = target.get("InputPath")
    if path is not None and not DOTTED_PATH.fullmatch(path):
        raise _bad_target(target, f"InputPath {path!r} is not supported locally; "
                          "use $ or a dotted path such as $.detail.ModelPackageArn.")


def _bad_target(target: Body, problem: str) -> ServiceError:
    return invalid(f"Target {target['Id']}: {problem}")


def delivered(target: Body, event: Body) -> Any:
    """What EventBridge hands the target for this event (a path the event lacks gives null)."""
    if "Input" in target:
        return json.loads(target["Input"])
    found: Any = event
    path = target.get("InputPath", "$")
    for key in path[2:].split(".") if path != "$" else []:
        found = found.get(key) if isinstance(found, dict) else None
    return found


def _entry_size(entry: Body) -> int:
    """An entry's size as EventBridge counts it ("Calculating PutEvents event entry size"): Source,
    DetailType, Detail and each of Resources in UTF-8 bytes, and 14 for a Time."""
    texts = [entry.get("Source") or "", entry.get("DetailType") or "", entry.get("Detail") or "",
             *(entry.get("Resources") or [])]
    return sum(len(text.encode()) for text in texts) + (TIME_SIZE if entry.get("Time") is not None else 0)


def _time(moment: float) -> str:
    """An event's `time`: ISO 8601 in UTC to the second, as EventBridge writes it."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def package_detail(package: Body, before: Body | None) -> Body:
    """A version's description as its state change event carries it; for an update, with the
    members it changed (`UpdatedModelPackageFields`)."""
    detail: Body = {
        "ModelPackageName": f"{package['ModelPackageGroupName']}/{package['ModelPackageVersion']}",
        **{key: package[key] for key in PACKAGE_DETAIL if key in package},
    }
    for key in EPOCH_MILLISECONDS:
        if key in detail:
            detail[key] = round(float(detail[key]) * 1000)
    if before is not None:
        detail["UpdatedModelPackageFields"] = changed_members(before, package)
    return detail


def changed_members(before: Body, after: Body) -> list[str]:
    """What an update changed, not counting its own record of when and by whom."""
    return sorted(
        key for key in set(before) | set(after)
        if key not in ("LastModifiedTime", "LastModifiedBy") and before.get(key) != after.get(key)
    )


class EventOperations:
    def __init__(self, context: ServiceContext, deliveries: Deliveries) -> None:
        self.context = context
        self.database = context.database
        self.deliveries = deliveries

    def _rule(self, name: str) -> Body:
        body = self.database.get("event_rule", name)
        if body is None:
            message = f"Rule {name} does not exist on EventBus default."
            raise ServiceError("ResourceNotFoundException", message)
        return body

    def put_rule(self, request: Body) -> Body:
        """Creates or replaces the rule: a member the request leaves out is gone, as on EventBridge
        (its targets stay)."""
        _default_bus(request)
        name = request["Name"]
        _check_rule_pattern(request)
        with self.context.lock:
            before = self.database.get("event_rule", name)
            body = {
                "Name": name,
                "Arn": arn("events", self.context.region, f"rule/{name}"),
                "State": request.get("State", "ENABLED"),
                **{member: request[member] for member in RULE_MEMBERS if member in request},
                "_Targets": before["_Targets"] if before else [],
            }
            self.database.put("event_rule", name, body, time.time())
        return {"RuleArn": body["Arn"]}

    def describe_rule(self, request: Body) -> Body:
        _default_bus(request)
        return _rule_view(self._rule(request["Name"]))

    def list_rules(self, request: Body) -> Body:
        _default_bus(request)
        return RULES.page(self.database.all("event_rule"), request, _rule_view)

    def test_event_pattern(self, request: Body) -> Body:
        """Whether a rule with this pattern would pick this event (which must be a whole event)."""
        pattern = parse(request["EventPattern"])
        try:
            event = json.loads(request["Event"])
        except ValueError:
            raise invalid(INVALID_EVENT) from None
        if not isinstance(event, dict) or any(field not in event for field in ENVELOPE):
            raise invalid(INVALID_EVENT)
        return {"Result": matches(pattern, event)}

    def put_targets(self, request: Body) -> Body:
        _default_bus(request)
        for target in request["Targets"]:
            _check_target(target)
        with self.context.lock:
            body = self._rule(request["Rule"])
            targets = {t["Id"]: t for t in body["_Targets"]}
            targets.update({t["Id"]: t for t in request["Targets"]})
            if len(targets) > TARGETS_PER_RULE:
                raise ServiceError("LimitExceededException",
                                   "The requested resource exceeds the maximum number allowed.")
            body["_Targets"] = list(targets.values())
            self.database.put("event_rule", body["Name"], body, time.time())
        return {"FailedEntryCount": 0, "FailedEntries": []}

    def list_targets_by_rule(self, request: Body) -> Body:
        _default_bus(request)
        page = TARGETS.page(numbered(self._rule(request["Rule"])["_Targets"]), request, public)
        return {key: value for key, value in page.items() if value}  # no targets: no member (min 1)

    def remove_targets(self, request: Body) -> Body:
        _default_bus(request)
        with self.context.lock:
            body = self._rule(request["Rule"])
            body["_Targets"] = [t for t in body["_Targets"] if t["Id"] not in request["Ids"]]
            self.database.put("event_rule", body["Name"], body, time.time())
        return {"FailedEntryCount": 0, "FailedEntries": []}

    def delete_rule(self, request: Body) -> Body:
        """Deleting a rule that is gone succeeds, as EventBridge's does; one with targets is refused."""
        _default_bus(request)
        with self.context.lock:
            body = self.database.get("event_rule", request["Name"])
            if body is not None and body["_Targets"]:
                raise invalid("Rule can't be deleted since it has targets.")
            self.database.delete("event_rule", request["Name"])
        return {}

    def put_events(self, request: Body) -> Body:
        """Custom events to the default bus; each entry succeeds or fails on its own, once the
        request as a whole is within EventBridge's size limit."""
        if sum(map(_entry_size, request["Entries"])) > PUT_EVENTS_LIMIT:
            raise invalid("Total size of the entries in the request is over the limit.")
        entries: list[Body] = []
        for entry in request["Entries"]:
            try:
                entries.append({"EventId": self._put_event(entry)})
            except ServiceError as error:
                entries.append({"ErrorCode": error.code, "ErrorMessage": error.message})
        return {"FailedEntryCount": sum("ErrorCode" in e for e in entries), "Entries": entries}

    def _put_event(self, entry: Body) -> str:
        _default_bus(entry)
        missing = next((m for m in ("Source", "DetailType", "Detail") if not entry.get(m)), None)
        if missing:
            reason = f"{missing} is a required argument."
            raise ServiceError("InvalidArgument", f"Parameter {missing} is not valid. Reason: {reason}")
        if entry["Source"].startswith("aws."):  # AWS services' own sources are theirs alone
            raise ServiceError("NotAuthorizedForSourceException", "Not authorized for the source.")
        try:
            detail = json.loads(entry["Detail"])
        except ValueError:
            detail = None
        if not isinstance(detail, dict):
            raise ServiceError("MalformedDetail", "Detail is malformed.")
        moment = seconds(entry["Time"]) if entry.get("Time") is not None else time.time()
        event = self._event(entry["Source"], entry["DetailType"], entry.get("Resources", []), detail, moment)
        self.emit(event)
        return str(event["id"])

    def _event(
        self, source: str, detail_type: str, resources: list[str], detail: Body, moment: float
    ) -> Body:
        """The envelope EventBridge puts around every event."""
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": source,
            "account": ACCOUNT,
            "time": _time(moment),
            "region": self.context.region,
            "resources": resources,
            "detail": detail,
        }

    def model_package_changed(self, package: Body, before: Body | None) -> None:
        """What SageMaker sends when a version is created (`before` None) or updated."""
        if before is not None and not changed_members(before, package):
            return
        self.emit(self._event("aws.sagemaker", MODEL_PACKAGE_EVENT, [package["ModelPackageArn"]],
                              package_detail(package, before), time.time()))

    def send(self, source: str, detail_type: str, resources: list[str], detail: Body) -> None:
        """An event an AWS service puts on the default bus (Lambda's destination records)."""
        self.emit(self._event(source, detail_type, resources, detail, time.time()))

    def emit(self, event: Body) -> None:
        """Deliver the event to each target of every matching rule, as EventBridge does: Lambda
        accepts it (and its function's retries are Lambda's), or EventBridge retries or gives up
        as the target's RetryPolicy says (service/deliveries.py)."""
        for rule in self.database.all("event_rule"):
            if rule.get("State") != "ENABLED" or not matches(json.loads(rule["EventPattern"]), event):
                continue
            for target in rule["_Targets"]:
                self.deliveries.deliver(rule["Name"], target, delivered(target, event))


def _rule_view(rule: Body) -> Body:
    return {**public(rule), "EventBusName": "default"}
