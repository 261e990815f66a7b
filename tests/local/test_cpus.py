"""An instance type's vCPUs held as CPU affinity (pipelines/local/system/cpus.py)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading

import pytest

from pipelines.local.system import cpus

SEEN_BY_A_CHILD = "import os; print(len(os.sched_getaffinity(0)))"
MANY_CPUS = pytest.mark.skipif(len(cpus.MACHINE_CPUS) < 2, reason="holding to fewer CPUs needs two or more")


def test_a_machine_with_no_more_cpus_than_the_instance_has_vcpus_holds_nothing() -> None:
    every = len(cpus.MACHINE_CPUS)
    assert cpus.cpus_for(every) is None and cpus.cpus_for(every + 30) is None
    with cpus.held_to(every):
        assert os.sched_getaffinity(0) == set(cpus.MACHINE_CPUS)
    with cpus.held_to(None):
        assert os.sched_getaffinity(0) == set(cpus.MACHINE_CPUS)


@MANY_CPUS
def test_holds_take_the_machines_cpus_in_turn() -> None:
    """Two one-vCPU instances started one after the other run on different CPUs, and so on round."""
    taken = [cpus.cpus_for(1) for _ in range(2 * len(cpus.MACHINE_CPUS))]
    assert all(held is not None and len(held) == 1 for held in taken)
    first_round = {cpu for held in taken[: len(cpus.MACHINE_CPUS)] for cpu in held or ()}
    assert first_round == set(cpus.MACHINE_CPUS)


@MANY_CPUS
def test_a_process_started_while_held_keeps_the_held_cpus_and_the_thread_gets_its_own_back() -> None:
    with cpus.held_to(1):
        assert len(os.sched_getaffinity(0)) == 1
        child = subprocess.run(
            [sys.executable, "-c", SEEN_BY_A_CHILD], capture_output=True, text=True, check=True
        )
    assert child.stdout == "1\n"
    assert os.sched_getaffinity(0) == set(cpus.MACHINE_CPUS)


@MANY_CPUS
def test_a_hold_is_the_holding_threads_alone() -> None:
    """The server's other threads keep every CPU while one thread starts a held process."""
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with cpus.held_to(1):
            entered.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert entered.wait(10)
        assert os.sched_getaffinity(0) == set(cpus.MACHINE_CPUS)
    finally:
        release.set()
        holder.join(10)


def test_cpus_this_server_no_longer_has_hold_nothing_and_say_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(cpus, "MACHINE_CPUS", (4094, 4095))  # CPUs no machine here has
    cpus._warn_unheld.cache_clear()  # warned once per reason
    before = os.sched_getaffinity(0)
    with caplog.at_level(logging.WARNING, logger=cpus.__name__), cpus.held_to(1):
        assert os.sched_getaffinity(0) == before
    assert os.sched_getaffinity(0) == before
    assert "not their instance's vCPUs" in caplog.text
