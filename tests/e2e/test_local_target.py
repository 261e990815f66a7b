"""The local target end to end: a real server process, real jobs, real endpoints, real HTTP.

The tests share one state directory, set up once as a user's first session leaves it: a run that
registered v1 and an endpoint in service. Each test may add to that state (more runs, versions, a
restart) but asserts only what holds whatever ran before it, so they pass in any order.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from waiting import wait_until

from pipelines import REPO_ROOT, cli, demo_drift, executions
from pipelines.aws import Clients
from pipelines.datasets import latest_dataset
from pipelines.local import daemon
from pipelines.sdk_env import prepare_sdk_environment
from pipelines.settings import load_settings
from steps import deploy

pytestmark = pytest.mark.e2e
ENDPOINT = "sentiment-classifier"
GROUP = "sentiment-classifier"
SCHEDULE = "sentiment-classifier-monitor-schedule"  # monitor setup's


class Local:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.first_execution = ""

    @property
    def url(self) -> str:
        return daemon.ensure_running(self.state_dir)

    def client(self, service: str) -> Any:
        url = self.url  # first: a server's first start makes the credentials
        keys = daemon.credentials(self.state_dir)
        return boto3.Session(region_name="us-east-1", **keys.session_arguments()).client(
            service, endpoint_url=url
        )

    def cli(self, *args: str) -> int:
        return cli.main(list(args))

    def packages(self) -> list[dict[str, Any]]:
        sm = self.client("sagemaker")
        return list(sm.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"])

    def endpoint(self) -> dict[str, Any]:
        return dict(self.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT))

    def invoke(self, text: str) -> dict[str, Any]:
        response = self.client("sagemaker-runtime").invoke_endpoint(
            EndpointName=ENDPOINT, ContentType="application/json",
            Body=json.dumps({"review_text": text}),
        )
        return dict(json.loads(response["Body"].read())["predictions"][0])

    def latest_execution(self) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        sm = self.client("sagemaker")
        arn = sm.list_pipeline_executions(PipelineName="sentiment-classifier", MaxResults=1)[
            "PipelineExecutionSummaries"][0]["PipelineExecutionArn"]
        return self.execution(arn)

    def data_parameters(self) -> list[dict[str, str]]:
        """What `start` passes: the latest uploaded dataset (a raw API start must pass it too)."""
        settings = load_settings()
        dataset = latest_dataset(Clients(settings).storage, settings.data_uri)
        assert dataset is not None
        return [{"Name": k, "Value": v} for k, v in dataset.parameters().items()]

    def execution(self, arn: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """The execution and its steps as the CLI reads them (a failed processing step with its
        job's ExitMessage)."""
        sm = self.client("sagemaker")
        steps = executions.list_steps(sm, arn)
        return sm.describe_pipeline_execution(PipelineExecutionArn=arn), {
            s["StepName"]: s for s in steps
        }



@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    state_dir = tmp_path_factory.mktemp("local-sagemaker")
    saved = {k: os.environ.get(k) for k in ("PIPELINE_STATE_DIR", "PIPELINE_CONFIG")}
    os.environ["PIPELINE_STATE_DIR"] = str(state_dir)
    os.environ["PIPELINE_CONFIG"] = ""
    env = Local(state_dir)
    try:
        assert env.cli("data", "upload") == 0
        assert env.cli("upsert") == 0
        assert env.cli("start", "--wait", "--timeout", "300") == 0
        env.first_execution = env.latest_execution()[0]["PipelineExecutionArn"]
        wait_until(lambda: env.endpoint()["EndpointStatus"] == "InService", what="InService")
        yield env
    finally:
        daemon.stop(state_dir)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_full_run_registers_deploys_and_serves(local: Local) -> None:
    execution, steps = local.execution(local.first_execution)
    assert execution["PipelineExecutionStatus"] == "Succeeded"
    assert {name: s["StepStatus"] for name, s in steps.items()} == {
        name: "Succeeded" for name in ("Preprocess", "Train", "Evaluate",
                                       "AccuracyCheck", "RegisterModel", "DeployEndpoint")
    }
    assert steps["AccuracyCheck"]["Metadata"]["Condition"]["Outcome"] == "True"
    package = local.packages()[0]
    assert package["ModelPackageVersion"] == 1 and package["ModelApprovalStatus"] == "Approved"
    assert local.endpoint()["EndpointStatus"] == "InService"
    assert local.invoke("great value, works perfectly")["label"] == 1
    assert local.invoke("broke after two days, a complete waste of money")["label"] == 0
    captured = list((local.state_dir / "store").rglob("data-capture/**/*.jsonl"))
    records = [json.loads(line) for f in captured for line in f.read_text().splitlines()]
    assert any("works perfectly" in r["captureData"]["endpointInput"]["data"] for r in records)


def test_models_list_shows_each_versions_accuracy(
    local: Local, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert local.cli("models", "list") == 0
    # Newest first, and other tests may have registered later versions.
    lines = capsys.readouterr().out.splitlines()
    (line,) = [line for line in lines if line.startswith("v1 ")]
    assert "Approved" in line
    assert float(line.split("accuracy ")[1].split()[0]) > 0.8
    # The version the endpoint serves is marked: after a rollback or a rerun's copy it need not
    # be the newest.
    (served,) = [line for line in lines if line.endswith("<- sentiment-classifier serves it")]
    version = int(served.split()[0].removeprefix("v"))
    (arn,) = [word for word in served.split() if word.startswith("arn:")]
    assert f"-{deploy.package_tag(arn, version)}-" in local.endpoint()["EndpointConfigName"]


def test_stop_ends_a_running_execution(local: Local, capsys: pytest.CaptureFixture[str]) -> None:
    sm = local.client("sagemaker")
    # A hyperparameter no other test uses: Train misses the cache and is running when stopped.
    parameters = [*local.data_parameters(), {"Name": "RegularizationC", "Value": "5.0"}]
    arn = sm.start_pipeline_execution(PipelineName="sentiment-classifier",
                                      PipelineParameters=parameters)["PipelineExecutionArn"]
    wait_until(lambda: "Train" in local.execution(arn)[1], what="Train to start")
    assert local.cli("stop", "--wait") == 0  # the latest execution, followed until it is Stopped
    assert sm.describe_pipeline_execution(PipelineExecutionArn=arn)[
        "PipelineExecutionStatus"] == "Stopped"
    capsys.readouterr()
    assert local.cli("stop", arn) == 2
    assert "only Executing can stop" in capsys.readouterr().err
    _, steps = local.execution(arn)
    assert steps["Train"]["StepStatus"] == "Stopped" and "FailureReason" not in steps["Train"]
    assert "RegisterModel" not in steps


def test_step_logs_are_viewable(local: Local, capsys: pytest.CaptureFixture[str]) -> None:
    first = local.first_execution
    capsys.readouterr()
    assert local.cli("logs", "Train", "--execution", first) == 0
    printed = capsys.readouterr().out
    assert "training accuracy" in printed
    # What the CLI printed is the job's stream, as any SDK reads it from the server's Logs API.
    _, steps = local.execution(first)
    job = steps["Train"]["Metadata"]["TrainingJob"]["Arn"].rsplit("/", 1)[-1]
    described = local.client("sagemaker").describe_training_job(TrainingJobName=job)
    logs = local.client("logs")
    (stream,) = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{job}/")["logStreams"]
    assert stream["logStreamName"].startswith(f"{job}/algo-1-")
    events = logs.get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream["logStreamName"], startFromHead=True,
    )["events"]
    assert printed == "".join(f"{event['message']}\n" for event in events)
    times = [event["timestamp"] / 1000 for event in events]
    assert times == sorted(times)
    assert described["TrainingStartTime"].timestamp() <= times[0]
    assert times[-1] <= described["TrainingEndTime"].timestamp()
    assert local.cli("logs", "AccuracyCheck", "--execution", first) == 0
    assert capsys.readouterr().out == "AccuracyCheck: Succeeded\n  Condition Outcome: True\n"
    assert local.cli("logs", "DeployEndpoint", "--execution", first) == 0
    deploy_log = capsys.readouterr().out
    assert deploy_log.startswith("START RequestId: ") and "\nREPORT RequestId: " in deploy_log
    assert "  Lambda output action = " in deploy_log.split("\nDeployEndpoint: Succeeded\n")[1]
    # What `aws logs tail` reads: the function's group and the endpoint's, through the server's API.
    function = steps["DeployEndpoint"]["Metadata"]["Lambda"]["Arn"].rsplit(":", 1)[-1]
    tail = logs.filter_log_events(logGroupName=f"/aws/lambda/{function}", interleaved=True)["events"]
    request = deploy_log.split()[2]
    assert {f"START RequestId: {request} Version: $LATEST", f"END RequestId: {request}"} <= {
        event["message"] for event in tail}
    endpoint_groups = logs.describe_log_groups(logGroupNamePrefix="/aws/sagemaker/Endpoints/")["logGroups"]
    served = logs.filter_log_events(logGroupName=endpoint_groups[0]["logGroupName"])["events"]
    assert served and all(event["logStreamName"].startswith("AllTraffic/") for event in served)
    assert local.cli("logs", "NoSuchStep", "--execution", first) == 2
    assert "its steps: " in capsys.readouterr().err


def test_accuracy_below_threshold_fails_and_registers_nothing(local: Local) -> None:
    before = len(local.packages())
    assert local.cli("start", "--wait", "--param", "AccuracyThreshold=0.999") == 1
    execution, steps = local.latest_execution()
    assert execution["PipelineExecutionStatus"] == "Failed"
    reason = steps["AccuracyTooLow"]["FailureReason"]
    assert "0.999" in reason and "Model accuracy 0." in reason
    assert "RegisterModel" not in steps and "DeployEndpoint" not in steps
    assert len(local.packages()) == before


def test_bad_dataset_fails_preprocess_and_endpoint_keeps_serving(
    local: Local, tmp_path: Path
) -> None:
    serving = local.endpoint()["EndpointConfigName"]
    before = len(local.packages())
    lines = (REPO_ROOT / "data" / "train.csv").read_text().splitlines()
    lines[4] = lines[4].rsplit(",", 1)[0] + ",2"
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "test.csv").write_bytes((REPO_ROOT / "data" / "test.csv").read_bytes())
    bad = "s3://local-sagemaker/uploads/bad-labels"
    assert local.cli("data", "upload", str(tmp_path), "--to", bad) == 0
    assert local.cli("start", "--wait", "--input-data", bad) == 1
    _, steps = local.latest_execution()
    assert steps["Preprocess"]["FailureReason"] == "AlgorithmError: See job logs for more information"
    reason = steps["Preprocess"]["ExitMessage"]  # what preprocess.py said, as on SageMaker
    assert "train.csv" in reason and "line 5" in reason and "2" in reason
    assert set(steps) == {"Preprocess"}
    assert len(local.packages()) == before
    assert local.endpoint()["EndpointConfigName"] == serving
    assert local.invoke("great value, works perfectly")["label"] == 1


def test_approving_a_pending_version_deploys_it_with_no_failed_request(local: Local) -> None:
    assert local.cli("start", "--wait", "--param", "ModelApprovalStatus=PendingManualApproval",
                     "--param", "RegularizationC=2.0") == 0
    _, steps = local.latest_execution()
    outputs = {o["Name"]: o["Value"] for o in
               steps["DeployEndpoint"]["Metadata"]["Lambda"]["OutputParameters"]}
    assert outputs["action"] == "skipped"
    pending = local.packages()[-1]
    assert pending["ModelApprovalStatus"] == "PendingManualApproval"
    version = pending["ModelPackageVersion"]
    tag = deploy.package_tag(pending["ModelPackageArn"], version)

    results: list[str] = []
    stop = threading.Event()

    def load() -> None:
        runtime = local.client("sagemaker-runtime")
        while not stop.is_set():
            try:
                runtime.invoke_endpoint(EndpointName=ENDPOINT, ContentType="application/json",
                                        Body=b'{"review_text": "solid and reliable"}')
                results.append("ok")
            except ClientError as error:
                results.append(f"failed: {error}")

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        assert local.cli("models", "approve", str(version)) == 0
        wait_until(
            lambda: f"-{tag}-" in local.endpoint().get("EndpointConfigName", "")
            and local.endpoint()["EndpointStatus"] == "InService",
            timeout=90, what=f"the endpoint to serve v{version}",
        )
        served = len(results)
        wait_until(lambda: len(results) >= served + 20, what="requests served after the switch")
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert results and all(r == "ok" for r in results), [r for r in results if r != "ok"][:3]


def test_rollback_puts_an_earlier_approved_version_back_on_the_endpoint(
    local: Local, capsys: pytest.CaptureFixture[str]
) -> None:
    """`models approve` of a version still Approved changed nothing and deployed nothing, silently."""
    # A hyperparameter no other test uses: a new version, Approved and deployed by its run.
    assert local.cli("start", "--wait", "--param", "RegularizationC=9.0") == 0
    first = local.packages()[0]
    assert first["ModelPackageVersion"] == 1 and first["ModelApprovalStatus"] == "Approved"
    tag = deploy.package_tag(first["ModelPackageArn"], 1)
    assert f"-{tag}-" not in local.endpoint()["EndpointConfigName"]
    capsys.readouterr()
    assert local.cli("models", "approve", "1") == 0
    assert "already Approved; nothing changed" in capsys.readouterr().out
    assert local.cli("models", "approve", "1", "--wait") == 1  # one look: v1 is not served
    assert local.cli("models", "rollback", "1", "--wait", "--timeout", "90") == 0
    endpoint = local.endpoint()
    assert endpoint["EndpointStatus"] == "InService" and f"-{tag}-" in endpoint["EndpointConfigName"]
    assert local.packages()[0]["ModelApprovalStatus"] == "Approved"
    assert local.invoke("great value, works perfectly")["label"] == 1


def test_rollback_to_a_copy_of_the_served_model_serves_that_version(local: Local) -> None:
    """An unchanged rerun registers the first run's very model again. Rolling back to either copy
    left the endpoint on the other's config ("already serves"), and `--wait` waited in vain."""
    assert local.cli("run") == 0
    _, steps = local.latest_execution()
    assert "CacheHitResult" in steps["Train"]
    rerun = local.client("sagemaker").describe_model_package(
        ModelPackageName=steps["RegisterModel"]["Metadata"]["RegisterModel"]["Arn"])
    first = local.packages()[0]
    assert first["ModelPackageVersion"] == 1
    for package in (rerun, first):  # one of the two is not the config the endpoint is on
        version = package["ModelPackageVersion"]
        assert local.cli("models", "rollback", str(version), "--wait", "--timeout", "60") == 0, version
        tag = deploy.package_tag(package["ModelPackageArn"], version)
        assert f"-{tag}-" in local.endpoint()["EndpointConfigName"]
    assert local.invoke("great value, works perfectly")["label"] == 1


def test_approvals_seconds_apart_leave_the_version_approved_last_on_the_endpoint(local: Local) -> None:
    """Each approval's deploy runs at once, in no order: the endpoint ended on whichever finished
    last, often not the version approved last."""
    # Two versions whose model data no other test replaces: the first run's, and a new one (a
    # hyperparameter no other test uses), which its run deploys.
    assert local.cli("start", "--wait", "--param", "RegularizationC=11.0") == 0
    first, latest = local.packages()[0], local.packages()[-1]
    sm = local.client("sagemaker")
    for package in (latest, first, latest, first):  # as `models rollback` does each
        sm.update_model_package(ModelPackageArn=package["ModelPackageArn"],
                                ModelApprovalStatus="PendingManualApproval")
        sm.update_model_package(ModelPackageArn=package["ModelPackageArn"], ModelApprovalStatus="Approved")
    tag = deploy.package_tag(first["ModelPackageArn"], first["ModelPackageVersion"])

    def serving_the_last() -> bool:
        endpoint = local.endpoint()
        return endpoint["EndpointStatus"] == "InService" and f"-{tag}-" in endpoint["EndpointConfigName"]

    wait_until(serving_the_last, timeout=90, what=f"the endpoint to serve v{first['ModelPackageVersion']}")
    time.sleep(5)  # every deploy those approvals started is over by now
    assert serving_the_last(), local.endpoint()["EndpointConfigName"]


def test_model_data_replaced_after_registration_fails_the_deploy_step_and_deploys_nothing(
    local: Local, capsys: pytest.CaptureFixture[str]
) -> None:
    """The deploy handler reads the model data from the local S3, as it reads it from S3 on AWS."""
    serving = local.endpoint()["EndpointConfigName"]
    models = local.client("sagemaker").list_models(MaxResults=100)["Models"]
    # A hyperparameter no other test uses: a model of its own, whose artifact no other run reuses.
    assert local.cli("start", "--wait", "--param", "ModelApprovalStatus=PendingManualApproval",
                     "--param", "RegularizationC=7.0") == 0
    registered = local.latest_execution()[0]["PipelineExecutionArn"]
    package = local.packages()[-1]
    sm = local.client("sagemaker")
    model_data = sm.describe_model_package(ModelPackageName=package["ModelPackageArn"])[
        "InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    replaced = b"a tarball with a payload"
    bucket, _, key = model_data.removeprefix("s3://").partition("/")
    local.client("s3").put_object(Bucket=bucket, Key=key, Body=replaced)  # as anyone who may write there
    # Approving deploys through the approval rule too: that deploy fails the same check.
    capsys.readouterr()
    version = str(package["ModelPackageVersion"])
    assert local.cli("models", "approve", version, "--wait", "--timeout", "15") == 1
    err = capsys.readouterr().err  # what the refused deploy logged, read back by the CLI
    assert f"does not serve v{package['ModelPackageVersion']} after 15 s" in err
    assert f"the model data at {model_data} has SHA-256 {hashlib.sha256(replaced).hexdigest()}" in err

    assert local.cli("start", "--wait", "--from-execution", registered, "--steps", "DeployEndpoint") == 1
    _, steps = local.latest_execution()
    reason = steps["DeployEndpoint"]["FailureReason"]
    assert f"the model data at {model_data} has SHA-256 {hashlib.sha256(replaced).hexdigest()}" in reason
    assert "refusing to serve it" in reason
    assert sm.list_models(MaxResults=100)["Models"] == models
    assert local.endpoint()["EndpointConfigName"] == serving
    assert local.invoke("great value, works perfectly")["label"] == 1


def test_monitoring_is_quiet_on_familiar_traffic_and_catches_a_shift(local: Local) -> None:
    clients = Clients(load_settings())
    familiar = demo_drift.familiar_traffic(demo_drift.familiar_data(clients).reviews)
    assert demo_drift.phase(clients, "familiar", familiar) == 0
    assert demo_drift.phase(clients, "shifted", demo_drift.shifted_reviews(200)) == 1
    _, steps = latest_monitoring_run(local)
    assert steps["CheckDrift"]["StepStatus"] == "Succeeded"
    live = (local.state_dir / "store").rglob("monitoring/**/report.html")  # not `.versions/<key>/` folders
    reports = sorted((p for p in live if ".versions" not in p.parts), key=lambda p: p.stat().st_mtime)
    page = reports[-1].read_text()
    assert "<svg" in page and "baseline_drift_check" in page and "https://" not in page


def test_monitor_run_is_a_ci_gate(local: Local) -> None:
    # Its own traffic: shifted reviews drift whatever else the endpoint has captured.
    demo_drift.send(local.client("sagemaker-runtime"), ENDPOINT, demo_drift.shifted_reviews(200))
    assert local.cli("monitor", "run", "--window-start", "2000-01-01T00:00:00Z",
                     "--window-end", "2000-01-02T00:00:00Z") == 0
    assert local.cli("monitor", "run", "--param", "MinRecords=10") == 1
    execution, _ = latest_monitoring_run(local)
    execution_id = execution["PipelineExecutionArn"].rsplit("/", 1)[-1]
    stored = load_settings().monitoring_output_uri(ENDPOINT, execution_id) + "/report.html"
    bucket, _, key = stored.removeprefix("s3://").partition("/")
    downloaded = REPO_ROOT / "out" / "monitoring" / execution_id / "report.html"  # through the local S3
    assert downloaded.read_bytes() == local.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def latest_monitoring_run(local: Local) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    sm = local.client("sagemaker")
    arn = sm.list_pipeline_executions(PipelineName="sentiment-classifier-monitor", MaxResults=1)[
        "PipelineExecutionSummaries"][0]["PipelineExecutionArn"]
    steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    return sm.describe_pipeline_execution(PipelineExecutionArn=arn), {
        s["StepName"]: s for s in steps
    }


def test_restart_keeps_registry_endpoints_and_history(local: Local) -> None:
    sm = local.client("sagemaker")
    executions = sm.list_pipeline_executions(PipelineName="sentiment-classifier")
    packages = local.packages()
    serving = local.endpoint()["EndpointConfigName"]
    assert daemon.stop(local.state_dir)[0] is daemon.Stopped.STOPPED
    sm = local.client("sagemaker")
    assert sm.list_pipeline_executions(PipelineName="sentiment-classifier")[
        "PipelineExecutionSummaries"] == executions["PipelineExecutionSummaries"]
    assert local.packages() == packages
    wait_until(lambda: local.endpoint()["EndpointStatus"] == "InService", what="restore")
    assert local.endpoint()["EndpointConfigName"] == serving
    assert local.invoke("great value, works perfectly")["label"] == 1


def test_a_start_that_names_no_dataset_is_refused_before_any_job_runs(local: Local) -> None:
    """The console's Start or a bare StartPipelineExecution: with the data prefix as InputDataUri's
    default, Preprocess staged every dataset ever uploaded, then failed on a missing train.csv."""
    sm = local.client("sagemaker")
    before = sm.list_pipeline_executions(PipelineName="sentiment-classifier")["PipelineExecutionSummaries"]
    with pytest.raises(ClientError) as refused:
        sm.start_pipeline_execution(PipelineName="sentiment-classifier")
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "InputDataUri" in refused.value.response["Error"]["Message"]
    after = sm.list_pipeline_executions(PipelineName="sentiment-classifier")["PipelineExecutionSummaries"]
    assert after == before


def test_unknown_resources_give_aws_error_codes(local: Local) -> None:
    sm = local.client("sagemaker")
    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: sm.describe_endpoint(EndpointName="nope"), "ValidationException"),
        (lambda: sm.describe_model(ModelName="nope"), "ValidationException"),
        (lambda: sm.describe_pipeline(PipelineName="nope"), "ResourceNotFound"),
        (lambda: sm.describe_pipeline_execution(
            PipelineExecutionArn="arn:aws:sagemaker:us-east-1:000000000000:pipeline/x/execution/y"),
         "ResourceNotFound"),
        (lambda: sm.describe_model_package(ModelPackageName="arn:nope"), "ValidationException"),
        (lambda: sm.start_pipeline_execution(
            PipelineName="sentiment-classifier",
            PipelineParameters=[{"Name": "AccuracyThreshold", "Value": "high"}]),
         "ValidationException"),
    ]
    for call, code in cases:
        with pytest.raises(ClientError) as raised:
            call()
        assert raised.value.response["Error"]["Code"] == code


def test_crash_mid_run_reads_failed_and_retry_resumes(
    local: Local, capsys: pytest.CaptureFixture[str]
) -> None:
    sm = local.client("sagemaker")
    # A hyperparameter no other test uses: Train misses the cache, so the server dies mid-job.
    arn = sm.start_pipeline_execution(
        PipelineName="sentiment-classifier",
        PipelineParameters=[*local.data_parameters(), {"Name": "RegularizationC", "Value": "3.0"}],
    )["PipelineExecutionArn"]

    def train_started() -> bool:
        steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
        return any(s["StepName"] == "Train" for s in steps)

    wait_until(train_started, what="Train to start")
    pid = json.loads((local.state_dir / "server.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    sm = local.client("sagemaker")
    execution = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
    assert execution["PipelineExecutionStatus"] == "Failed"
    assert "server stopped" in execution["FailureReason"]
    # What the CLI says to do once its server is gone: RetryPipelineExecution, followed to the end.
    assert local.cli("retry", arn, "--wait") == 0
    assert sm.describe_pipeline_execution(PipelineExecutionArn=arn)[
        "PipelineExecutionStatus"] == "Succeeded"
    capsys.readouterr()
    assert local.cli("retry", arn) == 2  # only a Failed or Stopped execution runs again
    assert "only Failed or Stopped can retry" in capsys.readouterr().err
    steps = {s["StepName"]: s for s in
             sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]}
    assert steps["Preprocess"]["AttemptCount"] == 1
    assert steps["DeployEndpoint"]["StepStatus"] == "Succeeded"
    wait_until(lambda: local.endpoint()["EndpointStatus"] == "InService", what="InService")


def test_the_sdks_own_objects_work_against_the_local_target(
    local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SDK v3's Pipeline and PipelineExecution, and sagemaker-core's resources, make their own
    calls (versions, parameters, job descriptions, tags, waiters): all of them are answered. The
    SDK is prepared as the project prepares it (a region; no IAM check of a role at upsert), which
    another test's import of pipelines.definition did when this one ran in the suite."""
    prepare_sdk_environment()
    from sagemaker.core.helper.session_helper import Session
    from sagemaker.core.resources import Endpoint
    from sagemaker.core.resources import Pipeline as PipelineResource
    from sagemaker.core.workflow.parameters import ParameterString
    from sagemaker.mlops.workflow.fail_step import FailStep
    from sagemaker.mlops.workflow.pipeline import Pipeline, PipelineExecution

    for service in ("SAGEMAKER", "SAGEMAKER_RUNTIME"):
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", local.url)
    keys = daemon.credentials(local.state_dir)
    boto_session = boto3.Session(region_name="us-east-1", **keys.session_arguments())
    session = Session(boto_session=boto_session)
    where = {"session": boto_session, "region": "us-east-1"}

    execution = PipelineExecution(arn=local.first_execution, sagemaker_session=session)
    execution.wait(delay=1, max_attempts=5)
    assert execution.describe()["PipelineExecutionStatus"] == "Succeeded"
    steps = {s["StepName"]: s for s in execution.list_steps()}
    parameters, token = [], None
    while True:
        page = execution.list_parameters(max_results=5, next_token=token)
        parameters += [p["Name"] for p in page["PipelineParameters"]]
        if not (token := page.get("NextToken")):
            break
    assert "AccuracyThreshold" in parameters and len(parameters) == len(set(parameters))
    with pytest.raises(ValueError, match="@step"):
        execution.result("Evaluate")  # only @step functions have a result; others say so
    job = steps["Train"]["Metadata"]["TrainingJob"]["Arn"].rsplit("/", 1)[-1]
    training = session.sagemaker_client.describe_training_job(TrainingJobName=job)
    assert training["TrainingJobStatus"] == "Completed"
    assert training["ModelArtifacts"]["S3ModelArtifacts"].endswith(f"{job}/output/model.tar.gz")

    resource = PipelineResource.get("sentiment-classifier", **where)
    assert resource.refresh().pipeline_status == "Active"
    assert "sentiment-classifier" in [p.pipeline_name for p in PipelineResource.get_all(**where)]
    answer = Endpoint.get(ENDPOINT, **where).invoke(
        body=json.dumps({"review_text": "great value, works perfectly"}),
        content_type="application/json",
        **where,
    )
    assert json.loads(answer.body.read())["predictions"][0]["label"] == 1

    why = ParameterString("Why", default_value="no reason")
    tagged = Pipeline(name="sdk-tagged", parameters=[why], sagemaker_session=session,
                      steps=[FailStep(name="Stop", error_message=why)])
    role = "arn:aws:iam::000000000000:role/local"
    tagged.upsert(role_arn=role, tags=[{"Key": "team", "Value": "ml"}])
    tagged.upsert(role_arn=role, tags=[{"Key": "stage", "Value": "dev"}])  # exists: tags added
    arn = tagged.describe()["PipelineArn"]
    assert session.sagemaker_client.list_tags(ResourceArn=arn)["Tags"] == [
        {"Key": "stage", "Value": "dev"}, {"Key": "team", "Value": "ml"}]
    assert [v["PipelineVersionId"] for v in tagged.list_pipeline_versions()[
        "PipelineVersionSummaries"]] == [2, 1]


def test_every_answer_carries_a_request_id(local: Local) -> None:
    """Successes, refusals, unknown routes and oversized bodies alike, as AWS's answers do."""
    port = int(local.url.rsplit(":", 1)[1])
    target = {"X-Amz-Target": "SageMaker.ListPipelines"}
    requests = [  # (signed, method, path, body, headers, status)
        (True, "POST", "/", b"{}", target, 200),
        (True, "POST", "/", b'{"PipelineName": 1}', {"X-Amz-Target": "SageMaker.DescribePipeline"}, 400),
        (True, "GET", "/nowhere", b"", {}, 404),
        (True, "POST", f"/endpoints/{ENDPOINT}/invocations", b"x" * (7 * 1024 * 1024), {}, 413),
        (False, "POST", "/", b"{}", target, 400),  # the door's MissingAuthenticationTokenException
    ]
    for signed, method, path, body, headers, status in requests:
        if signed:
            url = f"http://127.0.0.1:{port}{path}"
            headers = daemon.signed_headers(local.state_dir, method, url, body, headers)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request(method, path, body, headers)
        response = connection.getresponse()
        response.read()
        connection.close()
        assert response.status == status, (path, response.status)
        assert len(response.getheader("x-amzn-RequestId", "")) == 36, (path, response.getheaders())


def test_an_invocation_over_6_mb_is_the_runtimes_bare_413(local: Local) -> None:
    """SageMaker Runtime answers it with no error type, so botocore's code is "413" (a 2018 answer:
    "An error occurred (413) when calling the InvokeEndpoint operation: HTTP content length exceeded
    5246976 bytes.", sagemaker-python-sdk issue 171)."""
    runtime = local.client("sagemaker-runtime")
    with pytest.raises(ClientError) as refused:
        runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=b"x" * (7 * 1024 * 1024), ContentType="text/csv")
    error = refused.value.response
    status, code = error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]
    assert (status, code) == (413, "413")
    assert error["Error"]["Message"] == "HTTP content length exceeded 6291456 bytes."


JOBS = ("Preprocess", "Train", "Evaluate")


def test_an_unchanged_rerun_is_served_from_the_cache_and_new_data_retrains(
    local: Local, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # make run-pipeline again: upload the same data, upsert the same code, start and follow.
    assert local.cli("run") == 0
    _, steps = local.latest_execution()
    for name in JOBS:
        assert steps[name]["StepStatus"] == "Succeeded"
        assert steps[name]["CacheHitResult"]["SourcePipelineExecutionArn"].startswith(
            "arn:aws:sagemaker:us-east-1:"), name
    assert "CacheHitResult" not in steps["RegisterModel"]  # not a cacheable step type
    capsys.readouterr()
    assert local.cli("logs", "Train") == 0  # the log of the run the cache reused
    assert "training accuracy" in capsys.readouterr().out

    # New reviews uploaded to the same place: a new content address, so every job runs on them.
    (tmp_path / "train.csv").write_bytes(
        (REPO_ROOT / "data" / "train.csv").read_bytes() + b'"arrived quickly, works as described",1\n')
    (tmp_path / "test.csv").write_bytes((REPO_ROOT / "data" / "test.csv").read_bytes())
    try:
        assert local.cli("data", "upload", str(tmp_path)) == 0
        assert local.cli("start", "--wait") == 0
        _, steps = local.latest_execution()
        assert not any("CacheHitResult" in steps[name] for name in JOBS)
        package = local.client("sagemaker").describe_model_package(
            ModelPackageName=steps["RegisterModel"]["Metadata"]["RegisterModel"]["Arn"])
        lineage = package["CustomerMetadataProperties"]
        uploaded = {p["Name"]: p["Value"] for p in local.data_parameters()}
        assert {name: lineage[name] for name in uploaded} == uploaded
        assert lineage["InputDataUri"].endswith(lineage["InputDataSha256"][:16])
    finally:
        assert local.cli("data", "upload") == 0  # the original data is the latest again


def test_monitor_setup_runs_the_monitoring_pipeline_on_its_schedule(
    local: Local, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The local scheduler starts the monitoring pipeline as EventBridge Scheduler would: a rate
    schedule first at its start, each run given its scheduled time as its window's end."""
    local.invoke("great value, works perfectly")  # something captured: the check runs
    sm, scheduler = local.client("sagemaker"), local.client("scheduler")
    before = {e["PipelineExecutionArn"] for e in sm.list_pipeline_executions(
        PipelineName="sentiment-classifier-monitor", MaxResults=100)["PipelineExecutionSummaries"]}
    capsys.readouterr()
    try:
        assert local.cli("monitor", "setup", "--schedule", "rate(1 hour)") == 0
        assert '"action": "created"' in capsys.readouterr().out
        schedule = scheduler.get_schedule(Name=SCHEDULE)
        started = wait_until(lambda: [e for e in sm.list_pipeline_executions(
            PipelineName="sentiment-classifier-monitor")["PipelineExecutionSummaries"]
            if e["PipelineExecutionArn"] not in before], what="the scheduled monitoring run")
        arn = started[0]["PipelineExecutionArn"]
        parameters = {p["Name"]: p["Value"] for p in sm.list_pipeline_parameters_for_execution(
            PipelineExecutionArn=arn)["PipelineParameters"]}
        set_at = schedule["LastModificationDate"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert (parameters["WindowEnd"], parameters["WindowHours"]) == (set_at, "1")
        wait_until(lambda: local.execution(arn)[0]["PipelineExecutionStatus"] != "Executing", timeout=120,
                   what="the scheduled run to end")
        assert local.execution(arn)[1]["CheckDrift"]["StepStatus"] == "Succeeded"
        capsys.readouterr()
        code = local.cli("monitor", "show", "--execution", arn)  # other tests' traffic may drift
        shown = capsys.readouterr().out
        assert code == (1 if "status: drift" in shown else 0), shown
        report = REPO_ROOT / "out" / "monitoring" / arn.rsplit("/", 1)[-1] / "report.html"
        assert f"report: {report}" in shown and "<title>Model monitoring report</title>" in report.read_text()
        picture = tmp_path / "history.svg"
        assert local.cli("monitor", "history", "--limit", "5", "--out", str(picture)) == 0
        assert arn.rsplit("/", 1)[-1] in capsys.readouterr().out and picture.read_text().startswith("<svg")
        assert local.cli("logs", "CheckDrift", "--monitoring") == 0  # the latest monitoring run: this one
        assert "records from" in capsys.readouterr().out  # the check's own log line
        assert local.cli("monitor", "setup", "--disable") == 0
        assert scheduler.get_schedule(Name=SCHEDULE)["State"] == "DISABLED"
    finally:
        scheduler.delete_schedule(Name=SCHEDULE)
