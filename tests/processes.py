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
