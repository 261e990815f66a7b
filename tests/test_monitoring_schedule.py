"""monitoring_schedule.py against moto: idempotent schedule, topic and alarms."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipelines import monitoring_schedule as ms
from pipelines.settings import REPO_ROOT
from steps.monitoring.cloudwatch import FEATURES, NAMESPACE

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/scheduler-start-pipeline"
PIPELINE = "sentiment-classifier-monitoring"
ENDPOINT = "sentiment-classifier"


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        yield boto3.Session(region_name=REGION)


def setup(source: Any, **overrides: Any) -> dict[str, Any]:
    arguments = {"pipeline_name": PIPELINE, "endpoint_name": ENDPOINT, "schedule_role_arn": ROLE}
    return ms.setup_monitoring(source, **{**arguments, **overrides})


def alarms(session: boto3.Session) -> dict[str, dict[str, Any]]:
    found = session.client("cloudwatch").describe_alarms()["MetricAlarms"]
    return {alarm["AlarmName"]: alarm for alarm in found}


def test_running_twice_makes_one_schedule_one_topic_and_one_alarm_per_metric(
    session: boto3.Session,
) -> None:
    first = setup(session)
    clients = {name: session.client(name) for name in ("scheduler", "sns", "cloudwatch")}
    second = setup(clients)
    assert (first["schedule"]["action"], second["schedule"]["action"]) == ("created", "updated")
    assert first["topic_arn"] == second["topic_arn"]
    assert first["alarms"] == second["alarms"] and second["deleted_alarms"] == []
    schedules = session.client("scheduler").list_schedules()["Schedules"]
    assert [schedule["Name"] for schedule in schedules] == [f"{PIPELINE}-schedule"]
    topics = session.client("sns").list_topics()["Topics"]
    assert [topic["TopicArn"] for topic in topics] == [first["topic_arn"]]
    assert first["topic_arn"].endswith(f":{ENDPOINT}-monitoring")
    assert sorted(alarms(session)) == sorted(first["alarms"])
    assert len(first["alarms"]) == len(FEATURES) + 1


def test_schedule_starts_the_pipeline_with_its_window(session: boto3.Session) -> None:
    result = setup(session, schedule_expression="rate(30 minutes)")
    schedule = session.client("scheduler").get_schedule(Name=result["schedule"]["name"])
    assert schedule["Arn"] == result["schedule"]["arn"]
    assert schedule["ScheduleExpression"] == "rate(30 minutes)"
    assert schedule["State"] == "ENABLED"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    target = schedule["Target"]
    assert target["Arn"] == "arn:aws:scheduler:::aws-sdk:sagemaker:startPipelineExecution"
    assert target["RoleArn"] == ROLE
    request = json.loads(target["Input"])
    assert request["PipelineName"] == PIPELINE
    assert request["PipelineParameters"] == [
        {"Name": "EndpointName", "Value": ENDPOINT},
        {"Name": "WindowEnd", "Value": "<aws.scheduler.scheduled-time>"},
        {"Name": "WindowHours", "Value": "0.5"},
    ]
    token = request["ClientRequestToken"].replace("<aws.scheduler.execution-id>", "d32c5kddcf5bb8c3")
    assert 32 <= len(token) <= 128


def test_alarms_watch_the_published_metrics(session: boto3.Session) -> None:
    result = setup(session, threshold=0.2)
    found = alarms(session)
    for feature in FEATURES:
        alarm = found[f"{ENDPOINT}-monitoring-{feature.replace('_', '-')}-drift"]
        assert alarm["MetricName"] == f"{feature}_drift"
        assert alarm["Threshold"] == 0.2
    assert found[f"{ENDPOINT}-monitoring-violations"]["MetricName"] == "violations"
    assert found[f"{ENDPOINT}-monitoring-violations"]["Threshold"] == 0.0
    for alarm in found.values():
        assert alarm["Namespace"] == NAMESPACE == "SentimentClassifier/Monitoring"
        assert alarm["Dimensions"] == [{"Name": "Endpoint", "Value": ENDPOINT}]
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["Statistic"] == "Maximum"
        assert alarm["Period"] == 3600 and alarm["EvaluationPeriods"] == 1
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["AlarmActions"] == [result["topic_arn"]]


def test_alarms_of_features_no_longer_monitored_are_removed(session: boto3.Session) -> None:
    cloudwatch = session.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName="someone-elses-alarm",
        MetricName="CPUUtilization",
        Namespace="AWS/EC2",
        Statistic="Average",
        Period=60,
        EvaluationPeriods=1,
        Threshold=90.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    setup(session)
    result = setup(session, features=("oov_rate", "review_length"))
    assert len(result["deleted_alarms"]) == len(FEATURES) - 2
    assert sorted(alarms(session)) == sorted([*result["alarms"], "someone-elses-alarm"])


@pytest.mark.parametrize(
    ("expression", "window_hours", "expected"),
    [
        ("rate(1 hour)", None, 1.0),
        ("rate(30 minutes)", None, 0.5),
        ("rate(2 days)", None, 48.0),
        ("cron(0 * * * ? *)", 1.0, 1.0),
        ("rate(1 hour)", 3.0, 3.0),
    ],
)
def test_window_length_follows_the_schedule(
    expression: str, window_hours: float | None, expected: float
) -> None:
    assert ms.interval_hours(expression, window_hours) == expected


def test_cron_schedule_needs_a_window_length() -> None:
    with pytest.raises(ValueError, match="pass window_hours"):
        ms.interval_hours("cron(0 * * * ? *)", None)


def test_long_pipeline_names_give_valid_schedule_names() -> None:
    name = ms.resource_names("p" * 80, ENDPOINT)["schedule"]
    assert len(name) == 64
    assert name == ms.resource_names("p" * 80, ENDPOINT)["schedule"]


def test_threshold_out_of_range_is_refused(session: boto3.Session) -> None:
    with pytest.raises(ValueError, match="threshold must be in"):
        setup(session, threshold=0)


def test_importing_it_loads_none_of_the_job_and_leaves_sys_path_alone() -> None:
    """The CLI imports this module: the names it shares with the monitoring job must not bring
    the job's dependencies (pandas, numpy) or its sys.path setup along."""
    code = (
        "import sys; before = list(sys.path); import pipelines.monitoring_schedule; "
        "loaded = sorted({'pandas', 'numpy'} & set(sys.modules)); "
        "assert not loaded, loaded; assert sys.path == before, sys.path"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
