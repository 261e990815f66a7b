"""DeleteModelPackage and DeleteModelPackageGroup: a version goes and the others keep their numbers,
a number is never given twice, a group still holding versions is refused, and Describe and List
agree with every deletion."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .shapes_support import send
from .world import IMAGE, MODEL_DATA, World, local_sagemaker


@pytest.fixture
def empty(tmp_path: Path) -> Iterator[World]:
    made = World(local_sagemaker(tmp_path / "state"))
    yield made
    made.backend.shutdown()


def refused(world: World, operation: str, **request: Any) -> tuple[str, str]:
    reply = send(world.dispatcher, "SageMaker", operation, request)
    assert reply.status == 400, reply.body
    answer = json.loads(reply.body)
    return answer["__type"], answer["message"]


def versions(world: World, group: str) -> list[int]:
    listed = world.sm("ListModelPackages", ModelPackageGroupName=group)["ModelPackageSummaryList"]
    return [package["ModelPackageVersion"] for package in listed]


def test_a_deleted_version_is_gone_and_the_others_keep_their_numbers(empty: World) -> None:
    empty.sm("CreateModelPackageGroup", ModelPackageGroupName="Group")
    first, second, third = (empty.package("Group") for _ in range(3))
    empty.sm("AddTags", ResourceArn=second, Tags=[{"Key": "k", "Value": "v"}])
    assert empty.sm("DeleteModelPackage", ModelPackageName=second) == {}
    assert versions(empty, "Group") == [1, 3]
    assert refused(empty, "DescribeModelPackage", ModelPackageName=second) == (
        "ValidationException", f"ModelPackage {second} does not exist.")
    assert refused(empty, "ListTags", ResourceArn=second)[0] == "ResourceNotFound"
    assert empty.sm("DescribeModelPackage", ModelPackageName=third)["ModelPackageVersion"] == 3
    empty.sm("DeleteModelPackage", ModelPackageName="group/1")  # <group>/<version> names one too, any case
    assert versions(empty, "Group") == [3]
    assert refused(empty, "DescribeModelPackage", ModelPackageName=first)[0] == "ValidationException"


def test_a_new_version_never_takes_a_deleted_versions_number(empty: World) -> None:
    empty.sm("CreateModelPackageGroup", ModelPackageGroupName="g")
    empty.package("g")
    latest = empty.package("g")
    empty.sm("DeleteModelPackage", ModelPackageName=latest)
    assert empty.package("g").endswith("/g/3")
    assert versions(empty, "g") == [1, 3]


def test_a_missing_or_unversioned_package_cannot_be_deleted(empty: World) -> None:
    empty.sm("CreateModelPackageGroup", ModelPackageGroupName="g")
    kept = empty.package("g")
    missing = kept.replace("/g/1", "/g/9")
    assert refused(empty, "DeleteModelPackage", ModelPackageName=missing) == (
        "ValidationException", f"ModelPackage {missing} does not exist.")
    assert refused(empty, "DeleteModelPackage", ModelPackageName="unversioned") == (
        "ValidationException", "ModelPackage unversioned does not exist.")
    assert refused(empty, "DeleteModelPackage", ModelPackageName="nogroup/1")[0] == "ValidationException"
    assert versions(empty, "g") == [1]


def test_a_group_that_holds_versions_is_refused_until_they_are_deleted(empty: World) -> None:
    arn = empty.sm("CreateModelPackageGroup", ModelPackageGroupName="Held")["ModelPackageGroupArn"]
    first, second = empty.package("Held"), empty.package("Held")
    code, message = refused(empty, "DeleteModelPackageGroup", ModelPackageGroupName="Held")
    assert code == "ConflictException" and "1, 2" in message
    empty.sm("DeleteModelPackage", ModelPackageName=first)
    empty.sm("DeleteModelPackage", ModelPackageName=second)
    assert empty.sm("DeleteModelPackageGroup", ModelPackageGroupName=arn) == {}  # by ARN too
    assert refused(empty, "DescribeModelPackageGroup", ModelPackageGroupName="Held")[0] == (
        "ValidationException")
    assert empty.sm("ListModelPackageGroups")["ModelPackageGroupSummaryList"] == []
    assert refused(empty, "ListTags", ResourceArn=arn)[0] == "ResourceNotFound"
    assert refused(empty, "DeleteModelPackageGroup", ModelPackageGroupName="Held") == (
        "ValidationException", "ModelPackageGroup Held does not exist.")


def test_a_group_created_again_under_its_name_numbers_from_one(empty: World) -> None:
    empty.sm("CreateModelPackageGroup", ModelPackageGroupName="again")
    empty.sm("DeleteModelPackage", ModelPackageName=empty.package("again"))
    empty.sm("DeleteModelPackageGroup", ModelPackageGroupName="again")
    empty.sm("CreateModelPackageGroup", ModelPackageGroupName="again")
    assert empty.package("again").endswith("/again/1")


class WatchedLock:
    """The service lock, counting each time it is let go entirely while `watching`."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.depth = 0
        self.watching = False
        self.let_go = 0

    def __enter__(self) -> WatchedLock:
        self._lock.acquire()
        self.depth += 1
        return self

    def __exit__(self, *_: object) -> None:
        self.depth -= 1
        if self.depth == 0 and self.watching:
            self.let_go += 1
        self._lock.release()


def test_registering_creates_its_group_and_first_version_in_one_locked_step(
    empty: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RegisterModel holds the service lock from making its group to storing the version, so a
    DeleteModelPackageGroup cannot remove the new, still empty group in between."""
    registry = empty.backend.registry
    lock = WatchedLock()
    monkeypatch.setattr(empty.backend.context, "lock", lock)
    create_group, add_package = registry.create_model_package_group, registry.database.add_package

    def create_then_watch(request: dict[str, Any]) -> dict[str, Any]:
        made = create_group(request)
        lock.watching = True
        return made

    def stop_watching_then_add(*args: Any) -> dict[str, Any]:
        lock.watching = False
        return add_package(*args)

    monkeypatch.setattr(registry, "create_model_package_group", create_then_watch)
    monkeypatch.setattr(registry.database, "add_package", stop_watching_then_add)
    specification = {"Containers": [{"Image": IMAGE, "ModelDataUrl": MODEL_DATA}]}
    arn = registry.register_model_package(
        {"ModelPackageGroupName": "fresh", "InferenceSpecification": specification}
    )

    assert arn.endswith("/fresh/1")
    assert lock.let_go == 0
    assert versions(empty, "fresh") == [1]
