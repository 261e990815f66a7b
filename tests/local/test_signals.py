"""Stop requests made from signal handlers (pipelines/local/system/signals.py)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.local.system.signals import StopFlag, stop_on_signals


@pytest.fixture
def restore_sigusr1() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGUSR1)
    yield
    signal.signal(signal.SIGUSR1, previous)


def test_a_signal_sets_the_flag_and_ends_a_wait(restore_sigusr1: None) -> None:
    stop = stop_on_signals((signal.SIGUSR1,))
    assert not stop.is_set()
    os.kill(os.getpid(), signal.SIGUSR1)
    began = time.monotonic()
    assert stop.wait(10.0)
    assert time.monotonic() - began < 5.0  # ended by the signal, not by the timeout


def test_wait_without_a_request_returns_false_after_the_timeout() -> None:
    stop = StopFlag()
    began = time.monotonic()
    assert stop.wait(0.2) is False
    assert time.monotonic() - began >= 0.2


def test_a_signal_during_a_wait_ends_it_at_once(restore_sigusr1: None) -> None:
    stop = stop_on_signals((signal.SIGUSR1,))
    timer = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGUSR1))
    began = time.monotonic()
    timer.start()
    assert stop.wait(10.0)
    assert time.monotonic() - began < 2.0  # ended by the signal, not by the timeout
    timer.join()


def test_a_request_from_another_thread_ends_every_wait_and_every_later_one() -> None:
    stop = StopFlag()
    ended: list[bool] = []
    waiters = [threading.Thread(target=lambda: ended.append(stop.wait(10.0))) for _ in range(3)]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.1)
    began = time.monotonic()
    stop.set()
    for waiter in waiters:
        waiter.join()
    assert ended == [True, True, True] and time.monotonic() - began < 2.0
    assert stop.wait(10.0) and stop.wait(0.0)  # set once, set for good


def test_many_requests_never_block_the_one_making_them() -> None:
    """A handler must return however many signals came before: the pipe filling up is no error."""
    stop = StopFlag()
    for _ in range(100_000):  # more bytes than a pipe holds (64 KiB on Linux)
        stop.set()
    assert stop.wait(0.0)


def test_a_wait_sleeps_until_it_ends_without_waking_in_between() -> None:
    """A server, a model server and each of its workers wait on a flag all their lives: a wait
    that woke every few milliseconds to look kept this machine's CPUs from resting (a sleep of
    0.05 s at a time: ten wakeups in this wait)."""
    stop = StopFlag()
    switches: list[int] = []

    def wait() -> None:
        status = Path(f"/proc/self/task/{threading.get_native_id()}/status")
        before = voluntary_switches(status)
        stop.wait(0.5)
        switches.append(voluntary_switches(status) - before)

    waiter = threading.Thread(target=wait)
    waiter.start()
    waiter.join()
    assert switches[0] <= 2


def voluntary_switches(status: Path) -> int:
    """How often the thread gave up its CPU to sleep or wait, as the kernel counts it."""
    lines = status.read_text().splitlines()
    return int(next(line for line in lines if line.startswith("voluntary_ctxt_switches")).split()[1])
