"""A job, model server or Lambda environment confined as a container confines it: its own
directory, nothing of the local control plane, and (with SageMaker's EnableNetworkIsolation) no
network.

Every child runs in a user and mount namespace of its own (util-linux's `unshare`, no root): the
trees a `Confinement` names read-only cannot be changed (the project's code: a step must not
rewrite the server it runs under), the hidden ones are empty (the state directory with the server's
credentials, its database, the Lambda code and other jobs' files; the user's cloud keys), and only
the child's own directory is writable where it was. With `network=False` it also gets a network
namespace whose only interface is a loopback that is down: no connection leaves it, not to the
internet, not to S3, not to this machine's own servers.

The mounts are made as root of the outer user namespace (`--map-root-user`: mount(8) refuses any
other user), then the command runs in a second user namespace inside it that maps the user back to
itself (`--map-user`). So the process keeps its user id, the files it writes are the user's as
before, and, the mounts belonging to the outer namespace, it can neither unmount nor replace them
to see what they hide, even where the user is root.

Where the kernel does not let users create namespaces (or util-linux is older than 2.38), a child
that needs no network isolation runs unconfined, with a warning once; one that does is refused by
its caller rather than run with the network.
"""

from __future__ import annotations

import functools
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

NAMESPACES = ("--user", "--map-root-user", "--mount")
MOUNT_TABLE = ".confinement.fstab"  # written into the child's own directory, removed once mounted
WITHOUT_NETWORK = ("--net",)


@dataclass(frozen=True)
class Confinement:
    """What children may see of this machine besides their own directory."""

    read_only: tuple[Path, ...]
    hidden: tuple[Path, ...]
    masked: tuple[Path, ...] = ()  # files that read empty, as a container runtime masks paths


@functools.cache
def isolation_unavailable() -> str:
    """Why this machine cannot confine a child ("" when it can), found once by trying."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "util-linux's unshare is not installed"
    with tempfile.TemporaryDirectory() as target:  # what confined() does: a mount, then the user's own id
        setup = f"mount -t tmpfs probe {shlex.quote(target)} && exec {_as_user(unshare)} -- true"
        try:
            probe = subprocess.run(
                [unshare, *NAMESPACES, *WITHOUT_NETWORK, "--", "sh", "-c", setup],
                capture_output=True, text=True, timeout=10, check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"unshare could not run ({error})"
    if probe.returncode != 0:
        command = " ".join(["unshare", *NAMESPACES, *WITHOUT_NETWORK])
        return f"`{command}` cannot make namespaces and mounts here ({probe.stderr.strip()})"
    return ""


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
) -> list[str]:
    """`argv` to run confined to `own` (isolation_unavailable() must be "" when network is False),
    `shown` visible read-only even inside a hidden tree; as it is when there is nothing to confine
    it with (no confinement and the network kept). `busy_fds` are descriptors the command
    inherits, which the setup must not reuse."""
    if confinement is None and network:
        return list(argv)
    unavailable = isolation_unavailable()
    if unavailable:
        if not network:
            raise RuntimeError(f"cannot take a process off the network: {unavailable}")
        _warn_unconfined(unavailable)
        return list(argv)
    unshare = str(shutil.which("unshare"))
    namespaces = NAMESPACES if network else NAMESPACES + WITHOUT_NETWORK
    free = [fd for fd in range(3, 10) if fd not in busy_fds]  # a shell names descriptors 0 to 9
    if len(free) < 1 + len(shown):
        raise RuntimeError(f"no free descriptors to confine {argv[0]} with")
    kept = [(own, free[0], False)] + [(path, fd, True) for path, fd in zip(shown, free[1:], strict=False)]
    table = own / MOUNT_TABLE
    table.write_text(_mount_table(confinement or Confinement((), ()), kept), encoding="utf-8")
    script = "\n".join([
        "set -e",
        *(f"exec {fd}<{shlex.quote(str(path))}" for path, fd, _ in kept),
        f"mount --all --no-canonicalize --fstab {shlex.quote(str(table))}",  # one exec for every mount
        *(f"exec {fd}<&-" for _, fd, _ in kept),
        f"rm -f {shlex.quote(str(table))}",
        f'exec {_as_user(unshare)} -- "$@"',
    ])
    return [unshare, *namespaces, "--", "sh", "-c", script, "confined", *argv]


def _mount_table(confinement: Confinement, kept: list[tuple[Path, int, bool]]) -> str:
    """The mounts as an fstab, in order: the read-only trees, the masked files (/dev/null bound over
    each), the hidden trees, then `kept` (own and shown) bound back from descriptors opened before
    (their paths are hidden by then)."""
    entries = [f"{_field(p)} {_field(p)} none bind,ro" for p in confinement.read_only if p.is_dir()]
    entries += [f"/dev/null {_field(p)} none bind,ro" for p in confinement.masked if p.is_file()]
    entries += [f"hidden {_field(p)} tmpfs mode=0700,size=1m" for p in confinement.hidden if p.is_dir()]
    entries += [
        f"/proc/self/fd/{fd} {_field(path)} none bind,X-mount.mkdir" + (",ro" if read_only else "")
        for path, fd, read_only in kept
    ]
    return "".join(f"{entry} 0 0\n" for entry in entries)


def _field(path: Path) -> str:
    """A path as an fstab field: whitespace and backslashes octal-escaped, as fstab(5) reads them."""
    return "".join(f"\\{ord(c):03o}" if c in " \t\n\\" else c for c in str(path))


@functools.cache
def _warn_unconfined(reason: str) -> None:
    log.warning("jobs and model servers run unconfined, able to read the state directory: %s", reason)
