"""CreatePipeline and UpdatePipeline read a definition from the S3 object PipelineDefinitionS3Location
names, as the SDK sends a definition of 100 KB or more."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from pipelines.local.api.protocol import Dispatcher

from .shapes_support import send
from .world import FAIL_ONLY, ROLE, local_sagemaker

KEY = "definitions/p.json"


@pytest.fixture
def world(tmp_path: Path) -> tuple[Dispatcher, Any]:
    backend = local_sagemaker(tmp_path)
    return Dispatcher(backend), backend.context.store


def call(dispatcher: Dispatcher, operation: str, **request: Any) -> tuple[int, dict[str, Any]]:
    reply = send(dispatcher, "SageMaker", operation, request)
    return reply.status, json.loads(reply.body)


def test_a_definition_is_read_from_the_s3_object_and_version_named(world: tuple[Dispatcher, Any]) -> None:
    dispatcher, store = world
    first = json.dumps(FAIL_ONLY)
    changed = copy.deepcopy(FAIL_ONLY)
    changed["Parameters"][0]["DefaultValue"] = "changed"
    store.put_bytes(f"s3://bucket/{KEY}", first.encode())
    first_version = store.versions(f"s3://bucket/{KEY}")[-1]
    store.put_bytes(f"s3://bucket/{KEY}", json.dumps(changed).encode())

    location = {"Bucket": "bucket", "ObjectKey": KEY, "VersionId": first_version}
    status, _ = call(dispatcher, "CreatePipeline", PipelineName="p", RoleArn=ROLE,
                     ClientRequestToken="t" * 32, PipelineDefinitionS3Location=location)
    assert status == 200
    assert described(dispatcher) == first

    status, _ = call(dispatcher, "UpdatePipeline", PipelineName="p",
                     PipelineDefinitionS3Location={"Bucket": "bucket", "ObjectKey": KEY})
    assert status == 200
    assert described(dispatcher) == json.dumps(changed)


def described(dispatcher: Dispatcher) -> str:
    return str(call(dispatcher, "DescribePipeline", PipelineName="p")[1]["PipelineDefinition"])


@pytest.mark.parametrize(
    ("request_members", "message"),
    [
        ({"PipelineDefinitionS3Location": {"Bucket": "bucket", "ObjectKey": "missing.json"}},
         "Could not read the pipeline definition at s3://bucket/missing.json"),
        ({"PipelineDefinitionS3Location": {"Bucket": "bucket", "ObjectKey": KEY},
          "PipelineDefinition": json.dumps(FAIL_ONLY)}, "not both"),
        ({}, "PipelineDefinition or PipelineDefinitionS3Location is required"),
    ],
)
def test_a_definition_that_cannot_be_read_is_refused(
    world: tuple[Dispatcher, Any], request_members: dict[str, Any], message: str
) -> None:
    dispatcher, store = world
    store.put_bytes(f"s3://bucket/{KEY}", json.dumps(FAIL_ONLY).encode())
    status, error = call(dispatcher, "CreatePipeline", PipelineName="p", RoleArn=ROLE,
                         ClientRequestToken="t" * 32, **request_members)
    assert (status, error["__type"]) == (400, "ValidationException")
    assert message in error["message"]
    assert call(dispatcher, "DescribePipeline", PipelineName="p")[0] == 400
