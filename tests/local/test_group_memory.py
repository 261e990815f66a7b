"""A process group's memory as a container's limit sees it (pipelines/local/system/memory.py):
pages that forked processes share are one allocation, not one per process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from waiting import wait_until

from pipelines.local.system import memory
from pipelines.local.system.memory import GroupMemory

MB = 1 << 20
SHARED_MB = 192
# A leader that touches SHARED_MB of memory, then forks two children that only read it: the three
# hold it once between them, though each one's RSS counts all of it.
FORKED_SHARERS = textwrap.dedent(
    f"""
    import os, sys, time
    block = bytearray({SHARED_MB * MB})
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    for _ in range(2):
        if os.fork() == 0:
            time.sleep(120)
            os._exit(0)
    print("ready", flush=True)
    time.sleep(120)
    """
)


@pytest.fixture
def sharers() -> Iterator[int]:
    """The process group of a leader and two children sharing SHARED_MB."""
    leader = subprocess.Popen(
        [sys.executable, "-c", FORKED_SHARERS], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert leader.stdout is not None and leader.stdout.readline() == "ready\n"
        yield leader.pid
    finally:
        os.killpg(leader.pid, signal.SIGKILL)
        leader.wait()


def test_memory_forked_processes_share_is_counted_once_against_a_limit(sharers: int) -> None:
    group = GroupMemory(sharers)
    wait_until(lambda: group.resident_bytes() > 3 * SHARED_MB * MB)  # each RSS counts the block
    assert not group.exceeds(2 * SHARED_MB * MB)  # held once between the three
    assert group.exceeds(SHARED_MB * MB // 2)
    assert SHARED_MB * MB <= group.peak_bytes < 2 * SHARED_MB * MB  # the shared measure, reported


def test_a_process_group_is_read_once_for_every_sampler(
    sharers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[list[str]] = []
    group_of = memory._group_of
    monkeypatch.setattr(memory, "_group_of", lambda pid: read[-1].append(pid) or group_of(pid))
    known = memory._KnownGroups()
    read.append([])
    first = known.members(sharers)
    read.append([])
    again = known.members(sharers)
    assert len(first) == 3 and again == first  # the leader and its two children
    assert str(os.getpid()) in read[0]  # the first sample read every process once
    assert not set(read[0]) & set(read[1])  # and the next one none of them again


def test_a_leader_read_before_it_made_its_session_is_still_in_its_group(sharers: int) -> None:
    known = memory._KnownGroups()
    known.members(sharers)
    known._groups[str(sharers)] = (os.getpgid(0), "")  # as read between its fork and its setsid
    assert str(sharers) in known.members(sharers)


def test_a_process_that_ended_is_forgotten() -> None:
    known = memory._KnownGroups()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        assert known.members(child.pid) == {str(child.pid)}
    finally:
        child.kill()
        child.wait()
    assert known.members(child.pid) == set()
    assert str(child.pid) not in known._groups  # a new process with its pid is read afresh


def test_a_table_not_listed_for_a_while_is_read_afresh(sharers: int) -> None:
    known = memory._KnownGroups()
    known.members(sharers)
    known._groups[str(os.getpid())] = (sharers, "")  # as if this pid had been another process's
    assert str(os.getpid()) in known.members(sharers)  # trusted within TRUSTED_SECONDS
    known._listed -= memory.TRUSTED_SECONDS + 1
    assert str(os.getpid()) not in known.members(sharers)
    assert known._groups[str(os.getpid())][0] == os.getpgid(0)
