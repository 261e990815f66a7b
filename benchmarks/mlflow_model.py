"""Run inside the MLflow benchmark venv: log the artifact's scikit-learn pipeline with
mlflow.sklearn into a local file store and print {"path": <local model dir>, "uri": ...}.

    python benchmarks/mlflow_model.py --model-dir DIR --store DIR

The model is loaded through the artifact's own code/inference.py (model_fn checks its digest and
scikit-learn version), then logged with pyfunc_predict_fn="predict_proba" so the served model does
the same work per review as our endpoint (probabilities, not only labels). No signature: with one,
MLflow would hand the pipeline a DataFrame instead of the list of strings it was trained on.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import warnings
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--store", type=Path, required=True)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    spec = importlib.util.spec_from_file_location("inference", args.model_dir / "code" / "inference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["inference"] = module
    spec.loader.exec_module(module)
    model = module.model_fn(str(args.model_dir))

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
