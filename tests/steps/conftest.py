"""Make the repository root (for `steps`) and this folder (for step_helpers) importable, and
share one trained model between the test modules."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for folder in (HERE.parents[1], HERE):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from step_helpers import REVIEWS, train_model, write_reviews  # noqa: E402


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained once on the corpus; tests must not modify it (copy it first)."""
    root = tmp_path_factory.mktemp("trained")
    train_file = write_reviews(root / "train.csv", REVIEWS)
    return train_model(train_file, root / "model")
