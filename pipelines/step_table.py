"""How an execution's steps look to a person: one live table in a terminal, plain lines elsewhere.

A terminal gets a single table redrawn in place (status colours, the elapsed time of running steps
and of the execution), left on screen once when the run ends. Anything else (CI logs, pipes,
files) gets one plain line per step change and the table once at the end, with no control
characters. Colours follow the NO_COLOR convention through rich.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

TERMINAL = frozenset({"Succeeded", "Failed", "Stopped"})
STATUS_STYLES = {
    "Starting": "cyan",
    "Executing": "yellow",
    "Stopping": "magenta",
    "Stopped": "magenta",
    "Succeeded": "green",
    "Failed": "bold red",
}
HEADERS = ("STEP", "STATUS", "TIME", "CACHE", "ATTEMPTS", "DETAIL")
# Everything the plain output must not carry: C0 controls but newline and tab, DEL, C1 controls.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
Say = Callable[[str], None]
Step = Mapping[str, Any]


def clean_line(text: str) -> str:
    """One line of service text made safe to print: no escape sequences, single spaces."""
    return " ".join(CONTROL.sub(" ", text).split())


def text_lines(text: object) -> list[str]:
    """Service text (a failure reason) as its non-empty lines, each cleaned."""
    lines = (clean_line(line) for line in str(text).splitlines())
    return [line for line in lines if line]


def failure_lines(reason: object) -> list[str]:
    """A failure reason's lines, with the training toolkit's `ExecuteUserScriptError:` and its
    `ExitCode N` on one line, so that the first line alone says how the script ended."""
    lines = text_lines(reason)
    if len(lines) > 1 and lines[0].endswith("ExecuteUserScriptError:") and lines[1].startswith("ExitCode "):
        lines[:2] = [f"{lines[0]} {lines[1]}"]
    return lines


def seconds(value: float) -> str:
    """A duration short enough for a table cell: 45ms, 4.2s, 3m07s, 1h05m (a local step often takes
    less than the tenth of a second 0.0s would round it to)."""
    if value < 0.9995:
        return f"{round(value * 1000)}ms"
    if value < 60:
        return f"{value:.1f}s"
    minutes, secs = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _elapsed(start: Any, end: Any, now: datetime) -> str:
    if not isinstance(start, datetime):
        return ""
    finish = end if isinstance(end, datetime) else now
    return seconds(max(0.0, (finish - start).total_seconds()))


def execution_elapsed(execution: Step, now: datetime) -> str:
    """Since the execution was created; until its last change once it has ended."""
    ended = execution.get("PipelineExecutionStatus") in TERMINAL
    return _elapsed(
        execution.get("CreationTime"), execution.get("LastModifiedTime") if ended else None, now
    )


def detail_lines(step: Step) -> list[str]:
    """What to say about a step: what its failed job said (a processing job's ExitMessage) and its
    failure reason, one problem per line, or its outcome."""
    if step.get("FailureReason"):
        return text_lines(step.get("ExitMessage", "")) + failure_lines(step["FailureReason"])
    metadata = step.get("Metadata", {})
    if "Condition" in metadata:
        return [f"outcome: {metadata['Condition'].get('Outcome')}"]
    if "RegisterModel" in metadata:
        return [str(metadata["RegisterModel"].get("Arn", ""))]
    if "Lambda" in metadata:
        outputs = {o["Name"]: o.get("Value") for o in metadata["Lambda"].get("OutputParameters", [])}
        return [f"{outputs.get('action', '')} {outputs.get('endpoint_name', '')}".strip()]
    return []


@dataclass(frozen=True)
class StepRow:
    """One step as the table shows it; every cell is plain, printable text."""

    name: str
    status: str
    time: str
    cache: str
    attempts: str
    detail: list[str]

    @property
    def cell(self) -> str:
        """The detail in one table cell. A failure's problems are listed in full under the table,
        so its cell names the first one."""
        if self.status == "Failed" and len(self.detail) > 1:
            return f"{self.detail[0]} (+{len(self.detail) - 1} more below)"
        return "; ".join(self.detail)

    @classmethod
    def of(cls, step: Step, now: datetime) -> StepRow:
        # SageMaker marks a step served from its cache with CacheHitResult, and one a selective
        # execution took from its source execution with SelectiveExecutionResult.
        reused = "reused" if step.get("SelectiveExecutionResult") else ""
        return cls(
            name=clean_line(str(step.get("StepName", ""))),
            status=clean_line(str(step.get("StepStatus", ""))),
            time=_elapsed(step.get("StartTime"), step.get("EndTime"), now),
            cache="cached" if step.get("CacheHitResult") else reused,
            attempts=str(step["AttemptCount"]) if step.get("AttemptCount") is not None else "",
            detail=detail_lines(step),
        )


def rows(steps: Sequence[Step], now: datetime) -> list[StepRow]:
    """The steps in the order they started; steps not started yet last."""
    far = datetime.max.replace(tzinfo=UTC)
    ordered = sorted(
        steps,
        key=lambda s: s["StartTime"] if isinstance(s.get("StartTime"), datetime) else far,
    )
    return [StepRow.of(step, now) for step in ordered]


def plain_table(steps: Sequence[Step], now: datetime) -> str:
    """Fixed-width columns, one line per step."""
    cells = [list(HEADERS)] + [
        [r.name, r.status, r.time, r.cache, r.attempts, r.cell] for r in rows(steps, now)
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADERS))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


LOGGED_KINDS = {"ProcessingJob", "TrainingJob", "Lambda"}  # steps whose Metadata names what has a log


def outcome_lines(execution: Step, steps: Sequence[Step], now: datetime) -> list[str]:
    """The last word on an execution: how it ended, and if it failed, where and why."""
    status = str(execution.get("PipelineExecutionStatus", ""))
    took = execution_elapsed(execution, now)
    if status == "Succeeded":
        return [f"Succeeded in {took}"]
    if status not in TERMINAL:
        return [f"still {status} after {took}; stopped waiting for it"]
    failed = [row for row in rows(steps, now) if row.status == "Failed"]
    if failed:
        where = ", ".join(row.name for row in failed)
        reasons = [line for row in failed for line in row.detail]
    else:
        where, reasons = "", text_lines(execution.get("FailureReason", ""))
    head = f"{status} after {took}" + (f" at step {where}" if where else "")
    said = [f"{head}: {reasons[0]}"] if len(reasons) == 1 else (
        [head + (":" if reasons else "")] + [f"  {reason}" for reason in reasons]
    )
    return said + log_hints(execution, [step for step in steps if step.get("StepStatus") == "Failed"])


def log_hints(execution: Step, failed: Sequence[Step]) -> list[str]:
    """Where to read what a failed step's job or function said: a training job's reason, as the
    scikit-learn image words it, holds none of what the script wrote."""
    arn = execution.get("PipelineExecutionArn", "")
    return [
        f"{step['StepName']}'s log: python -m pipelines logs {step['StepName']} --execution {arn}"
        for step in failed
        if LOGGED_KINDS & set(step.get("Metadata", {}))
    ]


def execution_parts(arn: str) -> tuple[str, str]:
    """(pipeline name, execution id) of an execution's ARN (...:pipeline/<name>/execution/<id>); the
    id is "" for any other ARN."""
    _, _, path = arn.rpartition(":pipeline/")
    pipeline, _, execution_id = path.partition("/execution/")
    return pipeline, execution_id


def short_name(execution: Step) -> str:
    """`<pipeline> execution <id>` from the execution's ARN."""
    arn = str(execution.get("PipelineExecutionArn", ""))
    pipeline, execution_id = execution_parts(arn)
    return f"{pipeline} execution {execution_id}" if execution_id else arn


def plain_summary(execution: Step, steps: Sequence[Step], now: datetime | None = None) -> str:
    """The whole picture as plain text: which execution, its steps, how it ended."""
    now = now or datetime.now(UTC)
    header = f"execution {execution.get('PipelineExecutionArn', '')}"
    return "\n".join([header, plain_table(steps, now), *outcome_lines(execution, steps, now)])


def rich_summary(execution: Step, steps: Sequence[Step], now: datetime) -> RenderableType:
    """The same picture for a terminal: coloured statuses, a title with the running time."""
    status = str(execution.get("PipelineExecutionStatus", ""))
    title = Text(f"{short_name(execution)}  ")
    title.append(status, style=STATUS_STYLES.get(status, ""))
    title.append(f"  {execution_elapsed(execution, now)}")
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", show_edge=False, pad_edge=False)
    for header in HEADERS:
        table.add_column(header, no_wrap=header != "DETAIL", overflow="fold")
    for row in rows(steps, now):
        table.add_row(
            row.name, Text(row.status, style=STATUS_STYLES.get(row.status, "")), row.time,
            Text(row.cache, style="cyan"), row.attempts, row.cell,
        )
    parts: list[RenderableType] = [title, table]
    if status in TERMINAL:
        style = "green" if status == "Succeeded" else STATUS_STYLES.get(status, "")
        parts.append(Text("\n".join(outcome_lines(execution, steps, now)), style=style))
    return Group(*parts)


class ExecutionView(Protocol):
    """Shows an execution being followed: `update` on every poll, `finish` once at the end."""

    def update(self, execution: Step, steps: Sequence[Step]) -> None: ...

    def finish(self, execution: Step, steps: Sequence[Step]) -> None: ...


class PlainView:
    """One line per step change, then the table once: for logs, pipes and CI."""

    def __init__(self, say: Say) -> None:
        self.say = say
        self.seen: dict[str, str] = {}

    def update(self, execution: Step, steps: Sequence[Step]) -> None:
        for row in rows(steps, datetime.now(UTC)):
            if self.seen.get(row.name) == row.status:
                continue
            self.seen[row.name] = row.status
            words = [f"{datetime.now():%H:%M:%S}", f"{row.name:<16}", f"{row.status:<10}"]
            if row.status in TERMINAL:
                words += [row.time, row.cache]
                if row.attempts not in ("", "1"):
                    words.append(f"attempt {row.attempts}")
            self.say(" ".join(word for word in words if word).rstrip())

    def finish(self, execution: Step, steps: Sequence[Step]) -> None:
        self.update(execution, steps)
        self.say(plain_summary(execution, steps))


class LiveView:
    """One table redrawn in place while the execution runs, then printed once in full (a live
    frame is cut to the terminal's height; the final print is not)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.snapshot: tuple[Step, Sequence[Step]] = ({}, [])
        self.live = Live(console=console, get_renderable=self.render, refresh_per_second=4,
                         transient=True)

    def render(self) -> RenderableType:
        # Called from rich's refresh thread too, so the running times move between polls.
        return rich_summary(*self.snapshot, datetime.now(UTC))

    def update(self, execution: Step, steps: Sequence[Step]) -> None:
        self.snapshot = (execution, steps)
        if not self.live.is_started:
            self.live.start()
        self.live.refresh()

    def finish(self, execution: Step, steps: Sequence[Step]) -> None:
        self.snapshot = (execution, steps)
        self.close()
        self.console.print(self.render())

    def close(self) -> None:
        if self.live.is_started:
            self.live.stop()


def is_terminal(stream: TextIO) -> bool:
    """A terminal that can redraw in place: a TTY whose TERM is not 'dumb'."""
    return stream.isatty() and os.environ.get("TERM", "") != "dumb"


@contextmanager
def execution_view(say: Say, stream: TextIO | None = None) -> Iterator[ExecutionView]:
    """A live view when `stream` (default stdout) is a terminal, plain lines through `say` if not."""
    stream = stream or sys.stdout
    if not is_terminal(stream):
        yield PlainView(say)
        return
    view = LiveView(Console(file=stream, force_terminal=True))
    try:
        yield view
    finally:
        view.close()


def show_summary(execution: Step, steps: Sequence[Step], say: Say, stream: TextIO | None = None) -> None:
    """Print an execution once: coloured in a terminal, plain text otherwise."""
    stream = stream or sys.stdout
    if is_terminal(stream):
        Console(file=stream, force_terminal=True).print(rich_summary(execution, steps, datetime.now(UTC)))
    else:
        say(plain_summary(execution, steps))
