"""Where a running job and its test leave marks for each other: a folder in the job's own directory.

A confined job sees nothing of the machine its test could also write to (its /tmp, /var/tmp and
/dev/shm are its own; the state and the home folder are hidden; the project is read-only), so it
is given the folder by a container path, MARKS, which the local runner maps into its job
directory as it maps every /opt/ml path of a job's environment, and the test finds the folder
there once the job has a name. The job makes the folder."""

from __future__ import annotations

from pathlib import Path

from waiting import wait_until

from pipelines.local.jobs.container import CONTAINER_BASE, container_base_in
from pipelines.local.service.backend import LocalSageMaker

MARKS = f"{CONTAINER_BASE}/marks"


def running_job(
    service: LocalSageMaker, execution_arn: str, step: str, kind: str, timeout: float = 60
) -> str:
    """The name of the job (`kind`: ProcessingJob, TrainingJob) that `step` of the execution runs,
    once it has one: a step is Executing a moment before its job's ARN is in its metadata."""
    list_steps = service.operation("SageMaker", "ListPipelineExecutionSteps")
    assert list_steps is not None

    def job_arn() -> str:
        listed = list_steps({"PipelineExecutionArn": execution_arn})["PipelineExecutionSteps"]
        metadata = next((found.get("Metadata", {}) for found in listed if found["StepName"] == step), {})
        return str(metadata.get(kind, {}).get("Arn", ""))

    return wait_until(job_arn, timeout, f"step {step} to start its job").rsplit("/", 1)[-1]


def marks_of(service: LocalSageMaker, execution_arn: str, job_name: str) -> Path:
    """The job's marks folder as the test sees it, once the job has made it."""
    job_root = service.context.layout.execution_dir(execution_arn.rsplit("/", 1)[-1]) / job_name
    marks = container_base_in(job_root) / "marks"
    wait_until(marks.is_dir, 60, f"job {job_name} to make its marks folder")
    return marks
