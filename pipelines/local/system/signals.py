"""Stop requests from SIGTERM/SIGINT that a signal handler can make without taking a lock.

A Python signal handler runs on the main thread between two bytecodes, wherever that thread is,
including inside another handler that has just taken a lock. ``threading.Event.set`` takes the
event's lock, so a second signal landing inside the first handler deadlocks the process (seen: a
model server parent stuck forever with four nested handlers). ``StopFlag`` is a plain attribute
that is polled instead.
"""

from __future__ import annotations

import signal
import time

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
POLL_SECONDS = 0.05


class StopFlag:
    """Set once a stop is requested; ``wait`` behaves like ``threading.Event.wait``."""

    def __init__(self) -> None:
        self._requested = False

    def set(self) -> None:
        self._requested = True

    def is_set(self) -> bool:
        return self._requested

    def wait(self, timeout: float) -> bool:
        """Sleep until set or until ``timeout`` seconds pass; whether it was set."""
        deadline = time.monotonic() + timeout
        while not self._requested:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(remaining, POLL_SECONDS))
        return True


def stop_on_signals(signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> StopFlag:
    """A flag set by any of ``signals``."""
    stop = StopFlag()
    for signum in signals:
        signal.signal(signum, lambda *_: stop.set())
    return stop
