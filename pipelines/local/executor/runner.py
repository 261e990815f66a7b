"""Runs pipeline executions in background threads and records every step as SageMaker lists it.

StartPipelineExecution returns at once; the execution runs here. Each step type maps to the part of
the local SageMaker that plays its AWS service: jobs for Processing and Training, the registry for
RegisterModel, a local Lambda for Lambda steps.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import string
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, Protocol

from pipelines.local.contract.members import without_nulls
from pipelines.local.errors import ServiceError
from pipelines.local.executor.checks import REQUEST_SHAPES, request_problems
from pipelines.local.executor.engine import (
    CacheHit,
    DefinitionError,
    ExecutionContext,
    RunOptions,
    StepOutcome,
    StepRequest,
    run_execution,
)
from pipelines.local.executor.parallelism import StepLimit
from pipelines.local.jobs.image_python import image_python, sweep_unusable
from pipelines.local.jobs.outcome import JobResult, job_arn
from pipelines.local.jobs.processing import run_processing_job
from pipelines.local.jobs.stopping import JobStop
from pipelines.local.jobs.training import run_training_job
from pipelines.local.layout import StateLayout
from pipelines.local.storage.database import Body
from pipelines.local.storage.objects import ObjectStore

Job = Callable[..., JobResult]
logger = logging.getLogger(__name__)
RUNNING_STEPS = ("Executing", "Stopping")  # a Stopping step's job is being stopped
FIRST_RECORD_RETRY_SECONDS = 0.5
MAX_RECORD_RETRY_SECONDS = 10.0


class ExecutionRecords(Protocol):
    """Where an execution records its steps and its end (the service, under its lock)."""

    def steps(self, execution_arn: str) -> list[Body]: ...

    def save_step(self, execution_arn: str, body: Body) -> None: ...

    def finish_execution(self, execution_arn: str, status: str, reason: str) -> None: ...

    def cached_step(
        self, pipeline_arn: str, step_name: str, cache_key: str, not_before: float | None
    ) -> tuple[str, Body] | None:
        """The latest step of that name and key that ran and succeeded in an execution of the
        pipeline, ending at or after `not_before`: (its execution's ARN, its record)."""


class ModelRegistry(Protocol):
    """What a RegisterModel step does: a new version (and its group on first use); its ARN. The
    step's properties are the version as DescribeModelPackage answers it."""

    def register_model_package(self, request: Body) -> str: ...

    def describe_model_package(self, request: Body) -> Body: ...


class FunctionResult(Protocol):
    payload: Any
    error: str
    log: str


class LambdaFunctions(Protocol):
    def invoke(self, name_or_arn: str, event: Any) -> FunctionResult: ...


class JobRecords(Protocol):
    """Where a job's DescribeProcessingJob / DescribeTrainingJob answer is kept (kind is
    "ProcessingJob" or "TrainingJob"; the description is the job's properties), saved as the job
    starts, at each phase, and when it ends."""

    def save_job(self, kind: str, description: Body) -> None: ...


@dataclass(frozen=True)
class RunningJob:
    """A job a step is running, and how to stop it."""

    kind: str  # ProcessingJob | TrainingJob
    execution_arn: str
    step_name: str
    stop: JobStop


STEP_NAME_IN_JOB_NAME = 20  # SageMaker keeps this much of a step's name in its jobs' names
JOB_NAME_SUFFIX = 10
_SUFFIX_CHARACTERS = string.ascii_letters + string.digits
JOB_ARN_KINDS = {"ProcessingJob": "processing-job", "TrainingJob": "training-job"}
OUTPUT_VALUE_LIMIT = 1024  # OutputParameter.Value: what a Lambda step's metadata can show of an output


def job_name(execution_id: str, step_name: str, attempt: int) -> str:
    """The job an attempt of a step runs as, named as SageMaker names it: `pipelines-<execution>-`,
    the step's name cut to its first 20 characters (step `Rossmann-Model-Training` runs as
    `pipelines-<execution>-Rossmann-Model-Train-<suffix>`), then 10 characters that differ for
    every step and attempt, since a job name is never reused (the failed attempt stays
    describable): letters of either case and digits, as SageMaker's (`bPVYsMzUlc`, `T5io3oBe9u`),
    drawn from a digest so that a restarted executor names the attempt it resumes as before.
    Characters a job name cannot hold become hyphens, one at a time."""
    digest = int.from_bytes(hashlib.sha256(f"{step_name}#{attempt}".encode()).digest(), "big")
    suffix = ""
    for _ in range(JOB_NAME_SUFFIX):
        digest, position = divmod(digest, len(_SUFFIX_CHARACTERS))
        suffix += _SUFFIX_CHARACTERS[position]
    readable = re.sub(r"[^A-Za-z0-9]+", "-", step_name).strip("-")[:STEP_NAME_IN_JOB_NAME].strip("-")
    return "-".join(part for part in ("pipelines", execution_id, readable, suffix) if part)


class ExecutionJournal:
    """The executor's Journal, written to the steps table (what ListPipelineExecutionSteps reads)."""

    def __init__(self, records: ExecutionRecords, execution_arn: str) -> None:
        self.arn = execution_arn
        self.state = records

    def step_started(
        self,
        name: str,
        type: str,
        display_name: str | None,
        description: str | None,
        start: datetime,
    ) -> None:
        previous = {s["StepName"]: s for s in self.state.steps(self.arn)}.get(name, {})
        body = {
            "StepName": name,
            # Listed as the definition gives them: a step without them lists neither, as SageMaker does.
            **({"StepDisplayName": display_name} if display_name is not None else {}),
            **({"StepDescription": description} if description is not None else {}),
            "StartTime": start.timestamp(),
            "StepStatus": "Executing",
            "AttemptCount": int(previous.get("AttemptCount", 0)) + 1,
            "Metadata": {},
            "_Type": type,
        }
        self.state.save_step(self.arn, body)

    def _step(self, name: str) -> Body:
        return {s["StepName"]: s for s in self.state.steps(self.arn)}[name]

    def step_retried(self, name: str, failure_reason: str) -> None:
        body = self._step(name)
        body["AttemptCount"] = int(body.get("AttemptCount", 1)) + 1
        self.state.save_step(self.arn, body)

    def step_finished(self, name: str, outcome: StepOutcome, end: datetime) -> None:
        body = self._step(name)
        body.update(
            StepStatus=outcome.status,
            EndTime=end.timestamp(),
            Metadata=outcome.metadata,
            _Properties=outcome.properties,
        )
        hit = {"SourcePipelineExecutionArn": outcome.cache_hit} if outcome.cache_hit else None
        failure = outcome.failure_reason if outcome.status == "Failed" else ""  # not when Stopped
        for key, value in (
            ("FailureReason", failure),
            ("CacheHitResult", hit),
            ("_CacheKey", outcome.cache_key),
        ):
            if value:
                body[key] = value
            else:
                body.pop(key, None)
        self.state.save_step(self.arn, body)

    def fail_unfinished(self, reason: str, end: datetime) -> None:
        """Steps whose end could not be recorded: Failed with the execution's reason."""
        for step in self.state.steps(self.arn):
            if step["StepStatus"] in RUNNING_STEPS:
                step.update(StepStatus="Failed", FailureReason=reason, EndTime=end.timestamp())
                self.state.save_step(self.arn, step)

    def completed_steps(self) -> Mapping[str, StepOutcome]:
        return {
            s["StepName"]: StepOutcome("Succeeded", s.get("_Properties", {}), s.get("Metadata", {}))
            for s in self.state.steps(self.arn)
            if s["StepStatus"] == "Succeeded"
        }


class RecordsCache:
    """The executor's StepCache: earlier steps of the same pipeline, from the steps table."""

    def __init__(self, records: ExecutionRecords, pipeline_arn: str) -> None:
        self.records = records
        self.pipeline_arn = pipeline_arn

    def lookup(self, step_name: str, key: str, not_before: datetime | None) -> CacheHit | None:
        since = None if not_before is None else not_before.timestamp()
        found = self.records.cached_step(self.pipeline_arn, step_name, key, since)
        if found is None:
            return None
        source, body = found
        outcome = StepOutcome("Succeeded", body.get("_Properties", {}), body.get("Metadata", {}))
        return CacheHit(source, outcome)


def max_parallel_steps(execution: Body) -> int | None:
    """The execution's ParallelismConfiguration (its request's, or its pipeline's), if any."""
    return (execution.get("ParallelismConfiguration") or {}).get("MaxParallelExecutionSteps")


def run_options(
    execution: Body, records: ExecutionRecords, cancel: threading.Event, parallelism: StepLimit
) -> RunOptions:
    """What the execution's request asked for: parallelism (which UpdatePipelineExecution may
    change), selected steps; retries wait on the execution's stop request."""
    selective = execution.get("SelectiveExecutionConfig")
    return RunOptions(
        cache=RecordsCache(records, execution["PipelineArn"]),
        parallelism=parallelism,
        selected_steps=None if selective is None else frozenset(
            s["StepName"] for s in selective["SelectedSteps"]
        ),
        pause=cancel.wait,
    )


class ExecutionRunner:
    """Runs each started execution on a thread of its own."""

    def __init__(
        self,
        records: ExecutionRecords,
        registry: ModelRegistry,
        functions: LambdaFunctions,
        jobs: JobRecords,
        store: ObjectStore,
        layout: StateLayout,
    ) -> None:
        self.records = records
        self.registry = registry
        self.functions = functions
        self.jobs = jobs
        self.store = store
        self.layout = layout
        self._cancel: dict[str, threading.Event] = {}
        self._parallelism: dict[str, StepLimit] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._jobs: dict[str, RunningJob] = {}  # by job name
        self._jobs_lock = threading.Lock()  # orders a job's start against its execution's stop
        self._closing = threading.Event()

    def make_image_environment(self) -> None:
        """The image's own Python (jobs/image_python.py), made on a thread as the server starts, so
        the first job on a fresh state does not wait for it; what a killed server left half made,
        and what a package upgrade left unusable, goes first."""
        def make() -> None:
            sweep_unusable(self.layout.image_environments)
            image_python(self.layout.image_environments)

        threading.Thread(target=make, name="image-environment", daemon=True).start()

    def start(self, execution: dict[str, Any]) -> None:
        arn = execution["PipelineExecutionArn"]
        self._cancel[arn] = threading.Event()
        self._parallelism[arn] = StepLimit(max_parallel_steps(execution))
        thread = threading.Thread(
            target=self._run, args=(execution,), name=f"exec-{arn[-12:]}", daemon=True
        )
        self._threads[arn] = thread
        thread.start()

    def limit_steps(self, arn: str, steps: int) -> None:
        """UpdatePipelineExecution's ParallelismConfiguration: binds the steps of a running
        execution that have not started yet (an ended execution's next retry reads it from
        its record)."""
        if arn in self._parallelism:
            self._parallelism[arn].change(steps)

    def stop(self, arn: str) -> None:
        """Start no new step of the execution and stop the jobs its steps run: each job and its
        step are Stopping at once. The caller holds the service's lock, so no job's end can be
        recorded between its stop and its Stopping."""
        with self._jobs_lock:
            if arn in self._cancel:
                self._cancel[arn].set()
            jobs = [job for job in self._jobs.values() if job.execution_arn == arn]
        for job in jobs:
            self._stop_job(job)
            self._mark_step_stopping(job)

    def stop_job(self, name: str) -> None:
        """Stop a running job (StopProcessingJob, StopTrainingJob): it is Stopping at once, and
        its step keeps running until the job ends. The caller holds the service's lock; a job
        that is no longer listed here has ended and is recording its end, which stands."""
        with self._jobs_lock:
            job = self._jobs.get(name)
        if job is not None:
            self._stop_job(job)

    def _stop_job(self, job: RunningJob) -> None:
        description = job.stop.request()
        if description is not None:
            self.jobs.save_job(job.kind, description)

    def _mark_step_stopping(self, job: RunningJob) -> None:
        for step in self.records.steps(job.execution_arn):
            if step["StepName"] == job.step_name and step["StepStatus"] == "Executing":
                step["StepStatus"] = "Stopping"
                self.records.save_step(job.execution_arn, step)

    def job_started(self, name: str, job: RunningJob) -> None:
        """List a job as running; a job whose execution is already stopping stops at once."""
        with self._jobs_lock:
            self._jobs[name] = job
            stopping = self._cancel[job.execution_arn].is_set()
        if stopping:
            job.stop.request()  # it has not described itself yet: it will, as Stopping
            self._mark_step_stopping(job)

    def job_ended(self, name: str) -> None:
        with self._jobs_lock:
            self._jobs.pop(name, None)

    def shutdown(self) -> None:
        """Stop every execution's jobs (SIGTERM, as the server itself stops; not a stop request,
        so nothing becomes Stopping) and wait a little for their threads."""
        self._closing.set()
        with self._jobs_lock:
            for event in self._cancel.values():
                event.set()
            for job in self._jobs.values():
                job.stop.set()
        for thread in self._threads.values():
            thread.join(timeout=10)

    def _run(self, execution: dict[str, Any]) -> None:
        """Run to the end and record it. A thread that cannot record (database locked for too long,
        disk full) still ends the execution: Failed with the reason, once the database takes it."""
        arn = execution["PipelineExecutionArn"]
        cancel = self._cancel[arn]
        journal = ExecutionJournal(self.records, arn)
        lost = ""  # why steps may be left Executing in the records
        try:
            status, reason = self._execute(execution, journal, cancel)
        except Exception as error:
            logger.exception("execution %s could not be recorded", arn)
            lost = f"The local SageMaker could not record this execution: {error}"
            status, reason = "Failed", lost
        if cancel.is_set() and status == "Succeeded":
            # Stopped even when the steps running at the stop (a Lambda step, which cannot be
            # stopped) then succeeded, as SageMaker ends it; one that failed meanwhile fails it.
            status, reason = "Stopped", ""
        delay = FIRST_RECORD_RETRY_SECONDS
        while not self._record_end(journal, status, reason, lost):
            if self._closing.wait(delay):
                return  # the next start's recover() fails what is still Executing
            delay = min(delay * 2, MAX_RECORD_RETRY_SECONDS)

    def _execute(
        self, execution: dict[str, Any], journal: ExecutionJournal, cancel: threading.Event
    ) -> tuple[str, str]:
        context = execution_context(execution)
        log_path = self.layout.execution_log(context.execution_id)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a", encoding="utf-8") as log:
            runners = StepRunners(self, context, log, cancel)
            try:
                result = run_execution(
                    execution["_Definition"],
                    execution["_Parameters"],
                    context,
                    runners.by_type(),
                    journal,
                    lambda uri: json.loads(self.store.get_bytes(uri)),
                    cancel.is_set,
                    options=run_options(
                        execution, self.records, cancel, self._parallelism[execution["PipelineExecutionArn"]]
                    ),
                )
            except DefinitionError as error:
                return "Failed", f"Invalid pipeline definition: {error}"
        return result.status, result.failure_reason

    def _record_end(self, journal: ExecutionJournal, status: str, reason: str, lost: str) -> bool:
        """Whether the end (and, after a recording failure, each step left Executing) is saved."""
        try:
            if lost:
                journal.fail_unfinished(lost, datetime.now(UTC))
            self.records.finish_execution(journal.arn, status, reason)
        except Exception as error:
            logger.warning("cannot record the end of %s yet: %s", journal.arn, error)
            return False
        return True


class StepRunners:
    """One callable per step type; each returns a StepOutcome and never raises on step failure."""

    def __init__(
        self,
        runner: ExecutionRunner,
        context: ExecutionContext,
        log: IO[str],
        cancel: threading.Event,
    ) -> None:
        self.runner = runner
        self.context = context
        self.log = log
        self.cancel = cancel
        self.work_dir = runner.layout.execution_dir(context.execution_id)

    def by_type(self) -> dict[str, Any]:
        return {
            "Processing": self.processing,
            "Training": self.training,
            "RegisterModel": self.register_model,
            "Lambda": self.lambda_function,
        }

    def _job(self, kind: str, run: Job, request: StepRequest) -> StepOutcome:
        arguments = without_nulls(request.arguments)
        refused = _invalid_request(request.type, arguments)
        if refused:
            return refused
        name = self._start_job(request.name, kind)
        stop = JobStop()
        self.runner.job_started(name, RunningJob(kind, self.context.execution_arn, request.name, stop))
        try:
            result = run(
                name,
                arguments,
                self.runner.store,
                self.work_dir,
                self.log,
                cancel=stop,
                progress=lambda description: self._save_progress(kind, description),
                confinement=self.runner.layout.confinement(),
                environments=self.runner.layout.image_environments,
            )
        finally:
            self.runner.job_ended(name)
        self.runner.jobs.save_job(kind, result.properties)
        status = "Stopped" if self._stopped(result) else result.status
        return StepOutcome(status, result.properties, result.metadata, result.failure_reason)

    def _start_job(self, step_name: str, kind: str) -> str:
        """Name this attempt's job from the step's AttemptCount (a retry policy's retry and
        RetryPipelineExecution each count one more) and put its ARN in the step's Metadata as it
        starts, as SageMaker does, so a running job can be followed."""
        arn = self.context.execution_arn
        step = next(s for s in self.runner.records.steps(arn) if s["StepName"] == step_name)
        name = job_name(self.context.execution_id, step_name, int(step.get("AttemptCount", 1)))
        step["Metadata"] = {kind: {"Arn": job_arn(JOB_ARN_KINDS[kind], name)}}
        self.runner.records.save_step(arn, step)
        return name

    def _save_progress(self, kind: str, description: Body) -> None:
        """A running job's description; one that cannot be recorded does not stop the job, whose
        end is recorded (or fails its step) as before."""
        try:
            self.runner.jobs.save_job(kind, description)
        except Exception as error:
            logger.warning("cannot record the progress of %s: %s", description.get(f"{kind}Name"), error)

    def _stopped(self, result: JobResult) -> bool:
        """A job that ended because this execution was asked to stop (not a timeout)."""
        properties = result.properties
        job_status = properties.get("ProcessingJobStatus", properties.get("TrainingJobStatus"))
        return job_status == "Stopped" and self.cancel.is_set()

    def processing(self, request: StepRequest) -> StepOutcome:
        return self._job("ProcessingJob", run_processing_job, request)

    def training(self, request: StepRequest) -> StepOutcome:
        return self._job("TrainingJob", run_training_job, request)

    def register_model(self, request: StepRequest) -> StepOutcome:
        arguments = {k: v for k, v in without_nulls(request.arguments).items() if v != "None"}
        refused = _invalid_request(request.type, arguments)
        if refused:
            return refused
        try:
            arn = self.runner.registry.register_model_package(arguments)
            described = self.runner.registry.describe_model_package({"ModelPackageName": arn})
        except ServiceError as error:
            return StepOutcome("Failed", failure_reason=f"{error.code}: {error.message}")
        # The SDK's properties of the step are DescribeModelPackage's answer (ModelApprovalStatus...).
        return StepOutcome("Succeeded", described, {"RegisterModel": {"Arn": arn}})

    def lambda_function(self, request: StepRequest) -> StepOutcome:
        """Invoke the function with the step's inputs; declared outputs become properties."""
        step = request.step
        payload = {k: v for k, v in request.arguments.items()}
        try:
            invocation = self.runner.functions.invoke(step["FunctionArn"], payload)
        except ServiceError as error:
            return StepOutcome("Failed", failure_reason=f"{error.code}: {error.message}")
        self.log.write(invocation.log)
        self.log.flush()
        if invocation.error:
            return StepOutcome(
                "Failed", failure_reason=f"Lambda function failed: {invocation.error}"
            )
        result = invocation.payload if isinstance(invocation.payload, dict) else {}
        declared = step.get("OutputParameters", [])
        missing = [o["OutputName"] for o in declared if o["OutputName"] not in result]
        if missing:
            return StepOutcome(
                "Failed", failure_reason=f"Lambda output is missing {', '.join(missing)}"
            )
        try:
            typed = [
                {"Name": o["OutputName"], "Value": lambda_output(o, result[o["OutputName"]])}
                for o in declared
            ]
        except ValueError as error:
            return StepOutcome("Failed", failure_reason=f"Lambda output {error}")
        shown = [{"Name": o["Name"], "Value": output_text(o["Value"])} for o in typed]
        return StepOutcome(
            "Succeeded",
            {"OutputParameters": typed},
            {"Lambda": {"Arn": step["FunctionArn"], "OutputParameters": shown}},
        )


def _invalid_request(step_type: str, arguments: Mapping[str, Any]) -> StepOutcome | None:
    """Resolved Arguments that the Create* request would refuse fail the step unrun, in the words
    SageMaker fails a step whose Create* call was refused with."""
    problems = request_problems(step_type, arguments)
    if not problems:
        return None
    operation = REQUEST_SHAPES[step_type][0]
    reason = f"ClientError: Failed to invoke sagemaker:{operation}. Error Details: {problems[0]}"
    return StepOutcome("Failed", failure_reason=reason)


def lambda_output(declared: Body, value: Any) -> Any:
    """A Lambda step's output as its OutputType declares it (String when none): a Boolean output
    compares equal to `true` in a condition, as on SageMaker, not as the text "True"."""
    kind, name = declared.get("OutputType", "String"), declared["OutputName"]
    if kind == "Boolean" and isinstance(value, bool):
        return value
    if kind == "Integer" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "Float" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind == "String":
        text = value if isinstance(value, str) else output_text(value)
        if len(text) > OUTPUT_VALUE_LIMIT:
            raise ValueError(
                f"{name} is {len(text)} characters long: an output parameter's value holds at most "
                f"{OUTPUT_VALUE_LIMIT}"
            )
        return text
    raise ValueError(f"{name} is declared {kind} but the function returned {json.dumps(value)[:200]}")


def output_text(value: Any) -> str:
    """An output as the step's metadata lists it: text, JSON for anything else."""
    return value if isinstance(value, str) else json.dumps(value)


def execution_context(execution: Mapping[str, Any]) -> ExecutionContext:
    """The Execution.* identity of a recorded execution (its pipeline's name in lower case, as
    SageMaker resolves Execution.PipelineName, though the ARNs it answers keep the name's case)."""
    arn = execution["PipelineExecutionArn"]
    pipeline_arn = execution["PipelineArn"]
    return ExecutionContext(
        pipeline_name=pipeline_arn.rsplit("/", 1)[-1].lower(),
        pipeline_arn=pipeline_arn,
        execution_id=arn.rsplit("/", 1)[-1],
        execution_arn=arn,
        start_time=datetime.fromtimestamp(execution["CreationTime"], UTC),
    )
