"""Child processes started by the server's supervision: they die with it, and a missing program
is reported as Popen reports it (pipelines/local/system/supervision.py)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from processes import child_pids, pid_alive, process_state
from waiting import wait_until

from pipelines.local.system import supervision

REPO_ROOT = Path(__file__).resolve().parents[2]

# Runs a sleeper through run_to_end, as a job runner thread does, and prints the sleeper's pid.
PARENT = textwrap.dedent(
    """
    import os, sys, threading, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from pipelines.local.system import supervision
    if sys.argv[3] == "preexec_fn":
        supervision.SETPRIV = None
    work = Path(sys.argv[2])
    sleeper = [sys.executable, "-c", "import os, time; print(os.getpid(), flush=True); time.sleep(120)"]
    out = open(work / "child.out", "w")
    threading.Thread(
        target=supervision.run_to_end,
        args=(sleeper, dict(os.environ), work, (out,), work / "pgid", None, None),
    ).start()
    time.sleep(120)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
@pytest.mark.parametrize("way", ["setpriv", "preexec_fn"])
def test_a_job_process_dies_when_the_server_is_killed(tmp_path: Path, way: str) -> None:
    if way == "setpriv" and supervision.SETPRIV is None:
        pytest.skip("no setpriv on this machine")
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script), str(REPO_ROOT), str(tmp_path), way])
    child_out = tmp_path / "child.out"
    child = 0
    try:
        wait_until(lambda: child_out.is_file() and child_out.read_text().strip(), 30.0, "the job")
        child = int(child_out.read_text())
        assert pid_alive(child)
        parent.kill()  # SIGKILL: the parent runs no clean-up at all
        parent.wait(10)
        wait_until(lambda: not pid_alive(child), 10.0, "the job to die with its parent")
    finally:
        parent.kill()
        parent.wait(10)
        if child and pid_alive(child):
            os.kill(child, signal.SIGKILL)


@pytest.mark.parametrize("program", ["no-such-program-anywhere", "./no-such-script.sh"])
def test_a_missing_program_is_reported_as_popen_reports_it(tmp_path: Path, program: str) -> None:
    log = io.StringIO()
    finish = supervision.run_to_end(
        [program], dict(os.environ), tmp_path, (log,), tmp_path / "pgid", None, None
    )
    assert finish.returncode == 127
    assert finish.output_tail == [f"cannot start {program}: [Errno 2] No such file or directory: "
                                  f"'{program}'"]
    assert "setpriv" not in log.getvalue()
    assert not (tmp_path / "pgid").exists()


@pytest.mark.parametrize("kind", ["directory", "file without execute permission"])
def test_a_program_that_cannot_be_executed_is_reported_as_popen_reports_it(
    tmp_path: Path, kind: str
) -> None:
    target = tmp_path / "program"
    if kind == "directory":
        target.mkdir()
    else:
        target.write_text("#!/bin/sh\necho ran\n")
        target.chmod(0o644)
    with pytest.raises(PermissionError) as by_popen:
        subprocess.Popen(["./program"], cwd=tmp_path)
    log = io.StringIO()
    finish = supervision.run_to_end(
        ["./program"], dict(os.environ), tmp_path, (log,), tmp_path / "pgid", None, None
    )
    assert finish.returncode == 127
    assert finish.output_tail == [f"cannot start ./program: {by_popen.value}"]
    assert "setpriv" not in log.getvalue()


def test_freeze_lists_again_until_it_finds_no_process_it_has_not_stopped_and_thaw_lets_them_run() -> None:
    """A process forked after one listing, before its parent was stopped, is caught by the next."""
    sleepers = [subprocess.Popen(["sleep", "30"]) for _ in range(2)]
    listings = iter([{sleepers[0].pid}, {sleepers[0].pid, sleepers[1].pid}])
    try:
        stopped = supervision.freeze(lambda: next(listings, {sleepers[0].pid, sleepers[1].pid}))
        assert stopped == {sleeper.pid for sleeper in sleepers}
        assert [process_state(sleeper.pid) for sleeper in sleepers] == ["T", "T"]
        supervision.thaw(stopped)
        running = [sleeper.pid for sleeper in sleepers]
        wait_until(lambda: "T" not in map(process_state, running), 10.0, "the sleepers to run again")
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()



# A parent that spawns through vfork (glibc's posix_spawn) and waits in the kernel (state D) while its
# child, before it execs, blocks opening a FIFO nobody writes to.
VFORK_PARENT = (
    "import os, sys\n"
    "blocking_open = (os.POSIX_SPAWN_OPEN, 3, sys.argv[1], os.O_RDONLY, 0)\n"
    "os.posix_spawn('/bin/true', ['true'], {}, file_actions=[blocking_open])\n"
)


def test_freeze_takes_a_parent_waiting_on_its_stopped_vfork_child_as_frozen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handler's shell that vforked is in D, not T, until its child execs: once the child is stopped
    the parent cannot run (and its pending SIGSTOP stops it as it returns), so freeze does not wait
    for it to show T, which it would until its deadline."""
    monkeypatch.setattr(supervision, "FREEZE_SECONDS", 600.0)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    parent = subprocess.Popen([sys.executable, "-c", VFORK_PARENT, str(fifo)])
    children: list[int] = []
    try:
        children = wait_until(lambda: child_pids(parent.pid), 10.0, "the vfork child")
        wait_until(lambda: process_state(parent.pid) == "D", 10.0, "the parent to wait for its child")
        frozen: list[set[int]] = []
        listed = {parent.pid, *children}
        freezing = threading.Thread(
            target=lambda: frozen.append(supervision.freeze(lambda: listed)), daemon=True
        )
        freezing.start()
        freezing.join(60.0)
        assert frozen == [listed], "freeze still waiting for the vfork parent to show T"
        assert (process_state(parent.pid), [process_state(child) for child in children]) == ("D", ["T"])
    finally:
        for pid in (*children, parent.pid):
            os.kill(pid, signal.SIGKILL)
        parent.wait()


def test_stdout_and_stderr_reach_the_log_in_the_order_they_were_written(tmp_path: Path) -> None:
    """A job's log is its lines as it wrote them, whichever stream each went to: a traceback
    (stderr) comes after the lines printed (stdout) just before it."""
    alternating = (
        "import sys\n"
        "for i in range(300):\n"
        "    stream = sys.stderr if i % 2 else sys.stdout\n"
        "    print(f'line {i}', file=stream, flush=True)\n"
    )
    log = io.StringIO()
    finish = supervision.run_to_end(
        [sys.executable, "-c", alternating], dict(os.environ), tmp_path, (log,), tmp_path / "pgid", None, None
    )
    assert finish.returncode == 0
    assert log.getvalue().splitlines() == [f"line {i}" for i in range(300)]
    assert finish.output_tail == [f"line {i}" for i in range(280, 300)]
