"""Whether a process is still running, as the tests that kill or orphan processes need to know."""

from __future__ import annotations

from pathlib import Path


def pid_alive(pid: int) -> bool:
    """True for a running process; gone or a zombie (exited, not reaped: an orphan's reaper may be
    slow or absent) counts as dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
