"""How a job ended, in the words DescribeProcessingJob / DescribeTrainingJob use."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipelines.local.system.identity import arn
from pipelines.local.system.supervision import ProcessExit

MESSAGE_LIMIT = 1024  # SageMaker keeps the first 1 KB of a failure file


class JobError(Exception):
    """The job cannot run as requested; the message is its FailureReason."""


@dataclass(frozen=True)
class JobStatus:
    """The job's final status as DescribeProcessingJob / DescribeTrainingJob report it."""

    status: str  # Completed | Failed | Stopped
    secondary: str  # Completed | Failed | Stopped | MaxRuntimeExceeded
    reason: str = ""
    exit_message: str = ""


@dataclass(frozen=True)
class JobResult:
    """What a job hands back to the pipeline step that ran it."""

    status: Literal["Succeeded", "Failed"]
    properties: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    failure_reason: str = ""


def job_status(finish: ProcessExit, failure_file: Path, timeout: float | None) -> JobStatus:
    """Status and reason: the container's failure file wins, else exit code and stderr tail."""
    if finish.stopped_by == "cancel":
        return JobStatus("Stopped", "Stopped", "Stopped: the job was stopped on request.")
    if finish.stopped_by == "timeout":
        reason = f"MaxRuntimeExceeded: the job ran longer than MaxRuntimeInSeconds ({timeout:g})."
        return JobStatus("Stopped", "MaxRuntimeExceeded", reason)
    if finish.returncode == 0:
        return JobStatus("Completed", "Completed")
    message = read_message(failure_file)
    if message:
        return JobStatus("Failed", "Failed", message, message)
    return JobStatus("Failed", "Failed", crash_reason(finish))


def read_message(path: Path) -> str:
    """The first 1 KB of a failure file, as SageMaker reports it."""
    if not path.is_file():
        return ""
    with open(path, "rb") as file:
        return file.read(MESSAGE_LIMIT).decode("utf-8", errors="ignore").strip()


def crash_reason(finish: ProcessExit) -> str:
    """Exit code and the end of stderr, cut from the front to fit SageMaker's 1 KB."""
    code = finish.returncode
    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
    head = f"AlgorithmError: the container {how}. Last lines of stderr:\n"
    tail = "\n".join(finish.stderr_tail) or "(none)"
    room = MESSAGE_LIMIT - len(head)
    return head + (tail if len(tail) <= room else "..." + tail[-(room - 3) :])


def refused(exc: Exception) -> JobStatus:
    """A job that never started: a JobError says why, a KeyError names a missing field."""
    if isinstance(exc, JobError):
        return JobStatus("Failed", "Failed", str(exc))
    return JobStatus("Failed", "Failed", f"ValidationException: required field {exc} is missing")


def job_result(ending: JobStatus, properties: dict[str, Any], metadata: dict[str, Any]) -> JobResult:
    succeeded = ending.status == "Completed"
    return JobResult("Succeeded" if succeeded else "Failed", properties, metadata, ending.reason)


def job_arn(kind: str, job_name: str) -> str:
    return arn("sagemaker", os.environ.get("AWS_DEFAULT_REGION", "us-east-1"), f"{kind}/{job_name}")
