"""What the CLI reads from the local target's state directory, beside its API.

The CLI reaches the local SageMaker through the same API calls as AWS, S3's included. One thing has
no API locally: the jobs' own logs (CloudWatch Logs on AWS). This module is the one place outside the
server that reads them, through `StateLayout`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.local.layout import StateLayout


def step_log(state_dir: Path, sm: Any, execution_arn: str, step: str) -> str:
    """A job step's own log; for other steps (Lambda, Condition) the execution's log."""
    pages = sm.get_paginator("list_pipeline_execution_steps").paginate(PipelineExecutionArn=execution_arn)
    by_name = {s["StepName"]: s for page in pages for s in page["PipelineExecutionSteps"]}
    if step not in by_name:
        raise FileNotFoundError(
            f"no step {step!r} in this execution; its steps: {', '.join(by_name)}"
        )
    layout = StateLayout(state_dir)
    # A step reused from an earlier run (step cache, selective execution) ran in that execution.
    reused = by_name[step].get("CacheHitResult") or by_name[step].get("SelectiveExecutionResult") or {}
    execution_id = reused.get("SourcePipelineExecutionArn", execution_arn).rsplit("/", 1)[-1]
    job_arns = [m.get("Arn", "") for m in by_name[step].get("Metadata", {}).values()]
    candidates = [layout.job_log(execution_id, arn.rsplit("/", 1)[-1]) for arn in job_arns if arn]
    for path in (*candidates, layout.execution_log(execution_id)):
        if path.is_file():
            return path.read_text(encoding="utf-8", errors="replace")
    raise FileNotFoundError(f"step {step!r} has written no log yet")
