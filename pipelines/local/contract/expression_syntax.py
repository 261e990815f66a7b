"""How a pipeline definition writes a value known only when its step runs: a one-key object
calling `Get` or a `Std:*` function. Requests are checked before they are resolved, at upsert, so
the layers that check them tell such a value from a literal one here (executor/expressions.py
resolves them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def function_name(value: Mapping[str, Any]) -> str | None:
    """The function a one-key object calls (`Get` or `Std:*`), or None for plain data."""
    if len(value) != 1:
        return None
    (key,) = value
    return key if key == "Get" or key.startswith("Std:") else None


def is_expression(value: Any) -> bool:
    """A Get or Std:* call, whose value is known only when the step runs."""
    return isinstance(value, Mapping) and function_name(value) is not None
