"""Definitions with parts replaced: every part of a JSON tree by the path that reaches it, and
hypothesis strategies for what a part may become."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

Path_ = tuple[str | int, ...]

# What a part may become: any JSON, and the expression shapes a definition is made of.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**12) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
expressions = st.sampled_from([
    {"Get": "Parameters.Nope"}, {"Get": "Steps.Train.Nope"}, {"Get": "Steps.Ghost.X"}, {"Get": 3},
    {"Std:Join": {"On": 1, "Values": "x"}}, {"Std:JsonGet": {"PropertyFile": 7, "Path": []}},
    {"Get": "Execution.Nope"}, {"Bogus:Function": {}}, [], {},
]).map(copy.deepcopy)  # each example its own copy: a later replacement may write inside it
values = json_values | expressions


def paths(node: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    """Every part of the tree, by the keys and indexes that reach it."""
    yield prefix
    if isinstance(node, dict):
        for key, child in node.items():
            yield from paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from paths(child, (*prefix, index))


def replaced(document: Any, path: Path_, value: Any) -> Any:
    if not path:
        return value
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return document


def mutated(
    draw: st.DrawFn, document: Any, parts: st.SearchStrategy[Any], most: int = 3, depth: int = 0
) -> Any:
    """A copy of `document` with one to `most` of its parts, `depth` or more keys deep, replaced by
    what `parts` draws."""
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, most))):
        targets = [path for path in paths(document) if len(path) >= depth]
        document = replaced(document, draw(st.sampled_from(targets)), draw(parts)) if targets else document
    return document
