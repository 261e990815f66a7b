"""Whether this machine can confine a job, found by trying, and the reason when not."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import processes_with

from pipelines.local.system import isolation
from pipelines.local.system.interpreters import installation


@pytest.fixture(autouse=True)
def fresh_probe() -> Iterator[None]:
    probes = (isolation.isolation_unavailable, isolation.read_only_tree_unavailable,
              isolation.own_processes_unavailable)
    for probe in probes:
        probe.cache_clear()
    yield
    for probe in probes:
        probe.cache_clear()


@pytest.mark.parametrize(
    ("found", "reason"),
    [
        (None, "util-linux's unshare is not installed"),
        (
            "/bin/false",
            "`unshare --user --map-root-user --mount --net` cannot make namespaces and mounts here",
        ),
    ],
)
def test_a_machine_that_cannot_isolate_says_why(
    monkeypatch: pytest.MonkeyPatch, found: str | None, reason: str
) -> None:
    monkeypatch.setattr(isolation.shutil, "which", lambda name: found)
    assert isolation.isolation_unavailable().startswith(reason)


def test_a_machine_that_cannot_make_mounts_read_only_recursively_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if isolation.isolation_unavailable():
        pytest.skip("this kernel does not let users create namespaces")
    monkeypatch.setattr(isolation, "READ_ONLY_TREE", "")  # as where mount_setattr(2) sets nothing
    assert isolation.read_only_tree_unavailable() == (
        "mounts cannot be made read-only recursively here (a mount inside stayed writable)"
    )


def test_a_confined_command_runs_through_unshare_without_root(tmp_path: Path) -> None:
    if isolation.isolation_unavailable():
        pytest.skip("this kernel does not let users create namespaces")
    command = isolation.confined(["python3", "step.py"], tmp_path, None, network=False)
    assert command[0].endswith("unshare")
    assert command[1:6] == ["--user", "--map-root-user", "--mount", "--net", "--"]
    assert command[-3:] == ["confined", "python3", "step.py"]


def test_nothing_to_confine_with_leaves_the_command_as_it_is(tmp_path: Path) -> None:
    assert isolation.confined(["python3", "step.py"], tmp_path, None) == ["python3", "step.py"]
    assert not (tmp_path / isolation.MOUNT_TABLE).exists()


def test_the_mount_table_escapes_what_fstab_would_split_on(tmp_path: Path) -> None:
    if isolation.isolation_unavailable():
        pytest.skip("this kernel does not let users create namespaces")
    own = tmp_path / "a job\twith space"
    own.mkdir()
    isolation.confined(["true"], own, isolation.Confinement((), (tmp_path,)))
    table = (own / isolation.MOUNT_TABLE).read_text().splitlines()
    escaped = str(own).replace(" ", "\\040").replace("\t", "\\011")
    assert table == [f"hidden {tmp_path} tmpfs mode=0700,size=1m,X-mount.mkdir 0 0",
                     f"/proc/self/fd/3 {escaped} none bind,X-mount.mkdir 0 0"]


def test_without_namespaces_a_command_runs_unconfined_unless_it_needs_no_network(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(isolation, "isolation_unavailable", lambda: "no user namespaces here")
    hiding = isolation.Confinement((), (Path("/state"),))
    assert isolation.confined(["python3", "step.py"], Path("/jobs/a"), hiding) == ["python3", "step.py"]
    assert "no user namespaces here" in caplog.text
    with pytest.raises(RuntimeError, match="cannot take a process off the network: no user namespaces here"):
        isolation.confined(["python3", "step.py"], Path("/jobs/a"), None, network=False)


LEAVE_RUNNING = """
import os, subprocess, sys
subprocess.Popen(["sleep", sys.argv[1]], start_new_session=True)  # a session and group of its own
with open("/proc/1/cmdline", "rb") as first:  # its own /proc: the namespace's first process
    print(first.read().split(b"\\0")[0].decode(), flush=True)
sys.exit(3)
"""


def test_what_a_child_with_processes_of_its_own_leaves_running_ends_with_it(tmp_path: Path) -> None:
    if isolation.own_processes_unavailable():
        pytest.skip("this kernel does not let users create PID namespaces")
    marker = f"300.{os.getpid()}{uuid.uuid4().int % 10**6}"  # sleep's argument, found by it
    command = isolation.confined([sys.executable, "-c", LEAVE_RUNNING, marker], tmp_path,
                                 isolation.Confinement((), ()), own_processes=True)

    ended = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    assert ended.returncode == 3, ended.stderr  # the command's own status
    assert ended.stdout.strip() == "sh", "a PID namespace whose first process is the setup's shell"
    assert ended.stderr == ""
    assert processes_with(marker) == []


@pytest.mark.parametrize("own_processes", [False, True])
def test_a_confined_child_reads_the_stdin_it_is_given(tmp_path: Path, own_processes: bool) -> None:
    """In its own PID namespace the command runs in the background of the setup's shell, where
    it would read /dev/null; a Lambda runtime reads its requests on stdin."""
    if isolation.isolation_unavailable():
        pytest.skip("this kernel does not let users create namespaces")
    command = isolation.confined(["cat"], tmp_path, isolation.Confinement((), ()),
                                 own_processes=own_processes)
    ended = subprocess.run(command, input="a request\n", capture_output=True, text=True, timeout=60,
                           check=False)
    assert (ended.returncode, ended.stdout, ended.stderr) == (0, "a request\n", "")


def test_without_pid_namespaces_a_child_shares_the_machines_processes_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    if isolation.isolation_unavailable():
        pytest.skip("this kernel does not let users create namespaces")
    monkeypatch.setattr(isolation, "own_processes_unavailable", lambda: "no PID namespaces here")
    command = isolation.confined(["python3", "step.py"], tmp_path, isolation.Confinement((), ()),
                                 own_processes=True)
    assert "--pid" not in command
    warning = "processes a job, model server or Lambda handler leaves running outlive it: no PID namespaces"
    assert warning in caplog.text


UNHIDE = """
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
hidden = sys.argv[1].encode()
unmounted = libc.umount2(hidden, 2) == 0  # MNT_DETACH: what would reveal the tree under the tmpfs
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "unmounted": unmounted,
                  "sees": sorted(os.listdir(sys.argv[1]))}))
"""


def test_a_confined_child_keeps_its_user_and_cannot_unmount_what_hides_the_state(tmp_path: Path) -> None:
    if isolation.isolation_unavailable():
        pytest.skip("this kernel does not let users create namespaces")
    own, state = tmp_path / "job", tmp_path / "state"
    own.mkdir()
    state.mkdir()
    (state / "credentials.json").write_text("the server's keys")
    command = isolation.confined(
        [sys.executable, "-c", UNHIDE, str(state)], own, isolation.Confinement((), (state,))
    )
    seen = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    assert seen == {"uid": os.getuid(), "gid": os.getgid(), "unmounted": False, "sees": []}


def test_trees_inside_hidden_trees_stack_as_they_nest(tmp_path: Path) -> None:
    """The user's home folder is hidden, the project inside it shown read-only, the state inside
    the project hidden again, and the child's own folder inside the state is its own: each mount is
    made after the ones around it, whatever the kind."""
    if isolation.isolation_unavailable():
        pytest.skip("this kernel does not let users create namespaces")
    home = tmp_path / "home"
    project, tools = home / "project", home / "python"
    state = project / ".local-sagemaker"
    own = state / "jobs" / "job-1"
    own.mkdir(parents=True)
    tools.mkdir()
    (home / "notes.txt").write_text("the user's")
    (project / "code.py").write_text("print('code')\n")
    (state / "credentials.json").write_text("the server's keys")
    (tools / "tool.sh").write_text("echo interpreter ran")
    script = "\n".join([
        f"echo $(ls -A {home})",
        f"cat {project}/code.py",
        f"touch {project}/new 2>/dev/null || echo project read-only",
        f"echo $(ls -A {state})",
        f"sh {tools}/tool.sh",
        f"touch {own}/out && echo own writable",
    ])
    hiding = isolation.Confinement(read_only=(project,), hidden=(home, state))
    command = isolation.confined(["sh", "-c", script], own, hiding, shown=(tools,))
    ran = subprocess.run(command, capture_output=True, text=True, check=False)
    assert ran.stdout.splitlines() == [
        "project python", "print('code')", "project read-only", "jobs", "interpreter ran", "own writable"
    ], ran.stderr


@pytest.mark.parametrize("through_venv", [True, False])
def test_an_interpreters_installation_holds_its_standard_library(tmp_path: Path, through_venv: bool) -> None:
    """What a confined child running that interpreter is shown (system/interpreters.py)."""
    python = Path(sys._base_executable)  # type: ignore[attr-defined]
    if through_venv:  # a virtual environment that copies the binary: only its pyvenv.cfg leads home
        venv = tmp_path / "venv"
        (venv / "bin").mkdir(parents=True)
        shutil.copy(python, venv / "bin" / "python")
        (venv / "pyvenv.cfg").write_text(f"home = {python.parent}\ninclude-system-site-packages = false\n")
        python = venv / "bin" / "python"
    found = installation(python)
    assert (found / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "os.py").is_file()


def test_a_home_folder_reached_through_a_link_is_hidden_before_the_project_inside_it(tmp_path: Path) -> None:
    """HOME=/a/b/c/d/e/me, a link to /home/me: the kernel hides /home/me, so the project in it is
    mounted after, however deep the link's own path is."""
    if isolation.isolation_unavailable():
        pytest.skip("this kernel does not let users create namespaces")
    home, project, own = tmp_path / "home", tmp_path / "home" / "project", tmp_path / "own"
    project.mkdir(parents=True)
    own.mkdir()
    (project / "code.py").write_text("print('code')\n")
    linked = tmp_path / "a" / "b" / "c" / "d" / "e" / "me"
    linked.parent.mkdir(parents=True)
    linked.symlink_to(home)
    hiding = isolation.Confinement(read_only=(project,), hidden=(linked,))
    command = isolation.confined(["cat", str(project / "code.py")], own, hiding)
    ran = subprocess.run(command, capture_output=True, text=True, check=False)
    assert ran.stdout == "print('code')\n", ran.stderr


def test_a_missing_path_is_blamed_on_a_hidden_tree_only_where_no_shown_one_covers_it(tmp_path: Path) -> None:
    """Judged where links lead, as the mounts are made: the project inside a home folder reached
    through a link is shown, so a file missing there is only missing."""
    home, project = tmp_path / "home", tmp_path / "home" / "project"
    project.mkdir(parents=True)
    linked = tmp_path / "a" / "me"
    linked.parent.mkdir()
    linked.symlink_to(home)
    hiding = isolation.Confinement(read_only=(project,), hidden=(linked,))
    def said(path: Path) -> str:
        return f"FileNotFoundError: [Errno 2] No such file or directory: '{path}'"

    assert isolation.hidden_among(said(linked / "notes.txt"), hiding, ()) == [linked]
    assert isolation.hidden_among(said(linked / "project" / "missing.csv"), hiding, ()) == []
    assert isolation.hidden_among(said(tmp_path / "elsewhere.csv"), hiding, ()) == []


def test_a_home_folder_that_is_tmp_is_hidden_under_the_childs_own_tmp(tmp_path: Path) -> None:
    """HOME=/tmp (some containers' users have it): the child's own /tmp is what it sees there."""
    if isolation.isolation_unavailable():
        pytest.skip("this kernel does not let users create namespaces")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    hiding = isolation.Confinement((), (isolation.TMP,))
    command = isolation.confined(["sh", "-c", "echo x > /tmp/written"], tmp_path, hiding,
                                 tmp=isolation.PrivateTmp(scratch))
    ran = subprocess.run(command, capture_output=True, text=True, check=False)
    assert ran.returncode == 0, ran.stderr
    assert (scratch / "written").read_text() == "x\n"


@pytest.fixture
def nobodys_folder() -> Iterator[Path]:
    """A folder another user can reach (pytest's own are its owner's only)."""
    folder = Path(tempfile.mkdtemp(prefix="confined-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def test_a_user_other_than_root_is_confined_too(
    nobodys_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mount(8) refuses every user but root: the setup must not depend on being root."""
    system_python = shutil.which("python3", path="/usr/bin:/bin")  # one every user can run, as their own
    usable = os.geteuid() == 0 and shutil.which("setpriv") and system_python
    if not usable or isolation.isolation_unavailable():
        pytest.skip("becoming another user needs root and setpriv, confining needs namespaces and a Python")
    nobody = pwd.getpwnam("nobody")  # every Debian and Ubuntu system has it (base-passwd)
    own, state = nobodys_folder / "job", nobodys_folder / "state"
    own.mkdir()
    state.mkdir()
    (state / "credentials.json").write_text("the server's keys")
    os.chown(own, nobody.pw_uid, nobody.pw_gid)
    monkeypatch.setattr(isolation.os, "getuid", lambda: nobody.pw_uid)  # the command is built for nobody
    monkeypatch.setattr(isolation.os, "getgid", lambda: nobody.pw_gid)
    monkeypatch.setattr(isolation, "SETUP_PYTHON", system_python)
    hiding = isolation.Confinement((), (state,), writable_only_tmp=True)  # as a Lambda environment's
    elsewhere = Path("/var/tmp") / own.parent.name  # writable by anyone, when the tree is
    script = f"id -u; ls -A {state}; touch /tmp/x && echo tmp; touch {elsewhere} 2>/dev/null || echo ro"
    command = isolation.confined(["sh", "-c", script], own, hiding, tmp=isolation.PrivateTmp(size_mb=1))
    as_nobody = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups", "--"]
    ran = subprocess.run([*as_nobody, *command], capture_output=True, text=True, check=False)
    elsewhere.unlink(missing_ok=True)
    if isolation.read_only_tree_unavailable():
        assert (ran.returncode, ran.stdout.split()[:2]) == (0, [str(nobody.pw_uid), "tmp"]), ran.stderr
        return
    assert (ran.returncode, ran.stdout.split()) == (0, [str(nobody.pw_uid), "tmp", "ro"]), ran.stderr


def test_a_probe_that_fails_says_why_in_its_own_words_or_the_callers() -> None:
    """What isolation_unavailable and its kin report on a machine that refuses them."""
    assert isolation._probe_failure(["true"], "cannot") == ""
    said = isolation._probe_failure(["sh", "-c", "echo 'Operation not permitted' >&2; exit 1"], "cannot")
    assert said == "cannot (Operation not permitted)"
    assert isolation._probe_failure(["false"], "cannot", silent="a mount stayed writable") == (
        "cannot (a mount stayed writable)")
    assert isolation._probe_failure(["/no/such/unshare"], "cannot").startswith("unshare could not run (")
