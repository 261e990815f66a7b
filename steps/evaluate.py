"""SageMaker Processing step: score the trained artifact on the test split, and describe the
training split as it answers it (the version's drift baseline).

The model is loaded and run through the artifact's own code/inference.py, so the numbers describe
exactly what the endpoint would serve. The report uses SageMaker's model-quality JSON format, which
the pipeline's condition step and the model registry read. Beside it, model-data.json records the
SHA-256 of the model.tar.gz that was scored: RegisterModel stores it in the model package
(ModelDataSha256), and deploying and hosting refuse model data that does not match it. The model is
opened once for both outputs: the baseline (monitoring/baseline.py, Model Monitor's statistics.json
and constraints.json) is what the monitoring pipeline later compares the endpoint's traffic with,
and RegisterModel attaches it to the version.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import tempfile
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import numpy as np

# artifact.py is shipped beside this script: in a Processing job at /opt/ml/processing/input/lib
# (see pipelines/definition.py), elsewhere in the same folder.
sys.path[:0] = [
    str(Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")) / "processing" / "input" / "lib"),
    str(Path(__file__).resolve().parent),
]
from artifact import ArtifactError, scorer_of  # noqa: E402
from integrity import sha256_file  # noqa: E402
from job_failure import failure_reported  # noqa: E402
from monitoring.baseline import read_training_texts, write_baseline  # noqa: E402
from monitoring.formats import BaselineError  # noqa: E402
from monitoring.model import MonitorError, load_artifact  # noqa: E402
from splits import SplitError, read_labelled  # noqa: E402

NAN = "NaN"
DIGEST_FILE = "model-data.json"


class EvaluationError(Exception):
    """The inputs cannot be evaluated; the message says why."""


def load_test_data(path: Path) -> tuple[list[str], list[int]]:
    """Read the preprocessed test split."""
    if not path.is_file():
        raise EvaluationError(f"test data not found: {path}")
    try:
        return read_labelled(path)
    except SplitError as error:
        raise EvaluationError(str(error)) from None


def shown(value: float) -> str:
    """A metric as messages show it: three decimals, cut rather than rounded, so that an accuracy
    just under the threshold never reads as equal to it (`models list` shows it the same way)."""
    return str(Decimal(repr(value)).quantize(Decimal("0.001"), rounding=ROUND_DOWN))


def summarise(report: dict[str, Any]) -> dict[str, str]:
    """summary.json: the figures people read in messages (the Fail step's), beside the full
    values that evaluation.json keeps for the condition and the registry."""
    return {"accuracy": shown(report["binary_classification_metrics"]["accuracy"]["value"])}


def _metric(value: float | str) -> dict[str, float | str]:
    return {"value": value, "standard_deviation": NAN}


def roc_auc(actual: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a random positive outranks a random negative,
    ties counting half (the Mann-Whitney statistic over average ranks; scikit-learn's value)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)  # average 1-based ranks
    positives = int(actual.sum())
    negatives = len(actual) - positives
    return float((ranks[actual == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0  # scikit-learn's zero_division=0


def compute_metrics(actual_labels: list[int], predictions: list[dict[str, Any]]) -> dict[str, Any]:
    """Build SageMaker's binary_classification_metrics report; AUC is "NaN" for one class."""
    actual = np.asarray(actual_labels, dtype=np.int64)
    predicted = np.asarray([int(prediction["label"]) for prediction in predictions], dtype=np.int64)
    scores = np.asarray([float(prediction["score"]) for prediction in predictions], dtype=np.float64)
    matrix = {truth: {guess: int(np.sum((actual == truth) & (predicted == guess))) for guess in (0, 1)}
              for truth in (0, 1)}
    true_positive = matrix[1][1]
    precision = _ratio(true_positive, true_positive + matrix[0][1])
    recall = _ratio(true_positive, true_positive + matrix[1][0])
    f1 = _ratio(2 * true_positive, 2 * true_positive + matrix[0][1] + matrix[1][0])
    auc: float | str = roc_auc(actual, scores) if len(set(actual_labels)) == 2 else NAN
    return {
        "binary_classification_metrics": {
            "accuracy": _metric(float(np.mean(actual == predicted))),
            "precision": _metric(precision),
            "recall": _metric(recall),
            "f1": _metric(f1),
            "auc": _metric(auc),
            "confusion_matrix": {
                str(truth): {str(guess): matrix[truth][guess] for guess in (0, 1)} for truth in (0, 1)
            },
        }
    }


def run(base: Path) -> dict[str, Any]:
    """Evaluate the artifact and write evaluation.json and model-data.json, then its baseline."""
    texts, actual = load_test_data(base / "processing" / "test" / "test.csv")
    training_texts = read_training_texts(base / "processing" / "train" / "train.csv")
    archive = base / "processing" / "model" / "model.tar.gz"
    digest = sha256_file(archive) if archive.is_file() else ""  # load_artifact reports a missing one
    with tempfile.TemporaryDirectory() as scratch:
        artifact = load_artifact(archive, Path(scratch))
        predictions = scorer_of(artifact.handlers)(texts, artifact.model)
        report = write_evaluation(base, compute_metrics(actual, predictions), digest, len(texts))
        write_baseline(artifact, training_texts, base / "processing" / "baseline")
    return report


def write_evaluation(base: Path, report: dict[str, Any], digest: str, rows: int) -> dict[str, Any]:
    """evaluation.json, summary.json and model-data.json in the evaluation output."""
    target = base / "processing" / "evaluation" / "evaluation.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2), encoding="utf-8")
    target.with_name("summary.json").write_text(json.dumps(summarise(report)), encoding="utf-8")
    (target.parent / DIGEST_FILE).write_text(json.dumps({"sha256": digest}), encoding="utf-8")
    print(f"evaluated {rows} test rows of model data with sha256 {digest}; wrote {target}")
    print(json.dumps(report["binary_classification_metrics"], indent=2))
    return report


def main() -> None:
    """Entry point of the Processing job."""
    base = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
    expected = (EvaluationError, ArtifactError, MonitorError, BaselineError)
    with failure_reported(base, expected, "evaluation"):
        run(base)


if __name__ == "__main__":
    main()
    gc.freeze()  # exit without collecting the survivors once more (see train.py)
