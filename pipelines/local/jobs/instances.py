"""The instance types a local job runs on (system/instance_types.py), and the refusal of any other.

A local job is held to its instance's memory (system/memory.py) and told its vCPUs, so a job that
would run out of memory on SageMaker runs out here too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pipelines.local.jobs.outcome import JobError
from pipelines.local.system.instance_types import INSTANCES, OFFERED, Instance, not_reproduced

RUNS_ON = f"a local job runs on the CPU instance types whose memory and vCPUs it reproduces, {OFFERED}"


def instance_problems(where: str, instance_type: Any) -> Iterator[str]:
    """A literal instance type the table lacks, named; an expression or a missing one passes here
    (the request's shape requires it, and an expression is checked once resolved)."""
    if isinstance(instance_type, str) and instance_type not in INSTANCES:
        yield not_reproduced(where, instance_type, RUNS_ON)


def job_instance(where: str, instance_type: Any) -> Instance:
    """At job start: the instance the job runs on; a type the table lacks, or none, is refused."""
    if not isinstance(instance_type, str) or instance_type not in INSTANCES:
        raise JobError(f"ValidationException: {not_reproduced(where, instance_type, RUNS_ON)}")
    return INSTANCES[instance_type]

