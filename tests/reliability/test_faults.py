"""Faults: the local SageMaker killed with SIGKILL mid-update and mid-execution, and a model version
whose inference code cannot load.

tests/e2e kills the server while Train runs; here it dies while an endpoint update is in progress
(and an execution runs). After a restart every Describe* reads cleanly with nothing left
Executing/Updating/Creating, the endpoint serves the last good version and a retry completes. A
broken version is rolled back by the update itself with zero failed requests under load.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from processes import processes_with

from pipelines.local import daemon

from .support import (
    BUCKET,
    ENDPOINT,
    GROUP,
    HOST,
    IN_PROGRESS,
    PIPELINE,
    Local,
    inference_source,
    kill_leftovers,
    reap,
    rebuild_artifact,
    script_step,
    wait_until,
)

pytestmark = pytest.mark.e2e
SLOW_LOAD_SECONDS = 50  # under hosting's 60 s health timeout: the update is still in progress
LOAD_THREADS = 4
LOAD_LIMIT_SECONDS = 300  # no load thread runs longer than this, whatever happens
REVIEW = b'{"review_text": "solid and reliable, great value"}'
JSON_HEADERS = {"Content-Type": "application/json"}


# --- model versions with other inference code ---------------------------------------------------


def slow_code(original: str) -> str:
    """The real handlers, but model_fn takes SLOW_LOAD_SECONDS (a big model loading)."""
    return original + textwrap.dedent(f"""

        import time as _reliability_time

        _reliability_model_fn = model_fn


        def model_fn(model_dir):
            _reliability_time.sleep({SLOW_LOAD_SECONDS})
            return _reliability_model_fn(model_dir)
        """)


def broken_code(original: str) -> str:
    """The real handlers, but model_fn raises: the version can never come up."""
    return original + textwrap.dedent("""

        def model_fn(model_dir):
            raise RuntimeError("deliberately broken model: model_fn refuses to load")
        """)


def publish_variant(local: Local, name: str, code: Callable[[str], str], scratch: Path) -> dict[str, Any]:
    """The serving model's container with its artifact rebuilt around other inference code."""
    container = local.serving_model_data()
    source = local.store.path_for(container["ModelDataUrl"])
    artifact = rebuild_artifact(source, scratch / f"{name}.tar.gz", code(inference_source(source)))
    uri = f"s3://{BUCKET}/reliability/{name}/model.tar.gz"
    local.store.put_file(uri, artifact)
    # A model of its own, not the serving version's package: hosting verifies a package's model
    # data against its registered digest, and this artifact is deliberately another one.
    environment = {k: v for k, v in container.get("Environment", {}).items() if k != "MODEL_PACKAGE_ARN"}
    # The described ModelDataSource names the serving model's archive: a new model names its own.
    described = {k: v for k, v in container.items() if k != "ModelDataSource"}
    return {**described, "ModelDataUrl": uri, "Environment": environment}


def update_directly(local: Local, name: str, container: dict[str, Any]) -> str:
    """CreateModel + CreateEndpointConfig (as the serving one, other model) + UpdateEndpoint."""
    sm = local.client("sagemaker")
    serving = sm.describe_endpoint_config(EndpointConfigName=local.endpoint()["EndpointConfigName"])
    role = sm.describe_model(ModelName=serving["ProductionVariants"][0]["ModelName"])
    sm.create_model(
        ModelName=name,
        PrimaryContainer=container,
        ExecutionRoleArn=role.get("ExecutionRoleArn") or "arn:aws:iam::000000000000:role/x",
    )
    config = f"{name}-config"
    request: dict[str, Any] = {
        "EndpointConfigName": config,
        "ProductionVariants": [{**serving["ProductionVariants"][0], "ModelName": name}],
    }
    if serving.get("DataCaptureConfig"):
        request["DataCaptureConfig"] = serving["DataCaptureConfig"]
    sm.create_endpoint_config(**request)
    sm.update_endpoint(EndpointName=ENDPOINT, EndpointConfigName=config)
    return config


def register_and_approve(local: Local, container: dict[str, Any]) -> int:
    """A new version in the registry holding container, approved through the CLI (which
    triggers the deploy function, as the approval rule does on AWS)."""
    sm = local.client("sagemaker")
    latest = local.packages()[-1]["ModelPackageArn"]
    spec = sm.describe_model_package(ModelPackageName=latest)["InferenceSpecification"]
    spec = {**spec, "Containers": [{**spec["Containers"][0], "ModelDataUrl": container["ModelDataUrl"]}]}
    arn = sm.create_model_package(
        ModelPackageGroupName=GROUP,
        InferenceSpecification=spec,
        ModelApprovalStatus="PendingManualApproval",
        ModelPackageDescription="reliability test: inference code that cannot load",
        CustomerMetadataProperties={"ModelDataSha256": hashlib.sha256(
            local.store.path_for(container["ModelDataUrl"]).read_bytes()).hexdigest()},
    )["ModelPackageArn"]
    version = int(sm.describe_model_package(ModelPackageName=arn)["ModelPackageVersion"])
    approved = local.cli("models", "approve", str(version))
    assert approved.code == 0, approved.err
    return version


def model_servers(local: Local, config: str) -> list[int]:
    return sorted(processes_with(
        "pipelines.local.hosting.model_server", str(local.state_dir / "endpoints" / ENDPOINT / config) + "/"
    ))


# --- continuous load ----------------------------------------------------------------------------


class Load:
    """A few threads invoking the endpoint back to back over keep-alive connections, with no
    retries: every request that does not come back 200 with a prediction is a failure."""

    def __init__(self, local: Local, threads: int = LOAD_THREADS) -> None:
        self.local = local
        self.port = local.port
        self.ok = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(90)
        assert not any(t.is_alive() for t in self._threads), "a load thread did not stop"

    def _record(self, failure: str | None) -> None:
        with self._lock:
            if failure is None:
                self.ok += 1
            else:
                self.failures.append(failure)

    def _run(self) -> None:
        deadline = time.monotonic() + LOAD_LIMIT_SECONDS
        conn = http.client.HTTPConnection(HOST, self.port, timeout=70)
        path = f"/endpoints/{ENDPOINT}/invocations"
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                headers = self.local.signed("POST", path, REVIEW, JSON_HEADERS, self.port)
                conn.request("POST", path, body=REVIEW, headers=headers)
                response = conn.getresponse()
                body = response.read()
                if response.status == 200 and len(json.loads(body)["predictions"]) == 1:
                    self._record(None)
                else:
                    self._record(f"{response.status}: {body[:300]!r}")
            except (OSError, http.client.HTTPException, ValueError, KeyError) as error:
                self._record(f"{type(error).__name__}: {error}")
                conn.close()
                conn = http.client.HTTPConnection(HOST, self.port, timeout=70)
        conn.close()

    def wait_for_more(self, count: int, what: str) -> None:
        start = self.ok
        wait_until(lambda: self.ok >= start + count, 60, what)


# --- checks after a restart ---------------------------------------------------------------------


def assert_state_reads_cleanly(local: Local) -> None:
    """Every resource can be described and nothing is left in progress."""
    sm = local.client("sagemaker")
    for summary in sm.list_endpoints()["Endpoints"]:
        endpoint = sm.describe_endpoint(EndpointName=summary["EndpointName"])
        assert endpoint["EndpointStatus"] not in IN_PROGRESS, endpoint
        assert "PendingDeploymentSummary" not in endpoint, endpoint
        config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        for variant in config["ProductionVariants"]:
            sm.describe_model(ModelName=variant["ModelName"])
    for pipeline in sm.list_pipelines()["PipelineSummaries"]:
        for summary in sm.list_pipeline_executions(PipelineName=pipeline["PipelineName"])[
            "PipelineExecutionSummaries"
        ]:
            arn = summary["PipelineExecutionArn"]
            assert summary["PipelineExecutionStatus"] not in IN_PROGRESS, summary
            assert (
                sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"]
                not in IN_PROGRESS
            )
            for step in sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]:
                assert step["StepStatus"] not in IN_PROGRESS, (arn, step)
    for package in local.packages():
        sm.describe_model_package(ModelPackageName=package["ModelPackageArn"])
    listed = local.cli("endpoints")
    assert listed.code == 0 and ENDPOINT in listed.out, listed.err


# --- the tests ----------------------------------------------------------------------------------


def test_kill9_during_endpoint_update_and_execution(local: Local, tmp_path: Path) -> None:
    sm = local.client("sagemaker")
    good = wait_until(local.in_service, 120, "the endpoint to be InService")
    good_config = good["EndpointConfigName"]
    slow = update_directly(
        local, "reliability-slow", publish_variant(local, "reliability-slow", slow_code, tmp_path)
    )
    wait_until(lambda: model_servers(local, slow), 30, "the slow model server to start")
    parameters = [*local.data_parameters(), {"Name": "RegularizationC", "Value": "3.0"}]
    arn = sm.start_pipeline_execution(PipelineName=PIPELINE, PipelineParameters=parameters)[
        "PipelineExecutionArn"
    ]
    wait_until(lambda: "Train" in local.steps(arn), 60, "Train to start")
    assert local.endpoint()["EndpointStatus"] == "Updating"
    assert local.execution(arn)["PipelineExecutionStatus"] == "Executing"

    local.kill9()
    # The half-started model server goes with the server (it must not be restored or leak).
    wait_until(lambda: not model_servers(local, slow), 30, "the interrupted model server to exit")

    endpoint = local.endpoint()  # restarts the server
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == good_config
    assert "interrupted" in endpoint.get("FailureReason", ""), endpoint
    execution = local.execution(arn)
    assert execution["PipelineExecutionStatus"] == "Failed"
    assert "stopped" in execution["FailureReason"]
    assert_state_reads_cleanly(local)
    assert not model_servers(local, slow)
    assert local.invoke("great value, works perfectly")["label"] == 1
    assert local.invoke("broke after two days, a complete waste of money")["label"] == 0

    # The restarted server killed what the crash left running, so no orphaned Train job can
    # race the retry in the same job directory.
    jobs = str(local.state_dir / "jobs" / arn.rsplit("/", 1)[-1])
    wait_until(lambda: not processes_with(jobs), 10, "the orphaned Train job to be killed")
    sm = local.client("sagemaker")
    sm.retry_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken=uuid.uuid4().hex)
    final = local.wait_for_executions([arn], timeout=300)[arn]
    assert final["PipelineExecutionStatus"] == "Succeeded", final.get("FailureReason")
    steps = local.steps(arn)
    assert steps["Preprocess"]["AttemptCount"] == 1
    assert steps["Train"]["AttemptCount"] == 2
    version = sm.describe_model_package(
        ModelPackageName=steps["RegisterModel"]["Metadata"]["RegisterModel"]["Arn"]
    )["ModelPackageVersion"]
    wait_until(
        lambda: (e := local.in_service()) and f"-v{version}-" in e["EndpointConfigName"],
        120,
        f"the endpoint to serve v{version} after the retry",
    )
    assert local.invoke("great value, works perfectly")["label"] == 1
    assert_state_reads_cleanly(local)


@pytest.mark.parametrize("route", ["approve", "update-endpoint"])
def test_version_that_cannot_load_is_rolled_back_with_no_failed_request(
    local: Local, tmp_path: Path, route: str
) -> None:
    good = wait_until(local.in_service, 120, "the endpoint to be InService")
    good_config, changed_at = good["EndpointConfigName"], good["LastModifiedTime"]
    serving_pids = model_servers(local, good_config)  # the server and its forked workers
    assert serving_pids
    name = f"reliability-broken-{route}"
    container = publish_variant(local, name, broken_code, tmp_path)

    def rolled_back() -> dict[str, Any] | None:
        endpoint = local.endpoint()
        done = (
            endpoint["LastModifiedTime"] > changed_at
            and endpoint["EndpointStatus"] == "InService"
            and "Update failed" in endpoint.get("FailureReason", "")
        )
        return endpoint if done else None

    with Load(local) as load:
        load.wait_for_more(20, "the load to get going")
        if route == "approve":
            version = register_and_approve(local, container)
            broken = f"{ENDPOINT}-v{version}-"
        else:
            broken = update_directly(local, name, container)
        endpoint = wait_until(rolled_back, 120, "the failed update to be rolled back")
        load.wait_for_more(50, "requests after the rollback")
    assert load.failures == [], (len(load.failures), load.failures[:5])
    assert load.ok >= 70
    assert endpoint["EndpointConfigName"] == good_config
    reason = endpoint["FailureReason"]
    assert good_config in reason, reason
    assert "deliberately broken" in reason or "exited with code 1" in reason, reason
    assert "PendingDeploymentSummary" not in endpoint
    assert model_servers(local, good_config) == serving_pids, "the old model server was replaced"
    assert not processes_with(
        "pipelines.local.hosting.model_server", str(local.state_dir / "endpoints" / ENDPOINT / broken)
    )
    assert local.invoke("great value, works perfectly")["label"] == 1


def test_kill9_during_a_job_leaves_no_job_process_running(local: Local, tmp_path: Path) -> None:
    script = tmp_path / "sleeper.py"
    script.write_text("import time\ntime.sleep(120)\n")
    code_uri = f"s3://{BUCKET}/reliability/sleeper/sleeper.py"
    local.store.put_file(code_uri, script)
    step = script_step("Sleep", code_uri)
    definition = {"Version": "2020-12-01", "Parameters": [], "Steps": [step]}
    sm = local.client("sagemaker")
    sm.create_pipeline(
        PipelineName="reliability-sleeper",
        PipelineDefinition=json.dumps(definition),
        RoleArn="arn:aws:iam::000000000000:role/local-sagemaker",
    )
    arn = sm.start_pipeline_execution(PipelineName="reliability-sleeper")["PipelineExecutionArn"]
    needles = ("sleeper.py", str(local.state_dir))
    try:
        wait_until(lambda: processes_with(*needles), 30, "the job to start")
        local.kill9()
        assert local.execution(arn)["PipelineExecutionStatus"] == "Failed"  # restarts the server
        assert_state_reads_cleanly(local)
        wait_until(lambda: not processes_with(*needles), 10, "the job to end with its server")
    finally:
        kill_leftovers(*needles)
        wait_until(local.in_service, 120, "the endpoint to be InService again")


def test_stop_lets_a_server_it_started_exit_without_sigkill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    daemon.ensure_running(state)
    pid = int(json.loads((state / "server.json").read_text())["pid"])
    sent: list[int] = []
    real_kill = os.kill

    def spy(target: int, signum: int) -> None:
        if target == pid:
            sent.append(signum)
        real_kill(target, signum)

    monkeypatch.setattr(daemon.os, "kill", spy)
    try:
        assert daemon.stop(state, timeout=10)[0] is daemon.Stopped.STOPPED
    finally:
        monkeypatch.undo()
        if daemon.running_server(state):
            real_kill(pid, signal.SIGKILL)
        reap(pid)
    assert signal.SIGTERM in sent
    assert signal.SIGKILL not in sent, "stop() escalated to SIGKILL"
