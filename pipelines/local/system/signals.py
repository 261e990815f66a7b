"""Stop requests from SIGTERM/SIGINT that a signal handler can make without taking a lock.

A Python signal handler runs on the main thread between two bytecodes, wherever that thread is,
including inside another handler that has just taken a lock. ``threading.Event.set`` takes the
event's lock, so a second signal landing inside the first handler deadlocks the process (seen: a
model server parent stuck forever with four nested handlers). ``StopFlag`` takes none: a request
sets a plain attribute and writes a byte to a pipe of its own, and a wait sleeps in ``select`` on
that pipe, so it ends the moment a stop is requested and wakes for nothing else (a server, a
model server and each of its workers wait on one all their lives).
"""

from __future__ import annotations

import os
import select
import signal
from contextlib import suppress

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopFlag:
    """Set once a stop is requested; ``wait`` behaves like ``threading.Event.wait``."""

    def __init__(self) -> None:
        self._requested = False
        self._readable, self._writable = os.pipe()  # not inherited by an exec'd child
        os.set_blocking(self._writable, False)

    def set(self) -> None:
        self._requested = True
        # The byte stays unread, so every waiter, now and later, finds the pipe readable; a pipe
        # full of earlier requests' bytes is readable already.
        with suppress(BlockingIOError):
            os.write(self._writable, b"\0")

    def is_set(self) -> bool:
        return self._requested

    def wait(self, timeout: float) -> bool:
        """Sleep until set or until ``timeout`` seconds pass; whether it was set. A signal whose
        handler sets the flag interrupts the sleep, which resumes (PEP 475) to find the pipe
        readable."""
        if not self._requested:
            select.select([self._readable], [], [], timeout)
        return self._requested


def stop_on_signals(signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> StopFlag:
    """A flag set by any of ``signals``."""
    stop = StopFlag()
    for signum in signals:
        signal.signal(signum, lambda *_: stop.set())
    return stop
