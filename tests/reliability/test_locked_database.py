"""Another process holds the database's write lock while an execution runs (an `sqlite3` shell in
a transaction, a backup). The execution waits it out; if the lock outlasts the retry budget, the
execution still ends, Failed with the reason, as soon as the database takes writes again.

The service runs in this process (no server), its job as a real subprocess, the lock in another.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from buckets import with_buckets
from job_marks import MARKS, marks_of, running_job
from waiting import wait_until

from pipelines.local.service.backend import LocalSageMaker
from pipelines.local.storage.database import Database

from .machine import LockHolder
from .support import script_step

BUCKET = "s3://reliability/locked"
HOLD_SECONDS = 8.0  # longer than SQLite's default 5 s busy timeout, which once killed the thread
TERMINAL = ("Succeeded", "Failed", "Stopped")
# The job waits (bounded) for the test to say the lock is taken, so it ends while the lock is held.
WAIT_FOR_MARKER = textwrap.dedent("""
    import os, pathlib, time
    marks = pathlib.Path(os.environ["MARKS"])
    marks.mkdir(parents=True, exist_ok=True)
    marker = marks / "locked"
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    """).encode()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LocalSageMaker]:
    backend = LocalSageMaker(tmp_path / "state", "us-east-1", "http://127.0.0.1:1")
    yield backend
    backend.shutdown()


def definition() -> str:
    """A Processing step that waits for the mark `locked`, then a Condition step after it."""
    steps = [
        script_step("Wait", f"{BUCKET}/wait.py", {"MARKS": MARKS}),
        {"Name": "After", "Type": "Condition", "DependsOn": ["Wait"], "Arguments": {"Conditions": []}},
    ]
    return json.dumps({"Version": "2020-12-01", "Parameters": [], "Steps": steps})


def call(service: LocalSageMaker, name: str, **request: Any) -> dict[str, Any]:
    operation = service.operation("SageMaker", name)
    assert operation is not None, name
    return operation(request)


def start_waiting_execution(service: LocalSageMaker) -> tuple[str, Path]:
    """Start the execution and return once its job runs (and cannot end before the marker):
    (execution ARN, the marker that lets the job end)."""
    with_buckets(service.context.store, "reliability").put_bytes(f"{BUCKET}/wait.py", WAIT_FOR_MARKER)
    call(service, "CreatePipeline", PipelineName="locked", PipelineDefinition=definition(),
         RoleArn="arn:aws:iam::000000000000:role/local-sagemaker")
    arn: str = call(service, "StartPipelineExecution", PipelineName="locked")["PipelineExecutionArn"]
    job = running_job(service, arn, "Wait", "ProcessingJob", timeout=30)
    return arn, marks_of(service, arn, job) / "locked"


def steps(service: LocalSageMaker, arn: str) -> dict[str, dict[str, Any]]:
    listed = call(service, "ListPipelineExecutionSteps", PipelineExecutionArn=arn)
    return {step["StepName"]: step for step in listed["PipelineExecutionSteps"]}


def ended(service: LocalSageMaker, arn: str) -> dict[str, Any] | None:
    execution = call(service, "DescribePipelineExecution", PipelineExecutionArn=arn)
    return execution if execution["PipelineExecutionStatus"] in TERMINAL else None


def test_an_execution_waits_out_a_lock_held_by_another_process(service: LocalSageMaker) -> None:
    arn, marker = start_waiting_execution(service)
    holder = LockHolder(service.context.database.path, HOLD_SECONDS)
    try:
        marker.touch()  # the job ends now, while the lock is held: its end must wait to be recorded
        locked_read = call(service, "DescribePipelineExecution", PipelineExecutionArn=arn)
        assert locked_read["PipelineExecutionStatus"] == "Executing"  # reads go on meanwhile
        released = holder.released_at()
    finally:
        holder.kill()
    execution = wait_until(lambda: ended(service, arn), 60, "the execution to end")
    assert execution["PipelineExecutionStatus"] == "Succeeded", execution.get("FailureReason")
    assert execution["LastModifiedTime"] >= released  # recorded after the lock, not lost
    assert {name: step["StepStatus"] for name, step in steps(service, arn).items()} == {
        "Wait": "Succeeded", "After": "Succeeded"}


def test_an_execution_that_cannot_be_recorded_ends_failed_once_the_database_is_free(
    service: LocalSageMaker,
) -> None:
    service.context.database.retry_seconds = 1.0  # the lock outlasts the budget
    arn, marker = start_waiting_execution(service)
    holder = LockHolder(service.context.database.path, 4.0)
    try:
        marker.touch()
        released = holder.released_at()
    finally:
        holder.kill()
    execution = wait_until(lambda: ended(service, arn), 60, "the execution to end")
    assert execution["PipelineExecutionStatus"] == "Failed"
    reason = execution["FailureReason"]
    assert "could not record" in reason and "locked by another process" in reason, reason
    assert execution["LastModifiedTime"] >= released
    wait = steps(service, arn)["Wait"]
    assert (wait["StepStatus"], wait["FailureReason"]) == ("Failed", reason)
    assert "After" not in steps(service, arn)


def test_a_write_waits_for_the_lock_and_a_lock_past_the_budget_is_a_503(tmp_path: Path) -> None:
    database = Database(tmp_path / "state.db", retry_seconds=0.5)
    database.put("pipeline", "p", {"v": 1}, 1.0)
    holder = LockHolder(database.path, 2.0)
    try:
        with pytest.raises(Exception) as raised:
            database.put("pipeline", "p", {"v": 2}, 1.0)
        assert database.get("pipeline", "p") == {"v": 1}  # reads go on; the write changed nothing
        database.retry_seconds = 30.0
        database.put("pipeline", "p", {"v": 3}, 1.0)  # waits until the holder lets go
        released = holder.released_at()
    finally:
        holder.kill()
    error: Any = raised.value
    assert (error.code, error.status) == ("ServiceUnavailable", 503)
    assert "locked by another process" in error.message
    assert database.get("pipeline", "p") == {"v": 3}
    assert released > 0
    database.close()
