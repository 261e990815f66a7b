"""Models, endpoint configs and endpoints through the API as SageMaker answers them: what each
status allows, what a refusal leaves behind, and what a restart brings back. Hosting is a stand-in
(world.InstantHosting and variations), so no model server starts."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pipelines.local.api.protocol import Dispatcher
from pipelines.local.hosting.endpoints import EndpointBusy
from pipelines.local.hosting.model_process import INSTANCE_PROCESSES, VariantSpec
from pipelines.local.service.backend import LocalSageMaker
from pipelines.local.system.identity import ACCOUNT
from pipelines.local.system.memory import GIB, MemoryLimit
from steps import deploy, integrity

from . import inprocess
from .world import BUCKET, IMAGE, MODEL_DATA, ROLE, InstantHosting, World, local_sagemaker

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


def deploy_through(world: World, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The deploy handler's SageMaker and S3 clients, in-process against `world`; the SageMaker one."""
    clients = {name: inprocess.client(world.dispatcher, name) for name in ("sagemaker", "s3")}
    monkeypatch.setattr(deploy, "client", lambda name: clients[name])
    return clients["sagemaker"]


def approved_package(world: World, group: str, model_data: str = MODEL_DATA) -> str:
    """A version registered Approved with the digest of what `model_data` holds now."""
    data = world.backend.context.store.get_bytes(model_data)
    if not world.sm("ListModelPackageGroups", NameContains=group)["ModelPackageGroupSummaryList"]:
        world.sm("CreateModelPackageGroup", ModelPackageGroupName=group)
    return str(world.sm(
        "CreateModelPackage", ModelPackageGroupName=group, ModelApprovalStatus="Approved",
        CustomerMetadataProperties={integrity.DIGEST_KEY: hashlib.sha256(data).hexdigest()},
        InferenceSpecification={
            "Containers": [{"Image": IMAGE, "ModelDataUrl": model_data}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )["ModelPackageArn"])


def deploy_request(package: str) -> dict[str, Any]:
    return {
        "model_package_arn": package, "endpoint_name": "served", "role_arn": ROLE,
        "instance_type": "ml.m5.large", "instance_count": 1, "capture_destination": f"{BUCKET}/capture",
    }


def test_the_deploy_handler_replaces_a_failed_endpoint(
    world: World, backend: LocalSageMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend.serving.processes = FirstDeploymentFails()  # type: ignore[assignment]
    sm = deploy_through(world, monkeypatch)
    request = deploy_request(approved_package(world, "g"))

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


def newer_deploy(world: World, monkeypatch: pytest.MonkeyPatch, approval: bool) -> dict[str, Any]:
    """A deploy of a newly approved version: a pipeline run's, or (`approval`) an approval event's."""
    newer = approved_package(world, "g")
    request = deploy_request(newer)
    if approval:
        for key, name in deploy.ENVIRONMENT_KEYS.items():
            if key in request:
                monkeypatch.setenv(name, str(request[key]))
        request = {"detail-type": deploy.APPROVAL_EVENT, "detail": {"ModelPackageArn": newer}}
    return dict(deploy.handler(request, None))


@pytest.mark.parametrize("approval", [False, True])
def test_the_deploy_handler_rolls_past_a_served_model_that_was_deleted(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], approval: bool,
) -> None:
    """SageMaker lets the model of a live endpoint be deleted (a cleanup of old ones), and the
    endpoint goes on serving. Every later deploy, a run's or an approval's, then failed on
    DescribeModel's "Could not find": nothing could replace what the endpoint served."""
    sm = deploy_through(world, monkeypatch)
    first = deploy.handler(deploy_request(approved_package(world, "g")), None)
    sm.delete_model(ModelName=first["model_name"])
    result = newer_deploy(world, monkeypatch, approval)
    assert result["action"] == "updated", result
    described = sm.describe_endpoint(EndpointName="served")
    assert described["EndpointConfigName"] == result["endpoint_config_name"] != first["endpoint_config_name"]
    assert f"{first['endpoint_config_name']} or its model no longer exists" in capsys.readouterr().out


@pytest.mark.parametrize("approval", [False, True])
def test_a_deploy_onto_an_endpoint_whose_config_was_deleted_says_what_to_do(
    world: World, monkeypatch: pytest.MonkeyPatch, approval: bool,
) -> None:
    """SageMaker keeps the config an endpoint leaves through an update, to roll back to: with that
    config deleted while live, UpdateEndpoint is refused (terraform-provider-aws issues 40048,
    48997), and the endpoint goes on serving what it served."""
    sm = deploy_through(world, monkeypatch)
    first = deploy.handler(deploy_request(approved_package(world, "g")), None)
    sm.delete_endpoint_config(EndpointConfigName=first["endpoint_config_name"])
    with pytest.raises(RuntimeError) as refused:
        newer_deploy(world, monkeypatch, approval)
    assert str(refused.value) == (
        f"endpoint served serves endpoint config {first['endpoint_config_name']}, which has been deleted: "
        "SageMaker does not update an endpoint whose config is gone (it keeps it to roll back to). Create "
        f"{first['endpoint_config_name']} again, or delete endpoint served, then deploy again")
    described = sm.describe_endpoint(EndpointName="served")
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == (
        "InService", first["endpoint_config_name"])


@pytest.mark.parametrize("deleted", ["endpoint config", "model package"])
def test_monitoring_an_endpoint_whose_config_or_version_was_deleted_says_what_it_cannot_know(
    world: World, monkeypatch: pytest.MonkeyPatch, deleted: str
) -> None:
    """Its ResolveServingModel step failed with DescribeEndpointConfig's "Could not find", or
    DescribeModelPackage's "does not exist", alone."""
    sm = deploy_through(world, monkeypatch)
    package = approved_package(world, "g")
    config = deploy.handler(deploy_request(package), None)["endpoint_config_name"]
    if deleted == "model package":
        sm.delete_model_package(ModelPackageName=package)
        expected = (f"endpoint served serves {package}, which has been deleted, and its drift baseline "
                    "with it: deploy a registered version to monitor it")
    else:
        sm.delete_endpoint_config(EndpointConfigName=config)
        expected = (f"endpoint served uses {config}, whose config or model has been deleted: what it "
                    "serves cannot be known until a version is deployed to it again")
    with pytest.raises(ValueError) as refused:
        deploy.describe_serving(sm, "served")
    assert str(refused.value) == expected


def test_the_deploy_handler_reads_the_local_s3_and_refuses_model_data_replaced_after_registration(
    world: World, backend: LocalSageMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    sm = deploy_through(world, monkeypatch)
    first = deploy.handler(deploy_request(approved_package(world, "g")), None)
    newer_data = f"{BUCKET}/v2/model.tar.gz"
    backend.context.store.put_bytes(newer_data, b"the evaluated model")
    newer = approved_package(world, "g", newer_data)
    backend.context.store.put_bytes(newer_data, b"a tarball with a payload")

    with pytest.raises(integrity.ModelDataMismatch) as refused:
        deploy.handler(deploy_request(newer), None)
    actual, registered = (hashlib.sha256(data).hexdigest() for data in (b"a tarball with a payload",
                                                                         b"the evaluated model"))
    assert str(refused.value).startswith(
        f"the model data at {newer_data} has SHA-256 {actual}, "
        f"but its model package records ModelDataSha256={registered}"
    )
    assert [m["ModelName"] for m in sm.list_models()["Models"]] == [first["model_name"]]
    assert sm.describe_endpoint(EndpointName="served")["EndpointConfigName"] == first["endpoint_config_name"]


class RecordingRestores(InstantHosting):
    """Remembers what each restore was asked to serve again."""

    def __init__(self) -> None:
        super().__init__()
        self.restored: dict[str, tuple[str, list[str]]] = {}

    def restore(
        self, endpoint_name: str, deployment_id: str, variants: list[VariantSpec], *rest: Any
    ) -> tuple[str, str]:
        self.restored[endpoint_name] = (deployment_id, [v.model_data_url for v in variants])
        return "InService", ""


def restarted(backend: LocalSageMaker, state: Path) -> tuple[LocalSageMaker, RecordingRestores]:
    backend.shutdown()
    again = local_sagemaker(state)
    hosting = RecordingRestores()
    again.serving.processes = hosting  # type: ignore[assignment]
    again.start()
    return again, hosting


def test_an_endpoint_keeps_serving_across_a_restart_after_its_config_and_model_are_deleted(
    world: World, backend: LocalSageMaker, tmp_path: Path
) -> None:
    model = world.model()
    config = world.endpoint_config(model)
    endpoint = world.endpoint(config)
    world.sm("DeleteEndpointConfig", EndpointConfigName=config)
    world.sm("DeleteModel", ModelName=model)

    again, hosting = restarted(backend, tmp_path / "state")
    try:
        assert hosting.restored == {endpoint: (config, [MODEL_DATA])}
        described = World(again).sm("DescribeEndpoint", EndpointName=endpoint)
        assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", config)
        assert "FailureReason" not in described
    finally:
        again.shutdown()


def test_an_endpoint_that_cannot_be_served_again_fails_alone_and_the_server_starts(
    world: World, backend: LocalSageMaker, tmp_path: Path
) -> None:
    """An endpoint recorded without copies of what it serves, whose config is gone."""
    model = world.model()
    lost, kept = world.endpoint_config(model), world.endpoint_config(model)
    orphan, served = world.endpoint(lost), world.endpoint(kept)
    record = backend.context.database.get("endpoint", orphan)
    assert record is not None and record.pop("_Deployed")
    backend.context.database.put("endpoint", orphan, record, record["CreationTime"])
    world.sm("DeleteEndpointConfig", EndpointConfigName=lost)

    again, hosting = restarted(backend, tmp_path / "state")
    try:
        assert list(hosting.restored) == [served]
        failed = World(again).sm("DescribeEndpoint", EndpointName=orphan)
        assert failed["EndpointStatus"] == "Failed"
        assert failed["FailureReason"] == (
            "Not served again after a restart of the local SageMaker: "
            f'Could not find endpoint configuration "{again.context.resource_arn("endpoint_config", lost)}".'
        )
        assert World(again).sm("DescribeEndpoint", EndpointName=served)["EndpointStatus"] == "InService"
    finally:
        again.shutdown()


class Busy(InstantHosting):
    """Hosting that refuses every deployment, as it refuses one while another is in progress."""

    def deploy(self, endpoint_name: str, *rest: Any) -> None:
        raise EndpointBusy(f"endpoint {endpoint_name} is already being deployed")


def test_a_refused_create_or_update_changes_nothing(world: World, backend: LocalSageMaker) -> None:
    model = world.model()
    serving = world.endpoint(world.endpoint_config(model))
    sm = sagemaker(world)
    before = sm.describe_endpoint(EndpointName=serving)
    backend.serving.processes = Busy()  # type: ignore[assignment]
    other = world.endpoint_config(model)

    with pytest.raises(ClientError) as error:
        sm.update_endpoint(EndpointName=serving, EndpointConfigName=other)
    assert refusal(error) == ("ValidationException", f"endpoint {serving} is already being deployed")
    assert sm.describe_endpoint(EndpointName=serving) == before

    with pytest.raises(ClientError) as error:
        sm.create_endpoint(
            EndpointName="refused", EndpointConfigName=other, Tags=[{"Key": "k", "Value": "v"}]
        )
    assert refusal(error) == ("ValidationException", "endpoint refused is already being deployed")
    assert [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]] == [serving]
    assert backend.context.tags(backend.context.arn("endpoint", "refused")) == []
    backend.serving.processes = InstantHosting()  # type: ignore[assignment]
    assert sm.create_endpoint(EndpointName="refused", EndpointConfigName=other)["EndpointArn"]


class RecordingHosting(InstantHosting):
    """Serves at once, and remembers the variants each deployment asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.variants: list[VariantSpec] = []

    def deploy(self, endpoint_name: str, deployment_id: str, variants: list[VariantSpec], *rest: Any) -> None:
        self.variants.extend(variants)
        super().deploy(endpoint_name, deployment_id, variants, *rest)


def test_each_instance_is_held_to_its_instance_types_memory_and_vcpus_from_the_table(
    world: World, backend: LocalSageMaker
) -> None:
    hosting = RecordingHosting()
    backend.serving.processes = hosting  # type: ignore[assignment]
    sm = sagemaker(world)
    variants = [
        {"VariantName": name, "ModelName": world.model(), "InitialInstanceCount": 1, "InstanceType": kind}
        for name, kind in (("A", "ml.m5.large"), ("B", "ml.c5.xlarge"))
    ]
    sm.create_endpoint_config(EndpointConfigName="sized", ProductionVariants=variants)

    sm.create_endpoint(EndpointName="sized", EndpointConfigName="sized")

    assert [(variant.memory, variant.vcpus) for variant in hosting.variants] == [
        (MemoryLimit(8 * GIB, "the 8 GiB of ml.m5.large", INSTANCE_PROCESSES), 2),
        (MemoryLimit(8 * GIB, "the 8 GiB of ml.c5.xlarge", INSTANCE_PROCESSES), 4),
    ]


def test_an_endpoint_config_with_two_variants_of_one_name_is_refused(world: World) -> None:
    sm = sagemaker(world)
    variant = {"VariantName": "A", "ModelName": world.model(), "InitialInstanceCount": 1,
               "InstanceType": "ml.m5.large"}
    with pytest.raises(ClientError) as error:
        sm.create_endpoint_config(
            EndpointConfigName="twice", ProductionVariants=[variant, {**variant, "VariantName": "B"}, variant]
        )
    assert refusal(error) == (
        "ValidationException", "ProductionVariants: variant names must be unique; A given more than once."
    )
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []


def test_a_model_whose_data_is_not_in_s3_is_refused(world: World) -> None:
    sm = sagemaker(world)
    for url in (f"{BUCKET}/missing/model.tar.gz", "s3://nobucket/none.tar.gz"):
        with pytest.raises(ClientError) as error:
            sm.create_model(ModelName="m", ExecutionRoleArn=ROLE,
                            PrimaryContainer={"Image": IMAGE, "ModelDataUrl": url})
        assert refusal(error) == ("ValidationException", f"Could not find model data at {url}.")
    assert sm.list_models()["Models"] == []
    assert sm.create_model(ModelName="m", ExecutionRoleArn=ROLE,
                           PrimaryContainer={"Image": IMAGE, "ModelDataUrl": MODEL_DATA})["ModelArn"]


def test_a_models_environment_is_held_to_32_kb_in_all_as_the_api_reference_says(world: World) -> None:
    """Each key and value may hold 1024 bytes, but all of them together 32 KB: 32 variables of 1 KB
    (keys of 4 bytes, values of 1020) fit exactly, one byte more does not."""
    sm = sagemaker(world)
    full = {f"K{i:03d}": "v" * 1020 for i in range(32)}
    over = {**full, "K031": "v" * 1021}
    with pytest.raises(ClientError) as error:
        sm.create_model(ModelName="m", ExecutionRoleArn=ROLE,
                        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": MODEL_DATA, "Environment": over})
    assert refusal(error) == ("ValidationException", (
        "The maximum length of all keys and values in the Environment maps of a model's containers, "
        "combined, is 32 KB (32768 bytes); these hold 32769 bytes."
    ))
    assert sm.list_models()["Models"] == []
    assert sm.create_model(ModelName="m", ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": IMAGE, "ModelDataUrl": MODEL_DATA, "Environment": full})["ModelArn"]


def test_a_model_describes_its_container_as_sagemaker_fills_it_in(world: World) -> None:
    sm = sagemaker(world)
    sm.create_model(ModelName="m", ExecutionRoleArn=ROLE,
                    PrimaryContainer={"Image": IMAGE, "ModelDataUrl": MODEL_DATA, "Environment": {}})

    described = sm.describe_model(ModelName="m")
    container = described["PrimaryContainer"]

    # Real descriptions always say what Inference Recommender found; the local target finds nothing.
    assert described["DeploymentRecommendation"] == {"RecommendationStatus": "NOT_APPLICABLE"}
    assert container == {
        "Image": IMAGE,
        "Mode": "SingleModel",
        "ModelDataUrl": MODEL_DATA,
        "ModelDataSource": {
            "S3DataSource": {"S3Uri": MODEL_DATA, "S3DataType": "S3Object", "CompressionType": "Gzip"}
        },
        "Environment": {},
    }
    # Sent back as described, it is the same model.tar.gz; another source is still refused.
    sm.create_model(ModelName="copy", ExecutionRoleArn=ROLE, PrimaryContainer=container)
    elsewhere = {**container, "ModelDataSource": {"S3DataSource": {
        "S3Uri": f"{BUCKET}/model/", "S3DataType": "S3Prefix", "CompressionType": "None"}}}
    with pytest.raises(ClientError) as error:
        sm.create_model(ModelName="other", ExecutionRoleArn=ROLE, PrimaryContainer=elsewhere)
    assert "container ModelDataSource serves model data from S3 as it is stored" in refusal(error)[1]


def test_a_model_made_with_containers_is_described_and_served_in_that_form(world: World) -> None:
    sm = sagemaker(world)
    container = {"Image": IMAGE, "ModelDataUrl": MODEL_DATA}
    sm.create_model(ModelName="listed", ExecutionRoleArn=ROLE, Containers=[container])

    described = sm.describe_model(ModelName="listed")
    endpoint = world.endpoint(world.endpoint_config("listed"))

    assert "PrimaryContainer" not in described
    assert [c["ModelDataUrl"] for c in described["Containers"]] == [MODEL_DATA]
    (variant,) = sm.describe_endpoint(EndpointName=endpoint)["ProductionVariants"]
    assert variant["DeployedImages"][0]["SpecifiedImage"] == IMAGE
    with pytest.raises(ClientError) as error:
        sm.create_model(ModelName="both", ExecutionRoleArn=ROLE, PrimaryContainer=container,
                        Containers=[container])
    assert refusal(error) == (
        "ValidationException", "A model names its container as PrimaryContainer or as Containers, not both."
    )


def test_names_differing_only_in_case_are_one_resource(world: World, backend: LocalSageMaker) -> None:
    """SageMaker's ARN holds the lowercased name: a second create in another case is refused, and
    either case (or the ARN) finds the one resource."""
    sm = sagemaker(world)
    container = {"Image": IMAGE, "ModelDataUrl": MODEL_DATA}
    arn = sm.create_model(ModelName="Mixed", ExecutionRoleArn=ROLE, PrimaryContainer=container,
                          Tags=[{"Key": "owner", "Value": "upper"}])["ModelArn"]
    assert arn.endswith(":model/mixed")
    with pytest.raises(ClientError) as error:
        sm.create_model(ModelName="mixed", ExecutionRoleArn=ROLE, PrimaryContainer=container,
                        Tags=[{"Key": "owner", "Value": "lower"}])
    assert refusal(error) == ("ValidationException", f'Cannot create already existing model "{arn}".')
    assert sm.describe_model(ModelName="MIXED")["ModelName"] == "Mixed"
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "owner", "Value": "upper"}]
    assert backend.context.get("model", arn, "model")["ModelName"] == "Mixed"
    assert backend.context.find("endpoint", arn) is None  # a model's ARN names no endpoint

    config = world.endpoint_config("MIXED", "Config")
    (variant,) = sm.describe_endpoint_config(EndpointConfigName="config")["ProductionVariants"]
    assert variant["ModelName"] == "MIXED"
    endpoint = sm.create_endpoint(EndpointName="E1", EndpointConfigName="CONFIG")["EndpointArn"]
    with pytest.raises(ClientError) as error:
        sm.create_endpoint(EndpointName="e1", EndpointConfigName=config)
    assert refusal(error) == ("ValidationException", f'Cannot create already existing endpoint "{endpoint}".')
    described = sm.describe_endpoint(EndpointName="e1")
    assert (described["EndpointName"], described["EndpointConfigName"]) == ("E1", "Config")

    sm.delete_endpoint(EndpointName="e1")
    sm.delete_endpoint_config(EndpointConfigName="config")
    sm.delete_model(ModelName="mixed")
    assert sm.list_endpoints()["Endpoints"] == sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert sm.list_models()["Models"] == []
    assert backend.context.tags(arn) == []


def test_missing_resources_are_named_by_their_arn_as_sagemaker_names_them(world: World) -> None:
    sm = sagemaker(world)
    sagemaker_arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}"
    for describe, label, kind in (
        (lambda: sm.describe_model(ModelName="Gone"), "model", "model"),
        (lambda: sm.describe_endpoint_config(EndpointConfigName="Gone"), "endpoint configuration",
         "endpoint-config"),
        (lambda: sm.describe_endpoint(EndpointName="Gone"), "endpoint", "endpoint"),
        (lambda: sm.delete_endpoint(EndpointName="Gone"), "endpoint", "endpoint"),
    ):
        with pytest.raises(ClientError) as error:
            describe()
        missing = f"{sagemaker_arn}:{kind}/gone"
        assert refusal(error) == ("ValidationException", f'Could not find {label} "{missing}".')


def test_invoking_a_missing_endpoint_is_refused_in_sagemakers_words(tmp_path: Path) -> None:
    """With real hosting: the name must match the case the endpoint was created with."""
    backend = LocalSageMaker(tmp_path / "state", "us-east-1", "http://127.0.0.1:1")
    try:
        runtime = inprocess.client(Dispatcher(backend), "sagemaker-runtime")
        for name in ("nope", "NoPe"):
            with pytest.raises(ClientError) as error:
                runtime.invoke_endpoint(EndpointName=name, Body=b'"x"', ContentType="application/json")
            assert refusal(error) == ("ValidationError", f"Endpoint {name} of account {ACCOUNT} not found.")
    finally:
        backend.shutdown()


class SlowDeletes(InstantHosting):
    """Deployments never finish (the endpoint stays Creating) until `serve` is set; deletions
    finish only when the test calls `finish_deletions`, as if servers were still draining."""

    def __init__(self, serve: bool = True) -> None:
        super().__init__()
        self.serve = serve
        self.pending: list[tuple[str, Any]] = []

    def deploy(self, endpoint_name: str, deployment_id: str, *rest: Any) -> None:
        if self.serve:
            rest[-1](endpoint_name, "InService", "", deployment_id)

    def delete(self, endpoint_name: str, on_gone: Any) -> None:
        self.pending.append((endpoint_name, on_gone))

    def finish_deletions(self) -> None:
        while self.pending:
            name, on_gone = self.pending.pop(0)
            on_gone(name)


def test_a_deleted_endpoint_is_deleting_until_its_servers_stopped(
    world: World, backend: LocalSageMaker
) -> None:
    hosting = SlowDeletes()
    backend.serving.processes = hosting  # type: ignore[assignment]
    sm = sagemaker(world)
    config = world.endpoint_config(world.model())
    arn = sm.create_endpoint(EndpointName="Gone", EndpointConfigName=config,
                             Tags=[{"Key": "k", "Value": "v"}])["EndpointArn"]
    sm.delete_endpoint(EndpointName="gone")

    assert sm.describe_endpoint(EndpointName="Gone")["EndpointStatus"] == "Deleting"
    assert [e["EndpointStatus"] for e in sm.list_endpoints()["Endpoints"]] == ["Deleting"]
    other = world.endpoint_config(world.model())
    for refused, message in (
        (lambda: sm.create_endpoint(EndpointName="GONE", EndpointConfigName=config),
         f'Cannot create already existing endpoint "{arn}".'),
        (lambda: sm.update_endpoint(EndpointName="Gone", EndpointConfigName=other),
         f'Cannot update in-progress endpoint "{arn}".'),
        (lambda: sm.delete_endpoint(EndpointName="Gone"), f'Cannot update in-progress endpoint "{arn}".'),
    ):
        with pytest.raises(ClientError) as error:
            refused()
        assert refusal(error) == ("ValidationException", message)
    assert len(hosting.pending) == 1

    waited: list[str] = []

    def wait_for_deletion() -> None:
        waiter = sm.get_waiter("endpoint_deleted")
        waiter.wait(EndpointName="Gone", WaiterConfig={"Delay": 0.05, "MaxAttempts": 200})
        waited.append("gone")

    waiter = threading.Thread(target=wait_for_deletion)
    waiter.start()
    time.sleep(0.2)
    assert waiter.is_alive()  # still Deleting
    hosting.finish_deletions()
    waiter.join(10)
    assert waited == ["gone"]
    assert sm.list_endpoints()["Endpoints"] == [] and backend.context.tags(arn) == []
    assert sm.create_endpoint(EndpointName="gone", EndpointConfigName=config)["EndpointArn"] == arn


class HeldDeployments(InstantHosting):
    """Deployments stay under way until the test calls `finish`."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[tuple[str, str, Any]] = []

    def deploy(self, endpoint_name: str, deployment_id: str, *rest: Any) -> None:
        self.held.append((endpoint_name, deployment_id, rest[-1]))

    def finish(self) -> None:
        while self.held:
            name, deployment_id, on_status = self.held.pop(0)
            on_status(name, "InService", "", deployment_id)


def test_a_deployment_under_way_is_described_as_pending_until_it_is_over(
    world: World, backend: LocalSageMaker
) -> None:
    """"This field is only returned when the endpoint is creating or updating with a new endpoint
    configuration" (DescribeEndpoint's reference), with when it began and what each variant becomes."""
    hosting = HeldDeployments()
    backend.serving.processes = hosting  # type: ignore[assignment]
    sm = sagemaker(world)
    model = world.model()
    first, second = world.endpoint_config(model), world.endpoint_config(model)
    sm.create_endpoint(EndpointName="e", EndpointConfigName=first)
    for config, status in ((first, "Creating"), (second, "Updating")):
        if status == "Updating":
            sm.update_endpoint(EndpointName="e", EndpointConfigName=second)
        described = sm.describe_endpoint(EndpointName="e")
        pending = described["PendingDeploymentSummary"]
        (variant,) = sm.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
        (becoming,) = pending["ProductionVariants"]
        assert (described["EndpointStatus"], pending["EndpointConfigName"]) == (status, config)
        assert pending["StartTime"] == described["LastModifiedTime"]
        assert (becoming["VariantName"], becoming["InstanceType"], becoming["DesiredInstanceCount"]) == (
            variant["VariantName"], variant["InstanceType"], variant["InitialInstanceCount"])
        assert [s["Status"] for s in becoming["VariantStatus"]] == [status]
        hosting.finish()
        described = sm.describe_endpoint(EndpointName="e")
        assert described["EndpointStatus"] == "InService" and "PendingDeploymentSummary" not in described


def test_an_endpoint_still_creating_cannot_be_deleted(world: World, backend: LocalSageMaker) -> None:
    backend.serving.processes = SlowDeletes(serve=False)  # type: ignore[assignment]
    sm = sagemaker(world)
    arn = sm.create_endpoint(EndpointName="e", EndpointConfigName=world.endpoint_config(world.model()))[
        "EndpointArn"
    ]
    with pytest.raises(ClientError) as error:
        sm.delete_endpoint(EndpointName="e")
    assert refusal(error) == ("ValidationException", f'Cannot update in-progress endpoint "{arn}".')
    assert sm.describe_endpoint(EndpointName="e")["EndpointStatus"] == "Creating"


def test_a_deletion_a_restart_interrupted_is_finished_when_the_server_starts(
    world: World, backend: LocalSageMaker, tmp_path: Path
) -> None:
    backend.serving.processes = SlowDeletes()  # type: ignore[assignment]
    sm = sagemaker(world)
    config = world.endpoint_config(world.model())
    arn = sm.create_endpoint(EndpointName="e", EndpointConfigName=config,
                             Tags=[{"Key": "k", "Value": "v"}])["EndpointArn"]
    kept = world.endpoint(config)
    sm.delete_endpoint(EndpointName="e")

    again, hosting = restarted(backend, tmp_path / "state")
    try:
        assert list(hosting.restored) == [kept]
        listed = World(again).sm("ListEndpoints")["Endpoints"]
        assert [(e["EndpointName"], e["EndpointStatus"]) for e in listed] == [(kept, "InService")]
        assert again.context.tags(arn) == []
    finally:
        again.shutdown()
