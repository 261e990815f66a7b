"""Step caching as SageMaker Pipelines does it: a key made of the attributes AWS documents per step
type, with their values resolved, and an `ExpireAfter` window.

SageMaker compares the step's request only, never the contents of the S3 objects it names: a step
that reads a fixed prefix keeps hitting after new data lands under it. That is why the project
uploads data under a content address (pipelines/publish.py), so the key changes when the data does.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pipelines.local.contract.members import without_nulls

# "Default cache key attributes by pipeline step type" (SageMaker Developer Guide), for the step
# types the local target runs. The other cacheable types (Tuning, AutoML, Transform, checks, EMR)
# never reach the executor.
KEY_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "Processing": ("AppSpecification", "Environment", "ProcessingInputs"),
    "Training": (
        "AlgorithmSpecification",
        "CheckpointConfig",
        "DebugHookConfig",
        "DebugRuleConfigurations",
        "Environment",
        "HyperParameters",
        "InputDataConfig",
    ),
}

# ISO 8601 durations as the guide writes them ("P30D", "30d", "T16m", "30dT5h"): years, months,
# weeks, days, hours, minutes. A year counts 365 days and a month 30.
_DURATION = re.compile(
    r"^P?(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?)?$",
    re.IGNORECASE,
)
_DAYS = {"years": 365, "months": 30, "weeks": 7, "days": 1}


@dataclass(frozen=True)
class CachePolicy:
    """A step's CacheConfig; `expire_after` None means results never expire."""

    expire_after: timedelta | None


def parse_duration(text: str) -> timedelta:
    """An ExpireAfter value as a timedelta; ValueError if it is not a duration the guide allows."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if match is None or not any(match.groupdict().values()) or text.strip().upper().endswith("T"):
        raise ValueError(f"ExpireAfter {text!r} is not an ISO 8601 duration such as P30D or PT1H")
    parts = {name: int(value or 0) for name, value in match.groupdict().items()}
    days = sum(parts[name] * factor for name, factor in _DAYS.items())
    return timedelta(days=days, hours=parts["hours"], minutes=parts["minutes"])


def cache_policy(step: Mapping[str, Any]) -> CachePolicy | None:
    """The step's caching, or None when it is off; ValueError for a malformed CacheConfig."""
    config = step.get("CacheConfig")
    if config is None:
        return None
    if not isinstance(config, dict) or not isinstance(config.get("Enabled", False), bool):
        raise ValueError("CacheConfig must be an object whose Enabled is true or false")
    if not config.get("Enabled", False):
        return None
    expire_after = config.get("ExpireAfter")
    return CachePolicy(None if expire_after is None else parse_duration(expire_after))


def cache_key(step_type: str, arguments: Mapping[str, Any]) -> str | None:
    """A digest of the step's key attributes (resolved values); None for an uncacheable type. A
    null member counts as one not given, as the job's request reads it (contract/members.py)."""
    attributes = KEY_ATTRIBUTES.get(step_type)
    if attributes is None:
        return None
    requested = without_nulls(arguments)
    signature = {name: requested.get(name) for name in attributes}
    canonical = json.dumps([step_type, signature], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
