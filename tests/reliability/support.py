"""Helpers shared by the reliability tests.

A local SageMaker in a temporary state directory driven through the CLI and boto3 (as
tests/e2e does), bounded waits, process inspection through /proc, model artifacts rebuilt from a
good one with other inference code, a model server process of our own, and a plain HTTP client
(no SDK retries that could hide a failed request).
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import selectors
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from processes import pid_alive, processes_with
from waiting import wait_until

from pipelines import REPO_ROOT, cli, executions
from pipelines.datasets import latest_dataset
from pipelines.local import daemon
from pipelines.local.jobs.images import local_sklearn_release
from pipelines.local.storage.objects import ObjectStore
from pipelines.settings import load_settings

DATA_DIR = REPO_ROOT / "data"
HOST = "127.0.0.1"
BUCKET = "local-sagemaker"
PIPELINE = "sentiment-classifier"
GROUP = "sentiment-classifier"
ENDPOINT = "sentiment-classifier"
TERMINAL = ("Succeeded", "Failed", "Stopped")
IN_PROGRESS = ("Executing", "Stopping", "Creating", "Updating", "SystemUpdating", "RollingBack")
STOP_SECONDS = 30.0
LOCAL_IMAGE = (  # the scikit-learn image whose release is installed here
    f"683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:{local_sklearn_release()}-1-cpu-py3"
)
T = TypeVar("T")



# --- processes -------------------------------------------------------------------------------


def reap(pid: int, timeout: float = STOP_SECONDS) -> None:
    """Wait (bounded) for pid to end, collecting it if it is our child."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:  # not our child: watch /proc instead
            if not pid_alive(pid):
                return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still running after {timeout:g} s")


def kill_leftovers(*needles: str) -> None:
    """Clean up processes a failed test left behind (only ones matching our own state dir)."""
    for pid in processes_with(*needles):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# --- the local SageMaker -------------------------------------------------------------------------


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@contextlib.contextmanager
def pipeline_environment(state_dir: Path) -> Iterator[None]:
    """Only our settings: no PIPELINE_* from the caller's shell may send a test to AWS."""
    saved = {key: value for key, value in os.environ.items() if key.startswith("PIPELINE_")}
    for key in saved:
        del os.environ[key]
    os.environ.update(
        PIPELINE_TARGET="local",
        PIPELINE_STATE_DIR=str(state_dir),
        PIPELINE_CONFIG="",
    )
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith("PIPELINE_")]:
            del os.environ[key]
        os.environ.update(saved)


class Local:
    """One local SageMaker server on its own state directory, restarted on demand."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.store = ObjectStore(state_dir / "store")

    @property
    def url(self) -> str:
        return daemon.ensure_running(self.state_dir)

    @property
    def port(self) -> int:
        return int(urlsplit(self.url).port or 0)

    def client(self, service: str) -> Any:
        """A boto3 client without retries, so every failure the server gives is seen."""
        url = self.url  # first: a server's first start makes the credentials
        keys = daemon.credentials(self.state_dir)
        return boto3.Session(region_name="us-east-1", **keys.session_arguments()).client(
            service,
            endpoint_url=url,
            config=Config(retries={"total_max_attempts": 1}, read_timeout=70),
        )

    def signed(
        self, method: str, path: str, body: bytes, headers: dict[str, str], port: int | None = None
    ) -> dict[str, str]:
        """Headers that make the server (on `port`, default: the running one, started if need be)
        accept a raw request: Host and a SigV4 signature."""
        url = f"http://{HOST}:{port or self.port}{path}"
        return daemon.signed_headers(self.state_dir, method, url, body, headers)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Response:
        """One signed POST on a fresh connection, no retries."""
        port = self.port
        return request(port, "POST", path, body, self.signed("POST", path, body, headers, port))

    def cli(self, *args: str) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        with (
            pipeline_environment(self.state_dir),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            code = cli.main(list(args))
        return CliResult(code, out.getvalue(), err.getvalue())

    # reads

    def data_parameters(self) -> list[dict[str, str]]:
        """The latest uploaded dataset as `start` passes it (a raw API start must pass it too)."""
        with pipeline_environment(self.state_dir):
            dataset = latest_dataset(self.store, load_settings().data_uri)
        assert dataset is not None, "no data uploaded"
        return [{"Name": name, "Value": value} for name, value in dataset.parameters().items()]

    def packages(self) -> list[dict[str, Any]]:
        sm = self.client("sagemaker")
        return list(sm.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"])

    def endpoint(self) -> dict[str, Any]:
        return dict(self.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT))

    def in_service(self) -> dict[str, Any] | None:
        endpoint = self.endpoint()
        return endpoint if endpoint["EndpointStatus"] == "InService" else None

    def execution(self, arn: str) -> dict[str, Any]:
        return dict(self.client("sagemaker").describe_pipeline_execution(PipelineExecutionArn=arn))

    def steps(self, arn: str) -> dict[str, dict[str, Any]]:
        """The steps as the CLI reads them (a failed processing step with its job's ExitMessage)."""
        return {step["StepName"]: step for step in executions.list_steps(self.client("sagemaker"), arn)}

    def wait_for_executions(self, arns: list[str], timeout: float) -> dict[str, dict[str, Any]]:
        """Every execution's final Describe, once all of them have ended."""
        done: dict[str, dict[str, Any]] = {}

        def all_done() -> bool:
            for arn in arns:
                if arn not in done:
                    execution = self.execution(arn)
                    if execution["PipelineExecutionStatus"] in TERMINAL:
                        done[arn] = execution
            return len(done) == len(arns)

        wait_until(all_done, timeout, f"{len(arns)} executions to end", interval=0.5)
        return done

    def invoke(self, text: str) -> dict[str, Any]:
        body = json.dumps({"review_text": text}).encode()
        response = self.post(f"/endpoints/{ENDPOINT}/invocations", body, {"Content-Type": "application/json"})
        assert response.status == 200, (response.status, response.body[:500])
        prediction: dict[str, Any] = response.json()["predictions"][0]
        return prediction

    def serving_model_data(self) -> dict[str, Any]:
        """The container (Image, ModelDataUrl, Environment) of the model the endpoint serves."""
        sm = self.client("sagemaker")
        config = sm.describe_endpoint_config(EndpointConfigName=self.endpoint()["EndpointConfigName"])
        model = sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
        return dict(model["PrimaryContainer"])

    # process control

    def server_pid(self) -> int:
        return int(json.loads((self.state_dir / "server.json").read_text())["pid"])

    def kill9(self) -> int:
        """SIGKILL the server (nothing runs its shutdown code) and reap it."""
        pid = self.server_pid()
        os.kill(pid, signal.SIGKILL)
        reap(pid)
        return pid

    def stop(self) -> None:
        """SIGTERM and wait (bounded), reaping the server if we started it; SIGKILL last."""
        info = daemon.running_server(self.state_dir)
        if not info:
            return
        pid = int(info["pid"])
        os.kill(pid, signal.SIGTERM)
        try:
            reap(pid)
        except AssertionError:
            os.kill(pid, signal.SIGKILL)
            reap(pid)


def deployed_local(state_dir: Path) -> Local:
    """A local SageMaker with the repository's data run once: v1 registered and serving."""
    local = Local(state_dir)
    for args in (("data", "upload"), ("upsert",), ("start", "--wait", "--timeout", "300")):
        result = local.cli(*args)
        assert result.code == 0, (args, result.out[-3000:], result.err[-3000:])
    wait_until(local.in_service, 120, "the first endpoint to be InService")
    return local


def script_step(name: str, code_uri: str, environment: dict[str, str] | None = None) -> dict[str, Any]:
    """A Processing step that runs the one Python script stored at code_uri."""
    code_dir = "/opt/ml/processing/input/code"
    arguments: dict[str, Any] = {
        "ProcessingResources": {
            "ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1}
        },
        "AppSpecification": {
            "ImageUri": LOCAL_IMAGE,
            "ContainerEntrypoint": ["python3", f"{code_dir}/{code_uri.rsplit('/', 1)[-1]}"],
        },
        "RoleArn": "arn:aws:iam::000000000000:role/local-sagemaker",
        "ProcessingInputs": [
            {
                "InputName": "code",
                "S3Input": {
                    "S3Uri": code_uri,
                    "LocalPath": code_dir,
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            }
        ],
    }
    if environment:
        arguments["Environment"] = environment
    return {"Name": name, "Type": "Processing", "Arguments": arguments}


# --- HTTP ------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 70.0,
) -> Response:
    """One request on a fresh connection."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


def raw_exchange(port: int, data: bytes, timeout: float = 30.0) -> bytes:
    """Send raw bytes (for requests http.client refuses to build); read until the server
    closes or the declared Content-Length has arrived."""
    import socket

    deadline = time.monotonic() + timeout
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no complete response within {timeout:g} s: {received[:200]!r}")
            chunk = sock.recv(65536)
            if not chunk:
                return received
            received += chunk
            head, sep, body = received.partition(b"\r\n\r\n")
            if sep:
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length" and len(body) >= int(value):
                        return received


def parse_raw(data: bytes) -> Response:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Response(status, headers, body)


# --- models ----------------------------------------------------------------------------------


def clean_csv(source: Path, dest: Path) -> Path:
    """The clean form of a raw data file, as preprocess writes it (what training reads)."""
    from steps import preprocess

    preprocess.clean_split(source, dest, need_both_classes=True)
    return dest


def train_model(model_dir: Path, work: Path) -> Path:
    """A real model from the repository's data, through train.run (what the Train job runs)."""
    from steps import train

    train_file = clean_csv(DATA_DIR / "train.csv", work / "train.csv")
    train.run(train.parse_args([]), train_file, model_dir)
    return model_dir


def rebuild_artifact(source: Path, dest: Path, inference_code: str) -> Path:
    """Copy a model.tar.gz with code/inference.py replaced by inference_code."""
    replaced = False
    with tarfile.open(source, "r:*") as src, tarfile.open(dest, "w:gz") as out:
        for member in src.getmembers():
            data = src.extractfile(member) if member.isfile() else None
            if member.isfile() and member.name.removeprefix("./") == "code/inference.py":
                payload = inference_code.encode("utf-8")
                member.size = len(payload)
                data = io.BytesIO(payload)
                replaced = True
            out.addfile(member, data)
    assert replaced, f"{source} has no code/inference.py"
    return dest


def inference_source(artifact: Path) -> str:
    with tarfile.open(artifact, "r:*") as tar:
        for member in tar.getmembers():
            if member.name.removeprefix("./") == "code/inference.py":
                handle = tar.extractfile(member)
                assert handle is not None
                return handle.read().decode("utf-8")
    raise AssertionError(f"{artifact} has no code/inference.py")


class ModelServer:
    """`python -m pipelines.local.hosting.model_server` on a model directory, on a free port."""

    def __init__(self, model_dir: Path, log_path: Path, start_timeout: float = 60.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAGEMAKER_")}
        env["PYTHONPATH"] = str(REPO_ROOT)
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pipelines.local.hosting.model_server",
                    "--model-dir",
                    str(model_dir),
                    "--port",
                    "0",
                ],
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=str(REPO_ROOT),
            )
        self.log_path = log_path
        line = self._first_line(start_timeout)
        assert line.startswith("LISTENING "), (line, log_path.read_text(errors="replace")[-2000:])
        self.port = int(line.split()[1])

    def _first_line(self, timeout: float) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while b"\n" not in buffer and time.monotonic() < deadline:
                if selector.select(timeout=max(0.0, deadline - time.monotonic())):
                    chunk = os.read(self.process.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    buffer += chunk
        return buffer.decode("utf-8", "replace").split("\n", 1)[0]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_SECONDS)
        if self.process.stdout:
            self.process.stdout.close()
