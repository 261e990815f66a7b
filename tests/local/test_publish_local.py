"""What the infra stack makes on AWS, made on the local target, which has none: the project's bucket
(by upsert and `data upload`, through CreateBucket), and upsert's deploy function, created on the
first upsert, whose configuration follows the settings on every later one."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pipelines.code_bundle import CodeBundle
from pipelines.local.api.protocol import Dispatcher
from pipelines.local.lambdas.runtime import Environment
from pipelines.local.service.backend import LocalSageMaker
from pipelines.publish import (
    PipelineSpec,
    begin_publishing,
    provision_local_bucket,
    publish_deploy_function,
    upsert_pipeline,
)
from pipelines.settings import Settings, load_settings

from .inprocess import client


class RecordedLambda:
    """An in-process boto3 Lambda client of the local server that records the operations called."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.client = client(dispatcher, "lambda")
        self.calls: list[str] = []
        self.client.meta.events.register("before-call", lambda model, **_: self.calls.append(model.name))

    def changes(self) -> list[str]:
        """The calls, each run of polls (a waiter's) as one."""
        return [call for i, call in enumerate(self.calls) if i == 0 or self.calls[i - 1] != call]


@pytest.fixture
def lambda_(tmp_path: Path) -> Iterator[RecordedLambda]:
    backend = LocalSageMaker(tmp_path / "state", "us-east-1", "http://127.0.0.1:1")
    yield RecordedLambda(Dispatcher(backend, check_responses=True))
    backend.shutdown()


def local_settings(tmp_path: Path, **values: str) -> Settings:
    return load_settings({"target": "local", **values}, environ={}, config_file=tmp_path / "absent.toml")


@pytest.mark.parametrize(("region", "location"), [("us-east-1", None), ("eu-west-1", "eu-west-1")])
def test_the_projects_bucket_is_created_through_s3_where_the_local_target_is_provisioned(
    tmp_path: Path, region: str, location: str | None
) -> None:
    backend = LocalSageMaker(tmp_path / "state", region, "http://127.0.0.1:1")
    try:
        s3 = client(Dispatcher(backend, check_responses=True), "s3", region)
        calls: list[str] = []
        s3.meta.events.register("before-call", lambda model, **_: calls.append(model.name))
        settings = local_settings(tmp_path, region=region, bucket="project-bucket")
        clients = SimpleNamespace(settings=settings, s3=s3)
        provision_local_bucket(clients)  # type: ignore[arg-type]
        created = s3.list_buckets()["Buckets"]
        provision_local_bucket(clients)  # type: ignore[arg-type]  # found: kept as it was
        assert s3.list_buckets()["Buckets"] == created and [b["Name"] for b in created] == ["project-bucket"]
        assert s3.get_bucket_location(Bucket="project-bucket")["LocationConstraint"] == location
        assert calls.count("CreateBucket") == 2
    finally:
        backend.shutdown()


def publish(settings: Settings, lambda_: RecordedLambda, bundle: Any = None) -> dict[str, Any]:
    clients = SimpleNamespace(settings=settings, lambda_=lambda_.client)
    publish_deploy_function(clients, bundle or CodeBundle())  # type: ignore[arg-type]
    # Read through GetFunction: upsert's own polls are GetFunctionConfiguration.
    configuration: dict[str, Any] = lambda_.client.get_function(
        FunctionName=settings.deploy_function_name
    )["Configuration"]
    keys = ("Environment", "Handler", "Runtime", "Timeout", "MemorySize", "CodeSha256", "State",
            "LastUpdateStatus")
    return {key: configuration.get(key) for key in keys}


def first_name(tmp_path: Path) -> str:
    return local_settings(tmp_path).deploy_function_name


def changed_code() -> Any:
    """A bundle whose deploy.zip differs from CodeBundle's."""
    raw = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(CodeBundle().artifacts["deploy.zip"])) as original, \
            zipfile.ZipFile(raw, "w") as changed:
        for member in original.namelist():
            extra = b"\n# changed\n" if member == "deploy.py" else b""
            changed.writestr(member, original.read(member) + extra)
    return SimpleNamespace(artifacts={"deploy.zip": raw.getvalue()})


@pytest.fixture
def slow_init(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every environment's init phase takes half a second more: a change stays in progress that long."""
    initialise = Environment.initialise

    def slower(environment: Environment, deadline: float) -> str | None:
        time.sleep(0.5)
        return initialise(environment, deadline)

    monkeypatch.setattr(Environment, "initialise", slower)


def test_the_deploy_functions_configuration_follows_the_settings_on_every_upsert(
    tmp_path: Path, lambda_: RecordedLambda, slow_init: None
) -> None:
    first = publish(local_settings(tmp_path), lambda_)
    # Upsert returns once the function is Active: the next execution's Lambda step can run it.
    assert (first["State"], first["LastUpdateStatus"]) == ("Active", "Successful")
    assert lambda_.changes() == ["GetFunctionConfiguration", "CreateFunction", "PutFunctionEventInvokeConfig",
                                 "GetFunctionConfiguration", "GetFunction"]
    assert first["Environment"]["Variables"]["ENDPOINT_NAME"] == "sentiment-classifier"

    lambda_.calls.clear()
    lambda_.client.update_function_configuration(
        FunctionName=first_name(tmp_path), Environment={"Variables": {"ENDPOINT_NAME": "elsewhere"}}
    )
    again = publish(local_settings(tmp_path), lambda_)  # while that other change is InProgress
    # The code is the function's already: not sent again. The environment that change set goes
    # back to the settings' once that change is done (Lambda refuses a second one until then).
    assert lambda_.changes() == ["UpdateFunctionConfiguration", "GetFunctionConfiguration",
                                 "UpdateFunctionConfiguration", "PutFunctionEventInvokeConfig",
                                 "GetFunctionConfiguration", "GetFunction"]
    assert again == first

    lambda_.calls.clear()
    lambda_.client.update_function_configuration(
        FunctionName=first_name(tmp_path), Environment={"Variables": {"ENDPOINT_NAME": "elsewhere"}}
    )
    moved = publish(local_settings(tmp_path, endpoint_name="reviews-v2"), lambda_, changed_code())
    # New code, while that other change is InProgress: refused (ResourceConflictException) until
    # it is done, then sent; the configuration waits for the code's update, as Lambda requires,
    # and upsert for the configuration's, so that no execution runs the previous one.
    assert (moved["State"], moved["LastUpdateStatus"]) == ("Active", "Successful")
    assert lambda_.changes() == ["UpdateFunctionConfiguration", "GetFunctionConfiguration",
                                 "UpdateFunctionCode", "GetFunctionConfiguration", "UpdateFunctionCode",
                                 "GetFunctionConfiguration", "UpdateFunctionConfiguration",
                                 "PutFunctionEventInvokeConfig", "GetFunctionConfiguration", "GetFunction"]
    assert moved["Environment"]["Variables"]["ENDPOINT_NAME"] == "reviews-v2"
    assert (moved["Handler"], moved["Runtime"], moved["Timeout"], moved["MemorySize"]) == (
        "deploy.handler", "python3.12", 120, 256
    )
    assert moved["CodeSha256"] != first["CodeSha256"]


def test_a_function_whose_last_update_failed_is_sent_its_code_again(
    tmp_path: Path, lambda_: RecordedLambda, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = local_settings(tmp_path)
    publish(settings, lambda_)
    reading = lambda_.client.get_function_configuration

    def failed_once(**request: Any) -> dict[str, Any]:
        """The first read finds the same code, its last update Failed; later ones are Lambda's."""
        monkeypatch.setattr(lambda_.client, "get_function_configuration", reading)
        return {**reading(**request), "LastUpdateStatus": "Failed"}

    monkeypatch.setattr(lambda_.client, "get_function_configuration", failed_once)
    lambda_.calls.clear()
    mended = publish(settings, lambda_)
    assert lambda_.changes()[:2] == ["GetFunctionConfiguration", "UpdateFunctionCode"]
    assert mended["LastUpdateStatus"] == "Successful"


def test_a_function_another_upsert_created_since_the_first_look_is_updated_not_created_twice(
    tmp_path: Path, lambda_: RecordedLambda, monkeypatch: pytest.MonkeyPatch, slow_init: None
) -> None:
    """Two `make run-pipeline` at once on a fresh state: both looked before either created the
    function, and Lambda refused the second CreateFunction (ResourceConflictException), which
    ended that run."""
    settings = local_settings(tmp_path)
    reading = lambda_.client.get_function_configuration

    def created_meanwhile(**request: Any) -> dict[str, Any]:
        monkeypatch.setattr(lambda_.client, "get_function_configuration", reading)
        try:
            return reading(**request)  # not there yet: ResourceNotFoundException
        finally:
            other = SimpleNamespace(settings=settings, lambda_=client(lambda_.dispatcher, "lambda"))
            begin_publishing(other, CodeBundle())  # type: ignore[arg-type]  # the other upsert

    monkeypatch.setattr(lambda_.client, "get_function_configuration", created_meanwhile)
    published = publish(settings, lambda_)
    assert (published["State"], published["LastUpdateStatus"]) == ("Active", "Successful")
    # The refused create, then the function the other made, waited for as any existing one
    assert lambda_.changes() == ["GetFunctionConfiguration", "CreateFunction", "GetFunctionConfiguration",
                                 "PutFunctionEventInvokeConfig", "GetFunctionConfiguration", "GetFunction"]
    assert published["CodeSha256"] == publish(settings, lambda_)["CodeSha256"]


def test_a_pipeline_another_upsert_created_since_the_first_look_is_updated(
    tmp_path: Path, lambda_: RecordedLambda, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same race for the pipeline: SageMaker refuses the second CreatePipeline."""
    sm = client(lambda_.dispatcher, "sagemaker")
    settings = local_settings(tmp_path)
    fail = {"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": "stopped"}}
    spec = PipelineSpec("reviews", json.dumps({"Version": "2020-12-01", "Steps": [fail]}), "one step")
    describing = sm.describe_pipeline

    def created_meanwhile(**request: Any) -> dict[str, Any]:
        monkeypatch.setattr(sm, "describe_pipeline", describing)
        try:
            return describing(**request)  # not there yet: ResourceNotFound
        finally:
            sm.create_pipeline(PipelineName="reviews", PipelineDefinition=spec.definition,
                               RoleArn=settings.role_arn)

    monkeypatch.setattr(sm, "describe_pipeline", created_meanwhile)
    clients = SimpleNamespace(settings=settings, sagemaker=sm)
    arn, created = upsert_pipeline(clients, spec)  # type: ignore[arg-type]
    assert (arn, created) == ("arn:aws:sagemaker:us-east-1:000000000000:pipeline/reviews", False)
    versions = sm.list_pipeline_versions(PipelineName="reviews")["PipelineVersionSummaries"]
    assert [version["PipelineVersionId"] for version in versions] == [2, 1]


def test_the_deploy_function_is_retried_as_the_infra_stack_configures_it(
    tmp_path: Path, lambda_: RecordedLambda
) -> None:
    """Its retries and event age; the stack's SQS failure queue has no local counterpart."""
    settings = local_settings(tmp_path)
    publish(settings, lambda_)
    config = lambda_.client.get_function_event_invoke_config(FunctionName=settings.deploy_function_name)
    assert (config["MaximumRetryAttempts"], config["MaximumEventAgeInSeconds"]) == (2, 21600)
    assert config["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}
