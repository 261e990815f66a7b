"""The members each object of a pipeline definition may have, as CreatePipeline parses it.

SageMaker reads a definition into typed objects and refuses one with a member it does not know
("Unable to parse pipeline definition. Cannot parse object, unknown property 'Expression'."), so a
misspelt or misplaced member fails at upsert, never silently in a run. The members are those the
SageMaker Python SDK (v2 and v3) writes for the step types the local target runs; a step's
Arguments are checked elsewhere, against their Create* request shape, except a Lambda step's, which
are the function's own event. `all_steps` is the walk over every step, branches included, that
these checks and executor/checks.py share.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pipelines.local.contract.members import object_items, object_member

DEFINITION = ("Version", "Metadata", "Parameters", "PipelineExperimentConfig", "MlflowConfig", "Steps")
PARAMETER = ("Name", "Type", "DefaultValue", "EnumValues")
# Every step's; RetryPolicies too, whose step types retries.py checks in words of its own.
STEP = ("Name", "Type", "Arguments", "DependsOn", "DisplayName", "Description", "RetryPolicies")
STEP_OF_TYPE = {
    "Processing": ("CacheConfig", "PropertyFiles"),
    "Training": ("CacheConfig",),
    "Lambda": ("CacheConfig", "FunctionArn", "OutputParameters"),
}
CACHE_CONFIG = ("Enabled", "ExpireAfter")
RETRY_POLICY = ("ExceptionType", "IntervalSeconds", "BackoffRate", "MaxAttempts", "ExpireAfterMin")
PROPERTY_FILE = ("PropertyFileName", "OutputName", "FilePath")
OUTPUT_PARAMETER = ("OutputName", "OutputType")
ARGUMENTS_OF_TYPE = {"Condition": ("Conditions", "IfSteps", "ElseSteps"), "Fail": ("ErrorMessage",)}
# A Not's condition: SDK v3 writes it as Condition, SDK v2 as Expression.
CONDITION_OF_TYPE = {
    "Or": ("Conditions",), "In": ("QueryValue", "Values"), "Not": ("Condition", "Expression"),
}
COMPARISON = ("LeftValue", "RightValue")


def unknown_members(definition: Mapping[str, Any]) -> list[str]:
    """Where the definition holds a member its object does not have, in SageMaker's words."""
    found = list(_unknown("the definition", definition, DEFINITION))
    for position, parameter in enumerate(object_items(definition.get("Parameters"))):
        found += _unknown(f"Parameters[{position}]", parameter, PARAMETER)
    for step in all_steps(definition.get("Steps")):
        found += _step_members(step)
    return found


def all_steps(steps: Any) -> Iterator[Mapping[str, Any]]:
    """Every step, including those inside Condition branches; anything that is not an object
    becomes a step with no name or type, which the checks of steps report."""
    for step in steps if isinstance(steps, list) else []:
        if not isinstance(step, Mapping):
            yield {"Name": None, "Type": None, "Arguments": {}}
            continue
        yield step
        if step.get("Type") == "Condition":
            arguments = object_member(step, "Arguments")
            yield from all_steps(arguments.get("IfSteps"))
            yield from all_steps(arguments.get("ElseSteps"))


def _step_members(step: Mapping[str, Any]) -> Iterator[str]:
    where, kind = f"step {step.get('Name')}", _type(step)
    yield from _unknown(where, step, STEP + STEP_OF_TYPE.get(kind or "", ()))
    config = step.get("CacheConfig")
    if isinstance(config, Mapping):
        yield from _unknown(f"{where}: CacheConfig", config, CACHE_CONFIG)
    for name, members, listed in (
        ("RetryPolicies", RETRY_POLICY, step.get("RetryPolicies")),
        ("PropertyFiles", PROPERTY_FILE, step.get("PropertyFiles")),
        ("OutputParameters", OUTPUT_PARAMETER, step.get("OutputParameters")),
    ):
        for position, item in enumerate(object_items(listed)):
            yield from _unknown(f"{where}: {name}[{position}]", item, members)
    arguments = step.get("Arguments")
    if isinstance(arguments, Mapping) and kind in ARGUMENTS_OF_TYPE:
        yield from _unknown(f"{where}: Arguments", arguments, ARGUMENTS_OF_TYPE[kind])
    if isinstance(arguments, Mapping) and kind == "Condition":
        for position, condition in enumerate(object_items(arguments.get("Conditions"))):
            yield from _condition_members(f"{where}: Conditions[{position}]", condition)


def _condition_members(where: str, condition: Mapping[str, Any]) -> Iterator[str]:
    kind = _type(condition)
    yield from _unknown(where, condition, ("Type", *CONDITION_OF_TYPE.get(kind or "", COMPARISON)))
    for position, inner in enumerate(object_items(condition.get("Conditions"))):
        yield from _condition_members(f"{where}.Conditions[{position}]", inner)
    for name in CONDITION_OF_TYPE["Not"]:
        if kind == "Not" and isinstance(condition.get(name), Mapping):
            yield from _condition_members(f"{where}.{name}", condition[name])


def _type(value: Mapping[str, Any]) -> str | None:
    """An object's Type when it is a name (the checks of types report any other)."""
    kind = value.get("Type")
    return kind if isinstance(kind, str) else None


def _unknown(where: str, value: Mapping[str, Any], members: tuple[str, ...]) -> Iterator[str]:
    for member in value:
        if member not in members:
            yield f"{where}: Cannot parse object, unknown property '{member}'"
