"""A job's log stream: each line of its container's output with the time it was written.

SageMaker sends a job's stdout and stderr to CloudWatch Logs, one stream per instance named
`<job name>/algo-1-<epoch seconds>`, each event a line with its timestamp in milliseconds. A job
writes its stream here, one file per stream in the job's `log-streams` folder (`<milliseconds>
<line>` per line), beside the plain `logs.txt`; the Logs API (service/logs.py) reads it back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

STREAMS_DIR = "log-streams"


@dataclass(frozen=True)
class LogEvent:
    timestamp: int  # milliseconds since the epoch, when the line was written
    message: str  # the line, without its newline


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class StreamWriter:
    """Writes each line it is given with the time it is given, so the time is the line's own:
    the job's output reader hands over a line as soon as the job writes it."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file

    def write(self, line: str) -> None:
        self._file.write(f"{now_ms()} {line}")

    def flush(self) -> None:
        self._file.flush()


def open_stream(job_root: Path, host: str) -> IO[str]:
    """A new stream for the instance `host`, named for the second it starts, as SageMaker's."""
    folder = job_root / STREAMS_DIR
    folder.mkdir(exist_ok=True)
    return open(folder / f"{host}-{int(time.time())}", "w", encoding="utf-8")


def streams(job_root: Path) -> list[Path]:
    """The job's stream files; their names are the stream names after `<job name>/`."""
    folder = job_root / STREAMS_DIR
    return sorted(folder.iterdir()) if folder.is_dir() else []


def created_ms(stream: Path) -> int:
    """When the stream was made: the second its name carries."""
    return int(stream.name.rsplit("-", 1)[1]) * 1000


def read_events(stream: Path) -> list[LogEvent]:
    """The stream's whole lines; a line still being written is left for the next read."""
    events: list[LogEvent] = []
    with open(stream, encoding="utf-8", errors="replace") as file:
        for line in file:
            if not line.endswith("\n"):
                break
            moment, _, message = line[:-1].partition(" ")
            events.append(LogEvent(int(moment), message))
    return events
