"""`monitor run` refuses, before starting anything, an endpoint with no captured traffic: the
CheckDrift job would fail staging its capture input, on SageMaker as locally."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pipelines.aws import Clients, S3Storage
from pipelines.monitoring_history import Check, checks, history_svg, table
from pipelines.monitoring_run import NoCapture, NoRun, run_monitor, show_monitor, window_words
from pipelines.settings import Settings


class NoPipelines:
    """A SageMaker client that must not be used."""

    def start_pipeline_execution(self, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("a monitoring run was started without captured traffic")


def test_no_captured_traffic_is_refused_before_a_run_starts(settings: Settings, s3: Any) -> None:
    """Another endpoint's capture whose name starts with this one's does not count."""
    key = settings.s3_uri("data-capture", f"{settings.endpoint_name}-canary", "AllTraffic", "x.jsonl")
    S3Storage(s3).put_bytes(key, b"{}\n")
    clients = Clients(settings)
    clients.sagemaker = NoPipelines()
    clients.storage = S3Storage(s3)
    with pytest.raises(NoCapture, match=rf"no traffic of endpoint {settings.endpoint_name} has been "
                                        r"captured yet \(nothing under s3://.*/data-capture/"):
        run_monitor(clients, {}, print)


def test_has_objects_looks_below_the_folder_only(settings: Settings, s3: Any) -> None:
    """The local S3's answer to the same calls: tests/local/test_s3.py."""
    storage = S3Storage(s3)
    folder = settings.s3_uri("data-capture", "ep")
    storage.put_bytes(settings.s3_uri("data-capture", "ep-canary", "AllTraffic", "a.jsonl"), b"{}")
    assert not storage.has_objects(folder) and not storage.has_objects(folder + "/")
    storage.put_bytes(settings.s3_uri("data-capture", "ep", "AllTraffic", "2026", "b.jsonl"), b"{}")
    assert storage.has_objects(folder) and storage.has_objects(folder + "/")


def test_a_bucket_that_does_not_exist_yet_holds_no_capture(s3: Any) -> None:
    """A local state before its first upload has no bucket: `monitor run` then says no traffic was
    captured, rather than failing on NoSuchBucket."""
    assert not S3Storage(s3).has_objects("s3://no-such-bucket/data-capture/ep")


MONITOR_ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/sentiment-classifier-monitor/execution/"


class MonitorRuns:
    """A SageMaker client holding monitoring runs: (id, status, failed step's reason or None)."""

    def __init__(self, *runs: tuple[str, str, str | None]) -> None:
        self.runs = runs

    def list_pipeline_executions(self, **kwargs: Any) -> dict[str, Any]:
        """Newest first, as asked."""
        return {"PipelineExecutionSummaries": [
            {"PipelineExecutionArn": MONITOR_ARN + run_id, "PipelineExecutionStatus": status,
             "StartTime": datetime(2026, 12, 6, 17 - number, 0, tzinfo=UTC)}
            for number, (run_id, status, _) in enumerate(self.runs)]}

    def describe_pipeline_execution(self, PipelineExecutionArn: str) -> dict[str, Any]:
        _, status, _ = self._run(PipelineExecutionArn)
        return {"PipelineExecutionArn": PipelineExecutionArn, "PipelineExecutionStatus": status,
                "CreationTime": datetime(2026, 12, 6, 17, 0, tzinfo=UTC),
                "LastModifiedTime": datetime(2026, 12, 6, 17, 1, tzinfo=UTC)}

    def list_pipeline_execution_steps(self, PipelineExecutionArn: str, **kwargs: Any) -> dict[str, Any]:
        _, status, reason = self._run(PipelineExecutionArn)
        step = {"StepName": "CheckDrift", "StepStatus": "Failed" if reason else status,
                "StartTime": datetime(2026, 12, 6, 17, 0, tzinfo=UTC),
                "EndTime": datetime(2026, 12, 6, 17, 1, tzinfo=UTC), "Metadata": {}}
        return {"PipelineExecutionSteps": [{**step, "FailureReason": reason} if reason else step]}

    def list_pipeline_parameters_for_execution(self, PipelineExecutionArn: str) -> dict[str, Any]:
        return {"PipelineParameters": [{"Name": "EndpointName", "Value": "canary"}]}

    def get_paginator(self, name: str) -> Any:
        """Every listing fits one page."""
        return SimpleNamespace(paginate=lambda **request: [getattr(self, name)(**request)])

    def _run(self, arn: str) -> tuple[str, str, str | None]:
        return next(run for run in self.runs if arn == MONITOR_ARN + run[0])


def test_show_gives_a_scheduled_runs_findings_and_report(
    settings: Settings, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The latest run by default; its outputs are found under the endpoint it checked."""
    monkeypatch.setattr("pipelines.monitoring_run.REPORTS_DIR", tmp_path / "reports")
    storage = S3Storage(s3)
    base = settings.monitoring_output_uri("canary", "b2")
    metrics = {"status": "drift", "record_count": 240, "threshold": 0.1,
               "features": {"oov_rate": {"drift_distance": 0.4, "violation": True}}}
    storage.put_bytes(f"{base}/metrics.json", json.dumps(metrics).encode())
    storage.put_bytes(f"{base}/report.html", b"<html>report</html>")
    clients = Clients(settings)
    clients.sagemaker = MonitorRuns(("b2", "Succeeded", None), ("a1", "Failed", "no capture"))
    clients.storage = storage
    shown = show_monitor(clients, None, print)
    assert shown.exit_code == 1, "drift, as monitor run answers it"
    assert (tmp_path / "reports" / "b2" / "report.html").read_bytes() == b"<html>report</html>"
    out = capsys.readouterr().out
    assert "status: drift" in out and "oov_rate" in out and "DRIFT" in out
    failed = show_monitor(clients, MONITOR_ARN + "a1", print)
    assert (failed.exit_code, failed.report) == (2, None)
    assert "Failed after 1m00s at step CheckDrift: no capture" in capsys.readouterr().out


def test_show_before_any_monitoring_run_says_how_to_make_one(settings: Settings) -> None:
    clients = Clients(settings)
    clients.sagemaker = MonitorRuns()
    with pytest.raises(NoRun, match="has not run yet: `monitor run` checks now, `monitor setup` schedules"):
        show_monitor(clients, None, print)
    with pytest.raises(NoRun, match="has not run yet: `monitor run` checks now, `monitor setup` schedules"):
        checks(clients, 20)
    training = MONITOR_ARN.replace("-monitor/", "/") + "a1"
    with pytest.raises(NoRun, match="is not a run of sentiment-classifier-monitor: `status` shows"):
        show_monitor(clients, training, print)


def test_history_tables_and_draws_the_runs_oldest_first(settings: Settings, s3: Any) -> None:
    """Each judged run a point on each feature's line; a failed or unjudged run a grey mark."""
    storage = S3Storage(s3)
    found = {"b2": ("drift", 0.4), "c3": ("no_drift", 0.05), "d4": ("not_enough_data", 0.9)}
    for run_id, (status, distance) in found.items():
        metrics = {"status": status, "record_count": 240, "threshold": 0.1,
                   "features": {"oov_rate": {"drift_distance": distance},
                                "review_length": {"drift_distance": distance / 2}}}
        uri = settings.monitoring_output_uri("canary", run_id) + "/metrics.json"
        storage.put_bytes(uri, json.dumps(metrics).encode())
    clients = Clients(settings)
    clients.sagemaker = MonitorRuns(("d4", "Succeeded", None), ("c3", "Succeeded", None),
                                    ("b2", "Succeeded", None), ("a1", "Failed", "no capture"))
    clients.storage = storage
    history = checks(clients, 20)
    assert [(c.execution_id, c.status, c.judged) for c in history] == [
        ("a1", "Failed", False), ("b2", "drift", True), ("c3", "no_drift", True),
        ("d4", "not_enough_data", False)]
    lines = table(history).splitlines()
    assert lines[0].split() == ["started", "run", "status", "records", "oov_rate", "review_length"]
    assert lines[2].split()[-2:] == ["0.400", "0.200"] and lines[1].split()[-2:] == ["-", "-"]
    picture = history_svg(history)
    assert picture.count("<polyline") == 2, "one line per feature, through the two judged runs"
    assert picture.count('fill="#999"') == 2, "the failed run and the one with too little traffic"
    assert "threshold 0.1" in picture and "not_enough_data (240 records)" in picture


def test_a_history_with_no_judged_run_says_so_against_the_threshold() -> None:
    """It drew empty axes: no line, no threshold, nothing saying why."""
    started = datetime(2026, 12, 1, 9, tzinfo=UTC)
    history = [Check("a1", started, "Failed"),
               Check("b2", started, "not_enough_data", 3, {"oov_rate": 0.9}, 0.1)]
    picture = history_svg(history)
    assert "<polyline" not in picture
    assert "threshold 0.1" in picture
    assert "no run has judged drift yet: each failed or had too little traffic" in picture
    assert "no run has judged drift yet" not in history_svg([*history, Check("c3", started, "no_drift", 240,
                                                                             {"oov_rate": 0.05}, 0.1)])


@pytest.mark.parametrize(("window", "words"), [
    ({}, "all captured data"),
    ({"start": None, "end": None}, "all captured data"),
    ({"start": "2026-12-01T09:00:00Z", "end": None}, "[2026-12-01T09:00:00Z, the end)"),
    ({"start": None, "end": "2026-12-01T10:00:00Z"}, "[the beginning, 2026-12-01T10:00:00Z)"),
])
def test_the_summary_names_the_window_as_the_report_does(window: dict[str, Any], words: str) -> None:
    """A run over all captured data was summarised as "window: - .. -"."""
    assert window_words(window) == words
