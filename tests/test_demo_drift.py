"""demo-drift finds its familiar traffic from what the endpoint serves, on S3 (moto) as locally,
and says which link is missing instead of falling back to other data."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, tzinfo
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto_cloud import BUCKET

from pipelines import demo_drift
from pipelines.aws import Clients, S3Storage
from pipelines.settings import Settings

PIPELINE = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/sentiment-classifier/execution/"
PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/sentiment-classifier/2"
TRAIN_CSV = "review_text,sentiment\nthe room was spotless,1\n\"noisy, cold and dirty\",0\n"


class FakeSageMaker:
    """The describe/list calls demo-drift makes, answered from a small registry of one endpoint."""

    def __init__(self, package_env: dict[str, str], executions: dict[str, list[dict[str, Any]]]) -> None:
        self.package_env = package_env
        self.executions = executions  # execution ARN -> its steps, newest execution first

    def describe_endpoint(self, EndpointName: str) -> dict[str, Any]:
        if EndpointName != "sentiment-classifier":
            raise ClientError({"Error": {"Code": "ValidationException",
                                         "Message": f"Could not find endpoint {EndpointName}."}},
                              "DescribeEndpoint")
        return {"EndpointConfigName": "config-v2"}

    def describe_endpoint_config(self, EndpointConfigName: str) -> dict[str, Any]:
        return {"ProductionVariants": [{"ModelName": "model-v2"}]}

    def describe_model(self, ModelName: str) -> dict[str, Any]:
        return {"ModelName": ModelName, "PrimaryContainer": {
            "Environment": self.package_env, "ModelDataUrl": f"s3://{BUCKET}/model.tar.gz"}}

    def describe_model_package(self, ModelPackageName: str) -> dict[str, Any]:
        uri = f"s3://{BUCKET}/sentiment-classifier/executions/e2/baseline/statistics.json"
        return {"DriftCheckBaselines": {"ModelDataQuality": {"Statistics": {"S3Uri": uri}}}}

    def get_paginator(self, operation: str) -> Any:
        executions = self.executions

        class Pages:
            def paginate(self, **kwargs: Any) -> list[dict[str, Any]]:
                if operation == "list_pipeline_executions":
                    return [{"PipelineExecutionSummaries": [
                        {"PipelineExecutionArn": arn} for arn in executions]}]
                return [{"PipelineExecutionSteps": executions[kwargs["PipelineExecutionArn"]]}]

        return Pages()


def registered(arn: str) -> list[dict[str, Any]]:
    return [{"StepName": "Preprocess", "Metadata": {"ProcessingJob": {"Arn": "job"}}},
            {"StepName": "RegisterModel", "Metadata": {"RegisterModel": {"Arn": arn}}}]


def clients_with(settings: Settings, sm: FakeSageMaker, s3: Any) -> Clients:
    clients = Clients(settings)
    clients.sagemaker = sm
    clients.storage = S3Storage(s3)
    return clients


def test_familiar_traffic_is_the_training_split_of_the_registering_execution(
    settings: Settings, s3: Any
) -> None:
    s3.put_object(Bucket=BUCKET, Key="sentiment-classifier/executions/e2/train/train.csv",
                  Body=TRAIN_CSV.encode())
    s3.put_object(Bucket=BUCKET, Key="sentiment-classifier/executions/e3/train/train.csv",
                  Body=b"review_text,sentiment\nsomething else entirely,1\n")
    sm = FakeSageMaker({"MODEL_PACKAGE_ARN": PACKAGE}, {
        PIPELINE + "e3": registered(PACKAGE.replace("/2", "/3")),  # a newer version, not served
        PIPELINE + "e2": registered(PACKAGE),
        PIPELINE + "e1": registered(PACKAGE.replace("/2", "/1")),
    })
    found = demo_drift.familiar_data(clients_with(settings, sm, s3))
    assert found.execution_arn == PIPELINE + "e2"
    assert found.uri == f"s3://{BUCKET}/sentiment-classifier/executions/e2/train/train.csv"
    assert found.reviews == ["the room was spotless", "noisy, cold and dirty"]


def test_a_version_trained_on_a_cached_preprocess_reads_the_split_where_it_was_written(
    settings: Settings, s3: Any
) -> None:
    s3.put_object(Bucket=BUCKET, Key="sentiment-classifier/executions/e1/train/train.csv",
                  Body=TRAIN_CSV.encode())
    steps = registered(PACKAGE)
    steps[0]["CacheHitResult"] = {"SourcePipelineExecutionArn": PIPELINE + "e1"}
    sm = FakeSageMaker({"MODEL_PACKAGE_ARN": PACKAGE}, {PIPELINE + "e2": steps})
    found = demo_drift.familiar_data(clients_with(settings, sm, s3))
    assert found.execution_arn == PIPELINE + "e2"
    assert found.uri == f"s3://{BUCKET}/sentiment-classifier/executions/e1/train/train.csv"


@pytest.mark.parametrize(("package_env", "executions", "says"), [
    ({}, {}, "not a registered version"),
    ({"MODEL_PACKAGE_ARN": PACKAGE}, {PIPELINE + "e1": registered("other")},
     "was not registered by any execution of pipeline sentiment-classifier"),
    ({"MODEL_PACKAGE_ARN": PACKAGE}, {PIPELINE + "e2": registered(PACKAGE)},
     f"is no longer at s3://{BUCKET}/sentiment-classifier/executions/e2/train/train.csv"),
])
def test_a_missing_link_is_named(
    settings: Settings, s3: Any, package_env: dict[str, str],
    executions: dict[str, list[dict[str, Any]]], says: str,
) -> None:
    clients = clients_with(settings, FakeSageMaker(package_env, executions), s3)
    with pytest.raises(demo_drift.NoFamiliarData, match=says):
        demo_drift.familiar_data(clients)


def test_main_explains_and_exits_2_without_an_endpoint(
    settings: Settings, s3: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sm = FakeSageMaker({}, {})
    monkeypatch.setattr(demo_drift, "Clients", lambda given: clients_with(given, sm, s3))
    assert demo_drift.main(replace(settings, endpoint_name="nope")) == 2
    err = capsys.readouterr().err
    assert err.startswith("cannot show drift on familiar traffic: endpoint nope cannot be described")


@pytest.mark.parametrize(("size", "sent"), [(3, 201), (200, 200), (1600, 1600), (5000, 2000)])
def test_familiar_traffic_covers_the_split_and_is_enough_to_judge(size: int, sent: int) -> None:
    reviews = [f"review {i}" for i in range(size)]
    traffic = demo_drift.familiar_traffic(reviews)
    assert len(traffic) == sent
    assert set(traffic) <= set(reviews)
    if size <= demo_drift.MAX_FAMILIAR:
        assert set(traffic) == set(reviews)


def test_phases_are_bounded_by_whole_seconds_as_sagemaker_stamps_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """inferenceTime is to the second, so a bound inside a second would split that second's records
    between the phases: each bound is the next whole second, waited for."""

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Frozen:
            return cls(2026, 11, 22, 20, 0, 5, 250_000, tzinfo=tz)

    monkeypatch.setattr(demo_drift, "datetime", Frozen)
    slept: list[float] = []
    assert demo_drift.next_whole_second(slept.append) == "2026-11-22T20:00:06Z"
    assert slept == [0.75]
