"""Check mode: a window of the endpoint's data capture against the baseline, written as Model
Monitor's statistics, constraint violations and metrics, with an HTML report and, when asked,
CloudWatch metrics.

monitor.py imports this module only in check mode: the capture, drift, report and CloudWatch code
stays unloaded in baseline mode, a step on the training pipeline's critical path.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .capture import UTC, Capture, Window, iso, parse_time, read_capture
from .cloudwatch import publish_metrics
from .drift import CheckSettings, Outcome, evaluate
from .formats import (
    DEFAULT_MIN_RECORDS,
    DEFAULT_THRESHOLD,
    STATISTICS,
    baseline_features,
    dataset_statistics,
    enabled,
    load_baseline,
    write_json,
)
from .model import MonitorError, load_artifact
from .report import Report


def window_from(args: argparse.Namespace) -> Window:
    """--window-start/--window-end, or --window-hours back from --window-end (default now)."""
    try:
        start = parse_time(args.window_start) if args.window_start else None
        end = parse_time(args.window_end) if args.window_end else None
    except ValueError as exc:
        raise MonitorError(f"window bounds must be ISO 8601 times: {exc}") from None
    if args.window_hours is not None:
        if start is not None:
            raise MonitorError("give --window-start or --window-hours, not both")
        end = end or datetime.now(UTC)
        start = end - timedelta(hours=args.window_hours)
    if start is not None and end is not None and start >= end:
        raise MonitorError(f"the window start {iso(start)} is not before its end {iso(end)}")
    return Window(start, end)


def check_settings(args: argparse.Namespace, constraints: dict[str, Any]) -> CheckSettings:
    """Arguments win; otherwise the values the baseline was made with. The constraints file's
    switches (evaluate_constraints, perform_comparison, emit_metrics) are honoured as Model Monitor
    honours them, so a baseline edited with the SageMaker SDK means the same here."""
    config = constraints.get("monitoring_config") or {}
    distribution = config.get("distribution_constraints") or {}
    threshold = args.threshold
    if threshold is None:
        threshold = distribution.get("comparison_threshold", DEFAULT_THRESHOLD)
    min_records = args.min_records
    if min_records is None:
        min_records = config.get("min_records", DEFAULT_MIN_RECORDS)
    return CheckSettings(
        window=window_from(args),
        threshold=float(threshold),
        min_records=int(min_records),
        datatype_threshold=float(config.get("datatype_check_threshold", 1.0)),
        endpoint_name=args.endpoint_name,
        evaluate_constraints=enabled(config, "evaluate_constraints"),
        compare_distributions=enabled(distribution, "perform_comparison"),
        emit_metrics=enabled(config, "emit_metrics"),
    )


def run_check(base: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Compare the capture window with the baseline; write the four monitoring outputs."""
    statistics, constraints = load_baseline(base / "processing" / "baseline")
    baseline = baseline_features(statistics, constraints)
    settings = check_settings(args, constraints)
    with tempfile.TemporaryDirectory() as scratch:
        artifact = load_artifact(base / "processing" / "model" / "model.tar.gz", Path(scratch))
        capture = read_capture(base / "processing" / "capture", artifact.read, settings.window)
        count = len(capture.texts)
        table = artifact.features(capture.texts, capture.predictions) if count else {}
    outcome = evaluate(baseline, table, count, settings)
    metrics = {
        "record_count": count,
        "malformed_lines": capture.malformed,
        "window": settings.window.describe(),
        "status": outcome.status,
        "message": outcome.message,
        "threshold": settings.threshold,
        "min_records": settings.min_records,
        "features": outcome.features,
    }
    target = base / "processing" / "monitoring"
    write_json(target / STATISTICS, dataset_statistics(table, count))
    write_json(target / "constraint_violations.json", {"violations": outcome.violations})
    write_json(target / "metrics.json", metrics)
    baseline_count = int(statistics.get("dataset", {}).get("item_count", 0))
    report = Report(outcome, baseline, table, capture, settings, baseline_count)
    (target / "report.html").write_text(report.render(), encoding="utf-8")
    print_summary(outcome, capture, target)
    if args.publish_metrics and settings.emit_metrics:
        publish_metrics(outcome, count, capture.malformed, settings.endpoint_name)
    elif args.publish_metrics:
        print("no metrics published: the baseline's monitoring_config.emit_metrics is Disabled")
    return metrics


def print_summary(outcome: Outcome, capture: Capture, target: Path) -> None:
    """What the job log shows: the verdict first, then the details."""
    print(outcome.message)
    print(
        f"{len(capture.texts)} records from {capture.files} capture file(s), "
        f"{capture.malformed} malformed line(s) skipped; wrote {target}"
    )
    for example in capture.examples:
        print(f"  malformed: {example}")
    for item in outcome.violations:
        print(f"  {item['constraint_check_type']} {item['feature_name']}: {item['description']}")
