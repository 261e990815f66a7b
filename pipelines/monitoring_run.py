"""`monitor run`: start the monitoring pipeline, follow it, summarise its findings; `monitor show`:
the findings of a run that has ended (a scheduled one's too).

The exit code makes it a CI gate: 0 when nothing drifted (or the window was too small to judge),
1 when drift was found, 2 when the monitoring run itself failed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines import REPO_ROOT, executions
from pipelines.aws import Clients
from pipelines.step_table import plain_summary

Say = Callable[[str], None]
REPORTS_DIR = REPO_ROOT / "out" / "monitoring"


class NoCapture(ValueError):
    """The endpoint has no captured traffic yet, so the check has nothing to read."""


class NoRun(ValueError):
    """The monitoring pipeline has not run yet: there are no findings to show."""


@dataclass
class MonitorOutcome:
    exit_code: int
    metrics: dict[str, Any]
    report: Path | None


def summary(metrics: Mapping[str, Any]) -> str:
    """A few lines a person can read at a glance: status, counts, one line per feature."""
    lines = [
        f"status: {metrics['status']}",
        *([str(metrics["message"])] if metrics.get("message") else []),
        f"records: {metrics['record_count']}  malformed lines skipped: "
        f"{metrics.get('malformed_lines', 0)}  window: {window_words(metrics.get('window') or {})}",
    ]
    threshold = metrics.get("threshold")
    for name, feature in (metrics.get("features") or {}).items():
        distance = feature.get("drift_distance")
        shown = "n/a" if distance is None else f"{distance:.3f}"
        flag = "  DRIFT" if feature.get("violation") else ""
        lines.append(f"  {name:<18} drift {shown} (threshold {threshold}){flag}")
    return "\n".join(lines)


def window_words(window: Mapping[str, Any]) -> str:
    """The window a run checked, as its report names it; "all captured data" when unbounded."""
    start, end = window.get("start"), window.get("end")
    if not start and not end:
        return "all captured data"
    return f"[{start or 'the beginning'}, {end or 'the end'})"


def _report(clients: Clients, uri: str, execution_id: str) -> Path:
    """The report, downloaded under out/monitoring/ to be opened in a browser."""
    target = REPORTS_DIR / execution_id / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(clients.storage.get_bytes(uri))
    return target


def run_monitor(
    clients: Clients, overrides: dict[str, str], say: Say, timeout: float = 1800
) -> MonitorOutcome:
    settings = clients.settings
    sm = clients.sagemaker
    endpoint = overrides.get("EndpointName", settings.endpoint_name)
    capture = settings.s3_uri("data-capture", endpoint) + "/"
    if not clients.storage.has_objects(capture):
        # The CheckDrift job would fail staging its capture input ("No S3 objects found under S3
        # URL"), on SageMaker as locally: say what is missing instead of starting a doomed run.
        raise NoCapture(
            f"no traffic of endpoint {endpoint} has been captured yet (nothing under {capture}): "
            "invoke the endpoint first (make invoke TEXT=...), then check it"
        )
    arn = executions.start_execution(sm, settings.monitoring_pipeline_name, overrides)
    say(f"started {arn}")
    status, _ = executions.wait_for(sm, arn, say, timeout=timeout)
    if status != "Succeeded":
        return MonitorOutcome(2, {}, None)
    return _findings(clients, outputs_of(clients, arn, endpoint), arn, say)


def show_monitor(clients: Clients, execution_arn: str | None, say: Say) -> MonitorOutcome:
    """A monitoring run's findings, as `monitor run` shows them (the latest run by default); a run
    that did not succeed, or is still running, is shown as its step table."""
    settings = clients.settings
    sm = clients.sagemaker
    pipeline = settings.monitoring_pipeline_name
    if execution_arn and f":pipeline/{pipeline}/execution/" not in execution_arn:
        raise NoRun(f"{execution_arn} is not a run of {pipeline}: `status` shows other pipelines' runs")
    arn = execution_arn or executions.latest_execution_arn(sm, pipeline)
    if arn is None:
        raise not_run_yet(pipeline)
    execution, steps = executions.describe(sm, arn)
    if execution["PipelineExecutionStatus"] != "Succeeded":
        say(plain_summary(execution, steps))
        return MonitorOutcome(2, {}, None)
    say(f"execution {arn}, started {execution['CreationTime']:%Y-%m-%d %H:%M:%S %Z}".rstrip())
    return _findings(clients, outputs_of(clients, arn), arn, say)


def not_run_yet(pipeline: str) -> NoRun:
    return NoRun(f"{pipeline} has not run yet: `monitor run` checks now, `monitor setup` schedules checks")


def outputs_of(clients: Clients, arn: str, endpoint: str | None = None) -> str:
    """Where a monitoring run wrote its outputs: under the endpoint it checked (its EndpointName
    parameter, looked up when not given)."""
    if endpoint is None:
        endpoint = executions.execution_parameters(clients.sagemaker, arn).get("EndpointName")
    return clients.settings.monitoring_output_uri(endpoint or clients.settings.endpoint_name,
                                                  arn.rsplit("/", 1)[-1])


def metrics_of(clients: Clients, outputs: str) -> dict[str, Any]:
    """A succeeded run's metrics.json (steps/monitoring/check.py)."""
    return dict(json.loads(clients.storage.get_bytes(f"{outputs}/metrics.json")))


def _findings(clients: Clients, base: str, arn: str, say: Say) -> MonitorOutcome:
    """What a succeeded run found: its summary, and its report downloaded."""
    metrics = metrics_of(clients, base)
    report = _report(clients, f"{base}/report.html", arn.rsplit("/", 1)[-1])
    say(summary(metrics))
    say(f"report: {report}")
    say(f"outputs: {base}/")
    return MonitorOutcome(1 if metrics["status"] == "drift" else 0, metrics, report)
