"""`monitor run` refuses, before starting anything, an endpoint with no captured traffic: the
CheckDrift job would fail staging its capture input, on SageMaker as locally."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.aws import Clients, S3Storage
from pipelines.monitoring_run import NoCapture, run_monitor
from pipelines.settings import Settings


class NoPipelines:
    """A SageMaker client that must not be used."""

    def start_pipeline_execution(self, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("a monitoring run was started without captured traffic")


def test_no_captured_traffic_is_refused_before_a_run_starts(settings: Settings, s3: Any) -> None:
    """Another endpoint's capture whose name starts with this one's does not count."""
    key = settings.s3_uri("data-capture", f"{settings.endpoint_name}-canary", "AllTraffic", "x.jsonl")
    S3Storage(s3).put_bytes(key, b"{}\n")
    clients = Clients(settings)
    clients.sagemaker = NoPipelines()
    clients.storage = S3Storage(s3)
    with pytest.raises(NoCapture, match=rf"no traffic of endpoint {settings.endpoint_name} has been "
                                        r"captured yet \(nothing under s3://.*/data-capture/"):
        run_monitor(clients, {}, print)


def test_has_objects_looks_below_the_folder_only(settings: Settings, s3: Any) -> None:
    """The local S3's answer to the same calls: tests/local/test_s3.py."""
    storage = S3Storage(s3)
    folder = settings.s3_uri("data-capture", "ep")
    storage.put_bytes(settings.s3_uri("data-capture", "ep-canary", "AllTraffic", "a.jsonl"), b"{}")
    assert not storage.has_objects(folder) and not storage.has_objects(folder + "/")
    storage.put_bytes(settings.s3_uri("data-capture", "ep", "AllTraffic", "2026", "b.jsonl"), b"{}")
    assert storage.has_objects(folder) and storage.has_objects(folder + "/")


def test_a_bucket_that_does_not_exist_yet_holds_no_capture(s3: Any) -> None:
    """A local state before its first upload has no bucket: `monitor run` then says no traffic was
    captured, rather than failing on NoSuchBucket."""
    assert not S3Storage(s3).has_objects("s3://no-such-bucket/data-capture/ep")
