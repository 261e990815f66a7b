"""Whether a process is still running, as the tests that kill or orphan processes need to know."""

from __future__ import annotations

from pathlib import Path


def pid_alive(pid: int) -> bool:
    """True for a running process; gone or a zombie (exited, not reaped: an orphan's reaper may be
    slow or absent) counts as dead."""
    return process_state(pid) not in ("Z", "")


def process_state(pid: int) -> str:
    """R, S, T (stopped), Z...: the state /proc/<pid>/stat gives, "" once the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[0]


def parent_pid(pid: int) -> int:
    """The pid of a process's parent, 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def child_pids(pid: int) -> list[int]:
    """The live processes whose parent is `pid`."""
    return [int(entry.name) for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and parent_pid(int(entry.name)) == pid]


def frozen(pids: list[int]) -> bool:
    """Whether every process is stopped (T), or waits in the kernel (D) on a stopped child of its
    own, as a shell that vforked does until its child execs: it cannot run until the child does."""
    states = {pid: process_state(pid) for pid in pids}
    parents = {parent_pid(pid) for pid, state in states.items() if state == "T"}
    held = (state == "T" or (state == "D" and pid in parents) for pid, state in states.items())
    return bool(states) and all(held)


def processes_with(*needles: str) -> list[int]:
    """Pids of live processes whose command line and environment hold every needle between them: a
    confined job or model server is given its paths as /opt/ml/..., and only its HOME (in its own
    folder) and interpreter say whose it is; and its pid is that of a PID namespace of its own."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes() + b"\0" + (entry / "environ").read_bytes()
        except OSError:
            continue
        command = raw.replace(b"\0", b" ").decode("utf-8", "replace")
        if all(needle in command for needle in needles) and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found
