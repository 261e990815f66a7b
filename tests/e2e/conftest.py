"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import wait_until

from pipelines.local import daemon
from pipelines.local.jobs.image_python import environment_for
from pipelines.local.layout import StateLayout


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A state directory of the module's own, with a server running on it and done with what it
    does as it starts (making the image's environment on a thread), so that what a test sees
    change in the state is the test's doing."""
    state_dir = tmp_path_factory.mktemp("server") / "state"
    daemon.ensure_running(state_dir)
    image = environment_for(StateLayout(state_dir).image_environments)
    wait_until(image.folder.is_dir, what="the server to make the image's environment")
    try:
        yield state_dir
    finally:
        daemon.stop(state_dir)
