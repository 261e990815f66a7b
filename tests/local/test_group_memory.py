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
