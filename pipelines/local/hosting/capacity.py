"""How many instances local hosting runs for one endpoint: more is refused when CreateEndpoint or
UpdateEndpoint asks for it, before anything starts, as SageMaker refuses an endpoint over the
account's instance quota (ResourceLimitExceeded, in its words).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Every instance is a model server process with its own copy of the model and one pre-forked
# worker per core (prefork.py): on a 2-core machine, 4 instances are 12 processes and 8 workers
# contending for 2 cores, already more than the cores can serve in parallel, and 8 copies of the
# model in memory. An update starts the new fleet while the old one serves (blue/green), so the
# limit covers both, as SageMaker's quota must: 2 instances can be updated to 2.
ENDPOINT_INSTANCE_LIMIT = 4


def instance_count(config: Mapping[str, Any]) -> int:
    """The instances an endpoint config's production variants ask for."""
    return sum(int(variant.get("InitialInstanceCount", 1)) for variant in config["ProductionVariants"])


def over_limit(deployed: Mapping[str, Any], serving: Mapping[str, Any] | None) -> str:
    """SageMaker's refusal when `deployed` started beside what `serving` runs (None for a new
    endpoint) would exceed the limit; "" when it fits. SageMaker's quota is per instance type;
    the local one counts the endpoint's instances of every type, so it names the types asked for."""
    used = instance_count(serving) if serving is not None else 0
    delta = instance_count(deployed)
    if used + delta <= ENDPOINT_INSTANCE_LIMIT:
        return ""
    types = ", ".join(sorted({str(v.get("InstanceType", "")) for v in deployed["ProductionVariants"]}))
    return (
        f"The account-level service limit '{types} for endpoint usage' is {ENDPOINT_INSTANCE_LIMIT} "
        f"Instances, with current utilization of {used} Instances and a request delta of {delta} "
        "Instances. Please contact AWS support to request an increase for this limit."
    )
