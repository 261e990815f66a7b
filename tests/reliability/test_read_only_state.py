"""A read-only state directory (a read-only bind mount of a real one; needs root): the commands that
only read still work against a running server, and a server that cannot start there says why in one
line instead of a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines import REPO_ROOT

from .machine import read_only_view
from .support import GROUP, PIPELINE, TERMINAL, Local, kill_leftovers, wait_until

pytestmark = pytest.mark.e2e
ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"
DEFINITION = json.dumps({
    "Version": "2020-12-01",
    "Parameters": [],
    "Steps": [{"Name": "ReadOnlyCheck", "Type": "Condition", "Arguments": {"Conditions": []}}],
})


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Local]:
    """A server with a pipeline, one ended execution and one registered version."""
    local = Local(tmp_path / "state")
    try:
        sm = local.client("sagemaker")
        sm.create_pipeline(PipelineName=PIPELINE, PipelineDefinition=DEFINITION, RoleArn=ROLE)
        arn = sm.start_pipeline_execution(PipelineName=PIPELINE)["PipelineExecutionArn"]
        wait_until(lambda: local.execution(arn)["PipelineExecutionStatus"] in TERMINAL, 30,
                   "the execution to end")
        sm.create_model_package_group(ModelPackageGroupName=GROUP)
        sm.create_model_package(ModelPackageGroupName=GROUP, InferenceSpecification={
            "Containers": [{"Image": "sklearn", "ModelDataUrl": "s3://reliability/model.tar.gz"}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"]})
        yield local
    finally:
        local.stop()
        kill_leftovers(str(local.state_dir))


def test_read_only_commands_work_and_a_server_cannot_start_says_why(server: Local, tmp_path: Path) -> None:
    arn = server.client("sagemaker").list_pipeline_executions(PipelineName=PIPELINE)[
        "PipelineExecutionSummaries"][0]["PipelineExecutionArn"]
    with read_only_view(server.state_dir, tmp_path / "read-only") as view:
        reader = Local(view)
        status = reader.cli("status")
        assert status.code == 0 and "ReadOnlyCheck  Succeeded" in status.out, (status.out, status.err)
        executions = reader.cli("executions")
        assert executions.code == 0 and arn.rsplit("/", 1)[-1] in executions.out, executions.err
        models = reader.cli("models", "list")
        assert models.code == 0 and "PendingManualApproval" in models.out, models.err

        server.stop()
        refused = reader.cli("status")
        assert refused.code == 2
        assert refused.err.startswith("error: cannot start the local SageMaker server in ")
        assert refused.err.rstrip("\n").count("\n") == 0 and "Read-only file system" in refused.err
        direct = subprocess.run(
            [sys.executable, "-m", "pipelines.local.api.server", "--state-dir", str(view)],
            capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
        )
        assert direct.returncode == 2
        assert direct.stderr.startswith("cannot start the local SageMaker server in ")
        assert direct.stderr.rstrip("\n").count("\n") == 0 and "Read-only file system" in direct.stderr
