"""The local server's door, through a real server process and real HTTP: only signed callers on the
loopback name get in; nothing a refused request carries is written; `local env` lets a fresh SDK in;
a flood of idle sockets costs no threads; `local down` tells the truth."""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import os
import resource
import signal
import socket
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from waiting import wait_until

from pipelines import REPO_ROOT, cli
from pipelines.local import daemon
from pipelines.local.service.backend import OPERATIONS
from pipelines.local.storage.credentials import Credentials
from pipelines.local.system import isolation

pytestmark = pytest.mark.e2e
HOST = "127.0.0.1"
WAIT = 30.0
BROWSER_ORIGIN = "http://attacker.example"
JSON_1_1 = "application/x-amz-json-1.1"


def code_zip() -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("conftest.py", "raise SystemExit('planted')\n")
    return base64.b64encode(buffer.getvalue()).decode()


DEFINITION = json.dumps({"Version": "2020-12-01", "Steps": [{
    "Name": "Run", "Type": "Processing", "Arguments": {"AppSpecification": {
        "ImageUri": "x", "ContainerEntrypoint": ["sh", "-c", "touch /tmp/door-owned"]}}}]})
WRITES: dict[str, dict[str, Any]] = {  # bodies that would write if they were served
    "CreatePipeline": {"PipelineName": "door", "PipelineDefinition": DEFINITION, "RoleArn": "arn:r"},
    "PutRule": {"Name": "door", "EventPattern": json.dumps({"source": ["aws.sagemaker"]})},
    "CreateModelPackageGroup": {"ModelPackageGroupName": "door"},
}


SCHEDULE = {  # a schedule that would start the monitoring pipeline at once
    "ScheduleExpression": "rate(1 minute)", "FlexibleTimeWindow": {"Mode": "OFF"},
    "Target": {"Arn": "arn:aws:scheduler:::aws-sdk:sagemaker:startPipelineExecution",
               "RoleArn": "arn:aws:iam::000000000000:role/r", "Input": "{}"},
}


def routes() -> list[tuple[str, str, dict[str, str], bytes, str]]:
    """(method, path, headers, body, signing name) for every route the server has."""
    found = []
    for operation in sorted(OPERATIONS):
        body = json.dumps(WRITES.get(operation, {})).encode()
        json_apis = (("SageMaker", "sagemaker"), ("AWSEvents", "events"), ("Logs_20140328", "logs"))
        for service, signing in json_apis:
            headers = {"Content-Type": JSON_1_1, "X-Amz-Target": f"{service}.{operation}"}
            found.append(("POST", "/", headers, body, signing))
    zipped = code_zip()
    function = json.dumps({"FunctionName": "../../tests/conftest", "Handler": "conftest.handler",
                           "Runtime": "python3.12", "Role": "arn:r", "Code": {"ZipFile": zipped}})
    rest = {"Content-Type": "application/json"}
    found += [
        ("POST", "/2015-03-31/functions", rest, function.encode(), "lambda"),
        ("PUT", "/2015-03-31/functions/deploy/code", rest, json.dumps({"ZipFile": zipped}).encode(),
         "lambda"),
        ("GET", "/2015-03-31/functions/deploy", {}, b"", "lambda"),
        ("GET", "/2015-03-31/functions/deploy/configuration?Qualifier=%24LATEST", {}, b"", "lambda"),
        ("POST", "/2015-03-31/functions/deploy/invocations", rest, b"{}", "lambda"),
        ("POST", "/endpoints/sentiment-classifier/invocations", rest, b'{"review_text": "fake review"}',
         "sagemaker"),
        ("POST", "/schedules/door", rest, json.dumps(SCHEDULE).encode(), "scheduler"),
        ("PUT", "/schedules/door", rest, json.dumps(SCHEDULE).encode(), "scheduler"),
        ("GET", "/schedules/door", {}, b"", "scheduler"),
        ("GET", "/schedules?MaxResults=1", {}, b"", "scheduler"),
        ("DELETE", "/schedules/door", {}, b"", "scheduler"),
        ("POST", "/no/such/route", rest, b"{}", "sagemaker"),
    ]
    return found


def sign(keys: Credentials, service: str, method: str, url: str, body: bytes, headers: dict[str, str],
         token: str | None = None) -> dict[str, str]:
    """`headers` with Host (taken from `url`) and a SigV4 signature made with `keys` (and a session
    token, which botocore sends and signs as X-Amz-Security-Token)."""
    request = AWSRequest(method=method, url=url, data=body, headers={"Host": urlsplit(url).netloc, **headers})
    boto_keys = BotoCredentials(keys.access_key_id, keys.secret_access_key, token)
    signer = SigV4Auth(boto_keys, service, "us-east-1")
    signer.add_auth(request)
    return {name: str(value) for name, value in request.headers.items()}


def send(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection(HOST, port, timeout=WAIT)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def snapshot(state_dir: Path) -> dict[str, str]:
    """Every file of the state (the server's own log aside) and a hash of its bytes."""
    return {
        str(path.relative_to(state_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(state_dir.rglob("*"))
        if path.is_file() and path.name != "server.log"
    }


def port_of(state_dir: Path) -> int:
    return int(json.loads((state_dir / "server.json").read_text())["port"])


ATTACKS = {
    "unsigned": "MissingAuthenticationTokenException",
    "wrong secret": "InvalidSignatureException",
    "unknown key": "UnrecognizedClientException",
    "the keys with a session token": "UnrecognizedClientException",
    "foreign Host": "AccessDeniedException",
    "browser Origin": "AccessDeniedException",
    "cross-origin text/plain POST": "AccessDeniedException",
}


def attack(kind: str, keys: Credentials, port: int, route: tuple[str, str, dict[str, str], bytes, str]
           ) -> dict[str, str]:
    method, path, headers, body, service = route
    url = f"http://{HOST}:{port}{path}"
    if kind == "unsigned":
        return headers
    if kind == "wrong secret":
        keys = Credentials(keys.access_key_id, "not-the-secret")
    if kind == "unknown key":
        keys = Credentials("AKIAIOSFODNN7EXAMPLE", keys.secret_access_key)
    if kind in ("wrong secret", "unknown key"):
        return sign(keys, service, method, url, body, headers)
    if kind == "the keys with a session token":  # the server's keys are long-term: no token is theirs
        return sign(keys, service, method, url, body, headers, token="FwoGZXIvYXdzEXAMPLE")
    if kind == "foreign Host":  # a DNS rebinding: the page's own name, pointed at 127.0.0.1
        return sign(keys, service, method, f"http://rebound.example:{port}{path}", body, headers)
    if kind == "browser Origin":
        return {**sign(keys, service, method, url, body, headers), "Origin": BROWSER_ORIGIN}
    return {**headers, "Content-Type": "text/plain;charset=UTF-8", "Origin": BROWSER_ORIGIN}


@pytest.mark.parametrize("kind", ATTACKS)
def test_every_route_refuses_and_writes_nothing(state: Path, kind: str) -> None:
    keys, port = daemon.credentials(state), port_of(state)
    before = snapshot(state)
    for route in routes():
        method, path, _, body, _ = route
        status, answer = send(port, method, path, attack(kind, keys, port, route), body)
        assert status in (400, 403), (kind, route[:2], route[2].get("X-Amz-Target"), status, answer)
        assert answer.get("__type") == ATTACKS[kind], (kind, route[:2], answer)
    assert snapshot(state) == before
    assert not Path("/tmp/door-owned").exists()


def test_the_same_requests_signed_get_in(state: Path) -> None:
    """The control: the refusals above are the door's, and a write would have shown."""
    keys, port = daemon.credentials(state), port_of(state)
    before = snapshot(state)
    headers = {"Content-Type": JSON_1_1, "X-Amz-Target": "SageMaker.CreateModelPackageGroup"}
    body = json.dumps({"ModelPackageGroupName": f"door-{os.getpid()}"}).encode()
    url = f"http://{HOST}:{port}/"
    status, answer = send(port, "POST", "/", sign(keys, "sagemaker", "POST", url, body, headers), body)
    assert status == 200, answer
    assert snapshot(state) != before
    path = "/2015-03-31/functions/none"
    headers = sign(keys, "lambda", "GET", f"http://localhost:{port}{path}", b"", {})
    status, answer = send(port, "GET", path, headers, b"")
    assert (status, answer["__type"]) == (404, "ResourceNotFoundException")  # as Lambda answers it
    headers = sign(keys, "scheduler", "GET", f"http://localhost:{port}/schedules/none", b"", {})
    status, answer = send(port, "GET", "/schedules/none", headers, b"")
    assert (status, answer["__type"]) == (404, "ResourceNotFoundException")  # as Scheduler answers it


def test_state_and_credentials_are_the_owners_only(state: Path) -> None:
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for name in ("credentials.json", "server.json", "state.db", "server.log", "server.lock"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600, name


SDK_CHECK = """
import json, boto3
from botocore.exceptions import ClientError
def code(call):
    try:
        call()
        return "ok"
    except ClientError as error:
        return error.response["Error"]["Code"]
print(json.dumps({
    "sagemaker": code(lambda: boto3.client("sagemaker").list_endpoints()),
    "lambda": code(lambda: boto3.client("lambda").get_function(FunctionName="none")),
    "invoke": code(lambda: boto3.client("lambda").invoke(FunctionName="none", Payload=b"{}")),
    "qualified": code(lambda: boto3.client("lambda").get_function_configuration(
        FunctionName="none", Qualifier="$LATEST")),
    "events": code(lambda: boto3.client("events").describe_rule(Name="none")),
    "runtime": code(lambda: boto3.client("sagemaker-runtime").invoke_endpoint(
        EndpointName="none", Body=b"{}", ContentType="application/json")),
    "s3": code(lambda: boto3.client("s3").list_objects_v2(Bucket="none")),
    "scheduler": code(lambda: boto3.client("scheduler").get_schedule(Name="none")),
}))
"""


def test_local_env_lets_a_fresh_sdk_in(state: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PIPELINE_"))}
    clean.update(PIPELINE_STATE_DIR=str(state), PIPELINE_TARGET="local", HOME=str(state.parent),
                 PIPELINE_CONFIG="", AWS_SESSION_TOKEN="stale")
    exports = f'eval "$({sys.executable} -m pipelines local env)"'
    script = f'{exports} && {sys.executable} -c "$CHECK"'
    run = subprocess.run(["bash", "-c", script], env={**clean, "CHECK": SDK_CHECK}, cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[-1]) == {
        "sagemaker": "ok", "lambda": "ResourceNotFoundException", "events": "ResourceNotFoundException",
        "runtime": "ValidationError", "invoke": "ResourceNotFoundException",
        "qualified": "ResourceNotFoundException", "s3": "NoSuchBucket",
        "scheduler": "ResourceNotFoundException",
    }
    wrong = f'{exports} && AWS_SECRET_ACCESS_KEY=x {sys.executable} -c "$CHECK"'
    run = subprocess.run(["bash", "-c", wrong], env={**clean, "CHECK": SDK_CHECK}, cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=120)
    refusals = json.loads(run.stdout.splitlines()[-1])
    assert refusals.pop("s3") == "SignatureDoesNotMatch"
    assert set(refusals.values()) == {"InvalidSignatureException"}


def server_threads_and_sockets(pid: int) -> tuple[int, int]:
    threads = len(list(Path(f"/proc/{pid}/task").iterdir()))
    sockets = sum(1 for fd in Path(f"/proc/{pid}/fd").iterdir() if _target(fd).startswith("socket:"))
    return threads, sockets


def _target(fd: Path) -> str:
    """What an open descriptor points at; "" for one the server closed while it was listed."""
    try:
        return os.readlink(fd)
    except FileNotFoundError:
        return ""


def test_an_idle_flood_costs_no_threads_and_a_bounded_number_of_sockets(state: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 4096:
        pytest.skip(f"needs 4096 descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), hard))
    pid, port = daemon.server_pid(state), port_of(state)
    assert pid
    threads_before, _ = server_threads_and_sockets(pid)
    flood: list[socket.socket] = []
    try:
        for _ in range(2000):
            flood.append(socket.create_connection((HOST, port), timeout=WAIT))
        for sock in flood[-200:]:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # slowloris: never ends
        keys = daemon.credentials(state)
        sm = boto3.Session(region_name="us-east-1", **keys.session_arguments()).client(
            "sagemaker", endpoint_url=f"http://{HOST}:{port}")
        assert sm.list_endpoints()["Endpoints"] == []
        threads, sockets = server_threads_and_sockets(pid)
        assert threads <= threads_before + 2, (threads_before, threads)
        assert sockets <= 1024 + 16, sockets
    finally:
        for sock in flood:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Path]:
    state_dir = tmp_path / "state"
    daemon.ensure_running(state_dir)
    pid = daemon.server_pid(state_dir)
    try:
        yield state_dir
    finally:
        if pid and daemon._alive(pid):
            os.kill(pid, signal.SIGCONT)
            daemon.stop(state_dir)


def local(state_dir: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["--state-dir", str(state_dir), "--target", "local", "local", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("reason", ["", "no user namespaces here"])
def test_local_status_says_whether_what_the_server_runs_is_confined(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, reason: str
) -> None:
    monkeypatch.setattr(isolation, "isolation_unavailable", lambda: reason)
    code, out, _ = local(tmp_path / "state", capsys, "status")
    assert code == 0 and out.startswith("not running\n")
    expected = f"unconfined: {reason}" if reason else "confined (user, mount and network namespaces)"
    assert out.splitlines()[-1] == f"jobs, model servers and Lambda environments: {expected}"


def test_local_down_stops_a_server_that_does_not_answer_http(
    own_server: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pid = daemon.server_pid(own_server)
    assert pid
    os.kill(pid, signal.SIGSTOP)  # alive, holding its state, deaf to HTTP
    # kill() returns before the stop takes effect; a busy machine can let one more request in
    wait_until(lambda: Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "T", 10,
               "the server to stop")
    assert daemon.running_server(own_server) is None
    assert daemon.server_pid(own_server) == pid
    code, out, _ = local(own_server, capsys, "status")
    assert code == 0 and out.startswith(f"running (pid {pid}) but not answering HTTP")
    os.kill(pid, signal.SIGCONT)
    code, out, _ = local(own_server, capsys, "down")
    assert (code, out.strip()) == (0, f"stopped (pid {pid})")
    assert not daemon._alive(pid)
    code, out, _ = local(own_server, capsys, "down")
    assert code == 0 and out.startswith("not running")


def test_local_down_says_so_when_the_server_did_not_stop(
    own_server: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = daemon.server_pid(own_server)
    assert pid
    os.kill(pid, signal.SIGSTOP)  # SIGTERM stays pending: only SIGKILL ends it
    real_stop = daemon.stop
    monkeypatch.setattr(daemon, "stop", lambda state_dir: real_stop(state_dir, timeout=0.5))
    code, _, err = local(own_server, capsys, "down")
    assert code == 1
    assert f"the server (pid {pid}) did not stop on SIGTERM in time; killed it" in err
    wait_until(lambda: not daemon._alive(pid), WAIT, "the killed server to be gone")
