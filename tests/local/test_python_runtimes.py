"""The local Lambda's Python runtimes hold what Lambda's do: the pinned boto3, nothing of the project's."""

from __future__ import annotations

import json
import subprocess
from importlib.metadata import version
from pathlib import Path

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
