"""What the monitor publishes to CloudWatch and the alarms watch: namespace, features, metrics.

Standard library only (boto3 is imported when publishing), so the AWS setup code
(pipelines/monitoring_schedule.py) takes these names from here without loading the job's
dependencies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .drift import Outcome

# What features() in steps/inference.py computes; pipelines/monitoring_schedule.py alarms on these.
FEATURES = ("prediction_score", "predicted_label", "review_length", "token_count", "oov_rate")
NAMESPACE = "SentimentClassifier/Monitoring"


def publish_metrics(outcome: Outcome, records: int, malformed: int, endpoint_name: str) -> None:
    """Put the result to CloudWatch for the alarms. Drift distances only when they were judged:
    a window under min_records is noise, and a feature whose drift check the baseline disables is
    not watched, so neither may trip an alarm."""
    import boto3  # only here: the script must import where boto3 is absent
    from botocore.exceptions import BotoCoreError, ClientError

    data = [
        {"MetricName": "records", "Value": float(records), "Unit": "Count"},
        {"MetricName": "violations", "Value": float(len(outcome.violations)), "Unit": "Count"},
        {"MetricName": "malformed_lines", "Value": float(malformed), "Unit": "Count"},
    ]
    if outcome.judged:
        data += [
            {"MetricName": f"{name}_drift", "Value": entry["drift_distance"], "Unit": "None"}
            for name, entry in outcome.features.items()
            if entry["drift_checked"] and entry["drift_distance"] is not None
        ]
    dimensions = [{"Name": "Endpoint", "Value": endpoint_name}]
    try:
        boto3.client("cloudwatch").put_metric_data(
            Namespace=NAMESPACE, MetricData=[{**item, "Dimensions": dimensions} for item in data]
        )
    except (BotoCoreError, ClientError) as error:
        from .model import MonitorError  # the job's own refusal; numpy is loaded by now

        raise MonitorError(
            f"publishing the metrics to CloudWatch failed ({type(error).__name__}: {error}): "
            "--publish-metrics (the PublishMetrics parameter) needs a region and a role that may "
            "cloudwatch:PutMetricData; the local target has no CloudWatch, so leave it false there"
        ) from None
    print(f"published {len(data)} metrics to CloudWatch {NAMESPACE}, Endpoint={endpoint_name}")
