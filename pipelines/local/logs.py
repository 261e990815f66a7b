"""Where a local step's log lives, for `logs STEP`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.local.runner import job_name


def step_log(state_dir: Path, sm: Any, execution_arn: str, step: str) -> str:
    """A job step's own log; for other steps (Lambda, Condition) the execution's log."""
    steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=execution_arn)[
        "PipelineExecutionSteps"]
    names = [s["StepName"] for s in steps]
    if step not in names:
        raise FileNotFoundError(f"no step {step!r} in this execution; its steps: {', '.join(names)}")
    execution_id = execution_arn.rsplit("/", 1)[-1]
    execution_dir = state_dir / "jobs" / execution_id
    for path in (execution_dir / job_name(execution_id, step) / "logs.txt",
                 execution_dir / "execution.log"):
        if path.is_file():
            return path.read_text(encoding="utf-8", errors="replace")
    raise FileNotFoundError(f"step {step!r} has written no log yet")
