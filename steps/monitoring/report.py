"""report.html: one self-contained page per check, its plots drawn as inline SVG (the scikit-learn
image may lack matplotlib, and a report must open offline).

From the top: the verdict, the facts of the run, a summary table, the violations, the first
malformed capture lines, then per feature the two distributions with the drift distance marked.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from .capture import UTC, Capture, iso, window_text
from .drift import CheckSettings, Outcome, ks_distance, weighted_cdf
from .formats import BaselineFeature

WIDTH, HEIGHT = 420, 220
LEFT, RIGHT, TOP, BOTTOM = 52, 408, 14, 186
BASELINE_COLOUR, WINDOW_COLOUR = "#0072b2", "#d55e00"
GRID_POINTS = 400
HISTOGRAM_BINS = 20
STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:64rem}
table{border-collapse:collapse;margin:.5rem 0 1rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
tr.violation td{background:#fde2e1;font-weight:600}
.status{padding:.6rem 1rem;border-radius:4px;font-weight:600}
.status-drift{background:#fde2e1}.status-no_drift{background:#e3f4e1}
.status-not_enough_data,.status-no_data{background:#fff4d6}
.legend span{display:inline-block;width:1rem;height:.6rem;margin:0 .3rem 0 1rem}
svg{margin-right:1rem;background:#fafafa}
"""


def _fmt(value: float) -> str:
    return f"{value:.4g}"


class Scale:
    """Maps data to pixels for one plot; a single value gets a unit-wide range around it."""

    def __init__(self, low: float, high: float, top: float) -> None:
        self.low, self.high = (low - 0.5, high + 0.5) if low == high else (low, high)
        self.top = top if top > 0 else 1.0

    def x(self, value: float) -> float:
        return LEFT + (value - self.low) / (self.high - self.low) * (RIGHT - LEFT)

    def y(self, value: float) -> float:
        return BOTTOM - value / self.top * (BOTTOM - TOP)


def _text(x: float, y: float, text: str, anchor: str = "middle", extra: str = "") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="10" text-anchor="{anchor}"{extra}>'
        f"{html.escape(text)}</text>"
    )


def _svg(label: str, scale: Scale, y_label: str, content: str) -> str:
    """A plot frame with x ticks at five values and y ticks at 0, half and top."""
    middle = (TOP + BOTTOM) / 2
    parts = [
        f'<svg width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{html.escape(label)}">',
        f'<rect x="{LEFT}" y="{TOP}" width="{RIGHT - LEFT}" height="{BOTTOM - TOP}" '
        'fill="none" stroke="#999"/>',
        _text(14, middle, y_label, extra=f' transform="rotate(-90 14 {middle})"'),
    ]
    parts += [_text(scale.x(v), BOTTOM + 14, _fmt(v)) for v in np.linspace(scale.low, scale.high, 5)]
    parts += [_text(LEFT - 4, scale.y(v) + 3, _fmt(v), "end") for v in (0, scale.top / 2, scale.top)]
    return "".join(parts) + content + "</svg>"


def _step_path(scale: Scale, grid: np.ndarray, cdf: np.ndarray, colour: str) -> str:
    steps = "".join(f"H{scale.x(x):.1f}V{scale.y(y):.1f}" for x, y in np.column_stack((grid, cdf)))
    return (
        f'<path d="M{LEFT},{scale.y(0.0):.1f}{steps}H{RIGHT}" fill="none" stroke="{colour}" '
        'stroke-width="1.8"/>'
    )


def cdf_svg(name: str, baseline: BaselineFeature, window: np.ndarray) -> str:
    """Overlaid cumulative distributions with the largest gap (the drift distance) marked."""
    union = np.concatenate([baseline.values, window])
    grid = np.unique(union)
    if grid.size > GRID_POINTS:
        grid = np.unique(np.quantile(union, np.linspace(0, 1, GRID_POINTS)))
    ones = np.ones(window.size)
    scale = Scale(float(union.min()), float(union.max()), 1.0)
    distance, at = ks_distance(baseline.values, baseline.weights, window)
    spot = np.array([at])
    base_y = scale.y(float(weighted_cdf(baseline.values, baseline.weights, spot)[0]))
    window_y = scale.y(float(weighted_cdf(window, ones, spot)[0]))
    marker = (
        f'<line x1="{scale.x(at):.1f}" x2="{scale.x(at):.1f}" y1="{base_y:.1f}" '
        f'y2="{window_y:.1f}" stroke="#222" stroke-dasharray="4 3" stroke-width="1.5"/>'
        + _text(
            min(scale.x(at) + 4, RIGHT - 70),
            (base_y + window_y) / 2,
            f"D = {distance:.3f}",
            "start",
        )
    )
    content = (
        _step_path(scale, grid, weighted_cdf(baseline.values, baseline.weights, grid), BASELINE_COLOUR)
        + _step_path(scale, grid, weighted_cdf(window, ones, grid), WINDOW_COLOUR)
        + marker
    )
    return _svg(f"cumulative distributions of {name}", scale, "cumulative share", content)


def histogram_svg(name: str, baseline: BaselineFeature, window: np.ndarray) -> str:
    """Share of records per bin, baseline and window side by side in each bin."""
    union = np.concatenate([baseline.values, window])
    low, high = float(union.min()), float(union.max())
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1) if high > low else np.array([low - 0.5, low + 0.5])
    shares = [
        np.histogram(baseline.values, bins=edges, weights=baseline.weights)[0] / baseline.weights.sum(),
        np.histogram(window, bins=edges)[0] / window.size,
    ]
    scale = Scale(float(edges[0]), float(edges[-1]), float(max(share.max() for share in shares)))
    bars = []
    for index in range(edges.size - 1):
        left, right = scale.x(float(edges[index])), scale.x(float(edges[index + 1]))
        half = (right - left) / 2
        for side, colour in enumerate((BASELINE_COLOUR, WINDOW_COLOUR)):
            top = scale.y(float(shares[side][index]))
            bars.append(
                f'<rect x="{left + side * half:.1f}" y="{top:.1f}" '
                f'width="{max(half - 0.5, 0.5):.1f}" '
                f'height="{BOTTOM - top:.1f}" fill="{colour}"/>'
            )
    return _svg(f"histogram of {name}", scale, "share of records", "".join(bars))


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    return _fmt(value) if isinstance(value, float) else html.escape(str(value))


def _table(rows: list[tuple[str, list[Any]]], header: list[str] | None = None) -> str:
    """Rows of (css class, cells); the first cell is a header cell when there is no header."""
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>" if header else ""
    body = []
    for css, cells in rows:
        first = "td" if header else "th"
        row = f"<{first}>{_cell(cells[0])}</{first}>" + "".join(f"<td>{_cell(c)}</td>" for c in cells[1:])
        body.append(f'<tr class="{css}">{row}</tr>' if css else f"<tr>{row}</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _list(items: list[str], empty: str) -> str:
    if not items:
        return f"<p>{html.escape(empty)}</p>"
    return "<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in items) + "</ul>"


@dataclass
class Report:
    """report.html: verdict, facts, summary table, violations, then a section per feature."""

    outcome: Outcome
    baseline: dict[str, BaselineFeature]
    table: dict[str, np.ndarray]
    capture: Capture
    settings: CheckSettings
    baseline_count: int

    def render(self) -> str:
        status = self.outcome.status
        parts = [
            "<h1>Model monitoring report</h1>",
            f'<p class="status status-{status}">{html.escape(self.outcome.message)}</p>',
            self.facts(),
        ]
        if self.outcome.features:
            parts += ["<h2>Summary</h2>", self.summary(), "<h2>Violations</h2>", self.violations()]
        parts += [
            "<h2>Malformed capture lines (first few)</h2>",
            _list(self.capture.examples, "None."),
        ]
        if self.outcome.features:
            parts += ["<h2>Features</h2>", self.legend()] + [
                self.feature(name) for name in self.outcome.features
            ]
        return (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>Model monitoring report</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(parts)
            + "\n</body></html>\n"
        )

    def facts(self) -> str:
        rows: list[tuple[str, list[Any]]] = [
            ("", ["endpoint", self.settings.endpoint_name or "(not given)"]),
            ("", ["window", window_text(self.settings.window)]),
            ("", ["records in the window", len(self.capture.texts)]),
            ("", ["malformed capture lines skipped", self.capture.malformed]),
            ("", ["capture files read", self.capture.files]),
            ("", ["records needed for a check", self.settings.min_records]),
            ("", ["drift threshold", self.settings.threshold]),
            ("", ["baseline records", self.baseline_count]),
            ("", ["generated", iso(datetime.now(UTC))]),
        ]
        return _table(rows)

    def summary(self) -> str:
        judged = self.outcome.judged
        rows = []
        for name, entry in self.outcome.features.items():
            verdict = "VIOLATION" if entry["violation"] else "ok" if judged else "not judged"
            if not entry["drift_checked"] and not entry["violation"]:
                verdict = "not checked (disabled in constraints.json)"
            cells = [
                name,
                entry["drift_distance"],
                self.settings.threshold,
                entry["baseline_mean"],
                entry["window_mean"],
                verdict,
            ]
            rows.append(("violation" if entry["violation"] else "", cells))
        header = [
            "feature",
            "drift distance",
            "threshold",
            "baseline mean",
            "window mean",
            "result",
        ]
        return _table(rows, header)

    def violations(self) -> str:
        items = [
            f"{item['feature_name']} ({item['constraint_check_type']}): {item['description']}"
            for item in self.outcome.violations
        ]
        return _list(items, "No violations.")

    def legend(self) -> str:
        return (
            f'<p class="legend"><span style="background:{BASELINE_COLOUR}"></span>baseline'
            f'<span style="background:{WINDOW_COLOUR}"></span>window</p>'
        )

    def feature(self, name: str) -> str:
        entry, values = self.outcome.features[name], self.table[name]
        present = values[np.isfinite(values)]
        title = f"<h3>{html.escape(name)}</h3>"
        if not present.size:
            return f"<section>{title}<p>No values in the window.</p></section>"
        verdict = "exceeds" if entry["violation"] else "is within"
        if not self.outcome.judged or not entry["drift_checked"]:
            verdict = "was not judged against"
        distance, threshold = _fmt(entry["drift_distance"]), _fmt(self.settings.threshold)
        text = f"Drift distance {distance} {verdict} the threshold {threshold}."
        return (
            f"<section>{title}<p>{html.escape(text)}</p>"
            + cdf_svg(name, self.baseline[name], present)
            + histogram_svg(name, self.baseline[name], present)
            + "</section>"
        )
