"""SageMaker Processing step: data-quality monitoring of the endpoint, in two modes.

`--mode baseline` describes the training reviews as the model answers them; `--mode check` compares
a window of the endpoint's data capture with that baseline. Both modes go through the artifact's own
code/inference.py (`input_fn` reads the captured requests, `features` describes the reviews) and
share one statistics routine, so a window can only differ from the baseline because the traffic
did. Outputs follow SageMaker Model Monitor's statistics / constraints / constraint_violations
formats so its readers keep working; drift is the two-sample Kolmogorov-Smirnov distance between
the baseline's and the window's distribution of each feature.

This script is the job's entry point: arguments, the two modes and their outputs. The work is done
by the `monitoring` package (capture parsing, statistics files, drift checks, the report,
CloudWatch), shipped with artifact.py in the job's library folder.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import numpy as np

# The library folder (artifact.py, monitoring/) is shipped beside this script: in a Processing job
# at /opt/ml/processing/input/lib (see pipelines/code_bundle.py), elsewhere it is this folder.
sys.path[:0] = [
    str(Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")) / "processing" / "input" / "lib"),
    str(Path(__file__).resolve().parent),
]
from artifact import ArtifactError, load_model  # noqa: E402
from job_failure import failure_reported  # noqa: E402
from monitoring.capture import UTC, Capture, Window, iso, parse_time, read_capture  # noqa: E402
from monitoring.cloudwatch import publish_metrics  # noqa: E402
from monitoring.drift import CheckSettings, Outcome, evaluate  # noqa: E402
from monitoring.formats import (  # noqa: E402
    DEFAULT_MIN_RECORDS,
    DEFAULT_THRESHOLD,
    BaselineError,
    baseline_constraints,
    baseline_features,
    dataset_statistics,
    enabled,
    load_baseline,
)
from monitoring.report import Report  # noqa: E402
from splits import TEXT, SplitError, read_columns  # noqa: E402


class MonitorError(Exception):
    """The job cannot run with these inputs; the message says why."""


# --- the model artifact (the same safe extraction as evaluate.py) ---------------------------------


@dataclass
class Artifact:
    """The loaded model with the handlers it was built with."""

    handlers: ModuleType
    model: Any

    def features(self, texts: list[str], predictions: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        """Feature columns as float arrays, in the artifact's order."""
        table = self.handlers.features(texts, predictions, self.model)
        return {name: np.asarray(values, dtype=float) for name, values in table.items()}


def load_artifact(archive: Path, scratch: Path) -> Artifact:
    """Extract and load model.tar.gz through its own model_fn; it must offer features()."""
    handlers, model = load_model(archive, scratch)
    if not callable(getattr(handlers, "features", None)):
        raise MonitorError(
            "the artifact's code/inference.py has no features() function: the model was trained "
            "before monitoring existed; retrain it to monitor it"
        )
    return Artifact(handlers, model)


# --- baseline mode --------------------------------------------------------------------------------


def read_texts(path: Path) -> list[str]:
    """The review_text column of the preprocessed training split."""
    if not path.is_file():
        raise MonitorError(f"training data not found: {path}")
    try:
        (texts,) = read_columns(path, TEXT)
    except SplitError as error:
        raise MonitorError(str(error)) from None
    return texts


def run_baseline(base: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Describe the training reviews as the model answers them; write statistics and constraints."""
    texts = read_texts(base / "processing" / "train" / "train.csv")
    with tempfile.TemporaryDirectory() as scratch:
        artifact = load_artifact(base / "processing" / "model" / "model.tar.gz", Path(scratch))
        predictions = artifact.handlers.predict_fn(texts, artifact.model)
        table = artifact.features(texts, predictions)
    statistics = dataset_statistics(table, len(texts))
    threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    min_records = DEFAULT_MIN_RECORDS if args.min_records is None else args.min_records
    constraints = baseline_constraints(statistics, threshold, min_records)
    target = base / "processing" / "baseline"
    write_json(target / "statistics.json", statistics)
    write_json(target / "constraints.json", constraints)
    print(f"baseline of {len(texts)} training reviews, features {list(table)}; wrote {target}")
    return statistics


# --- check mode -----------------------------------------------------------------------------------


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
        capture = read_capture(base / "processing" / "capture", artifact.handlers, settings.window)
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
    write_json(target / "statistics.json", dataset_statistics(table, count))
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


# --- entry point ----------------------------------------------------------------------------------


class ArgumentParser(argparse.ArgumentParser):
    """Bad arguments are a failure like any other: reported in output/message, exit 1."""

    def error(self, message: str) -> NoReturn:
        raise MonitorError(f"bad arguments: {message}")


def optional_float(raw: str) -> float | None:
    """Pipeline parameters are strings; an empty one means "not set"."""
    return float(raw) if raw.strip() else None


def true_or_false(raw: str) -> bool:
    """A pipeline parameter can switch a flag only by value: `--publish-metrics true|false`."""
    if raw.strip().lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {raw!r}")
    return raw.strip().lower() == "true"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Check-only options are ignored in baseline mode."""
    parser = ArgumentParser(description="Baseline and drift check of the endpoint's traffic.")
    parser.add_argument("--mode", choices=("baseline", "check"), required=True)
    parser.add_argument("--threshold", type=float, help="drift threshold (baseline: 0.1)")
    parser.add_argument("--min-records", type=int, help="records needed to judge (baseline: 200)")
    parser.add_argument("--window-start", default="", help="ISO 8601, inclusive; empty = open")
    parser.add_argument("--window-end", default="", help="ISO 8601, exclusive; empty = open")
    parser.add_argument("--window-hours", type=optional_float,
                        help="window length back from --window-end; empty = not set")
    parser.add_argument("--endpoint-name", default="", help="the Endpoint metric dimension")
    parser.add_argument("--publish-metrics", type=true_or_false, nargs="?", const=True,
                        default=False, help="put metrics to CloudWatch (true/false)")
    args = parser.parse_args(argv)
    if args.threshold is not None and not 0 < args.threshold <= 1:
        raise MonitorError(f"--threshold must be in (0, 1], got {args.threshold}")
    if args.min_records is not None and args.min_records < 1:
        raise MonitorError(f"--min-records must be at least 1, got {args.min_records}")
    if args.window_hours is not None and not args.window_hours > 0:
        raise MonitorError(f"--window-hours must be positive, got {args.window_hours}")
    if args.publish_metrics and not args.endpoint_name:
        raise MonitorError("--publish-metrics needs --endpoint-name (the metrics' dimension)")
    return args


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, allow_nan=False), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the Processing job; drift is a finding, not a failure (exit 0)."""
    base = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
    with failure_reported(base, (MonitorError, BaselineError, ArtifactError), "monitoring"):
        args = parse_args(argv)
        if args.mode == "baseline":
            run_baseline(base, args)
        else:
            run_check(base, args)


if __name__ == "__main__":
    main()
    gc.freeze()  # exit without collecting the survivors once more (see train.py)
