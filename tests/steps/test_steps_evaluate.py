"""evaluate.py: model-quality report, use of the artifact's own handlers, safe extraction."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
from step_helpers import NEGATIVE, POSITIVE, REVIEWS, make_tarball, write_reviews

from steps import evaluate, monitor

TEST_ROWS = [
    ("excellent quality, love this kettle", 1),
    ("great headphones, amazing value", 1),
    ("happy with this, works perfectly", 1),
    ("terrible soap, awful smell", 0),
    ("broke after a day, waste of money", 0),
    ("poor quality and useless support", 0),
    ("great design but terrible battery", 0),
    ("awful fit yet lovely fabric", 1),
]


def write_splits(base: Path, rows: list[tuple[str, int]]) -> None:
    """The test split to score, and a training split for the baseline."""
    write_reviews(base / "processing" / "test" / "test.csv", rows)
    write_reviews(base / "processing" / "train" / "train.csv", REVIEWS)


def stage(base: Path, model_dir: Path, rows: list[tuple[str, int]]) -> Path:
    make_tarball(model_dir, base / "processing" / "model" / "model.tar.gz")
    write_splits(base, rows)
    return base


def run_main(base: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    try:
        evaluate.main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def read_report(base: Path) -> dict[str, Any]:
    path = base / "processing" / "evaluation" / "evaluation.json"
    report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return report


def test_report_has_sagemaker_format_and_consistent_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_dir: Path
) -> None:
    base = stage(tmp_path, model_dir, TEST_ROWS)
    assert run_main(base, monkeypatch) == 0
    report = read_report(base)
    assert list(report) == ["binary_classification_metrics"]
    metrics = report["binary_classification_metrics"]
    assert set(metrics) == {"accuracy", "precision", "recall", "f1", "auc", "confusion_matrix"}
    for name in ("accuracy", "precision", "recall", "f1", "auc"):
        assert metrics[name]["standard_deviation"] == "NaN"
        assert 0.0 <= metrics[name]["value"] <= 1.0
    matrix = metrics["confusion_matrix"]
    assert set(matrix) == {"0", "1"} and all(set(row) == {"0", "1"} for row in matrix.values())
    tn, fp = matrix["0"]["0"], matrix["0"]["1"]
    fn, tp = matrix["1"]["0"], matrix["1"]["1"]
    assert tn + fp == sum(1 for _, label in TEST_ROWS if label == 0)
    assert fn + tp == sum(1 for _, label in TEST_ROWS if label == 1)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert metrics["accuracy"]["value"] == pytest.approx((tp + tn) / len(TEST_ROWS))
    assert metrics["precision"]["value"] == pytest.approx(precision)
    assert metrics["recall"]["value"] == pytest.approx(recall)
    assert metrics["f1"]["value"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert tp >= 2 and tn >= 2


def test_single_class_test_set_records_nan_auc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_dir: Path
) -> None:
    rows = [(text, 1) for text in POSITIVE[:5]]
    base = stage(tmp_path, model_dir, rows)
    assert run_main(base, monkeypatch) == 0
    metrics = read_report(base)["binary_classification_metrics"]
    assert metrics["auc"] == {"value": "NaN", "standard_deviation": "NaN"}
    assert metrics["confusion_matrix"]["0"] == {"0": 0, "1": 0}
    assert metrics["confusion_matrix"]["1"]["1"] == 5
    assert metrics["accuracy"]["value"] == 1.0


def test_uses_the_artifacts_own_inference_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_dir: Path
) -> None:
    patched = shutil.copytree(model_dir, tmp_path / "patched")
    handler = patched / "code" / "inference.py"
    handler.write_text(
        handler.read_text(encoding="utf-8")
        + "\n\ndef score(texts, model):\n"
        + "    return [{'label': 1, 'score': 1.0} for _ in texts]\n",
        encoding="utf-8",
    )
    rows = [(POSITIVE[0], 1), (NEGATIVE[0], 0), (NEGATIVE[1], 0)]
    base = stage(tmp_path / "ml", patched, rows)
    assert run_main(base, monkeypatch) == 0
    matrix = read_report(base)["binary_classification_metrics"]["confusion_matrix"]
    assert matrix == {"0": {"0": 0, "1": 2}, "1": {"0": 0, "1": 1}}


def renamed_handler(model_dir: Path, copy: Path, name: str, new_name: str) -> Path:
    """A copy of the model whose code/inference.py defines `name` as `new_name`: an artifact as
    an older train.py wrote it."""
    shutil.copytree(model_dir, copy)
    handler = copy / "code" / "inference.py"
    handler.write_text(
        handler.read_text(encoding="utf-8").replace(f"def {name}(", f"def {new_name}("), encoding="utf-8"
    )
    return copy


def test_scores_an_artifact_trained_before_its_handlers_served_through_transform_fn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_dir: Path
) -> None:
    """A selective run may evaluate a model an older Train made: its scorer is predict_fn."""
    older = renamed_handler(model_dir, tmp_path / "older", "score", "predict_fn")
    rows = [(POSITIVE[0], 1), (NEGATIVE[0], 0)]
    base = stage(tmp_path / "ml", older, rows)
    assert run_main(base, monkeypatch) == 0
    matrix = read_report(base)["binary_classification_metrics"]["confusion_matrix"]
    assert matrix == {"0": {"0": 1, "1": 0}, "1": {"0": 0, "1": 1}}


def test_writes_the_drift_baseline_of_the_training_split_as_monitor_baseline_mode_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_dir: Path
) -> None:
    """The version's baseline comes from the model Evaluate loaded, with the same code as a
    baseline made by hand (`monitor.py --mode baseline`), so the two files agree byte for byte."""
    base = stage(tmp_path / "ml", model_dir, TEST_ROWS)
    assert run_main(base, monkeypatch) == 0
    written = base / "processing" / "baseline"
    statistics = json.loads((written / "statistics.json").read_text(encoding="utf-8"))
    assert statistics["dataset"]["item_count"] == len(REVIEWS)
    assert {feature["name"] for feature in statistics["features"]} >= {"prediction_score", "review_length"}
    constraints = json.loads((written / "constraints.json").read_text(encoding="utf-8"))
    assert constraints["monitoring_config"]["distribution_constraints"]["comparison_threshold"] == 0.1

    by_hand = tmp_path / "by-hand"
    shutil.copytree(base / "processing", by_hand / "processing", ignore=shutil.ignore_patterns("baseline"))
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(by_hand))
    monitor.main(["--mode", "baseline"])
    for name in ("statistics.json", "constraints.json"):
        assert (by_hand / "processing" / "baseline" / name).read_bytes() == (written / name).read_bytes()


def test_a_missing_training_split_fails_before_the_model_is_scored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_dir: Path
) -> None:
    base = stage(tmp_path / "ml", model_dir, TEST_ROWS)
    (base / "processing" / "train" / "train.csv").unlink()
    assert run_main(base, monkeypatch) == 1
    assert "training data not found" in (base / "output" / "message").read_text(encoding="utf-8")
    assert not (base / "processing" / "evaluation").exists()


def test_an_artifact_without_monitored_features_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_dir: Path
) -> None:
    """A version is registered only with its baseline, which needs the artifact's features()."""
    older = renamed_handler(model_dir, tmp_path / "older", "features", "_features")
    base = stage(tmp_path / "ml", older, TEST_ROWS)
    assert run_main(base, monkeypatch) == 1
    assert "no features() function" in (base / "output" / "message").read_text(encoding="utf-8")
    assert not (base / "processing" / "baseline").exists()


def tarball_with(path: Path, member: tarfile.TarInfo, payload: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        member.size = len(payload) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(payload) if member.isfile() else None)
    return path


def link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = target
    return member


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        pytest.param(tarfile.TarInfo("../escape.txt"), "unsafe path: '../escape.txt'", id="dotdot"),
        pytest.param(tarfile.TarInfo("/tmp/abs.txt"), "unsafe path: '/tmp/abs.txt'", id="absolute"),
        pytest.param(
            link("code/evil", "../../../etc/passwd", tarfile.SYMTYPE),
            "link 'code/evil' points outside",
            id="symlink-out",
        ),
        pytest.param(
            link("evil", "/etc/passwd", tarfile.SYMTYPE), "points outside", id="symlink-abs"
        ),
        pytest.param(
            link("hard", "../outside", tarfile.LNKTYPE), "points outside", id="hardlink-out"
        ),
    ],
)
def test_unsafe_archives_are_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, member: tarfile.TarInfo, expected: str
) -> None:
    base = tmp_path / "ml"
    tarball_with(base / "processing" / "model" / "model.tar.gz", member, b"x")
    write_splits(base, TEST_ROWS)
    assert run_main(base, monkeypatch) == 1
    assert expected in (base / "output" / "message").read_text(encoding="utf-8")
    assert not (tmp_path / "escape.txt").exists()
    assert not (base / "processing" / "evaluation").exists()


def test_missing_model_archive_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path / "ml"
    write_splits(base, TEST_ROWS)
    assert run_main(base, monkeypatch) == 1
    assert "model archive not found" in (base / "output" / "message").read_text(encoding="utf-8")


def test_tampered_model_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_dir: Path
) -> None:
    tampered = shutil.copytree(model_dir, tmp_path / "tampered")
    with (tampered / "coefficients.npy").open("ab") as handle:
        handle.write(b"\0")
    base = stage(tmp_path / "ml", tampered, TEST_ROWS)
    assert run_main(base, monkeypatch) == 1
    message = (base / "output" / "message").read_text(encoding="utf-8")
    assert "refused by its model_fn" in message and "sha256" in message


def test_records_the_digest_of_the_model_data_it_scored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_dir: Path
) -> None:
    base = stage(tmp_path / "ml", model_dir, TEST_ROWS)
    assert run_main(base, monkeypatch) == 0
    archive = base / "processing" / "model" / "model.tar.gz"
    recorded = json.loads((base / "processing" / "evaluation" / "model-data.json").read_text("utf-8"))
    assert recorded == {"sha256": hashlib.sha256(archive.read_bytes()).hexdigest()}


@pytest.mark.parametrize("seed", range(5))
def test_metrics_equal_scikit_learns(seed: int) -> None:
    """Evaluate computes its metrics with numpy (no scikit-learn import in the job); they are
    scikit-learn's, ties in the scores and empty predicted classes included."""
    import numpy as np
    from sklearn import metrics

    generator = np.random.default_rng(seed)
    actual = generator.integers(0, 2, 200).tolist()
    scores = np.round(generator.random(200), 1)  # coarse: many tied scores
    predicted = (scores > (0.5 if seed else 2.0)).astype(int).tolist()  # seed 0: never positive
    report = evaluate.compute_metrics(
        actual, [{"label": p, "score": s} for p, s in zip(predicted, scores.tolist(), strict=True)]
    )["binary_classification_metrics"]
    expected = {
        "accuracy": metrics.accuracy_score(actual, predicted),
        "precision": metrics.precision_score(actual, predicted, zero_division=0),
        "recall": metrics.recall_score(actual, predicted, zero_division=0),
        "f1": metrics.f1_score(actual, predicted, zero_division=0),
        "auc": metrics.roc_auc_score(actual, scores),
    }
    for name, value in expected.items():
        assert report[name]["value"] == pytest.approx(value, abs=1e-12), name
    matrix = metrics.confusion_matrix(actual, predicted, labels=[0, 1])
    assert report["confusion_matrix"] == {
        str(t): {str(g): int(matrix[t][g]) for g in (0, 1)} for t in (0, 1)
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "test.csv is empty"),
        (b"text,label\nfine,1\n", "lacks column(s) ['review_text', 'sentiment']"),
        (b"review_text,sentiment\n", "test.csv has no rows"),
        (b"review_text,sentiment\ngood,1\nbad,0,extra\n", "test.csv row 3: 3 fields, the header has 2"),
        (b"review_text,sentiment\ngood,yes\n", "sentiment must be 0 or 1 in every row"),
        (b"review_text,sentiment\n\xff\xfe,1\n", "cannot read"),
    ],
)
def test_an_unreadable_test_split_fails_with_a_message(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "test.csv"
    path.write_bytes(content)
    with pytest.raises(evaluate.EvaluationError, match=re.escape(message)):
        evaluate.load_test_data(path)


def test_evaluate_and_monitor_load_neither_pandas_nor_scikit_learn_nor_check_mode() -> None:
    """Each of the first two costs a Processing job about a second; only Train needs
    scikit-learn. Evaluate is on the pipeline's critical path: monitoring's check mode (report,
    CloudWatch) is loaded only when the monitoring pipeline's check runs."""
    import subprocess
    import sys

    steps = Path(evaluate.__file__).resolve().parent
    script = (
        f"import sys; sys.path.insert(0, {str(steps)!r})\n"
        "import evaluate, monitor\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'sklearn', 'scipy'}))\n"
        "print(sorted(m for m in sys.modules if m.startswith('monitoring')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == [
        "[]", "['monitoring', 'monitoring.baseline', 'monitoring.formats', 'monitoring.model']"
    ]


def test_an_unexpected_error_is_named_as_the_evaluation_failing_and_keeps_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_dir: Path
) -> None:
    base = stage(tmp_path / "ml", model_dir, TEST_ROWS)

    def broken(*_: object) -> None:
        raise KeyError("labels")

    monkeypatch.setattr(evaluate, "run", broken)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    with pytest.raises(KeyError, match="labels"):  # uncaught: the job's log shows where it came from
        evaluate.main()
    message = (base / "output" / "message").read_text(encoding="utf-8")
    assert message == "evaluation failed: KeyError: 'labels'"
