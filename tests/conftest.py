"""Shared fixtures for the top-level tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.settings import Settings, load_settings

# Every local SageMaker server the tests start checks each of its responses against the service
# model's output shape; a response that breaks it becomes a 500 that fails the test that got it.
os.environ["LOCAL_SAGEMAKER_CHECK_RESPONSES"] = "1"

pytest_plugins = ["moto_cloud"]  # the `settings` and `s3` fixtures of the SageMaker target's tests


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """The suite runs in random order (pytest-randomly); the seed replays a failing order."""
    seed = getattr(config.option, "randomly_seed", None)
    if isinstance(seed, int):
        terminalreporter.write_line(
            f"tests ran in random order; replay it with: make test PYTEST_ARGS=--randomly-seed={seed}"
        )


@pytest.fixture(scope="session")
def default_settings() -> Settings:
    """The defaults, whatever pipeline.toml or PIPELINE_* variables a developer has set."""
    return load_settings(environ={}, config_file=Path(__file__).with_name("no-such-pipeline.toml"))
