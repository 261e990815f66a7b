"""The log groups that are not a job kind's: a Lambda function's and an endpoint's.

Lambda writes a function's output to `/aws/lambda/<function>` (or the group its LoggingConfig
names), one stream per execution environment; SageMaker writes an endpoint's model servers' output
to `/aws/sagemaker/Endpoints/<endpoint>`, one stream per instance. Each stream is a file in the
format of jobs/log_events.py (`<milliseconds> <line>` per line), at `<root>/<group>/<created
milliseconds>-<stream>` with the group's and the stream's names percent-encoded, so the names keep
their slashes and brackets and a stream keeps the moment it was made. A group exists once a stream
has been written into it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import quote, unquote

from pipelines.local.jobs.log_events import now_ms


@dataclass(frozen=True)
class StoredStream:
    name: str
    path: Path
    created: int  # milliseconds since the epoch


class LogGroups:
    def __init__(self, root: Path) -> None:
        self.root = root

    def open(self, group: str, stream: str) -> IO[str]:
        """The stream, to append to: made now unless it exists (an endpoint's instance whose
        server starts again after a restart writes on in its stream)."""
        folder = self.root / quote(group, safe="")
        folder.mkdir(parents=True, exist_ok=True)
        existing = next((found.path for found in self.streams(group) if found.name == stream), None)
        path = existing or folder / f"{now_ms()}-{quote(stream, safe='')}"
        return open(path, "a", encoding="utf-8")

    def groups(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(unquote(folder.name) for folder in self.root.iterdir() if any(folder.iterdir()))

    def streams(self, group: str) -> list[StoredStream]:
        folder = self.root / quote(group, safe="")
        if not folder.is_dir():
            return []
        found = []
        for path in folder.iterdir():
            created, _, name = path.name.partition("-")
            found.append(StoredStream(unquote(name), path, int(created)))
        return sorted(found, key=lambda stream: stream.name)
