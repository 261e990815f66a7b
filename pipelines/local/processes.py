"""Child processes that never outlive the local SageMaker server.

Model servers and job containers are children of the server. If the server is killed (even with
SIGKILL) Linux sends each child a signal, so no orphan keeps a port, a GPU or a job directory.
The signal is tied to the thread that started the child, so callers start children from threads
that live as long as the child's purpose (a job's runner thread, the hosting spawner thread).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

PR_SET_PDEATHSIG = 1


def set_parent_death_signal(signum: signal.Signals, parent: int) -> None:
    """In the child: ask Linux for `signum` when the parent dies (a fork does not inherit it)."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signum)


def die_with_parent(signum: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A preexec_fn asking Linux to send `signum` to the child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()
    return lambda: set_parent_death_signal(signum, parent)


def kill_recorded_groups(root: Path, marker: str = "pgid") -> int:
    """SIGKILL every process group recorded in a `marker` file below root; return how many.

    A job's own children do not get the parent-death signal, so after a crash the restarted
    server kills whole groups it had recorded, then forgets them."""
    killed = 0
    for record in root.rglob(marker):
        try:
            os.killpg(int(record.read_text()), signal.SIGKILL)
            killed += 1
        except (ValueError, ProcessLookupError, PermissionError):
            pass
        record.unlink(missing_ok=True)
    return killed
