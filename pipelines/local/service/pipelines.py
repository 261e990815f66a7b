"""Pipelines and their executions: CreatePipeline ... RetryPipelineExecution, as SageMaker answers.

Executions run in `executor.runner`; what they record (steps, the final status) comes back through
the ExecutionRecords methods here, under the service lock.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from pipelines.local.errors import ServiceError, invalid
from pipelines.local.executor.engine import (
    DefinitionError,
    ParameterError,
    resolve_parameters,
    validate_definition,
)
from pipelines.local.executor.runner import ExecutionRunner
from pipelines.local.service.context import ServiceContext
from pipelines.local.storage.database import Body, public
from pipelines.local.system.supervision import kill_recorded_groups

ACTIVE = ("Executing", "Stopping")


class PipelineOperations:
    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        self.database = context.database
        self.runner: ExecutionRunner | None = None  # set once the runner exists (it needs us)

    def _runner(self) -> ExecutionRunner:
        assert self.runner is not None, "the execution runner is attached at start-up"
        return self.runner

    # ---- pipelines -------------------------------------------------------------------------
    def _definition(self, request: Body) -> Body:
        raw = request.get("PipelineDefinition")
        if not raw:
            raise invalid(
                "PipelineDefinition is required (PipelineDefinitionS3Location is not supported locally)"
            )
        try:
            definition: Body = json.loads(raw)
            validate_definition(definition)
        except (json.JSONDecodeError, DefinitionError) as error:
            raise invalid(f"Invalid pipeline definition: {error}") from None
        return definition

    def create_pipeline(self, request: Body) -> Body:
        name = request["PipelineName"]
        self._definition(request)
        with self.context.lock:
            if self.database.get("pipeline", name):
                raise ServiceError("ResourceInUse", f"Pipeline {name} already exists.")
            now = time.time()
            body = {
                "PipelineArn": self.context.arn("pipeline", name.lower()),
                "PipelineName": name,
                "PipelineDisplayName": request.get("PipelineDisplayName", name),
                "PipelineDescription": request.get("PipelineDescription", ""),
                "PipelineDefinition": request["PipelineDefinition"],
                "RoleArn": request.get("RoleArn", ""),
                "PipelineStatus": "Active",
                "CreationTime": now,
                "LastModifiedTime": now,
                "PipelineVersionId": 1,
            }
            self.database.put("pipeline", name, body, now)
        return {"PipelineArn": body["PipelineArn"]}

    def update_pipeline(self, request: Body) -> Body:
        if "PipelineDefinition" in request:
            self._definition(request)
        with self.context.lock:
            body = self._pipeline(request["PipelineName"])
            for key in ("PipelineDefinition", "PipelineDisplayName", "PipelineDescription", "RoleArn"):
                if key in request:
                    body[key] = request[key]
            body["LastModifiedTime"] = time.time()
            body["PipelineVersionId"] = int(body.get("PipelineVersionId", 1)) + 1
            self.database.put("pipeline", body["PipelineName"], body, body["CreationTime"])
        return {"PipelineArn": body["PipelineArn"]}

    def _pipeline(self, name_or_arn: str) -> Body:
        name = name_or_arn.rsplit("pipeline/", 1)[-1]
        body = self.database.get("pipeline", name) or next(
            (p for p in self.database.all("pipeline") if p["PipelineName"].lower() == name.lower()),
            None,
        )
        if body is None:
            raise ServiceError("ResourceNotFound", f"Pipeline '{name_or_arn}' does not exist.")
        return body

    def describe_pipeline(self, request: Body) -> Body:
        return self._pipeline(request["PipelineName"])

    def delete_pipeline(self, request: Body) -> Body:
        with self.context.lock:
            body = self._pipeline(request["PipelineName"])
            self.database.delete("pipeline", body["PipelineName"])
        return {"PipelineArn": body["PipelineArn"]}

    def list_pipelines(self, request: Body) -> Body:
        keys = ("PipelineArn", "PipelineName", "PipelineDisplayName", "CreationTime", "LastModifiedTime")
        return {
            "PipelineSummaries": [{k: p[k] for k in keys} for p in self.database.all("pipeline")]
        }

    # ---- executions ------------------------------------------------------------------------
    def start_pipeline_execution(self, request: Body) -> Body:
        pipeline = self._pipeline(request["PipelineName"])
        definition = json.loads(pipeline["PipelineDefinition"])
        overrides = {p["Name"]: p["Value"] for p in request.get("PipelineParameters", [])}
        try:
            parameters = resolve_parameters(definition, overrides)
        except ParameterError as error:
            raise invalid(str(error)) from None
        execution_id = uuid.uuid4().hex[:12]
        now = time.time()
        body = {
            "PipelineArn": pipeline["PipelineArn"],
            "PipelineExecutionArn": f"{pipeline['PipelineArn']}/execution/{execution_id}",
            "PipelineExecutionDisplayName": request.get(
                "PipelineExecutionDisplayName", execution_id
            ),
            "PipelineExecutionDescription": request.get("PipelineExecutionDescription", ""),
            "PipelineExecutionStatus": "Executing",
            "CreationTime": now,
            "LastModifiedTime": now,
            "PipelineParameters": [{"Name": k, "Value": str(v)} for k, v in parameters.items()],
            "_Definition": definition,
            "_Parameters": parameters,
        }
        self.database.save_execution(body)
        self._runner().start(body)
        return {"PipelineExecutionArn": body["PipelineExecutionArn"]}

    def execution(self, arn: str) -> Body:
        body = self.database.execution(arn)
        if body is None:
            raise ServiceError("ResourceNotFound", f"Pipeline execution '{arn}' does not exist.")
        return body

    def describe_pipeline_execution(self, request: Body) -> Body:
        return public(self.execution(request["PipelineExecutionArn"]))

    def list_pipeline_executions(self, request: Body) -> Body:
        pipeline = self._pipeline(request["PipelineName"])
        found = self.database.executions(pipeline["PipelineArn"])
        if request.get("SortOrder", "Descending") == "Descending":
            found.reverse()
        limit = int(request.get("MaxResults", 50))
        return {
            "PipelineExecutionSummaries": [
                {
                    "PipelineExecutionArn": e["PipelineExecutionArn"],
                    "StartTime": e["CreationTime"],
                    "PipelineExecutionStatus": e["PipelineExecutionStatus"],
                    "PipelineExecutionDisplayName": e["PipelineExecutionDisplayName"],
                    "PipelineExecutionFailureReason": e.get("FailureReason", ""),
                }
                for e in found[:limit]
            ]
        }

    def list_pipeline_execution_steps(self, request: Body) -> Body:
        arn = request["PipelineExecutionArn"]
        self.execution(arn)
        steps = [public(s) for s in self.database.steps(arn)]
        if request.get("SortOrder", "Descending") == "Descending":
            steps.reverse()
        return {"PipelineExecutionSteps": steps}

    def stop_pipeline_execution(self, request: Body) -> Body:
        with self.context.lock:
            body = self.execution(request["PipelineExecutionArn"])
            if body["PipelineExecutionStatus"] != "Executing":
                raise invalid(
                    f"Execution is {body['PipelineExecutionStatus']}; only Executing can stop."
                )
            self.update_execution(body["PipelineExecutionArn"], PipelineExecutionStatus="Stopping")
        self._runner().stop(body["PipelineExecutionArn"])
        return {"PipelineExecutionArn": body["PipelineExecutionArn"]}

    def retry_pipeline_execution(self, request: Body) -> Body:
        with self.context.lock:
            body = self.execution(request["PipelineExecutionArn"])
            if body["PipelineExecutionStatus"] not in ("Failed", "Stopped"):
                raise invalid(
                    f"Execution is {body['PipelineExecutionStatus']}; only Failed or Stopped can retry."
                )
            body = self.update_execution(
                body["PipelineExecutionArn"], PipelineExecutionStatus="Executing", FailureReason=None
            )
        self._runner().start(body)
        return {"PipelineExecutionArn": body["PipelineExecutionArn"]}

    def update_execution(self, arn: str, **changes: Any) -> Body:
        with self.context.lock:
            body = self.execution(arn)
            for key, value in changes.items():
                if value is None:
                    body.pop(key, None)
                else:
                    body[key] = value
            body["LastModifiedTime"] = time.time()
            self.database.save_execution(body)
            return body

    # ---- what the runner records (executor.runner.ExecutionRecords) -----------------------
    def steps(self, execution_arn: str) -> list[Body]:
        return self.database.steps(execution_arn)

    def save_step(self, execution_arn: str, body: Body) -> None:
        with self.context.lock:
            self.database.save_step(execution_arn, body)

    def finish_execution(self, execution_arn: str, status: str, reason: str) -> None:
        self.update_execution(
            execution_arn, PipelineExecutionStatus=status, FailureReason=reason or None
        )

    def recover(self) -> None:
        """After a restart nothing is running: executions left active fail with a reason."""
        reason = "The local SageMaker server stopped while this execution ran; retry it to resume."
        kill_recorded_groups(self.context.layout.jobs)
        for body in self.database.executions():
            if body["PipelineExecutionStatus"] not in ACTIVE:
                continue
            for step in self.database.steps(body["PipelineExecutionArn"]):
                if step["StepStatus"] == "Executing":
                    step.update(StepStatus="Failed", FailureReason=reason, EndTime=time.time())
                    self.save_step(body["PipelineExecutionArn"], step)
            stopped = body["PipelineExecutionStatus"] == "Stopping"
            self.finish_execution(
                body["PipelineExecutionArn"], "Stopped" if stopped else "Failed", "" if stopped else reason
            )
