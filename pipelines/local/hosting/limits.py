"""What a model or endpoint configuration asks of SageMaker hosting that local hosting cannot
reproduce, refused when it is created instead of served some other way.

A local endpoint is real-time: each instance of a variant is one model server process running one
container's inference code, and every invocation reaches the variant that traffic weights pick and
one of its instances, at random or the least busy; an update moves all traffic at once when the new
servers are healthy. A model server with no network (where this machine cannot make a network
namespace), an inference pipeline of several containers, a multi-model container, model data
from anywhere but a ModelDataUrl's model.tar.gz (a model package's, uncompressed, or more sources),
asynchronous inference, shadow variants that receive a copy of production traffic, online explanations,
serverless or managed-scaling capacity, instance pools or capacity reservations, inference
components, an instance type whose memory the local target does not reproduce (a GPU, an
accelerator, a Graviton), accelerators or their partitions, core dumps, VPC subnets, utilization
metrics, a cross-Region traffic cap, routing by prompt prefix or KV cache, traffic shifted in steps
and rollbacks on CloudWatch alarms all behave otherwise on SageMaker; served here they would answer
as none of them does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pipelines.local.system.instance_types import INSTANCES, OFFERED, not_reproduced
from pipelines.local.system.isolation import isolation_unavailable

ONE_CONTAINER = "a local model server runs one container's inference code"
ALL_AT_ONCE = "a local update moves all traffic at once when the new model servers are healthy"
ONE_PROCESS = "a local variant's instances are model server processes on this machine"
# RoutingConfig strategies a local variant serves (hosting/instances.py).
ROUTING = ("RANDOM", "LEAST_OUTSTANDING_REQUESTS")
# ProductionVariant members that ask for capacity or hardware a local variant does not have.
VARIANT_CAPACITY = {
    "ServerlessConfig": "asks for a serverless variant (memory size, concurrency limits, cold starts)",
    "ManagedInstanceScaling": "asks SageMaker to scale the variant's instances",
    "AcceleratorType": "asks for an Elastic Inference accelerator",
    "CoreDumpConfig": "asks for the model container's core dumps in S3",
    "InstancePools": "asks for instances of several types, provisioned in order of priority",
    "CapacityReservationConfig": "asks for instances from a capacity reservation",
    "AcceleratorPartitionLayouts": "asks for partitions of the instances' GPUs",
}
# What a variant may name instead of an InstanceType (VARIANT_CAPACITY refuses each for itself).
OTHER_CAPACITY = ("ServerlessConfig", "InstancePools")
INFERENCE_COMPONENTS = (
    "a variant without a model hosts inference components (CreateInferenceComponent), which local "
    "endpoints do not serve: a local variant serves the model it names"
)
# What a local endpoint instance is held to (hosting/endpoints.py), for a type the table lacks.
RUNS_ON = f"a local endpoint instance runs on the CPU instance types whose memory it reproduces, {OFFERED}"
# Container members that say where the model comes from, other than ModelDataUrl's model.tar.gz.
MODEL_SOURCES = {
    "ModelDataSource": "serves model data from S3 as it is stored, uncompressed",
    "AdditionalModelDataSources": "adds model data from more S3 locations",
    "ModelPackageName": "serves a model package's containers (its image, model data and variables)",
}
ONE_ARCHIVE = (
    "a local model server serves the container's own Image with its ModelDataUrl (a model.tar.gz) "
    "unpacked at /opt/ml/model"
)
VPC = (
    "VpcConfig connects model containers to a VPC's subnets: a local model server uses this machine's "
    "network"
)


def archive_source(model_data_url: str) -> dict[str, Any]:
    """The ModelDataSource a ModelDataUrl stands for, as DescribeModel answers it: a gzipped S3
    object, the same model.tar.gz."""
    return {"S3DataSource": {"S3Uri": model_data_url, "S3DataType": "S3Object", "CompressionType": "Gzip"}}


def request_containers(request: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every container a CreateModel request names: its PrimaryContainer (or {}) and its Containers."""
    return [request.get("PrimaryContainer") or {}, *(request.get("Containers") or [])]


def model_limits(request: Mapping[str, Any]) -> list[str]:
    """What CreateModel asks for that local hosting cannot reproduce."""
    return list(_model_limits(request))


def endpoint_config_limits(request: Mapping[str, Any]) -> list[str]:
    """What CreateEndpointConfig asks for that local hosting cannot reproduce."""
    return list(_endpoint_config_limits(request))


def deployment_limits(request: Mapping[str, Any]) -> list[str]:
    """What CreateEndpoint's or UpdateEndpoint's DeploymentConfig asks for that a local update
    cannot reproduce."""
    return list(_deployment_limits(request.get("DeploymentConfig") or {}))


def _deployment_limits(config: Mapping[str, Any]) -> Iterator[str]:
    if config.get("RollingUpdatePolicy"):
        yield f"DeploymentConfig.RollingUpdatePolicy replaces instances in batches: {ALL_AT_ONCE}"
    routing = (config.get("BlueGreenUpdatePolicy") or {}).get("TrafficRoutingConfiguration") or {}
    if routing.get("Type") in ("CANARY", "LINEAR"):
        yield f"TrafficRoutingConfiguration {routing['Type']} shifts traffic in steps: {ALL_AT_ONCE}"
    if (config.get("AutoRollbackConfiguration") or {}).get("Alarms"):
        yield (
            "AutoRollbackConfiguration rolls back when a CloudWatch alarm fires: the local target "
            "has no CloudWatch alarms (an update that fails its health check is rolled back)"
        )


def _isolation(request: Mapping[str, Any]) -> Iterator[str]:
    unavailable = isolation_unavailable() if request.get("EnableNetworkIsolation") is True else ""
    if unavailable:
        yield (
            f"EnableNetworkIsolation asks for a model server with no network: {unavailable}, and a "
            "local model server is not run with the network instead"
        )
    if request.get("VpcConfig"):
        yield VPC


def _model_limits(request: Mapping[str, Any]) -> Iterator[str]:
    yield from _isolation(request)
    containers = request.get("Containers") or []
    if len(containers) > 1:
        yield (
            f"Containers holds {len(containers)} containers, an inference pipeline SageMaker runs "
            f"one after another: {ONE_CONTAINER}"
        )
    for container in request_containers(request):
        if container.get("Mode") == "MultiModel":
            yield f"container Mode MultiModel asks for a multi-model endpoint: {ONE_CONTAINER}, for one model"
        for member, asks in MODEL_SOURCES.items():
            if container.get(member) and not _described_archive(container, member):
                yield f"container {member} {asks}: {ONE_ARCHIVE}"


def _described_archive(container: Mapping[str, Any], member: str) -> bool:
    """A ModelDataSource that is the one DescribeModel answers for the container's ModelDataUrl (a
    container sent back as it was described): it names the same model.tar.gz."""
    url = container.get("ModelDataUrl")
    return member == "ModelDataSource" and isinstance(url, str) and container[member] == archive_source(url)


def _endpoint_config_limits(request: Mapping[str, Any]) -> Iterator[str]:
    yield from _isolation(request)
    for position, variant in enumerate(request.get("ProductionVariants") or [], 1):
        if "ModelName" not in variant:
            yield f"ProductionVariants.{position} names no ModelName: {INFERENCE_COMPONENTS}"
        instance_type = variant.get("InstanceType")
        if instance_type is not None and instance_type not in INSTANCES:
            yield not_reproduced(f"ProductionVariants.{position}.InstanceType", instance_type, RUNS_ON)
        elif instance_type is None and not any(map(variant.get, OTHER_CAPACITY)):
            yield f"ProductionVariants.{position} names no InstanceType: {RUNS_ON}"
        for member, asks in VARIANT_CAPACITY.items():
            if _asked(variant.get(member)):
                yield f"ProductionVariants.{position}.{member} {asks}: {ONE_PROCESS}"
        strategy = (variant.get("RoutingConfig") or {}).get("RoutingStrategy", ROUTING[0])
        if strategy not in ROUTING:
            yield (
                f"ProductionVariants.{position}.RoutingConfig.RoutingStrategy {strategy} routes by "
                f"what a request shares with earlier ones: a local variant routes {' or '.join(ROUTING)}"
            )
    metrics = request.get("MetricsConfig") or {}
    if metrics.get("EnableEnhancedMetrics") is True or metrics.get("EnableDetailedObservability") is True:
        yield "MetricsConfig asks for utilization metrics in CloudWatch: local endpoints publish none"
    if request.get("CrossRegionTrafficConfig"):
        yield (
            "CrossRegionTrafficConfig caps requests from inference routers in other Regions: a "
            "local endpoint has no such routers"
        )
    if request.get("AsyncInferenceConfig"):
        yield (
            "AsyncInferenceConfig asks for asynchronous inference (InvokeEndpointAsync, results in "
            "S3): local endpoints are real-time only"
        )
    if request.get("ShadowProductionVariants"):
        yield (
            "ShadowProductionVariants would receive a copy of the production traffic: local "
            "endpoints do not mirror traffic"
        )
    if request.get("ExplainerConfig"):
        yield "ExplainerConfig asks for online explanations (SageMaker Clarify): local endpoints give none"


def _asked(value: Any) -> bool:
    """A member set, unless it is a setting switched off (ManagedInstanceScaling Status DISABLED)."""
    if isinstance(value, Mapping) and value.get("Status") == "DISABLED":
        return False
    return bool(value)
