"""The setup behind `monitor setup`: the schedule that runs the monitoring pipeline and, on AWS, the
SNS topic and the CloudWatch alarms on the metrics steps/monitor.py publishes
(steps/monitoring/cloudwatch.py). The local target has the schedule only: its scheduler starts the
pipeline on time, and it has no CloudWatch metrics to alarm on.

Every call converges on the same state (create or update, stale alarms removed), so it is safe to
run after any change and twice in a row. The schedule uses EventBridge Scheduler's universal target
for SageMaker StartPipelineExecution; it hands the pipeline its own scheduled time as the window's
end, so a late or retried run still checks the window it was meant to.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from steps.monitoring.cloudwatch import FEATURES, NAMESPACE

START_PIPELINE_TARGET = "arn:aws:scheduler:::aws-sdk:sagemaker:startPipelineExecution"
SCHEDULE_GROUP = "default"
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
EXECUTION_ID = "<aws.scheduler.execution-id>"
# The monitoring pipeline's parameters (all String); its check step passes them to monitor.py as
# --endpoint-name, --window-end and --window-hours.
ENDPOINT_PARAMETER = "EndpointName"
WINDOW_END_PARAMETER = "WindowEnd"
WINDOW_HOURS_PARAMETER = "WindowHours"
RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
UNIT_HOURS = {"minute": 1 / 60, "hour": 1.0, "day": 24.0}
MAX_ALARM_PERIOD = 86_400


class ClientFactory(Protocol):
    """A boto3 Session, or anything else that makes clients by service name."""

    def client(self, service_name: str) -> Any: ...


def _client(source: ClientFactory | Mapping[str, Any], service: str) -> Any:
    """A ready client from a mapping (tests, stubs), else a new one from the session."""
    if isinstance(source, Mapping):
        return source[service]
    return source.client(service)


def interval_hours(schedule_expression: str, window_hours: float | None) -> float:
    """The window each run checks: the rate's interval, unless given (required for cron/at)."""
    if window_hours is not None:
        if window_hours <= 0:
            raise ValueError(f"window_hours must be positive, got {window_hours}")
        return window_hours
    match = RATE.match(schedule_expression.strip())
    if match is None:
        raise ValueError(
            f"cannot derive the window length from {schedule_expression!r}; pass window_hours "
            "for cron() or at() expressions"
        )
    return int(match.group(1)) * UNIT_HOURS[match.group(2).rstrip("s")]


def resource_names(pipeline_name: str, endpoint_name: str) -> dict[str, str]:
    """Names derived from the pipeline and endpoint, so reruns find what earlier runs made."""
    schedule = f"{pipeline_name}-schedule"
    if len(schedule) > 64:  # EventBridge Scheduler's limit
        digest = hashlib.sha256(schedule.encode()).hexdigest()[:8]
        schedule = f"{schedule[:55]}-{digest}"
    prefix = f"{endpoint_name}-monitoring-"
    return {"schedule": schedule, "topic": f"{endpoint_name}-monitoring", "alarm_prefix": prefix}


def pipeline_input(pipeline_name: str, endpoint_name: str, hours: float) -> dict[str, Any]:
    """StartPipelineExecution's request; Scheduler fills in the <aws.scheduler.*> placeholders.
    ClientRequestToken is required by the API (SDKs usually generate it) and must be 32+ chars."""
    digest = hashlib.sha256(pipeline_name.encode()).hexdigest()[:20]
    return {
        "PipelineName": pipeline_name,
        "ClientRequestToken": f"monitoring-{digest}-{EXECUTION_ID}",
        "PipelineParameters": [
            {"Name": ENDPOINT_PARAMETER, "Value": endpoint_name},
            {"Name": WINDOW_END_PARAMETER, "Value": SCHEDULED_TIME},
            {"Name": WINDOW_HOURS_PARAMETER, "Value": f"{hours:g}"},
        ],
    }


def upsert_schedule(
    scheduler: Any, name: str, expression: str, target: dict[str, Any], description: str, enabled: bool = True
) -> str:
    """Create the schedule, or update it in place; returns "created" or "updated"."""
    settings = {
        "Name": name,
        "GroupName": SCHEDULE_GROUP,
        "ScheduleExpression": expression,
        "Target": target,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "State": "ENABLED" if enabled else "DISABLED",
        "Description": description,
    }
    try:
        scheduler.get_schedule(Name=name, GroupName=SCHEDULE_GROUP)
    except scheduler.exceptions.ResourceNotFoundException:
        scheduler.create_schedule(**settings)
        return "created"
    scheduler.update_schedule(**settings)
    return "updated"


def schedule_monitoring(
    scheduler: Any,
    *,
    pipeline_name: str,
    endpoint_name: str,
    schedule_role_arn: str,
    schedule_expression: str = "rate(1 hour)",
    window_hours: float | None = None,
    enabled: bool = True,
) -> dict[str, Any]:
    """Create or update the schedule that runs the monitoring pipeline (paused when not
    `enabled`); returns {"name", "arn", "action", "state", "window_hours"}."""
    hours = interval_hours(schedule_expression, window_hours)
    name = resource_names(pipeline_name, endpoint_name)["schedule"]
    target = {
        "Arn": START_PIPELINE_TARGET,
        "RoleArn": schedule_role_arn,
        "Input": json.dumps(pipeline_input(pipeline_name, endpoint_name, hours)),
    }
    description = f"Runs {pipeline_name} to check {endpoint_name} for drift"
    action = upsert_schedule(scheduler, name, schedule_expression, target, description, enabled)
    schedule = scheduler.get_schedule(Name=name, GroupName=SCHEDULE_GROUP)
    return {"name": name, "arn": schedule["Arn"], "action": action, "state": schedule["State"],
            "window_hours": hours}


def alarm_specs(
    endpoint_name: str, prefix: str, features: Sequence[str], threshold: float, period: int
) -> list[dict[str, Any]]:
    """One alarm per feature on its drift distance, and one on any violation at all."""
    metrics = [(f"{name}_drift", threshold, f"{name} drift distance above {threshold}") for name in features]
    metrics.append(("violations", 0.0, "the monitor found constraint violations"))
    return [
        {
            "AlarmName": f"{prefix}{metric.replace('_', '-')}",
            "AlarmDescription": f"{endpoint_name}: {description} (steps/monitor.py check)",
            "Namespace": NAMESPACE,
            "MetricName": metric,
            "Dimensions": [{"Name": "Endpoint", "Value": endpoint_name}],
            "Statistic": "Maximum",
            "Period": period,
            "EvaluationPeriods": 1,
            "Threshold": limit,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
        }
        for metric, limit, description in metrics
    ]


def stale_alarms(cloudwatch: Any, prefix: str, keep: set[str]) -> list[str]:
    """Alarms an earlier setup made (same prefix) for features no longer monitored."""
    pages = cloudwatch.get_paginator("describe_alarms").paginate(
        AlarmNamePrefix=prefix, AlarmTypes=["MetricAlarm"]
    )
    names = [alarm["AlarmName"] for page in pages for alarm in page["MetricAlarms"]]
    return sorted(name for name in names if name not in keep)


def setup_monitoring(
    session_or_clients: ClientFactory | Mapping[str, Any],
    *,
    pipeline_name: str,
    endpoint_name: str,
    schedule_role_arn: str,
    schedule_expression: str = "rate(1 hour)",
    threshold: float = 0.1,
    features: Sequence[str] = FEATURES,
    window_hours: float | None = None,
    enabled: bool = True,
) -> dict[str, Any]:
    """Create or update the schedule, topic and alarms; returns what it created or updated."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    names = resource_names(pipeline_name, endpoint_name)
    sns = _client(session_or_clients, "sns")
    cloudwatch = _client(session_or_clients, "cloudwatch")

    topic_arn = sns.create_topic(Name=names["topic"])["TopicArn"]
    schedule = schedule_monitoring(
        _client(session_or_clients, "scheduler"), pipeline_name=pipeline_name, endpoint_name=endpoint_name,
        schedule_role_arn=schedule_role_arn, schedule_expression=schedule_expression,
        window_hours=window_hours, enabled=enabled,
    )
    hours = schedule.pop("window_hours")

    period = min(max(60, math.ceil(hours * 3600 / 60) * 60), MAX_ALARM_PERIOD)
    specs = alarm_specs(endpoint_name, names["alarm_prefix"], features, threshold, period)
    for spec in specs:
        cloudwatch.put_metric_alarm(**spec, ActionsEnabled=True, AlarmActions=[topic_arn])
    alarms = [spec["AlarmName"] for spec in specs]
    stale = stale_alarms(cloudwatch, names["alarm_prefix"], set(alarms))
    for first in range(0, len(stale), 100):  # DeleteAlarms takes at most 100 names
        cloudwatch.delete_alarms(AlarmNames=stale[first : first + 100])
    return {
        "schedule": schedule,
        "topic_arn": topic_arn,
        "alarms": alarms,
        "deleted_alarms": stale,
        "window_hours": hours,
    }
