"""A server that cannot start says why, from how its process ended and what it logged, rather
than leaving the user to find its log."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pipelines.local import daemon


def test_a_port_already_taken_is_named_with_the_exit_status_and_the_log(tmp_path: Path) -> None:
    """The port a user set (local_port in pipeline.toml) may be another program's."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(daemon.ServerNotStarted) as raised:
            daemon.ensure_running(tmp_path / "state", port=port)
    message = str(raised.value)
    assert message.startswith("the local SageMaker server did not start (exit status 2); its log ends:")
    assert "Address already in use" in message
    assert str(port) in message
    assert daemon.server_pid(tmp_path / "state") is None


def test_a_server_killed_as_it_starts_is_named_with_the_signal_and_its_empty_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As when the machine's out-of-memory killer picks it: it logs nothing at all."""
    killed = tmp_path / "killed-at-once"
    killed.write_text("#!/bin/sh\nkill -KILL $$\n")
    killed.chmod(0o755)
    monkeypatch.setattr(daemon.sys, "executable", str(killed))
    with pytest.raises(daemon.ServerNotStarted) as raised:
        daemon.ensure_running(tmp_path / "state")
    log = tmp_path / "state" / "server.log"
    assert str(raised.value) == (
        f"the local SageMaker server did not start (killed by SIGKILL); its log ({log}) is empty"
    )
