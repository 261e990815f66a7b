"""Fixtures the local server's tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .marks import Marks


@pytest.fixture
def marks() -> Iterator[Marks]:
    """Where handlers leave their marks for the test (marks.py)."""
    with Marks() as made:
        yield made
