"""The expression language of SageMaker pipeline definitions (schema 2020-12-01).

A definition value may be a reference (`{"Get": "Parameters.X"}`, `{"Get": "Execution.X"}`,
`{"Get": "PipelineExperimentConfig.X"}`, `{"Get": "Steps.X.<path>"}`), a function (`Std:Join`,
`Std:JsonGet`) or, inside a Condition step, a condition. This module turns such values into plain
JSON values for one execution, the way the SageMaker Pipelines service does before it calls
CreateProcessingJob and friends.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipelines.local.contract.expression_syntax import function_name, is_expression
from pipelines.local.system.clock import format_timestamp

EXECUTION_VARIABLES = frozenset(
    {
        "PipelineExecutionId",
        "PipelineExecutionArn",
        "PipelineName",
        "PipelineArn",
        "StartDateTime",
        "CurrentDateTime",
    }
)
# Execution variables SageMaker has that the local executor does not resolve: each names the job
# of the step that reads it, which is named only once the step's Arguments are resolved here.
UNRESOLVED_VARIABLES = {
    "TrainingJobName": "the name of the training job its Training step launches",
    "ProcessingJobName": "the name of the processing job its Processing step launches",
}
EXPERIMENT_NAMES = ("ExperimentName", "TrialName")  # what PipelineExperimentConfig.* may name
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "GreaterThan": operator.gt,
    "GreaterThanOrEqualTo": operator.ge,
    "LessThan": operator.lt,
    "LessThanOrEqualTo": operator.le,
}
CONDITION_TYPES = ("Equals", *_COMPARISONS, "In", "Not", "Or")
FUNCTIONS = ("Std:Join", "Std:JsonGet")
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_ATTRIBUTE = re.compile(r"[^.\[\]]+")
_BRACKET = re.compile(r"""\[(?:(\d+)|'([^']*)'|"([^"]*)")\]""")
_MISSING = object()


class ExpressionError(ValueError):
    """A definition value could not be resolved; the message names the value and the reason."""


@dataclass(frozen=True)
class Segment:
    """One step of a property or JSON path: `.name`, `['name']` or `[0]`."""

    value: str | int
    quoted: bool = False

    def render(self, first: bool) -> str:
        """Write the segment back as it appears in a path, for error messages."""
        if isinstance(self.value, int):
            return f"[{self.value}]"
        if self.quoted:
            return f"['{self.value}']"
        return self.value if first else f".{self.value}"


@dataclass(frozen=True)
class Reference:
    """A parsed `{"Get": ...}` target, e.g. Steps.Train.ModelArtifacts.S3ModelArtifacts."""

    expression: str
    namespace: str
    name: str
    path: tuple[Segment, ...] = ()

    @property
    def is_property_file(self) -> bool:
        """Steps.E.PropertyFiles.Name: only meaningful inside Std:JsonGet."""
        return bool(self.path) and self.path[0] == Segment("PropertyFiles")


@dataclass(frozen=True)
class Scope:
    """Everything an expression may read during one execution.

    `properties` is the live map of finished steps' properties (it grows while the execution
    runs); `steps` holds the raw step definitions, needed for their PropertyFiles.
    """

    parameters: Mapping[str, Any]
    execution: Mapping[str, str]
    steps: Mapping[str, Mapping[str, Any]]
    properties: Mapping[str, Mapping[str, Any]]
    read_json: Callable[[str], Any]
    now: Callable[[], datetime]
    experiment: Mapping[str, str] = field(default_factory=dict)  # the resolved PipelineExperimentConfig


class _MissingPath(Exception):
    """A path walk stopped; `prefix` is the path up to and including the failing segment."""

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix)
        self.prefix = prefix


def parse_path(path: str) -> tuple[Segment, ...]:
    """Split `a.b[0]['c d']` into segments; raise ExpressionError on malformed paths."""
    segments: list[Segment] = []
    position = 0
    while position < len(path):
        if path[position] == "[":
            bracket = _BRACKET.match(path, position)
            if bracket is None:
                raise ExpressionError(f"malformed path {path!r} at position {position}")
            index, single, double = bracket.groups()
            if index is not None:
                segments.append(Segment(int(index)))
            else:
                segments.append(Segment(single if single is not None else double, quoted=True))
            position = bracket.end()
            continue
        if segments:
            if path[position] != ".":
                raise ExpressionError(f"malformed path {path!r} at position {position}")
            position += 1
        attribute = _ATTRIBUTE.match(path, position)
        if attribute is None:
            raise ExpressionError(f"malformed path {path!r} at position {position}")
        segments.append(Segment(attribute.group()))
        position = attribute.end()
    if not segments:
        raise ExpressionError("empty path")
    return tuple(segments)


def parse_reference(expression: str) -> Reference:
    """Parse the target of a Get; raise ExpressionError naming what is wrong with it."""
    namespace, _, rest = expression.partition(".")
    if namespace in ("Parameters", "Execution"):
        if not _NAME.fullmatch(rest):
            raise ExpressionError(f"{expression}: malformed {namespace} reference")
        if namespace == "Execution" and rest in UNRESOLVED_VARIABLES:
            raise ExpressionError(
                f"{expression} ({UNRESOLVED_VARIABLES[rest]}) is not supported by the local SageMaker, "
                f"which resolves {', '.join(sorted(EXECUTION_VARIABLES))} (run this pipeline with "
                "--target sagemaker)"
            )
        if namespace == "Execution" and rest not in EXECUTION_VARIABLES:
            raise ExpressionError(f"{expression}: unknown execution variable {rest}")
        return Reference(expression, namespace, rest)
    if namespace == "PipelineExperimentConfig":
        if rest not in EXPERIMENT_NAMES:
            raise ExpressionError(f"{expression}: expected {' or '.join(EXPERIMENT_NAMES)}")
        return Reference(expression, namespace, rest)
    if namespace != "Steps":
        raise ExpressionError(
            f"{expression}: unknown reference (expected Parameters, Execution, "
            "PipelineExperimentConfig or Steps)"
        )
    name = _NAME.match(rest)
    if name is None or name.end() == len(rest):
        raise ExpressionError(f"{expression}: expected Steps.<StepName>.<property path>")
    path_text = rest[name.end() + 1 :] if rest[name.end()] == "." else rest[name.end() :]
    try:
        path = parse_path(path_text)
    except ExpressionError as error:
        raise ExpressionError(f"{expression}: {error}") from None
    return Reference(expression, namespace, name.group(), path)


def _iter_gets(value: Any) -> Iterator[str]:
    """Every Get target inside a value, however deeply nested in functions or data."""
    if isinstance(value, list):
        for item in value:
            yield from _iter_gets(item)
    elif isinstance(value, dict):
        if function_name(value) == "Get":
            target = value["Get"]
            if not isinstance(target, str):
                raise ExpressionError(f"Get expects a string, got {target!r}")
            yield target
            return
        for item in value.values():
            yield from _iter_gets(item)


def get_references(value: Any) -> list[Reference]:
    """All references in a value, parsed (raises ExpressionError on a malformed one)."""
    return [parse_reference(target) for target in _iter_gets(value)]


def references(value: Any) -> set[str]:
    """Names of the steps a value reads from; the executor orders steps by them."""
    return {ref.name for ref in get_references(value) if ref.namespace == "Steps"}


def render_string(value: Any) -> str:
    """A scalar as SageMaker renders it in Std:Join: bools lower-case, numbers plain."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    raise ExpressionError(f"cannot render {type(value).__name__} {value!r} as a string")


def resolve(value: Any, scope: Scope) -> Any:
    """Replace every Get / Std:Join / Std:JsonGet in a value by its current value."""
    if isinstance(value, list):
        return [resolve(item, scope) for item in value]
    if not isinstance(value, dict):
        return value
    function = function_name(value)
    if function is None:
        return {key: resolve(item, scope) for key, item in value.items()}
    if function == "Get":
        return _resolve_get(value["Get"], scope)
    problem = _arguments_problem(function, value[function])
    if problem is not None:
        raise ExpressionError(problem)
    if function == "Std:Join":
        return _join(value[function], scope)
    return _json_get(value[function], scope)


def function_problems(value: Any) -> Iterator[str]:
    """What is wrong with the functions inside a value, known before anything runs: a Std:*
    function SageMaker does not have, or a Std:Join or Std:JsonGet whose arguments are not shaped as
    the service parses them. CreatePipeline refuses such a definition; resolving it would fail
    only once the step that holds it is reached."""
    if isinstance(value, list):
        for item in value:
            yield from function_problems(item)
        return
    if not isinstance(value, dict):
        return
    function = function_name(value)
    if function == "Get":
        return
    if function is None:
        for item in value.values():
            yield from function_problems(item)
        return
    problem = _arguments_problem(function, value[function])
    if problem is not None:
        yield problem
    else:
        yield from function_problems(value[function])


def _arguments_problem(function: str, arguments: Any) -> str | None:
    """Why a function's arguments are not what it takes, or None; expressions pass here and are
    checked again once resolved."""
    if function not in FUNCTIONS:
        return f"unsupported function {function} (the functions are {' and '.join(FUNCTIONS)})"
    if not isinstance(arguments, dict):
        return f"{function} expects an object of arguments, got {arguments!r}"
    if function == "Std:Join":
        if not isinstance(arguments.get("Values"), list):
            return f"Std:Join expects {{'On': ..., 'Values': [...]}}, got {arguments!r}"
        return _not_a_string("Std:Join: On", arguments.get("On", ""))
    if "Path" not in arguments:
        return f"Std:JsonGet expects a Path, got {arguments!r}"
    if "PropertyFile" in arguments:
        property_file = arguments["PropertyFile"]
        if not isinstance(property_file, dict) or not isinstance(property_file.get("Get"), str):
            return f"Std:JsonGet: PropertyFile must be a Get, got {property_file!r}"
    elif "S3Uri" not in arguments:
        return "Std:JsonGet needs a PropertyFile or an S3Uri"
    return _not_a_string("Std:JsonGet: Path", arguments["Path"]) or _not_a_string(
        "Std:JsonGet: S3Uri", arguments.get("S3Uri", "")
    )


def _not_a_string(what: str, value: Any) -> str | None:
    if isinstance(value, str) or is_expression(value):
        return None
    return f"{what} must be a string, got {value!r}"


def _resolve_get(target: Any, scope: Scope) -> Any:
    if not isinstance(target, str):
        raise ExpressionError(f"Get expects a string, got {target!r}")
    ref = parse_reference(target)
    if ref.namespace == "Parameters":
        if ref.name not in scope.parameters:
            raise ExpressionError(f"{target}: no such parameter")
        return scope.parameters[ref.name]
    if ref.namespace == "Execution":
        return _execution_variable(ref, scope)
    if ref.namespace == "PipelineExperimentConfig":
        if ref.name not in scope.experiment:
            raise ExpressionError(f"{target}: the definition has no PipelineExperimentConfig")
        return scope.experiment[ref.name]
    if ref.is_property_file:
        raise ExpressionError(f"{target}: a property file can only be read through Std:JsonGet")
    return _step_property(ref, ref.path, scope)


def _execution_variable(ref: Reference, scope: Scope) -> str:
    if ref.name == "CurrentDateTime":
        return format_timestamp(scope.now())
    if ref.name not in scope.execution:
        raise ExpressionError(f"{ref.expression}: not available in this execution")
    return scope.execution[ref.name]


def _step_property(ref: Reference, path: tuple[Segment, ...], scope: Scope) -> Any:
    """Walk `path` through the properties of the step `ref` names."""
    if ref.name not in scope.properties:
        state = "has not run" if ref.name in scope.steps else "does not exist"
        raise ExpressionError(f"{ref.expression}: step {ref.name} {state}")
    try:
        return _walk(scope.properties[ref.name], path, named_lists=True)
    except _MissingPath as missing:
        raise ExpressionError(
            f"{ref.expression}: step {ref.name} has no property {missing.prefix}"
        ) from None


def _walk(root: Any, path: tuple[Segment, ...], named_lists: bool) -> Any:
    """Follow a path; `named_lists` enables `['x']` on a list (property paths only)."""
    current = root
    for position, segment in enumerate(path):
        current = _step_into(current, segment, named_lists)
        if current is _MISSING:
            prefix = "".join(part.render(i == 0) for i, part in enumerate(path[: position + 1]))
            raise _MissingPath(prefix)
    return current


def _step_into(current: Any, segment: Segment, named_lists: bool) -> Any:
    key = segment.value
    if isinstance(key, int):
        return current[key] if isinstance(current, list) and key < len(current) else _MISSING
    if isinstance(current, dict):
        return current.get(key, _MISSING)
    if isinstance(current, list) and named_lists and segment.quoted:
        return _named_element(current, key)
    return _MISSING


def _named_element(items: list[Any], name: str) -> Any:
    """The element whose `*Name` field equals name; a {Name, Value} pair yields its Value.

    The second rule is what makes `Steps.L.OutputParameters['action']` the Lambda output itself.
    """
    for item in items:
        if not isinstance(item, dict):
            continue
        for key, value in item.items():
            if key.endswith("Name") and value == name:
                return item["Value"] if key == "Name" and "Value" in item else item
    return _MISSING


def _join(arguments: Mapping[str, Any], scope: Scope) -> str:
    separator = resolve(arguments.get("On", ""), scope)
    if not isinstance(separator, str):
        raise ExpressionError(f"Std:Join: On must be a string, got {separator!r}")
    parts = []
    for position, item in enumerate(arguments["Values"]):
        value = resolve(item, scope)
        try:
            parts.append(render_string(value))
        except ExpressionError as error:
            raise ExpressionError(f"Std:Join: value {position}: {error}") from None
    return separator.join(parts)


def _json_get(arguments: Mapping[str, Any], scope: Scope) -> Any:
    json_path = resolve(arguments["Path"], scope)
    if not isinstance(json_path, str):
        raise ExpressionError(f"Std:JsonGet: Path must be a string, got {json_path!r}")
    if "PropertyFile" in arguments:
        uri = _property_file_uri(arguments["PropertyFile"], scope)
    else:
        uri = resolve(arguments["S3Uri"], scope)
        if not isinstance(uri, str):
            raise ExpressionError(f"Std:JsonGet: S3Uri must be a string, got {uri!r}")
    document = _read_document(uri, scope)
    try:
        path = parse_path(json_path.removeprefix("$").removeprefix("."))
        return _walk(document, path, named_lists=False)
    except ExpressionError as error:
        raise ExpressionError(f"Std:JsonGet: {error}") from None
    except _MissingPath as missing:
        raise ExpressionError(f"Std:JsonGet: {uri} has no value at {missing.prefix}") from None


def _property_file_uri(property_file: Any, scope: Scope) -> str:
    """`<S3Uri of the step's output OutputName>/<FilePath>` for a PropertyFile reference."""
    target = property_file["Get"]
    ref = parse_reference(target)
    if not ref.is_property_file or len(ref.path) != 2 or ref.path[1].quoted:
        raise ExpressionError(f"{target}: expected Steps.<StepName>.PropertyFiles.<Name>")
    file_name = ref.path[1].value
    declared = scope.steps.get(ref.name, {}).get("PropertyFiles", [])
    entry = next(
        (f for f in declared if isinstance(f, dict) and f.get("PropertyFileName") == file_name),
        None,
    )
    if entry is None:
        raise ExpressionError(f"{target}: step {ref.name} declares no property file {file_name}")
    output_uri_path = (
        Segment("ProcessingOutputConfig"),
        Segment("Outputs"),
        Segment(str(entry.get("OutputName", "")), quoted=True),
        Segment("S3Output"),
        Segment("S3Uri"),
    )
    output_uri = _step_property(ref, output_uri_path, scope)
    return f"{str(output_uri).rstrip('/')}/{str(entry.get('FilePath', '')).lstrip('/')}"


def _read_document(uri: str, scope: Scope) -> Any:
    try:
        return scope.read_json(uri)
    except Exception as error:  # read_json is injected: any failure is a resolution failure
        raise ExpressionError(f"Std:JsonGet: cannot read {uri}: {error!r}") from None


def evaluate_conditions(conditions: Any, scope: Scope) -> bool:
    """A Condition step's Conditions list: true when every condition holds."""
    problem = next(conditions_problems(conditions), None)
    if problem is not None:
        raise ExpressionError(problem)
    return all(evaluate_condition(condition, scope) for condition in conditions)


def conditions_problems(conditions: Any) -> Iterator[str]:
    """What is wrong with a Condition step's Conditions, known before anything runs: not a list,
    or a condition in it that `condition_problems` finds wrong."""
    if not isinstance(conditions, list):
        yield f"Conditions must be a list of conditions, got {conditions!r}"
        return
    for condition in conditions:
        yield from condition_problems(condition)


def evaluate_condition(condition: Any, scope: Scope) -> bool:
    """One condition (Equals, GreaterThan..., In, Not, Or), its operands resolved first."""
    problem = next(_own_problems(condition), None)
    if problem is not None:
        raise ExpressionError(problem)
    kind = condition["Type"]
    if kind == "Not":
        return not evaluate_condition(_negated(condition), scope)
    if kind == "Or":
        return any(evaluate_condition(branch, scope) for branch in condition["Conditions"])
    if kind == "In":
        query = resolve(condition["QueryValue"], scope)
        values = resolve(condition["Values"], scope)
        if not isinstance(values, list):
            raise ExpressionError(f"In: Values must be a list, got {values!r}")
        return any(_equal(query, value) for value in values)
    left, right = resolve(condition["LeftValue"], scope), resolve(condition["RightValue"], scope)
    return _equal(left, right) if kind == "Equals" else _compare(kind, left, right)


def condition_problems(condition: Any) -> Iterator[str]:
    """What is wrong with a condition and those inside it, known before anything runs: an
    unknown type, or a member its type needs missing or of the wrong kind."""
    own = list(_own_problems(condition))
    yield from own
    if own:
        return
    if condition["Type"] == "Not":
        yield from condition_problems(_negated(condition))
    elif condition["Type"] == "Or":
        for branch in condition["Conditions"]:
            yield from condition_problems(branch)


def _own_problems(condition: Any) -> Iterator[str]:
    kind = condition.get("Type") if isinstance(condition, dict) else None
    if kind not in CONDITION_TYPES:
        yield f"unknown condition type {kind!r} (one of {', '.join(CONDITION_TYPES)})"
    elif kind == "Not" and _negated(condition) is None:
        yield "Not: missing the Condition it negates"
    elif kind == "Or" and not isinstance(condition.get("Conditions"), list):
        yield f"Or: Conditions must be a list, got {condition.get('Conditions')!r}"
    elif kind == "In":
        if "QueryValue" not in condition:
            yield "In: missing QueryValue"
        values = condition.get("Values")
        if not isinstance(values, list) and not is_expression(values):
            yield f"In: Values must be a list, got {values!r}"
    elif kind not in ("Not", "Or"):
        missing = [side for side in ("LeftValue", "RightValue") if side not in condition]
        yield from (f"{kind}: missing {side}" for side in missing)


def _negated(condition: Mapping[str, Any]) -> Any:
    """The condition a Not negates: SDK v3 writes it as Condition, SDK v2 as Expression."""
    return condition.get("Condition", condition.get("Expression"))


def _as_number(value: Any) -> int | float | None:
    """A number, or a string that spells one; None otherwise (bools are not numbers here)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        for parse in (int, float):
            try:
                return parse(value)
            except ValueError:
                continue
    return None


def _equal(left: Any, right: Any) -> bool:
    """Numbers compare numerically (0.8 == "0.80"), other scalars by their rendering."""
    left_number, right_number = _as_number(left), _as_number(right)
    if (
        left_number is not None
        and right_number is not None
        and not (isinstance(left, str) and isinstance(right, str))
    ):
        return left_number == right_number
    scalars = (str, int, float, bool)
    if isinstance(left, scalars) and isinstance(right, scalars):
        return render_string(left) == render_string(right)
    return bool(left == right)


def _compare(kind: str, left: Any, right: Any) -> bool:
    """Ordering conditions: numbers (numeric strings coerced), else two strings (timestamps)."""
    left_number, right_number = _as_number(left), _as_number(right)
    if left_number is not None and right_number is not None:
        return _COMPARISONS[kind](left_number, right_number)
    if isinstance(left, str) and isinstance(right, str):
        return _COMPARISONS[kind](left, right)
    raise ExpressionError(f"{kind}: cannot compare {left!r} with {right!r}")
