"""Following an execution (pipelines/executions.py): when it is looked at."""

from __future__ import annotations

import time
from typing import Any

from pipelines import executions

ARN = "arn:aws:sagemaker:us-east-1:000000000000:pipeline/demo/execution/abc123"


class ExecutionEndingAfter:
    """A SageMaker client whose execution ends `seconds` after it was started (now), as a rerun
    whose steps are all cache hits ends within tens of milliseconds on the local server."""

    def __init__(self, seconds: float) -> None:
        self.ends_at = time.monotonic() + seconds
        self.looks: list[str] = []

    def describe_pipeline_execution(self, PipelineExecutionArn: str) -> dict[str, Any]:
        status = "Succeeded" if time.monotonic() >= self.ends_at else "Executing"
        self.looks.append(status)
        return {"PipelineExecutionArn": PipelineExecutionArn, "PipelineExecutionStatus": status}

    def get_paginator(self, operation: str) -> Any:
        class Pages:
            def paginate(self, **_: Any) -> list[dict[str, Any]]:
                return [{"PipelineExecutionSteps": []}]

        return Pages()


def test_an_execution_that_ends_before_the_first_look_is_seen_ended_at_it() -> None:
    """Looking at once saw it Executing and slept a whole poll interval (0.2 s) before seeing it
    end: a step-cache rerun's `start --wait` paid that on every run."""
    sm = ExecutionEndingAfter(executions.FIRST_LOOK_SECONDS / 2)
    started = time.monotonic()
    status, _ = executions.wait_for(sm, ARN, lambda _text: None)
    assert status == "Succeeded"
    assert sm.looks == ["Succeeded"]
    assert time.monotonic() - started < executions.FIRST_LOOK_SECONDS + 0.15


def test_an_execution_still_running_at_the_first_look_is_followed_to_its_end() -> None:
    sm = ExecutionEndingAfter(executions.FIRST_LOOK_SECONDS + 0.1)
    status, _ = executions.wait_for(sm, ARN, lambda _text: None, poll_seconds=0.05)
    assert status == "Succeeded"
    assert sm.looks[0] == "Executing" and sm.looks[-1] == "Succeeded"


class FailedPipeline:
    """A SageMaker client whose execution failed at a processing step and at a Fail step."""

    def __init__(self) -> None:
        self.described: list[str] = []

    def get_paginator(self, operation: str) -> Any:
        steps = [
            {"StepName": "Preprocess", "StepStatus": "Failed",
             "FailureReason": "AlgorithmError: See job logs for more information",
             "Metadata": {"ProcessingJob": {"Arn": f"{ARN.split(':pipeline')[0]}:processing-job/pre-1"}}},
            {"StepName": "Stop", "StepStatus": "Failed", "FailureReason": "told to",
             "Metadata": {"Fail": {"ErrorMessage": "told to"}}},
        ]

        class Pages:
            def paginate(self, **_: Any) -> list[dict[str, Any]]:
                return [{"PipelineExecutionSteps": steps}]

        return Pages()

    def describe_processing_job(self, ProcessingJobName: str) -> dict[str, Any]:
        self.described.append(ProcessingJobName)
        return {"ProcessingJobName": ProcessingJobName, "ExitMessage": "train.csv, line 5: bad label"}


def test_a_failed_processing_step_is_listed_with_its_jobs_exit_message() -> None:
    """SageMaker's reason for a failed processing step is one sentence: what the container said is
    the job's ExitMessage."""
    sm = FailedPipeline()
    preprocess, stop = executions.list_steps(sm, ARN)
    assert preprocess["ExitMessage"] == "train.csv, line 5: bad label"
    assert "ExitMessage" not in stop and sm.described == ["pre-1"]


class FailingWhileABranchRuns(FailedPipeline):
    """The processing step has failed while another branch still runs, for three more looks."""

    def __init__(self) -> None:
        super().__init__()
        self.looks = 0

    def describe_pipeline_execution(self, PipelineExecutionArn: str) -> dict[str, Any]:
        self.looks += 1
        status = "Failed" if self.looks > 3 else "Executing"
        return {"PipelineExecutionArn": PipelineExecutionArn, "PipelineExecutionStatus": status}


def test_following_an_execution_describes_a_failed_job_once_however_many_polls_see_it() -> None:
    sm = FailingWhileABranchRuns()
    shown: list[str] = []

    status, _ = executions.wait_for(sm, ARN, shown.append, poll_seconds=0.01)
    assert status == "Failed"

    assert sm.looks == 4 and sm.described == ["pre-1"]
    assert any("train.csv, line 5: bad label" in line for line in shown)
