"""Shared fixtures for the top-level tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.settings import Settings, load_settings


@pytest.fixture(scope="session")
def default_settings() -> Settings:
    """The defaults, whatever pipeline.toml or PIPELINE_* variables a developer has set."""
    return load_settings(environ={}, config_file=Path(__file__).with_name("no-such-pipeline.toml"))
