"""Reading the endpoint's data capture: SageMaker's JSON-lines records, one request and its answer
each, cut to a time window and expanded to one record per review.

A line that cannot be used is counted and skipped, never fatal: one bad client must not stop the
check of everyone else's traffic.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

UTC = timezone.utc  # noqa: UP017 - datetime.UTC needs Python 3.11; the image may run 3.9
MAX_EXAMPLES = 5


class CaptureError(ValueError):
    """One capture line cannot be used: it is counted as malformed and skipped."""


def parse_time(text: str) -> datetime:
    """ISO 8601 as UTC; a trailing Z (SageMaker's form) is accepted on Python 3.9 too."""
    value = text.strip()
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime | None) -> str | None:
    """The form capture records use, so the report reads like the data."""
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Window:
    """[start, end) over eventMetadata.inferenceTime; a missing bound is open."""

    start: datetime | None = None
    end: datetime | None = None

    def contains(self, moment: datetime) -> bool:
        after_start = self.start is None or moment >= self.start
        return after_start and (self.end is None or moment < self.end)

    def describe(self) -> dict[str, str | None]:
        return {"start": iso(self.start), "end": iso(self.end)}


def window_text(window: Window) -> str:
    """How messages and the report name the window."""
    bounds = window.describe()
    return f"[{bounds['start'] or 'the beginning'}, {bounds['end'] or 'the end'})"


@dataclass
class Capture:
    """The usable records of a window, one per review, and what was skipped."""

    texts: list[str] = field(default_factory=list)
    predictions: list[dict[str, Any]] = field(default_factory=list)
    files: int = 0
    malformed: int = 0
    examples: list[str] = field(default_factory=list)

    def skip(self, where: str, error: CaptureError) -> None:
        self.malformed += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{where}: {error}")


def payload(capture: dict[str, Any], key: str) -> tuple[bytes, str]:
    """The body and content type of endpointInput / endpointOutput, decoded per its encoding."""
    part = capture.get(key)
    if not isinstance(part, dict):
        raise CaptureError(f"captureData has no {key}")
    data, content_type, encoding = (
        part.get("data"),
        part.get("observedContentType"),
        part.get("encoding"),
    )
    if not isinstance(data, str) or not isinstance(content_type, str):
        raise CaptureError(f"{key} lacks a string data or observedContentType")
    if encoding in ("CSV", "JSON"):
        return data.encode("utf-8"), content_type
    if encoding == "BASE64":
        try:
            return base64.b64decode(data, validate=True), content_type
        except (binascii.Error, ValueError):
            raise CaptureError(f"{key} data is not valid base64") from None
    raise CaptureError(f"{key} has unknown encoding {encoding!r}")


def _prediction(item: object) -> dict[str, Any]:
    """One {"label": 0|1, "score": P(1)} answer, checked."""
    if not isinstance(item, dict):
        raise CaptureError("a prediction is not an object")
    label, score = item.get("label"), item.get("score")
    if isinstance(label, bool) or label not in (0, 1):
        raise CaptureError(f"prediction label {label!r} is not 0 or 1")
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
        raise CaptureError(f"prediction score {score!r} is not a probability")
    return {"label": int(label), "score": float(score)}


def parse_predictions(body: bytes) -> list[dict[str, Any]]:
    """The endpoint's answer: {"predictions": [...]}, or one prediction per line (JSON lines)."""
    try:
        text = body.decode("utf-8")
        try:
            document: Any = json.loads(text)
        except json.JSONDecodeError:
            document = [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError:
        raise CaptureError("endpointOutput is neither JSON nor JSON lines") from None
    if isinstance(document, dict):
        document = document.get("predictions", [document])
    if not isinstance(document, list):
        raise CaptureError("endpointOutput holds no list of predictions")
    return [_prediction(item) for item in document]


def record_time(record: dict[str, Any]) -> datetime:
    """eventMetadata.inferenceTime of a capture record."""
    metadata = record.get("eventMetadata")
    moment = metadata.get("inferenceTime") if isinstance(metadata, dict) else None
    if not isinstance(moment, str):
        raise CaptureError("no eventMetadata.inferenceTime")
    try:
        return parse_time(moment)
    except ValueError:
        raise CaptureError(f"inferenceTime {moment!r} is not ISO 8601") from None


# The artifact's request reader (monitoring/model.py Artifact.read): a body and content type -> reviews.
RequestReader = Callable[[bytes, str], list[str]]


def parse_line(line: bytes, read: RequestReader, window: Window) -> tuple[list[str], list[dict[str, Any]]]:
    """The reviews of one capture line (read as the model read them) and their predictions; none
    outside the window."""
    try:
        record = json.loads(line.decode("utf-8"))
    except ValueError:
        raise CaptureError("not a JSON line") from None
    if not isinstance(record, dict):
        raise CaptureError("not a JSON object")
    if not window.contains(record_time(record)):
        return [], []
    capture = record.get("captureData")
    if not isinstance(capture, dict):
        raise CaptureError("no captureData object")
    body, content_type = payload(capture, "endpointInput")
    try:
        texts = read(body, content_type)
    except ValueError as exc:
        raise CaptureError(f"the request does not parse: {exc}") from None
    predictions = parse_predictions(payload(capture, "endpointOutput")[0])
    if len(texts) != len(predictions):
        raise CaptureError(f"{len(texts)} reviews but {len(predictions)} predictions")
    return texts, predictions


def capture_lines(root: Path, files: list[Path]) -> Iterator[tuple[str, bytes]]:
    """Every non-blank line of the files, with where it came from (file:line)."""
    for path in files:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    yield f"{path.relative_to(root)}:{number}", line


def read_capture(root: Path, read: RequestReader, window: Window) -> Capture:
    """Collect the window's records; malformed lines are counted and skipped, never fatal."""
    files = sorted(path for path in root.rglob("*.jsonl") if path.is_file()) if root.is_dir() else []
    capture = Capture(files=len(files))
    for where, line in capture_lines(root, files):
        try:
            texts, predictions = parse_line(line, read, window)
        except CaptureError as error:
            capture.skip(where, error)
            continue
        capture.texts += texts
        capture.predictions += predictions
    return capture
