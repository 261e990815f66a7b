"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.local import daemon


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A state directory of the module's own, with a server running on it."""
    state_dir = tmp_path_factory.mktemp("server") / "state"
    daemon.ensure_running(state_dir)
    try:
        yield state_dir
    finally:
        daemon.stop(state_dir)
