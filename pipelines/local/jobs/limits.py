"""What a local job cannot reproduce, named before it runs instead of run some other way.

A local job is one process on this machine: one instance, inputs staged as files from S3 objects
before it starts, outputs uploaded from files when it ends, this machine's network, and no network
when the request isolates it (system/isolation.py). A request that asks SageMaker for more (a
command or an algorithm resource in place of the training toolkit, several instances, Pipe-mode
streams, manifest or non-S3 inputs, a model uploaded uncompressed, a VPC's subnets, network
isolation where this machine cannot take a process off the network, SageMaker Debugger or
Profiler, a warm pool, serverless training, MLflow, a model registered by the job itself,
instances SageMaker chooses or reserves, an instance type whose memory and vCPUs
jobs/instances.py does not reproduce) would run here in a way it never runs there, so it is
refused: at upsert for the literal values of a step's Arguments (executor/checks.py), at job start
for the values expressions resolved to. A value that is still an expression is no literal and
passes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pipelines.local.contract.expression_syntax import is_expression
from pipelines.local.contract.members import object_items, object_member
from pipelines.local.jobs.instances import instance_problems
from pipelines.local.jobs.metrics import metric_definition_problems
from pipelines.local.jobs.outcome import JobError
from pipelines.local.system.isolation import isolation_unavailable

ONE_INSTANCE = "a local job runs on one instance"
NAMED_INSTANCE = "a local job runs on the InstanceType it names"
INSTANCES_NAMED_BY = ("InstanceType", "InstanceGroups", "InstancePreferences")
FILES_ONLY = "a local job stages S3 objects as files before it starts"
ENTRY_POINT = ("sagemaker_program", "sagemaker_submit_directory")
VPC = (
    "connects the job's containers to a VPC's subnets (they reach what the VPC's routes and security "
    "groups allow): a local job uses this machine's network"
)
TOOLKIT_ONLY = (
    "a local training job runs the scikit-learn image's training toolkit on the entry point that "
    "hyperparameters sagemaker_program and sagemaker_submit_directory name"
)
# CreateTrainingJob members that hand the job, or its model, to a service beside it.
TRAINING_SERVICES = {
    "ServerlessJobConfig": f"asks for serverless training of a base model: {TOOLKIT_ONLY}",
    "MlflowConfig": "logs the job to a SageMaker managed MLflow tracking server: the local target has none",
    "ModelPackageConfig": (
        "registers the trained model in a model package group: a local training job registers "
        "nothing (a RegisterModel step does)"
    ),
}
# ResourceConfig members that have SageMaker choose or reserve the instances.
CHOSEN_CAPACITY = {
    "InstancePreferences": "asks SageMaker for the first instance type with capacity",
    "InstancePlacementConfig": "places the instances within UltraServers",
    "TrainingPlanArn": "runs the job on a training plan's reserved capacity",
}


def training_limits(request: Mapping[str, Any]) -> list[str]:
    """What CreateTrainingJob asks for that a local job cannot reproduce."""
    return list(_training_limits(request))


def processing_limits(request: Mapping[str, Any]) -> list[str]:
    """What CreateProcessingJob asks for that a local job cannot reproduce."""
    return list(_processing_limits(request))


def network_isolated(request: Mapping[str, Any]) -> bool:
    """EnableNetworkIsolation, where each job kind puts it: at the top of a training request, in
    NetworkConfig for processing."""
    network = object_member(request, "NetworkConfig")
    return request.get("EnableNetworkIsolation", network.get("EnableNetworkIsolation")) is True


def require_reproducible(problems: list[str]) -> None:
    """At job start: the job fails before anything is staged or run."""
    if problems:
        raise JobError("ValidationException: " + "; ".join(problems))


def _training_limits(request: Mapping[str, Any]) -> Iterator[str]:
    yield from _isolation(request)
    if request.get("VpcConfig"):
        yield f"VpcConfig {VPC}"
    resources = object_member(request, "ResourceConfig")
    yield from _instances("ResourceConfig.InstanceCount", resources.get("InstanceCount"))
    yield from instance_problems("ResourceConfig.InstanceType", resources.get("InstanceType"))
    if resources.get("InstanceGroups"):
        yield f"ResourceConfig.InstanceGroups asks for a heterogeneous cluster: {ONE_INSTANCE}"
    yield from _chosen_capacity(resources)
    if _positive(resources.get("KeepAlivePeriodInSeconds")):
        yield (
            "ResourceConfig.KeepAlivePeriodInSeconds asks SageMaker to keep the job's instance in a warm "
            "pool for the next job: a local job's process ends with the job, and it reports no WarmPoolStatus"
        )
    if request.get("ResourceConfig") is None:
        yield f"ResourceConfig is missing: {NAMED_INSTANCE}"
    yield from _instance_type_named("ResourceConfig", request.get("ResourceConfig"))
    for member, asks in TRAINING_SERVICES.items():
        if request.get(member):
            yield f"{member} {asks}"
    if request.get("AlgorithmSpecification") is None and not request.get("ServerlessJobConfig"):
        yield f"AlgorithmSpecification is missing: {TOOLKIT_ONLY}"
    algorithm = object_member(request, "AlgorithmSpecification")
    yield from _pipe("AlgorithmSpecification.TrainingInputMode", algorithm.get("TrainingInputMode"))
    if algorithm.get("AlgorithmName"):
        yield (
            "AlgorithmSpecification.AlgorithmName trains with an algorithm resource (created with "
            "CreateAlgorithm or subscribed to on AWS Marketplace): the local SageMaker keeps none, and "
            f"{TOOLKIT_ONLY}"
        )
    if algorithm.get("ContainerEntrypoint"):
        yield (
            "AlgorithmSpecification.ContainerEntrypoint runs its own command in the container (as "
            f"ModelTrainer's sm_train.sh does): {TOOLKIT_ONLY}"
        )
    elif algorithm.get("ContainerArguments"):
        yield (
            "AlgorithmSpecification.ContainerArguments run in the container in place of its train "
            f"command: {TOOLKIT_ONLY}"
        )
    else:
        missing = [name for name in ENTRY_POINT if name not in object_member(request, "HyperParameters")]
        if missing:
            yield f"hyperparameters {' and '.join(missing)} are missing: {TOOLKIT_ONLY}"
    for channel in object_items(request.get("InputDataConfig")):
        where = f"channel {channel.get('ChannelName')!r}"
        yield from _pipe(f"{where} InputMode", channel.get("InputMode"))
        source = object_member(channel, "DataSource")
        if "S3DataSource" not in source:
            yield f"{where} reads {_named(source, ())}, not an S3DataSource: {FILES_ONLY}"
        else:
            yield from _s3_prefix(where, object_member(source, "S3DataSource").get("S3DataType"))
    yield from metric_definition_problems(request)
    if object_member(request, "OutputDataConfig").get("CompressionType") == "NONE":
        yield (
            "OutputDataConfig.CompressionType NONE asks SageMaker to upload the model directory "
            "uncompressed: a local job uploads model.tar.gz"
        )
    yield from _debugger(request)


def _chosen_capacity(resources: Mapping[str, Any]) -> Iterator[str]:
    """The instances SageMaker would choose or reserve rather than the one instance type named."""
    for member, asks in CHOSEN_CAPACITY.items():
        if resources.get(member):
            yield f"ResourceConfig.{member} {asks}: {NAMED_INSTANCE}"
    for member in ("SelectedInstanceType", "SelectedInstanceCount"):
        if member in resources:
            yield f"ResourceConfig.{member} is DescribeTrainingJob's to answer: CreateTrainingJob takes none"


def _positive(value: Any) -> bool:
    """A literal number above zero (an expression is checked once it is resolved)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _debugger(request: Mapping[str, Any]) -> Iterator[str]:
    """SageMaker Debugger and Profiler: a local job runs no hook, profiler or rule evaluation job, so
    its DescribeTrainingJob could not report what SageMaker reports about them."""
    if request.get("DebugHookConfig"):
        yield (
            "DebugHookConfig asks SageMaker Debugger's hook to save the job's tensors to S3: a local job "
            "runs no Debugger hook and saves no tensors"
        )
    for member, statuses in (
        ("DebugRuleConfigurations", "DebugRuleEvaluationStatuses"),
        ("ProfilerRuleConfigurations", "ProfilerRuleEvaluationStatuses"),
    ):
        if request.get(member):
            yield (
                f"{member} asks for rule evaluation jobs beside the training job: a local job runs no "
                f"rule evaluation and reports no {statuses}"
            )
    profiler = request.get("ProfilerConfig")
    if isinstance(profiler, Mapping) and profiler.get("DisableProfiler", False) is False:
        yield (
            "ProfilerConfig without DisableProfiler true asks SageMaker Debugger to profile the job's "
            "system and framework metrics: a local job is not profiled (its ProfilingStatus is Disabled)"
        )


def _processing_limits(request: Mapping[str, Any]) -> Iterator[str]:
    yield from _isolation(request)
    if object_member(request, "NetworkConfig").get("VpcConfig"):
        yield f"NetworkConfig.VpcConfig {VPC}"
    resources = object_member(request, "ProcessingResources")
    where = "ProcessingResources.ClusterConfig"
    yield from _instance_type_named(where, resources.get("ClusterConfig"))
    cluster = object_member(resources, "ClusterConfig")
    yield from _instances(f"{where}.InstanceCount", cluster.get("InstanceCount"))
    yield from instance_problems(f"{where}.InstanceType", cluster.get("InstanceType"))
    for item in object_items(request.get("ProcessingInputs")):
        where = f"input {item.get('InputName')!r}"
        if "S3Input" not in item:
            yield f"{where} reads {_named(item, ('InputName', 'AppManaged'))}, not an S3Input: {FILES_ONLY}"
            continue
        s3 = object_member(item, "S3Input")
        yield from _s3_prefix(where, s3.get("S3DataType"))
        yield from _pipe(f"{where} S3InputMode", s3.get("S3InputMode"))
        if s3.get("S3CompressionType") == "Gzip":
            yield f"{where} S3CompressionType Gzip streams decompressed data through a pipe: {FILES_ONLY}"
    for item in object_items(object_member(request, "ProcessingOutputConfig").get("Outputs")):
        if item.get("S3Output") is None:
            yield (
                f"output {item.get('OutputName')!r} writes {_named(item, ('OutputName', 'AppManaged'))}, "
                "not an S3Output: a local job uploads files to S3 only"
            )


def _named(item: Mapping[str, Any], besides: tuple[str, ...]) -> str:
    """The sources or destinations an item names instead of S3, for the message."""
    return " and ".join(key for key in item if key not in besides) or "nothing"


def _isolation(request: Mapping[str, Any]) -> Iterator[str]:
    unavailable = isolation_unavailable() if network_isolated(request) else ""
    if unavailable:
        yield f"EnableNetworkIsolation: {unavailable}, and a local job is not run with the network instead"


def _instance_type_named(where: str, resources: Any) -> Iterator[str]:
    """Resources given as an object name their InstanceType: the service model leaves it optional
    for instances SageMaker chooses, which are refused for themselves (InstanceGroups,
    InstancePreferences) and so stand in its place here."""
    if not isinstance(resources, Mapping) or is_expression(resources):
        return
    if all(resources.get(member) is None for member in INSTANCES_NAMED_BY):
        yield f"{where} names no InstanceType: {NAMED_INSTANCE}"


def _instances(where: str, count: Any) -> Iterator[str]:
    if isinstance(count, int) and not isinstance(count, bool) and count > 1:
        yield f"{where} {count}: {ONE_INSTANCE}"


def _pipe(where: str, mode: Any) -> Iterator[str]:
    if mode == "Pipe":
        yield f"{where} Pipe streams the data through a FIFO: {FILES_ONLY} (File or FastFile)"


def _s3_prefix(where: str, data_type: Any) -> Iterator[str]:
    if isinstance(data_type, str) and data_type != "S3Prefix":
        yield f"{where} S3DataType {data_type} lists its objects in a manifest: {FILES_ONLY} under a prefix"
