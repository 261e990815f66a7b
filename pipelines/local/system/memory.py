"""Resident memory of supervised processes, read from /proc, for the limits AWS sets on them.

SageMaker runs a job in a container bounded by its instance's memory, Lambda an environment by its
MemorySize: what outgrows the bound is killed (SIGKILL, from the kernel's OOM killer). Here a
watchdog samples the resident memory of the processes in question and kills them over the bound.
Sampling sees memory as it is at each sample, so a spike shorter than the interval can pass.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
GIB = 1 << 30
JOB_PROCESSES = "the job's processes"
# How long the table of process groups is trusted between two listings of /proc. Samplers list it
# every 0.05-0.1 s; after a pause (no job, no model server) a pid may have ended and been given to
# another process, so the table is read afresh, as each sampler's own table was before.
TRUSTED_SECONDS = 0.5


@dataclass(frozen=True)
class MemoryLimit:
    """A bound on a process group's resident memory, with what it is called in the log."""

    limit_bytes: int
    name: str  # e.g. "the 4 GiB of ml.t3.medium"
    whose: str = JOB_PROCESSES  # what the group is, in the log line

    def exceeded_line(self, reached_bytes: int) -> str:
        """The log line of a group killed over the limit: the memory it reached, and the limit's."""
        return (
            f"[local-sagemaker] {self.whose} reached {reached_bytes / GIB:.2f} GiB of resident "
            f"memory, over {self.name}: killed with SIGKILL, as the kernel's OOM killer kills a "
            "container that outgrows its memory\n"
        )


class _KnownGroups:
    """The process group and PID namespace of every process on the machine, read once in each
    process's life (its stat file and its ns/pid link) and shared by every sampler: a job's first
    sample then reads the few processes started since the last one, not the stat of every process
    on the machine (about 150 here, 3-9 ms of the server's CPU beside the job it watches)."""

    def __init__(self) -> None:
        self._groups: dict[str, tuple[int, str]] = {}
        self._listed = 0.0  # when /proc was last listed (time.monotonic())
        self._lock = threading.Lock()

    def members(self, pgid: int, namespace: str = "") -> set[str]:
        """The running processes of group `pgid` and, when given, of the PID namespace `namespace`
        (a process that left the group, in a session of its own, is still in it). The group's
        leader is one while it runs, whatever was read of it: a session's leader cannot change
        group, and it may have been read as it was forked, before it made its session (a process
        forked from it is read with its group)."""
        running = {pid for pid in os.listdir("/proc") if pid.isdigit()}
        with self._lock:
            now = time.monotonic()
            if now - self._listed > TRUSTED_SECONDS:  # a pid may have ended and been used again
                self._groups.clear()
            self._listed = now
            for ended in self._groups.keys() - running:  # forgotten, in case the pid is used again
                del self._groups[ended]
            new = running - self._groups.keys()
        read = {pid: (_group_of(pid), _namespace_of(pid)) for pid in new}
        with self._lock:
            self._groups.update(read)
            members = {pid for pid, (group, space) in self._groups.items()
                       if group == pgid or (namespace and space == namespace)}
        leader = str(pgid)
        return members | {leader} if leader in running else members


_KNOWN_GROUPS = _KnownGroups()


class GroupMemory:
    """The memory of the processes of one process group, as a container's memory limit sees it.

    Each sample sums the members' resident memory (RSS), which is cheap: a listing of /proc (a
    process's group is read once, _KnownGroups) and one small read per member. RSS counts the pages
    forked processes share (a model server's pre-forked workers, a job's worker pool) once for
    each, so only when that sum is over a limit is the group measured as the kernel charges it,
    each shared page split among its sharers (Pss, from /proc/<pid>/smaps_rollup: a walk of the
    process's memory, about 1 ms per 500 MB, too slow to take every sample), and the limit is judged
    on that.
    """

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self.peak_bytes = 0
        self._members: set[str] = set()
        self._namespace = ""  # the PID namespace its leader made for its children, once it has

    def resident_bytes(self) -> int:
        """The group's summed RSS now, with that of every process in the PID namespace its leader
        made, if it made one (system/isolation.py's OWN_PROCESSES: a container's memory limit
        holds all of its processes); the highest seen is kept in `peak_bytes`."""
        total = sum(_resident_bytes(pid) for pid in self._refresh_members())
        self.peak_bytes = max(self.peak_bytes, total)
        return total

    def processes(self) -> set[int]:
        """The group's running processes now, with those of the PID namespace its leader made."""
        return {int(pid) for pid in self._refresh_members()}

    def _refresh_members(self) -> set[str]:
        self._namespace = self._namespace or _namespace_made_by(self.pgid)
        self._members = _KNOWN_GROUPS.members(self.pgid, self._namespace)
        return self._members

    def exceeds(self, limit_bytes: int) -> bool:
        """Whether the group holds more than `limit_bytes`; `peak_bytes` then says how much."""
        if self.resident_bytes() <= limit_bytes:
            return False
        proportional = sum(_proportional_bytes(pid) for pid in self._members)
        if proportional <= limit_bytes:
            return False
        self.peak_bytes = proportional
        return True


def peak_resident_bytes(pid: int) -> int:
    """A process's peak resident memory (VmHWM), 0 once it has ended."""
    return _kilobytes_field(f"/proc/{pid}/status", b"VmHWM:")


def process_state(pid: int | str) -> str:
    """A process's state letter (R, S, T for stopped, Z...); "" once it has ended."""
    fields = _stat_fields(pid)
    return fields[0].decode() if fields else ""


def parent_pid(pid: int | str) -> int:
    """A process's parent's pid; 0 once it has ended."""
    fields = _stat_fields(pid)
    try:
        return int(fields[1])
    except (ValueError, IndexError):
        return 0


def _group_of(pid: str) -> int:
    fields = _stat_fields(pid)
    try:
        return int(fields[2])
    except (ValueError, IndexError):
        return -1


def _stat_fields(pid: int | str) -> list[bytes]:
    """/proc/<pid>/stat after the command: state, ppid, pgrp...; empty once the process has ended."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()
    except OSError:
        return []


def _namespace_of(pid: str, link: str = "pid") -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/{link}")
    except OSError:
        return ""


def _namespace_made_by(pid: int) -> str:
    """The PID namespace `pid` starts its children in, when it is not the one it was started in
    (`unshare --pid` has made one); "" otherwise, or before it has."""
    made = _namespace_of(str(pid), "pid_for_children")
    return made if made and made != _namespace_of(str(pid)) else ""


def _resident_bytes(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return 0


def _proportional_bytes(pid: str) -> int:
    """A process's share of the memory it maps (Pss): pages it shares count a fraction each."""
    return _kilobytes_field(f"/proc/{pid}/smaps_rollup", b"Pss:")


def _kilobytes_field(path: str, name: bytes) -> int:
    """The `name: N kB` line of a /proc file, in bytes; 0 once the process has ended."""
    try:
        with open(path, "rb") as fields:
            for line in fields:
                if line.startswith(name):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
