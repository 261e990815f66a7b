"""The pipeline as a picture: an SVG drawn from the definition JSON, coloured by an execution.

Studio draws the same DAG for SageMaker; this draws it anywhere (CI artifacts, the local target,
a README) from the one definition, with each step's status when an execution is given.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any

BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 250, 58, 60, 26, 24
TITLE_CHARS = 38  # what fits in a box's width at the picture's font size
COLOURS = {
    "Succeeded": "#d8f0d8", "Failed": "#f8d4d4", "Executing": "#fff1c2",
    "Stopped": "#e4e4e4", None: "#eef3fa",
}
STEP_REFERENCE = re.compile(r"^Steps\.([^.\[]+)")


Placed = tuple[dict[str, Any], str | None, str]


def fitted(text: str, limit: int) -> str:
    """`text` cut to `limit` characters at a word boundary, with an ellipsis saying it was cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    words = cut.rsplit(" ", 1)[0] if " " in cut else cut
    return words.rstrip(" ,;:+&-") + "…"


def _flatten(steps: list[dict[str, Any]], parent: str | None = None) -> list[Placed]:
    """(step, condition it hangs off, branch label) for every step, depth first."""
    found: list[Placed] = []
    for step in steps:
        found.append((step, parent, ""))
        arguments = step.get("Arguments", {})
        for key, label in (("IfSteps", "true"), ("ElseSteps", "false")):
            for child, _, _ in _flatten(arguments.get(key, []), step["Name"]):
                found.append((child, step["Name"], label if child in arguments[key] else ""))
    return found


def step_names(definition: Mapping[str, Any]) -> list[str]:
    """Every step's name in a definition, those in a condition's branches too."""
    return [step["Name"] for step, _, _ in _flatten(definition["Steps"])]


def _references(value: Any) -> set[str]:
    if isinstance(value, dict):
        own = set()
        if isinstance(value.get("Get"), str) and (match := STEP_REFERENCE.match(value["Get"])):
            own.add(match.group(1))
        return own.union(*(_references(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_references(v) for v in value))
    return set()


def edges(definition: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(from, to, label): data references, DependsOn, and condition branches."""
    found: dict[tuple[str, str], str] = {}
    for step, parent, label in _flatten(definition["Steps"]):
        name = step["Name"]
        own = {k: v for k, v in step.items() if k not in ("Arguments",)}
        arguments = {k: v for k, v in step.get("Arguments", {}).items()
                     if k not in ("IfSteps", "ElseSteps")}
        for source in _references(arguments) | _references(own) | set(step.get("DependsOn", [])):
            if source != name:
                found.setdefault((source, name), "")
        if parent:
            found[(parent, name)] = label or found.get((parent, name), "")
    return _reduce([(a, b, label) for (a, b), label in found.items()])


def _reduce(links: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """Drop a->c where a->...->c exists anyway: the picture shows order, not every reference."""
    after: dict[str, set[str]] = {}
    for source, target, _ in links:
        after.setdefault(source, set()).add(target)

    def reachable_without(source: str, target: str) -> bool:
        stack = [n for n in after.get(source, ()) if n != target]
        seen: set[str] = set()
        while stack:
            node = stack.pop()
            if node == target:
                return True
            if node not in seen:
                seen.add(node)
                stack.extend(after.get(node, ()))
        return False

    return [(a, b, label) for a, b, label in links if not reachable_without(a, b)]


def _levels(names: list[str], links: list[tuple[str, str, str]]) -> dict[str, int]:
    level = {name: 0 for name in names}
    for _ in names:
        for source, target, _ in links:
            level[target] = max(level[target], level[source] + 1)
    return level


def render_svg(
    definition: Mapping[str, Any], statuses: Mapping[str, str] | None = None,
    notes: Mapping[str, str] | None = None,
) -> str:
    """The DAG, each step coloured by its status in `statuses`; `notes` adds a word to a step's
    last line (`cached`, `reused`, `2 attempts`), as Studio marks a cache hit on its graph."""
    statuses, notes = statuses or {}, notes or {}
    steps = {step["Name"]: step for step, _, _ in _flatten(definition["Steps"])}
    links = edges(definition)
    level = _levels(list(steps), links)
    columns: dict[int, list[str]] = {}
    for name in steps:
        columns.setdefault(level[name], []).append(name)
    height = max(len(c) for c in columns.values()) * (BOX_H + GAP_Y) - GAP_Y + 2 * MARGIN
    width = len(columns) * (BOX_W + GAP_X) - GAP_X + 2 * MARGIN
    def top(row: int, count: int) -> int:
        """Columns with fewer steps are centred vertically."""
        spare = height - 2 * MARGIN - count * (BOX_H + GAP_Y) + GAP_Y
        return MARGIN + row * (BOX_H + GAP_Y) + spare // 2

    position = {
        name: (MARGIN + col * (BOX_W + GAP_X), top(row, len(names)))
        for col, names in columns.items() for row, name in enumerate(names)
    }
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="8" refY="4" '
        'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#555"/></marker></defs>',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    for source, target, label in links:
        (x1, y1), (x2, y2) = position[source], position[target]
        start, end = (x1 + BOX_W, y1 + BOX_H / 2), (x2, y2 + BOX_H / 2)
        parts.append(f'<line x1="{start[0]}" y1="{start[1]}" x2="{end[0]}" y2="{end[1]}" '
                     'stroke="#555" marker-end="url(#arrow)"/>')
        if label:
            parts.append(f'<text x="{(start[0] + end[0]) / 2}" y="{(start[1] + end[1]) / 2 - 4}" '
                         f'text-anchor="middle" fill="#333">{label}</text>')
    for name, step in steps.items():
        x, y = position[name]
        status = statuses.get(name)
        fill = COLOURS.get(status, COLOURS[None])
        title = html.escape(fitted(step.get("DisplayName") or name, TITLE_CHARS))
        parts.append(f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8" '
                     f'fill="{fill}" stroke="#4a6785"/>')
        parts.append(f'<text x="{x + 10}" y="{y + 20}" font-weight="bold">{html.escape(name)}'
                     f'<title>{html.escape(step.get("Description", ""))}</title></text>')
        parts.append(f'<text x="{x + 10}" y="{y + 36}" fill="#333">{title}</text>')
        state = " · ".join(part for part in (step["Type"], status, notes.get(name)) if part)
        parts.append(f'<text x="{x + 10}" y="{y + 51}" fill="#666">{html.escape(state)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def render_definition(
    definition_json: str, statuses: Mapping[str, str] | None = None, notes: Mapping[str, str] | None = None
) -> str:
    return render_svg(json.loads(definition_json), statuses, notes)
