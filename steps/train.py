"""SageMaker Training entry point (scikit-learn framework): fit word n-gram TF-IDF plus sentiment
lexicon features into a logistic regression, with its regularisation and the emphasis of lexicon
terms in the TF-IDF chosen by cross-validation.

The model is written as plain data (scorer.py's format: JSON and numpy arrays, no pickle), with
metadata.json (file digests, library versions, how it was fitted) and code/inference.py +
code/scorer.py, the handlers it is served and evaluated with, so the artifact is self-contained.
The lexicon comes from the vaderSentiment package (requirements.txt beside this script, which the
training image installs); serving needs only its weights, which travel in the artifact.
"""

from __future__ import annotations

import argparse
import gc
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
from sklearn.preprocessing import normalize

try:
    from . import scorer
except ImportError:  # run as a script: scorer.py is beside it
    import scorer  # type: ignore[no-redef]

TEXT = "review_text"
LABEL = "sentiment"
AUTO = "auto"
C_GRID = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
FALLBACK_C = 4.0  # when there are too few reviews per class to cross-validate
# How much a TF-IDF term's idf is raised for the lexicon word it holds: the idf is multiplied by
# 1 + emphasis * |valence| / MAX_VALENCE. Sentiment words mean much the same in any kind of review,
# the other words of a training set often do not; raising their idf lets them weigh more against
# the regularisation. 0 is plain TF-IDF.
EMPHASIS_GRID = (0.0, 1.0, 2.0, 4.0)
FALLBACK_EMPHASIS = 0.0
MAX_VALENCE = 4.0  # VADER's valences lie within -4..4
MAX_FOLDS = 5
CV_MAX_ROWS = 20_000  # cross-validation uses a stratified sample of at most this many training rows
EXPORT_TOLERANCE = 1e-9
SHIPPED_CODE = ("inference.py", "scorer.py")


class TrainingError(Exception):
    """Training cannot proceed with this input; the message says why."""


def auto_or_number(value: str, name: str, zero_allowed: bool) -> float | str:
    """'auto' (cross-validate) or a finite number, above zero or, if zero_allowed, at least zero."""
    if value.strip().lower() == AUTO:
        return AUTO
    bound = "a non-negative" if zero_allowed else "a positive"
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or {bound} number, got {value!r}") from None
    if not (number >= 0 if zero_allowed else number > 0) or number == float("inf"):
        raise argparse.ArgumentTypeError(f"{name} must be {bound} number, got {value!r}")
    return number


def regularization(value: str) -> float | str:
    """'auto' (cross-validate) or a positive float."""
    return auto_or_number(value, "regularization C", zero_allowed=False)


def lexicon_emphasis(value: str) -> float | str:
    """'auto' (cross-validate) or a float >= 0."""
    return auto_or_number(value, "lexicon emphasis", zero_allowed=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read hyperparameters; unknown arguments are ignored since the container may add its own."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ngram-max", type=int, default=2)
    parser.add_argument("--max-features", type=int, default=20000)
    parser.add_argument("--regularization-c", type=regularization, default=AUTO)
    parser.add_argument("--min-df", type=int, default=1)
    parser.add_argument("--lexicon-emphasis", type=lexicon_emphasis, default=AUTO)
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
    """Word n-gram TF-IDF; scorer.py reproduces exactly this configuration (fit_model then
    multiplies its idf by the lexicon term weights)."""
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


def term_valences(vocabulary: dict[str, int], rules: scorer.LexiconRules) -> np.ndarray:
    """Per TF-IDF column, the largest |valence| of the lexicon words in its n-gram (0 for none)."""
    strength = np.zeros(len(vocabulary))
    for term, column in vocabulary.items():
        strength[column] = max(abs(rules.valences.get(word, 0.0)) for word in term.split(" "))
    return strength


def lexicon_term_weights(strength: np.ndarray, emphasis: float) -> np.ndarray:
    """What each column's idf is multiplied by (see EMPHASIS_GRID)."""
    return 1.0 + emphasis * strength / MAX_VALENCE


def reweighted(tfidf: Any, weights: np.ndarray) -> Any:
    """An l2-normalised TF-IDF matrix as the vectorizer gives it with idf_ multiplied by weights:
    each column scaled, each row normalised again."""
    return normalize(tfidf.multiply(weights).tocsr())


def emphasise_lexicon_terms(
    vectorizer: TfidfVectorizer, tfidf: Any, rules: scorer.LexiconRules, emphasis: float
) -> Any:
    """Multiply the fitted vectorizer's idf by the lexicon term weights; returns tfidf (its output
    before) as the vectorizer now transforms."""
    weights = lexicon_term_weights(term_valences(vectorizer.vocabulary_, rules), emphasis)
    vectorizer.idf_ = vectorizer.idf_ * weights
    return reweighted(tfidf, weights)


def hyperparameter_grid(value: float | str, grid: tuple[float, ...]) -> tuple[float, ...]:
    """The values cross-validation tries: the grid for 'auto', else only the value given."""
    return grid if value == AUTO else (float(value),)


def score_fold(
    texts: list[str],
    labels: np.ndarray,
    lexicon: np.ndarray,
    rows: tuple[np.ndarray, np.ndarray],
    args: argparse.Namespace,
    rules: scorer.LexiconRules,
    grids: tuple[tuple[float, ...], tuple[float, ...]],
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out accuracy and log loss of one fold, per (emphasis, C) of the grids, with the TF-IDF
    and lexicon scaling fitted on the fold's training rows."""
    (fit_rows, held_rows), (emphasis_grid, c_grid) = rows, grids
    vectorizer = make_vectorizer(args)
    fit_tfidf = vectorizer.fit_transform([texts[i] for i in fit_rows])
    held_tfidf = vectorizer.transform([texts[i] for i in held_rows])
    strength = term_valences(vectorizer.vocabulary_, rules)
    mean, std = standardisation(lexicon[fit_rows])
    truth = labels[held_rows]
    accuracy = np.zeros((len(emphasis_grid), len(c_grid)))
    loss = np.zeros_like(accuracy)
    for j, value in enumerate(emphasis_grid):
        weights = lexicon_term_weights(strength, value)
        fit_x = _stack(reweighted(fit_tfidf, weights), (lexicon[fit_rows] - mean) / std)
        held_x = _stack(reweighted(held_tfidf, weights), (lexicon[held_rows] - mean) / std)
        # along the C grid, each fit starts from the previous C's solution: fewer iterations
        model = make_classifier(args, c_grid[0])
        model.warm_start = True
        for k, c in enumerate(c_grid):
            model.C = c
            model.fit(fit_x, labels[fit_rows])
            margin = held_x @ model.coef_[0] + model.intercept_[0]  # predict_proba's logit
            accuracy[j, k] = np.mean((margin > 0) == truth)
            loss[j, k] = np.mean(np.logaddexp(0.0, np.where(truth == 1, -margin, margin)))
    return accuracy, loss


def cross_validate(
    texts: list[str],
    labels: np.ndarray,
    lexicon: np.ndarray,
    args: argparse.Namespace,
    rules: scorer.LexiconRules,
) -> tuple[float, float, dict[str, dict[str, float]]]:
    """Pick C and the lexicon emphasis (those set 'auto') by stratified k-fold accuracy on the
    training reviews (ties: the lower log loss). Each fold fits its own TF-IDF and lexicon scaling,
    as the final model does. Returns C, the emphasis and the mean accuracies: by C at the chosen
    emphasis and by emphasis at the chosen C."""
    c_grid = hyperparameter_grid(args.regularization_c, C_GRID)
    emphasis_grid = hyperparameter_grid(args.lexicon_emphasis, EMPHASIS_GRID)
    if len(labels) > CV_MAX_ROWS:  # they settle long before this; a million rows would take hours
        sample, _ = train_test_split(
            np.arange(len(labels)), train_size=CV_MAX_ROWS, stratify=labels, random_state=args.seed
        )
        sample = np.sort(sample)
        print(f"cross-validating on a stratified sample of {CV_MAX_ROWS} of {len(labels)} rows")
        return cross_validate([texts[i] for i in sample], labels[sample], lexicon[sample], args, rules)
    folds = min(MAX_FOLDS, int(np.bincount(labels).min()))
    if folds < 2:
        c = c_grid[0] if len(c_grid) == 1 else FALLBACK_C
        chosen = emphasis_grid[0] if len(emphasis_grid) == 1 else FALLBACK_EMPHASIS
        print(f"too few reviews per class to cross-validate; C = {c:g}, lexicon emphasis = {chosen:g}")
        return c, chosen, {}
    accuracy = np.zeros((len(emphasis_grid), len(c_grid)))
    loss = np.zeros_like(accuracy)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=args.seed)
    # Hundreds of small fits: scikit-learn's per-call checks would cost about as much as the fits.
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        for fit_rows, held_rows in splitter.split(np.zeros(len(labels)), labels):
            fold_accuracy, fold_loss = score_fold(
                texts, labels, lexicon, (fit_rows, held_rows), args, rules, (emphasis_grid, c_grid)
            )
            accuracy += fold_accuracy / folds
            loss += fold_loss / folds
    cells = [(j, k) for j in range(len(emphasis_grid)) for k in range(len(c_grid))]
    best_j, best_k = min(cells, key=lambda cell: (-round(float(accuracy[cell]), 9), loss[cell]))
    tables = {
        "by_c": {f"{c:g}": round(float(accuracy[best_j, k]), 4) for k, c in enumerate(c_grid)},
        "by_emphasis": {f"{e:g}": round(float(accuracy[j, best_k]), 4) for j, e in enumerate(emphasis_grid)},
    }
    c, chosen = c_grid[best_k], emphasis_grid[best_j]
    print(
        f"cross-validation ({folds} folds), mean accuracy by C at lexicon emphasis {chosen:g}: "
        f"{tables['by_c']}; by lexicon emphasis at C = {c:g}: {tables['by_emphasis']}; "
        f"chose C = {c:g}, lexicon emphasis = {chosen:g}"
    )
    return c, chosen, tables


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
        idf=np.asarray(vectorizer.idf_, dtype=np.float64),  # with the lexicon emphasis in it
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


def chosen_by(value: float | str) -> str:
    return "cross-validation" if value == AUTO else "hyperparameter"


def fit_model(
    texts: list[str], labels: np.ndarray, args: argparse.Namespace, rules: scorer.LexiconRules
) -> tuple[Pipeline, dict[str, Any]]:
    """Choose C and the lexicon emphasis (unless the hyperparameters set them) and fit the pipeline;
    returns it with a record of how it was fitted."""
    lexicon = rules.matrix(texts)
    tables: dict[str, dict[str, float]] = {}
    if AUTO not in (args.regularization_c, args.lexicon_emphasis):
        c, chosen = float(args.regularization_c), float(args.lexicon_emphasis)
        print(f"C = {c:g} and lexicon emphasis = {chosen:g} from the hyperparameters")
    else:
        c, chosen, tables = cross_validate(texts, labels, lexicon, args, rules)
    pipeline = build_pipeline(args, rules, c)
    # What Pipeline.fit does, by hand, so the lexicon features are computed once and the training
    # accuracy reuses the feature matrix instead of transforming every review a second time.
    vectorizer, scaling = (step for _, step in pipeline.named_steps["features"].transformer_list)
    scaling.fit_matrix(lexicon)
    tfidf = emphasise_lexicon_terms(vectorizer, vectorizer.fit_transform(texts), rules, chosen)
    features = _stack(tfidf, scaling.scale(lexicon))
    classifier = pipeline.named_steps["classifier"].fit(features, labels)
    print(f"vocabulary size {len(vectorizer.vocabulary_)}")
    print(f"training accuracy {classifier.score(features, labels):.4f}")
    fitted = {
        "regularization_c": c,
        "regularization_c_chosen_by": chosen_by(args.regularization_c),
        "cv_accuracy_by_c": tables.get("by_c", {}),
        "lexicon_emphasis": chosen,
        "lexicon_emphasis_chosen_by": chosen_by(args.lexicon_emphasis),
        "cv_accuracy_by_lexicon_emphasis": tables.get("by_emphasis", {}),
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
    # Exiting runs the garbage collector over every object still alive, more than once: about
    # 0.3 s after a fit, with pandas, SciPy and scikit-learn loaded. Nothing left needs
    # collecting (the process ends), so the survivors are frozen out of those passes.
    gc.freeze()
