"""Fixtures of the reliability tests.

`local`: one local SageMaker for the tests that need a deployed endpoint. It is started on first
use, in its own temporary state directory, with the repository's data run once (v1 registered and
serving), and stopped at the end of the session. Tests leave it serving: those that kill or restart
it check, and restore, that state themselves.

Hypothesis keeps its caches under pytest's temporary directory, not in the repository.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import configuration

from .support import Local, deployed_local, kill_leftovers


@pytest.fixture(scope="session", autouse=True)
def hypothesis_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    configuration.set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    try:
        yield
    finally:
        configuration.set_hypothesis_home_dir(None)


@pytest.fixture(scope="session")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    state_dir = tmp_path_factory.mktemp("reliability-sagemaker")
    env = Local(state_dir)
    try:
        yield deployed_local(state_dir)
    finally:
        env.stop()
        kill_leftovers(str(state_dir))
