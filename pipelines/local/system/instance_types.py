"""The SageMaker instance types the local target reproduces, with the memory and vCPUs AWS gives them.

On SageMaker an instance type bounds what runs on it: a job's container or an endpoint's model
server that outgrows the instance's memory is killed by the kernel's OOM killer, and the training
toolkit tells a script the instance's vCPUs. Locally jobs (jobs/instances.py) and endpoint
instances (hosting/limits.py, hosting/endpoints.py) are held to the same memory (system/memory.py).
The table holds every x86 CPU family of botocore's ProcessingInstanceType, TrainingInstanceType
and ProductionVariantInstanceType, in the sizes they list for it (each request's own enum refuses
the sizes its API does not offer), with AWS's instance specifications. Any other type (a GPU, an
accelerator, a Graviton: the scikit-learn image's arm64 build is another image) is refused by name
rather than run without what it would have. A type with more memory than this machine is accepted:
what runs on it can only run out of memory earlier here, never later than on SageMaker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.local.system.memory import GIB, JOB_PROCESSES, MemoryLimit

# Each family's GiB of memory per vCPU and its sizes; a size has 2 vCPUs for `large`, 4 for
# `xlarge` and 4N for `Nxlarge` in every one of them.
_LARGE_TO_48 = ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
                "48xlarge")
_LARGE_TO_32 = ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
                "32xlarge")
_LARGE_TO_96 = (*_LARGE_TO_32, "48xlarge", "96xlarge")
_FLEX = ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")
FAMILIES: dict[str, tuple[int, tuple[str, ...]]] = {
    "t3": (4, ("large", "xlarge", "2xlarge")),  # and t3.medium, below
    "m4": (4, ("xlarge", "2xlarge", "4xlarge", "10xlarge", "16xlarge")),
    "m5": (4, ("large", "xlarge", "2xlarge", "4xlarge", "12xlarge", "24xlarge")),
    "m5d": (4, ("large", "xlarge", "2xlarge", "4xlarge", "12xlarge", "24xlarge")),
    "m6i": (4, _LARGE_TO_32),
    "m7i": (4, _LARGE_TO_48),
    "m7i-flex": (4, _FLEX),
    "m8i": (4, _LARGE_TO_96),
    "m8i-flex": (4, _FLEX),
    "c5": (2, ("large", "xlarge", "2xlarge", "4xlarge", "9xlarge", "18xlarge")),
    "c5d": (2, ("large", "xlarge", "2xlarge", "4xlarge", "9xlarge", "18xlarge")),
    "c6i": (2, _LARGE_TO_32),
    "c6in": (2, _LARGE_TO_32),
    "c7i": (2, _LARGE_TO_48),
    "c7i-flex": (2, _FLEX[1:]),
    "c8i": (2, _LARGE_TO_96[1:]),
    "c8i-flex": (2, _FLEX[1:]),
    "r5": (8, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge")),
    "r5d": (8, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge")),
    "r6i": (8, _LARGE_TO_32),
    "r7i": (8, _LARGE_TO_48),
    "r8i": (8, _LARGE_TO_96),
    "r8i-flex": (8, _FLEX),
}
# The sizes whose memory is not a family's GiB per vCPU, or whose vCPUs are not the rule's:
# (vCPUs, GiB) from AWS's instance specifications.
IRREGULAR: dict[str, tuple[int, float]] = {
    "ml.t3.medium": (2, 4),
    "ml.t2.medium": (2, 4), "ml.t2.large": (2, 8), "ml.t2.xlarge": (4, 16), "ml.t2.2xlarge": (8, 32),
    "ml.c4.large": (2, 3.75), "ml.c4.xlarge": (4, 7.5), "ml.c4.2xlarge": (8, 15), "ml.c4.4xlarge": (16, 30),
    "ml.c4.8xlarge": (36, 60),
    "ml.c5n.xlarge": (4, 10.5), "ml.c5n.2xlarge": (8, 21), "ml.c5n.4xlarge": (16, 42),
    "ml.c5n.9xlarge": (36, 96), "ml.c5n.18xlarge": (72, 192),
}


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
        *(Instance(name, vcpus, gib) for name, (vcpus, gib) in IRREGULAR.items()),
        *(
            Instance(f"ml.{family}.{size}", _vcpus(size), _vcpus(size) * gib_per_vcpu)
            for family, (gib_per_vcpu, sizes) in FAMILIES.items()
            for size in sizes
        ),
    ]
}


# What the local target runs, as messages that refuse a type say it.
OFFERED = (
    f"the {', '.join(sorted({name.rsplit('.', 1)[0] for name in INSTANCES}))} families in the sizes "
    "SageMaker offers (x86 CPUs: no Graviton, GPU or accelerator)"
)


def not_reproduced(where: str, instance_type: Any, runs_on: str) -> str:
    """The refusal of an instance type the table lacks, named at `where` in its request."""
    return f"{where} {instance_type} is not an instance type the local target reproduces: {runs_on}"
