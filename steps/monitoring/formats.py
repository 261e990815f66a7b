"""Model Monitor's statistics.json and constraints.json: written for the baseline and for every
window by the same code, and the baseline read back for the check.

Each feature's distribution is kept as a KLL sketch, so the baseline files are all the check needs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

INTEGRAL_FEATURES = frozenset({"predicted_label", "review_length", "token_count"})
DEFAULT_THRESHOLD = 0.1
DEFAULT_MIN_RECORDS = 200
KLL_K = 2048
KLL_PARAMETERS = {"c": 0.64, "k": float(KLL_K)}
BUCKETS = 10
STATISTICS = "statistics.json"
CONSTRAINTS = "constraints.json"


class BaselineError(Exception):
    """The baseline files cannot be used; the message says why."""


# --- writing statistics.json and constraints.json -------------------------------------------------


def write_json(path: Path, document: dict[str, Any]) -> None:
    """One of the job's output files; NaN is refused, as Model Monitor's readers refuse it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, allow_nan=False), encoding="utf-8")


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


# --- reading the baseline back --------------------------------------------------------------------


@dataclass
class BaselineFeature:
    """What the check needs of one baseline feature."""

    inferred_type: str
    completeness: float
    mean: float
    values: np.ndarray
    weights: np.ndarray
    evaluated: bool


def enabled(config: dict[str, Any], key: str) -> bool:
    """A Model Monitor switch ("Enabled" / "Disabled"); absent means enabled, as in its files."""
    return str(config.get(key, "Enabled")) != "Disabled"


def feature_evaluated(limits: dict[str, Any]) -> bool:
    """A feature's own evaluate_constraints override: the SageMaker SDK's
    Constraints.set_monitoring(False, name) writes `monitoring_config_overrides`, the documented
    schema spells it `monitoringConfigOverrides`; both are honoured."""
    overrides = limits.get("monitoring_config_overrides") or limits.get("monitoringConfigOverrides")
    return enabled(overrides, "evaluate_constraints") if isinstance(overrides, dict) else True


def sketch_sample(name: str, sketch: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Values and weights (2^level) of a KLL sketch."""
    try:
        levels = [[float(value) for value in level] for level in sketch["data"]]
    except (KeyError, TypeError, ValueError):
        raise BaselineError(f"baseline statistics.json: {name!r} has no readable sketch") from None
    values = np.array([value for level in levels for value in level], dtype=float)
    weights = np.array([2.0**index for index, level in enumerate(levels) for _ in level])
    if values.size == 0:
        raise BaselineError(f"baseline statistics.json: {name!r} has an empty sketch")
    return values, weights


def load_baseline(directory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """statistics.json and constraints.json as monitoring/baseline.py writes them."""
    documents = []
    for name in (STATISTICS, CONSTRAINTS):
        path = directory / name
        if not path.is_file():
            raise BaselineError(f"baseline file not found: {path}; run --mode baseline first")
        try:
            documents.append(json.loads(path.read_text(encoding="utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BaselineError(f"baseline {name} is not valid JSON: {exc}") from None
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
                evaluated=feature_evaluated(limits.get(name, {})),
            )
    except (KeyError, TypeError) as exc:
        raise BaselineError(f"baseline files lack the field {exc}; regenerate them") from None
    return result
