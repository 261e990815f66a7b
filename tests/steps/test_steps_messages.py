"""Messages people read: Preprocess's problems one per line within SageMaker's 1 KB, and the
accuracy the Fail step states, shown as `models list` shows it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_steps_evaluate import TEST_ROWS, read_report, run_main, stage
from test_steps_preprocess import GOOD, message
from test_steps_preprocess import run_main as run_preprocess
from test_steps_preprocess import stage as stage_raw

from pipelines.cli import shown_accuracy
from steps import evaluate, preprocess


def test_long_problems_of_both_files_share_the_failure_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    header = ",".join(f"column_{i}" for i in range(200)).encode() + b"\nx\n"
    base = stage_raw(tmp_path, header, header)
    assert run_preprocess(base, monkeypatch) == 1
    reason = message(base)
    assert len(reason.encode()) <= preprocess.MESSAGE_BYTES
    first, second = reason.split("\n")
    assert first.startswith("train.csv: line 1: missing columns") and first.endswith("…")
    assert second.startswith("test.csv: line 1: missing columns") and second.endswith("…")


def test_problems_that_fit_are_kept_whole_one_per_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = stage_raw(tmp_path, GOOD + b"a,5\n", GOOD + b"b,x\n")
    assert run_preprocess(base, monkeypatch) == 1
    assert message(base).split("\n") == [
        "train.csv: line 4: sentiment must be 0 or 1, found '5'",
        "test.csv: line 4: sentiment must be 0 or 1, found 'x'",
    ]


@given(st.lists(st.text(min_size=1, max_size=900).filter(str.strip), min_size=1, max_size=3))
def test_any_problems_fit_in_1_kb_one_line_each(problems: list[str]) -> None:
    reason = preprocess.failure_message(problems)
    assert len(reason.encode()) <= preprocess.MESSAGE_BYTES
    lines = reason.split("\n")
    assert len(lines) == len(problems)
    if sum(len(p.encode()) for p in problems) + len(problems) <= preprocess.MESSAGE_BYTES:
        assert lines == [" ".join(p.split()) for p in problems]


@pytest.mark.parametrize(("value", "shown"), [
    (0.7251755265797393, "0.725"), (0.7999, "0.799"), (0.725, "0.725"), (1.0, "1.000"), (0.0, "0.000"),
])
def test_accuracy_is_cut_to_three_decimals_never_rounded_up(value: float, shown: str) -> None:
    assert evaluate.shown(value) == shown


@given(st.floats(min_value=0.0, max_value=1.0))
def test_models_list_shows_the_accuracy_as_the_fail_message_does(value: float) -> None:
    assert shown_accuracy(value) == evaluate.shown(value)


def test_evaluate_writes_the_shown_accuracy_beside_the_full_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_dir: Path
) -> None:
    base = stage(tmp_path, model_dir, TEST_ROWS)
    assert run_main(base, monkeypatch) == 0
    accuracy = read_report(base)["binary_classification_metrics"]["accuracy"]["value"]
    summary = json.loads((base / "processing" / "evaluation" / "summary.json").read_text())
    assert summary == {"accuracy": evaluate.shown(accuracy)}
