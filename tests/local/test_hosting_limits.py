"""Models and endpoint configurations that local hosting cannot serve as SageMaker would are refused
when they are created, naming what they ask for, and nothing is stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from pipelines.local.api.protocol import Dispatcher
from pipelines.local.hosting import limits
from pipelines.local.system.instance_types import INSTANCES

from .shapes_support import send
from .world import BUCKET, IMAGE, MODEL_DATA, ROLE, local_sagemaker

CONTAINER = {"Image": IMAGE, "ModelDataUrl": MODEL_DATA}
VARIANT = {"VariantName": "AllTraffic", "ModelName": "m", "InitialInstanceCount": 1,
           "InstanceType": "ml.m5.large"}


@pytest.fixture
def dispatcher(tmp_path: Path) -> Dispatcher:
    served = Dispatcher(local_sagemaker(tmp_path))
    reply = send(served, "SageMaker", "CreateModel", {"ModelName": "m", "PrimaryContainer": CONTAINER,
                                                       "ExecutionRoleArn": ROLE})
    assert reply.status == 200, reply.body
    return served


def refused(dispatcher: Dispatcher, operation: str, request: dict[str, Any], describe: dict[str, str]) -> str:
    reply = send(dispatcher, "SageMaker", operation, request)
    error = json.loads(reply.body)
    assert (reply.status, error.get("__type")) == (400, "ValidationException"), reply.body
    assert send(dispatcher, "SageMaker", operation.replace("Create", "Describe"), describe).status == 400
    return str(error["message"])


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ({"Containers": [CONTAINER, {**CONTAINER, "ModelDataUrl": f"{BUCKET}/second.tar.gz"}]},
         "Containers holds 2 containers, an inference pipeline SageMaker runs one after another: a local "
         "model server runs one container's inference code"),
        ({"PrimaryContainer": {**CONTAINER, "Mode": "MultiModel", "ModelDataUrl": f"{BUCKET}/models/"}},
         "container Mode MultiModel asks for a multi-model endpoint"),
        ({"PrimaryContainer": {"Image": IMAGE, "ModelDataSource": {"S3DataSource": {
            "S3Uri": f"{BUCKET}/weights/", "S3DataType": "S3Prefix", "CompressionType": "None"}}}},
         "container ModelDataSource serves model data from S3 as it is stored, uncompressed: a local model "
         "server serves the container's own Image with its ModelDataUrl (a model.tar.gz) unpacked at "
         "/opt/ml/model"),
        ({"PrimaryContainer": {**CONTAINER, "AdditionalModelDataSources": [{
            "ChannelName": "draft", "S3DataSource": {
                "S3Uri": f"{BUCKET}/draft/", "S3DataType": "S3Prefix", "CompressionType": "None"}}]}},
         "container AdditionalModelDataSources adds model data from more S3 locations"),
        ({"Containers": [{"ModelPackageName": "arn:aws:sagemaker:us-east-1:000000000000:model-package/g/1"}]},
         "container ModelPackageName serves a model package's containers (its image, model data and "
         "variables)"),
        ({"PrimaryContainer": {"ModelDataUrl": MODEL_DATA}},
         "A model needs a container with an Image: PrimaryContainer or Containers."),
        ({}, "A model needs a container with an Image: PrimaryContainer or Containers."),
    ],
)
def test_a_model_local_hosting_cannot_serve_is_refused(
    dispatcher: Dispatcher, model: dict[str, Any], expected: str
) -> None:
    request = {"ModelName": "other", "ExecutionRoleArn": ROLE, **model}
    assert expected in refused(dispatcher, "CreateModel", request, {"ModelName": "other"})


def test_a_model_without_model_data_is_its_image_alone(dispatcher: Dispatcher) -> None:
    """ModelDataUrl is optional on SageMaker: the image serves with /opt/ml/model empty (inference
    code from S3, say); the model describes no model data."""
    request = {"ModelName": "image-only", "ExecutionRoleArn": ROLE, "PrimaryContainer": {"Image": IMAGE}}
    assert send(dispatcher, "SageMaker", "CreateModel", request).status == 200
    described = json.loads(send(dispatcher, "SageMaker", "DescribeModel", {"ModelName": "image-only"}).body)
    assert described["PrimaryContainer"] == {"Image": IMAGE, "Mode": "SingleModel"}


def test_a_network_isolated_model_is_refused_only_where_no_network_namespace_can_be_made(
    dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = {"ModelName": "other", "ExecutionRoleArn": ROLE, "PrimaryContainer": CONTAINER,
               "EnableNetworkIsolation": True}
    monkeypatch.setattr(limits, "isolation_unavailable", lambda: "no user namespaces here")
    assert refused(dispatcher, "CreateModel", request, {"ModelName": "other"}) == (
        "EnableNetworkIsolation asks for a model server with no network: no user namespaces here, and a "
        "local model server is not run with the network instead"
    )
    monkeypatch.setattr(limits, "isolation_unavailable", lambda: "")  # a machine that can provide it
    assert send(dispatcher, "SageMaker", "CreateModel", request).status == 200
    described = json.loads(send(dispatcher, "SageMaker", "DescribeModel", {"ModelName": "other"}).body)
    assert described["EnableNetworkIsolation"] is True


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"AsyncInferenceConfig": {"OutputConfig": {"S3OutputPath": f"{BUCKET}/async"}}},
         "AsyncInferenceConfig asks for asynchronous inference"),
        ({"ShadowProductionVariants": [{**VARIANT, "VariantName": "Shadow"}]},
         "ShadowProductionVariants would receive a copy of the production traffic"),
        ({"ExplainerConfig": {"ClarifyExplainerConfig": {"ShapConfig": {
            "ShapBaselineConfig": {"ShapBaseline": "0"}}}}}, "ExplainerConfig asks for online explanations"),
    ],
)
def test_an_endpoint_config_local_hosting_cannot_serve_is_refused(
    dispatcher: Dispatcher, config: dict[str, Any], expected: str
) -> None:
    request = {"EndpointConfigName": "c", "ProductionVariants": [VARIANT], **config}
    assert expected in refused(dispatcher, "CreateEndpointConfig", request, {"EndpointConfigName": "c"})


VPC = {"SecurityGroupIds": ["sg-0123456789abcdef0"], "Subnets": ["subnet-0123456789abcdef0"]}


def test_a_model_in_a_vpc_is_refused(dispatcher: Dispatcher) -> None:
    request = {"ModelName": "other", "ExecutionRoleArn": ROLE, "PrimaryContainer": CONTAINER,
               "VpcConfig": VPC}
    assert refused(dispatcher, "CreateModel", request, {"ModelName": "other"}) == (
        "VpcConfig connects model containers to a VPC's subnets: a local model server uses this "
        "machine's network"
    )


@pytest.mark.parametrize(
    ("variant", "config", "expected"),
    [
        ({"ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}, {},
         "ProductionVariants.1.ServerlessConfig asks for a serverless variant (memory size, concurrency "
         "limits, cold starts): a local variant's instances are model server processes on this machine"),
        ({"ManagedInstanceScaling": {"Status": "ENABLED", "MinInstanceCount": 1, "MaxInstanceCount": 2}}, {},
         "ProductionVariants.1.ManagedInstanceScaling asks SageMaker to scale the variant's instances"),
        ({"AcceleratorType": "ml.eia2.medium"}, {},
         "ProductionVariants.1.AcceleratorType asks for an Elastic Inference accelerator"),
        ({"CoreDumpConfig": {"DestinationS3Uri": f"{BUCKET}/dumps"}}, {},
         "ProductionVariants.1.CoreDumpConfig asks for the model container's core dumps in S3"),
        ({"RoutingConfig": {"RoutingStrategy": "PREFIX_AWARE"}}, {},
         "ProductionVariants.1.RoutingConfig.RoutingStrategy PREFIX_AWARE routes by what a request shares "
         "with earlier ones: a local variant routes RANDOM or LEAST_OUTSTANDING_REQUESTS"),
        ({"InstancePools": [{"InstanceType": "ml.m5.large", "Priority": 1},
                            {"InstanceType": "ml.c5.large", "Priority": 2}]}, {},
         "ProductionVariants.1.InstancePools asks for instances of several types, provisioned in order "
         "of priority"),
        ({"CapacityReservationConfig": {"CapacityReservationPreference": "capacity-reservations-only",
                                        "MlReservationArn": "arn:aws:sagemaker:us-east-1:000000000000:"
                                                            "training-plan/plan"}}, {},
         "ProductionVariants.1.CapacityReservationConfig asks for instances from a capacity reservation"),
        ({"AcceleratorPartitionLayouts": [{"AcceleratorPartitionTypes": ["mig-3g.40gb"]}]}, {},
         "ProductionVariants.1.AcceleratorPartitionLayouts asks for partitions of the instances' GPUs"),
        ({}, {"VpcConfig": VPC}, "VpcConfig connects model containers to a VPC's subnets"),
        ({}, {"MetricsConfig": {"EnableEnhancedMetrics": True}},
         "MetricsConfig asks for utilization metrics in CloudWatch: local endpoints publish none"),
        ({}, {"CrossRegionTrafficConfig": {"MaxInvocationsPerSecondPerInstance": 10,
                                           "MaxCrossRegionPercentPerEndpoint": 50}},
         "CrossRegionTrafficConfig caps requests from inference routers in other Regions"),
    ],
)
def test_an_endpoint_config_asking_for_what_a_local_variant_lacks_is_refused(
    dispatcher: Dispatcher, variant: dict[str, Any], config: dict[str, Any], expected: str
) -> None:
    request = {"EndpointConfigName": "c", "ProductionVariants": [{**VARIANT, **variant}], **config}
    assert expected in refused(dispatcher, "CreateEndpointConfig", request, {"EndpointConfigName": "c"})


def test_a_variant_without_a_model_is_refused_as_one_for_inference_components(dispatcher: Dispatcher) -> None:
    variant = {key: value for key, value in VARIANT.items() if key != "ModelName"}
    request = {"EndpointConfigName": "c", "ProductionVariants": [VARIANT, {**variant, "VariantName": "B"}],
               "ExecutionRoleArn": ROLE}
    assert refused(dispatcher, "CreateEndpointConfig", request, {"EndpointConfigName": "c"}) == (
        f"ProductionVariants.2 names no ModelName: {limits.INFERENCE_COMPONENTS}"
    )


def test_a_variant_without_an_instance_type_is_refused(dispatcher: Dispatcher) -> None:
    variant = {key: value for key, value in VARIANT.items() if key != "InstanceType"}
    request = {"EndpointConfigName": "c", "ProductionVariants": [variant]}
    assert refused(dispatcher, "CreateEndpointConfig", request, {"EndpointConfigName": "c"}) == (
        f"ProductionVariants.1 names no InstanceType: {limits.RUNS_ON}"
    )


@pytest.mark.parametrize("instance_type", ["ml.g5.xlarge", "ml.inf1.xlarge", "ml.c6g.large"])
def test_an_instance_type_whose_memory_the_local_target_does_not_reproduce_is_refused_by_name(
    dispatcher: Dispatcher, instance_type: str
) -> None:
    request = {"EndpointConfigName": "c", "ProductionVariants": [{**VARIANT, "InstanceType": instance_type}]}
    assert refused(dispatcher, "CreateEndpointConfig", request, {"EndpointConfigName": "c"}) == (
        f"ProductionVariants.1.InstanceType {instance_type} is not an instance type the local target "
        f"reproduces: {limits.RUNS_ON}"
    )


def test_an_endpoint_config_is_accepted_on_exactly_the_instance_types_of_the_table(
    dispatcher: Dispatcher,
) -> None:
    offered = botocore.session.get_session().get_service_model("sagemaker").shape_for(
        "ProductionVariantInstanceType"
    ).enum
    accepted = set()
    for number, instance_type in enumerate(offered):
        request = {"EndpointConfigName": f"c{number}",
                   "ProductionVariants": [{**VARIANT, "InstanceType": instance_type}]}
        if send(dispatcher, "SageMaker", "CreateEndpointConfig", request).status == 200:
            accepted.add(instance_type)
    assert "ml.m5.large" in accepted and accepted == set(INSTANCES) & set(offered)


def test_settings_switched_off_ask_for_nothing(dispatcher: Dispatcher) -> None:
    variant = {**VARIANT, "ManagedInstanceScaling": {"Status": "DISABLED"}}
    config = {"EndpointConfigName": "c", "ProductionVariants": [variant],
              "MetricsConfig": {"EnableEnhancedMetrics": False}}
    assert send(dispatcher, "SageMaker", "CreateEndpointConfig", config).status == 200


def test_a_one_container_real_time_configuration_is_accepted(dispatcher: Dispatcher) -> None:
    model = {"ModelName": "single", "ExecutionRoleArn": ROLE, "Containers": [CONTAINER]}
    assert send(dispatcher, "SageMaker", "CreateModel", model).status == 200
    config = {"EndpointConfigName": "c", "ProductionVariants": [{**VARIANT, "ModelName": "single"}]}
    assert send(dispatcher, "SageMaker", "CreateEndpointConfig", config).status == 200


ROLLOUTS = [
    ({"RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1},
                              "WaitIntervalInSeconds": 60}},
     "DeploymentConfig.RollingUpdatePolicy replaces instances in batches"),
    ({"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {
        "Type": "CANARY", "WaitIntervalInSeconds": 60,
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}}}},
     "TrafficRoutingConfiguration CANARY shifts traffic in steps"),
    ({"BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}},
      "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "errors"}]}},
     "AutoRollbackConfiguration rolls back when a CloudWatch alarm fires"),
]


@pytest.mark.parametrize(("deployment", "expected"), ROLLOUTS)
def test_a_rollout_a_local_update_cannot_reproduce_is_refused(
    dispatcher: Dispatcher, deployment: dict[str, Any], expected: str
) -> None:
    config = {"EndpointConfigName": "c", "ProductionVariants": [VARIANT]}
    assert send(dispatcher, "SageMaker", "CreateEndpointConfig", config).status == 200
    request = {"EndpointName": "ep", "EndpointConfigName": "c", "DeploymentConfig": deployment}
    assert expected in refused(dispatcher, "CreateEndpoint", request, {"EndpointName": "ep"})


def test_an_all_at_once_blue_green_rollout_is_accepted(dispatcher: Dispatcher) -> None:
    deployment = {"BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
        "TerminationWaitInSeconds": 0}}
    config = {"EndpointConfigName": "c", "ProductionVariants": [VARIANT]}
    assert send(dispatcher, "SageMaker", "CreateEndpointConfig", config).status == 200
    request = {"EndpointName": "ep", "EndpointConfigName": "c", "DeploymentConfig": deployment}
    assert send(dispatcher, "SageMaker", "CreateEndpoint", request).status == 200
