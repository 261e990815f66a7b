"""CloudWatch Logs' reads: DescribeLogGroups, DescribeLogStreams, GetLogEvents and FilterLogEvents.

SageMaker puts a processing job's output in the log group /aws/sagemaker/ProcessingJobs and a
training job's in /aws/sagemaker/TrainingJobs, one stream per instance named `<job name>/algo-1-
<epoch seconds>`; a job that failed before its container started has none. Lambda functions' and
endpoints' groups are in jobs/log_groups.py. A group exists once something has written a stream
into it. Nothing is written through this API: the jobs, the functions' environments and the model
servers write their streams (jobs/log_events.py). Timestamps are milliseconds since the epoch; an
event is ingested as it is written, so its ingestionTime is its timestamp. A page of events holds
up to 1 MB or 10,000 events, a message counting its UTF-8 bytes and 26 bytes more, as PutLogEvents
counts a batch.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pipelines.local.errors import ServiceError
from pipelines.local.jobs.log_events import LogEvent, created_ms, read_events, streams
from pipelines.local.jobs.log_groups import LogGroups
from pipelines.local.service.context import ServiceContext
from pipelines.local.service.filter_patterns import FilterPattern
from pipelines.local.service.listing import Listing, prefix
from pipelines.local.storage.database import Body
from pipelines.local.system.identity import arn

# Each job kind's log group, and its table and name member.
GROUPS = {
    "/aws/sagemaker/ProcessingJobs": ("processing_job", "ProcessingJobName"),
    "/aws/sagemaker/TrainingJobs": ("training_job", "TrainingJobName"),
}
MAX_EVENTS = 10_000  # the most events in one page, and the default
PAGE_BYTES = 1_048_576  # the most bytes in one page of events
EVENT_OVERHEAD = 26  # what each event counts beyond its message's bytes
TOKEN = re.compile(r"([fb])/(\d{56})/s")
STREAMS = Listing(
    "DescribeLogStreams", "logStreams",
    {"LogStreamName": "logStreamName", "LastEventTime": "_lastEvent"}, "logStreamName",
    default_sort="LogStreamName", default_order="Ascending",
    filters={"logStreamNamePrefix": prefix("logStreamName")},
    limit_member="limit", default_limit=50,
)
LOG_GROUPS = Listing(
    "DescribeLogGroups", "logGroups", {"LogGroupName": "logGroupName"}, "logGroupName",
    default_sort="LogGroupName", default_order="Ascending",
    filters={
        "logGroupNamePrefix": prefix("logGroupName"),
        "logGroupNamePattern": lambda record, text: str(text).lower() in record["logGroupName"].lower(),
        "logGroupClass": lambda record, wanted: wanted == record["logGroupClass"],
        "logGroupIdentifiers": lambda record, wanted: bool(
            {record["logGroupName"], record["logGroupArn"]} & set(wanted)),
    },
    limit_member="limit", default_limit=50,
)

T = TypeVar("T")  # an event, in whatever form an operation pages it


def invalid_parameter(message: str) -> ServiceError:
    return ServiceError("InvalidParameterException", message)


def not_found(what: str) -> ServiceError:
    return ServiceError("ResourceNotFoundException", f"The specified log {what} does not exist.")


@dataclass(frozen=True)
class Stream:
    name: str  # e.g. `<job name>/algo-1-<epoch seconds>`
    path: Path
    created: int  # milliseconds since the epoch


class LogOperations:
    def __init__(self, context: ServiceContext, log_groups: LogGroups) -> None:
        self.context = context
        self.log_groups = log_groups

    def _group_streams(self, group: str) -> list[Stream]:
        """A group's streams, none if it does not exist."""
        if group not in GROUPS:
            return [Stream(s.name, s.path, s.created) for s in self.log_groups.streams(group)]
        table, name_member = GROUPS[group]
        folders = self.context.layout.job_dirs()
        jobs = [body[name_member] for body in self.context.database.all(table)]
        return [Stream(f"{job}/{path.name}", path, created_ms(path)) for job in jobs if job in folders
                for path in streams(folders[job])]

    def _streams(self, request: Body) -> tuple[str, list[Stream]]:
        """The group the request names (by name, or by ARN as logGroupIdentifier) and its streams."""
        name, identifier = request.get("logGroupName"), request.get("logGroupIdentifier")
        if name and identifier:  # CloudWatch Logs' code for this one (localstack's recorded answers)
            raise ServiceError("ValidationException",
                               "LogGroup name and LogGroup ARN are mutually exclusive parameters.")
        if not (name or identifier):
            raise invalid_parameter("Either logGroupName or logGroupIdentifier must be provided.")
        group = name or str(identifier).removesuffix(":*").split(":log-group:", 1)[-1]
        found = self._group_streams(group)
        if not found:
            raise not_found("group")
        return group, found

    def describe_log_groups(self, request: Body) -> Body:
        """The groups that exist, by name, up to 50 a page; a name pattern is a case-insensitive
        part of the name."""
        if request.get("logGroupNamePrefix") and request.get("logGroupNamePattern"):
            raise invalid_parameter(
                "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.")
        if request.get("accountIdentifiers") or request.get("includeLinkedAccounts"):
            raise invalid_parameter(
                "accountIdentifiers and includeLinkedAccounts are not supported by the local CloudWatch "
                "Logs: it has one account and no linked source accounts (cross-account observability)")
        names = [*GROUPS, *self.log_groups.groups()]
        records = [self._group(name, found) for name in names if (found := self._group_streams(name))]
        return self._page(LOG_GROUPS, records, request, {**request, "SortBy": "LogGroupName"})

    def _group(self, name: str, found: list[Stream]) -> Body:
        group_arn = arn("logs", self.context.region, f"log-group:{name}")
        return {
            "logGroupName": name,
            "creationTime": min(stream.created for stream in found),
            "metricFilterCount": 0,
            "arn": f"{group_arn}:*",
            "logGroupArn": group_arn,
            "storedBytes": 0,
            "logGroupClass": "STANDARD",
            "deletionProtectionEnabled": False,
        }

    def describe_log_streams(self, request: Body) -> Body:
        """The group's streams by name (or by their last event, then without a name prefix), as
        CloudWatch Logs pages them: up to 50 at a time, with a nextToken while more remain."""
        if request.get("orderBy") == "LastEventTime" and request.get("logStreamNamePrefix"):
            raise invalid_parameter("Cannot order by LastEventTime with a logStreamNamePrefix.")
        group, found = self._streams(request)
        records = [self._description(group, stream) for stream in found]
        paging = {
            **request,
            "SortBy": request.get("orderBy", "LogStreamName"),
            "SortOrder": "Descending" if request.get("descending") else "Ascending",
        }
        return self._page(STREAMS, records, request, paging)

    @staticmethod
    def _page(listing: Listing, records: list[Body], request: Body, paging: Body) -> Body:
        try:
            page = listing.page(records, {**paging, "NextToken": request.get("nextToken")}, _public)
        except ServiceError:
            raise invalid_parameter("The specified nextToken is invalid.") from None
        body: Body = {listing.result_key: page[listing.result_key]}
        if "NextToken" in page:
            body["nextToken"] = page["NextToken"]
        return body

    def _description(self, group: str, stream: Stream) -> Body:
        events = read_events(stream.path)
        body: Body = {
            "logStreamName": stream.name,
            "creationTime": stream.created,
            "arn": arn("logs", self.context.region, f"log-group:{group}:log-stream:{stream.name}"),
            "storedBytes": 0,  # deprecated: CloudWatch Logs answers 0
            "_lastEvent": events[-1].timestamp if events else stream.created,
        }
        if events:
            body.update(
                firstEventTimestamp=events[0].timestamp,
                lastEventTimestamp=events[-1].timestamp,
                lastIngestionTime=events[-1].timestamp,
            )
        return body

    def get_log_events(self, request: Body) -> Body:
        """A page of one stream's events in time order, from its start (startFromHead) or its end,
        within [startTime, endTime). A nextForwardToken reads on after the page and a
        nextBackwardToken before it; at either end of the stream the token given comes back."""
        _, found = self._streams(request)
        wanted = request["logStreamName"]
        stream = next((s for s in found if s.name == wanted), None)
        if stream is None:
            raise not_found("stream")
        events = read_events(stream.path)
        window = [i for i, event in enumerate(events) if _within(event, request)]
        limit = int(request.get("limit", MAX_EVENTS))
        if request.get("nextToken"):
            direction, position = _position(request["nextToken"])
        else:
            direction = "f" if request.get("startFromHead") else "b"
            position = 0 if direction == "f" else len(events)
        def message(index: int) -> str:
            return events[index].message

        if direction == "f":
            chosen = _page((i for i in window if i >= position), limit, message)
        else:
            chosen = _page((i for i in reversed(window) if i < position), limit, message)[::-1]
        first, after = (chosen[0], chosen[-1] + 1) if chosen else (position, position)
        return {
            "events": [_event(events[i]) for i in chosen],
            "nextForwardToken": _token("f", after),
            "nextBackwardToken": _token("b", first),
        }

    def filter_log_events(self, request: Body) -> Body:
        """The group's events in time order across its streams (those named, or those whose name
        has the prefix), within [startTime, endTime] and matching the filter pattern, a page at a
        time; nextToken is the last event given, and comes only while more events remain."""
        if request.get("logStreamNames") and request.get("logStreamNamePrefix"):
            raise invalid_parameter(
                "logStreamNames and logStreamNamePrefix are mutually exclusive parameters.")
        if request.get("startFromHead") is False:
            raise invalid_parameter("The local target answers FilterLogEvents from the head only.")
        pattern = FilterPattern.parse(str(request.get("filterPattern", "")))
        _, found = self._streams(request)
        names, name_prefix = request.get("logStreamNames"), request.get("logStreamNamePrefix", "")
        chosen = [s for s in found if (s.name in names if names else s.name.startswith(name_prefix))]
        after = _cursor(request["nextToken"]) if request.get("nextToken") else None
        matching = sorted(
            (event.timestamp, stream.name, index, event.message)
            for stream in chosen
            for index, event in enumerate(read_events(stream.path))
            if request.get("startTime", 0) <= event.timestamp <= request.get("endTime", 2**63)
            and pattern.matches(event.message)
        )
        remaining = [event for event in matching if after is None or list(event[:3]) > after]
        page = _page(remaining, int(request.get("limit", MAX_EVENTS)), lambda event: event[3])
        body: Body = {"events": [_filtered(*event) for event in page], "searchedLogStreams": []}
        if len(page) < len(remaining):
            body["nextToken"] = base64.urlsafe_b64encode(json.dumps(list(page[-1][:3])).encode()).decode()
        return body


def _cursor(token: str) -> list[object]:
    try:
        cursor = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error):
        cursor = None
    if not (isinstance(cursor, list) and len(cursor) == 3):
        raise invalid_parameter("The specified nextToken is invalid.")
    return cursor


def _filtered(timestamp: int, stream: str, index: int, message: str) -> Body:
    """An event as FilterLogEvents gives it; its eventId (56 digits, as CloudWatch's) names it
    by its time, its stream and its place in the stream."""
    event_id = f"{timestamp:020d}{zlib.crc32(stream.encode()):010d}{index:026d}"
    return {
        "logStreamName": stream, "timestamp": timestamp, "message": message,
        "ingestionTime": timestamp, "eventId": event_id,
    }


def _size(message: str) -> int:
    return len(message.encode("utf-8")) + EVENT_OVERHEAD


def _page(events: Iterable[T], limit: int, message: Callable[[T], str]) -> list[T]:
    """The first `limit` events that fit in one page (the first always does), for GetLogEvents
    and FilterLogEvents alike."""
    chosen: list[T] = []
    size = 0
    for event in events:
        size += _size(message(event))
        if len(chosen) == limit or (chosen and size > PAGE_BYTES):
            break
        chosen.append(event)
    return chosen

def _within(event: LogEvent, request: Body) -> bool:
    """startTime is inclusive, endTime exclusive, as CloudWatch Logs documents them."""
    return request.get("startTime", 0) <= event.timestamp < request.get("endTime", 2**63)


def _event(event: LogEvent) -> Body:
    return {"timestamp": event.timestamp, "message": event.message, "ingestionTime": event.timestamp}


def _token(direction: str, position: int) -> str:
    return f"{direction}/{position:056d}/s"


def _position(token: str) -> tuple[str, int]:
    match = TOKEN.fullmatch(token)
    if match is None:
        raise invalid_parameter("The specified nextToken is invalid.")
    return match.group(1), int(match.group(2))


def _public(record: Body) -> Body:
    return {key: value for key, value in record.items() if not key.startswith("_")}
