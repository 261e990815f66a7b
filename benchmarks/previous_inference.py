"""Handlers for the previous model: a pickled scikit-learn pipeline scored with predict_proba, as
the endpoint served models before the compiled scorer. The benchmark packs this file as the
artifact's code/inference.py, with the current handlers beside it as code/handlers.py (+ scorer.py),
so requests are parsed and answered exactly as now and only the model and its scoring differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
from handlers import RequestError, input_fn, output_fn  # noqa: F401  (the serving contract)


def model_fn(model_dir: str) -> Any:
    return joblib.load(Path(model_dir) / "model.joblib")


def predict_fn(texts: list[str], model: Any) -> list[dict[str, Any]]:
    positive = model.predict_proba(texts)[:, 1]
    labels = (positive > 0.5).astype(int).tolist()
    scores = np.round(positive, 6).tolist()
    return [{"label": label, "score": scores[index]} for index, label in enumerate(labels)]
