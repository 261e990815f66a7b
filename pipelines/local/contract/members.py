"""Reading members of a request whose shape may not have been checked yet.

At upsert a step's Arguments are checked against their shape and against what the local target can
run in the same pass, so the second check must not trip over what the first reports: an object
member that is missing or not an object reads as {}, a list member as the objects it holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def object_member(request: Any, name: str) -> Mapping[str, Any]:
    """`request[name]` when both are objects, else {}."""
    value = request.get(name) if isinstance(request, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def object_items(value: Any) -> list[Mapping[str, Any]]:
    """The objects in a list ([] for anything that is not a list)."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def repeated(values: Iterable[Any]) -> list[str]:
    """The values given more than once (as text, sorted): a name a request must not repeat."""
    values = list(values)
    return sorted({str(value) for value in values if values.count(value) > 1})


def without_nulls(value: Any) -> Any:
    """The value with every null member of its objects left out, as AWS's JSON protocols read a
    null member: as one not sent. A null inside a list stays, for the shape check to refuse."""
    if isinstance(value, Mapping):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value
