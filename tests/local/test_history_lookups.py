"""What a run and a listing ask of a pipeline's history (storage/database.py): the step cache's
source, each pipeline's last run, the executions still running. A history grows by every run, so
each is answered from an index rather than by reading every execution and step."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.local.storage.database import Database

PIPELINE = "arn:aws:sagemaker:us-east-1:000000000000:pipeline/p"
OTHER = "arn:aws:sagemaker:us-east-1:000000000000:pipeline/other"


@pytest.fixture
def database(tmp_path: Path) -> Database:
    return Database(tmp_path / "state.db")


def run(database: Database, pipeline: str, number: int, status: str = "Succeeded", **steps: dict) -> str:
    """An execution created at second `number`, with `steps` (name: what its body holds)."""
    arn = f"{pipeline}/execution/e{number:04d}"
    database.save_execution({"PipelineExecutionArn": arn, "PipelineArn": pipeline,
                             "CreationTime": 1000.0 + number, "PipelineExecutionStatus": status})
    for name, body in steps.items():
        database.save_step(arn, {"StepName": name, "StepStatus": "Succeeded", "EndTime": 1000.5 + number,
                                 **body})
    return arn


def test_the_cache_source_is_the_latest_success_of_that_step_with_that_key(database: Database) -> None:
    hit = {"_CacheKey": "k1"}
    run(database, PIPELINE, 1, Train=hit)
    latest = run(database, PIPELINE, 2, Train=hit, Evaluate=hit)
    run(database, PIPELINE, 3, Train={**hit, "StepStatus": "Failed"})  # failed: no source
    run(database, PIPELINE, 4, Train={"_CacheKey": "k2"})  # another key
    run(database, OTHER, 5, Train=hit)  # another pipeline

    found = database.latest_cached_step(PIPELINE, "Train", "k1", None)

    assert found is not None and found[0] == latest and found[1]["EndTime"] == 1002.5
    assert database.latest_cached_step(PIPELINE, "Train", "k1", 1002.0) == found
    assert database.latest_cached_step(PIPELINE, "Train", "k1", 1003.0) is None  # all expired
    assert database.latest_cached_step(PIPELINE, "Preprocess", "k1", None) is None


def test_a_cache_lookup_reads_the_steps_with_its_key_through_an_index(database: Database) -> None:
    plan = database._db.execute(
        "EXPLAIN QUERY PLAN SELECT execution_arn FROM steps WHERE json_extract(body, '$._CacheKey') = ?",
        ("k",),
    ).fetchall()
    assert any("steps_by_cache_key" in str(row) for row in plan), plan


def test_each_pipelines_last_run_and_its_running_executions(database: Database) -> None:
    run(database, PIPELINE, 1)
    running = run(database, PIPELINE, 7, status="Executing")
    stopping = run(database, PIPELINE, 3, status="Stopping")
    run(database, OTHER, 2, status="Failed")

    assert database.last_execution_times() == {PIPELINE: 1007.0, OTHER: 1002.0}
    active = database.active_executions(PIPELINE, ("Executing", "Stopping"))
    assert [e["PipelineExecutionArn"] for e in active] == [stopping, running]
    assert database.active_executions(OTHER, ("Executing", "Stopping")) == []
