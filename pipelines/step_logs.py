"""A pipeline step's log, through the same API calls on both targets.

SageMaker writes a processing or training job's output to CloudWatch Logs: the group of its kind,
one stream per instance named `<job name>/algo-1-<epoch seconds>`. The step's job is in the
Metadata of ListPipelineExecutionSteps (a step reused from an earlier run names that run's job).
A Lambda step's Metadata names the function but not the request: its invocation is the one whose
START line Lambda wrote in the function's log group while the step ran (the group its
LoggingConfig names, `/aws/lambda/<function>` unless another is set), shown from START to REPORT
(read with FilterLogEvents), then what the step list says it did. A step that
runs neither (Condition, RegisterModel, Fail) has no log of its own in the pipeline's account: what
it did is in the step list, and that is what it shows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Generator, Iterator
from typing import Any

from botocore.exceptions import ClientError

from pipelines.executions import list_steps
from pipelines.graph import step_names


class NoSuchStep(ValueError):
    """The execution has no step of that name; `ran` are the steps it has."""

    def __init__(self, step_name: str, ran: list[str]) -> None:
        super().__init__(f"no step {step_name!r} in this execution; its steps: {', '.join(ran)}")
        self.ran = ran


LOG_GROUPS = {"ProcessingJob": "/aws/sagemaker/ProcessingJobs", "TrainingJob": "/aws/sagemaker/TrainingJobs"}
# How many of a pipeline's latest executions are searched for one that ran a step.
RUNS_LOOKED_AT = 20
# How long after the step's end its invocation's END and REPORT lines may still be written.
REPORT_GRACE_MS = 1000
TAIL_LINES = 10  # how much of a failed job's log following an execution shows


def step_log(
    sm: Any, logs: Any, functions: Callable[[], Any], execution_arn: str, step_name: str
) -> Iterator[str]:
    """The step's lines: its job's log events in time order, or what the step list says it did;
    `functions` makes the Lambda client that tells a Lambda step's function's log group (only a
    Lambda step's log needs one)."""
    steps = {step["StepName"]: step for step in list_steps(sm, execution_arn)}
    if step_name not in steps:
        raise NoSuchStep(step_name, list(steps))
    step = steps[step_name]
    job = job_of(step)
    if job is not None:
        group, name = job
        found = yield from job_log(logs, group, name)
        if not found:
            yield f"job {name} has no log stream in {group}: its container has not started\n"
            yield from outcome(step)
        return
    metadata = step.get("Metadata", {})
    if "Arn" in metadata.get("Lambda", {}):
        group = function_log_group(functions(), metadata["Lambda"]["Arn"])
        yield from lambda_log(logs, group, step)
    yield from outcome(step)


def failed_job_tails(
    logs: Any, steps: list[dict[str, Any]], lines: int = TAIL_LINES
) -> Iterator[tuple[str, list[str]]]:
    """(step name, the last `lines` lines of its job's log) for each failed job step of `steps` (as
    `list_steps` gives them) whose job left no ExitMessage: what a crashed training script printed,
    which SageMaker's reason holds none of (the scikit-learn image does not capture stderr). A log
    that cannot be read (no stream, or on AWS no permission to read it) is left out: the step table
    names the command that reads it."""
    for step in steps:
        job = job_of(step)
        if job is None or step.get("StepStatus") != "Failed" or step.get("ExitMessage"):
            continue
        try:
            tail = job_log_tail(logs, *job, lines)
        except ClientError:
            continue
        if tail:
            yield step["StepName"], tail


def job_of(step: dict[str, Any]) -> tuple[str, str] | None:
    """(log group, job name) of the job a step ran, as its Metadata names it; None for a step that
    ran no job."""
    metadata = step.get("Metadata", {})
    for kind, group in LOG_GROUPS.items():
        if "Arn" in metadata.get(kind, {}):
            return group, metadata[kind]["Arn"].rsplit("/", 1)[-1]
    return None


def job_log_tail(logs: Any, group: str, job: str, lines: int) -> list[str]:
    """The job's last `lines` lines: each stream's latest events, one GetLogEvents call each
    however long the log (a multi-instance job has a stream per host), in time order."""
    events = [
        event
        for name in job_streams(logs, group, job)
        for event in logs.get_log_events(
            logGroupName=group, logStreamName=name, startFromHead=False, limit=lines
        )["events"]
    ]
    return [event["message"] for event in sorted(events, key=lambda event: event["timestamp"])][-lines:]


def job_streams(logs: Any, group: str, job: str) -> list[str]:
    """The names of the job's streams in `group`: none when no job of this kind has logged yet."""
    try:
        pages = logs.get_paginator("describe_log_streams").paginate(
            logGroupName=group, logStreamNamePrefix=f"{job}/"
        )
        return [stream["logStreamName"] for page in pages for stream in page["logStreams"]]
    except logs.exceptions.ResourceNotFoundException:
        return []


def function_log_group(functions: Any, function_arn: str) -> str:
    """The group the function writes to: its LoggingConfig's, or Lambda's default where the
    function is gone or its configuration cannot be read (the caller may not GetFunctionConfiguration)."""
    function = function_arn.split(":function:", 1)[-1].split(":", 1)[0]
    default = f"/aws/lambda/{function}"
    try:
        configuration = functions.get_function_configuration(FunctionName=function_arn)
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("ResourceNotFoundException", "AccessDeniedException"):
            raise
        return default
    return str(configuration.get("LoggingConfig", {}).get("LogGroup") or default)


def lambda_log(logs: Any, group: str, step: dict[str, Any], about: str = "") -> Iterator[str]:
    """The events in `group` of each invocation that started while the step ran, from its START
    line to its REPORT line; nothing if the function has logged nothing. With `about`, only the
    invocations with a line that holds it, each whole (those of a function running several at
    once interleave)."""
    start = math.floor(step["StartTime"].timestamp() * 1000)
    end = math.ceil(step["EndTime"].timestamp() * 1000) if "EndTime" in step else None
    window: dict[str, Any] = {"logGroupName": group, "startTime": start}
    if end is not None:
        window["endTime"] = end + REPORT_GRACE_MS
    try:
        events = [event for page in logs.get_paginator("filter_log_events").paginate(**window)
                  for event in page["events"]]
    except logs.exceptions.ResourceNotFoundException:  # the function has not logged yet
        return
    invocation: dict[str, str] = {}  # stream -> the request it is writing, if one of the step's
    held: dict[str, list[str]] = {}  # with `about`: stream -> that request's lines so far
    for event in events:
        stream, message = event["logStreamName"], event["message"]
        if message.startswith("START RequestId: ") and (end is None or event["timestamp"] <= end):
            invocation[stream] = message.split()[2]
        if stream in invocation:
            if about:
                held.setdefault(stream, []).append(f"{message}\n")
            else:
                yield f"{message}\n"
        if message.startswith(f"REPORT RequestId: {invocation.get(stream)}"):
            del invocation[stream]
            yield from _if_about(held.pop(stream, []), about)
    for lines in held.values():  # invocations still running
        yield from _if_about(lines, about)


def _if_about(lines: list[str], about: str) -> list[str]:
    return lines if any(about in line for line in lines) else []


def job_log(logs: Any, group: str, job: str) -> Generator[str, None, bool]:
    """Each stream of the job, read from its head until the forward token comes back unchanged
    (the end of the stream); returns whether the job has any stream."""
    names = job_streams(logs, group, job)
    for name in names:
        request = {"logGroupName": group, "logStreamName": name, "startFromHead": True}
        while True:
            page = logs.get_log_events(**request)
            for event in page["events"]:
                yield f"{event['message']}\n"
            if page["nextForwardToken"] == request.get("nextToken"):
                break
            request["nextToken"] = page["nextForwardToken"]
    return bool(names)


def outcome(step: dict[str, Any]) -> Iterator[str]:
    """What a step did, as ListPipelineExecutionSteps records it."""
    yield f"{step['StepName']}: {step['StepStatus']}\n"
    for kind, members in step.get("Metadata", {}).items():
        for member, value in members.items():
            if member == "OutputParameters":
                for parameter in value:
                    yield f"  {kind} output {parameter['Name']} = {parameter['Value']}\n"
            else:
                yield f"  {kind} {member}: {value}\n"
    if step.get("FailureReason"):
        yield f"  failure reason: {step['FailureReason']}\n"


def defined_steps(sm: Any, execution_arn: str) -> list[str]:
    """The steps of the definition an execution ran, whether or not they ran in it."""
    answer = sm.describe_pipeline_definition_for_execution(PipelineExecutionArn=execution_arn)
    return step_names(json.loads(answer["PipelineDefinition"]))


def pipeline_steps(sm: Any, pipeline_name: str) -> list[str]:
    """The steps of a pipeline's current definition; none when there is no such pipeline."""
    try:
        answer = sm.describe_pipeline(PipelineName=pipeline_name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("ResourceNotFound", "ValidationException"):
            return []
        raise
    return step_names(json.loads(answer["PipelineDefinition"]))


def latest_run_of(sm: Any, pipeline_name: str, step_name: str, looked_at: int = RUNS_LOOKED_AT) -> str | None:
    """The latest of a pipeline's last `looked_at` executions in which the step ran."""
    summaries = sm.list_pipeline_executions(
        PipelineName=pipeline_name, SortBy="CreationTime", SortOrder="Descending", MaxResults=looked_at
    )["PipelineExecutionSummaries"]
    for summary in summaries:
        arn = str(summary["PipelineExecutionArn"])
        if any(step["StepName"] == step_name for step in list_steps(sm, arn)):
            return arn
    return None
