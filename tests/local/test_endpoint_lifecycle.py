"""Models, endpoint configs and endpoints through the API as SageMaker answers them: what each
status allows, what a refusal leaves behind, and what a restart brings back. Hosting is a stand-in
(world.InstantHosting and variations), so no model server starts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pipelines.local.service.backend import LocalSageMaker
from steps import deploy, integrity

from . import inprocess
from .world import BUCKET, IMAGE, ROLE, InstantHosting, World, local_sagemaker

HEALTH_CHECK_FAILED = "The model server did not answer /ping within 60 s."


class FirstDeploymentFails(InstantHosting):
    """The first deployment of each endpoint fails its health check; later ones serve at once."""

    def __init__(self) -> None:
        super().__init__()
        self.deployed: list[str] = []

    def deploy(self, endpoint_name: str, deployment_id: str, *rest: Any) -> None:
        on_status = rest[-1]
        first = endpoint_name not in self.deployed
        self.deployed.append(endpoint_name)
        if first:
            on_status(endpoint_name, "Failed", HEALTH_CHECK_FAILED, None)
        else:
            on_status(endpoint_name, "InService", "", deployment_id)


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalSageMaker]:
    made = local_sagemaker(tmp_path / "state")
    yield made
    made.shutdown()


@pytest.fixture
def world(backend: LocalSageMaker) -> World:
    return World(backend)


def sagemaker(world: World) -> Any:
    return inprocess.client(world.dispatcher, "sagemaker")


def refusal(error: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    details = error.value.response["Error"]
    return details["Code"], details["Message"]


def test_a_failed_endpoint_cannot_be_updated(world: World, backend: LocalSageMaker) -> None:
    backend.serving.processes = FirstDeploymentFails()  # type: ignore[assignment]
    model = world.model()
    endpoint = world.endpoint(world.endpoint_config(model))
    sm = sagemaker(world)
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert (described["EndpointStatus"], described["FailureReason"]) == ("Failed", HEALTH_CHECK_FAILED)

    with pytest.raises(ClientError) as error:
        sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=world.endpoint_config(model))
    assert refusal(error) == (
        "ValidationException", f'Cannot update failed endpoint "{described["EndpointArn"]}".'
    )
    assert sm.describe_endpoint(EndpointName=endpoint) == described


def test_the_deploy_handler_replaces_a_failed_endpoint(
    world: World, backend: LocalSageMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend.serving.processes = FirstDeploymentFails()  # type: ignore[assignment]
    sm = sagemaker(world)
    monkeypatch.setattr(deploy, "client", lambda name: sm)
    monkeypatch.setattr(deploy, "local_sagemaker", lambda: True)
    world.sm("CreateModelPackageGroup", ModelPackageGroupName="g")
    package = world.sm(
        "CreateModelPackage", ModelPackageGroupName="g", ModelApprovalStatus="Approved",
        CustomerMetadataProperties={integrity.DIGEST_KEY: "0" * 64},
        InferenceSpecification={
            "Containers": [{"Image": IMAGE, "ModelDataUrl": f"{BUCKET}/model.tar.gz"}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )["ModelPackageArn"]
    request = {
        "model_package_arn": package, "endpoint_name": "served", "role_arn": ROLE,
        "instance_type": "ml.m5.large", "instance_count": 1, "capture_destination": f"{BUCKET}/capture",
    }

    first = deploy.handler(request, None)
    assert first["action"] == "created"
    assert sm.describe_endpoint(EndpointName="served")["EndpointStatus"] == "Failed"
    again = deploy.handler(request, None)
    assert again["action"] == "created", again
    assert again["reason"].startswith(f"endpoint served was Failed ({HEALTH_CHECK_FAILED}); deleted;")
    described = sm.describe_endpoint(EndpointName="served")
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == (
        "InService", again["endpoint_config_name"]
    )
