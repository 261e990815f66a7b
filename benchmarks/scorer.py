"""In-process scoring cost: the fitted scikit-learn pipeline's predict_proba against the compiled
scorer (steps/scorer.py) on the same model, for one review and for a batch of 1,000, with no HTTP.

    python benchmarks/scorer.py [--seconds 3]

The model is steps/train.py's, fitted on data/train.csv; the reviews are benchmarks/reviews.py's.
Each cell repeats the call for about --seconds and reports the median time per call.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import reviews  # noqa: E402
from common import REPO, machine_description, table  # noqa: E402

from steps import train  # noqa: E402


def median_seconds(call: Callable[[], object], budget: float) -> float:
    """Median wall time of one call, over as many calls as fit in the budget (at least 5)."""
    times: list[float] = []
    deadline = time.perf_counter() + budget
    while len(times) < 5 or time.perf_counter() < deadline:
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="per cell")
    args = parser.parse_args(argv)
    frame = pd.read_csv(REPO / "data" / "train.csv", dtype=str, keep_default_na=False)
    hyperparameters = train.parse_args([])
    with contextlib.redirect_stdout(io.StringIO()):
        pipeline, fitted = train.fit_model(
            frame["review_text"].tolist(),
            frame["sentiment"].astype(int).to_numpy(),
            hyperparameters,
            train.load_lexicon(),
        )
    compiled = train.compile_model(pipeline, hyperparameters, fitted)
    batch = reviews.sample_texts(1000)
    gap = float(np.max(np.abs(pipeline.predict_proba(batch) - compiled.predict_proba(batch))))
    rows = []
    for size in (1, 1000):
        texts = batch[:size]
        sklearn_s = median_seconds(functools.partial(pipeline.predict_proba, texts), args.seconds)
        compiled_s = median_seconds(functools.partial(compiled.predict_proba, texts), args.seconds)
        rows.append(
            [size, f"{sklearn_s * 1e6:,.0f}", f"{compiled_s * 1e6:,.0f}", f"{sklearn_s / compiled_s:.1f}x"]
        )
    print(f"machine: {machine_description()}")
    print(f"largest probability gap between the two on the batch: {gap:.2g}\n")
    print(table(["reviews per call", "scikit-learn µs/call", "compiled µs/call", "speed-up"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
