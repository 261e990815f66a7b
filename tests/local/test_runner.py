"""The execution runner with real job processes: what a stop request does to a running step."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_until

from pipelines.local.service.backend import LocalSageMaker

CODE = "s3://bucket/code/sleeper.py"
SLEEPER = b"""
import os, pathlib, time
pathlib.Path(os.environ["PID_FILE"]).write_text(str(os.getpid()))
time.sleep(300)
"""


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LocalSageMaker]:
    backend = LocalSageMaker(tmp_path / "state", "us-east-1", "http://127.0.0.1:1")
    yield backend
    backend.shutdown()


def call(service: LocalSageMaker, name: str, **request: Any) -> dict[str, Any]:
    operation = service.operation("SageMaker", name)
    assert operation is not None, name
    return operation(request)


def sleeping_pipeline(pid_file: Path) -> str:
    code_dir = "/opt/ml/processing/input/code"
    sleep = {
        "Name": "Sleep",
        "Type": "Processing",
        "Arguments": {
            "AppSpecification": {"ContainerEntrypoint": ["python3", f"{code_dir}/sleeper.py"]},
            "Environment": {"PID_FILE": str(pid_file)},
            "ProcessingInputs": [{"InputName": "code", "S3Input": {
                "S3Uri": CODE, "LocalPath": code_dir, "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
        },
    }
    after = {"Name": "After", "Type": "Fail", "DependsOn": ["Sleep"], "Arguments": {"ErrorMessage": "x"}}
    return json.dumps({"Version": "2020-12-01", "Steps": [sleep, after]})


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def test_stop_ends_the_running_step_stopped_and_its_process(service: LocalSageMaker, tmp_path: Path) -> None:
    pid_file = tmp_path / "sleeper.pid"
    service.context.store.put_bytes(CODE, SLEEPER)
    call(service, "CreatePipeline", PipelineName="P", PipelineDefinition=sleeping_pipeline(pid_file))
    arn = call(service, "StartPipelineExecution", PipelineName="P")["PipelineExecutionArn"]
    wait_until(lambda: pid_file.is_file() and pid_file.read_text(), 30, "the job to start")
    pid = int(pid_file.read_text())

    call(service, "StopPipelineExecution", PipelineExecutionArn=arn)
    status = call(service, "DescribePipelineExecution", PipelineExecutionArn=arn)["PipelineExecutionStatus"]
    assert status in ("Stopping", "Stopped")
    wait_until(
        lambda: call(service, "DescribePipelineExecution", PipelineExecutionArn=arn)[
            "PipelineExecutionStatus"] == "Stopped",
        30, "the execution to stop",
    )
    (step,) = call(service, "ListPipelineExecutionSteps", PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    assert step["StepName"] == "Sleep" and step["StepStatus"] == "Stopped"
    assert not alive(pid)
