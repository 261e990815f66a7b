"""Comparing a window with the baseline: completeness, data type and drift checks per feature.

Drift is the two-sample Kolmogorov-Smirnov distance between the baseline's distribution of a
feature (its weighted KLL sketch) and the window's. Violations follow Model Monitor's
constraint_violations.json wording, so its readers keep working.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .capture import Window, window_text
from .formats import BaselineFeature

NO_DATA, NOT_ENOUGH_DATA, DRIFT, NO_DRIFT = "no_data", "not_enough_data", "drift", "no_drift"


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
    evaluate_constraints: bool  # monitoring_config.evaluate_constraints
    compare_distributions: bool  # monitoring_config.distribution_constraints.perform_comparison
    emit_metrics: bool  # monitoring_config.emit_metrics


def violation(name: str, check: str, description: str) -> dict[str, str]:
    return {"feature_name": name, "constraint_check_type": check, "description": description}


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"


def judge_feature(
    name: str, baseline: BaselineFeature, values: np.ndarray, settings: CheckSettings
) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Completeness, data type and drift checks of one feature, and its metrics.json entry. A
    feature whose constraints are disabled (in the whole file or for this feature) keeps its
    numbers but raises nothing, as Model Monitor skips it."""
    found = []
    evaluated = settings.evaluate_constraints and baseline.evaluated
    present = values[np.isfinite(values)]
    completeness = present.size / values.size
    if evaluated and completeness < baseline.completeness:
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
    if evaluated and baseline.inferred_type == "Integral" and integral < settings.datatype_threshold:
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
    drift_checked = evaluated and settings.compare_distributions
    if drift_checked and distance is not None and distance > settings.threshold:
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
        "drift_checked": drift_checked,
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

    @property
    def judged(self) -> bool:
        """Whether the window had enough records to be judged against the threshold."""
        return self.status in (DRIFT, NO_DRIFT)


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
    violations = column_violations(list(baseline), list(table)) if settings.evaluate_constraints else []
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
    unchecked = sorted(name for name, entry in features.items() if not entry["drift_checked"])
    if len(unchecked) == len(features):
        message = (f"No drift: no drift check is enabled in the baseline's constraints.json, "
                   f"{count} records not compared.")
    else:
        skipped = f" ({', '.join(unchecked)} not checked: disabled in constraints.json)" if unchecked else ""
        message = f"No drift: every feature within threshold {settings.threshold} over {count} records"
        message += skipped + "."
    return Outcome(NO_DRIFT, message, violations, features)
