"""train.py: hyperparameters, artifact contents, determinism and failure reporting."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import joblib
import numpy as np
import pytest
import sklearn
from step_helpers import NEGATIVE, POSITIVE, REVIEWS, train_model, write_reviews

from steps import train

PROBES = ["excellent quality, love it", "terrible, broke after a day", "great but poor battery"]


def run_main(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: list[tuple[str, int]], argv: list[str]
) -> tuple[int, Path]:
    """Run train.main() with the SageMaker environment variables pointing into tmp_path."""
    base = tmp_path / "ml"
    channel = base / "input" / "data" / "train"
    if rows:
        write_reviews(channel / "train.csv", rows)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(channel))
    monkeypatch.setenv("SM_MODEL_DIR", str(base / "model"))
    try:
        train.main(argv)
    except SystemExit as exc:
        return int(exc.code or 0), base
    return 0, base


def test_main_writes_model_metadata_and_inference_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["--regularization-c", "2.5", "--min-df", "1", "--seed", "7", "--sagemaker_extra", "x"]
    status, base = run_main(tmp_path, monkeypatch, REVIEWS, argv)
    assert status == 0
    model_dir = base / "model"
    assert sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*")) == [
        "code",
        "code/inference.py",
        "metadata.json",
        "model.joblib",
    ]
    metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    digest = hashlib.sha256((model_dir / "model.joblib").read_bytes()).hexdigest()
    assert metadata["sha256"] == digest
    assert metadata["sklearn"] == sklearn.__version__
    assert metadata["numpy"] == np.__version__
    assert {"python", "scipy", "joblib"} <= metadata.keys()
    assert metadata["classes"] == [0, 1]
    assert metadata["training_rows"] == len(REVIEWS)
    assert metadata["hyperparameters"] == {
        "ngram_max": 2,
        "max_features": 20000,
        "regularization_c": 2.5,
        "min_df": 1,
        "seed": 7,
    }
    assert metadata["created"].endswith("Z")
    source = Path(train.__file__).with_name("inference.py").read_bytes()
    assert (model_dir / "code" / "inference.py").read_bytes() == source
    model = joblib.load(model_dir / "model.joblib")
    assert model.named_steps["classifier"].C == 2.5
    assert list(model.predict(PROBES[:2])) == [1, 0]
    assert not (base / "output" / "failure").exists()


def test_hyperparameters_reach_the_pipeline(tmp_path: Path) -> None:
    train_file = write_reviews(tmp_path / "train.csv", REVIEWS)
    model_dir = train_model(
        train_file, tmp_path / "model", ["--ngram-max", "1", "--max-features", "30"]
    )
    vectorizer = joblib.load(model_dir / "model.joblib").named_steps["tfidf"]
    assert len(vectorizer.vocabulary_) == 30
    assert all(" " not in term for term in vectorizer.vocabulary_)


def test_defaults_match_the_contract() -> None:
    args = train.parse_args([])
    assert vars(args) == {
        "ngram_max": 2, "max_features": 20000, "regularization_c": 4.0, "min_df": 1, "seed": 42,
    }


def test_same_data_and_seed_give_same_predictions(tmp_path: Path) -> None:
    train_file = write_reviews(tmp_path / "train.csv", REVIEWS)
    first = joblib.load(train_model(train_file, tmp_path / "a") / "model.joblib")
    second = joblib.load(train_model(train_file, tmp_path / "b") / "model.joblib")
    assert np.array_equal(first.predict_proba(PROBES), second.predict_proba(PROBES))


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param([(text, 1) for text in POSITIVE], "only class 1", id="one-class"),
        pytest.param([], "training data not found", id="no-file"),
        pytest.param(
            [(NEGATIVE[0], 0), (POSITIVE[0], 1), (POSITIVE[1], 3)],
            "sentiment must be 0 or 1, found '3' on line 4",
            id="bad-label",
        ),
    ],
)
def test_failures_write_reason_and_exit_1(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rows: list[tuple[str, int]],
    expected: str,
) -> None:
    status, base = run_main(tmp_path, monkeypatch, rows, [])
    assert status == 1
    assert expected in (base / "output" / "failure").read_text(encoding="utf-8")
    assert not (base / "model" / "model.joblib").exists()


def test_unreadable_data_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    channel = tmp_path / "ml" / "input" / "data" / "train"
    channel.mkdir(parents=True)
    (channel / "train.csv").write_bytes(b"review_text,sentiment\n\xff\xfe,1\n")
    status, base = run_main(tmp_path, monkeypatch, [], [])
    assert status == 1
    assert "cannot read" in (base / "output" / "failure").read_text(encoding="utf-8")
