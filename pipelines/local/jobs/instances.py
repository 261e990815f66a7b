"""The instance types a local job runs on, with the memory and vCPUs SageMaker gives them.

On SageMaker a job's instance type bounds it: a container that outgrows the instance's memory is
killed by the kernel's OOM killer, and the training toolkit tells the script the instance's vCPUs.
A local job is held to the same memory (system/memory.py) and told the same vCPUs, so a job that
would run out of memory there runs out here too. The table holds the CPU families below, in the
sizes botocore's ProcessingInstanceType and TrainingInstanceType list for them, with AWS's
instance specifications; any other type (a GPU, an accelerator, a family not listed) is refused
by name rather than run without what it would have. A type with more memory than this machine is
accepted: the job can only run out of memory earlier here, never later than on SageMaker.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pipelines.local.jobs.outcome import JobError
from pipelines.local.system.memory import GIB, MemoryLimit

# Each family's GiB of memory per vCPU and its sizes; a size has 2 vCPUs for `large`, 4 for
# `xlarge` and 4N for `Nxlarge` in every one of them.
FAMILIES: dict[str, tuple[int, tuple[str, ...]]] = {
    "t3": (4, ("large", "xlarge", "2xlarge")),  # and t3.medium, below
    "m4": (4, ("xlarge", "2xlarge", "4xlarge", "10xlarge", "16xlarge")),
    "m5": (4, ("large", "xlarge", "2xlarge", "4xlarge", "12xlarge", "24xlarge")),
    "m6i": (4, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
                "32xlarge")),
    "m7i": (4, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
                "48xlarge")),
    "c5": (2, ("xlarge", "2xlarge", "4xlarge", "9xlarge", "18xlarge")),
    "c6i": (2, ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "32xlarge")),
    "c7i": (2, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
                "48xlarge")),
    "r5": (8, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge")),
    "r5d": (8, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge")),
    "r6i": (8, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
                "32xlarge")),
    "r7i": (8, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
                "48xlarge")),
}


@dataclass(frozen=True)
class Instance:
    """An instance type as a job sees it."""

    name: str
    vcpus: int
    memory_gib: float

    def memory_limit(self) -> MemoryLimit:
        """What the job's processes may hold resident, as the instance's memory bounds a container."""
        return MemoryLimit(int(self.memory_gib * GIB), f"the {self.memory_gib:g} GiB of {self.name}")


def _vcpus(size: str) -> int:
    return 2 if size == "large" else 4 * int(size.removesuffix("xlarge") or 1)


INSTANCES: dict[str, Instance] = {
    instance.name: instance
    for instance in [
        Instance("ml.t3.medium", 2, 4),
        *(
            Instance(f"ml.{family}.{size}", _vcpus(size), _vcpus(size) * gib_per_vcpu)
            for family, (gib_per_vcpu, sizes) in FAMILIES.items()
            for size in sizes
        ),
    ]
}
RUNS_ON = (
    "a local job runs on the CPU instance types whose memory and vCPUs it reproduces, the "
    f"{', '.join('ml.' + family for family in FAMILIES)} families in the sizes SageMaker offers "
    "(no GPU or accelerator)"
)


def instance_problems(where: str, instance_type: Any) -> Iterator[str]:
    """A literal instance type the table lacks, named; an expression or a missing one passes here
    (the request's shape requires it, and an expression is checked once resolved)."""
    if isinstance(instance_type, str) and instance_type not in INSTANCES:
        yield _not_reproduced(where, instance_type)


def job_instance(where: str, instance_type: Any) -> Instance:
    """At job start: the instance the job runs on; a type the table lacks, or none, is refused."""
    if not isinstance(instance_type, str) or instance_type not in INSTANCES:
        raise JobError(f"ValidationException: {_not_reproduced(where, instance_type)}")
    return INSTANCES[instance_type]


def _not_reproduced(where: str, instance_type: Any) -> str:
    return f"{where} {instance_type} is not an instance type the local target reproduces: {RUNS_ON}"
