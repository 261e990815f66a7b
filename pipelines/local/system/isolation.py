"""A job, model server or Lambda environment confined as a container confines it: its own
directory, nothing of the local control plane, and (with SageMaker's EnableNetworkIsolation) no
network.

Every child runs in a user and mount namespace of its own (util-linux's `unshare`, no root): the
trees a `Confinement` names read-only cannot be changed (the project's code: a step must not
rewrite the server it runs under), the hidden ones are empty (the state directory with the server's
credentials, its database, the Lambda code and other jobs' files; the user's home folder), what the
child is shown inside them (its interpreter, its environment) is there read-only, and its own
directory is writable where it was. With `network=False` it also gets a network
namespace whose only interface is a loopback that is down: no connection leaves it, not to the
internet, not to S3, not to this machine's own servers. With `own_processes` (all three)
it also gets a PID namespace and a /proc of its own, so nothing it starts outlives it. A confined
child may also get a /tmp of its own (`PrivateTmp`: a folder of its own or a tmpfs) over the
machine's, shared by every process, a /var/tmp of its own (a folder) and a /dev/shm of its own (a
tmpfs, as every container has); and with `writable_only_tmp`, as Lambda's filesystem, every mount
is read-only but that /tmp (and /proc).

The mounts are made as root of the outer user namespace (`--map-root-user`: mount(8) refuses any
other user), then the command runs in a second user namespace inside it that maps the user back to
itself (`--map-user`). So the process keeps its user id, the files it writes are the user's as
before, and, the mounts belonging to the outer namespace, it can neither unmount nor replace them
to see what they hide, even where the user is root.

Where the kernel does not let users create namespaces (or util-linux is older than 2.38), a child
that needs no network isolation runs unconfined, with a warning once; one that does is refused by
its caller rather than run with the network. Where it cannot make mounts read-only recursively
(mount_setattr(2), Linux 5.12), the rest of the tree stays as it was, with a warning once.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipelines.local.system.interpreters import installation

log = logging.getLogger(__name__)

NAMESPACES = ("--user", "--map-root-user", "--mount")
# A PID namespace whose first process is the setup's shell, which waits for the command: when the
# shell ends, the kernel kills every process left in the namespace, as a container's end kills
# what its processes started, even one that left their group (setsid); and when `unshare` is
# killed (the server's death kills it), so is the shell. The namespace has its own /proc.
OWN_PROCESSES = ("--pid", "--fork", "--kill-child", "--mount-proc")
MOUNT_TABLE = ".confinement.fstab"  # written into the child's own directory, removed once mounted
WITHOUT_NETWORK = ("--net",)
TMP = Path("/tmp")
VAR_TMP = Path("/var/tmp")
OPT = Path("/opt")
OPT_ML = OPT / "ml"  # a SageMaker container's paths: its inputs, outputs, model, config
SHARED_MEMORY = Path("/dev/shm")  # POSIX shared memory and semaphores: multiprocessing's locks, queues
PROC = Path("/proc")  # writable as before: the inner `unshare` writes the user mapping there
# The interpreter that runs READ_ONLY_TREE: this one's own, not a venv's link to it, which may be
# under the /tmp a child's own replaces (it needs nothing but the standard library).
SETUP_PYTHON = os.path.realpath(sys.executable)
# mount_setattr(2) (Linux 5.12; 442 on every architecture), which util-linux's mount calls only from
# 2.39 on (`ro=recursive`): the tree under argv[1] read-only, every mount in it, then the mounts
# argv[2:] writable again.
READ_ONLY_TREE = """
import ctypes, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
def set_attributes(path, recursive, read_only):
    attributes = struct.pack("QQQQ", 1 if read_only else 0, 0 if read_only else 1, 0, 0)
    flags = 0x8000 if recursive else 0  # AT_RECURSIVE
    if libc.syscall(ctypes.c_long(442), ctypes.c_int(-100), path.encode(), ctypes.c_uint(flags),
                    attributes, ctypes.c_size_t(len(attributes))) != 0:
        sys.exit(f"mount_setattr {path}: {ctypes.get_errno()}")
set_attributes(sys.argv[1], True, True)
for path in sys.argv[2:]:
    set_attributes(path, False, False)
"""


@dataclass(frozen=True)
class Confinement:
    """What children may see of this machine besides their own directory."""

    read_only: tuple[Path, ...]
    hidden: tuple[Path, ...]
    writable_only_tmp: bool = False  # every other mount read-only, as Lambda's filesystem


@dataclass(frozen=True)
class PrivateTmp:
    """What a child sees at /tmp instead of the machine's /tmp, shared by every process, at
    /var/tmp instead of the machine's, which outlives reboots, and at /dev/shm instead of the
    machine's, where any process's shared memory is: a container has all three of its own."""

    folder: Path | None = None  # bound over /tmp: on disk, and gone with the folder (a job's scratch)
    size_mb: int = 0  # with no folder, a tmpfs of this size, gone with the child (Lambda's /tmp)
    var_folder: Path | None = None  # bound over /var/tmp (made if missing), as `folder` over /tmp
    # A tmpfs over /dev/shm, gone with the child. Its size is the kernel's default, half this
    # machine's memory: SageMaker does not document the size of a container's /dev/shm.
    shared_memory: bool = False

    @classmethod
    def under(cls, own: Path) -> PrivateTmp:
        """A container's: folders of its own directory, `tmp` (also its TMPDIR) and `var-tmp`, and
        a /dev/shm of its own."""
        return cls(own / "tmp", var_folder=own / "var-tmp", shared_memory=True)


# How Python (and pandas, which raises the same error) says a file is not there.
_MISSING_PATH = re.compile(r"No such file or directory: '(/[^']*)'")


def hidden_among(text: str, confinement: Confinement, shown: tuple[Path, ...]) -> list[Path]:
    """The hidden trees holding the paths `text` says were not found, where nothing `shown` (nor
    a read-only tree) covers them: what a confined child failed on because it cannot see it. Paths
    are compared where their links lead, as the mounts are made (_mount_table)."""
    hidden = {_real(tree): tree for tree in confinement.hidden}
    visible = [_real(tree) for tree in (*shown, *confinement.read_only)]
    found = []
    for missing in _MISSING_PATH.findall(text):
        holder = _innermost(_real(Path(missing)), (*visible, *hidden))  # shown wins a tie, as mounted
        if holder in hidden and hidden[holder] not in found:
            found.append(hidden[holder])
    return found


def _innermost(path: Path, trees: tuple[Path, ...]) -> Path | None:
    """The deepest of `trees` that holds `path`: its mount is the one the child sees there."""
    holding = [tree for tree in trees if tree == path or tree in path.parents]
    return max(holding, key=lambda tree: len(tree.parts), default=None)


@functools.cache
def isolation_unavailable() -> str:
    """Why this machine cannot confine a child ("" when it can), found once by trying."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "util-linux's unshare is not installed"
    with tempfile.TemporaryDirectory() as target:  # what confined() does: a mount, then the user's own id
        setup = f"mount -t tmpfs probe {shlex.quote(target)} && exec {_as_user(unshare)} -- true"
        command = ["unshare", *NAMESPACES, *WITHOUT_NETWORK]
        return _probe_failure(
            [unshare, *command[1:], "--", "sh", "-c", setup],
            f"`{' '.join(command)}` cannot make namespaces and mounts here",
        )


@functools.cache
def read_only_tree_unavailable() -> str:
    """Why this machine cannot make every mount of a child read-only ("" when it can), found once
    by doing it to a tmpfs and one inside it."""
    unavailable = isolation_unavailable()
    if unavailable:
        return unavailable
    with tempfile.TemporaryDirectory() as target:
        inner = shlex.quote(f"{target}/inner")
        setup = (
            f"mount -t tmpfs probe {shlex.quote(target)} && mkdir {inner} && mount -t tmpfs probe {inner} && "
            f"{shlex.join([SETUP_PYTHON, '-I', '-S', '-c', READ_ONLY_TREE, target])} && "
            f"! touch {inner}/written 2>/dev/null"
        )
        return _probe_failure(
            [str(shutil.which("unshare")), *NAMESPACES, "--", "sh", "-c", setup],
            "mounts cannot be made read-only recursively here", silent="a mount inside stayed writable",
        )


@functools.cache
def own_processes_unavailable() -> str:
    """Why this machine cannot give a confined child a PID namespace of its own ("" when it can),
    found once by trying."""
    unavailable = isolation_unavailable()
    if unavailable:
        return unavailable
    unshare = str(shutil.which("unshare"))
    command = [unshare, *NAMESPACES, *OWN_PROCESSES, "--", "sh", "-c", f"{_as_user(unshare)} -- true"]
    return _probe_failure(command, f"`{' '.join(command[:-4])}` cannot make a PID namespace here")


def _probe_failure(argv: list[str], failure: str, silent: str = "") -> str:
    """"" when the probe `argv` succeeds; else `failure`, with what the probe said on stderr (or
    `silent` when it said nothing), or why it could not run at all."""
    try:
        probe = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unshare could not run ({error})"
    return "" if probe.returncode == 0 else f"{failure} ({probe.stderr.strip() or silent})"


def _as_user(unshare: str) -> str:
    """The command that runs the rest in a user namespace mapping this user (and group) to itself."""
    return f"{shlex.quote(unshare)} --user --map-user={os.getuid()} --map-group={os.getgid()}"


def confined(
    argv: list[str],
    own: Path,
    confinement: Confinement | None,
    network: bool = True,
    shown: tuple[Path, ...] = (),
    busy_fds: tuple[int, ...] = (),
    tmp: PrivateTmp | None = None,
    opt_ml: Path | None = None,
    workdir: Path | None = None,
    own_processes: bool = False,
) -> list[str]:
    """`argv` to run confined to `own` (isolation_unavailable() must be "" when network is False),
    `shown` visible read-only even inside a hidden tree and, with a confinement, `tmp` at /tmp
    instead of the machine's (the confinement's read-only trees, the project's with its
    interpreters, shown there too where they are under /tmp) and `opt_ml`, a folder inside `own`,
    at /opt/ml as well, over an /opt of the child's own (where `shows_opt_ml`); as it is when there
    is nothing to confine it with (no confinement and the network kept). Confined, the command
    starts in `workdir` as the child sees it (a path under /opt/ml, say), else in the caller's
    working directory. `busy_fds` are descriptors the command inherits, which the setup must not
    reuse. With `own_processes`, every process the command leaves running ends with it (a PID
    namespace, where the machine allows one; OWN_PROCESSES); its stdin is the one it is started
    with either way."""
    opt_ml = opt_ml if shows_opt_ml(confinement) else None  # decided on the caller's confinement
    if confinement is None:
        if network:
            return list(argv)
        tmp = None
    unavailable = isolation_unavailable()
    if unavailable:
        if not network:
            raise RuntimeError(f"cannot take a process off the network: {unavailable}")
        _warn_unconfined(unavailable)
        return list(argv)
    unshare = str(shutil.which("unshare"))
    namespaces: tuple[str, ...] = NAMESPACES if network else NAMESPACES + WITHOUT_NETWORK
    if own_processes and own_processes_unavailable():
        _warn_shared_processes(own_processes_unavailable())
        own_processes = False
    run = f'{_as_user(unshare)} -- "$@"'
    free = [fd for fd in range(3, 10) if fd not in busy_fds]  # a shell names descriptors 0 to 9
    if own_processes:  # the shell stays, as the namespace's first process, until the command ends
        namespaces += OWN_PROCESSES
        # A command in the background reads /dev/null, whatever it is given, unless its stdin comes
        # from a descriptor other than 0: a copy, in one the mounts have freed. `wait` gives the
        # command's status and keeps the shell's "Terminated" line out of its stderr.
        copy = free[0]
        run = f"exec {copy}<&0\n{run} 0<&{copy} {copy}<&- &\nexec {copy}<&-\nwait $! 2>/dev/null"
    else:
        run = f"exec {run}"
    confinement = confinement or Confinement((), ())
    read_only_tree = _read_only_tree(tmp) if confinement.writable_only_tmp else []
    if read_only_tree:  # its interpreter runs after the mounts, so it must be shown too
        shown = (*shown, installation(Path(SETUP_PYTHON)))
    trees = [_Bound(path, path, True, layered=True) for path in confinement.read_only if path.is_dir()]
    kept = [_Bound(own, own, False), *(_Bound(path, path, True) for path in dict.fromkeys(shown))]
    private_tmp = _private_tmp(tmp) if tmp is not None else []
    if len(free) < len(private_tmp) + len(trees) + len(kept):
        raise RuntimeError(f"no free descriptors to confine {argv[0]} with")
    fds = dict(zip([*private_tmp, *trees, *kept], free, strict=False))
    table = own / MOUNT_TABLE
    table.write_text(_mount_table(confinement, tmp, fds, opt_ml), encoding="utf-8")
    script = [
        "set -e",
        *(f"exec {fd}<{shlex.quote(str(mount.source))}" for mount, fd in fds.items()),
        f"mount --all --no-canonicalize --fstab {shlex.quote(str(table))}",  # one exec for every mount
        *(f"exec {fd}<&-" for fd in fds.values()),
        f"rm -f {shlex.quote(str(table))}",
        *read_only_tree,
        *([f"cd {shlex.quote(str(workdir))}"] if workdir is not None else []),
        run,
    ]
    return [unshare, *namespaces, "--", "sh", "-c", "\n".join(script), "confined", *argv]


def in_own_processes(command: list[str]) -> bool:
    """Whether `command`, as confined() made it, runs its child in a PID namespace of its own, whose
    first process, the setup's shell, reports a child killed by signal N as exit status 128 + N."""
    if not command or Path(command[0]).name != "unshare" or "--" not in command:
        return False
    return OWN_PROCESSES[0] in command[1:command.index("--")]


def as_started_directly(code: int, own_processes: bool) -> int:
    """A command's exit status as Popen reports it for a child it started itself, minus N for one
    killed by signal N: with `own_processes` (in_own_processes) the status is the setup shell's,
    which reports such a child as 128 + N (so a command that exits 129-192 itself reads as killed)."""
    if own_processes and 128 < code < 128 + signal.NSIG:
        return 128 - code
    return code


def shows_opt_ml(confinement: Confinement | None) -> bool:
    """Whether `confined` shows a child its folder at /opt/ml: it confines the child, and this
    machine has an /opt to cover with one of the child's own (where there is none, a user cannot
    make one)."""
    return confinement is not None and not isolation_unavailable() and OPT.is_dir()


def _private_tmp(tmp: PrivateTmp) -> list[_Bound]:
    """The folders bound over /tmp and /var/tmp (a tmpfs /tmp is no folder: _mount_table mounts it)."""
    bound = []
    if tmp.folder is not None:
        tmp.folder.mkdir(parents=True, exist_ok=True)
        bound.append(_Bound(tmp.folder, TMP, False, layered=True))
    if tmp.var_folder is not None and VAR_TMP.is_dir():
        tmp.var_folder.mkdir(parents=True, exist_ok=True)
        bound.append(_Bound(tmp.var_folder, VAR_TMP, False, layered=True))
    return bound


@dataclass(frozen=True)
class _Bound:
    """A directory bound at `target` from a descriptor opened on `source` before anything is
    mounted (by then its path may be hidden or under another /tmp)."""

    source: Path
    target: Path
    read_only: bool
    layered: bool = False  # a read-only tree or a private /tmp: mounted in turn with the hidden trees


def _read_only_tree(tmp: PrivateTmp | None) -> list[str]:
    """The setup's last step before the command: every mount read-only but /tmp and /proc,
    where the kernel can; a warning once where it cannot."""
    unavailable = read_only_tree_unavailable()
    if unavailable:
        _warn_writable_tree(unavailable)
        return []
    writable = [str(PROC)] + ([str(TMP)] if tmp is not None else [])
    return [shlex.join([SETUP_PYTHON, "-I", "-S", "-c", READ_ONLY_TREE, "/", *writable])]


def _mount_table(
    confinement: Confinement, tmp: PrivateTmp | None, fds: dict[_Bound, int], opt_ml: Path | None
) -> str:
    """The mounts as an fstab, in order: the hidden trees, the read-only ones and the child's own
    /tmp, a folder before what is inside it (the project, read-only, inside the hidden home folder;
    the state, hidden, inside the project; /tmp's own over a home folder that is /tmp), and at one
    path what is shown after what is hidden; then the child's own folder and what else it is shown,
    which nothing covers; last, `opt_ml` at /opt/ml, bound by its path, which is the child's own
    folder's by then. Each directory is bound from its descriptor and made where missing, as a
    path under /tmp is once /tmp is the child's, or one inside a hidden tree."""
    # (depth, hidden before shown at one path, entry): a folder's mount before those inside it
    layered = [(_depth(p), 0, f"hidden {_field(p)} tmpfs mode=0700,size=1m,X-mount.mkdir")
               for p in confinement.hidden if p.is_dir()]
    if tmp is not None and tmp.folder is None:  # memory; a folder is bound from its descriptor
        layered.append((_depth(TMP), 1, f"tmp {TMP} tmpfs mode=1777,size={tmp.size_mb}m"))
    if opt_ml is not None:  # the machine's /opt is no container's: only /opt/ml is there
        layered.append((_depth(OPT), 1, f"opt {OPT} tmpfs mode=0755,size=1m"))
    if tmp is not None and tmp.shared_memory and SHARED_MEMORY.is_dir():
        layered.append((_depth(SHARED_MEMORY), 1, f"shm {SHARED_MEMORY} tmpfs mode=1777,nosuid,nodev"))
    layered += [
        (_depth(mount.target), 1, _from_descriptor(mount, fd))
        for mount, fd in fds.items()
        if mount.layered
    ]
    entries = [entry for *_order, entry in sorted(layered)]
    entries += [
        _from_descriptor(mount, fd) for mount, fd in fds.items() if not mount.layered
    ]
    if opt_ml is not None:
        entries.append(f"{_field(opt_ml)} {OPT_ML} none bind,X-mount.mkdir")
    return "".join(f"{entry} 0 0\n" for entry in entries)


def _depth(path: Path) -> int:
    """How deep `path` really is: the kernel mounts where its links lead (a home folder reached
    through a link may be shallower than it looks)."""
    return len(_real(path).parts)


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _from_descriptor(mount: _Bound, fd: int) -> str:
    options = "bind,X-mount.mkdir" + (",ro" if mount.read_only else "")
    return f"/proc/self/fd/{fd} {_field(mount.target)} none {options}"


def _field(path: Path) -> str:
    """A path as an fstab field: whitespace and backslashes octal-escaped, as fstab(5) reads them."""
    return "".join(f"\\{ord(c):03o}" if c in " \t\n\\" else c for c in str(path))


@functools.cache
def _warn_writable_tree(reason: str) -> None:
    log.warning("Lambda environments can write wherever this user can, not only in /tmp: %s", reason)


@functools.cache
def _warn_shared_processes(reason: str) -> None:
    log.warning("processes a job, model server or Lambda handler leaves running outlive it: %s", reason)


@functools.cache
def _warn_unconfined(reason: str) -> None:
    log.warning("jobs and model servers run unconfined, able to read the state directory: %s", reason)
