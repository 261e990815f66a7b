"""Archives that would fill the disk: a model.tar.gz of about 1 MB that unpacks to 1 GiB, one with
more members than allowed, one larger than the free space. Each is refused with a reason before a
byte is written; a job fails, a new endpoint goes Failed, an update keeps the old version serving,
and the server restarts afterwards with nothing to clean up.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from buckets import with_buckets
from tarballs import tar_gz
from waiting import wait_until

from pipelines.local.jobs.training import run_training_job
from pipelines.local.storage import archives
from pipelines.local.storage.archives import MAX_MEMBERS, UnsafeArchive, extract_tar, read_members
from pipelines.local.storage.objects import ObjectStore

from .machine import fill, tar_bomb, tmpfs
from .support import LOCAL_IMAGE, Local, kill_leftovers

GIB = 1 << 30
STUB_INFERENCE = (Path(__file__).parents[1] / "local" / "data" / "stub_inference.py").read_bytes()
BUCKET = "s3://reliability-bombs"


def files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if not path.is_dir()) if folder.exists() else []


def test_a_bomb_is_refused_from_its_headers_before_anything_is_written(tmp_path: Path) -> None:
    bomb = tar_bomb(tmp_path / "model.tar.gz", GIB)
    assert bomb.stat().st_size < 2_000_000
    with pytest.raises(UnsafeArchive, match=r"model\.tar\.gz unpacks to more than \d+ bytes, the limit"):
        extract_tar(bomb, tmp_path / "out" / "model")
    assert not (tmp_path / "out").exists() or files_under(tmp_path / "out") == []


def test_too_many_members_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "many.tar.gz"
    archive.write_bytes(tar_gz({f"f{i}": b"" for i in range(MAX_MEMBERS + 1)}))
    with pytest.raises(UnsafeArchive, match=f"more than {MAX_MEMBERS} files and folders"):
        extract_tar(archive, tmp_path / "out" / "model")
    assert files_under(tmp_path / "out") == []


def test_reading_one_member_is_held_to_the_same_limits_and_reports_damage(tmp_path: Path) -> None:
    archive = tmp_path / "many.tar.gz"
    many = {f"f{i}": b"" for i in range(MAX_MEMBERS)}
    archive.write_bytes(tar_gz({"requirements.txt": b"numpy\n", **many}))
    with pytest.raises(UnsafeArchive, match=f"more than {MAX_MEMBERS} files and folders"):
        read_members(archive, ("requirements.txt",))
    with pytest.raises(UnsafeArchive, match=r"unpacks to more than \d+ bytes, the limit"):
        read_members(tar_bomb(tmp_path / "bomb.tar.gz", GIB), ("requirements.txt",))
    whole = tar_gz({"big.bin": bytes(range(256)) * 4096, "requirements.txt": b"numpy\n"})
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UnsafeArchive, match=r"cannot read truncated\.tar\.gz as a tar\.gz"):
        read_members(truncated, ("requirements.txt",))
    (tmp_path / "whole.tar.gz").write_bytes(whole)
    found = read_members(tmp_path / "whole.tar.gz", ("requirements.txt", "setup.py"))
    assert found["requirements.txt"] == b"numpy\n"
    assert "setup.py" not in found


def test_an_archive_larger_than_the_free_space_is_refused(tmp_path: Path) -> None:
    archive = tar_bomb(tmp_path / "model.tar.gz", 16 << 20)
    with tmpfs(tmp_path / "disk", "8m") as disk:
        with pytest.raises(UnsafeArchive, match=r"No space left on device: model\.tar\.gz needs"):
            extract_tar(archive, disk / "model")
        assert files_under(disk) == []


def test_a_disk_that_fills_during_unpacking_leaves_no_partial_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As if another process took the space between the check and the writes."""
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(tar_gz({"a.bin": bytes(3 << 20), "b.bin": bytes(3 << 20)}))
    with tmpfs(tmp_path / "disk", "8m") as disk:
        filler = fill(disk)
        filler.write_bytes(bytes(3 << 20))  # leaves room for a.bin, not for b.bin
        monkeypatch.setattr(archives, "_check_space", lambda *args: None)
        with pytest.raises(UnsafeArchive, match="No space left on device"):
            extract_tar(archive, disk / "model")
        assert files_under(disk) == [filler]


def test_a_training_job_with_a_bomb_as_its_source_fails_with_the_reason(tmp_path: Path) -> None:
    store = with_buckets(ObjectStore(tmp_path / "store"), "reliability-bombs")
    source = f"{BUCKET}/code/sourcedir.tar.gz"
    store.put_file(source, tar_bomb(tmp_path / "sourcedir.tar.gz", GIB, member="train.py"))
    store.put_bytes(f"{BUCKET}/train/train.csv", b"review_text,sentiment\n")
    request = {
        "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": LOCAL_IMAGE},
        "HyperParameters": {"sagemaker_program": "train.py", "sagemaker_submit_directory": source},
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"{BUCKET}/train", "S3DataDistributionType": "FullyReplicated",
        }}}],
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "RoleArn": "arn:aws:iam::123456789012:role/sm",
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        "OutputDataConfig": {"S3OutputPath": f"{BUCKET}/models"},
    }
    outcome = run_training_job("bomb-1", request, store, tmp_path / "jobs", io.StringIO())
    assert outcome.status == "Failed"
    assert outcome.failure_reason.startswith("ClientError: sourcedir.tar.gz unpacks to more than")
    assert source in outcome.failure_reason
    assert not [path for path in files_under(tmp_path / "jobs") if path.stat().st_size > 1 << 20]
    assert not list((tmp_path / "jobs").rglob("train.py"))


# --- through a local SageMaker server ------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Local]:
    local = Local(tmp_path / "state")
    try:
        yield local
    finally:
        local.stop()
        kill_leftovers(str(local.state_dir))


def put_model(local: Local, name: str, artifact: bytes) -> str:
    """A model and a one-variant endpoint config named `name` serving `artifact`."""
    uri = f"{BUCKET}/{name}/model.tar.gz"
    local.client("s3").create_bucket(Bucket=BUCKET.removeprefix("s3://"))  # us-east-1: again is 200
    local.store.put_bytes(uri, artifact)
    sm = local.client("sagemaker")
    sm.create_model(ModelName=name, ExecutionRoleArn="arn:aws:iam::123456789012:role/sm",
                    PrimaryContainer={"Image": LOCAL_IMAGE, "ModelDataUrl": uri})
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 1}])
    return name


def settled(local: Local, endpoint: str) -> dict[str, Any] | None:
    described = dict(local.client("sagemaker").describe_endpoint(EndpointName=endpoint))
    return described if described["EndpointStatus"] in ("InService", "Failed") else None


def invoke(local: Local, endpoint: str) -> Any:
    path = f"/endpoints/{endpoint}/invocations"
    response = local.post(path, b'"hello"', {"Content-Type": "application/json"})
    assert response.status == 200, response.body[:300]
    return response.body


@pytest.mark.e2e
def test_endpoints_refuse_a_bomb_and_the_server_restarts_cleanly(server: Local, tmp_path: Path) -> None:
    sm = server.client("sagemaker")
    good = put_model(server, "good", tar_gz({"model.txt": b"v1", "code/inference.py": STUB_INFERENCE}))
    bomb = put_model(server, "bomb", tar_bomb(tmp_path / "bomb.tar.gz", GIB).read_bytes())

    sm.create_endpoint(EndpointName="fresh", EndpointConfigName=bomb)
    sm.create_endpoint(EndpointName="serving", EndpointConfigName=good)
    fresh = wait_until(lambda: settled(server, "fresh"), 60, "the bomb endpoint to settle")
    assert fresh["EndpointStatus"] == "Failed"
    assert "model.tar.gz unpacks to more than" in fresh["FailureReason"], fresh["FailureReason"]
    wait_until(lambda: settled(server, "serving"), 90, "the good endpoint to be InService")
    before = invoke(server, "serving")

    sm.update_endpoint(EndpointName="serving", EndpointConfigName=bomb)
    updated = wait_until(lambda: settled(server, "serving"), 60, "the bomb update to settle")
    assert updated["EndpointStatus"] == "InService" and updated["EndpointConfigName"] == good
    assert updated["FailureReason"].startswith("Update failed: ")
    assert "unpacks to more than" in updated["FailureReason"] and good in updated["FailureReason"]
    assert invoke(server, "serving") == before
    endpoints = server.state_dir / "endpoints"
    left = [path.relative_to(endpoints) for path in files_under(endpoints)]
    assert [path for path in left if path.parts[:2] != ("serving", good)] == []

    server.stop()  # and start again, with nothing removed by hand
    assert settled(server, "serving")["EndpointStatus"] == "InService"  # type: ignore[index]
    assert invoke(server, "serving") == before
    again = settled(server, "fresh")
    assert again is not None and again["FailureReason"] == fresh["FailureReason"]
