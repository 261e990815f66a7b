"""Tag keys starting with aws: are AWS's own: SageMaker refuses a request that sets or removes one,
whichever operation carries it, and creates or changes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from .shapes_support import send, with_tokens
from .world import FAIL_ONLY, IMAGE, MODEL_DATA, ROLE, World, local_sagemaker

RESERVED = "System prefix 'aws:' reserved for AWS usage in tag key: "


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = World(local_sagemaker(tmp_path_factory.mktemp("tags")))
    made.endpoint_config(made.model("m"), "c")
    made.pipeline(FAIL_ONLY, "p")
    yield made
    made.backend.shutdown()


def answer(world: World, name: str, **request: Any) -> tuple[int, dict[str, Any]]:
    reply = send(world.dispatcher, "SageMaker", name, with_tokens("SageMaker", name, request))
    return reply.status, json.loads(reply.body) if reply.body else {}


@dataclass(frozen=True)
class Creation:
    """An operation that takes Tags: its request without them, and the Describe call that finds what
    it made by name."""

    operation: str
    request: Callable[[str], dict[str, Any]]
    describe: str
    name_member: str


VARIANT = {
    "VariantName": "AllTraffic", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large",
}
CONTAINER = {"Image": IMAGE, "ModelDataUrl": MODEL_DATA}
CREATIONS = [
    Creation("CreatePipeline", lambda name: {
        "PipelineName": name, "PipelineDefinition": json.dumps(FAIL_ONLY), "RoleArn": ROLE,
    }, "DescribePipeline", "PipelineName"),
    Creation("CreateModelPackageGroup", lambda name: {"ModelPackageGroupName": name},
             "DescribeModelPackageGroup", "ModelPackageGroupName"),
    Creation("CreateModel", lambda name: {
        "ModelName": name, "ExecutionRoleArn": ROLE, "PrimaryContainer": CONTAINER,
    }, "DescribeModel", "ModelName"),
    Creation("CreateEndpointConfig", lambda name: {
        "EndpointConfigName": name, "ProductionVariants": [VARIANT],
    }, "DescribeEndpointConfig", "EndpointConfigName"),
    Creation("CreateEndpoint", lambda name: {"EndpointName": name, "EndpointConfigName": "c"},
             "DescribeEndpoint", "EndpointName"),
]
EACH_CREATION = pytest.mark.parametrize("creation", CREATIONS, ids=[c.operation for c in CREATIONS])


@EACH_CREATION
@pytest.mark.parametrize("key", ["aws:team", "AWS:Team", "Aws:cloudformation:stack-name"])
def test_a_creation_with_a_reserved_tag_key_is_refused_and_creates_nothing(
    world: World, creation: Creation, key: str
) -> None:
    name = world.fresh("tagged")
    tags = [{"Key": key, "Value": "x"}]
    status, body = answer(world, creation.operation, **creation.request(name), Tags=tags)
    assert (status, body["__type"], body["message"]) == (400, "ValidationException", RESERVED + key)
    status, body = answer(world, creation.describe, **{creation.name_member: name})
    assert status == 400 and "not" in body["message"], body  # "does not exist" / "Could not find"


@EACH_CREATION
def test_a_key_holding_aws_elsewhere_is_an_ordinary_tag(world: World, creation: Creation) -> None:
    made = world.sm(creation.operation, **creation.request(world.fresh("tagged")),
                    Tags=[{"Key": "team:aws", "Value": "x"}])
    arn = next(value for value in made.values() if isinstance(value, str) and value.startswith("arn:"))
    assert world.sm("ListTags", ResourceArn=arn)["Tags"] == [{"Key": "team:aws", "Value": "x"}]


def test_adding_or_deleting_a_reserved_key_is_refused_and_leaves_the_tags_as_they_were(world: World) -> None:
    arn = world.sm("DescribePipeline", PipelineName="p")["PipelineArn"]
    world.sm("AddTags", ResourceArn=arn, Tags=[{"Key": "owner", "Value": "ml"}])
    status, body = answer(world, "AddTags", ResourceArn=arn,
                          Tags=[{"Key": "stage", "Value": "prod"}, {"Key": "aws:owner", "Value": "x"}])
    assert (status, body["message"]) == (400, RESERVED + "aws:owner")
    reserved = "AWS:cloudformation:stack-id"
    status, body = answer(world, "DeleteTags", ResourceArn=arn, TagKeys=["owner", reserved])
    assert (status, body["message"]) == (400, RESERVED + reserved)
    assert world.sm("ListTags", ResourceArn=arn)["Tags"] == [{"Key": "owner", "Value": "ml"}]


def test_a_resource_holds_at_most_50_tags_counting_those_it_has_and_a_refused_add_changes_none(
    world: World,
) -> None:
    arn = world.sm("DescribeEndpointConfig", EndpointConfigName="c")["EndpointConfigArn"]
    world.sm("AddTags", ResourceArn=arn, Tags=[{"Key": f"k{i:02}", "Value": "v"} for i in range(30)])
    before = world.sm("ListTags", ResourceArn=arn)["Tags"]

    status, body = answer(world, "AddTags", ResourceArn=arn,
                          Tags=[{"Key": f"n{i:02}", "Value": "v"} for i in range(21)])
    assert (status, body["__type"].rpartition("#")[2]) == (400, "ValidationException")
    assert f"{arn} would have 51 tags" in body["message"] and "at most 50" in body["message"]
    assert world.sm("ListTags", ResourceArn=arn)["Tags"] == before
    again = [{"Key": f"k{i:02}", "Value": "new"} for i in range(30)] + [
        {"Key": f"n{i:02}", "Value": "v"} for i in range(20)]
    world.sm("AddTags", ResourceArn=arn, Tags=again)  # a key given again is not one more
    assert len(world.sm("ListTags", ResourceArn=arn, MaxResults=100)["Tags"]) == 50
