"""Start the local SageMaker server on demand, find a running one, stop it.

Commands that need the server call `ensure_running`; it survives the command (a detached process
with its log in the state directory) so endpoints keep serving between commands.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from pipelines import REPO_ROOT
from pipelines.local.layout import StateLayout

START_TIMEOUT = 30.0


class ServerNotStarted(RuntimeError):
    """The server could not be started; the message says why."""


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def running_server(state_dir: Path) -> dict[str, Any] | None:
    """The server recorded in the state directory, if it answers."""
    try:
        info: dict[str, Any] = json.loads(StateLayout(state_dir).server_info.read_text())
    except (OSError, ValueError):
        return None
    return info if _healthy(info["url"]) else None


def ensure_running(state_dir: Path, port: int = 0) -> str:
    """The URL of the server for `state_dir`, starting one if none answers."""
    info = running_server(state_dir)
    if info:
        return str(info["url"])
    layout = StateLayout(state_dir)
    try:  # a read-only state directory cannot even hold the server's log
        state_dir.mkdir(parents=True, exist_ok=True)
        log = layout.server_log.open("a")
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
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        info = running_server(state_dir)
        if info:
            return str(info["url"])
        if process.poll() is not None and process.returncode != 3:
            break
        time.sleep(0.1)
    tail = layout.server_log.read_text(errors="replace")[-2000:]
    raise ServerNotStarted(f"the local SageMaker server did not start; its log ends:\n{tail}")


def stop(state_dir: Path, timeout: float = 20.0) -> bool:
    """Stop the server (SIGTERM, then SIGKILL after `timeout`); False if none was running."""
    info = running_server(state_dir)
    if not info:
        return False
    pid = int(info["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
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
