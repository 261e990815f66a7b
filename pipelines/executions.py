"""Start executions and follow them; `step_table` shows their steps.

Only SageMaker API calls are used (Start/Describe/ListPipelineExecution*), so the same code follows a
run on AWS and on the local SageMaker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pipelines.step_table import TERMINAL, ExecutionView, PlainView

Say = Callable[[str], None]
FIRST_LOOK_SECONDS = 0.05


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """`Name=Value` strings from the command line, as pipeline parameter overrides."""
    overrides: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--param takes Name=Value, got {pair!r}")
        overrides[name] = value
    return overrides


def start_execution(sm: Any, pipeline_name: str, overrides: Mapping[str, str], **request: Any) -> str:
    response = sm.start_pipeline_execution(
        PipelineName=pipeline_name,
        PipelineParameters=[{"Name": k, "Value": str(v)} for k, v in overrides.items()],
        **request,
    )
    return str(response["PipelineExecutionArn"])


def list_steps(
    sm: Any, execution_arn: str, exit_messages: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """The execution's steps, oldest first; a failed processing step with its job's ExitMessage,
    which is where SageMaker puts what the container said (the step's FailureReason is only
    "AlgorithmError: See job logs for more information"). `exit_messages` (job name: ExitMessage)
    keeps what was read for the next call: a failed job's message no longer changes, so following
    an execution describes each failed job once, not on every poll."""
    known = {} if exit_messages is None else exit_messages
    steps: list[dict[str, Any]] = []
    for page in sm.get_paginator("list_pipeline_execution_steps").paginate(
        PipelineExecutionArn=execution_arn, SortOrder="Ascending"
    ):
        steps.extend(page["PipelineExecutionSteps"])
    for step in steps:
        job = step.get("Metadata", {}).get("ProcessingJob", {}).get("Arn")
        if step.get("StepStatus") == "Failed" and job:
            name = job.rsplit("/", 1)[-1]
            if name not in known:
                known[name] = str(sm.describe_processing_job(ProcessingJobName=name).get("ExitMessage", ""))
            if known[name]:
                step["ExitMessage"] = known[name]
    return steps


def describe(
    sm: Any, execution_arn: str, exit_messages: dict[str, str] | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return sm.describe_pipeline_execution(PipelineExecutionArn=execution_arn), list_steps(
        sm, execution_arn, exit_messages
    )


def poll_intervals(longest: float, first: float = 0.2) -> Iterator[float]:
    """Seconds to sleep between polls: from `first`, backing off by half each time to `longest`, so
    short local waits end promptly and long cloud waits do not hammer the API."""
    interval = first
    while True:
        yield interval
        interval = min(longest, interval * 1.5)


def wait_for(
    sm: Any, execution_arn: str, say: Say, poll_seconds: float = 2.0, timeout: float = 3600,
    view: ExecutionView | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """Poll until the execution ends, showing its steps in `view` (default: plain lines via `say`);
    the status it ended with (or had at `timeout`) and its steps as last listed, for the caller to
    read without listing them again.
    The first look comes FIRST_LOOK_SECONDS after the start, not at once: by then a rerun whose
    steps are all cache hits has ended (it is seen ended at the first look, not 0.2 s later), and
    the look does not land while a local server is still setting up the first step's job."""
    shown = view or PlainView(say)
    deadline = time.monotonic() + timeout
    intervals = poll_intervals(poll_seconds)
    exit_messages: dict[str, str] = {}
    time.sleep(FIRST_LOOK_SECONDS)
    while True:
        execution, steps = describe(sm, execution_arn, exit_messages)
        status = str(execution["PipelineExecutionStatus"])
        if status in TERMINAL or time.monotonic() > deadline:
            shown.finish(execution, steps)
            return status, steps
        shown.update(execution, steps)
        time.sleep(next(intervals))


def execution_parameters(sm: Any, execution_arn: str) -> dict[str, str]:
    """The parameter values an execution ran with, defaults included."""
    pages = sm.get_paginator("list_pipeline_parameters_for_execution").paginate(
        PipelineExecutionArn=execution_arn
    )
    return {p["Name"]: p["Value"] for page in pages for p in page["PipelineParameters"]}


def latest_execution_arn(sm: Any, pipeline_name: str) -> str | None:
    summaries = sm.list_pipeline_executions(
        PipelineName=pipeline_name, SortBy="CreationTime", SortOrder="Descending", MaxResults=1
    )["PipelineExecutionSummaries"]
    return str(summaries[0]["PipelineExecutionArn"]) if summaries else None


def deployed_endpoint(steps: list[dict[str, Any]]) -> str | None:
    """The endpoint a run's deploy step created or updated, if it did."""
    for step in steps:
        lambda_meta = step.get("Metadata", {}).get("Lambda")
        if not lambda_meta:
            continue
        outputs = {o["Name"]: o.get("Value") for o in lambda_meta.get("OutputParameters", [])}
        if outputs.get("action") in ("created", "updated") and outputs.get("endpoint_name"):
            return str(outputs["endpoint_name"])
    return None


def wait_for_endpoint(sm: Any, name: str, say: Say, poll_seconds: float = 2.0,
                      timeout: float = 1800) -> str:
    """Wait while the endpoint is Creating or Updating; say how it ended."""
    deadline = time.monotonic() + timeout
    say(f"waiting for endpoint {name} ...")
    intervals = poll_intervals(poll_seconds)
    while True:
        endpoint = sm.describe_endpoint(EndpointName=name)
        status = str(endpoint["EndpointStatus"])
        if status not in ("Creating", "Updating") or time.monotonic() > deadline:
            reason = endpoint.get("FailureReason")
            say(f"endpoint {name}: {status} ({endpoint.get('EndpointConfigName', '')})"
                + (f" - {reason}" if reason else ""))
            return status
        time.sleep(next(intervals))


class WillNotServe(Exception):
    """The endpoint will not serve the version waited for; the message says why."""


def wait_until_serving(sm: Any, name: str, config_part: str, say: Say, timeout: float,
                       poll_seconds: float = 2.0,
                       check: Callable[[dict[str, Any]], None] = lambda endpoint: None) -> bool:
    """Wait until the endpoint is InService on a config whose name holds `config_part` (a model
    version's tag); False once `timeout` seconds have passed without it. `check`, given each look
    at the endpoint ({} before it exists), raises WillNotServe to stop sooner. An asynchronous
    deploy (an approval's) reports nowhere else that it is done."""
    from steps.deploy import describe_endpoint

    deadline = time.monotonic() + timeout
    say(f"waiting for endpoint {name} to serve it ...")
    intervals = poll_intervals(poll_seconds)
    while True:
        endpoint = describe_endpoint(sm, name) or {}  # none: not created yet
        if endpoint.get("EndpointStatus") == "InService" and config_part in endpoint["EndpointConfigName"]:
            say(f"endpoint {name}: InService ({endpoint['EndpointConfigName']})")
            return True
        check(endpoint)
        if time.monotonic() > deadline:
            return False
        time.sleep(next(intervals))
