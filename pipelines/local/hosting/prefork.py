"""Pre-forked workers: one copy of a loaded server per core, as gunicorn runs SageMaker's images.

Why fork: Python threads share one interpreter lock, so a threaded server uses one core however
many it has. Forking *after* the model is loaded gives every worker the model without loading it
again (the pages are shared copy-on-write) and lets all of them accept on the one listening socket.

Whichever worker wakes first takes a new connection, so without help one worker can end up with
most keep-alive connections (a client pool opens them in one burst and then keeps them) while the
other idles: ``ConnectionCounts`` lets a worker holding more connections than the least loaded one
step back for a moment, so the connection goes to a worker with fewer.

The parent serves nothing. It restarts a worker that dies (unless workers keep dying, which means
the model or the machine is broken: then it stops and exits 1 so hosting sees a failed server),
and on SIGTERM/SIGINT it passes the signal on and waits while each worker drains its own requests.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable

from pipelines.local.system.signals import STOP_SIGNALS, StopFlag, stop_on_signals
from pipelines.local.system.supervision import set_parent_death_signal

WORKERS_VARIABLE = "SAGEMAKER_MODEL_SERVER_WORKERS"  # the variable SageMaker's serving images read
CHECK_SECONDS = 0.5
RESTART_WINDOW_SECONDS = 10.0  # more deaths than workers inside this window: give up


def worker_count(environ: dict[str, str] | None = None) -> int:
    """$SAGEMAKER_MODEL_SERVER_WORKERS when set, else one worker per available core."""
    value = (os.environ if environ is None else environ).get(WORKERS_VARIABLE, "").strip()
    if not value:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{WORKERS_VARIABLE} must be a whole number of at least 1, not {value!r}")
    return int(value)


class ConnectionCounts:
    """Open connections per worker, in memory shared by every worker (one slot each).

    Only a worker writes its own slot (under its own lock: it has many threads); the others only
    read it, and an aligned 8-byte read is atomic, so no lock spans processes."""

    def __init__(self, workers: int) -> None:
        self._memory = mmap.mmap(-1, 8 * workers)
        self._counts = memoryview(self._memory).cast("q")
        self._slot = 0
        self._lock = threading.Lock()

    def claim(self, slot: int) -> None:
        """In a newly forked worker: take over ``slot`` (a replaced worker's connections died
        with it)."""
        self._slot = slot
        self._counts[slot] = 0

    def busier_than_least(self) -> bool:
        return self._counts[self._slot] > min(self._counts)

    def opened(self) -> None:
        with self._lock:
            self._counts[self._slot] += 1

    def closed(self) -> None:
        with self._lock:
            self._counts[self._slot] -= 1


def serve_forked(serve: Callable[[int, StopFlag], None], workers: int, stop: StopFlag) -> int:
    """Run ``serve(slot, stop)`` in ``workers`` forked children until ``stop`` is set (by the stop
    signals); return an exit code. ``slot`` (0 to workers - 1) is the worker's place; a
    replacement inherits it.

    Stop signals are blocked around each fork so a signal can never reach a child before the child
    has its own handler; the child unblocks them once its own ``stop`` is wired to them."""
    parent = os.getpid()
    children = {_fork_worker(serve, slot, parent): slot for slot in range(workers)}
    deaths: deque[float] = deque()
    while not stop.wait(CHECK_SECONDS):
        for pid, status in _reap(children):
            code = os.waitstatus_to_exitcode(status)
            what = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
            sys.stderr.write(f"model server: worker {pid} {what}\n")
            slot = children.pop(pid)
            deaths.append(time.monotonic())
            while deaths[0] < time.monotonic() - RESTART_WINDOW_SECONDS:
                deaths.popleft()
            if len(deaths) > workers:
                sys.stderr.write("model server: workers keep dying; stopping\n")
                stop.set()
                break
            children[_fork_worker(serve, slot, parent)] = slot
    for pid in children:
        _signal(pid, signal.SIGTERM)
    for pid in children:
        _wait(pid)
    return 1 if len(deaths) > workers else 0


def _fork_worker(serve: Callable[[int, StopFlag], None], slot: int, parent: int) -> int:
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    pid = os.fork()
    if pid:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        return pid
    code = 1
    try:
        stop = stop_on_signals()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        set_parent_death_signal(signal.SIGTERM, parent)  # a SIGKILLed parent leaves no worker behind
        serve(slot, stop)
        code = 0
    except BaseException:
        traceback.print_exc(file=sys.stderr)
    finally:
        sys.stderr.flush()
        os._exit(code)  # never return into the parent's code path


def _reap(children: dict[int, int]) -> list[tuple[int, int]]:
    """The workers that have exited (pid, wait status), without blocking; they stay in
    ``children`` so the caller can find their slots."""
    dead = []
    for pid in children:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            dead.append((pid, status))
    return dead


def _signal(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _wait(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
