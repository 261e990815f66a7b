"""A job, model server or Lambda environment confined as a container confines it: its own
directory, nothing of the local control plane, and (with SageMaker's EnableNetworkIsolation) no
network.

Every child runs in a user and mount namespace of its own (`unshare --user --map-current-user
--mount`, util-linux, no root): the trees a `Confinement` names read-only cannot be changed (the
project's code: a step must not rewrite the server it runs under), the hidden ones are empty (the
state directory with the server's credentials, its database, the Lambda code and other jobs'
files; the user's cloud keys), and only the child's own directory is writable where it was. With
`network=False` it also gets a network namespace whose only interface is a loopback that is down:
no connection leaves it, not to the internet, not to S3, not to this machine's own servers. The
process keeps its user id, so the files it writes are the user's as before.

Where the kernel does not let users create namespaces (or util-linux is older than 2.38), a child
that needs no network isolation runs unconfined, with a warning once; one that does is refused by
its caller rather than run with the network.
"""

from __future__ import annotations

import functools
import logging
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

NAMESPACES = ("--user", "--map-current-user", "--mount")
WITHOUT_NETWORK = ("--net",)


@dataclass(frozen=True)
class Confinement:
    """What children may see of this machine besides their own directory."""

    read_only: tuple[Path, ...]
    hidden: tuple[Path, ...]


@functools.cache
def isolation_unavailable() -> str:
    """Why this machine cannot confine a child ("" when it can), found once by trying."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "util-linux's unshare is not installed"
    try:
        probe = subprocess.run(
            [unshare, *NAMESPACES, *WITHOUT_NETWORK, "--", "true"],
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unshare could not run ({error})"
    if probe.returncode != 0:
        command = " ".join(["unshare", *NAMESPACES, *WITHOUT_NETWORK])
        return f"`{command}` cannot make namespaces here ({probe.stderr.strip()})"
    return ""


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
    it with. `busy_fds` are descriptors the command inherits, which the setup must not reuse."""
    unavailable = isolation_unavailable()
    if unavailable:
        if not network:
            raise RuntimeError(f"cannot take a process off the network: {unavailable}")
        _warn_unconfined(unavailable)
        return list(argv)
    namespaces = NAMESPACES if network else NAMESPACES + WITHOUT_NETWORK
    free = [fd for fd in range(3, 10) if fd not in busy_fds]  # a shell names descriptors 0 to 9
    if len(free) < 1 + len(shown):
        raise RuntimeError(f"no free descriptors to confine {argv[0]} with")
    script = _setup(own, confinement or Confinement((), ()), shown, free)
    return [str(shutil.which("unshare")), *namespaces, "--", "sh", "-c", script, "confined", *argv]


def _setup(own: Path, confinement: Confinement, shown: tuple[Path, ...], fds: list[int]) -> str:
    """The mounts, in the new namespace, then exec the command. `own` and `shown` are opened first
    and bound back over any hidden tree that holds them (by descriptor: their paths are hidden by
    then), `shown` read-only."""
    kept = [(own, fds[0], False)] + [(path, fd, True) for path, fd in zip(shown, fds[1:], strict=False)]
    lines = ["set -e"] + [f"exec {fd}<{shlex.quote(str(path))}" for path, fd, _ in kept]
    for path in confinement.read_only:
        if path.is_dir():
            lines += _bind(str(path), str(path), read_only=True)
    for path in confinement.hidden:
        if path.is_dir():
            lines.append(f"mount -t tmpfs -o mode=0700,size=1m hidden {shlex.quote(str(path))}")
    for path, fd, read_only in kept:
        lines += [f"mkdir -p {shlex.quote(str(path))}", *_bind(f"/proc/self/fd/{fd}", str(path), read_only)]
        lines.append(f"exec {fd}<&-")
    lines.append('exec "$@"')
    return "\n".join(lines)


def _bind(source: str, target: str, read_only: bool) -> list[str]:
    """A bind mount of `source` (as given: a descriptor's path must not be resolved) on `target`."""
    quoted = shlex.quote(target)
    bound = [f"mount --no-canonicalize --bind {shlex.quote(source)} {quoted}"]
    return [*bound, f"mount -o remount,bind,ro {quoted}"] if read_only else bound


@functools.cache
def _warn_unconfined(reason: str) -> None:
    log.warning("jobs and model servers run unconfined, able to read the state directory: %s", reason)
