"""SageMaker Processing step: score the trained artifact on the test split.

The model is loaded and run through the artifact's own code/inference.py, so the numbers describe
exactly what the endpoint would serve. The report uses SageMaker's model-quality JSON format, which
the pipeline's condition step and the model registry read.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any, NoReturn

import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

TEXT = "review_text"
LABEL = "sentiment"
NAN = "NaN"


class EvaluationError(Exception):
    """The inputs cannot be evaluated; the message says why."""


def _inside(path: Path, root: Path) -> bool:
    """True when the resolved path is root or below it."""
    return path == root or root in path.parents


def check_member(member: tarfile.TarInfo, root: Path) -> tarfile.TarInfo:
    """Refuse members that could write outside root: absolute, '..', escaping links, devices."""
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        raise EvaluationError(f"model.tar.gz holds an unsafe path: {member.name!r}")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise EvaluationError(f"model.tar.gz holds a special file: {member.name!r}")
    if not _inside((root / name).resolve(), root):
        raise EvaluationError(f"model.tar.gz member {member.name!r} resolves outside the archive")
    if member.issym() or member.islnk():
        base = (root / name).parent if member.issym() else root
        if PurePosixPath(member.linkname).is_absolute() or not _inside(
            (base / member.linkname).resolve(), root
        ):
            raise EvaluationError(
                f"model.tar.gz link {member.name!r} points outside the archive: {member.linkname!r}"
            )
    return member


def extract_model(archive: Path, destination: Path) -> None:
    """Unpack model.tar.gz after checking every member."""
    if not archive.is_file():
        raise EvaluationError(f"model archive not found: {archive}")
    root = destination.resolve()
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = [check_member(member, root) for member in tar.getmembers()]
            if hasattr(tarfile, "data_filter"):
                tar.extractall(root, members=members, filter="data")
            else:
                tar.extractall(root, members=members)
    except tarfile.TarError as exc:
        raise EvaluationError(f"cannot read {archive}: {exc}") from None


def load_handlers(model_dir: Path) -> ModuleType:
    """Import the artifact's code/inference.py under a private name."""
    path = model_dir / "code" / "inference.py"
    if not path.is_file():
        raise EvaluationError("model.tar.gz has no code/inference.py")
    spec = importlib.util.spec_from_file_location("artifact_inference", path)
    if spec is None or spec.loader is None:
        raise EvaluationError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_test_data(path: Path) -> tuple[list[str], list[int]]:
    """Read the preprocessed test split."""
    if not path.is_file():
        raise EvaluationError(f"test data not found: {path}")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    missing = [column for column in (TEXT, LABEL) if column not in frame.columns]
    if missing:
        raise EvaluationError(f"{path.name} lacks column(s) {missing}")
    if frame.empty:
        raise EvaluationError(f"{path.name} has no rows")
    labels = frame[LABEL].str.strip()
    if not labels.isin(["0", "1"]).all():
        raise EvaluationError(f"{path.name}: sentiment must be 0 or 1 in every row")
    return frame[TEXT].tolist(), labels.astype(int).tolist()


def _metric(value: float | str) -> dict[str, float | str]:
    return {"value": value, "standard_deviation": NAN}


def compute_metrics(actual: list[int], predictions: list[dict[str, Any]]) -> dict[str, Any]:
    """Build SageMaker's binary_classification_metrics report; AUC is "NaN" for one class."""
    predicted = [int(prediction["label"]) for prediction in predictions]
    scores = [float(prediction["score"]) for prediction in predictions]
    both_classes = len(set(actual)) == 2
    auc: float | str = float(roc_auc_score(actual, scores)) if both_classes else NAN
    matrix = confusion_matrix(actual, predicted, labels=[0, 1])
    return {
        "binary_classification_metrics": {
            "accuracy": _metric(float(accuracy_score(actual, predicted))),
            "precision": _metric(float(precision_score(actual, predicted, zero_division=0))),
            "recall": _metric(float(recall_score(actual, predicted, zero_division=0))),
            "f1": _metric(float(f1_score(actual, predicted, zero_division=0))),
            "auc": _metric(auc),
            "confusion_matrix": {
                str(truth): {str(guess): int(matrix[truth][guess]) for guess in (0, 1)}
                for truth in (0, 1)
            },
        }
    }


def run(base: Path) -> dict[str, Any]:
    """Evaluate the artifact and write evaluation.json."""
    texts, actual = load_test_data(base / "processing" / "test" / "test.csv")
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = Path(scratch)
        extract_model(base / "processing" / "model" / "model.tar.gz", model_dir)
        handlers = load_handlers(model_dir)
        try:
            model = handlers.model_fn(str(model_dir))
        except Exception as exc:  # the artifact's own loader refused it (digest, versions)
            raise EvaluationError(f"the model artifact was refused by its model_fn: {exc}") from exc
        predictions = handlers.predict_fn(texts, model)
    report = compute_metrics(actual, predictions)
    target = base / "processing" / "evaluation" / "evaluation.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"evaluated {len(texts)} test rows; wrote {target}")
    print(json.dumps(report["binary_classification_metrics"], indent=2))
    return report


def write_message(base: Path, message: str) -> None:
    """SageMaker shows output/message as the Processing job's FailureReason."""
    target = base / "output" / "message"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(message, encoding="utf-8")


def fail(base: Path, message: str) -> NoReturn:
    """Stop with the reason and no traceback: the message already says what is wrong."""
    write_message(base, message)
    print(message, file=sys.stderr)
    sys.exit(1)


def main() -> None:
    """Entry point of the Processing job."""
    base = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
    try:
        run(base)
    except EvaluationError as exc:
        fail(base, str(exc))
    except Exception as exc:
        write_message(base, f"evaluation failed: {type(exc).__name__}: {exc}")
        raise


if __name__ == "__main__":
    main()
