"""Runs pipeline executions in background threads and records every step as SageMaker lists it.

StartPipelineExecution returns at once; the execution runs here. Each step type maps to the part of
the local SageMaker that plays its AWS service: jobs for Processing and Training, the registry for
RegisterModel, a local Lambda for Lambda steps.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pipelines.local import jobs
from pipelines.local.errors import ServiceError
from pipelines.local.executor import (
    DefinitionError,
    ExecutionContext,
    StepOutcome,
    StepRequest,
    run_execution,
)

if TYPE_CHECKING:
    from pipelines.local.models import LocalSageMaker


def job_name(execution_id: str, step_name: str) -> str:
    """A valid SageMaker job name (letters, digits, single hyphens, 63 characters at most)."""
    raw = re.sub(r"[^a-z0-9]+", "-", f"pipelines-{execution_id}-{step_name}".lower())
    return raw[:63].strip("-")


def _epoch(moment: datetime) -> float:
    return moment.timestamp()


class ExecutionJournal:
    """The executor's Journal, written to the steps table (what ListPipelineExecutionSteps reads)."""

    def __init__(self, backend: LocalSageMaker, execution_arn: str) -> None:
        self.backend = backend
        self.arn = execution_arn
        self.state = backend.state

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
            "StepDisplayName": display_name or name,
            "StepDescription": description or "",
            "StartTime": _epoch(start),
            "StepStatus": "Executing",
            "AttemptCount": int(previous.get("AttemptCount", 0)) + 1,
            "Metadata": {},
            "_Type": type,
        }
        self.state.save_step(self.arn, body)

    def step_finished(self, name: str, outcome: StepOutcome, end: datetime) -> None:
        body = {s["StepName"]: s for s in self.state.steps(self.arn)}[name]
        body.update(
            StepStatus=outcome.status,
            EndTime=_epoch(end),
            Metadata=outcome.metadata,
            _Properties=outcome.properties,
        )
        if outcome.failure_reason:
            body["FailureReason"] = outcome.failure_reason
        else:
            body.pop("FailureReason", None)
        self.state.save_step(self.arn, body)

    def completed_steps(self) -> Mapping[str, StepOutcome]:
        return {
            s["StepName"]: StepOutcome("Succeeded", s.get("_Properties", {}), s.get("Metadata", {}))
            for s in self.state.steps(self.arn)
            if s["StepStatus"] == "Succeeded"
        }


class ExecutionRunner:
    def __init__(self, backend: LocalSageMaker) -> None:
        self.backend = backend
        self.jobs_dir: Path = backend.state_dir / "jobs"
        self._cancel: dict[str, threading.Event] = {}
        self._threads: dict[str, threading.Thread] = {}

    def start(self, execution: dict[str, Any]) -> None:
        arn = execution["PipelineExecutionArn"]
        self._cancel[arn] = threading.Event()
        thread = threading.Thread(
            target=self._run, args=(execution,), name=f"exec-{arn[-12:]}", daemon=True
        )
        self._threads[arn] = thread
        thread.start()

    def stop(self, arn: str) -> None:
        if arn in self._cancel:
            self._cancel[arn].set()

    def shutdown(self) -> None:
        for event in self._cancel.values():
            event.set()
        for thread in self._threads.values():
            thread.join(timeout=10)

    def _context(self, execution: dict[str, Any]) -> ExecutionContext:
        arn = execution["PipelineExecutionArn"]
        pipeline_arn = execution["PipelineArn"]
        return ExecutionContext(
            pipeline_name=pipeline_arn.rsplit("/", 1)[-1],
            pipeline_arn=pipeline_arn,
            execution_id=arn.rsplit("/", 1)[-1],
            execution_arn=arn,
            start_time=datetime.fromtimestamp(execution["CreationTime"], UTC),
        )

    def _run(self, execution: dict[str, Any]) -> None:
        arn = execution["PipelineExecutionArn"]
        cancel = self._cancel[arn]
        context = self._context(execution)
        log_path = self.jobs_dir / context.execution_id / "execution.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a", encoding="utf-8") as log:
            runners = StepRunners(self.backend, context, log, cancel)
            try:
                result = run_execution(
                    execution["_Definition"],
                    execution["_Parameters"],
                    context,
                    runners.by_type(),
                    ExecutionJournal(self.backend, arn),
                    lambda uri: json.loads(self.backend.store.get_bytes(uri)),
                    cancel.is_set,
                )
                status, reason = result.status, result.failure_reason
            except DefinitionError as error:
                status, reason = "Failed", f"Invalid pipeline definition: {error}"
        if cancel.is_set() and status != "Succeeded":
            status, reason = "Stopped", ""
        self.backend.update_execution(
            arn, PipelineExecutionStatus=status, FailureReason=reason or None
        )


class StepRunners:
    """One callable per step type; each returns a StepOutcome and never raises on step failure."""

    def __init__(
        self,
        backend: LocalSageMaker,
        context: ExecutionContext,
        log: IO[str],
        cancel: threading.Event,
    ) -> None:
        self.backend = backend
        self.context = context
        self.log = log
        self.cancel = cancel
        self.work_dir = backend.state_dir / "jobs" / context.execution_id

    def by_type(self) -> dict[str, Any]:
        return {
            "Processing": self.processing,
            "Training": self.training,
            "RegisterModel": self.register_model,
            "Lambda": self.lambda_function,
        }

    def _job(self, run: Callable[..., StepOutcome], request: StepRequest) -> StepOutcome:
        return run(
            job_name(self.context.execution_id, request.name),
            request.arguments,
            self.backend.store,
            self.work_dir,
            self.log,
            cancel=self.cancel,
        )

    def processing(self, request: StepRequest) -> StepOutcome:
        return self._job(jobs.run_processing_job, request)

    def training(self, request: StepRequest) -> StepOutcome:
        return self._job(jobs.run_training_job, request)

    def register_model(self, request: StepRequest) -> StepOutcome:
        """The RegisterModel step creates its group on first use, as SageMaker's does."""
        arguments = {k: v for k, v in request.arguments.items() if v not in ("None", None)}
        group = arguments["ModelPackageGroupName"]
        backend = self.backend
        if backend.state.get("model_package_group", group) is None:
            backend.create_model_package_group({"ModelPackageGroupName": group})
        try:
            arn = backend.create_model_package(arguments)["ModelPackageArn"]
        except ServiceError as error:
            return StepOutcome("Failed", failure_reason=f"{error.code}: {error.message}")
        return StepOutcome("Succeeded", {"ModelPackageArn": arn}, {"RegisterModel": {"Arn": arn}})

    def lambda_function(self, request: StepRequest) -> StepOutcome:
        """Invoke the function with the step's inputs; declared outputs become properties."""
        step = request.step
        payload = {k: v for k, v in request.arguments.items()}
        try:
            invocation = self.backend.functions.invoke(step["FunctionArn"], payload)
        except ServiceError as error:
            return StepOutcome("Failed", failure_reason=f"{error.code}: {error.message}")
        self.log.write(invocation.log)
        self.log.flush()
        if invocation.error:
            return StepOutcome(
                "Failed", failure_reason=f"Lambda function failed: {invocation.error}"
            )
        result = invocation.payload if isinstance(invocation.payload, dict) else {}
        outputs = [
            {"Name": o["OutputName"], "Value": str(result.get(o["OutputName"], ""))}
            for o in step.get("OutputParameters", [])
        ]
        missing = [o["Name"] for o in outputs if o["Name"] not in result]
        if missing:
            return StepOutcome(
                "Failed", failure_reason=f"Lambda output is missing {', '.join(missing)}"
            )
        return StepOutcome(
            "Succeeded",
            {"OutputParameters": outputs},
            {"Lambda": {"Arn": step["FunctionArn"], "OutputParameters": outputs}},
        )
