"""Run one pipeline execution from its definition JSON, the way SageMaker Pipelines does.

The executor owns what the Pipelines service owns: parameter typing, step ordering, Condition
branches, Fail steps, retry (steps that already succeeded are not run again) and failure
propagation. The work of every other step type is delegated to a runner chosen by step Type.

Steps whose dependencies have finished run at the same time, as on SageMaker (Evaluate and
Baseline both wait only for Train). Runners run on worker threads; everything that reads or
records execution state (arguments, conditions, the journal) stays on the calling thread. When a
step fails or a stop is requested, no new step starts; steps already running finish first.
"""

from __future__ import annotations

import graphlib
import heapq
import math
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pipelines.local.executor.checks import definition_problems
from pipelines.local.executor.expressions import (
    ExpressionError,
    Scope,
    evaluate_conditions,
    get_references,
    render_string,
    resolve,
)
from pipelines.local.system.clock import format_timestamp

StepStatus = Literal["Succeeded", "Failed"]
ExecutionStatus = Literal["Succeeded", "Failed", "Stopped"]
EXECUTION_FAILURE = "Step failure: One or multiple steps failed."
Branch = tuple[str, bool]


class ParameterError(ValueError):
    """A pipeline parameter override is unknown, missing or not of the declared type."""


class DefinitionError(ValueError):
    """The definition cannot run at all (bad reference, cycle...); raised before any step runs."""


@dataclass(frozen=True)
class ExecutionContext:
    """Identity of the execution, exposed to expressions as Execution.* variables."""

    pipeline_name: str
    pipeline_arn: str
    execution_id: str
    execution_arn: str
    start_time: datetime


@dataclass(frozen=True)
class StepRequest:
    """What a runner gets: `arguments` fully resolved, `step` the raw definition entry."""

    name: str
    type: str
    arguments: dict[str, Any]
    step: Mapping[str, Any]
    context: ExecutionContext
    display_name: str | None = None
    description: str | None = None


@dataclass
class StepOutcome:
    """A finished step: `properties` feed Steps.<Name>.* references, `metadata` the step list."""

    status: StepStatus
    properties: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    failure_reason: str = ""


@dataclass(frozen=True)
class ExecutionResult:
    """How the execution ended; failure_reason is empty unless it Failed."""

    status: ExecutionStatus
    failure_reason: str = ""


StepRunner = Callable[[StepRequest], StepOutcome]


class Journal(Protocol):
    """Where step progress is recorded (the service, through runner.py), and where a retry
    learns what succeeded."""

    def step_started(
        self,
        name: str,
        type: str,
        display_name: str | None,
        description: str | None,
        start: datetime,
    ) -> None:
        """A step is about to run."""

    def step_finished(self, name: str, outcome: StepOutcome, end: datetime) -> None:
        """A step that was started has finished (Succeeded or Failed)."""

    def completed_steps(self) -> Mapping[str, StepOutcome]:
        """Steps that already succeeded in an earlier attempt of this execution."""


@dataclass(frozen=True)
class _PlannedStep:
    """A step of the flattened definition with everything it waits for."""

    index: int
    name: str
    step: Mapping[str, Any]
    depends_on: frozenset[str]
    branch: Branch | None


def _utc_now() -> datetime:
    return datetime.now(UTC)


# Parameters ------------------------------------------------------------------------------------


def _parse_string(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError
    return raw


def _parse_integer(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValueError
    return int(raw)


def _parse_float(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueError
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError
    return value


def _parse_boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    raise ValueError


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "String": _parse_string,
    "Integer": _parse_integer,
    "Float": _parse_float,
    "Boolean": _parse_boolean,
}


def _declared_parameters(definition: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    declarations = definition.get("Parameters") or []
    if not isinstance(declarations, list) or not all(
        isinstance(d, dict) and isinstance(d.get("Name"), str) for d in declarations
    ):
        raise DefinitionError("Parameters must be a list of objects with a Name")
    return {d["Name"]: d for d in declarations}


def _typed_parameter(declaration: Mapping[str, Any], raw: Any) -> Any:
    """Parse a parameter value (an override string or a JSON default) as its declared Type."""
    name, kind = declaration["Name"], declaration.get("Type", "String")
    parser = _PARSERS.get(kind)
    if parser is None:
        raise ParameterError(f"parameter {name}: unsupported type {kind}")
    try:
        value = parser(raw)
    except ValueError:
        raise ParameterError(f"parameter {name}: {raw!r} is not a valid {kind}") from None
    allowed = declaration.get("EnumValues")
    if allowed and value not in [parser(option) for option in allowed]:
        raise ParameterError(f"parameter {name}: {raw!r} is not one of {allowed}")
    return value


def resolve_parameters(
    definition: Mapping[str, Any], overrides: Mapping[str, str]
) -> dict[str, Any]:
    """Typed values of all declared parameters: defaults merged with the execution's overrides."""
    declared = _declared_parameters(definition)
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {', '.join(unknown)}; declared: {', '.join(declared) or 'none'}"
        )
    values: dict[str, Any] = {}
    for name, declaration in declared.items():
        raw = overrides.get(name, declaration.get("DefaultValue"))
        if raw is None:
            raise ParameterError(f"parameter {name} has no default value and no value was given")
        values[name] = _typed_parameter(declaration, raw)
    return values


# Planning --------------------------------------------------------------------------------------


def _flatten(
    steps: Any, branch: Branch | None
) -> Iterator[tuple[Mapping[str, Any], Branch | None]]:
    """Every step, Condition branches inlined right after their condition (definition order)."""
    if not isinstance(steps, list):
        raise DefinitionError(f"a step list must be a list, got {steps!r}")
    for step in steps:
        if not (
            isinstance(step, dict)
            and isinstance(step.get("Name"), str)
            and isinstance(step.get("Type"), str)
            and isinstance(step.get("Arguments", {}), dict)
        ):
            raise DefinitionError(f"a step needs a Name, a Type and object Arguments: {step!r}")
        yield step, branch
        if step["Type"] == "Condition":
            arguments = step.get("Arguments", {})
            yield from _flatten(arguments.get("IfSteps", []), (step["Name"], True))
            yield from _flatten(arguments.get("ElseSteps", []), (step["Name"], False))


def _own_expressions(step: Mapping[str, Any]) -> Any:
    """The part of a step that it evaluates itself (a Condition's branches are other steps)."""
    arguments = step.get("Arguments", {})
    return arguments.get("Conditions", []) if step["Type"] == "Condition" else arguments


def _explicit_dependencies(step: Mapping[str, Any]) -> set[str]:
    depends_on = step.get("DependsOn", [])
    if not isinstance(depends_on, list) or not all(isinstance(n, str) for n in depends_on):
        raise DefinitionError(f"step {step['Name']}: DependsOn must be a list of step names")
    return set(depends_on)


def _dependencies(
    step: Mapping[str, Any], branch: Branch | None, steps: set[str], parameters: set[str]
) -> frozenset[str]:
    """DependsOn, every Steps.X reference and the owning condition; checks every reference."""
    name = step["Name"]
    try:
        refs = get_references(_own_expressions(step))
    except ExpressionError as error:
        raise DefinitionError(f"step {name}: {error}") from None
    for ref in refs:
        if ref.namespace == "Steps" and ref.name not in steps:
            raise DefinitionError(
                f"step {name} refers to unknown step {ref.name}: {ref.expression}"
            )
        if ref.namespace == "Parameters" and ref.name not in parameters:
            raise DefinitionError(f"step {name} refers to undeclared parameter {ref.name}")
    depends_on = _explicit_dependencies(step)
    unknown = sorted(depends_on - steps)
    if unknown:
        raise DefinitionError(f"step {name} depends on unknown step(s) {', '.join(unknown)}")
    depends_on |= {ref.name for ref in refs if ref.namespace == "Steps"}
    if branch is not None:
        depends_on.add(branch[0])
    return frozenset(depends_on)


def _plan(definition: Mapping[str, Any]) -> list[_PlannedStep]:
    """Flattened steps in run order; raises DefinitionError for anything that cannot run."""
    flat = list(_flatten(definition.get("Steps"), None))
    names = [step["Name"] for step, _ in flat]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise DefinitionError(f"duplicate step name(s): {', '.join(duplicates)}")
    parameters = set(_declared_parameters(definition))
    planned = [
        _PlannedStep(
            i, step["Name"], step, _dependencies(step, branch, set(names), parameters), branch
        )
        for i, (step, branch) in enumerate(flat)
    ]
    return _topological(planned)


def _topological(planned: list[_PlannedStep]) -> list[_PlannedStep]:
    """The run order; among steps ready together the earliest in the definition goes first."""
    by_name = {p.name: p for p in planned}
    sorter = graphlib.TopologicalSorter({p.name: p.depends_on for p in planned})
    try:
        sorter.prepare()
    except graphlib.CycleError as error:
        raise DefinitionError(f"dependency cycle: {' -> '.join(_waits_on(error.args[1], by_name))}") from None
    ready = [(by_name[name].index, name) for name in sorter.get_ready()]
    heapq.heapify(ready)
    order: list[_PlannedStep] = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(by_name[name])
        sorter.done(name)
        for dependent in sorter.get_ready():
            heapq.heappush(ready, (by_name[dependent].index, dependent))
    return order


def _waits_on(cycle: list[str], by_name: Mapping[str, _PlannedStep]) -> list[str]:
    """graphlib's cycle (each node before one that depends on it) as "X waits on Y" order,
    starting from the step that comes first in the definition."""
    nodes = list(reversed(cycle[:-1]))
    first = min(range(len(nodes)), key=lambda i: by_name[nodes[i]].index)
    rotated = nodes[first:] + nodes[:first]
    return [*rotated, rotated[0]]


def validate_definition(definition: Mapping[str, Any]) -> None:
    """Raise DefinitionError if CreatePipeline would refuse the definition, or it could never run:
    every problem `checks` finds and the planner's, each on its own line."""
    problems = definition_problems(definition)
    try:
        _plan(definition)
    except DefinitionError as error:
        problems.append(str(error))
    if problems:
        raise DefinitionError("\n".join(problems))


# Running ---------------------------------------------------------------------------------------


def _condition_outcome(outcome: StepOutcome) -> bool:
    """The branch a Condition step chose, from its properties (or its metadata, after a retry)."""
    value = outcome.properties.get("Outcome", outcome.metadata.get("Condition", {}).get("Outcome"))
    return value is True or value == "True"


def _execution_failure(planned: _PlannedStep, outcome: StepOutcome) -> str:
    """A Fail step fails the execution with its own message; other steps as SageMaker words it."""
    if "Fail" in outcome.metadata:
        return outcome.failure_reason
    return f"{EXECUTION_FAILURE} Step {planned.name} failed: {outcome.failure_reason}"


@dataclass
class _Execution:
    """State of one run_execution call: what ran, with which outcome, and where to report."""

    context: ExecutionContext
    runners: Mapping[str, StepRunner]
    journal: Journal
    scope: Scope
    clock: Callable[[], datetime]
    outcomes: dict[str, StepOutcome]
    properties: dict[str, Mapping[str, Any]]
    not_run: set[str] = field(default_factory=set)

    def should_run(self, planned: _PlannedStep) -> bool:
        """False in the branch a condition did not choose, or after a step that did not run."""
        if planned.depends_on & self.not_run:
            return False
        if planned.branch is None:
            return True
        condition, wanted = planned.branch
        return _condition_outcome(self.outcomes[condition]) == wanted

    def is_ready(self, planned: _PlannedStep) -> bool:
        """Every dependency has finished, or will never run."""
        return all(d in self.outcomes or d in self.not_run for d in planned.depends_on)

    def start(self, planned: _PlannedStep, pool: ThreadPoolExecutor) -> Future[StepOutcome]:
        """Record the start, then decide the step here or hand it to a runner on the pool."""
        step = planned.step
        self.journal.step_started(
            planned.name,
            step["Type"],
            step.get("DisplayName"),
            step.get("Description"),
            self.clock(),
        )
        work = self._prepare(planned)
        if isinstance(work, StepOutcome):
            decided: Future[StepOutcome] = Future()
            decided.set_result(work)
            return decided
        runner, request = work
        return pool.submit(_run_guarded, runner, request)

    def finish(self, planned: _PlannedStep, outcome: StepOutcome) -> None:
        """Record the end and make the step's properties visible to the steps after it."""
        self.journal.step_finished(planned.name, outcome, self.clock())
        self.outcomes[planned.name] = outcome
        self.properties[planned.name] = outcome.properties

    def _prepare(self, planned: _PlannedStep) -> StepOutcome | tuple[StepRunner, StepRequest]:
        step, kind = planned.step, planned.step["Type"]
        try:
            if kind == "Condition":
                return self._condition(step)
            if kind == "Fail":
                return self._fail(step)
            runner = self.runners.get(kind)
            if runner is None:
                return StepOutcome("Failed", failure_reason=f"unsupported step type {kind}")
            arguments = resolve(step.get("Arguments", {}), self.scope)
        except ExpressionError as error:
            return StepOutcome("Failed", failure_reason=str(error))
        request = StepRequest(
            planned.name,
            kind,
            arguments,
            step,
            self.context,
            step.get("DisplayName"),
            step.get("Description"),
        )
        return runner, request

    def _condition(self, step: Mapping[str, Any]) -> StepOutcome:
        outcome = evaluate_conditions(step.get("Arguments", {}).get("Conditions", []), self.scope)
        return StepOutcome(
            "Succeeded",
            properties={"Outcome": outcome},
            metadata={"Condition": {"Outcome": str(outcome)}},
        )

    def _fail(self, step: Mapping[str, Any]) -> StepOutcome:
        message = render_string(
            resolve(step.get("Arguments", {}).get("ErrorMessage", ""), self.scope)
        )
        return StepOutcome(
            "Failed", metadata={"Fail": {"ErrorMessage": message}}, failure_reason=message
        )


def _execution_variables(context: ExecutionContext) -> dict[str, str]:
    return {
        "PipelineExecutionId": context.execution_id,
        "PipelineExecutionArn": context.execution_arn,
        "PipelineName": context.pipeline_name,
        "PipelineArn": context.pipeline_arn,
        "StartDateTime": format_timestamp(context.start_time),
    }


def run_execution(
    definition: Mapping[str, Any],
    parameters: Mapping[str, Any],
    context: ExecutionContext,
    runners: Mapping[str, StepRunner],
    journal: Journal,
    read_json: Callable[[str], Any],
    should_stop: Callable[[], bool],
    clock: Callable[[], datetime] = _utc_now,
) -> ExecutionResult:
    """Run the execution to its end; raises DefinitionError before any step if it cannot run."""
    plan = _plan(definition)
    completed = dict(journal.completed_steps())
    properties: dict[str, Mapping[str, Any]] = {n: o.properties for n, o in completed.items()}
    scope = Scope(
        parameters=parameters,
        execution=_execution_variables(context),
        steps={p.name: p.step for p in plan},
        properties=properties,
        read_json=read_json,
        now=clock,
    )
    execution = _Execution(context, runners, journal, scope, clock, dict(completed), properties)
    pending = [planned for planned in plan if planned.name not in completed]
    running: dict[Future[StepOutcome], _PlannedStep] = {}
    result: ExecutionResult | None = None
    with ThreadPoolExecutor(max_workers=max(1, len(pending)), thread_name_prefix="step") as pool:
        while True:
            for planned in _ready(execution, pending) if result is None else []:
                if should_stop():
                    result = ExecutionResult("Stopped")
                    break
                running[execution.start(planned, pool)] = planned
            if not running:
                return result or ExecutionResult("Succeeded")
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: running[f].index):
                planned = running.pop(future)
                outcome = future.result()
                execution.finish(planned, outcome)
                if outcome.status != "Succeeded" and result is None:
                    result = ExecutionResult("Failed", _execution_failure(planned, outcome))


def _ready(execution: _Execution, pending: list[_PlannedStep]) -> list[_PlannedStep]:
    """Take the steps that can start now off ``pending``, in plan order. A step that must not
    run (unchosen branch, or after one that did not run) is marked so, which can make more ready."""
    ready: list[_PlannedStep] = []
    changed = True
    while changed:
        changed = False
        for planned in [p for p in pending if execution.is_ready(p)]:
            pending.remove(planned)
            if execution.should_run(planned):
                ready.append(planned)
            else:
                execution.not_run.add(planned.name)
                changed = True
    return ready


def _run_guarded(runner: StepRunner, request: StepRequest) -> StepOutcome:
    """A broken runner fails its step, never the executor."""
    try:
        return runner(request)
    except Exception as error:
        return StepOutcome("Failed", failure_reason=str(error) or type(error).__name__)
