"""The local Lambda's Python runtimes hold what Lambda's do: the pinned boto3, nothing of the project's."""

from __future__ import annotations

import json
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest

from pipelines.local.lambdas import python_runtimes


def pinned() -> dict[str, str]:
    lines = python_runtimes.RUNTIME_REQUIREMENTS.read_text().splitlines()
    pins = [line.split("==") for line in lines if line and not line.startswith("#")]
    return {name.lower(): pin for name, pin in pins}


def test_the_runtime_pins_are_the_versions_the_project_is_tested_with() -> None:
    assert "boto3" in pinned()
    assert {name: version(name) for name in pinned()} == pinned()


def test_the_built_runtime_holds_exactly_the_pinned_packages(tmp_path: Path) -> None:
    python = python_runtimes.interpreter("python3.12")
    listing = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m, json, sys; print(json.dumps("
         "[sys.version_info[:2], {d.metadata['Name'].lower(): d.version for d in m.distributions()}]))"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )
    interpreter_version, installed = json.loads(listing.stdout)
    installed.pop("pip", None)  # the venv's own installer
    assert (interpreter_version, installed) == ([3, 12], pinned())


def test_a_runtime_is_built_only_from_a_python_of_its_own_version() -> None:
    found = python_runtimes.find_python("3.11")
    assert found is not None
    probe = subprocess.run([str(found), "-c", "import sys; print(sys.version_info[:2])"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "(3, 11)"
    with pytest.raises(python_runtimes.UnavailableRuntime, match=r"no Python 3\.99 on this machine"):
        python_runtimes.build("python3.99")
    assert not (python_runtimes.RUNTIMES_DIR / "python3.99").exists()


def test_a_pyenv_this_user_cannot_read_is_passed_over(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def unreadable(self: Path, pattern: str) -> list[Path]:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "another-users-home" / ".pyenv"))
    monkeypatch.setattr(python_runtimes.shutil, "which", lambda name: None)
    monkeypatch.setattr(Path, "glob", unreadable)
    assert python_runtimes.find_python("3.12") is None
