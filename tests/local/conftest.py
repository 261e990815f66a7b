"""Fixtures the local server's tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from buckets import with_buckets

from pipelines.local.api.protocol import Dispatcher
from pipelines.local.layout import StateLayout
from pipelines.local.service.backend import LocalSageMaker
from pipelines.local.storage.objects import ObjectStore
from pipelines.local.system.isolation import isolation_unavailable

from . import inprocess
from .marks import Marks


@pytest.fixture
def marks() -> Iterator[Marks]:
    """Where handlers leave their marks for the test (marks.py)."""
    with Marks() as made:
        yield made


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LocalSageMaker]:
    """The service on a state of its own, with one bucket, `bucket`."""
    made = LocalSageMaker(tmp_path / "state", "us-east-1", "http://127.0.0.1:1")
    with_buckets(made.context.store, "bucket")
    yield made
    made.shutdown()


@pytest.fixture
def s3(service: LocalSageMaker) -> Any:
    """boto3's S3 client, in-process, answered by `service` with its answers checked."""
    return inprocess.client(Dispatcher(service, check_responses=True), "s3")


@pytest.fixture
def store(service: LocalSageMaker) -> ObjectStore:
    return service.context.store


@pytest.fixture
def checkout_in_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StateLayout:
    """A state whose folder is in the user's home folder (HOME, a folder of the test's own), as a
    checkout's `.local-sagemaker` is: for what confinement hides from jobs and model servers."""
    if isolation_unavailable():
        pytest.skip("this kernel does not let users create namespaces")
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    layout = StateLayout(home / "project" / ".local-sagemaker")
    layout.create_root()
    return layout
