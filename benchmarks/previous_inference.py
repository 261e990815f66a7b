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
from handlers import answer


def model_fn(model_dir: str) -> Any:
    return joblib.load(Path(model_dir) / "model.joblib")


def transform_fn(model: Any, body: bytes | str, content_type: str | None, accept: str | None) -> Any:
    """The current handlers' request path, with this model's scoring."""
    return answer(score, model, body, content_type, accept)


def score(texts: list[str], model: Any) -> list[dict[str, Any]]:
    positive = model.predict_proba(texts)[:, 1]
    labels = (positive > 0.5).astype(int).tolist()
    scores = np.round(positive, 6).tolist()
    return [{"label": label, "score": scores[index]} for index, label in enumerate(labels)]
