"""What CreateEndpointConfig keeps and what UpdateEndpoint carries over, through the API as
SageMaker answers them: described settings, retained variant properties and the last
deployment configuration. Hosting is a stand-in that records what each deployment was given."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pipelines.local.hosting import limits
from pipelines.local.hosting.capacity import ENDPOINT_INSTANCE_LIMIT
from pipelines.local.hosting.endpoints import CaptureSpec
from pipelines.local.hosting.model_process import VariantSpec
from pipelines.local.jobs.image_python import image_digest
from pipelines.local.service.backend import LocalSageMaker

from . import inprocess
from .world import BUCKET, IMAGE, ROLE, InstantHosting, World, local_sagemaker

KEY = "arn:aws:kms:us-east-1:000000000000:key/local"
ALL_AT_ONCE = {"BlueGreenUpdatePolicy": {
    "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
    "TerminationWaitInSeconds": 0}}


class RecordingHosting(InstantHosting):
    """Serves every deployment at once and remembers what each was given."""

    def __init__(self) -> None:
        super().__init__()
        self.deployed: list[tuple[list[VariantSpec], CaptureSpec | None]] = []

    def deploy(
        self, endpoint_name: str, deployment_id: str, variants: list[VariantSpec],
        capture: CaptureSpec | None, on_status: Any,
    ) -> None:
        self.deployed.append((variants, capture))
        super().deploy(endpoint_name, deployment_id, variants, capture, on_status)


@pytest.fixture
def hosting() -> RecordingHosting:
    return RecordingHosting()


@pytest.fixture
def world(tmp_path: Path, hosting: RecordingHosting) -> Iterator[World]:
    backend: LocalSageMaker = local_sagemaker(tmp_path / "state")
    backend.serving.processes = hosting  # type: ignore[assignment]
    yield World(backend)
    backend.shutdown()


def sagemaker(world: World) -> Any:
    return inprocess.client(world.dispatcher, "sagemaker")


def capture(destination: str, percentage: int) -> dict[str, Any]:
    return {"EnableCapture": True, "InitialSamplingPercentage": percentage,
            "DestinationS3Uri": f"{BUCKET}/{destination}", "CaptureOptions": [{"CaptureMode": "Input"}]}


def config(world: World, model: str, weight: float, count: int, captured: dict[str, Any]) -> str:
    name = world.fresh("config")
    sagemaker(world).create_endpoint_config(
        EndpointConfigName=name, DataCaptureConfig=captured,
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": model, "InstanceType": "ml.m5.large",
                             "InitialInstanceCount": count, "InitialVariantWeight": weight}],
    )
    return name


def serving(described: dict[str, Any]) -> tuple[str, float, int, str, int]:
    (variant,) = described["ProductionVariants"]
    assert variant["DesiredWeight"] == variant["CurrentWeight"]  # no weight change is under way
    capture_summary = described["DataCaptureConfig"]
    return (described["EndpointConfigName"], variant["CurrentWeight"], variant["DesiredInstanceCount"],
            capture_summary["DestinationS3Uri"], capture_summary["CurrentSamplingPercentage"])


def test_an_endpoint_config_describes_its_key_role_and_network_isolation(
    world: World, hosting: RecordingHosting, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "isolation_unavailable", lambda: "")  # a machine that can isolate
    sm = sagemaker(world)
    name = world.endpoint_config(
        world.model(), KmsKeyId=KEY, ExecutionRoleArn=ROLE, EnableNetworkIsolation=True
    )
    described = sm.describe_endpoint_config(EndpointConfigName=name)
    assert (described["KmsKeyId"], described["ExecutionRoleArn"], described["EnableNetworkIsolation"]) == (
        KEY, ROLE, True
    )
    world.endpoint(name)
    ((variant,), _) = hosting.deployed[-1]
    assert variant.network_isolation  # the config isolates every model container it deploys


def test_an_update_retaining_variant_properties_keeps_weight_count_and_capture_unless_excluded(
    world: World, hosting: RecordingHosting
) -> None:
    sm = sagemaker(world)
    model = world.model()
    first = config(world, model, 2.0, 1, capture("first", 100))
    second = config(world, model, 1.0, 3, capture("second", 50))
    third = config(world, model, 5.0, 4, capture("third", 20))
    endpoint = world.endpoint(first)

    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=second, RetainAllVariantProperties=True)
    assert serving(sm.describe_endpoint(EndpointName=endpoint)) == (second, 2.0, 1, f"{BUCKET}/first", 100)
    ((variant,), captured) = hosting.deployed[-1]
    assert variant.initial_weight == 2.0
    assert captured is not None and captured.destination_s3_uri == f"{BUCKET}/first"

    sm.update_endpoint(
        EndpointName=endpoint, EndpointConfigName=third, RetainAllVariantProperties=True,
        ExcludeRetainedVariantProperties=[{"VariantPropertyType": "DataCaptureConfig"},
                                          {"VariantPropertyType": "DesiredWeight"}],
    )
    assert serving(sm.describe_endpoint(EndpointName=endpoint)) == (third, 5.0, 1, f"{BUCKET}/third", 20)

    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=second)
    assert serving(sm.describe_endpoint(EndpointName=endpoint)) == (second, 1.0, 3, f"{BUCKET}/second", 50)
    kept = sm.describe_endpoint_config(EndpointConfigName=second)["DataCaptureConfig"]
    assert kept == capture("second", 50)


def test_the_last_deployment_config_is_described_and_reused_when_retained(world: World) -> None:
    sm = sagemaker(world)
    model = world.model()
    configs = [world.endpoint_config(model) for _ in range(3)]
    endpoint = sm.create_endpoint(EndpointName="e", EndpointConfigName=configs[0],
                                  DeploymentConfig=ALL_AT_ONCE)["EndpointArn"]
    assert endpoint and sm.describe_endpoint(EndpointName="e")["LastDeploymentConfig"] == ALL_AT_ONCE

    sm.update_endpoint(EndpointName="e", EndpointConfigName=configs[1], RetainDeploymentConfig=True)
    assert sm.describe_endpoint(EndpointName="e")["LastDeploymentConfig"] == ALL_AT_ONCE

    sm.update_endpoint(EndpointName="e", EndpointConfigName=configs[2])
    assert "LastDeploymentConfig" not in sm.describe_endpoint(EndpointName="e")


def test_an_endpoint_whose_config_was_deleted_serves_on_but_is_not_updated(world: World) -> None:
    """SageMaker keeps the config an endpoint leaves to roll back to (terraform-provider-aws issues
    40048 and 48997 record its refusal once that config is deleted)."""
    sm = sagemaker(world)
    model = world.model()
    first, second = world.endpoint_config(model), world.endpoint_config(model)
    sm.create_endpoint(EndpointName="e", EndpointConfigName=first)
    sm.delete_endpoint_config(EndpointConfigName=first)  # a cleanup: the endpoint serves on

    with pytest.raises(ClientError) as refused:
        sm.update_endpoint(EndpointName="e", EndpointConfigName=second)
    arn = f"arn:aws:sagemaker:us-east-1:000000000000:endpoint-config/{first.lower()}"
    assert refusal(refused) == {"Code": "ValidationException",
                                "Message": f'Could not find endpoint configuration "{arn}".'}
    described = sm.describe_endpoint(EndpointName="e")
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", first)


def over_the_limit(used: int, delta: int) -> dict[str, str]:
    return {"Code": "ResourceLimitExceeded", "Message": (
        f"The account-level service limit 'ml.m5.large for endpoint usage' is {ENDPOINT_INSTANCE_LIMIT} "
        f"Instances, with current utilization of {used} Instances and a request delta of {delta} Instances. "
        "Please contact AWS support to request an increase for this limit."
    )}


def refusal(error: pytest.ExceptionInfo[ClientError]) -> dict[str, str]:
    return {key: error.value.response["Error"][key] for key in ("Code", "Message")}


def test_more_instances_than_local_hosting_runs_for_an_endpoint_are_refused_before_anything_starts(
    world: World, hosting: RecordingHosting
) -> None:
    sm = sagemaker(world)
    over = config(world, world.model(), 1.0, ENDPOINT_INSTANCE_LIMIT + 1, capture("c", 100))

    with pytest.raises(ClientError) as error:
        sm.create_endpoint(EndpointName="e", EndpointConfigName=over)

    assert refusal(error) == over_the_limit(0, ENDPOINT_INSTANCE_LIMIT + 1)
    assert sm.list_endpoints()["Endpoints"] == [] and hosting.deployed == []


def test_an_update_counts_the_instances_serving_until_it_is_done_against_the_limit(
    world: World, hosting: RecordingHosting
) -> None:
    """Blue/green: the new instances start while the old ones serve, so both count."""
    sm = sagemaker(world)
    model = world.model()
    endpoint = world.endpoint(config(world, model, 1.0, 2, capture("c", 100)))
    described = sm.describe_endpoint(EndpointName=endpoint)

    three = config(world, model, 1.0, 3, capture("c", 100))
    with pytest.raises(ClientError) as error:
        sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=three)
    assert refusal(error) == over_the_limit(2, 3)
    assert sm.describe_endpoint(EndpointName=endpoint) == described and len(hosting.deployed) == 1

    two = config(world, model, 1.0, 2, capture("d", 50))
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=two)
    ((variant,), _) = hosting.deployed[-1]
    assert variant.instance_count == 2


class OneInstanceDied(RecordingHosting):
    """Hosting in which one instance of each variant has died since it was deployed."""

    def live_instances(self, endpoint_name: str, deployment_id: str) -> dict[str, int]:
        variants, _ = self.deployed[-1]
        return {variant.variant_name: variant.instance_count - 1 for variant in variants}


def test_the_current_instance_count_is_the_instances_that_still_run(world: World) -> None:
    hosting = OneInstanceDied()
    world.backend.serving.processes = hosting  # type: ignore[assignment]
    sm = sagemaker(world)
    endpoint = world.endpoint(config(world, world.model(), 1.0, 2, capture("c", 100)))

    (variant,) = sm.describe_endpoint(EndpointName=endpoint)["ProductionVariants"]

    assert (variant["CurrentInstanceCount"], variant["DesiredInstanceCount"]) == (1, 2)


def test_a_variant_names_its_image_and_the_digest_it_resolved_to(world: World) -> None:
    started = datetime.now(UTC).replace(microsecond=0)  # as precise as a timestamp on the wire may be
    endpoint = world.endpoint(config(world, world.model(), 1.0, 1, capture("images", 100)))

    (variant,) = sagemaker(world).describe_endpoint(EndpointName=endpoint)["ProductionVariants"]

    (image,) = variant["DeployedImages"]
    repository, tag = IMAGE.rsplit(":", 1)
    assert image["SpecifiedImage"] == IMAGE and tag
    assert image["ResolvedImage"] == f"{repository}@{image_digest()}"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_digest())
    assert started <= image["ResolutionTime"] <= datetime.now(UTC)
