"""Fixtures the local server's tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from buckets import with_buckets

from pipelines.local.api.protocol import Dispatcher
from pipelines.local.service.backend import LocalSageMaker
from pipelines.local.storage.objects import ObjectStore

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
