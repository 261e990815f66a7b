"""Values checked against a shape of a service model, every violation worded as AWS words it.

botocore's own ParamValidator checks required members, types and minimums on the client; AWS checks
the rest (maximums, patterns, enums) on the server. This checks all of them, and refuses members the
shape does not define, so a request that passes here is one AWS would accept as well-formed:

    validate(operation_model("sagemaker", "CreatePipeline").input_shape, request) -> list[str]

Member paths read as AWS's do: `pipelineName`, `processingResources.clusterConfig.instanceCount`,
`tags.1.member.key` (list positions count from 1).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from botocore.model import ListShape, MapShape, Shape, StructureShape

from pipelines.local.contract.patterns import matches

MAX_DEPTH = 64  # deeper than any shape of the models; a value nested further is refused
INTEGER_RANGE = {"integer": 2**31, "long": 2**63}  # Java's int and long
TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "long": "an integer",
    "float": "a number",
    "double": "a number",
    "boolean": "a boolean",
    "timestamp": "a timestamp (seconds since the epoch or ISO 8601)",
    "blob": "base64-encoded binary data",
    "list": "a list",
    "map": "a map",
    "structure": "a structure",
}


Unknown = Callable[[Shape, Any], bool]


def validate(shape: Shape, value: Any, path: str = "", unknown: Unknown | None = None) -> list[str]:
    """Every way `value` breaks `shape`, in AWS's words; empty when it conforms. `path` names
    the value itself in the messages (a request's members name themselves). Parts for which
    `unknown(shape, value)` is true (a pipeline expression, known only at run time, where the
    shape lets one stand) are taken as conforming."""
    errors: list[str] = []
    _check(shape, value, path, 0, errors, unknown or _never)
    return errors


def without_nulls(shape: Shape, value: Any) -> Any:
    """A value `validate` accepts, with its null structure members left out: `validate` reads a
    null member as one not given, and AWS treats it so, so an operation never sees one."""
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        return {name: without_nulls(shape.members[name], item) if name in shape.members else item
                for name, item in value.items() if item is not None}
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [without_nulls(shape.member, item) for item in value]
    if isinstance(shape, MapShape) and isinstance(value, dict):
        return {key: without_nulls(shape.value, item) for key, item in value.items()}
    return value


def _never(shape: Shape, value: Any) -> bool:
    return False


def summary(errors: list[str]) -> str:
    """AWS's ValidationException message for a list of violations."""
    count = len(errors)
    return f"{count} validation error{'s' if count != 1 else ''} detected: " + "; ".join(errors)


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return "'" + (text if len(text) <= 200 else text[:200] + "...") + "'"


def _violation(value: Any, path: str, constraint: str) -> str:
    return f"Value {_shown(value)} at '{path}' failed to satisfy constraint: Member {constraint}"


def over_limit(value: float, members: tuple[str, ...], high: float) -> str:
    """AWS's words for a member over a limit a service enforces beyond its model's (Lambda's Timeout
    is at most 900 seconds where the model allows the 5400 of Lambda Managed Instances)."""
    path = ""
    for name in members:
        path = _member(path, name)
    return _violation(value, path, f"must have value less than or equal to {high}")


def _member(path: str, name: str) -> str:
    member = name[:1].lower() + name[1:]
    return f"{path}.{member}" if path else member


def _check(shape: Shape, value: Any, path: str, depth: int, errors: list[str], unknown: Unknown) -> None:
    if unknown(shape, value):
        return
    if depth > MAX_DEPTH:
        errors.append(_violation("...", path, f"must not be nested deeper than {MAX_DEPTH} levels"))
        return
    kind = shape.type_name
    if not _has_type(kind, value):
        errors.append(_violation(value, path, f"must be {TYPE_WORDS.get(kind, kind)}"))
        return
    if isinstance(shape, StructureShape):
        _check_structure(shape, value, path, depth, errors, unknown)
    elif isinstance(shape, ListShape):
        _check_size(shape, value, len(value), "length", path, errors)
        for index, item in enumerate(value, start=1):
            _check(shape.member, item, f"{path}.{index}.member", depth + 1, errors, unknown)
    elif isinstance(shape, MapShape):
        _check_size(shape, value, len(value), "length", path, errors)
        for key, item in value.items():
            _check(shape.key, key, f"{path}.key", depth + 1, errors, unknown)
            _check(shape.value, item, f"{path}.{key}", depth + 1, errors, unknown)
    elif kind == "string":
        _check_string(shape, value, path, errors)
    elif kind == "blob":
        _check_size(shape, value, len(_blob_bytes(value)), "length", path, errors)
    elif kind in ("integer", "long", "float", "double"):
        _check_size(shape, value, value, "value", path, errors)


def _has_type(kind: str, value: Any) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind in INTEGER_RANGE:
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) < INTEGER_RANGE[kind]
    if kind in ("float", "double"):
        return number and math.isfinite(value)
    if kind == "timestamp":
        return (number and math.isfinite(value)) or (isinstance(value, str) and _iso_timestamp(value))
    if kind == "blob":
        return isinstance(value, bytes) or (isinstance(value, str) and _base64(value))
    expected = {"string": str, "boolean": bool, "list": list, "map": dict, "structure": dict}
    return isinstance(value, expected.get(kind, object))


def _iso_timestamp(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _blob_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else base64.b64decode(value)


def _check_structure(
    shape: StructureShape, value: dict[str, Any], path: str, depth: int, errors: list[str], unknown: Unknown
) -> None:
    for name in shape.required_members:
        if value.get(name) is None:
            errors.append(_violation(None, _member(path, name), "must not be null"))
    present = [name for name, item in value.items() if item is not None]
    if shape.is_tagged_union and len(present) != 1:
        errors.append(_violation(value, path or shape.name, "must have exactly one member set"))
    for name in present:
        member = shape.members.get(name)
        if member is None:
            errors.append(_violation(value[name], _member(path, name), f"is not defined by {shape.name}"))
        else:
            _check(member, value[name], _member(path, name), depth + 1, errors, unknown)


def _check_string(shape: Shape, value: str, path: str, errors: list[str]) -> None:
    enum = getattr(shape, "enum", None)
    if enum and value not in enum:
        errors.append(_violation(value, path, f"must satisfy enum value set: [{', '.join(enum)}]"))
        return
    # Java counts a string's length in UTF-16 code units.
    length = len(value.encode("utf-16-le")) // 2
    if not _check_size(shape, value, length, "length", path, errors):
        return  # a pattern is only tried on a value of bounded length
    pattern = shape.metadata.get("pattern")
    if pattern is not None and not matches(pattern, value):
        errors.append(_violation(value, path, f"must satisfy regular expression pattern: {pattern}"))


def _check_size(shape: Shape, value: Any, size: float, what: str, path: str, errors: list[str]) -> bool:
    """min/max: a length for strings, blobs, lists and maps, the value itself for numbers."""
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and size < low:
        errors.append(_violation(value, path, f"must have {what} greater than or equal to {low}"))
        return False
    if high is not None and size > high:
        errors.append(_violation(value, path, f"must have {what} less than or equal to {high}"))
        return False
    return True
