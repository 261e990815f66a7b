"""The model artifact as both monitoring modes use it: extracted safely and loaded through its
own code/inference.py (artifact.py), which must offer features()."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from artifact import load_model, reader, scorer_of

# Reviews scored and described at a time: a baseline of a million training reviews, or a long
# capture window, then holds their feature columns, not the predictions and the scorer's arrays
# of all of them at once.
CHUNK_REVIEWS = 10_000


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
        """Feature columns as float arrays, in the artifact's order, a chunk of reviews at a time
        (the artifact's features() refuses texts and predictions that do not pair up)."""
        if len(texts) != len(predictions):
            self.handlers.features(texts, predictions, self.model)  # raises, saying how
        return self._columns(
            self.handlers.features(texts[start:end], predictions[start:end], self.model)
            for start, end in _chunks(len(texts))
        )

    def describe(self, texts: list[str]) -> dict[str, np.ndarray]:
        """The reviews as the model answers them: scored through the artifact's own scorer and
        described by its features(), a chunk at a time."""
        score = scorer_of(self.handlers)
        return self._columns(
            self.handlers.features(texts[start:end], score(texts[start:end], self.model), self.model)
            for start, end in _chunks(len(texts))
        )

    @staticmethod
    def _columns(parts: Iterable[dict[str, list[float]]]) -> dict[str, np.ndarray]:
        chunks = list(parts)
        return {
            name: np.concatenate([np.asarray(chunk[name], dtype=float) for chunk in chunks])
            for name in chunks[0]
        }


def _chunks(count: int) -> list[tuple[int, int]]:
    """[start, end) of each chunk; one empty chunk for no reviews, so the columns are named."""
    starts = range(0, count, CHUNK_REVIEWS)
    return [(start, min(start + CHUNK_REVIEWS, count)) for start in starts] or [(0, 0)]


def load_artifact(archive: Path, scratch: Path) -> Artifact:
    """Extract and load model.tar.gz through its own model_fn; it must offer features()."""
    handlers, model = load_model(archive, scratch)
    if not callable(getattr(handlers, "features", None)):
        raise MonitorError(
            "the artifact's code/inference.py has no features() function: the model was trained "
            "before monitoring existed; retrain it to monitor it"
        )
    return Artifact(handlers, model)
