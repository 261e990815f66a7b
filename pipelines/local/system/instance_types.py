"""The SageMaker instance types the local target reproduces, with the memory and vCPUs AWS gives them.

On SageMaker an instance type bounds what runs on it: a job's container or an endpoint's model
server that outgrows the instance's memory is killed by the kernel's OOM killer, and the training
toolkit tells a script the instance's vCPUs. Locally jobs (jobs/instances.py) and endpoint
instances (hosting/limits.py, hosting/endpoints.py) are held to the same memory (system/memory.py).
The table holds the CPU families below, in the sizes botocore's ProcessingInstanceType,
TrainingInstanceType and ProductionVariantInstanceType list for them (each request's own enum
refuses the sizes its API does not offer), with AWS's instance specifications; any other type (a GPU, an
accelerator, a family or size not listed) is refused by name rather than run without what it would
have. A type with more memory than this machine is accepted: what runs on it can only run out of
memory earlier here, never later than on SageMaker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.local.system.memory import GIB, JOB_PROCESSES, MemoryLimit

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
    "c5": (2, ("large", "xlarge", "2xlarge", "4xlarge", "9xlarge", "18xlarge")),
    "c6i": (2, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
                "32xlarge")),
    "c7i": (2, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
                "48xlarge")),
    "r5": (8, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge")),
    "r5d": (8, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge")),
    "r6i": (8, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
                "32xlarge")),
    "r7i": (8, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
                "48xlarge")),
}
# What the local target runs, as messages that refuse a type say it.
OFFERED = (
    f"the {', '.join('ml.' + family for family in FAMILIES)} families in the sizes SageMaker offers "
    "(no GPU or accelerator)"
)


@dataclass(frozen=True)
class Instance:
    """An instance type as what runs on it sees it."""

    name: str
    vcpus: int
    memory_gib: float

    def memory_limit(self, whose: str = JOB_PROCESSES) -> MemoryLimit:
        """What `whose` processes may hold resident, as the instance's memory bounds a container."""
        return MemoryLimit(int(self.memory_gib * GIB), f"the {self.memory_gib:g} GiB of {self.name}", whose)


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


def not_reproduced(where: str, instance_type: Any, runs_on: str) -> str:
    """The refusal of an instance type the table lacks, named at `where` in its request."""
    return f"{where} {instance_type} is not an instance type the local target reproduces: {runs_on}"
