"""How a job ended, in the words DescribeProcessingJob / DescribeTrainingJob use."""

from __future__ import annotations

import codecs
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pipelines.local.system.identity import arn
from pipelines.local.system.supervision import ProcessExit

MESSAGE_LIMIT = 1024  # SageMaker keeps the first 1 KB of a failure file
ALGORITHM_ERROR = "AlgorithmError: "  # how SageMaker prefixes what a failed container said
PROCESSING_FAILURE = ALGORITHM_ERROR + "See job logs for more information"  # a failed processing job's reason
TOOLKIT_EXIT = ", exit code: 1"  # how SageMaker ends the reason the training toolkit wrote before exiting 1
OUT_OF_MEMORY = "OutOfMemory: Process killed by SIGKILL (signal 9)"  # the toolkit's ExtraInfo for 137
SHELL_KILLED = 128 + signal.SIGKILL  # what a shell reports for a child SIGKILL ended


# Hears a running job's description (its Describe*Job answer, InProgress) as the job advances.
Progress = Callable[[dict[str, Any]], None]


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


def job_status(finish: ProcessExit, timeout: float | None, failure: Callable[[], str]) -> JobStatus:
    """Status and reason; `failure` says why a container that exited non-zero failed."""
    if finish.stopped_by == "cancel":
        return JobStatus("Stopped", "Stopped", "Stopped: the job was stopped on request.")
    if finish.stopped_by == "timeout":
        reason = f"MaxRuntimeExceeded: the job ran longer than MaxRuntimeInSeconds ({timeout:g})."
        return JobStatus("Stopped", "MaxRuntimeExceeded", reason)
    if finish.returncode == 0:
        return JobStatus("Completed", "Completed")
    return JobStatus("Failed", "Failed", failure())


def processing_status(finish: ProcessExit, message_file: Path, timeout: float | None) -> JobStatus:
    """A processing job's ending: the message file's first 1 KB is its ExitMessage whatever the
    ending; a failed job's reason is SageMaker's one sentence, what the container said being in
    ExitMessage and its log (aws/sagemaker-spark-container's integration test asserts both); a
    message that is not UTF-8 fails the job."""
    try:
        message = read_message(message_file)
    except JobError as error:
        return JobStatus("Failed", "Failed", str(error))
    ending = job_status(finish, timeout, lambda: PROCESSING_FAILURE)
    return replace(ending, exit_message=message)


def training_failure(finish: ProcessExit, failure_file: Path, argv: list[str]) -> str:
    """Why a training container failed, as SageMaker words it: `AlgorithmError: ` and the failure
    file the script wrote, else the one the training toolkit writes for a script that exited
    non-zero, which SageMaker ends with the exit code the toolkit then exits with (1)."""
    try:
        written = read_message(failure_file)
    except JobError as error:
        return str(error)
    if written:
        return (ALGORITHM_ERROR + written)[:MESSAGE_LIMIT]
    toolkit_reason = ALGORITHM_ERROR + _toolkit_error(finish, argv)
    return toolkit_reason[: MESSAGE_LIMIT - len(TOOLKIT_EXIT)] + TOOLKIT_EXIT


def _toolkit_error(finish: ProcessExit, argv: list[str]) -> str:
    """The toolkit's ExecuteUserScriptError as the scikit-learn image writes it. The image runs the
    script without capturing its stderr (the toolkit's `capture_error=False`), so ErrorMessage is
    empty and what the script said is only in its log. The toolkit starts the script itself, so a
    script killed by a signal, as a memory kill ends it, exited with minus the signal's number (as
    `finish` has it); 137, which a shell reports for a child killed with SIGKILL, gets the
    toolkit's ExtraInfo."""
    code = finish.returncode
    extra = f'\nExtraInfo "{OUT_OF_MEMORY}"' if code == SHELL_KILLED else ""
    command = " ".join(argv)
    return f"ExecuteUserScriptError:\nExitCode {code}\n" + f'ErrorMessage ""{extra}\nCommand "{command}"'


def read_message(path: Path) -> str:
    """The first 1 KB of a message or failure file, as SageMaker reports it (a character the limit
    cuts in two is dropped); a JobError when it is not UTF-8, which SageMaker refuses to read."""
    if not path.is_file():
        return ""
    with open(path, "rb") as file:
        head = file.read(MESSAGE_LIMIT + 1)
    try:
        cut = len(head) > MESSAGE_LIMIT
        return codecs.getincrementaldecoder("utf-8")().decode(head[:MESSAGE_LIMIT], final=not cut).strip()
    except UnicodeDecodeError:
        raise JobError(f"ClientError: /opt/ml/output/{path.name} is not UTF-8 text") from None


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
