"""Run one pipeline execution from its definition JSON, the way SageMaker Pipelines does.

The executor owns what the Pipelines service owns: parameter typing, step ordering, Condition
branches, Fail steps, step caching, retry policies, parallelism limits, selective execution,
retry of an execution (steps that already succeeded are not run again) and failure propagation.
The work of every other step type is delegated to a runner chosen by step Type.

Steps whose dependencies have finished run at the same time, as on SageMaker (two steps that both
wait only for the same step run side by side), up to MaxParallelExecutionSteps. Runners run on
worker threads; everything that reads or records execution state (arguments, conditions, the cache,
the journal) stays on the calling thread. When a step fails or a stop is requested, no new step
starts; steps already running finish first (a job asked to stop ends Stopped).
"""

from __future__ import annotations

import dataclasses
import graphlib
import heapq
import math
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pipelines.local.contract.members import repeated
from pipelines.local.executor.caching import CachePolicy, cache_key, cache_policy
from pipelines.local.executor.checks import definition_problems, experiment_name_problem
from pipelines.local.executor.expressions import (
    ExpressionError,
    Scope,
    evaluate_conditions,
    get_references,
    render_string,
    resolve,
)
from pipelines.local.executor.parallelism import StepLimit
from pipelines.local.executor.retries import RetryPolicy, exception_type, matching_policy, retry_policies
from pipelines.local.system.clock import format_timestamp

StepStatus = Literal["Succeeded", "Failed", "Stopped"]
ExecutionStatus = Literal["Succeeded", "Failed", "Stopped"]
EXECUTION_FAILURE = "Step failure: One or multiple steps failed."
FAIL_MESSAGE_LIMIT = 3072  # FailStepMetadata.ErrorMessage: the most of a Fail step's message a step shows
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
    """A finished step: `properties` feed Steps.<Name>.* references, `metadata` the step list.

    The executor fills in the last two: `cache_key` on a step that ran and can serve later runs,
    `cache_hit` (the source execution's ARN) on a step that reused an earlier run."""

    status: StepStatus
    properties: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    failure_reason: str = ""
    cache_key: str = ""
    cache_hit: str = ""


@dataclass(frozen=True)
class ExecutionResult:
    """How the execution ended; failure_reason is empty unless it Failed."""

    status: ExecutionStatus
    failure_reason: str = ""


StepRunner = Callable[[StepRequest], StepOutcome]
Pause = Callable[[float], bool]  # wait up to N seconds; True if a stop request cut it short


@dataclass(frozen=True)
class CacheHit:
    """An earlier successful run of the same step with the same cache key."""

    source_execution_arn: str
    outcome: StepOutcome


class StepCache(Protocol):
    """Earlier runs of this pipeline's steps (the service's records)."""

    def lookup(self, step_name: str, key: str, not_before: datetime | None) -> CacheHit | None:
        """The most recent successful run of the step with this key that ended at or after
        `not_before` (at any time when None)."""


@dataclass(frozen=True)
class RunOptions:
    """What a StartPipelineExecution request and the pipeline add to a plain run."""

    cache: StepCache | None = None
    # ParallelismConfiguration.MaxParallelExecutionSteps, which may change while the execution runs
    parallelism: StepLimit = field(default_factory=StepLimit)
    selected_steps: frozenset[str] | None = None  # selective execution: only these run
    pause: Pause | None = None  # how retries wait (default: sleep, cut short by should_stop)


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

    def step_retried(self, name: str, failure_reason: str) -> None:
        """An attempt of a started step failed and a retry policy runs it again."""

    def step_finished(self, name: str, outcome: StepOutcome, end: datetime) -> None:
        """A step that was started has finished (Succeeded, Failed or Stopped)."""

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
    cache: CachePolicy | None = None
    retries: tuple[RetryPolicy, ...] = ()


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
    empty = sorted(name for name, value in overrides.items() if value == "")
    if empty:  # the service's own words (a value is at least one character long)
        raise ParameterError(
            f"parameter {empty[0]}: string \"\" is too short (length: 0, required minimum: 1)"
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
    duplicates = repeated(names)
    if duplicates:
        raise DefinitionError(f"duplicate step name(s): {', '.join(duplicates)}")
    parameters = set(_declared_parameters(definition))
    planned = [
        _PlannedStep(
            i,
            step["Name"],
            step,
            _dependencies(step, branch, set(names), parameters),
            branch,
            *_policies(step),
        )
        for i, (step, branch) in enumerate(flat)
    ]
    order = _topological(planned)
    fail_steps = {step["Name"] for step, _ in flat if step["Type"] == "Fail"}
    for step, _ in flat:  # a Fail step ends the execution: SageMaker refuses a step waiting on one
        waited_on = sorted(_explicit_dependencies(step) & fail_steps)
        if waited_on:
            raise DefinitionError(f"{step['Name']} can not depends on FailStep {', '.join(waited_on)}")
    return order


def _policies(step: Mapping[str, Any]) -> tuple[CachePolicy | None, tuple[RetryPolicy, ...]]:
    """The step's CacheConfig and RetryPolicies, refused as CreatePipeline refuses them."""
    try:
        return cache_policy(step), tuple(retry_policies(step))
    except ValueError as error:
        raise DefinitionError(f"step {step['Name']}: {error}") from None


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


def step_dependencies(definition: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    """Each step and the steps it waits for (DependsOn, references, its Condition)."""
    return {planned.name: planned.depends_on for planned in _plan(definition)}


# Running ---------------------------------------------------------------------------------------


def _condition_outcome(outcome: StepOutcome) -> bool:
    """The branch a Condition step chose, from its properties (or its metadata, after a retry)."""
    value = outcome.properties.get("Outcome", outcome.metadata.get("Condition", {}).get("Outcome"))
    return value is True or value == "True"


def _decided(outcome: StepOutcome) -> Future[StepOutcome]:
    future: Future[StepOutcome] = Future()
    future.set_result(outcome)
    return future


@dataclass
class _Work:
    """A step handed to a runner: what to run again if a retry policy says so."""

    runner: StepRunner
    request: StepRequest
    cache_key: str | None
    first_start: datetime
    retries: dict[int, int] = field(default_factory=dict)  # policy index -> retries granted


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
    options: RunOptions
    not_run: set[str] = field(default_factory=set)
    work: dict[str, _Work] = field(default_factory=dict)

    def should_run(self, planned: _PlannedStep) -> bool:
        """False outside a selective execution's steps, in the branch a condition did not
        choose, or after a step that did not run."""
        selected = self.options.selected_steps
        if selected is not None and planned.name not in selected:
            return False
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
        """Record the start, then decide the step here (condition, fail, cache hit, unresolvable
        arguments) or hand it to a runner on the pool."""
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
            return _decided(work)
        hit = self._cache_hit(planned, work.cache_key)
        if hit is not None:
            return _decided(hit)
        self.work[planned.name] = work
        return pool.submit(_run_guarded, work.runner, work.request)

    def retry_delay(self, planned: _PlannedStep, outcome: StepOutcome) -> float | None:
        """Seconds before the step runs again if a retry policy covers this failure, else None.
        A granted retry is recorded (the step's AttemptCount)."""
        work = self.work.get(planned.name)
        if work is None or outcome.status != "Failed":
            return None
        failure = exception_type(planned.step["Type"], outcome.failure_reason)
        index = matching_policy(list(planned.retries), failure)
        if index is None:
            return None
        policy, retry = planned.retries[index], work.retries.get(index, 0) + 1
        if not policy.allows(retry, (self.clock() - work.first_start).total_seconds()):
            return None
        work.retries[index] = retry
        self.journal.step_retried(planned.name, outcome.failure_reason)
        return policy.delay(retry)

    def finish(self, planned: _PlannedStep, outcome: StepOutcome) -> None:
        """Record the end and make the step's properties visible to the steps after it."""
        work = self.work.get(planned.name)
        if work is not None and work.cache_key and outcome.status == "Succeeded":
            outcome = dataclasses.replace(outcome, cache_key=work.cache_key)
        self.journal.step_finished(planned.name, outcome, self.clock())
        self.outcomes[planned.name] = outcome
        self.properties[planned.name] = outcome.properties

    def _cache_hit(self, planned: _PlannedStep, key: str | None) -> StepOutcome | None:
        cache = self.options.cache
        if planned.cache is None or cache is None or key is None:
            return None
        expire_after = planned.cache.expire_after
        not_before = None if expire_after is None else self.clock() - expire_after
        hit = cache.lookup(planned.name, key, not_before)
        if hit is None:
            return None
        source = hit.outcome
        return StepOutcome(
            "Succeeded", source.properties, source.metadata, cache_hit=hit.source_execution_arn
        )

    def _prepare(self, planned: _PlannedStep) -> StepOutcome | _Work:
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
        if not isinstance(arguments, dict):  # an expression that stood for all of them
            return StepOutcome(
                "Failed", failure_reason=f"the step's Arguments resolved to {arguments!r}, not an object"
            )
        request = StepRequest(
            planned.name,
            kind,
            arguments,
            step,
            self.context,
            step.get("DisplayName"),
            step.get("Description"),
        )
        return _Work(runner, request, cache_key(kind, arguments), self.clock())

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
        )[:FAIL_MESSAGE_LIMIT]
        return StepOutcome(
            "Failed", metadata={"Fail": {"ErrorMessage": message}}, failure_reason=message
        )


def experiment_names(
    definition: Mapping[str, Any], context: ExecutionContext, parameters: Mapping[str, Any]
) -> dict[str, str]:
    """The definition's PipelineExperimentConfig resolved for one execution ({} without one): what
    DescribePipelineExecution shows and `PipelineExperimentConfig.*` references read."""
    config = definition.get("PipelineExperimentConfig")
    if not isinstance(config, dict):
        return {}
    scope = Scope(parameters, _execution_variables(context), {}, {}, _no_files, _utc_now)
    defaults = {"ExperimentName": context.pipeline_name, "TrialName": context.execution_id}
    try:
        names = {key: render_string(resolve(config.get(key, name), scope)) for key, name in defaults.items()}
    except ExpressionError as error:
        raise DefinitionError(f"PipelineExperimentConfig: {error}") from None
    problems = [experiment_name_problem(f"PipelineExperimentConfig.{k}", name) for k, name in names.items()]
    if any(problems):  # the names as this execution's parameters resolved them
        raise DefinitionError("\n".join(problem for problem in problems if problem))
    return names


def _no_files(uri: str) -> Any:
    raise ExpressionError(f"{uri}: no property file can be read before any step has run")


def _execution_variables(context: ExecutionContext) -> dict[str, str]:
    return {
        "PipelineExecutionId": context.execution_id,
        "PipelineExecutionArn": context.execution_arn,
        "PipelineName": context.pipeline_name,
        "PipelineArn": context.pipeline_arn,
        "StartDateTime": format_timestamp(context.start_time),
    }


def _sleeper(should_stop: Callable[[], bool]) -> Pause:
    """The default Pause: sleep in short slices, returning early once a stop is requested."""

    def pause(seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not should_stop():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(remaining, 0.05))
        return True

    return pause


def run_execution(
    definition: Mapping[str, Any],
    parameters: Mapping[str, Any],
    context: ExecutionContext,
    runners: Mapping[str, StepRunner],
    journal: Journal,
    read_json: Callable[[str], Any],
    should_stop: Callable[[], bool],
    clock: Callable[[], datetime] = _utc_now,
    options: RunOptions = RunOptions(),
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
        experiment=experiment_names(definition, context, parameters),
    )
    execution = _Execution(
        context, runners, journal, scope, clock, dict(completed), properties, options
    )
    pause = options.pause or _sleeper(should_stop)
    pending = [planned for planned in plan if planned.name not in completed]
    queue: list[_PlannedStep] = []
    running: dict[Future[StepOutcome], _PlannedStep] = {}
    result: ExecutionResult | None = None
    # A step runs on a thread of its own: as many as there are steps, whatever the limit becomes.
    pool = ThreadPoolExecutor(max_workers=max(1, len(pending)), thread_name_prefix="step")
    try:
        while True:
            changed = options.parallelism.changed()
            limit = options.parallelism.steps or math.inf
            if result is None:
                queue = sorted(queue + _ready(execution, pending), key=lambda p: p.index)
            while result is None and queue and len(running) < limit:
                if should_stop():
                    result = ExecutionResult("Stopped")
                    break
                planned = queue.pop(0)
                running[execution.start(planned, pool)] = planned
            if not running:
                return result or ExecutionResult("Succeeded")
            waited: list[Future[Any]] = [*running, changed]  # a change may start waiting steps
            done, _ = wait(waited, return_when=FIRST_COMPLETED)
            for future in sorted(done & running.keys(), key=lambda f: running[f].index):
                planned = running.pop(future)
                outcome = future.result()
                delay = None if result or should_stop() else execution.retry_delay(planned, outcome)
                if delay is not None:
                    work = execution.work[planned.name]
                    running[pool.submit(_run_later, pause, delay, work.runner, work.request)] = planned
                    continue
                execution.finish(planned, outcome)
                if outcome.status == "Stopped" and result is None:
                    result = ExecutionResult("Stopped")
                elif outcome.status != "Succeeded" and result is None:
                    # SageMaker's one sentence, whichever step failed, a Fail step too (its integration
                    # tests); what failed, and why, is in that step's own FailureReason
                    result = ExecutionResult("Failed", EXECUTION_FAILURE)
    finally:
        # Steps still running (the loop raised) are waited for; idle threads are not joined, which
        # would add milliseconds to the end of every execution.
        pool.shutdown(wait=bool(running))


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
    """A broken runner fails its step, never the executor: an error of the local service itself,
    which SageMaker reports as InternalServerError (a retryable exception type)."""
    try:
        return runner(request)
    except Exception as error:
        return StepOutcome(
            "Failed", failure_reason=f"InternalServerError: {str(error) or type(error).__name__}"
        )


def _run_later(pause: Pause, delay: float, runner: StepRunner, request: StepRequest) -> StepOutcome:
    """A retry: wait out the backoff (a stop request ends the step Stopped), then run again."""
    if pause(delay):
        return StepOutcome("Stopped", failure_reason="The step was stopped while waiting to retry.")
    return _run_guarded(runner, request)
