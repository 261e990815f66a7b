"""The model artifact as both monitoring modes use it: extracted safely and loaded through its
own code/inference.py (artifact.py), which must offer features()."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from artifact import load_model, reader


class MonitorError(Exception):
    """The job cannot run with these inputs; the message says why."""


@dataclass
class Artifact:
    """The loaded model with the handlers it was built with."""

    handlers: ModuleType
    model: Any

    @property
    def read(self) -> Callable[[bytes, str], list[str]]:
        """Its request reader (artifact.reader): a request body and content type -> the reviews."""
        return reader(self.handlers)

    def features(self, texts: list[str], predictions: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        """Feature columns as float arrays, in the artifact's order."""
        table = self.handlers.features(texts, predictions, self.model)
        return {name: np.asarray(values, dtype=float) for name, values in table.items()}


def load_artifact(archive: Path, scratch: Path) -> Artifact:
    """Extract and load model.tar.gz through its own model_fn; it must offer features()."""
    handlers, model = load_model(archive, scratch)
    if not callable(getattr(handlers, "features", None)):
        raise MonitorError(
            "the artifact's code/inference.py has no features() function: the model was trained "
            "before monitoring existed; retrain it to monitor it"
        )
    return Artifact(handlers, model)
