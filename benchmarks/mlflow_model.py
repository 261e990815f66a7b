"""Run inside the MLflow benchmark venv: log a pickled scikit-learn pipeline (the previous model's
model.joblib, see previous_model.py: MLflow serves scikit-learn pipelines, not the compiled
scorer's plain data) with mlflow.sklearn into a local file store and print
{"path": <local model dir>, "uri": ...}.

    python benchmarks/mlflow_model.py --model-dir DIR --store DIR

Logged with pyfunc_predict_fn="predict_proba" so the served model does the same work per review as
the endpoint (probabilities, not only labels). No signature: with one, MLflow would hand the
pipeline a DataFrame instead of the list of strings it was trained on.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import joblib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--store", type=Path, required=True)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    model = joblib.load(args.model_dir / "model.joblib")

    import mlflow
    import mlflow.sklearn

    args.store.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(args.store.resolve().as_uri())
    mlflow.set_experiment("sentiment-benchmark")
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="model", pyfunc_predict_fn="predict_proba")
    local = mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri)
    print(json.dumps({"path": str(Path(local).resolve()), "uri": info.model_uri, "run_id": run.info.run_id}))


if __name__ == "__main__":
    main()
