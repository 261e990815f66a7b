"""An instance type's vCPUs, held as CPU affinity: what runs on an instance sees and uses that many.

On SageMaker a job's container or a model server runs on an instance with its type's vCPUs: `nproc`,
`os.sched_getaffinity`, joblib, OpenBLAS and the serving toolkit's worker count all see that many, and
CPU-bound work runs no wider. Here a job or model server gets that many of this machine's CPUs as
its affinity (all of them where the machine has no more). The affinity is set on the thread that
starts the process and restored after: a child inherits its parent thread's affinity at fork, so it
holds from the child's first instruction, with no exec added to the start. Successive holds take
the machine's CPUs in turn, so that processes started side by side do not share the same ones.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

# The CPUs this server may use, as it started: each hold takes its CPUs from these (none where
# the platform has no CPU affinity: nothing is held there).
_AFFINITY = hasattr(os, "sched_getaffinity")
MACHINE_CPUS: tuple[int, ...] = tuple(sorted(os.sched_getaffinity(0))) if _AFFINITY else ()
_turn = itertools.count()
_turn_lock = threading.Lock()


def cpus_for(vcpus: int) -> frozenset[int] | None:
    """The next `vcpus` of this machine's CPUs, going round them; None where the machine has no
    more than that (what runs there sees every CPU, as it would see all of the instance's)."""
    if vcpus < 1 or len(MACHINE_CPUS) <= vcpus:
        return None
    with _turn_lock:
        first = next(_turn) * vcpus
    return frozenset(MACHINE_CPUS[(first + offset) % len(MACHINE_CPUS)] for offset in range(vcpus))


@contextmanager
def held_to(vcpus: int | None) -> Iterator[None]:
    """Run the block on this thread held to `vcpus` CPUs (none held for None); a process started in
    it keeps them, and so do the processes and threads it starts."""
    cpus = cpus_for(vcpus) if vcpus is not None else None
    before = _hold(cpus) if cpus is not None else None
    try:
        yield
    finally:
        if before is not None:
            os.sched_setaffinity(0, before)


def _hold(cpus: frozenset[int]) -> set[int] | None:
    """Hold this thread to `cpus` and return the CPUs it had; None, with a warning once, where the
    CPUs can no longer be had (taken from this server since it started)."""
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as error:
        _warn_unheld(str(error))
        return None
    return before


@functools.cache
def _warn_unheld(reason: str) -> None:
    log.warning("jobs and model servers run on every CPU of this server, not their instance's vCPUs: %s",
                reason)
