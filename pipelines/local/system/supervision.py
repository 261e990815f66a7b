"""Child processes of the local SageMaker server: started, watched, stopped, never left behind.

Job containers and model servers are both supervised here. They are children of the server. If
the server is killed (even with SIGKILL) Linux sends each child a signal, so no orphan keeps a
port, a GPU or a job directory. The signal is tied to the thread that started the child, so
callers start children from threads that live as long as the child's purpose (a job's runner
thread, the hosting spawner thread).
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from pipelines.local.system.cpus import held_to
from pipelines.local.system.memory import GroupMemory, MemoryLimit, parent_pid, process_state

PR_SET_PDEATHSIG = 1
OUTPUT_TAIL_LINES = 20  # the end of a job's output kept for what it failed on
KILL_GRACE_SECONDS = 5.0
POLL_SECONDS = 0.1  # also how often a group's memory is sampled against its limit
FREEZE_SECONDS = 1.0  # how long a freeze waits for the processes it stopped to be stopped
STOPPED_STATES = ("T", "t", "Z", "X", "")  # stopped, traced, or ended (a zombie, gone)
# util-linux's, on every Debian and Ubuntu system (util-linux is an essential package).
SETPRIV = shutil.which("setpriv") if sys.platform.startswith("linux") else None


def interpreter_environment(python_bin: Path) -> dict[str, str]:
    """What a child needs of this machine's environment to run at all, and nothing else: a PATH on
    which `python` is the one in `python_bin` (the child's own environment, jobs/image_python.py),
    as an image's own is on its PATH, and LD_LIBRARY_PATH where this machine's Python needs one."""
    path = os.pathsep.join([str(python_bin), os.environ.get("PATH", os.defpath)])
    return {"PATH": path, **library_path()}


def library_path() -> dict[str, str]:
    """LD_LIBRARY_PATH, where this machine's interpreters need one to start."""
    if "LD_LIBRARY_PATH" in os.environ:
        return {"LD_LIBRARY_PATH": os.environ["LD_LIBRARY_PATH"]}
    return {}


def set_parent_death_signal(signum: signal.Signals, parent: int) -> None:
    """In the child: ask Linux for `signum` when the parent dies (a fork does not inherit it)."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signum)


@dataclass(frozen=True)
class DyingWithParent:
    """Popen's `args` and `preexec_fn` for a child that Linux signals when its parent dies."""

    argv: list[str]
    preexec_fn: Callable[[], None] | None


def dying_with_parent(
    argv: list[str], env: Mapping[str, str], cwd: Path | str,
    signum: signal.Signals = signal.SIGTERM,
) -> DyingWithParent:
    """Start `argv` through util-linux's setpriv, which sets the parent-death signal and execs it.

    A preexec_fn would do the same, but it forces Popen to fork the whole server instead of using
    vfork: about 16 ms a start for a server of 200 MB, against 0.3 ms, on every job of a pipeline's
    critical path. A preexec_fn remains the fallback where setpriv is missing. A program that
    cannot be run raises here what Popen would raise (FileNotFoundError for a missing one,
    PermissionError for a directory or a file without execute permission), not setpriv's exit
    code 127 or 126."""
    if not sys.platform.startswith("linux"):
        return DyingWithParent(list(argv), None)
    if SETPRIV is None:
        parent = os.getpid()
        return DyingWithParent(list(argv), lambda: set_parent_death_signal(signum, parent))
    check_runnable(argv[0], env, cwd)
    return DyingWithParent([SETPRIV, f"--pdeathsig={signum.name}", "--", *argv], None)


def check_runnable(program: str, env: Mapping[str, str], cwd: Path | str) -> None:
    """Raise the OSError that exec would give for `program`, looked up as Popen looks it up."""
    if os.sep not in program:
        if shutil.which(program, path=os.pathsep.join(os.get_exec_path(dict(env)))) is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        return
    path = Path(cwd, program)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    if path.is_dir() or not os.access(path, os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)


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


def signal_group(pgid: int, signum: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def freeze(processes: Callable[[], set[int]]) -> set[int]:
    """Stop (SIGSTOP) every process `processes` lists, listing again until a listing finds none
    not yet stopped (a child forked before its parent was stopped): Lambda's freeze of an execution
    environment between invocations. The stopped processes, for `thaw`; a stopped process cannot
    fork, so no other one joins them while they are stopped."""
    stopped: set[int] = set()
    while fresh := processes() - stopped:
        for pid in fresh:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        stopped |= fresh
        deadline = time.monotonic() + FREEZE_SECONDS  # a signal is delivered, not yet taken
        while not _held(fresh, stopped) and time.monotonic() < deadline:
            time.sleep(0.0005)
    return stopped


def _held(waited: set[int], stopped: set[int]) -> bool:
    """Whether every process of `waited` is stopped or ended, or waits in the kernel (D) on a child
    among `stopped` that is stopped: a shell that vforked runs again only once its child has exec'd
    or exited, and its pending SIGSTOP stops it as it does (it never shows T before)."""
    states = {pid: process_state(pid) for pid in stopped}
    parents = {parent_pid(pid) for pid, state in states.items() if state in ("T", "t")}
    return all(states[pid] in STOPPED_STATES or (states[pid] == "D" and pid in parents) for pid in waited)


def thaw(stopped: set[int]) -> None:
    """Let the processes `freeze` stopped run again (SIGCONT)."""
    for pid in stopped:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def stop_group(process: subprocess.Popen[Any], grace: float) -> None:
    """Stop a process that leads a group of its own (start_in_own_group): SIGTERM to the group, so
    it reaches a command that `unshare` runs in a PID namespace of its own (system/isolation.py),
    since `unshare` itself ignores SIGTERM while it waits; then, once the process has ended or
    `grace` seconds have passed, SIGKILL to what is left of the group. Idempotent."""
    signal_group(process.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        process.wait(grace)
    signal_group(process.pid, signal.SIGKILL)
    process.wait()


@dataclass(frozen=True)
class ProcessExit:
    """How a supervised command ended."""

    returncode: int
    stopped_by: str  # "", "timeout", "cancel" or "memory" (killed over its memory limit)
    output_tail: list[str]  # its last lines, stdout and stderr as it wrote them


class LineStream(Protocol):
    """Where a process's lines go: a text file, or anything that writes them on (log_events.py)."""

    def write(self, text: str, /) -> object: ...

    def flush(self) -> object: ...


class LogSink:
    """Copies lines to every stream as they come, one whole line at a time, until closed."""

    def __init__(self, *streams: LineStream) -> None:
        self._streams = streams
        self._lock = threading.Lock()
        self._closed = False

    def write(self, line: str) -> None:
        with self._lock:
            for stream in () if self._closed else self._streams:
                stream.write(line)
                stream.flush()

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def pump(self, source: IO[str], tail: deque[str] | None) -> None:
        for line in source:
            self.write(line if line.endswith("\n") else line + "\n")
            if tail is not None:
                tail.append(line.rstrip("\n"))


def start_in_own_group(
    launch: DyingWithParent, env: Mapping[str, str], cwd: Path | str, stderr: int, vcpus: int | None = None
) -> subprocess.Popen[str]:
    """Start `launch` in a session (so a process group) of its own, no stdin, its output read
    as UTF-8 text from a pipe, held to `vcpus` of this machine's CPUs (system/cpus.py; none held
    for None); `stderr` is subprocess.PIPE for a pipe of its own, or subprocess.STDOUT for the same
    pipe."""
    with held_to(vcpus):
        return subprocess.Popen(
            launch.argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
            preexec_fn=launch.preexec_fn,
        )


def run_to_end(
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    streams: tuple[LineStream, ...],
    group_record: Path,
    timeout: float | None,
    cancel: threading.Event | None,
    grace: float = KILL_GRACE_SECONDS,
    memory: MemoryLimit | None = None,
    vcpus: int | None = None,
) -> ProcessExit:
    """Run a command in its own process group, on `vcpus` of this machine's CPUs, streaming its
    output line by line to `streams`, until it exits, its `timeout` passes or `cancel` is set (then
    SIGTERM, and SIGKILL after `grace` seconds), or its resident memory goes over `memory` (then
    SIGKILL at once, and the status -9 Popen gives a process SIGKILL ended, whatever the process
    managed to exit with meanwhile); its whole group dies
    with it. Its stdout and stderr are one pipe, read by one thread: its lines keep the order it
    wrote them in (two pipes read by two threads let a traceback land before the lines printed
    just ahead of it)."""
    sink = LogSink(*streams)
    try:
        process = start_in_own_group(
            dying_with_parent(argv, env, cwd, signal.SIGKILL), env, cwd, subprocess.STDOUT, vcpus
        )
    except OSError as exc:
        sink.write(f"cannot start {argv[0]}: {exc}\n")
        return ProcessExit(127, "", [f"cannot start {argv[0]}: {exc}"])
    # Its children do not get the parent-death signal: the group is recorded so that a
    # restarted server can kill what a crash left running (kill_recorded_groups).
    group_record.write_text(str(process.pid))
    tail: deque[str] = deque(maxlen=OUTPUT_TAIL_LINES)
    reader = threading.Thread(target=sink.pump, args=(process.stdout, tail), daemon=True)
    reader.start()
    stopped_by = _wait(process, timeout, cancel, sink, grace, memory)
    reader.join(timeout=KILL_GRACE_SECONDS)  # bounded: a process that left the group may hold the pipe
    sink.close()
    group_record.unlink(missing_ok=True)
    returncode = -signal.SIGKILL if stopped_by == "memory" else process.returncode
    return ProcessExit(returncode, stopped_by, list(tail))


def _wait(
    process: subprocess.Popen[str],
    timeout: float | None,
    cancel: threading.Event | None,
    sink: LogSink,
    grace: float,
    memory: MemoryLimit | None,
) -> str:
    """Wait for the process; stop its group on timeout or cancel, kill it over its memory limit.
    Returns what stopped it."""
    deadline = None if timeout is None else time.monotonic() + timeout
    # A blocking wait on its own thread notices the exit at once; Popen.wait(timeout) polls, and
    # its sleeps grow to 50 ms, which every job on a pipeline's critical path would pay.
    waiter = threading.Thread(target=process.wait, name=f"wait-{process.pid}", daemon=True)
    waiter.start()
    group = GroupMemory(process.pid)
    stopped_by = ""
    while not stopped_by:
        waiter.join(POLL_SECONDS)
        if not waiter.is_alive():
            break
        if cancel is not None and cancel.is_set():
            stopped_by = "cancel"
        elif deadline is not None and time.monotonic() >= deadline:
            stopped_by = "timeout"
        elif memory is not None and group.exceeds(memory.limit_bytes):
            stopped_by = "memory"
    if stopped_by == "memory" and memory is not None:
        signal_group(process.pid, signal.SIGKILL)
        sink.write(memory.exceeded_line(group.peak_bytes))
    elif stopped_by:
        sink.write(f"[local-sagemaker] stopping the job ({stopped_by})\n")
        stop_group(process, grace)
        return stopped_by
    signal_group(process.pid, signal.SIGKILL)  # a container's leftovers die with it
    process.wait()
    return stopped_by
