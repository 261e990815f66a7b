"""Models and endpoint configurations that local hosting cannot serve as SageMaker would are refused
when they are created, naming what they ask for, and nothing is stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipelines.local.api.protocol import Dispatcher

from .shapes_support import send
from .world import BUCKET, IMAGE, ROLE, local_sagemaker

CONTAINER = {"Image": IMAGE, "ModelDataUrl": f"{BUCKET}/model.tar.gz"}
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
    ],
)
def test_a_model_local_hosting_cannot_serve_is_refused(
    dispatcher: Dispatcher, model: dict[str, Any], expected: str
) -> None:
    request = {"ModelName": "other", "ExecutionRoleArn": ROLE, **model}
    assert expected in refused(dispatcher, "CreateModel", request, {"ModelName": "other"})


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


def test_a_one_container_real_time_configuration_is_accepted(dispatcher: Dispatcher) -> None:
    model = {"ModelName": "single", "ExecutionRoleArn": ROLE, "Containers": [CONTAINER]}
    assert send(dispatcher, "SageMaker", "CreateModel", model).status == 200
    config = {"EndpointConfigName": "c", "ProductionVariants": [{**VARIANT, "ModelName": "single"}]}
    assert send(dispatcher, "SageMaker", "CreateEndpointConfig", config).status == 200
