"""Retry policies of pipeline steps: what the service accepts, how a failure is classified, how
long to wait.

Limits are the SageMaker Python SDK's (sagemaker.mlops.workflow.retry: MaxAttempts 1-20,
ExpireAfterMin 0-14400, exactly one of the two) plus the guide's 12-hour cap on IntervalSeconds;
the step types and exception types are the guide's ("Retry Policy for Pipeline Steps").

A failure's exception type comes from the leading word of its reason, the way SageMaker sorts a
job's FailureReason. The local target produces only some of them: an error of the local service
itself (a runner that raised) is `InternalServerError`, i.e. SageMaker.JOB_INTERNAL_ERROR for a job
and Step.SERVICE_FAULT otherwise. A container that exits non-zero is an AlgorithmError or a
ClientError, which no policy retries, as on SageMaker. Capacity and resource-limit errors come from
EC2 and account quotas, which a single machine does not have, so they never occur locally.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

STEP_EXCEPTIONS = frozenset({"Step.SERVICE_FAULT", "Step.THROTTLING"})
JOB_EXCEPTIONS = frozenset(
    {"SageMaker.JOB_INTERNAL_ERROR", "SageMaker.CAPACITY_ERROR", "SageMaker.RESOURCE_LIMIT"}
)
JOB_STEP_TYPES = frozenset({"Processing", "Training", "Tuning", "AutoML", "Transform", "NotebookJob"})
RETRYABLE_STEP_TYPES = JOB_STEP_TYPES | {"Model", "RegisterModel"}
MAX_ATTEMPTS = 20
MAX_EXPIRE_AFTER_MIN = 14400
MAX_INTERVAL_SECONDS = 43200
DEFAULT_INTERVAL_SECONDS = 1
DEFAULT_BACKOFF_RATE = 2.0

_JOB_REASONS = {
    "InternalServerError": "SageMaker.JOB_INTERNAL_ERROR",
    "CapacityError": "SageMaker.CAPACITY_ERROR",
    "InsufficientCapacityError": "SageMaker.CAPACITY_ERROR",
    "ResourceLimitExceeded": "SageMaker.RESOURCE_LIMIT",
}
_STEP_REASONS = {
    "ThrottlingException": "Step.THROTTLING",
    "Throttling": "Step.THROTTLING",
    "TooManyRequestsException": "Step.THROTTLING",
    "InternalServerError": "Step.SERVICE_FAULT",
    "InternalFailure": "Step.SERVICE_FAULT",
    "ServiceUnavailable": "Step.SERVICE_FAULT",
}


@dataclass(frozen=True)
class RetryPolicy:
    """One entry of a step's RetryPolicies."""

    exception_types: frozenset[str]
    interval_seconds: float
    backoff_rate: float
    max_attempts: int | None
    expire_after_min: int | None

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1 for the first)."""
        return float(self.interval_seconds * self.backoff_rate ** (retry - 1))

    def allows(self, retry: int, elapsed_seconds: float) -> bool:
        """Whether retry number `retry` may start, `elapsed_seconds` after the first attempt."""
        if self.max_attempts is not None:
            return retry <= self.max_attempts
        return elapsed_seconds < (self.expire_after_min or 0) * 60


def _number(policy: Mapping[str, Any], name: str, default: float, low: float, high: float | None) -> float:
    value = policy.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return value


def _integer(policy: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    if name not in policy:
        return None
    value = policy[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _exception_types(step_type: str, policy: Mapping[str, Any]) -> frozenset[str]:
    types = policy.get("ExceptionType")
    if not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types):
        raise ValueError("ExceptionType must be a non-empty list of exception type names")
    allowed = STEP_EXCEPTIONS | (JOB_EXCEPTIONS if step_type in JOB_STEP_TYPES else frozenset())
    unknown = sorted(set(types) - allowed)
    if unknown:
        raise ValueError(
            f"exception type(s) {', '.join(unknown)} cannot apply to a {step_type} step; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    return frozenset(types)


def _policy(step_type: str, policy: Any) -> RetryPolicy:
    if not isinstance(policy, dict):
        raise ValueError(f"a retry policy must be an object, got {policy!r}")
    max_attempts = _integer(policy, "MaxAttempts", 1, MAX_ATTEMPTS)
    expire_after = _integer(policy, "ExpireAfterMin", 0, MAX_EXPIRE_AFTER_MIN)
    if (max_attempts is None) == (expire_after is None):
        raise ValueError("give exactly one of MaxAttempts and ExpireAfterMin")
    return RetryPolicy(
        exception_types=_exception_types(step_type, policy),
        interval_seconds=_number(
            policy, "IntervalSeconds", DEFAULT_INTERVAL_SECONDS, 0, MAX_INTERVAL_SECONDS
        ),
        backoff_rate=_number(policy, "BackoffRate", DEFAULT_BACKOFF_RATE, 0, None),
        max_attempts=max_attempts,
        expire_after_min=expire_after,
    )


def retry_policies(step: Mapping[str, Any]) -> list[RetryPolicy]:
    """The step's RetryPolicies, checked as CreatePipeline checks them (ValueError says why)."""
    policies = step.get("RetryPolicies")
    if policies is None:
        return []
    step_type = step.get("Type", "")
    if step_type not in RETRYABLE_STEP_TYPES:
        raise ValueError(
            f"a {step_type} step cannot have RetryPolicies; they apply to "
            f"{', '.join(sorted(RETRYABLE_STEP_TYPES))} steps"
        )
    if not isinstance(policies, list):
        raise ValueError("RetryPolicies must be a list")
    return [_policy(step_type, policy) for policy in policies]


def exception_type(step_type: str, failure_reason: str) -> str | None:
    """The retry exception type of a failure, from the leading word of its reason, if any."""
    word = failure_reason.split(":", 1)[0].strip()
    if step_type in JOB_STEP_TYPES and word in _JOB_REASONS:
        return _JOB_REASONS[word]
    return _STEP_REASONS.get(word)


def matching_policy(policies: list[RetryPolicy], failure: str | None) -> int | None:
    """Index of the first policy covering `failure` (an exception type), if any."""
    if failure is None:
        return None
    return next((i for i, p in enumerate(policies) if failure in p.exception_types), None)
