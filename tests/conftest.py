"""Shared fixtures for the top-level tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.settings import Settings, load_settings


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
