"""A running job's stop: the event its process supervisor watches, and when the stop was asked.

SageMaker shows a job `Stopping` from the stop request until its container has exited and what a
stop keeps is uploaded. So whoever asks for the stop (StopProcessingJob, StopTrainingJob, the stop
of the job's execution) must record the job as Stopping at once, in the job's own words: the job
names how it describes itself, and that description dates Stopping from the request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Description = Callable[[], dict[str, Any]]


class JobStop(threading.Event):
    """Set (SIGTERM, then SIGKILL after the job's grace) by a stop request or by the server's own
    shutdown; only a request makes the job Stopping, since nobody asked a shutdown's job to stop."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.requested_at: datetime | None = None
        self.describe: Description | None = None  # the job's Describe*Job answer, set as it starts

    def request(self) -> dict[str, Any] | None:
        """Ask the job to stop; its description now, Stopping, or None when it has not described
        itself yet (it will, as Stopping, when it does)."""
        with self._lock:
            if self.requested_at is None:
                self.requested_at = datetime.now(UTC)
        self.set()
        return None if self.describe is None else self.describe()
