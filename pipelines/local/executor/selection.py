"""Selective execution: which steps run, and which come from the source execution.

The rules are the API reference's (SelectiveExecutionConfig): every step on every path between two
selected steps must be selected too, and the steps the selected ones depend on are reused from the
source execution, which must exist when there are any. Steps downstream of the selection, and steps
neither selected nor needed, do not run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache


class SelectionError(ValueError):
    """The selected steps cannot run together."""


@dataclass(frozen=True)
class Selection:
    selected: frozenset[str]
    reused: frozenset[str]  # upstream of the selection, taken from the source execution


def select_steps(dependencies: Mapping[str, frozenset[str]], names: Iterable[str]) -> Selection:
    """Check the selection against the DAG (step -> steps it waits for) and say what it reuses."""
    selected = frozenset(names)
    unknown = sorted(selected - set(dependencies))
    if unknown:
        raise SelectionError(f"selected step(s) {', '.join(unknown)} are not in the pipeline")

    @cache
    def ancestors(name: str) -> frozenset[str]:
        direct = dependencies[name]
        return direct.union(*(ancestors(d) for d in direct))

    for name in sorted(selected):
        between = sorted(
            step for step in ancestors(name) - selected if ancestors(step) & selected
        )
        if between:
            raise SelectionError(
                f"step(s) {', '.join(between)} lie between selected steps and must be selected "
                f"too: all steps on all paths between two selected steps run"
            )
    reused = frozenset().union(*(ancestors(name) for name in selected)) - selected
    return Selection(selected, reused)
