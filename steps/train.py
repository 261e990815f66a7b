"""SageMaker Training entry point (scikit-learn framework): fit TF-IDF + logistic regression.

Besides model.joblib it writes metadata.json (digest and library versions, so serving can refuse
a tampered or incompatible model) and code/inference.py (the handlers this model is served and
evaluated with, so the artifact is self-contained).
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

import joblib
import numpy as np
import pandas as pd
import scipy
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

TEXT = "review_text"
LABEL = "sentiment"


class TrainingError(Exception):
    """Training cannot proceed with this input; the message says why."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read hyperparameters; unknown arguments are ignored since the container may add its own."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ngram-max", type=int, default=2)
    parser.add_argument("--max-features", type=int, default=20000)
    parser.add_argument("--regularization-c", type=float, default=4.0)
    parser.add_argument("--min-df", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"ignoring unknown arguments: {unknown}")
    return args


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


def build_pipeline(args: argparse.Namespace) -> Pipeline:
    """TF-IDF over word n-grams feeding a logistic regression, seeded for repeatable fits."""
    vectorizer = TfidfVectorizer(
        ngram_range=(1, args.ngram_max),
        max_features=args.max_features,
        min_df=args.min_df,
        sublinear_tf=True,
        strip_accents="unicode",
    )
    classifier = LogisticRegression(C=args.regularization_c, max_iter=1000, random_state=args.seed)
    return Pipeline([("tfidf", vectorizer), ("classifier", classifier)])


def sha256_file(path: Path) -> str:
    """Digest that serving checks before it unpickles the model."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def metadata_for(
    model_path: Path, pipeline: Pipeline, args: argparse.Namespace, rows: int
) -> dict[str, Any]:
    """Record what serving must verify and what a reader needs to reproduce the model."""
    return {
        "sha256": sha256_file(model_path),
        "python": platform.python_version(),
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "joblib": joblib.__version__,
        "classes": [int(label) for label in pipeline.classes_],
        "hyperparameters": vars(args),
        "training_rows": rows,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def copy_inference_code(model_dir: Path) -> None:
    """Ship the serving handlers inside the artifact, as the SageMaker sklearn image expects."""
    source = Path(__file__).with_name("inference.py")
    if not source.is_file():
        raise TrainingError(f"{source} is missing; train.py must be shipped with inference.py")
    target = model_dir / "code" / "inference.py"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def run(args: argparse.Namespace, train_file: Path, model_dir: Path) -> None:
    """Fit on train_file and write model.joblib, metadata.json and code/inference.py."""
    texts, labels = load_training_data(train_file)
    print(f"training on {len(texts)} rows from {train_file} with {vars(args)}")
    pipeline = build_pipeline(args)
    # What Pipeline.fit does, by hand, so the training accuracy reuses the TF-IDF matrix instead
    # of transforming every review a second time (a third of the step at a million reviews).
    vectorizer, classifier = pipeline.named_steps["tfidf"], pipeline.named_steps["classifier"]
    features = vectorizer.fit_transform(texts)
    classifier.fit(features, labels)
    print(f"vocabulary size {len(vectorizer.vocabulary_)}")
    print(f"training accuracy {classifier.score(features, labels):.4f}")
    model_dir.mkdir(parents=True, exist_ok=True)
    model_path = model_dir / "model.joblib"
    joblib.dump(pipeline, model_path)
    metadata = metadata_for(model_path, pipeline, args, len(texts))
    (model_dir / "metadata.json").write_text(json.dumps(metadata, indent=2), encoding="utf-8")
    copy_inference_code(model_dir)
    print(f"wrote model to {model_dir} (sha256 {metadata['sha256']})")


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
