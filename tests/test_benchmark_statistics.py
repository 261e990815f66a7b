"""The statistics the benchmarks report their figures with (benchmarks/common.py)."""

from __future__ import annotations

import importlib.util
import random
import statistics

import pytest

from pipelines import REPO_ROOT

# Loaded from its file, not through sys.path: the benchmarks folder holds a scorer.py of its own,
# which would shadow steps/scorer.py for the tests that import that as `scorer`.
_SPEC = importlib.util.spec_from_file_location("benchmark_common", REPO_ROOT / "benchmarks" / "common.py")
assert _SPEC is not None and _SPEC.loader is not None
common = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(common)
median_interval = common.median_interval


def test_the_median_interval_is_the_order_statistics_binomial_coverage_gives() -> None:
    fifteen = [float(value) for value in range(15, 0, -1)]  # order does not matter
    assert median_interval(fifteen) == (4.0, 12.0, pytest.approx(1 - 2 * 576 / 2**15))
    assert median_interval([float(value) for value in range(6)]) == (0.0, 5.0, 1 - 2 / 2**6)
    assert median_interval([1.0, 2.0, 3.0, 4.0, 5.0]) is None  # its widest covers 94 %: too little


def test_the_median_interval_covers_the_median_as_often_as_it_says() -> None:
    """Drawn 4,000 times from a skewed distribution whose median is known (log-normal: e^0 = 1)."""
    draw = random.Random(7)
    covered = 0
    for _ in range(4000):
        sample = [draw.lognormvariate(0.0, 0.5) for _ in range(15)]
        low, high, coverage = median_interval(sample) or (0.0, 0.0, 0.0)
        assert low <= statistics.median(sample) <= high
        covered += low <= 1.0 <= high
    assert coverage == pytest.approx(0.9648, abs=1e-4)
    assert abs(covered / 4000 - coverage) < 0.012
