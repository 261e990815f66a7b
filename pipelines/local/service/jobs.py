"""Processing and training jobs as DescribeProcessingJob / DescribeTrainingJob answer them.

Jobs run inside pipeline executions (`executor.runner`); the runner hands each job's description
to `save_job` as the job starts, at each phase and when it ends, and these operations read it back.
"""

from __future__ import annotations

import time

from pipelines.local.contract.models import operation_model
from pipelines.local.errors import ServiceError, invalid, not_found
from pipelines.local.service.context import ServiceContext
from pipelines.local.service.listing import seconds
from pipelines.local.storage.database import Body

KINDS = {"ProcessingJob": "processing_job", "TrainingJob": "training_job"}
RUNNING = "InProgress"
LABELS = {"ProcessingJob": "processing job", "TrainingJob": "training job"}


class JobOperations:
    def __init__(self, context: ServiceContext) -> None:
        self.context = context

    def save_job(self, kind: str, description: Body) -> None:
        """Keep a job's properties as its Describe*Job answer: the members that answer defines,
        timestamps in seconds, and its start as its creation. A running job's answer is replaced
        as it advances; an ended job's never is, since a job name is never reused."""
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
            if saved is not None and saved[f"{kind}Status"] != RUNNING:
                raise ServiceError("ResourceInUse", f"{LABELS[kind].capitalize()} {name} already exists.")
            self.context.database.put(KINDS[kind], name, body, body["CreationTime"])

    def recover(self) -> None:
        """After a restart nothing is running: a job left InProgress failed with the server."""
        reason = "The local SageMaker server stopped while this job ran."
        with self.context.lock:
            for kind, table in KINDS.items():
                for body in self.context.database.all(table):
                    if body[f"{kind}Status"] != RUNNING:
                        continue
                    body.update({f"{kind}Status": "Failed", "FailureReason": reason})
                    body["LastModifiedTime"] = time.time()
                    if kind == "TrainingJob":
                        body["SecondaryStatus"] = "Failed"
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
