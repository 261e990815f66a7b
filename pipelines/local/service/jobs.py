"""Processing and training jobs as DescribeProcessingJob / DescribeTrainingJob and
ListProcessingJobs / ListTrainingJobs answer them, and their stop (StopProcessingJob /
StopTrainingJob).

Jobs run inside pipeline executions (`executor.runner`); the runner hands each job's description
to `save_job` as the job starts, at each phase, as its stop is asked and when it ends, and these
operations read it back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pipelines.local.contract.models import operation_model, service_model
from pipelines.local.errors import ServiceError, invalid, not_found
from pipelines.local.executor.runner import ExecutionRunner
from pipelines.local.jobs.training import ended_transitions
from pipelines.local.service.context import ServiceContext
from pipelines.local.service.listing import Filter, Listing, between, contains, equals, seconds
from pipelines.local.storage.database import Body

KINDS = {"ProcessingJob": "processing_job", "TrainingJob": "training_job"}
RUNNING = "InProgress"
STOPPING = "Stopping"
LABELS = {"ProcessingJob": "processing job", "TrainingJob": "training job"}
END_TIMES = {"ProcessingJob": "ProcessingEndTime", "TrainingJob": "TrainingEndTime"}
SERVER_STOPPED = "The local SageMaker server stopped while this job ran."
STOP_CUT_SHORT = "Stopped: the local SageMaker server stopped while this job was stopping"
# Why a job the server's stop left running or stopping ended so, by kind and by the status it had.
RECOVERED = {
    "ProcessingJob": {RUNNING: SERVER_STOPPED, STOPPING: f"{STOP_CUT_SHORT}; its outputs were not uploaded."},
    "TrainingJob": {RUNNING: SERVER_STOPPED, STOPPING: f"{STOP_CUT_SHORT}; its model was not uploaded."},
}


def _listing(kind: str, more: dict[str, Filter] | None = None, **options: Any) -> Listing:
    """List{kind}s: by creation time, oldest first unless asked otherwise (the API reference's
    defaults), or by name or status."""
    return Listing(
        f"List{kind}s", f"{kind}Summaries",
        {"Name": f"{kind}Name", "CreationTime": "CreationTime", "Status": f"{kind}Status"},
        identity=f"{kind}Arn", default_order="Ascending",
        filters={
            "NameContains": contains(f"{kind}Name"),
            "StatusEquals": equals(f"{kind}Status"),
            **between("CreationTimeAfter", "CreationTimeBefore"),
            **between("LastModifiedTimeAfter", "LastModifiedTimeBefore", "LastModifiedTime"),
            **(more or {}),
        },
        **options,
    )


PROCESSING_JOBS = _listing("ProcessingJob")
TRAINING_JOBS = _listing(
    "TrainingJob",
    {
        "WarmPoolStatusEquals": equals("WarmPoolStatus", "Status"),  # no local job keeps a warm pool
        "TrainingPlanArnEquals": equals("ResourceConfig", "TrainingPlanArn"),
    },
    page_filters=frozenset({"StatusEquals"}),
)
SUMMARIES = {kind: service_model("sagemaker").shape_for(f"{kind}Summary").members for kind in KINDS}


def _summary(kind: str) -> Callable[[Body], Body]:
    """A job as its summary shape has it: the members its description has too; a training job's
    TrainingPlanArn is its ResourceConfig's."""

    def summary(job: Body) -> Body:
        found = {member: job[member] for member in SUMMARIES[kind] if member in job}
        plan = job.get("ResourceConfig", {}).get("TrainingPlanArn")
        if kind == "TrainingJob" and plan:
            found["TrainingPlanArn"] = plan
        return found

    return summary


class JobOperations:
    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        self.runner: ExecutionRunner | None = None  # set once the runner exists (it needs us)

    def save_job(self, kind: str, description: Body) -> None:
        """Keep a job's properties as its Describe*Job answer: the members that answer defines,
        timestamps in seconds, and its start as its creation. A running job's answer is replaced
        as it advances; an ended job's never is, since a job name is never reused; a stopping
        job's is not replaced by one taken before its stop was asked (InProgress)."""
        shape = operation_model("sagemaker", f"Describe{kind}").output_shape
        assert shape is not None
        body = {k: v for k, v in description.items() if k in shape.members and v not in ("", None)}
        for name, member in shape.members.items():
            if member.type_name == "timestamp" and isinstance(body.get(name), str):
                body[name] = seconds(body[name])
        start = body.get("ProcessingStartTime", body.get("TrainingStartTime"))
        body.setdefault("CreationTime", start)
        end = body.get("ProcessingEndTime", body.get("TrainingEndTime"))
        body.setdefault("LastModifiedTime", time.time() if end is None else end)
        if kind == "TrainingJob":
            body.setdefault("StoppingCondition", {"MaxRuntimeInSeconds": 86400})  # SageMaker's default
        name = body[f"{kind}Name"]
        with self.context.lock:
            saved = self.context.database.get(KINDS[kind], name)
            saved_status = None if saved is None else saved[f"{kind}Status"]
            if saved_status == STOPPING and body[f"{kind}Status"] == RUNNING:
                return
            if saved_status not in (None, RUNNING, STOPPING):
                raise ServiceError("ResourceInUse", f"{LABELS[kind].capitalize()} {name} already exists.")
            self.context.database.put(KINDS[kind], name, body, body["CreationTime"])

    def stop_processing_job(self, request: Body) -> Body:
        name = request["ProcessingJobName"]
        self._stop("ProcessingJob", name, not_found(LABELS["ProcessingJob"], name))
        return {}

    def stop_training_job(self, request: Body) -> Body:
        self._stop("TrainingJob", request["TrainingJobName"], invalid("Requested resource not found."))
        return {}

    def _stop(self, kind: str, name: str, missing: ServiceError) -> None:
        """Only an InProgress job can stop, as SageMaker answers; it is Stopping at once, and
        Stopped once its process has exited and what a stop keeps is uploaded."""
        assert self.runner is not None, "the execution runner is attached at start-up"
        with self.context.lock:
            status = self._job(kind, name, missing)[f"{kind}Status"]
            if status != RUNNING:
                raise invalid(f"The request was rejected because the {LABELS[kind]} is in status {status}.")
            self.runner.stop_job(name)

    def recover(self) -> None:
        """After a restart nothing is running: a job left InProgress failed with the server, and
        one left Stopping is Stopped, saying what its stop could not finish."""
        with self.context.lock:
            for kind, table in KINDS.items():
                for body in self.context.database.all(table):
                    status = body[f"{kind}Status"]
                    if status not in (RUNNING, STOPPING):
                        continue
                    ending, now = ("Failed" if status == RUNNING else "Stopped"), datetime.now(UTC)
                    body.update({f"{kind}Status": ending, "FailureReason": RECOVERED[kind][status]})
                    body[END_TIMES[kind]] = body["LastModifiedTime"] = now.timestamp()
                    if kind == "TrainingJob":
                        body["SecondaryStatus"] = ending
                        body["SecondaryStatusTransitions"] = ended_transitions(
                            body.get("SecondaryStatusTransitions", []), ending, now
                        )
                    self.context.database.put(table, body[f"{kind}Name"], body, body["CreationTime"])

    def _job(self, kind: str, name: str, missing: ServiceError) -> Body:
        """The job's record; `missing` when there is none. SageMaker answers an unknown job with
        ValidationException, although its model lists ResourceNotFound."""
        body = self.context.database.get(KINDS[kind], name)
        if body is None:
            raise missing
        return body

    def describe_processing_job(self, request: Body) -> Body:
        name = request["ProcessingJobName"]
        return self._job("ProcessingJob", name, not_found(LABELS["ProcessingJob"], name))

    def describe_training_job(self, request: Body) -> Body:
        missing = invalid("Requested resource not found.")
        return self._job("TrainingJob", request["TrainingJobName"], missing)

    def list_processing_jobs(self, request: Body) -> Body:
        jobs = self.context.database.all(KINDS["ProcessingJob"])
        return PROCESSING_JOBS.page(jobs, request, _summary("ProcessingJob"))

    def list_training_jobs(self, request: Body) -> Body:
        jobs = self.context.database.all(KINDS["TrainingJob"])
        return TRAINING_JOBS.page(jobs, request, _summary("TrainingJob"))
