"""Start the local SageMaker server on demand, find a running one, stop it, and sign in to it.

Commands that need the server call `ensure_running`; it survives the command (a detached process
with its log in the state directory) so endpoints keep serving between commands. `credentials` are
the keys the server made at its first start; every client signs its requests with them.
"""

from __future__ import annotations

import enum
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipelines import REPO_ROOT
from pipelines.local.layout import StateLayout
from pipelines.local.storage import credentials as stored_credentials
from pipelines.local.storage.credentials import Credentials
from pipelines.local.system.source import source_digest

START_TIMEOUT = 30.0
# How often a starting server is looked for: it answers about 0.5 s after it is started, and a
# look (server.json, then /health once it is there) costs about a millisecond.
START_POLL_SECONDS = 0.02
KILL_WAIT_SECONDS = 5.0
# The server needs no AWS credentials of the user's: it gets the region and nothing else of AWS_*.
SERVER_AWS_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")


class Stopped(enum.Enum):
    NOT_RUNNING = "not running"
    STOPPED = "stopped"
    KILLED = "killed"  # did not stop on SIGTERM in time; SIGKILL ended it
    STILL_RUNNING = "still running"  # not even SIGKILL ended it (yet)


class ServerNotStarted(RuntimeError):
    """The server could not be started; the message says why."""


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _recorded(state_dir: Path) -> dict[str, Any] | None:
    """server.json: pid, port, url and region of the server that last started on `state_dir`."""
    try:
        info: dict[str, Any] = json.loads(StateLayout(state_dir).server_info.read_text())
    except (OSError, ValueError):
        return None
    return info


def stale(info: dict[str, Any]) -> bool:
    """Whether the recorded server runs other code than this checkout's (system/source.py)."""
    return info.get("source") != source_digest()


def running_server(state_dir: Path) -> dict[str, Any] | None:
    """The server recorded in the state directory, if it answers."""
    info = _recorded(state_dir)
    return info if info and _healthy(info["url"]) else None


def ensure_running(state_dir: Path, port: int = 0) -> str:
    """The URL of the server for `state_dir`, starting one if none answers. A server that runs
    other code than this checkout's is used (it may be serving endpoints or running executions),
    with a warning saying how to restart it."""
    info = running_server(state_dir)
    if info:
        if stale(info):
            print(
                f"warning: the local SageMaker server (pid {info['pid']}) was started from other code "
                "than this checkout's; `python -m pipelines local down` stops it, and the next command "
                "starts one from this checkout (endpoints come back, running executions fail)",
                file=sys.stderr,
            )
        return str(info["url"])
    layout = StateLayout(state_dir)
    environment = {
        key: value for key, value in os.environ.items()
        if not key.startswith("AWS_") or key in SERVER_AWS_VARIABLES
    }
    try:  # a read-only state directory cannot even hold the server's log
        layout.create_root()
        log = os.fdopen(os.open(layout.server_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a")
    except OSError as error:
        raise ServerNotStarted(f"cannot start the local SageMaker server in {state_dir}: {error}") from None
    with log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipelines.local.api.server",
                "--state-dir",
                str(state_dir),
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=REPO_ROOT,
            env=environment,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        info = running_server(state_dir)
        if info:
            return str(info["url"])
        if process.poll() is not None and process.returncode != 3:
            break
        time.sleep(START_POLL_SECONDS)
    raise ServerNotStarted(f"the local SageMaker server did not start{_ending(process)}; {_log_tail(layout)}")


def _ending(process: subprocess.Popen[bytes]) -> str:
    """How the server process ended, if it did: a signal says something killed it."""
    code = process.poll()
    if code is None:
        return f" within {START_TIMEOUT:.0f} s"
    if code < 0:
        return f" (killed by {signal.Signals(-code).name})"
    return f" (exit status {code})"


def _log_tail(layout: StateLayout) -> str:
    tail = layout.server_log.read_text(errors="replace")[-2000:]
    return f"its log ends:\n{tail}" if tail.strip() else f"its log ({layout.server_log}) is empty"


def credentials(state_dir: Path) -> Credentials:
    """The keys that requests to the server on `state_dir` must be signed with."""
    return stored_credentials.load(StateLayout(state_dir).credentials)


def signed_headers(
    state_dir: Path, method: str, url: str, body: bytes, headers: dict[str, str], service: str = "sagemaker"
) -> dict[str, str]:
    """`headers` plus the Signature Version 4 ones that make the server accept a raw HTTP request,
    for clients that speak HTTP without an SDK (load generators, tests). The signature is good for
    five minutes; `service` is the signing name: sagemaker (also the runtime's), lambda, events."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    keys = credentials(state_dir)
    region = str((_recorded(state_dir) or {}).get("region", "us-east-1"))
    headers = {"Host": urlsplit(url).netloc, **headers}
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(BotoCredentials(keys.access_key_id, keys.secret_access_key), service, region).add_auth(request)
    return {name: str(value) for name, value in request.headers.items()}


def sdk_environment(state_dir: Path, port: int = 0) -> dict[str, str]:
    """The environment with which any AWS SDK or the AWS CLI reaches the server on `state_dir`
    (started if need be)."""
    url = ensure_running(state_dir, port)
    info = _recorded(state_dir) or {}
    return stored_credentials.sdk_environment(
        url, str(info.get("region", "us-east-1")), credentials(state_dir)
    )


def server_pid(state_dir: Path) -> int | None:
    """The pid of the server that owns `state_dir`, whether or not it answers HTTP (yet): the
    state's lock is held exactly while a server runs, and the lock file holds its pid."""
    try:
        with StateLayout(state_dir).server_lock.open("r") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # held: a server runs
                return int(handle.read().strip() or 0) or None
            return None
    except (OSError, ValueError):
        return None


def stop(state_dir: Path, timeout: float = 20.0) -> tuple[Stopped, int | None]:
    """Stop the server: SIGTERM, then SIGKILL if it is still running after `timeout` seconds."""
    pid = server_pid(state_dir)
    if pid is None:
        return Stopped.NOT_RUNNING, None
    os.kill(pid, signal.SIGTERM)
    if _gone_within(pid, timeout):
        return Stopped.STOPPED, pid
    os.kill(pid, signal.SIGKILL)
    return (Stopped.KILLED if _gone_within(pid, KILL_WAIT_SECONDS) else Stopped.STILL_RUNNING), pid


def _gone_within(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _alive(pid: int) -> bool:
    """Running, not merely a zombie: a server this process started stays one until reaped."""
    try:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False
    except ChildProcessError:  # not our child: its own parent reaps it
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
