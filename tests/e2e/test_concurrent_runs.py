"""`make run-pipeline` started three times at once on a fresh state, as from three terminals or three
CI jobs: every run succeeds, and the endpoint ends up serving a version one of them registered.

Each run is its own process with its own clients, as users start them. Which one starts the server,
creates the deploy function, the pipeline and the endpoint, and which ones find them made, is up to
timing; every interleaving must end the same way (daemon.py, publish.py, steps/deploy.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from pipelines.local import daemon
from pipelines.settings import REPO_ROOT

pytestmark = pytest.mark.e2e
RUNS = 3
PIPELINE = ENDPOINT = "sentiment-classifier"


def test_runs_started_together_on_a_fresh_state_all_succeed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {**os.environ, "PIPELINE_STATE_DIR": str(state), "PIPELINE_CONFIG": "", "PIPELINE_TARGET": "local"}
    try:
        runs = [
            subprocess.Popen([sys.executable, "-m", "pipelines", "run"], env=env, cwd=REPO_ROOT, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(RUNS)
        ]
        for run in runs:
            out, err = run.communicate(timeout=600)
            assert run.returncode == 0, f"{out[-2000:]}\n{err[-2000:]}"

        keys = daemon.credentials(state)
        session = boto3.Session(region_name="us-east-1", **keys.session_arguments())
        url = daemon.ensure_running(state)
        sm = session.client("sagemaker", endpoint_url=url)
        executions = sm.list_pipeline_executions(PipelineName=PIPELINE)["PipelineExecutionSummaries"]
        assert [e["PipelineExecutionStatus"] for e in executions] == ["Succeeded"] * RUNS
        endpoint = sm.describe_endpoint(EndpointName=ENDPOINT)
        assert endpoint["EndpointStatus"] == "InService"
        versions = sm.list_model_packages(ModelPackageGroupName=PIPELINE)["ModelPackageSummaryList"]
        served = [v["ModelPackageVersion"] for v in versions
                  if f"-v{v['ModelPackageVersion']}-" in endpoint["EndpointConfigName"]]
        assert len(served) == 1, (endpoint["EndpointConfigName"], versions)
        answer = session.client("sagemaker-runtime", endpoint_url=url).invoke_endpoint(
            EndpointName=ENDPOINT, ContentType="application/json",
            Body=json.dumps({"review_text": "works as described, great value"}),
        )
        assert json.loads(answer["Body"].read())["predictions"][0]["label"] == 1
    finally:
        daemon.stop(state)
