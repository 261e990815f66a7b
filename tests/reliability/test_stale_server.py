"""A server started from other code than the checkout in front of the user (a `git pull` or a
branch switch since it started) is named as such, instead of silently answering with old code."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.local import daemon
from pipelines.local.system import source

from .support import reap


def test_the_source_digest_changes_with_any_module_of_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "local" / "api").mkdir(parents=True)
    (tmp_path / "__init__.py").write_text("")
    module = tmp_path / "local" / "api" / "server.py"
    module.write_text("ANSWER = 1\n")
    monkeypatch.setattr(source, "PACKAGE", tmp_path)

    def digest() -> str:
        source.source_digest.cache_clear()
        return source.source_digest()

    before = digest()
    assert digest() == before
    module.write_text("ANSWER = 2\n")
    assert digest() != before
    source.source_digest.cache_clear()


def test_a_server_from_other_code_is_used_with_a_warning_that_says_how_to_restart_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    url = daemon.ensure_running(state)
    info = daemon.running_server(state)
    assert info is not None
    try:
        assert info["source"] == source.source_digest()
        assert daemon.ensure_running(state) == url
        assert capsys.readouterr().err == ""

        monkeypatch.setattr(daemon, "source_digest", lambda: "0123456789abcdef")  # the checkout moved on
        assert daemon.ensure_running(state) == url  # still used: it may be serving endpoints
        warning = capsys.readouterr().err
        assert f"(pid {info['pid']}) was started from other code than this checkout's" in warning
        assert "python -m pipelines local down" in warning
    finally:
        daemon.stop(state, timeout=10)
        reap(int(info["pid"]))
