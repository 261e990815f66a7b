"""A full disk: the call that hits it gets a clear error naming the cause, nothing is torn, and
everything works again once space is freed. The state directory is a small tmpfs (needs root).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from buckets import with_buckets

from pipelines.local.hosting.capture import CaptureWriter
from pipelines.local.storage.objects import ObjectStore

from .machine import fill, tmpfs
from .support import Local, kill_leftovers

RECORD_BYTES = 40_000  # about ten pages of tmpfs per record
ROOM_BYTES = 100_000  # what the disk has left: two records fit, the third is cut short
ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"


def definition(message: str) -> str:
    return json.dumps({
        "Version": "2020-12-01",
        "Parameters": [],
        "Steps": [{"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": message}}],
    })


def test_capture_keeps_whole_records_only_when_the_disk_fills(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "4m") as disk:
        store = with_buckets(ObjectStore(disk / "store"), "capture")
        writer = CaptureWriter(store, "s3://capture/data", "ep", "AllTraffic", 100, True, True,
                               rng=random.Random(0))
        when = datetime.now(UTC)
        assert writer.record(b'"first"', "application/json", b"{}", "application/json", "e0", when)
        filler = fill(disk)
        os.truncate(filler, filler.stat().st_size - ROOM_BYTES)
        written, refused = 1, 0
        for number in range(1, 8):
            body = json.dumps({"review_text": "x" * RECORD_BYTES, "n": number}).encode()
            try:
                writer.record(body, "application/json", b"{}", "application/json", f"e{number}", when)
                written += 1
            except OSError as error:
                assert "No space left on device" in str(error)
                refused += 1
        assert refused > 0 and written > 1, (written, refused)
        filler.unlink()
        assert writer.record(b'"after"', "application/json", b"{}", "application/json", "e9", when)
        writer.close()
        [capture] = list((disk / "store").rglob("*.jsonl"))
        data = capture.read_bytes()
    assert data.endswith(b"\n")
    records = [json.loads(line) for line in data.decode().splitlines()]
    assert [r["eventMetadata"]["eventId"] for r in records] == [f"e{n}" for n in range(written)] + ["e9"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Local]:
    with tmpfs(tmp_path / "state", "48m") as state:
        local = Local(state)
        try:
            yield local
        finally:
            local.stop()
            kill_leftovers(str(state))


@pytest.mark.e2e
def test_a_call_that_hits_a_full_disk_gets_a_clear_error_and_works_once_space_is_freed(
    server: Local,
) -> None:
    sm = server.client("sagemaker")
    sm.create_pipeline(PipelineName="before", PipelineDefinition=definition("small"), RoleArn=ROLE)
    filler = fill(server.state_dir)
    big = definition("x" * 300_000)  # more than what the database's log has room for

    with pytest.raises(ClientError) as raised:
        sm.create_pipeline(PipelineName="during", PipelineDefinition=big, RoleArn=ROLE)
    error = raised.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert error["Error"]["Code"] == "InternalFailure"
    assert "No space left on device" in error["Error"]["Message"]
    assert [p["PipelineName"] for p in sm.list_pipelines()["PipelineSummaries"]] == ["before"]
    assert sm.describe_pipeline(PipelineName="before")["PipelineDefinition"] == definition("small")

    filler.unlink()
    sm.create_pipeline(PipelineName="during", PipelineDefinition=big, RoleArn=ROLE)
    names = {p["PipelineName"] for p in sm.list_pipelines()["PipelineSummaries"]}
    assert names == {"before", "during"}
    assert sm.describe_pipeline(PipelineName="during")["PipelineDefinition"] == big
