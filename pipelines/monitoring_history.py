"""`monitor history`: drift across the monitoring runs, as a table and as a picture.

A scheduled check answers one window at a time; whether traffic is drifting away from the training
reviews shows across windows. Each run's `metrics.json` (steps/monitoring/check.py) gives its status,
record count and one drift distance per feature; the picture draws each feature's distance run
after run, with the threshold as a dashed line. A run that failed, or found too little traffic to
judge, is a grey mark on the time axis, so a gap in the lines is explained.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipelines.aws import Clients
from pipelines.monitoring_run import metrics_of, not_run_yet, outputs_of

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 760, 320, 56, 170, 24, 48
# One colour per monitored feature (steps/monitoring/cloudwatch.py FEATURES), then any other.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#17becf")


@dataclass(frozen=True)
class Check:
    """One monitoring run as the history shows it: its findings when it succeeded, else its status."""

    execution_id: str
    started: datetime
    status: str  # drift, no_drift, not_enough_data, no_data; or the run's own (Failed, Executing...)
    records: int = 0
    distances: dict[str, float | None] = field(default_factory=dict)
    threshold: float | None = None

    @property
    def judged(self) -> bool:
        return self.status in ("drift", "no_drift")


def checks(clients: Clients, limit: int) -> list[Check]:
    """The latest `limit` runs of the monitoring pipeline, oldest first; NoRun before the first."""
    pipeline = clients.settings.monitoring_pipeline_name
    summaries = clients.sagemaker.list_pipeline_executions(
        PipelineName=pipeline, SortBy="CreationTime", SortOrder="Descending", MaxResults=limit,
    )["PipelineExecutionSummaries"]
    if not summaries:
        raise not_run_yet(pipeline)
    return [_check(clients, summary) for summary in reversed(summaries)]


def _check(clients: Clients, summary: dict[str, Any]) -> Check:
    arn = str(summary["PipelineExecutionArn"])
    execution_id = arn.rsplit("/", 1)[-1]
    started = summary["StartTime"]
    if summary["PipelineExecutionStatus"] != "Succeeded":
        return Check(execution_id, started, str(summary["PipelineExecutionStatus"]))
    metrics = metrics_of(clients, outputs_of(clients, arn))
    features = metrics.get("features") or {}
    distances = {name: feature.get("drift_distance") for name, feature in features.items()}
    return Check(execution_id, started, str(metrics["status"]), int(metrics.get("record_count", 0)),
                 distances, metrics.get("threshold"))


def table(history: Sequence[Check]) -> str:
    """One line per run: when, what it found, and each feature's drift distance."""
    features = _features(history)
    header = ["started", "run", "status", "records", *features]
    rows = [header] + [
        [check.started.strftime("%Y-%m-%d %H:%M"), check.execution_id, check.status, str(check.records),
         *(_shown(check.distances.get(name)) for name in features)]
        for check in history
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def _shown(distance: float | None) -> str:
    return "-" if distance is None else f"{distance:.3f}"


def _features(history: Sequence[Check]) -> list[str]:
    return list(dict.fromkeys(name for check in history for name in check.distances))


@dataclass(frozen=True)
class _Frame:
    """Where the plot sits in the picture: `runs` points along x, drift distances 0..`top` up y."""

    runs: int
    top: float
    width: float = WIDTH - LEFT - RIGHT
    height: float = HEIGHT - TOP - BOTTOM

    def x(self, index: int) -> float:
        return LEFT + (self.width * index / (self.runs - 1) if self.runs > 1 else self.width / 2)

    def y(self, value: float) -> float:
        return TOP + self.height * (1 - value / self.top)


def history_svg(history: Sequence[Check]) -> str:
    """Each feature's drift distance, run after run, against the threshold."""
    judged = [check for check in history if check.judged]
    # a run with too little traffic to judge still says what it would have judged against
    thresholds = [check.threshold for check in history if check.threshold is not None]
    distances = [d for check in judged for d in check.distances.values() if d is not None]
    highest = max([0.2, *distances, *(2 * t for t in thresholds)])
    frame = _Frame(len(history), min(1.0, math.ceil(highest * 10 + 0.5) / 10))  # distances are at most 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        *_axes(frame),
        *(_threshold(frame, thresholds[-1]) if thresholds else []),
        *_runs(frame, history),
        *([] if judged else [_text(LEFT + frame.width / 2, TOP + frame.height / 2, "no run has judged drift "
                                   "yet: each failed or had too little traffic (hover a grey mark)")]),
    ]
    for number, name in enumerate(_features(history)):
        parts += _feature(frame, history, name, PALETTE[number % len(PALETTE)], number)
    parts.append("</svg>")
    return "\n".join(parts)


def _axes(frame: _Frame) -> list[str]:
    bottom, middle = TOP + frame.height, TOP + frame.height / 2
    return [
        f'<line x1="{LEFT}" y1="{bottom}" x2="{LEFT + frame.width}" y2="{bottom}" stroke="#555"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="#555"/>',
        _text(LEFT - 8, TOP + 4, f"{frame.top:.1f}", "end"),
        _text(LEFT - 8, bottom + 4, "0", "end"),
        _text(14, middle, "drift distance", "middle", f'transform="rotate(-90 14 {middle:.1f})"'),
        _text(LEFT + frame.width / 2, HEIGHT - 8, "monitoring runs (grey: not judged: failed, or too "
              "little traffic)"),
    ]


def _threshold(frame: _Frame, value: float) -> list[str]:
    level = frame.y(value)
    return [
        f'<line x1="{LEFT}" y1="{level:.1f}" x2="{LEFT + frame.width}" y2="{level:.1f}" stroke="#c00" '
        'stroke-dasharray="6,4"/>',
        _text(LEFT + frame.width + 6, level + 4, f"threshold {value:g}", "start", 'fill="#c00"'),
    ]


def _runs(frame: _Frame, history: Sequence[Check]) -> list[str]:
    """Time labels along the axis (some of them), and a grey mark for each run not judged."""
    parts = []
    every = max(1, len(history) // 6)
    for index, check in enumerate(history):
        if index in (0, len(history) - 1) or index % every == 0:
            label = check.started.strftime("%m-%d %H:%M")
            parts.append(_text(frame.x(index), TOP + frame.height + 16, label))
        if not check.judged:
            parts.append(f'<rect x="{frame.x(index) - 4:.1f}" y="{TOP + frame.height - 4}" width="8" '
                         f'height="8" fill="#999"><title>{html.escape(_mark(check))}</title></rect>')
    return parts


def _feature(frame: _Frame, history: Sequence[Check], name: str, colour: str, number: int) -> list[str]:
    """One feature's line through the runs that judged it, and its legend entry."""
    points = [(frame.x(i), frame.y(d)) for i, check in enumerate(history)
              if check.judged and (d := check.distances.get(name)) is not None]
    parts = []
    if len(points) > 1:
        line = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
    parts += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>' for px, py in points]
    legend_x, legend_y = LEFT + frame.width + 6, TOP + 14 + 16 * number
    parts.append(f'<rect x="{legend_x}" y="{legend_y - 8}" width="10" height="10" fill="{colour}"/>')
    parts.append(_text(legend_x + 14, legend_y + 1, name, "start"))
    return parts


def _mark(check: Check) -> str:
    return f"{check.started:%Y-%m-%d %H:%M} {check.execution_id}: {check.status} ({check.records} records)"


def _text(x: float, y: float, text: str, anchor: str = "middle", extra: str = "") -> str:
    more = f" {extra}" if extra else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{more}>{html.escape(text)}</text>'
