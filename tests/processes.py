"""Whether a process is still running, as the tests that kill or orphan processes need to know."""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """True for a running process; gone or a zombie (exited, not reaped: an orphan's reaper may be
    slow or absent) counts as dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def running_with(argument: str) -> list[int]:
    """The running processes of this machine with `argument` among their command line's."""
    found = []
    for entry in Path("/proc").iterdir():
        with suppress(OSError):
            if entry.name.isdigit() and argument.encode() in (entry / "cmdline").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return [pid for pid in found if pid_alive(pid)]


def processes_with_environment(variable: str, value: str) -> list[int]:
    """The running processes of this machine started with `variable` set to `value`: how a test
    finds a confined job's process, whose own pid is that of a PID namespace of its own."""
    wanted = f"{variable}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        with suppress(OSError):
            if entry.name.isdigit() and wanted in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return [pid for pid in found if pid_alive(pid)]
