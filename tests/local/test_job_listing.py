"""ListProcessingJobs and ListTrainingJobs as SageMaker answers them: the jobs of pipeline
executions, each filter, the three sort orders and their defaults, pages, summaries that hold
exactly their shape's members, and ListTrainingJobs' StatusEquals applied to a page once cut."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.local.contract.models import service_model

from .world import ROLE, World, build_world, local_sagemaker

KINDS = ("ProcessingJob", "TrainingJob")


@pytest.fixture
def empty(tmp_path: Path) -> Iterator[World]:
    made = World(local_sagemaker(tmp_path / "state"))
    yield made
    made.backend.shutdown()


def listed(world: World, kind: str, **request: Any) -> list[str]:
    answer = world.sm(f"List{kind}s", **request)
    return [summary[f"{kind}Name"] for summary in answer[f"{kind}Summaries"]]


def three_jobs(world: World, kind: str) -> None:
    """b-first (Completed), a-second (Failed), c-third (InProgress): created at 10, 20, 30 and last
    modified at 15, 35, 25, so that no two orders agree."""
    world.job(kind, "b-first", CreationTime=10.0, LastModifiedTime=15.0)
    world.job(kind, "a-second", CreationTime=20.0, LastModifiedTime=35.0,
              **{f"{kind}Status": "Failed", "FailureReason": "it broke"})
    world.job(kind, "c-third", CreationTime=30.0, LastModifiedTime=25.0, **{f"{kind}Status": "InProgress"})


def test_the_jobs_of_a_pipeline_execution_are_listed(tmp_path: Path) -> None:
    world = build_world(tmp_path / "state")  # its pipeline p ran a processing and a training job
    try:
        for kind in KINDS:
            name = world.known[f"{kind}Name"]
            assert listed(world, kind, NameContains=name) == [name]
            summary = world.sm(f"List{kind}s", NameContains=name)[f"{kind}Summaries"][0]
            described = world.sm(f"Describe{kind}", **{f"{kind}Name": name})
            assert summary == {k: v for k, v in described.items() if k in summary}
            assert summary[f"{kind}Status"] == "Completed"
    finally:
        world.backend.shutdown()


@pytest.mark.parametrize("kind", KINDS)
def test_jobs_are_sorted_by_creation_time_oldest_first_by_default_or_by_name_or_status(
    empty: World, kind: str
) -> None:
    three_jobs(empty, kind)
    assert listed(empty, kind) == ["b-first", "a-second", "c-third"]
    assert listed(empty, kind, SortOrder="Descending") == ["c-third", "a-second", "b-first"]
    assert listed(empty, kind, SortBy="Name") == ["a-second", "b-first", "c-third"]
    assert listed(empty, kind, SortBy="Name", SortOrder="Descending") == ["c-third", "b-first", "a-second"]
    assert listed(empty, kind, SortBy="Status") == ["b-first", "a-second", "c-third"]  # Completed < ...


@pytest.mark.parametrize("kind", KINDS)
def test_each_filter_picks_its_jobs(empty: World, kind: str) -> None:
    three_jobs(empty, kind)
    empty.job(kind, "other", CreationTime=40.0, LastModifiedTime=45.0)
    assert listed(empty, kind, NameContains="IR") == ["b-first", "c-third"]  # any case
    assert listed(empty, kind, StatusEquals="Failed") == ["a-second"]
    assert listed(empty, kind, CreationTimeAfter=20) == ["c-third", "other"]  # strictly after
    assert listed(empty, kind, CreationTimeBefore=20) == ["b-first"]
    assert listed(empty, kind, LastModifiedTimeAfter=25) == ["a-second", "other"]
    assert listed(empty, kind, LastModifiedTimeBefore=25) == ["b-first"]
    assert listed(empty, kind, NameContains="first", CreationTimeBefore=40) == ["b-first"]


def test_no_local_training_job_has_a_warm_pool_or_a_training_plan(empty: World) -> None:
    three_jobs(empty, "TrainingJob")
    assert listed(empty, "TrainingJob", WarmPoolStatusEquals="Available") == []
    plan = "arn:aws:sagemaker:us-east-1:000000000000:training-plan/reserved"
    assert listed(empty, "TrainingJob", TrainingPlanArnEquals=plan) == []


@pytest.mark.parametrize("kind", KINDS)
def test_pages_cover_every_job_once_in_order(empty: World, kind: str) -> None:
    for i in range(7):
        empty.job(kind, f"job-{i}", CreationTime=float(i))
    seen: list[str] = []
    request: dict[str, Any] = {"MaxResults": 3, "SortOrder": "Descending"}
    pages = 0
    while True:
        answer = empty.sm(f"List{kind}s", **request)
        seen += [s[f"{kind}Name"] for s in answer[f"{kind}Summaries"]]
        pages += 1
        if "NextToken" not in answer:
            break
        request["NextToken"] = answer["NextToken"]
    assert pages == 3 and seen == [f"job-{i}" for i in reversed(range(7))]


def test_training_status_filters_the_page_once_cut_when_its_size_is_given(empty: World) -> None:
    """ListTrainingJobs' API reference: with StatusEquals and MaxResults, MaxResults jobs of any
    status are taken, then those of the status are returned."""
    three_jobs(empty, "TrainingJob")
    first = empty.sm("ListTrainingJobs", StatusEquals="InProgress", MaxResults=2)
    assert first["TrainingJobSummaries"] == [] and "NextToken" in first
    request = {"StatusEquals": "InProgress", "MaxResults": 2}
    second = empty.sm("ListTrainingJobs", **request, NextToken=first["NextToken"])
    assert [s["TrainingJobName"] for s in second["TrainingJobSummaries"]] == ["c-third"]
    assert listed(empty, "TrainingJob", StatusEquals="InProgress") == ["c-third"]  # no size: all of them
    processing = empty.job("ProcessingJob", "p", CreationTime=99.0, ProcessingJobStatus="InProgress")
    assert listed(empty, "ProcessingJob", StatusEquals="InProgress", MaxResults=1) == [processing]


@pytest.mark.parametrize("kind", KINDS)
def test_a_summary_holds_exactly_its_shapes_members_that_the_job_has(empty: World, kind: str) -> None:
    end = {"ProcessingJob": "ProcessingEndTime", "TrainingJob": "TrainingEndTime"}[kind]
    extra = {"SecondaryStatus": "Completed"} if kind == "TrainingJob" else {"ExitMessage": "bye"}
    empty.job(kind, "whole", CreationTime=1.0, LastModifiedTime=3.0, RoleArn=ROLE, **{end: 3.0}, **extra)
    summary = empty.sm(f"List{kind}s")[f"{kind}Summaries"][0]
    assert set(summary) == {f"{kind}Name", f"{kind}Arn", f"{kind}Status", "CreationTime", "LastModifiedTime",
                            end, *extra}
    assert set(summary) <= set(service_model("sagemaker").shape_for(f"{kind}Summary").members)


def test_a_training_summary_has_a_warm_pool_and_a_training_plan_only_when_the_job_has(empty: World) -> None:
    plan = "arn:aws:sagemaker:us-east-1:000000000000:training-plan/reserved"
    empty.job("TrainingJob", "pooled", CreationTime=1.0, WarmPoolStatus={"Status": "Available"},
              ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1,
                              "TrainingPlanArn": plan})
    empty.job("TrainingJob", "plain", CreationTime=2.0)
    pooled, plain = empty.sm("ListTrainingJobs")["TrainingJobSummaries"]
    assert pooled["WarmPoolStatus"] == {"Status": "Available"} and pooled["TrainingPlanArn"] == plan
    assert "WarmPoolStatus" not in plain and "TrainingPlanArn" not in plain
    assert listed(empty, "TrainingJob", WarmPoolStatusEquals="Available") == ["pooled"]
    assert listed(empty, "TrainingJob", TrainingPlanArnEquals=plan) == ["pooled"]
