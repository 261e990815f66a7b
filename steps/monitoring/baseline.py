"""The drift baseline: the training reviews as the model answers them, written as Model Monitor's
statistics.json and constraints.json.

The Evaluate step writes it with the model it has just loaded (evaluate.py), so every version is
registered with its baseline; `monitor.py --mode baseline` writes one by hand, with another
threshold or minimum window size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from splits import TEXT, SplitError, read_columns

from .formats import (
    CONSTRAINTS,
    DEFAULT_MIN_RECORDS,
    DEFAULT_THRESHOLD,
    STATISTICS,
    baseline_constraints,
    dataset_statistics,
    write_json,
)
from .model import Artifact, MonitorError


def read_training_texts(path: Path) -> list[str]:
    """The review_text column of the preprocessed training split."""
    if not path.is_file():
        raise MonitorError(f"training data not found: {path}")
    try:
        (texts,) = read_columns(path, TEXT)
    except SplitError as error:
        raise MonitorError(str(error)) from None
    return texts


def write_baseline(
    artifact: Artifact,
    texts: list[str],
    target: Path,
    threshold: float = DEFAULT_THRESHOLD,
    min_records: int = DEFAULT_MIN_RECORDS,
) -> dict[str, Any]:
    """Score the training reviews, describe their monitored features and write both files to
    `target`; returns the statistics."""
    table = artifact.describe(texts)
    statistics = dataset_statistics(table, len(texts))
    write_json(target / STATISTICS, statistics)
    write_json(target / CONSTRAINTS, baseline_constraints(statistics, threshold, min_records))
    print(f"baseline of {len(texts)} training reviews, features {list(table)}; wrote {target}")
    return statistics
