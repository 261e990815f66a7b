"""SageMaker Training entry point (scikit-learn framework): fit word n-gram TF-IDF plus sentiment
lexicon features into a logistic regression, with its regularisation chosen by cross-validation.

The model is written as plain data (scorer.py's format: JSON and numpy arrays, no pickle), with
metadata.json (file digests, library versions, how it was fitted) and code/inference.py +
code/scorer.py, the handlers it is served and evaluated with, so the artifact is self-contained.
The lexicon comes from the vaderSentiment package (requirements.txt beside this script, which the
training image installs); serving needs only its weights, which travel in the artifact.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy
import sklearn
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import FeatureUnion, Pipeline

try:
    from . import scorer
except ImportError:  # run as a script: scorer.py is beside it
    import scorer  # type: ignore[no-redef]

TEXT = "review_text"
LABEL = "sentiment"
AUTO = "auto"
C_GRID = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
FALLBACK_C = 4.0  # when there are too few reviews per class to cross-validate
MAX_FOLDS = 5
CV_MAX_ROWS = 20_000  # C is chosen on a stratified sample of at most this many training rows
EXPORT_TOLERANCE = 1e-9
SHIPPED_CODE = ("inference.py", "scorer.py")


class TrainingError(Exception):
    """Training cannot proceed with this input; the message says why."""


def regularization(value: str) -> float | str:
    """'auto' (cross-validate) or a positive float."""
    if value.strip().lower() == AUTO:
        return AUTO
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a positive number, got {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"regularization C must be a positive number, got {value!r}")
    return number


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read hyperparameters; unknown arguments are ignored since the container may add its own."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ngram-max", type=int, default=2)
    parser.add_argument("--max-features", type=int, default=20000)
    parser.add_argument("--regularization-c", type=regularization, default=AUTO)
    parser.add_argument("--min-df", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"ignoring unknown arguments: {unknown}")
    return args


def load_lexicon() -> scorer.LexiconRules:
    """VADER's lexicon, negations and boosters, read from the installed vaderSentiment package."""
    try:
        from vaderSentiment import vaderSentiment as vader
    except ImportError:
        raise TrainingError(
            "the vaderSentiment package is not installed: the training source dir's "
            "requirements.txt pins it, and the training image installs it from there"
        ) from None
    folder = Path(vader.__file__).parent
    valences = {}
    for line in (folder / "vader_lexicon.txt").read_text(encoding="utf-8").splitlines():
        fields = line.strip().split("\t")
        if len(fields) >= 2:
            valences[fields[0]] = float(fields[1])
    emoji = {}
    for line in (folder / "emoji_utf8_lexicon.txt").read_text(encoding="utf-8").splitlines():
        fields = line.strip().split("\t")
        if len(fields) >= 2:
            emoji[fields[0]] = fields[1]
    from importlib.metadata import version

    return scorer.LexiconRules(
        valences=valences,
        negations=frozenset(vader.NEGATE),
        boosters={word: float(value) for word, value in vader.BOOSTER_DICT.items() if " " not in word},
        emoji=emoji,
        source=f"vaderSentiment {version('vaderSentiment')} (MIT): vader_lexicon.txt, emoji_utf8_lexicon.txt",
    )


def load_training_data(path: Path) -> tuple[list[str], list[int]]:
    """Read the preprocessed CSV, re-checking what training depends on."""
    if not path.is_file():
        raise TrainingError(f"training data not found: {path}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise TrainingError(f"cannot read {path}: {exc}") from None
    missing = [column for column in (TEXT, LABEL) if column not in frame.columns]
    if missing:
        raise TrainingError(f"{path.name} lacks column(s) {missing}; found {list(frame.columns)}")
    labels = frame[LABEL].str.strip()
    invalid = ~labels.isin(["0", "1"])
    if invalid.any():
        row = int(np.argmax(invalid.to_numpy()))
        raise TrainingError(
            f"{path.name}: sentiment must be 0 or 1, found {labels.iloc[row]!r} on line {row + 2}"
        )
    classes = sorted(set(labels))
    if len(classes) < 2:
        found = f"only class {classes[0]}" if classes else "no rows"
        raise TrainingError(f"{path.name} has {found}; training needs both classes 0 and 1")
    return frame[TEXT].tolist(), labels.astype(int).tolist()


def standardisation(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations (1 for a constant column)."""
    spread = matrix.std(axis=0)
    return matrix.mean(axis=0), np.where(spread > 0, spread, 1.0)


class LexiconFeatures(TransformerMixin, BaseEstimator):
    """scorer.LexiconRules.matrix, standardised with the training reviews' mean and deviation."""

    def __init__(self, rules: scorer.LexiconRules) -> None:
        self.rules = rules

    def fit(self, texts: list[str], labels: Any = None) -> LexiconFeatures:
        return self.fit_matrix(self.rules.matrix(texts))

    def fit_matrix(self, matrix: np.ndarray) -> LexiconFeatures:
        """Fit on features already computed (training computes them once)."""
        self.mean_, self.std_ = standardisation(matrix)
        return self

    def transform(self, texts: list[str]) -> np.ndarray:
        return self.scale(self.rules.matrix(texts))

    def scale(self, matrix: np.ndarray) -> np.ndarray:
        return (matrix - self.mean_) / self.std_


def make_vectorizer(args: argparse.Namespace) -> TfidfVectorizer:
    """Word n-gram TF-IDF; scorer.py reproduces exactly this configuration."""
    return TfidfVectorizer(
        ngram_range=(1, args.ngram_max),
        max_features=args.max_features,
        min_df=args.min_df,
        sublinear_tf=True,
        strip_accents="unicode",
    )


def make_classifier(args: argparse.Namespace, c: float) -> LogisticRegression:
    return LogisticRegression(C=c, max_iter=1000, random_state=args.seed)


def build_pipeline(args: argparse.Namespace, rules: scorer.LexiconRules, c: float) -> Pipeline:
    """TF-IDF over word n-grams beside the lexicon features, into a seeded logistic regression."""
    features = FeatureUnion([("tfidf", make_vectorizer(args)), ("lexicon", LexiconFeatures(rules))])
    return Pipeline([("features", features), ("classifier", make_classifier(args, c))])


def cross_validate_c(
    texts: list[str], labels: np.ndarray, lexicon: np.ndarray, args: argparse.Namespace
) -> tuple[float, dict[str, float]]:
    """Pick C from C_GRID by stratified k-fold accuracy on the training reviews (ties: the lower
    log loss). Each fold fits its own TF-IDF and lexicon scaling, as the final model does."""
    if len(labels) > CV_MAX_ROWS:  # C settles long before this; a million rows would take hours
        sample, _ = train_test_split(
            np.arange(len(labels)), train_size=CV_MAX_ROWS, stratify=labels, random_state=args.seed
        )
        sample = np.sort(sample)
        print(f"cross-validating C on a stratified sample of {CV_MAX_ROWS} of {len(labels)} rows")
        return cross_validate_c([texts[i] for i in sample], labels[sample], lexicon[sample], args)
    folds = min(MAX_FOLDS, int(np.bincount(labels).min()))
    if folds < 2:
        print(f"too few reviews per class to cross-validate; C = {FALLBACK_C}")
        return FALLBACK_C, {}
    accuracy = np.zeros(len(C_GRID))
    loss = np.zeros(len(C_GRID))
    splitter = StratifiedKFold(folds, shuffle=True, random_state=args.seed)
    for fit_rows, held_rows in splitter.split(np.zeros(len(labels)), labels):
        vectorizer = make_vectorizer(args)
        mean, std = standardisation(lexicon[fit_rows])
        fit_texts, held_texts = [texts[i] for i in fit_rows], [texts[i] for i in held_rows]
        fit_x = _stack(vectorizer.fit_transform(fit_texts), (lexicon[fit_rows] - mean) / std)
        held_x = _stack(vectorizer.transform(held_texts), (lexicon[held_rows] - mean) / std)
        for k, c in enumerate(C_GRID):
            model = make_classifier(args, c).fit(fit_x, labels[fit_rows])
            positive = np.clip(model.predict_proba(held_x)[:, 1], 1e-12, 1 - 1e-12)
            truth = labels[held_rows]
            accuracy[k] += np.mean((positive > 0.5) == truth) / folds
            loss[k] -= np.mean(np.where(truth == 1, np.log(positive), np.log(1 - positive))) / folds
    best = min(range(len(C_GRID)), key=lambda k: (-round(float(accuracy[k]), 9), loss[k]))
    table = {f"{c:g}": round(float(accuracy[k]), 4) for k, c in enumerate(C_GRID)}
    print(f"cross-validation ({folds} folds), mean accuracy by C: {table}; chose C = {C_GRID[best]:g}")
    return C_GRID[best], table


def _stack(tfidf: Any, lexicon: np.ndarray) -> Any:
    from scipy import sparse

    return sparse.hstack([tfidf, sparse.csr_matrix(lexicon)]).tocsr()


def compile_model(pipeline: Pipeline, args: argparse.Namespace, info: dict[str, Any]) -> scorer.CompiledModel:
    """The fitted pipeline as scorer.py's plain data."""
    vectorizer, lexicon = (step for _, step in pipeline.named_steps["features"].transformer_list)
    classifier = pipeline.named_steps["classifier"]
    vocabulary = [""] * len(vectorizer.vocabulary_)
    for term, column in vectorizer.vocabulary_.items():
        vocabulary[column] = term
    return scorer.CompiledModel(
        vocabulary=vocabulary,
        idf=np.asarray(vectorizer.idf_, dtype=np.float64),
        coefficients=np.asarray(classifier.coef_[0], dtype=np.float64),
        intercept=float(classifier.intercept_[0]),
        ngram_max=args.ngram_max,
        lexicon=lexicon.rules,
        lexicon_mean=np.asarray(lexicon.mean_, dtype=np.float64),
        lexicon_std=np.asarray(lexicon.std_, dtype=np.float64),
        classes=(0, 1),
        info=info,
    )


def check_export(pipeline: Pipeline, compiled: scorer.CompiledModel, texts: list[str]) -> float:
    """Refuse to ship a compiled model that scores differently from the fitted pipeline."""
    sample = texts[:1000]
    gap = float(np.max(np.abs(pipeline.predict_proba(sample) - compiled.predict_proba(sample))))
    if gap > EXPORT_TOLERANCE:
        raise TrainingError(f"the compiled model differs from the fitted pipeline by {gap:.3g}")
    return gap


def sha256_file(path: Path) -> str:
    """Digest that serving checks before it loads a file (against corruption in transit)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def metadata_for(
    model_dir: Path, files: list[str], args: argparse.Namespace, fitted: dict[str, Any], rows: int
) -> dict[str, Any]:
    """Record what serving verifies and what a reader needs to reproduce the model."""
    return {
        "format": scorer.FORMAT,
        "files": {name: sha256_file(model_dir / name) for name in files},
        "python": platform.python_version(),
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "classes": [0, 1],
        "hyperparameters": vars(args),
        **fitted,
        "training_rows": rows,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def copy_inference_code(model_dir: Path) -> list[str]:
    """Ship the serving handlers and the scorer inside the artifact, as the SageMaker sklearn
    image expects (code/ holds the entry point and the modules it imports)."""
    written = []
    for name in SHIPPED_CODE:
        source = Path(__file__).with_name(name)
        if not source.is_file():
            raise TrainingError(f"{source} is missing; train.py must be shipped with {SHIPPED_CODE}")
        target = model_dir / "code" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        written.append(f"code/{name}")
    return written


def fit_model(
    texts: list[str], labels: np.ndarray, args: argparse.Namespace, rules: scorer.LexiconRules
) -> tuple[Pipeline, dict[str, Any]]:
    """Choose C (unless the hyperparameter sets it) and fit the pipeline; returns it with a record
    of how it was fitted."""
    lexicon = rules.matrix(texts)
    if args.regularization_c == AUTO:
        c, cv_accuracy = cross_validate_c(texts, labels, lexicon, args)
        chosen_by = "cross-validation"
    else:
        c, cv_accuracy, chosen_by = float(args.regularization_c), {}, "hyperparameter"
        print(f"C = {c:g} from the regularization-c hyperparameter")
    pipeline = build_pipeline(args, rules, c)
    # What Pipeline.fit does, by hand, so the lexicon features are computed once and the training
    # accuracy reuses the feature matrix instead of transforming every review a second time.
    vectorizer, scaling = (step for _, step in pipeline.named_steps["features"].transformer_list)
    scaling.fit_matrix(lexicon)
    features = _stack(vectorizer.fit_transform(texts), scaling.scale(lexicon))
    classifier = pipeline.named_steps["classifier"].fit(features, labels)
    print(f"vocabulary size {len(vectorizer.vocabulary_)}")
    print(f"training accuracy {classifier.score(features, labels):.4f}")
    fitted = {
        "regularization_c": c,
        "regularization_c_chosen_by": chosen_by,
        "cv_accuracy_by_c": cv_accuracy,
        "lexicon": rules.source,
    }
    return pipeline, fitted


def run(args: argparse.Namespace, train_file: Path, model_dir: Path) -> None:
    """Fit on train_file and write the plain-data model, metadata.json and code/."""
    texts, label_list = load_training_data(train_file)
    print(f"training on {len(texts)} rows from {train_file} with {vars(args)}")
    rules = load_lexicon()
    print(f"lexicon: {len(rules.valences)} words from {rules.source}")
    pipeline, fitted = fit_model(texts, np.asarray(label_list), args, rules)
    compiled = compile_model(pipeline, args, fitted)
    gap = check_export(pipeline, compiled, texts)
    print(f"compiled model matches the fitted pipeline (largest probability gap {gap:.2g})")
    data_files = compiled.save(model_dir)
    code_files = copy_inference_code(model_dir)
    metadata = metadata_for(model_dir, data_files, args, fitted, len(texts))
    (model_dir / "metadata.json").write_text(json.dumps(metadata, indent=2), encoding="utf-8")
    print(f"wrote model to {model_dir}: {', '.join(data_files + code_files)}")


def write_failure(base: Path, message: str) -> None:
    """SageMaker shows output/failure as the training job's FailureReason."""
    target = base / "output" / "failure"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(message, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the Training job."""
    base = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
    channel = Path(os.environ.get("SM_CHANNEL_TRAIN", f"{base}/input/data/train"))
    model_dir = Path(os.environ.get("SM_MODEL_DIR", f"{base}/model"))
    args = parse_args(argv)
    try:
        run(args, channel / "train.csv", model_dir)
    except TrainingError as exc:
        write_failure(base, str(exc))
        print(exc, file=sys.stderr)
        sys.exit(1)
    except Exception as exc:
        write_failure(base, f"training failed unexpectedly: {type(exc).__name__}: {exc}")
        raise


if __name__ == "__main__":
    main()
