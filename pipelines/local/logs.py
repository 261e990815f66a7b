"""Where a local step's job log lives, for `logs STEP`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.local.runner import job_name


def step_log(state_dir: Path, sm: Any, execution_arn: str, step: str) -> str:
    """The job log of `step` in that execution (the Lambda step's output is in the execution log)."""
    execution_id = execution_arn.rsplit("/", 1)[-1]
    job_dir = state_dir / "jobs" / execution_id / job_name(execution_id, step)
    for path in (job_dir / "logs.txt", state_dir / "jobs" / execution_id / "execution.log"):
        if path.is_file():
            return path.read_text(encoding="utf-8", errors="replace")
    names = [
        s["StepName"]
        for s in sm.list_pipeline_execution_steps(PipelineExecutionArn=execution_arn)[
            "PipelineExecutionSteps"
        ]
    ]
    raise FileNotFoundError(
        f"no log for step {step!r}; steps of this execution: {', '.join(names)}"
    )
