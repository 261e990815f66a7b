"""SageMaker Processing step: data-quality monitoring of the endpoint, in two modes.

`--mode baseline` describes the training reviews as the model answers them; `--mode check` compares
a window of the endpoint's data capture with that baseline. Both modes go through the artifact's own
code/inference.py (`input_fn` reads the captured requests, `features` describes the reviews) and
share one statistics routine, so a window can only differ from the baseline because the traffic
did. Outputs follow SageMaker Model Monitor's statistics / constraints / constraint_violations
formats so its readers keep working; drift is the two-sample Kolmogorov-Smirnov distance between
the baseline's and the window's distribution of each feature.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import html
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import numpy as np
import pandas as pd

# artifact.py is shipped beside this script: in a Processing job at /opt/ml/processing/input/lib
# (see pipelines/definition.py), elsewhere in the same folder.
sys.path[:0] = [
    str(Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")) / "processing" / "input" / "lib"),
    str(Path(__file__).resolve().parent),
]
from artifact import ArtifactError, load_model  # noqa: E402

UTC = timezone.utc  # noqa: UP017 - datetime.UTC needs Python 3.11; the image may run 3.9
# What features() in steps/inference.py computes; pipelines/monitoring_schedule.py alarms on these.
FEATURES = ("prediction_score", "predicted_label", "review_length", "token_count", "oov_rate")
INTEGRAL_FEATURES = frozenset({"predicted_label", "review_length", "token_count"})
DEFAULT_THRESHOLD = 0.1
DEFAULT_MIN_RECORDS = 200
KLL_K = 2048
KLL_PARAMETERS = {"c": 0.64, "k": float(KLL_K)}
BUCKETS = 10
NAMESPACE = "SentimentClassifier/Monitoring"
TEXT = "review_text"
MAX_EXAMPLES = 5
NO_DATA, NOT_ENOUGH_DATA, DRIFT, NO_DRIFT = "no_data", "not_enough_data", "drift", "no_drift"


class MonitorError(Exception):
    """The job cannot run with these inputs; the message says why."""


class CaptureError(ValueError):
    """One capture line cannot be used: it is counted as malformed and skipped."""


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


# --- statistics (Model Monitor's statistics.json) -------------------------------------------------


def inferred_type(name: str) -> str:
    """Declared, not guessed from data: an all-zero oov_rate in training must stay Fractional."""
    return "Integral" if name in INTEGRAL_FEATURES else "Fractional"


def kll_sketch(values: np.ndarray) -> dict[str, Any]:
    """Sorted values at KLL level 0 while they fit in k; beyond that every 2^L-th sorted value at
    level L (each standing for 2^L values, as in KLL), so the CDF read back is within ~1/k."""
    ordered = np.sort(values)
    level = max(0, math.ceil(math.log2(ordered.size / KLL_K))) if ordered.size else 0
    stride = 2**level
    kept = ordered[stride // 2 :: stride] if level else ordered
    data: list[list[float]] = [[] for _ in range(level)] + [kept.tolist()]
    return {"parameters": dict(KLL_PARAMETERS), "data": data}


def kll_buckets(values: np.ndarray) -> list[dict[str, float]]:
    """Equal-width buckets between min and max, the histogram Model Monitor's readers plot."""
    if values.size == 0:
        return []
    low, high = float(values.min()), float(values.max())
    if low == high:
        return [{"lower_bound": low, "upper_bound": high, "count": float(values.size)}]
    counts, edges = np.histogram(values, bins=BUCKETS, range=(low, high))
    return [
        {"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]), "count": float(n)}
        for i, n in enumerate(counts)
    ]


def feature_statistics(name: str, values: np.ndarray) -> dict[str, Any]:
    """One feature's entry; non-finite values count as missing."""
    present = values[np.isfinite(values)]
    mean = total = std_dev = low = high = 0.0
    if present.size:
        mean, total, std_dev = float(present.mean()), float(present.sum()), float(present.std())
        low, high = float(present.min()), float(present.max())
    return {
        "name": name,
        "inferred_type": inferred_type(name),
        "numerical_statistics": {
            "common": {
                "num_present": int(present.size),
                "num_missing": int(values.size - present.size),
            },
            "mean": mean,
            "sum": total,
            "std_dev": std_dev,
            "min": low,
            "max": high,
            "distribution": {"kll": {"buckets": kll_buckets(present), "sketch": kll_sketch(present)}},
        },
    }


def dataset_statistics(table: dict[str, np.ndarray], item_count: int) -> dict[str, Any]:
    """statistics.json for a feature table (the same code for the baseline and every window)."""
    return {
        "version": 0.0,
        "dataset": {"item_count": item_count},
        "features": [feature_statistics(name, values) for name, values in table.items()],
    }


def baseline_constraints(statistics: dict[str, Any], threshold: float, min_records: int) -> dict[str, Any]:
    """constraints.json suggested from the baseline statistics."""
    count = max(int(statistics["dataset"]["item_count"]), 1)
    features = []
    for feature in statistics["features"]:
        numbers = feature["numerical_statistics"]
        features.append(
            {
                "name": feature["name"],
                "inferred_type": feature["inferred_type"],
                "completeness": numbers["common"]["num_present"] / count,
                "num_constraints": {"is_non_negative": bool(numbers["min"] >= 0)},
            }
        )
    return {
        "version": 0.0,
        "features": features,
        "monitoring_config": {
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            "datatype_check_threshold": 1.0,
            "domain_content_threshold": 1.0,
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": threshold,
                "comparison_method": "Robust",
                "categorical_comparison_threshold": 0.1,
                "categorical_drift_method": "LInfinity",
            },
            "min_records": min_records,
        },
    }


# --- baseline mode --------------------------------------------------------------------------------


def read_texts(path: Path) -> list[str]:
    """The review_text column of the preprocessed training split."""
    if not path.is_file():
        raise MonitorError(f"training data not found: {path}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise MonitorError(f"cannot read {path}: {exc}") from None
    if TEXT not in frame.columns:
        raise MonitorError(f"{path.name} lacks column {TEXT!r}; found {list(frame.columns)}")
    if frame.empty:
        raise MonitorError(f"{path.name} has no rows")
    return frame[TEXT].tolist()


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


# --- reading data capture -------------------------------------------------------------------------


def parse_time(text: str) -> datetime:
    """ISO 8601 as UTC; a trailing Z (SageMaker's form) is accepted on Python 3.9 too."""
    value = text.strip()
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime | None) -> str | None:
    """The form capture records use, so the report reads like the data."""
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Window:
    """[start, end) over eventMetadata.inferenceTime; a missing bound is open."""

    start: datetime | None = None
    end: datetime | None = None

    def contains(self, moment: datetime) -> bool:
        after_start = self.start is None or moment >= self.start
        return after_start and (self.end is None or moment < self.end)

    def describe(self) -> dict[str, str | None]:
        return {"start": iso(self.start), "end": iso(self.end)}


@dataclass
class Capture:
    """The usable records of a window, one per review, and what was skipped."""

    texts: list[str] = field(default_factory=list)
    predictions: list[dict[str, Any]] = field(default_factory=list)
    files: int = 0
    malformed: int = 0
    examples: list[str] = field(default_factory=list)

    def skip(self, where: str, error: CaptureError) -> None:
        self.malformed += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{where}: {error}")


def payload(capture: dict[str, Any], key: str) -> tuple[bytes, str]:
    """The body and content type of endpointInput / endpointOutput, decoded per its encoding."""
    part = capture.get(key)
    if not isinstance(part, dict):
        raise CaptureError(f"captureData has no {key}")
    data, content_type, encoding = (
        part.get("data"),
        part.get("observedContentType"),
        part.get("encoding"),
    )
    if not isinstance(data, str) or not isinstance(content_type, str):
        raise CaptureError(f"{key} lacks a string data or observedContentType")
    if encoding in ("CSV", "JSON"):
        return data.encode("utf-8"), content_type
    if encoding == "BASE64":
        try:
            return base64.b64decode(data, validate=True), content_type
        except (binascii.Error, ValueError):
            raise CaptureError(f"{key} data is not valid base64") from None
    raise CaptureError(f"{key} has unknown encoding {encoding!r}")


def _prediction(item: object) -> dict[str, Any]:
    """One {"label": 0|1, "score": P(1)} answer, checked."""
    if not isinstance(item, dict):
        raise CaptureError("a prediction is not an object")
    label, score = item.get("label"), item.get("score")
    if isinstance(label, bool) or label not in (0, 1):
        raise CaptureError(f"prediction label {label!r} is not 0 or 1")
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
        raise CaptureError(f"prediction score {score!r} is not a probability")
    return {"label": int(label), "score": float(score)}


def parse_predictions(body: bytes) -> list[dict[str, Any]]:
    """The endpoint's answer: {"predictions": [...]}, or one prediction per line (JSON lines)."""
    try:
        text = body.decode("utf-8")
        try:
            document: Any = json.loads(text)
        except json.JSONDecodeError:
            document = [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError:
        raise CaptureError("endpointOutput is neither JSON nor JSON lines") from None
    if isinstance(document, dict):
        document = document.get("predictions", [document])
    if not isinstance(document, list):
        raise CaptureError("endpointOutput holds no list of predictions")
    return [_prediction(item) for item in document]


def record_time(record: dict[str, Any]) -> datetime:
    """eventMetadata.inferenceTime of a capture record."""
    metadata = record.get("eventMetadata")
    moment = metadata.get("inferenceTime") if isinstance(metadata, dict) else None
    if not isinstance(moment, str):
        raise CaptureError("no eventMetadata.inferenceTime")
    try:
        return parse_time(moment)
    except ValueError:
        raise CaptureError(f"inferenceTime {moment!r} is not ISO 8601") from None


def parse_line(line: bytes, handlers: ModuleType, window: Window) -> tuple[list[str], list[dict[str, Any]]]:
    """The reviews of one capture line and their predictions; none outside the window."""
    try:
        record = json.loads(line.decode("utf-8"))
    except ValueError:
        raise CaptureError("not a JSON line") from None
    if not isinstance(record, dict):
        raise CaptureError("not a JSON object")
    if not window.contains(record_time(record)):
        return [], []
    capture = record.get("captureData")
    if not isinstance(capture, dict):
        raise CaptureError("no captureData object")
    body, content_type = payload(capture, "endpointInput")
    try:
        texts = handlers.input_fn(body, content_type)
    except ValueError as exc:
        raise CaptureError(f"the request does not parse: {exc}") from None
    predictions = parse_predictions(payload(capture, "endpointOutput")[0])
    if len(texts) != len(predictions):
        raise CaptureError(f"{len(texts)} reviews but {len(predictions)} predictions")
    return texts, predictions


def capture_lines(root: Path, files: list[Path]) -> Iterator[tuple[str, bytes]]:
    """Every non-blank line of the files, with where it came from (file:line)."""
    for path in files:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    yield f"{path.relative_to(root)}:{number}", line


def read_capture(root: Path, handlers: ModuleType, window: Window) -> Capture:
    """Collect the window's records; malformed lines are counted and skipped, never fatal."""
    files = sorted(path for path in root.rglob("*.jsonl") if path.is_file()) if root.is_dir() else []
    capture = Capture(files=len(files))
    for where, line in capture_lines(root, files):
        try:
            texts, predictions = parse_line(line, handlers, window)
        except CaptureError as error:
            capture.skip(where, error)
            continue
        capture.texts += texts
        capture.predictions += predictions
    return capture


# --- comparing a window with the baseline ---------------------------------------------------------


@dataclass
class BaselineFeature:
    """What the check needs of one baseline feature."""

    inferred_type: str
    completeness: float
    mean: float
    values: np.ndarray
    weights: np.ndarray


def sketch_sample(name: str, sketch: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Values and weights (2^level) of a KLL sketch."""
    try:
        levels = [[float(value) for value in level] for level in sketch["data"]]
    except (KeyError, TypeError, ValueError):
        raise MonitorError(f"baseline statistics.json: {name!r} has no readable sketch") from None
    values = np.array([value for level in levels for value in level], dtype=float)
    weights = np.array([2.0**index for index, level in enumerate(levels) for _ in level])
    if values.size == 0:
        raise MonitorError(f"baseline statistics.json: {name!r} has an empty sketch")
    return values, weights


def load_baseline(directory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """statistics.json and constraints.json written by --mode baseline."""
    documents = []
    for name in ("statistics.json", "constraints.json"):
        path = directory / name
        if not path.is_file():
            raise MonitorError(f"baseline file not found: {path}; run --mode baseline first")
        try:
            documents.append(json.loads(path.read_text(encoding="utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MonitorError(f"baseline {name} is not valid JSON: {exc}") from None
    return documents[0], documents[1]


def baseline_features(statistics: dict[str, Any], constraints: dict[str, Any]) -> dict[str, BaselineFeature]:
    """Join the two baseline files per feature."""
    try:
        limits = {feature["name"]: feature for feature in constraints["features"]}
        result = {}
        for feature in statistics["features"]:
            name, numbers = feature["name"], feature["numerical_statistics"]
            values, weights = sketch_sample(name, numbers["distribution"]["kll"]["sketch"])
            result[name] = BaselineFeature(
                inferred_type=feature["inferred_type"],
                completeness=float(limits.get(name, {}).get("completeness", 1.0)),
                mean=float(numbers["mean"]),
                values=values,
                weights=weights,
            )
    except (KeyError, TypeError) as exc:
        raise MonitorError(f"baseline files lack the field {exc}; regenerate them") from None
    return result


def weighted_cdf(values: np.ndarray, weights: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Share of the total weight at or below each grid value."""
    order = np.argsort(values, kind="stable")
    cumulative = np.concatenate(([0.0], np.cumsum(weights[order]) / weights.sum()))
    return np.asarray(cumulative[np.searchsorted(values[order], grid, side="right")])


def ks_distance(
    base_values: np.ndarray, base_weights: np.ndarray, window_values: np.ndarray
) -> tuple[float, float]:
    """Largest gap between the two empirical CDFs (two-sample Kolmogorov-Smirnov statistic), and
    the value where it occurs; the baseline side is weighted, as its sketch may be compacted."""
    grid = np.union1d(base_values, window_values)
    gaps = np.abs(
        weighted_cdf(base_values, base_weights, grid)
        - weighted_cdf(window_values, np.ones(window_values.size), grid)
    )
    at = int(np.argmax(gaps))
    return float(gaps[at]), float(grid[at])


@dataclass(frozen=True)
class CheckSettings:
    """The check's parameters once arguments and baseline defaults are merged."""

    window: Window
    threshold: float
    min_records: int
    datatype_threshold: float
    endpoint_name: str


def violation(name: str, check: str, description: str) -> dict[str, str]:
    return {"feature_name": name, "constraint_check_type": check, "description": description}


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"


def judge_feature(
    name: str, baseline: BaselineFeature, values: np.ndarray, settings: CheckSettings
) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Completeness, data type and drift checks of one feature, and its metrics.json entry."""
    found = []
    present = values[np.isfinite(values)]
    completeness = present.size / values.size
    if completeness < baseline.completeness:
        found.append(
            violation(
                name,
                "completeness_check",
                "Data completeness requirement is not met. Expected completeness: "
                f"{_percent(baseline.completeness)}. Observed: only {_percent(completeness)} "
                "of data is present.",
            )
        )
    integral = float(np.mean(present == np.round(present))) if present.size else 1.0
    if baseline.inferred_type == "Integral" and integral < settings.datatype_threshold:
        found.append(
            violation(
                name,
                "data_type_check",
                "Data type match requirement is not met. Expected data type: Integral, Expected "
                f"match: {_percent(settings.datatype_threshold)}. Observed: only "
                f"{_percent(integral)} of data is Integral.",
            )
        )
    # Rounded once here so the violation text, metrics.json and the report agree to the digit.
    distance = (
        round(float(ks_distance(baseline.values, baseline.weights, present)[0]), 6)
        if present.size else None
    )
    if distance is not None and distance > settings.threshold:
        found.append(
            violation(
                name,
                "baseline_drift_check",
                f"Baseline drift distance: {distance} exceeds threshold: {settings.threshold}",
            )
        )
    summary = {
        "drift_distance": distance,
        "baseline_mean": baseline.mean,
        "window_mean": float(present.mean()) if present.size else None,
        "violation": bool(found),
    }
    return found, summary


def column_violations(baseline: Sequence[str], window: Sequence[str]) -> list[dict[str, str]]:
    """Features the artifact no longer computes, or computes but the baseline does not know."""
    missing = [
        violation(name, "missing_column_check", f"{name} is in the baseline but not the window.")
        for name in baseline
        if name not in window
    ]
    extra = [
        violation(name, "extra_column_check", f"{name} is in the window but not the baseline.")
        for name in window
        if name not in baseline
    ]
    return missing + extra


@dataclass
class Outcome:
    """The check's result, before it is written anywhere."""

    status: str
    message: str
    violations: list[dict[str, str]] = field(default_factory=list)
    features: dict[str, dict[str, Any]] = field(default_factory=dict)


def window_text(window: Window) -> str:
    bounds = window.describe()
    return f"[{bounds['start'] or 'the beginning'}, {bounds['end'] or 'the end'})"


def evaluate(
    baseline: dict[str, BaselineFeature],
    table: dict[str, np.ndarray],
    count: int,
    settings: CheckSettings,
) -> Outcome:
    """Run every check; below min_records the numbers are kept but no violation is raised."""
    if count == 0:
        return Outcome(
            NO_DATA,
            f"No data: no capture records in the window {window_text(settings.window)}; "
            "nothing was compared and no violations were raised.",
        )
    violations = column_violations(list(baseline), list(table))
    features = {}
    for name in (name for name in baseline if name in table):
        found, features[name] = judge_feature(name, baseline[name], table[name], settings)
        violations += found
    if count < settings.min_records:
        return Outcome(
            NOT_ENOUGH_DATA,
            f"Not enough data: {count} records in the window, at least {settings.min_records} "
            "are needed for a drift check; no violations were raised.",
            features={name: {**entry, "violation": False} for name, entry in features.items()},
        )
    if violations:
        names = ", ".join(sorted({item["feature_name"] for item in violations}))
        message = f"Drift: {len(violations)} violation(s) over {count} records, on {names}."
        return Outcome(DRIFT, message, violations, features)
    message = f"No drift: every feature within threshold {settings.threshold} over {count} records."
    return Outcome(NO_DRIFT, message, violations, features)


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
    """Arguments win; otherwise the values the baseline was made with."""
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
    if args.publish_metrics:
        publish_metrics(outcome, count, capture.malformed, settings.endpoint_name)
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


def publish_metrics(outcome: Outcome, records: int, malformed: int, endpoint_name: str) -> None:
    """Put the result to CloudWatch for the alarms. Drift distances only when they were judged:
    a window under min_records is noise and must not trip an alarm."""
    import boto3  # only here: the script must import where boto3 is absent

    data = [
        {"MetricName": "records", "Value": float(records), "Unit": "Count"},
        {"MetricName": "violations", "Value": float(len(outcome.violations)), "Unit": "Count"},
        {"MetricName": "malformed_lines", "Value": float(malformed), "Unit": "Count"},
    ]
    if outcome.status in (DRIFT, NO_DRIFT):
        data += [
            {"MetricName": f"{name}_drift", "Value": entry["drift_distance"], "Unit": "None"}
            for name, entry in outcome.features.items()
            if entry["drift_distance"] is not None
        ]
    dimensions = [{"Name": "Endpoint", "Value": endpoint_name}]
    boto3.client("cloudwatch").put_metric_data(
        Namespace=NAMESPACE, MetricData=[{**item, "Dimensions": dimensions} for item in data]
    )
    print(f"published {len(data)} metrics to CloudWatch {NAMESPACE}, Endpoint={endpoint_name}")


# --- report.html: self-contained, plots drawn as inline SVG ---------------------------------------

WIDTH, HEIGHT = 420, 220
LEFT, RIGHT, TOP, BOTTOM = 52, 408, 14, 186
BASELINE_COLOUR, WINDOW_COLOUR = "#0072b2", "#d55e00"
GRID_POINTS = 400
HISTOGRAM_BINS = 20
STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:64rem}
table{border-collapse:collapse;margin:.5rem 0 1rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
tr.violation td{background:#fde2e1;font-weight:600}
.status{padding:.6rem 1rem;border-radius:4px;font-weight:600}
.status-drift{background:#fde2e1}.status-no_drift{background:#e3f4e1}
.status-not_enough_data,.status-no_data{background:#fff4d6}
.legend span{display:inline-block;width:1rem;height:.6rem;margin:0 .3rem 0 1rem}
svg{margin-right:1rem;background:#fafafa}
"""


def _fmt(value: float) -> str:
    return f"{value:.4g}"


class Scale:
    """Maps data to pixels for one plot; a single value gets a unit-wide range around it."""

    def __init__(self, low: float, high: float, top: float) -> None:
        self.low, self.high = (low - 0.5, high + 0.5) if low == high else (low, high)
        self.top = top if top > 0 else 1.0

    def x(self, value: float) -> float:
        return LEFT + (value - self.low) / (self.high - self.low) * (RIGHT - LEFT)

    def y(self, value: float) -> float:
        return BOTTOM - value / self.top * (BOTTOM - TOP)


def _text(x: float, y: float, text: str, anchor: str = "middle", extra: str = "") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="10" text-anchor="{anchor}"{extra}>'
        f"{html.escape(text)}</text>"
    )


def _svg(label: str, scale: Scale, y_label: str, content: str) -> str:
    """A plot frame with x ticks at five values and y ticks at 0, half and top."""
    middle = (TOP + BOTTOM) / 2
    parts = [
        f'<svg width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{html.escape(label)}">',
        f'<rect x="{LEFT}" y="{TOP}" width="{RIGHT - LEFT}" height="{BOTTOM - TOP}" '
        'fill="none" stroke="#999"/>',
        _text(14, middle, y_label, extra=f' transform="rotate(-90 14 {middle})"'),
    ]
    parts += [_text(scale.x(v), BOTTOM + 14, _fmt(v)) for v in np.linspace(scale.low, scale.high, 5)]
    parts += [_text(LEFT - 4, scale.y(v) + 3, _fmt(v), "end") for v in (0, scale.top / 2, scale.top)]
    return "".join(parts) + content + "</svg>"


def _step_path(scale: Scale, grid: np.ndarray, cdf: np.ndarray, colour: str) -> str:
    steps = "".join(f"H{scale.x(x):.1f}V{scale.y(y):.1f}" for x, y in np.column_stack((grid, cdf)))
    return (
        f'<path d="M{LEFT},{scale.y(0.0):.1f}{steps}H{RIGHT}" fill="none" stroke="{colour}" '
        'stroke-width="1.8"/>'
    )


def cdf_svg(name: str, baseline: BaselineFeature, window: np.ndarray) -> str:
    """Overlaid cumulative distributions with the largest gap (the drift distance) marked."""
    union = np.concatenate([baseline.values, window])
    grid = np.unique(union)
    if grid.size > GRID_POINTS:
        grid = np.unique(np.quantile(union, np.linspace(0, 1, GRID_POINTS)))
    ones = np.ones(window.size)
    scale = Scale(float(union.min()), float(union.max()), 1.0)
    distance, at = ks_distance(baseline.values, baseline.weights, window)
    spot = np.array([at])
    base_y = scale.y(float(weighted_cdf(baseline.values, baseline.weights, spot)[0]))
    window_y = scale.y(float(weighted_cdf(window, ones, spot)[0]))
    marker = (
        f'<line x1="{scale.x(at):.1f}" x2="{scale.x(at):.1f}" y1="{base_y:.1f}" '
        f'y2="{window_y:.1f}" stroke="#222" stroke-dasharray="4 3" stroke-width="1.5"/>'
        + _text(
            min(scale.x(at) + 4, RIGHT - 70),
            (base_y + window_y) / 2,
            f"D = {distance:.3f}",
            "start",
        )
    )
    content = (
        _step_path(scale, grid, weighted_cdf(baseline.values, baseline.weights, grid), BASELINE_COLOUR)
        + _step_path(scale, grid, weighted_cdf(window, ones, grid), WINDOW_COLOUR)
        + marker
    )
    return _svg(f"cumulative distributions of {name}", scale, "cumulative share", content)


def histogram_svg(name: str, baseline: BaselineFeature, window: np.ndarray) -> str:
    """Share of records per bin, baseline and window side by side in each bin."""
    union = np.concatenate([baseline.values, window])
    low, high = float(union.min()), float(union.max())
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1) if high > low else np.array([low - 0.5, low + 0.5])
    shares = [
        np.histogram(baseline.values, bins=edges, weights=baseline.weights)[0] / baseline.weights.sum(),
        np.histogram(window, bins=edges)[0] / window.size,
    ]
    scale = Scale(float(edges[0]), float(edges[-1]), float(max(share.max() for share in shares)))
    bars = []
    for index in range(edges.size - 1):
        left, right = scale.x(float(edges[index])), scale.x(float(edges[index + 1]))
        half = (right - left) / 2
        for side, colour in enumerate((BASELINE_COLOUR, WINDOW_COLOUR)):
            top = scale.y(float(shares[side][index]))
            bars.append(
                f'<rect x="{left + side * half:.1f}" y="{top:.1f}" '
                f'width="{max(half - 0.5, 0.5):.1f}" '
                f'height="{BOTTOM - top:.1f}" fill="{colour}"/>'
            )
    return _svg(f"histogram of {name}", scale, "share of records", "".join(bars))


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    return _fmt(value) if isinstance(value, float) else html.escape(str(value))


def _table(rows: list[tuple[str, list[Any]]], header: list[str] | None = None) -> str:
    """Rows of (css class, cells); the first cell is a header cell when there is no header."""
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>" if header else ""
    body = []
    for css, cells in rows:
        first = "td" if header else "th"
        row = f"<{first}>{_cell(cells[0])}</{first}>" + "".join(f"<td>{_cell(c)}</td>" for c in cells[1:])
        body.append(f'<tr class="{css}">{row}</tr>' if css else f"<tr>{row}</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _list(items: list[str], empty: str) -> str:
    if not items:
        return f"<p>{html.escape(empty)}</p>"
    return "<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in items) + "</ul>"


@dataclass
class Report:
    """report.html: verdict, facts, summary table, violations, then a section per feature."""

    outcome: Outcome
    baseline: dict[str, BaselineFeature]
    table: dict[str, np.ndarray]
    capture: Capture
    settings: CheckSettings
    baseline_count: int

    def render(self) -> str:
        status = self.outcome.status
        parts = [
            "<h1>Model monitoring report</h1>",
            f'<p class="status status-{status}">{html.escape(self.outcome.message)}</p>',
            self.facts(),
        ]
        if self.outcome.features:
            parts += ["<h2>Summary</h2>", self.summary(), "<h2>Violations</h2>", self.violations()]
        parts += [
            "<h2>Malformed capture lines (first few)</h2>",
            _list(self.capture.examples, "None."),
        ]
        if self.outcome.features:
            parts += ["<h2>Features</h2>", self.legend()] + [
                self.feature(name) for name in self.outcome.features
            ]
        return (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>Model monitoring report</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(parts)
            + "\n</body></html>\n"
        )

    def facts(self) -> str:
        rows: list[tuple[str, list[Any]]] = [
            ("", ["endpoint", self.settings.endpoint_name or "(not given)"]),
            ("", ["window", window_text(self.settings.window)]),
            ("", ["records in the window", len(self.capture.texts)]),
            ("", ["malformed capture lines skipped", self.capture.malformed]),
            ("", ["capture files read", self.capture.files]),
            ("", ["records needed for a check", self.settings.min_records]),
            ("", ["drift threshold", self.settings.threshold]),
            ("", ["baseline records", self.baseline_count]),
            ("", ["generated", iso(datetime.now(UTC))]),
        ]
        return _table(rows)

    def summary(self) -> str:
        judged = self.outcome.status in (DRIFT, NO_DRIFT)
        rows = []
        for name, entry in self.outcome.features.items():
            verdict = "VIOLATION" if entry["violation"] else "ok" if judged else "not judged"
            cells = [
                name,
                entry["drift_distance"],
                self.settings.threshold,
                entry["baseline_mean"],
                entry["window_mean"],
                verdict,
            ]
            rows.append(("violation" if entry["violation"] else "", cells))
        header = [
            "feature",
            "drift distance",
            "threshold",
            "baseline mean",
            "window mean",
            "result",
        ]
        return _table(rows, header)

    def violations(self) -> str:
        items = [
            f"{item['feature_name']} ({item['constraint_check_type']}): {item['description']}"
            for item in self.outcome.violations
        ]
        return _list(items, "No violations.")

    def legend(self) -> str:
        return (
            f'<p class="legend"><span style="background:{BASELINE_COLOUR}"></span>baseline'
            f'<span style="background:{WINDOW_COLOUR}"></span>window</p>'
        )

    def feature(self, name: str) -> str:
        entry, values = self.outcome.features[name], self.table[name]
        present = values[np.isfinite(values)]
        title = f"<h3>{html.escape(name)}</h3>"
        if not present.size:
            return f"<section>{title}<p>No values in the window.</p></section>"
        verdict = "exceeds" if entry["violation"] else "is within"
        if self.outcome.status not in (DRIFT, NO_DRIFT):
            verdict = "was not judged against"
        distance, threshold = _fmt(entry["drift_distance"]), _fmt(self.settings.threshold)
        text = f"Drift distance {distance} {verdict} the threshold {threshold}."
        return (
            f"<section>{title}<p>{html.escape(text)}</p>"
            + cdf_svg(name, self.baseline[name], present)
            + histogram_svg(name, self.baseline[name], present)
            + "</section>"
        )


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


def write_message(base: Path, message: str) -> None:
    """SageMaker shows output/message as the Processing job's FailureReason."""
    target = base / "output" / "message"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(message, encoding="utf-8")


def fail(base: Path, message: str) -> NoReturn:
    """Stop with the reason and no traceback: the message already says what is wrong."""
    write_message(base, message)
    print(message, file=sys.stderr)
    sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the Processing job; drift is a finding, not a failure (exit 0)."""
    base = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
    try:
        args = parse_args(argv)
        if args.mode == "baseline":
            run_baseline(base, args)
        else:
            run_check(base, args)
    except (MonitorError, ArtifactError) as exc:
        fail(base, str(exc))
    except Exception as exc:
        write_message(base, f"monitoring failed: {type(exc).__name__}: {exc}")
        raise


if __name__ == "__main__":
    main()
