"""The model server watchdog (pipelines/local/hosting/recovery.py): it checks often while there is
something to watch, and sleeps until woken while there is not."""

from __future__ import annotations

import threading
import time

import pytest
from waiting import wait_until

from pipelines.local.hosting.recovery import WATCH_SECONDS, Watchdog


class Check:
    """A check that counts its calls and says whether there is anything to watch."""

    def __init__(self, watching: bool) -> None:
        self.watching = watching
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self) -> bool:
        with self.lock:
            self.calls += 1
        return self.watching


def test_with_servers_to_watch_it_checks_every_interval() -> None:
    check = Check(watching=True)
    watchdog = Watchdog(check, "test-watchdog")
    watchdog.start()
    time.sleep(10 * WATCH_SECONDS)
    watchdog.stop()
    assert check.calls >= 5


def test_with_nothing_to_watch_it_sleeps_until_a_server_starts() -> None:
    check = Check(watching=False)
    watchdog = Watchdog(check, "test-watchdog")
    watchdog.start()
    try:
        wait_until(lambda: check.calls == 1, 5, "the first check")
        time.sleep(10 * WATCH_SECONDS)
        assert check.calls == 1  # no check while nothing runs
        check.watching = True
        watchdog.wake()  # as Endpoints does once it has registered a server
        wait_until(lambda: check.calls >= 4, 5, "checks every interval again")
    finally:
        watchdog.stop()


def test_a_failing_check_is_logged_and_the_checks_go_on(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[float] = []

    def failing() -> bool:
        calls.append(time.monotonic())
        raise RuntimeError("a check that fails")

    watchdog = Watchdog(failing, "test-watchdog")
    watchdog.start()
    try:
        wait_until(lambda: len(calls) >= 3, 5, "checks after a failure")
    finally:
        watchdog.stop()
    failures = [r for r in caplog.records if r.getMessage() == "the model server watchdog's check failed"]
    assert len(failures) >= 3 and all(r.exc_info and r.exc_info[0] is RuntimeError for r in failures)


def test_stop_ends_a_sleeping_watchdog_at_once() -> None:
    watchdog = Watchdog(Check(watching=False), "test-watchdog")
    watchdog.start()
    time.sleep(0.1)
    began = time.monotonic()
    watchdog.stop()
    assert time.monotonic() - began < 1.0
