"""Fixtures for the infrastructure tests: the parsed template, infra/deploy.py, a fake AWS."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from infra_helpers import INFRA, REGION, Stack, load_template

GITHUB_REPOSITORY = "octo/sentiment"


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="session")
def stack(template: dict[str, Any]) -> Stack:
    """The stack as `make infra-deploy` creates it for a GitHub repository, with defaults."""
    return Stack(template, GitHubRepository=GITHUB_REPOSITORY)


@pytest.fixture(scope="session")
def deploy_module() -> ModuleType:
    """infra/deploy.py, which runs as a script and so is loaded from its path."""
    spec = importlib.util.spec_from_file_location("infra_deploy", INFRA / "deploy.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No real credentials, profile, settings file or PIPELINE_* variable can leak in."""
    for name in list(__import__("os").environ):
        if name.startswith(("AWS_", "PIPELINE_")):
            monkeypatch.delenv(name)
    missing = tmp_path / "absent"
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(missing))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(missing))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("PIPELINE_CONFIG", "")
    monkeypatch.setenv("PIPELINE_REGION", REGION)
    return tmp_path


@pytest.fixture
def fake_aws(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's in-process AWS with fake credentials."""
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield
