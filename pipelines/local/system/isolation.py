"""A job taken off the network, as SageMaker's EnableNetworkIsolation takes its container off.

The command runs in a network namespace of its own, whose only interface is a loopback that is
down: no connection leaves it, not to the internet, not to S3, not to this machine's own servers.
`unshare --net --map-current-user` (util-linux) makes it without root where the kernel lets users
create namespaces; the process keeps its user id, so the files it writes are the user's as before.
Where the kernel does not allow it (or util-linux is older than 2.38), the job is refused rather
than run with the network.
"""

from __future__ import annotations

import functools
import shutil
import subprocess

UNSHARE = ("--net", "--map-current-user", "--")


@functools.cache
def isolation_unavailable() -> str:
    """Why this machine cannot take a job off the network ("" when it can), found once by trying."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "util-linux's unshare is not installed"
    try:
        probe = subprocess.run(
            [unshare, *UNSHARE, "true"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unshare could not run ({error})"
    if probe.returncode != 0:
        command = " ".join(["unshare", *UNSHARE[:-1]])
        return f"`{command}` cannot make a network namespace here ({probe.stderr.strip()})"
    return ""


def without_network(argv: list[str]) -> list[str]:
    """`argv` to run in a network namespace of its own (isolation_unavailable() must be "")."""
    return [str(shutil.which("unshare")), *UNSHARE, *argv]
