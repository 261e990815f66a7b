"""train.py: hyperparameters, artifact contents, determinism and failure reporting."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import sklearn
from step_helpers import NEGATIVE, POSITIVE, REVIEWS, train_model, write_reviews

from steps import scorer, train
from steps.scorer import LEXICON_FEATURES

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


DATA_FILES = ["coefficients.npy", "idf.npy", "lexicon.json", "model.json", "vocabulary.json"]


def test_main_writes_plain_data_metadata_and_inference_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["--regularization-c", "2.5", "--lexicon-emphasis", "1.5", "--min-df", "1", "--seed", "7",
            "--sagemaker_extra", "x"]
    status, base = run_main(tmp_path, monkeypatch, REVIEWS, argv)
    assert status == 0
    model_dir = base / "model"
    assert sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*")) == sorted(
        ["code", "code/inference.py", "code/scorer.py", "metadata.json", *DATA_FILES]
    )
    metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    assert metadata["format"] == scorer.FORMAT
    assert metadata["files"] == {
        name: hashlib.sha256((model_dir / name).read_bytes()).hexdigest() for name in DATA_FILES
    }
    assert metadata["sklearn"] == sklearn.__version__
    assert metadata["numpy"] == np.__version__
    assert metadata["classes"] == [0, 1]
    assert metadata["training_rows"] == len(REVIEWS)
    assert metadata["hyperparameters"] == {
        "ngram_max": 2, "max_features": 20000, "regularization_c": 2.5, "min_df": 1,
        "lexicon_emphasis": 1.5, "seed": 7,
    }
    assert metadata["regularization_c"] == 2.5
    assert metadata["regularization_c_chosen_by"] == "hyperparameter"
    assert metadata["lexicon_emphasis"] == 1.5
    assert metadata["lexicon_emphasis_chosen_by"] == "hyperparameter"
    assert metadata["lexicon"].startswith("vaderSentiment ")
    assert metadata["created"].endswith("Z")
    for name in ("inference.py", "scorer.py"):
        source = Path(train.__file__).with_name(name).read_bytes()
        assert (model_dir / "code" / name).read_bytes() == source
    model = scorer.CompiledModel.load(model_dir)
    assert list(model.predict_proba(PROBES[:2])[:, 1] > 0.5) == [True, False]
    assert not (base / "output" / "failure").exists()


def test_c_and_lexicon_emphasis_are_cross_validated_by_default_and_logged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = train_model(write_reviews(tmp_path / "train.csv", REVIEWS), tmp_path / "model")
    metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    assert metadata["regularization_c_chosen_by"] == "cross-validation"
    assert metadata["regularization_c"] in train.C_GRID
    assert set(metadata["cv_accuracy_by_c"]) == {f"{c:g}" for c in train.C_GRID}
    assert metadata["lexicon_emphasis_chosen_by"] == "cross-validation"
    assert metadata["lexicon_emphasis"] in train.EMPHASIS_GRID
    assert set(metadata["cv_accuracy_by_lexicon_emphasis"]) == {f"{e:g}" for e in train.EMPHASIS_GRID}
    c, emphasis = metadata["regularization_c"], metadata["lexicon_emphasis"]
    assert f"chose C = {c:g}, lexicon emphasis = {emphasis:g}" in capsys.readouterr().out
    info = json.loads((model_dir / "model.json").read_text())["info"]
    assert info["regularization_c"] == metadata["regularization_c"]
    assert info["lexicon_emphasis"] == metadata["lexicon_emphasis"]


def test_a_given_c_leaves_only_the_lexicon_emphasis_to_cross_validate(tmp_path: Path) -> None:
    train_file = write_reviews(tmp_path / "train.csv", REVIEWS)
    model_dir = train_model(train_file, tmp_path / "model", ["--regularization-c", "3"])
    metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    assert (metadata["regularization_c"], metadata["regularization_c_chosen_by"]) == (3.0, "hyperparameter")
    assert list(metadata["cv_accuracy_by_c"]) == ["3"]
    assert metadata["lexicon_emphasis_chosen_by"] == "cross-validation"
    assert set(metadata["cv_accuracy_by_lexicon_emphasis"]) == {f"{e:g}" for e in train.EMPHASIS_GRID}


def test_lexicon_emphasis_multiplies_the_idf_of_lexicon_terms_only(tmp_path: Path) -> None:
    train_file = write_reviews(tmp_path / "train.csv", REVIEWS)
    fixed = ["--regularization-c", "4", "--lexicon-emphasis"]
    plain, emphasised = (
        scorer.CompiledModel.load(train_model(train_file, tmp_path / name, [*fixed, value]))
        for name, value in (("plain", "0"), ("emphasised", "2"))
    )
    assert plain.vocabulary == emphasised.vocabulary
    rules = train.load_lexicon()
    strength = np.array(
        [max(abs(rules.valences.get(word, 0.0)) for word in term.split(" ")) for term in plain.vocabulary]
    )
    assert strength.max() > 0 and strength.min() == 0
    np.testing.assert_allclose(emphasised.idf, plain.idf * (1 + 2 * strength / train.MAX_VALENCE), rtol=1e-15)


def test_emphasised_training_matrix_is_what_the_vectorizer_transforms() -> None:
    texts = [text for text, _ in REVIEWS]
    vectorizer = train.make_vectorizer(train.parse_args([]))
    fitted = vectorizer.fit_transform(texts)
    tfidf = train.emphasise_lexicon_terms(vectorizer, fitted, train.load_lexicon(), 4.0)
    assert float(abs(tfidf - vectorizer.transform(texts)).max()) < 1e-12


def test_too_few_reviews_per_class_fall_back_to_a_fixed_c(tmp_path: Path) -> None:
    rows = [(POSITIVE[0], 1), (POSITIVE[1], 1), (NEGATIVE[0], 0)]
    model_dir = train_model(write_reviews(tmp_path / "train.csv", rows), tmp_path / "model")
    metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    assert metadata["regularization_c"] == train.FALLBACK_C
    assert metadata["lexicon_emphasis"] == train.FALLBACK_EMPHASIS


@pytest.mark.parametrize("value", ["0", "-1", "inf", "lots"])
def test_bad_regularization_is_refused(value: str) -> None:
    with pytest.raises(SystemExit):
        train.parse_args(["--regularization-c", value])


@pytest.mark.parametrize("value", ["-0.5", "inf", "nan", "lots"])
def test_bad_lexicon_emphasis_is_refused(value: str) -> None:
    with pytest.raises(SystemExit):
        train.parse_args(["--lexicon-emphasis", value])


def test_zero_lexicon_emphasis_is_plain_tfidf() -> None:
    assert train.parse_args(["--lexicon-emphasis", "0"]).lexicon_emphasis == 0.0

def test_hyperparameters_reach_the_pipeline(tmp_path: Path) -> None:
    train_file = write_reviews(tmp_path / "train.csv", REVIEWS)
    model_dir = train_model(
        train_file, tmp_path / "model", ["--ngram-max", "1", "--max-features", "30"]
    )
    vocabulary = scorer.CompiledModel.load(model_dir).vocabulary
    assert len(vocabulary) == 30
    assert all(" " not in term for term in vocabulary)


def test_defaults_match_the_contract() -> None:
    args = train.parse_args([])
    assert vars(args) == {
        "ngram_max": 2, "max_features": 20000, "regularization_c": "auto", "min_df": 1,
        "lexicon_emphasis": "auto", "seed": 42,
    }


def test_lexicon_features_follow_vader_negation_and_but() -> None:
    rules = train.load_lexicon()
    compound = LEXICON_FEATURES.index("compound")
    assert rules.features("good")[compound] > 0
    assert rules.features("not good")[compound] < 0
    assert rules.features("wouldn't recommend")[compound] < 0
    assert rules.features("very good")[compound] > rules.features("good")[compound]
    # after "but" counts more than before it
    assert rules.features("great but awful")[compound] < 0
    assert rules.features("!!! ...")[compound] == 0
    assert rules.features("") == [0.0] * len(LEXICON_FEATURES)
    # an emoji reads as its name; curly apostrophes negate like straight ones
    assert rules.features("\U0001F600")[compound] > 0
    assert rules.features("I don\u2019t like it")[compound] < 0


def test_lexicon_features_reach_the_classifier(tmp_path: Path) -> None:
    """Trained on reviews without a lexicon word, the lexicon still moves the score."""
    model_dir = train_model(write_reviews(tmp_path / "train.csv", REVIEWS), tmp_path / "model")
    model = scorer.CompiledModel.load(model_dir)
    assert np.any(model.coefficients[len(model.vocabulary) :] != 0)
    unseen = ["delightful", "dreadful"]
    assert all(term not in model.vocabulary for term in unseen)
    positive, negative = model.predict_proba(unseen)[:, 1]
    assert positive > 0.5 > negative


def test_same_data_and_seed_give_same_model_files(tmp_path: Path) -> None:
    train_file = write_reviews(tmp_path / "train.csv", REVIEWS)
    first, second = (train_model(train_file, tmp_path / name) for name in ("a", "b"))
    for name in DATA_FILES:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


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
    assert not (base / "model" / "model.json").exists()


def test_unreadable_data_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    channel = tmp_path / "ml" / "input" / "data" / "train"
    channel.mkdir(parents=True)
    (channel / "train.csv").write_bytes(b"review_text,sentiment\n\xff\xfe,1\n")
    status, base = run_main(tmp_path, monkeypatch, [], [])
    assert status == 1
    assert "cannot read" in (base / "output" / "failure").read_text(encoding="utf-8")


def test_c_is_cross_validated_on_a_sample_of_a_large_training_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(train, "CV_MAX_ROWS", 30)
    model_dir = train_model(write_reviews(tmp_path / "train.csv", REVIEWS), tmp_path / "model")
    assert f"on a stratified sample of 30 of {len(REVIEWS)} rows" in capsys.readouterr().out
    metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    assert metadata["regularization_c_chosen_by"] == "cross-validation"
    assert metadata["training_rows"] == len(REVIEWS)
