"""Model quality on a real review corpus: the previous model (TF-IDF + logistic regression, C=4, as
steps/train.py had it before the lexicon features) beside the current one (steps/train.py:
TF-IDF with the idf of lexicon terms raised + VADER lexicon features, C and that lexicon emphasis
chosen by cross-validation on the training part only).

    python benchmarks/model_quality.py [--data-dir ../shared/data] [--draws 50] [--seed 0]

The corpus is reviews.csv + reviews_provenance.csv (each row's source: women's clothing or fine
food; SOURCE.md there tells where they come from). Splits, all fixed by --seed:
- in-domain: a stratified 80/20 split of the whole corpus;
- across domains: trained on every clothing review, tested on every food review, and the reverse;
- small data: --draws random balanced draws of 100 reviews (50 per class) from the in-domain
  training part, each tested on the in-domain test part; reported as the mean accuracy and the
  share of draws whose accuracy passes the pipeline's gate (accuracy > 0.8).
Nothing here reads data/test.csv: 30 reviews cannot tell two models apart.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

# One BLAS thread: on 2 shared cores, threaded BLAS inside lbfgs is ten times slower, not faster.
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from common import log, machine_description, table  # noqa: E402
from previous_model import previous_pipeline  # noqa: E402

from steps import train  # noqa: E402

DEFAULT_DATA = HERE.parent.parent / "shared" / "data"
GATE = 0.8
DRAW_SIZE = 100
Scorer = Callable[[list[str]], np.ndarray]
Fitter = Callable[[list[str], np.ndarray], Scorer]


class MissingData(Exception):
    """The corpus is not where it was looked for."""


def load_corpus(data_dir: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Texts, labels and the source of each row."""
    reviews, provenance = data_dir / "reviews.csv", data_dir / "reviews_provenance.csv"
    missing = [str(path) for path in (reviews, provenance) if not path.is_file()]
    if missing:
        raise MissingData(
            f"the review corpus is missing: {', '.join(missing)} not found. It lives in the shared "
            "data folder beside the repository (../shared/data); pass --data-dir to point elsewhere."
        )
    frame = pd.read_csv(reviews, dtype=str, keep_default_na=False, encoding="utf-8")
    sources = pd.read_csv(provenance, dtype=str, keep_default_na=False)
    if len(frame) != len(sources):
        raise MissingData(f"{reviews} has {len(frame)} rows but {provenance} has {len(sources)}")
    return (
        frame["review_text"].tolist(),
        frame["sentiment"].astype(int).to_numpy(),
        sources["source"].to_numpy(),
    )


def previous_model(texts: list[str], labels: np.ndarray) -> Scorer:
    """steps/train.py before the lexicon: TF-IDF word 1-2-grams + logistic regression, C = 4."""
    pipeline = previous_pipeline().fit(texts, labels)
    return lambda batch: pipeline.predict_proba(batch)[:, 1]


class CurrentModel:
    """steps/train.py's own fit (cross-validated C and lexicon emphasis) and its compiled scorer, as
    serving runs it."""

    def __init__(self) -> None:
        self.rules = train.load_lexicon()
        self.args = train.parse_args([])
        self.chosen: list[tuple[float, float]] = []  # (C, lexicon emphasis) of each fit

    def __call__(self, texts: list[str], labels: np.ndarray) -> Scorer:
        with contextlib.redirect_stdout(io.StringIO()):  # the training log, per fit
            pipeline, fitted = train.fit_model(texts, labels, self.args, self.rules)
        self.chosen.append((float(fitted["regularization_c"]), float(fitted["lexicon_emphasis"])))
        compiled = train.compile_model(pipeline, self.args, fitted)
        return lambda batch: compiled.predict_proba(batch)[:, 1]


def scores(labels: np.ndarray, positive: np.ndarray) -> tuple[float, float, float]:
    predicted = (positive > 0.5).astype(int)
    return (
        float(accuracy_score(labels, predicted)),
        float(f1_score(labels, predicted)),
        float(roc_auc_score(labels, positive)),
    )


def evaluate(
    fit: Fitter, texts: list[str], labels: np.ndarray, fit_rows: np.ndarray, test_rows: np.ndarray
) -> tuple[float, float, float]:
    model = fit([texts[i] for i in fit_rows], labels[fit_rows])
    return scores(labels[test_rows], model([texts[i] for i in test_rows]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help=f"default: {DEFAULT_DATA}")
    parser.add_argument("--draws", type=int, default=50, help="random 100-review training draws")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        texts, labels, sources = load_corpus(args.data_dir)
    except MissingData as exc:
        print(f"model_quality: {exc}", file=sys.stderr)
        return 2
    rows = np.arange(len(texts))
    fit_rows, test_rows = train_test_split(rows, test_size=0.2, stratify=labels, random_state=args.seed)
    clothing = rows[sources == "womens_clothing"]
    food = rows[sources != "womens_clothing"]
    splits = {
        f"in-domain 80/20 ({len(fit_rows)} -> {len(test_rows)})": (fit_rows, test_rows),
        f"clothing -> food ({len(clothing)} -> {len(food)})": (clothing, food),
        f"food -> clothing ({len(food)} -> {len(clothing)})": (food, clothing),
    }
    current = CurrentModel()
    models: dict[str, Fitter] = {"previous": previous_model, "current": current}
    print(f"machine: {machine_description()}")
    print(f"corpus: {args.data_dir / 'reviews.csv'}, {len(texts)} reviews, seed {args.seed}\n")
    table_rows = []
    for name, (train_rows, held_rows) in splits.items():
        started = time.perf_counter()
        measured = {
            model: evaluate(fit, texts, labels, train_rows, held_rows) for model, fit in models.items()
        }
        log(f"{name}: {time.perf_counter() - started:.0f} s")
        before, after = measured["previous"], measured["current"]
        table_rows.append(
            [
                name,
                *(f"{b:.3f} -> {a:.3f}" for b, a in zip(before, after, strict=True)),
                f"{after[0] - before[0]:+.3f}",
                "{:g}, {:g}".format(*current.chosen[-1]),
            ]
        )
    print(table(["split", "accuracy", "F1", "AUC", "accuracy gain", "C, emphasis chosen"], table_rows))
    rng = np.random.default_rng(args.seed)
    positive, negative = fit_rows[labels[fit_rows] == 1], fit_rows[labels[fit_rows] == 0]
    accuracy: dict[str, list[float]] = {model: [] for model in models}
    started = time.perf_counter()
    current.chosen.clear()
    for _ in range(args.draws):
        draw = np.concatenate(
            [
                rng.choice(positive, DRAW_SIZE // 2, replace=False),
                rng.choice(negative, DRAW_SIZE // 2, replace=False),
            ]
        )
        for model, fit in models.items():
            accuracy[model].append(evaluate(fit, texts, labels, draw, test_rows)[0])
    log(f"{args.draws} draws: {time.perf_counter() - started:.0f} s")
    print(
        f"\n{args.draws} random balanced draws of {DRAW_SIZE} training reviews, tested on the "
        f"{len(test_rows)} in-domain test reviews:\n"
    )
    draw_rows = []
    for model, found in accuracy.items():
        values = np.array(found)
        draw_rows.append(
            [
                model,
                f"{values.mean():.3f}",
                f"{values.std():.3f}",
                f"{values.min():.3f}",
                f"{values.max():.3f}",
                f"{np.mean(values > GATE):.0%}",
            ]
        )
    print(
        table(["model", "mean accuracy", "std", "min", "max", f"gate passes (accuracy > {GATE})"], draw_rows)
    )
    print("\nChosen by the current model's cross-validation over the draws:")
    for position, name in enumerate(("C", "lexicon emphasis")):
        counts = pd.Series([pair[position] for pair in current.chosen]).value_counts().sort_index()
        print(f"  {name}: {', '.join(f'{value:g} x{n}' for value, n in counts.items())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
