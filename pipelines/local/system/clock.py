"""Timestamps in the form SageMaker writes them, and the clock that long waits go through."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, the form SageMaker uses for its timestamps."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def now_timestamp() -> str:
    return format_timestamp(datetime.now(UTC))


class Clock:
    """The wall clock, and waits that a stop cuts short. Whatever waits minutes (Lambda's retries)
    takes one, so that a test can pass one whose time moves on at once."""

    def now(self) -> float:
        return time.time()

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        """Wait `seconds`, or until `stop` is set; whether it was."""
        return stop.wait(seconds)

    def wait_until(self, moment: float, stop: threading.Event) -> bool:
        """Wait until `moment` by this clock (not at all when it is past), or until `stop` is set;
        whether it was. What is due at a recorded time waits here, after a restart too."""
        delay = moment - self.now()
        return self.wait(delay, stop) if delay > 0 else stop.is_set()
