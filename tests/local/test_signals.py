"""Stop requests made from signal handlers (pipelines/local/signals.py)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

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
