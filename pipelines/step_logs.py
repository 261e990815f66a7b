"""A pipeline step's log, through the same API calls on both targets.

SageMaker writes a processing or training job's output to CloudWatch Logs: the group of its kind,
one stream per instance named `<job name>/algo-1-<epoch seconds>`. The step's job is in the
Metadata of ListPipelineExecutionSteps (a step reused from an earlier run names that run's job).
A step that runs no job (Condition, RegisterModel, Lambda, Fail) has no log of its own in the
pipeline's account: what it did is in the step list, and that is what it shows.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

from pipelines.executions import list_steps

LOG_GROUPS = {"ProcessingJob": "/aws/sagemaker/ProcessingJobs", "TrainingJob": "/aws/sagemaker/TrainingJobs"}


def step_log(sm: Any, logs: Any, execution_arn: str, step_name: str) -> Iterator[str]:
    """The step's lines: its job's log events in time order, or what the step list says it did."""
    steps = {step["StepName"]: step for step in list_steps(sm, execution_arn)}
    if step_name not in steps:
        raise ValueError(f"no step {step_name!r} in this execution; its steps: {', '.join(steps)}")
    step = steps[step_name]
    metadata = step.get("Metadata", {})
    for kind, group in LOG_GROUPS.items():
        if "Arn" in metadata.get(kind, {}):
            job = metadata[kind]["Arn"].rsplit("/", 1)[-1]
            found = yield from job_log(logs, group, job)
            if not found:
                yield f"job {job} has no log stream in {group}: its container has not started\n"
                yield from outcome(step)
            return
    yield from outcome(step)


def job_log(logs: Any, group: str, job: str) -> Generator[str, None, bool]:
    """Each stream of the job, read from its head until the forward token comes back unchanged
    (the end of the stream); returns whether the job has any stream."""
    try:
        pages = logs.get_paginator("describe_log_streams").paginate(
            logGroupName=group, logStreamNamePrefix=f"{job}/"
        )
        names = [stream["logStreamName"] for page in pages for stream in page["logStreams"]]
    except logs.exceptions.ResourceNotFoundException:  # no job of this kind has logged yet
        return False
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
