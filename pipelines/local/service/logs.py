"""CloudWatch Logs' reads of the jobs' logs: DescribeLogStreams and GetLogEvents.

SageMaker puts a processing job's output in the log group /aws/sagemaker/ProcessingJobs and a
training job's in /aws/sagemaker/TrainingJobs, one stream per instance named `<job name>/algo-1-
<epoch seconds>`; a job that failed before its container started has none. A group exists once a
job of its kind has a stream. Nothing is written through this API: the jobs write their streams
(jobs/log_events.py). Timestamps are milliseconds since the epoch; an event is ingested as it is
written, so its ingestionTime is its timestamp.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pipelines.local.errors import ServiceError
from pipelines.local.jobs.log_events import LogEvent, created_ms, read_events, streams
from pipelines.local.service.context import ServiceContext
from pipelines.local.service.listing import Listing, prefix
from pipelines.local.storage.database import Body
from pipelines.local.system.identity import arn

# Each job kind's log group, and its table and name member.
GROUPS = {
    "/aws/sagemaker/ProcessingJobs": ("processing_job", "ProcessingJobName"),
    "/aws/sagemaker/TrainingJobs": ("training_job", "TrainingJobName"),
}
MAX_EVENTS = 10_000  # GetLogEvents' most events in one answer, and its default
TOKEN = re.compile(r"([fb])/(\d{56})/s")
STREAMS = Listing(
    "DescribeLogStreams", "logStreams",
    {"LogStreamName": "logStreamName", "LastEventTime": "_lastEvent"}, "logStreamName",
    default_sort="LogStreamName", default_order="Ascending",
    filters={"logStreamNamePrefix": prefix("logStreamName")},
    limit_member="limit", default_limit=50,
)


def invalid_parameter(message: str) -> ServiceError:
    return ServiceError("InvalidParameterException", message)


def not_found(what: str) -> ServiceError:
    return ServiceError("ResourceNotFoundException", f"The specified log {what} does not exist.")


@dataclass(frozen=True)
class Stream:
    name: str  # `<job name>/algo-1-<epoch seconds>`
    path: Path


class LogOperations:
    def __init__(self, context: ServiceContext) -> None:
        self.context = context

    def _streams(self, request: Body) -> tuple[str, list[Stream]]:
        """The group the request names (by name, or by ARN as logGroupIdentifier) and its streams."""
        name, identifier = request.get("logGroupName"), request.get("logGroupIdentifier")
        if name and identifier:
            raise invalid_parameter("LogGroup name and LogGroup ARN are mutually exclusive parameters.")
        if not (name or identifier):
            raise invalid_parameter("Either logGroupName or logGroupIdentifier must be provided.")
        group = name or str(identifier).removesuffix(":*").split(":log-group:", 1)[-1]
        table, name_member = GROUPS.get(group, ("", ""))
        jobs = [body[name_member] for body in self.context.database.all(table)] if table else []
        folders = self.context.layout.job_dirs()
        found = [Stream(f"{job}/{path.name}", path) for job in jobs if job in folders
                 for path in streams(folders[job])]
        if not found:
            raise not_found("group")
        return group, found

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
            "NextToken": request.get("nextToken"),
        }
        try:
            page = STREAMS.page(records, paging, _public)
        except ServiceError:
            raise invalid_parameter("The specified nextToken is invalid.") from None
        body: Body = {"logStreams": page["logStreams"]}
        if "NextToken" in page:
            body["nextToken"] = page["NextToken"]
        return body

    def _description(self, group: str, stream: Stream) -> Body:
        created = created_ms(stream.path)
        events = read_events(stream.path)
        body: Body = {
            "logStreamName": stream.name,
            "creationTime": created,
            "arn": arn("logs", self.context.region, f"log-group:{group}:log-stream:{stream.name}"),
            "storedBytes": 0,  # deprecated: CloudWatch Logs answers 0
            "_lastEvent": events[-1].timestamp if events else created,
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
        if direction == "f":
            chosen = [i for i in window if i >= position][:limit]
        else:
            chosen = [i for i in window if i < position][-limit:]
        first, after = (chosen[0], chosen[-1] + 1) if chosen else (position, position)
        return {
            "events": [_event(events[i]) for i in chosen],
            "nextForwardToken": _token("f", after),
            "nextBackwardToken": _token("b", first),
        }


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
