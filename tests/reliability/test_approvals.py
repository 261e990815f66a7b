"""Approving a version deploys it only through its own group's rule: with the approval rule exactly
as `upsert` publishes it, a version of another model package group reaches no function at all.

The service runs in this process; EventBridge hands an event to Lambda's asynchronous queue before
the approval call returns, so "nothing was delivered" is known then, with no waiting.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pipelines.local.service.backend import LocalSageMaker
from pipelines.publish import publish_approval_rule
from pipelines.settings import Settings, load_settings

OTHER_GROUP = "another-project"


class RecordingFunctions:
    """Lambda's asynchronous queue, recording what it accepts."""

    def __init__(self) -> None:
        self.invoked: list[tuple[str, Any]] = []

    def submit(self, name_or_arn: str, event: Any) -> str:
        self.invoked.append((name_or_arn, event))
        return str(uuid.uuid4())


class InProcessEvents:
    """The two EventBridge calls publish_approval_rule makes, answered by the in-process service."""

    def __init__(self, service: LocalSageMaker) -> None:
        self.service = service

    def _call(self, name: str, request: dict[str, Any]) -> Any:
        operation = self.service.operation("AWSEvents", name)
        assert operation is not None, name
        return operation(request)

    def put_rule(self, **request: Any) -> Any:
        return self._call("PutRule", request)

    def put_targets(self, **request: Any) -> Any:
        return self._call("PutTargets", request)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"target": "local"}, environ={}, config_file=tmp_path / "absent.toml")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LocalSageMaker]:
    backend = LocalSageMaker(tmp_path / "state", "us-east-1", "http://127.0.0.1:1")
    yield backend
    backend.shutdown()


def pending_version(service: LocalSageMaker, group: str) -> str:
    return service.registry.register_model_package({
        "ModelPackageGroupName": group,
        "ModelApprovalStatus": "PendingManualApproval",
        "InferenceSpecification": {"Containers": [{"Image": "sklearn", "ModelDataUrl": "s3://b/m.tar.gz"}]},
    })


def approve(service: LocalSageMaker, arn: str) -> None:
    operation = service.operation("SageMaker", "UpdateModelPackage")
    assert operation is not None
    operation({"ModelPackageArn": arn, "ModelApprovalStatus": "Approved"})


def test_approving_a_version_of_another_group_deploys_nothing(
    service: LocalSageMaker, settings: Settings
) -> None:
    functions = RecordingFunctions()
    service.events.deliveries.invocations = functions  # type: ignore[assignment]
    publish_approval_rule(SimpleNamespace(settings=settings, events=InProcessEvents(service)))  # type: ignore[arg-type]
    theirs = pending_version(service, OTHER_GROUP)
    ours = pending_version(service, settings.model_package_group)
    assert theirs.rsplit("/", 1)[-1] == ours.rsplit("/", 1)[-1] == "1"

    approve(service, theirs)
    assert functions.invoked == []

    approve(service, ours)
    [(target, event)] = functions.invoked
    assert target == settings.deploy_function_arn
    assert event["detail"]["ModelPackageArn"] == ours
    assert event["detail"]["ModelPackageGroupName"] == settings.model_package_group


def test_a_version_the_pipeline_registers_approved_is_not_deployed_again_by_the_rule(
    service: LocalSageMaker, settings: Settings
) -> None:
    """Locally a run registers its version Approved and its DeployEndpoint step deploys it; the
    creation event must not start a second, concurrent deploy of the same version."""
    functions = RecordingFunctions()
    service.events.deliveries.invocations = functions  # type: ignore[assignment]
    publish_approval_rule(SimpleNamespace(settings=settings, events=InProcessEvents(service)))  # type: ignore[arg-type]
    assert settings.approval_status == "Approved"
    service.registry.register_model_package({
        "ModelPackageGroupName": settings.model_package_group,
        "ModelApprovalStatus": settings.approval_status,
        "InferenceSpecification": {"Containers": [{"Image": "sklearn", "ModelDataUrl": "s3://b/m.tar.gz"}]},
    })
    assert functions.invoked == []
