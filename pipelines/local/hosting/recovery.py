"""How local hosting watches its instances, and paces the replacement of one that died.

SageMaker health-checks an endpoint's instances and replaces one that fails. Locally one watchdog
thread serves every instance of an ``Endpoints``: every ``WATCH_SECONDS`` while any runs, it holds
each model server to its instance type's memory (as jobs are held: system/memory.py) and finds the serving
instances whose process ended, which ``Endpoints`` then replaces. A replacement that cannot start,
or an instance that dies within ``STEADY_SECONDS`` of passing /ping, is a sign that it will die
again (a model that outgrows its memory as it loads, a crash at its first request): the next
attempt waits, 1 s and then twice as long each time, up to a minute, so a broken model cannot keep
the machine busy starting servers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from pipelines.local.hosting.model_process import ModelServerProcess

log = logging.getLogger(__name__)

WATCH_SECONDS = 0.1  # as often as a job's memory is sampled (system/supervision.py)
FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 60.0
STEADY_SECONDS = 60.0  # an instance that served this long died of something other than starting


def first_delay(dead: ModelServerProcess, now: float) -> float:
    """How long to wait before replacing `dead`: not at all if it had served steadily, else one
    step longer than the delay it was itself started after."""
    if dead.ready_at is not None and now - dead.ready_at >= STEADY_SECONDS:
        return 0.0
    return next_delay(dead.started_after)


def next_delay(previous: float) -> float:
    """The delay after `previous` (0: none yet), doubling up to MAX_DELAY_SECONDS."""
    return FIRST_DELAY_SECONDS if previous <= 0 else min(previous * 2, MAX_DELAY_SECONDS)


class Watchdog:
    """One thread that calls `check` every WATCH_SECONDS while it has something to watch (`check`
    says whether it has), and otherwise sleeps until woken (`wake`: a server has started) or
    stopped: an idle local server wakes for nothing. A check that fails is logged, and the next
    one runs."""

    def __init__(self, check: Callable[[], bool], name: str) -> None:
        self._check = check
        self._stopped = False
        self._woken = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._woken.set()

    def stop(self) -> None:
        self._stopped = True
        self._woken.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stopped:
            try:
                watching = self._check()
            except Exception:
                log.exception("the model server watchdog's check failed")
                watching = True
            # A wake after this check is never lost: it comes after its server was registered,
            # and that server is seen by the next check, which the set event lets run.
            self._woken.wait(WATCH_SECONDS if watching else None)
            self._woken.clear()
