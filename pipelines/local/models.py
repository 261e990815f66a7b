"""The local SageMaker's resources and their rules: pipelines, executions, registry, hosting.

Each public method is one API operation taking the request's fields and returning the response body
(moto's split: `responses.py` only decodes and encodes). State is kept as Describe* shapes in SQLite.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from pipelines.local.endpoints import EndpointHosting
from pipelines.local.errors import ServiceError, invalid, not_found
from pipelines.local.executor import (
    DefinitionError,
    ParameterError,
    resolve_parameters,
    validate_definition,
)
from pipelines.local.lambdas import Functions
from pipelines.local.processes import kill_recorded_groups
from pipelines.local.runner import ExecutionRunner
from pipelines.local.state import Body, State, public
from pipelines.local.store import ObjectStore

ACCOUNT = "000000000000"
ACTIVE = ("Executing", "Stopping")
APPROVALS = ("Approved", "Rejected", "PendingManualApproval")



class LocalSageMaker:
    """Operations of the SageMaker API that the project uses, answered from local state."""

    def __init__(self, state_dir: Path, region: str, server_url: str) -> None:
        self.region = region
        self.state_dir = state_dir
        self.state = State(state_dir / "state.db")
        self.store = ObjectStore(state_dir / "store")
        self.functions = Functions(self.state, state_dir / "functions", region, server_url)
        self._lock = threading.RLock()
        self.runner = ExecutionRunner(self)
        self.hosting = EndpointHosting(self)

    def arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{ACCOUNT}:{kind}/{name}"

    # ---- pipelines -------------------------------------------------------------------------
    def _definition(self, request: Body) -> Body:
        raw = request.get("PipelineDefinition")
        if not raw:
            raise invalid(
                "PipelineDefinition is required (PipelineDefinitionS3Location is not supported locally)"
            )
        try:
            definition = json.loads(raw)
            validate_definition(definition)
        except (json.JSONDecodeError, DefinitionError) as error:
            raise invalid(f"Invalid pipeline definition: {error}") from None
        return definition

    def create_pipeline(self, request: Body) -> Body:
        name = request["PipelineName"]
        self._definition(request)
        with self._lock:
            if self.state.get("pipeline", name):
                raise ServiceError("ResourceInUse", f"Pipeline {name} already exists.")
            now = time.time()
            body = {
                "PipelineArn": self.arn("pipeline", name.lower()),
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
            self.state.put("pipeline", name, body, now)
        return {"PipelineArn": body["PipelineArn"]}

    def update_pipeline(self, request: Body) -> Body:
        body = self._pipeline(request["PipelineName"])
        if "PipelineDefinition" in request:
            self._definition(request)
            body["PipelineDefinition"] = request["PipelineDefinition"]
        for key in ("PipelineDisplayName", "PipelineDescription", "RoleArn"):
            if key in request:
                body[key] = request[key]
        body["LastModifiedTime"] = time.time()
        body["PipelineVersionId"] = int(body.get("PipelineVersionId", 1)) + 1
        self.state.put("pipeline", body["PipelineName"], body, body["CreationTime"])
        return {"PipelineArn": body["PipelineArn"]}

    def _pipeline(self, name_or_arn: str) -> Body:
        name = name_or_arn.rsplit("pipeline/", 1)[-1]
        body = self.state.get("pipeline", name) or next(
            (p for p in self.state.all("pipeline") if p["PipelineName"].lower() == name.lower()),
            None,
        )
        if body is None:
            raise ServiceError("ResourceNotFound", f"Pipeline '{name_or_arn}' does not exist.")
        return body

    def describe_pipeline(self, request: Body) -> Body:
        return self._pipeline(request["PipelineName"])

    def delete_pipeline(self, request: Body) -> Body:
        body = self._pipeline(request["PipelineName"])
        self.state.delete("pipeline", body["PipelineName"])
        return {"PipelineArn": body["PipelineArn"]}

    def list_pipelines(self, request: Body) -> Body:
        return {
            "PipelineSummaries": [
                {
                    k: p[k]
                    for k in (
                        "PipelineArn",
                        "PipelineName",
                        "PipelineDisplayName",
                        "CreationTime",
                        "LastModifiedTime",
                    )
                }
                for p in self.state.all("pipeline")
            ]
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
        self.state.save_execution(body)
        self.runner.start(body)
        return {"PipelineExecutionArn": body["PipelineExecutionArn"]}

    def execution(self, arn: str) -> Body:
        body = self.state.execution(arn)
        if body is None:
            raise ServiceError("ResourceNotFound", f"Pipeline execution '{arn}' does not exist.")
        return body

    def describe_pipeline_execution(self, request: Body) -> Body:
        return public(self.execution(request["PipelineExecutionArn"]))

    def list_pipeline_executions(self, request: Body) -> Body:
        pipeline = self._pipeline(request["PipelineName"])
        found = self.state.executions(pipeline["PipelineArn"])
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
        steps = [public(s) for s in self.state.steps(arn)]
        if request.get("SortOrder", "Descending") == "Descending":
            steps.reverse()
        return {"PipelineExecutionSteps": steps}

    def stop_pipeline_execution(self, request: Body) -> Body:
        body = self.execution(request["PipelineExecutionArn"])
        if body["PipelineExecutionStatus"] != "Executing":
            raise invalid(
                f"Execution is {body['PipelineExecutionStatus']}; only Executing can stop."
            )
        self.update_execution(body["PipelineExecutionArn"], PipelineExecutionStatus="Stopping")
        self.runner.stop(body["PipelineExecutionArn"])
        return {"PipelineExecutionArn": body["PipelineExecutionArn"]}

    def retry_pipeline_execution(self, request: Body) -> Body:
        body = self.execution(request["PipelineExecutionArn"])
        if body["PipelineExecutionStatus"] not in ("Failed", "Stopped"):
            raise invalid(
                f"Execution is {body['PipelineExecutionStatus']}; only Failed or Stopped can retry."
            )
        body = self.update_execution(
            body["PipelineExecutionArn"], PipelineExecutionStatus="Executing", FailureReason=None
        )
        self.runner.start(body)
        return {"PipelineExecutionArn": body["PipelineExecutionArn"]}

    def update_execution(self, arn: str, **changes: Any) -> Body:
        with self._lock:
            body = self.execution(arn)
            for key, value in changes.items():
                if value is None:
                    body.pop(key, None)
                else:
                    body[key] = value
            body["LastModifiedTime"] = time.time()
            self.state.save_execution(body)
            return body

    def recover(self) -> None:
        """After a restart nothing is running: executions left active fail with a reason."""
        reason = "The local SageMaker server stopped while this execution ran; retry it to resume."
        kill_recorded_groups(self.state_dir / "jobs")
        for body in self.state.executions():
            if body["PipelineExecutionStatus"] not in ACTIVE:
                continue
            for step in self.state.steps(body["PipelineExecutionArn"]):
                if step["StepStatus"] == "Executing":
                    step.update(StepStatus="Failed", FailureReason=reason, EndTime=time.time())
                    self.state.save_step(body["PipelineExecutionArn"], step)
            stopped = body["PipelineExecutionStatus"] == "Stopping"
            self.update_execution(
                body["PipelineExecutionArn"],
                PipelineExecutionStatus="Stopped" if stopped else "Failed",
                FailureReason=None if stopped else reason,
            )

    # ---- model registry --------------------------------------------------------------------
    def create_model_package_group(self, request: Body) -> Body:
        name = request["ModelPackageGroupName"]
        with self._lock:
            if self.state.get("model_package_group", name):
                raise invalid(f"Model Package Group already exists: {name}")
            now = time.time()
            body = {
                "ModelPackageGroupName": name,
                "ModelPackageGroupArn": self.arn("model-package-group", name.lower()),
                "ModelPackageGroupDescription": request.get("ModelPackageGroupDescription", ""),
                "CreationTime": now,
                "ModelPackageGroupStatus": "Completed",
            }
            self.state.put("model_package_group", name, body, now)
        return {"ModelPackageGroupArn": body["ModelPackageGroupArn"]}

    def _group(self, name_or_arn: str) -> Body:
        name = name_or_arn.rsplit("model-package-group/", 1)[-1]
        body = self.state.get("model_package_group", name)
        if body is None:
            raise invalid(f"ModelPackageGroup {name} does not exist.")
        return body

    def describe_model_package_group(self, request: Body) -> Body:
        return self._group(request["ModelPackageGroupName"])

    def list_model_package_groups(self, request: Body) -> Body:
        groups = self.state.all("model_package_group")
        return {"ModelPackageGroupSummaryList": groups}

    def create_model_package(self, request: Body) -> Body:
        group = self._group(request["ModelPackageGroupName"])["ModelPackageGroupName"]
        status = request.get("ModelApprovalStatus", "PendingManualApproval")
        if status not in APPROVALS:
            raise invalid(f"ModelApprovalStatus must be one of {', '.join(APPROVALS)}")
        containers = request.get("InferenceSpecification", {}).get("Containers", [])
        if not containers or not containers[0].get("ModelDataUrl"):
            raise invalid("InferenceSpecification.Containers[0].ModelDataUrl is required")
        now = time.time()

        def describe(version: int) -> Body:
            return {
                "ModelPackageGroupName": group,
                "ModelPackageVersion": version,
                "ModelPackageArn": self.arn("model-package", f"{group.lower()}/{version}"),
                "ModelPackageDescription": request.get("ModelPackageDescription", ""),
                "CreationTime": now,
                "LastModifiedTime": now,
                "InferenceSpecification": request["InferenceSpecification"],
                "ModelMetrics": request.get("ModelMetrics", {}),
                "DriftCheckBaselines": request.get("DriftCheckBaselines", {}),
                "CustomerMetadataProperties": request.get("CustomerMetadataProperties", {}),
                "ModelPackageStatus": "Completed",
                "ModelApprovalStatus": status,
            }

        body = self.state.add_package(group, describe, now)
        return {"ModelPackageArn": body["ModelPackageArn"]}

    def _package(self, arn: str) -> Body:
        body = self.state.package(arn)
        if body is None:
            raise invalid(f"ModelPackage {arn} does not exist.")
        return body

    def describe_model_package(self, request: Body) -> Body:
        return self._package(request["ModelPackageName"])

    def list_model_packages(self, request: Body) -> Body:
        group = request.get("ModelPackageGroupName")
        packages = self.state.packages(
            self._group(group)["ModelPackageGroupName"] if group else None
        )
        status = request.get("ModelApprovalStatus")
        packages = [p for p in packages if not status or p["ModelApprovalStatus"] == status]
        if request.get("SortOrder", "Ascending") == "Descending":
            packages.reverse()
        keys = (
            "ModelPackageGroupName",
            "ModelPackageVersion",
            "ModelPackageArn",
            "ModelPackageDescription",
            "CreationTime",
            "ModelPackageStatus",
            "ModelApprovalStatus",
        )
        return {"ModelPackageSummaryList": [{k: p[k] for k in keys} for p in packages]}

    def update_model_package(self, request: Body) -> Body:
        body = self._package(request["ModelPackageArn"])
        status = request.get("ModelApprovalStatus")
        if status is not None and status not in APPROVALS:
            raise invalid(f"ModelApprovalStatus must be one of {', '.join(APPROVALS)}")
        was = body["ModelApprovalStatus"]
        for key in ("ModelApprovalStatus", "ApprovalDescription", "CustomerMetadataProperties"):
            if key in request:
                body[key] = request[key]
        body["LastModifiedTime"] = time.time()
        self.state.save_package(body)
        if status == "Approved" and was != "Approved":
            self.hosting.on_approved(body)
        return {"ModelPackageArn": body["ModelPackageArn"]}

    # ---- models, endpoint configs, endpoints ------------------------------------------------
    def _create(self, kind: str, name: str, body: Body, label: str) -> Body:
        with self._lock:
            if self.state.get(kind, name):
                raise invalid(
                    f'Cannot create already existing {label} "{self.arn(kind.replace("_", "-"), name)}".'
                )
            self.state.put(kind, name, body, body["CreationTime"])
        return body

    def _get(self, kind: str, name: str, label: str) -> Body:
        body = self.state.get(kind, name)
        if body is None:
            raise not_found(label, name)
        return body

    def create_model(self, request: Body) -> Body:
        name = request["ModelName"]
        container = request.get("PrimaryContainer") or (request.get("Containers") or [None])[0]
        if not container or not container.get("ModelDataUrl"):
            raise invalid("PrimaryContainer.ModelDataUrl is required")
        body = {
            "ModelName": name,
            "ModelArn": self.arn("model", name.lower()),
            "PrimaryContainer": container,
            "ExecutionRoleArn": request.get("ExecutionRoleArn", ""),
            "CreationTime": time.time(),
        }
        self._create("model", name, body, "model")
        return {"ModelArn": body["ModelArn"]}

    def describe_model(self, request: Body) -> Body:
        return self._get("model", request["ModelName"], "model")

    def delete_model(self, request: Body) -> Body:
        self._get("model", request["ModelName"], "model")
        self.state.delete("model", request["ModelName"])
        return {}

    def create_endpoint_config(self, request: Body) -> Body:
        name = request["EndpointConfigName"]
        variants = request.get("ProductionVariants") or []
        if not variants:
            raise invalid("ProductionVariants must have at least one variant")
        for variant in variants:
            self._get("model", variant["ModelName"], "model")
        body = {
            "EndpointConfigName": name,
            "EndpointConfigArn": self.arn("endpoint-config", name.lower()),
            "ProductionVariants": variants,
            "DataCaptureConfig": request.get("DataCaptureConfig"),
            "CreationTime": time.time(),
        }
        if body["DataCaptureConfig"] is None:
            body.pop("DataCaptureConfig")
        self._create("endpoint_config", name, body, "endpoint configuration")
        return {"EndpointConfigArn": body["EndpointConfigArn"]}

    def describe_endpoint_config(self, request: Body) -> Body:
        return self._get("endpoint_config", request["EndpointConfigName"], "endpoint configuration")

    def delete_endpoint_config(self, request: Body) -> Body:
        self.describe_endpoint_config(request)
        self.state.delete("endpoint_config", request["EndpointConfigName"])
        return {}

    def create_endpoint(self, request: Body) -> Body:
        name = request["EndpointName"]
        config = self.describe_endpoint_config(request)
        now = time.time()
        body = {
            "EndpointName": name,
            "EndpointArn": self.arn("endpoint", name.lower()),
            "EndpointConfigName": config["EndpointConfigName"],
            "EndpointStatus": "Creating",
            "CreationTime": now,
            "LastModifiedTime": now,
        }
        self._create("endpoint", name, body, "endpoint")
        self.hosting.deploy(name, config)
        return {"EndpointArn": body["EndpointArn"]}

    def update_endpoint(self, request: Body) -> Body:
        name = request["EndpointName"]
        with self._lock:
            body = self._get("endpoint", name, "endpoint")
            if body["EndpointStatus"] in ("Creating", "Updating"):
                raise invalid(f'Cannot update in-progress endpoint "{body["EndpointArn"]}".')
            config = self.describe_endpoint_config(request)
            if config["EndpointConfigName"] == body.get("_Serving"):
                raise invalid(
                    f"Endpoint {name} already uses endpoint config {config['EndpointConfigName']}."
                )
            body.update(EndpointStatus="Updating", LastModifiedTime=time.time())
            body["PendingDeploymentSummary"] = {"EndpointConfigName": config["EndpointConfigName"]}
            body.pop("FailureReason", None)
            self.state.put("endpoint", name, body, body["CreationTime"])
        self.hosting.deploy(name, config)
        return {"EndpointArn": body["EndpointArn"]}

    def describe_endpoint(self, request: Body) -> Body:
        return public(self._get("endpoint", request["EndpointName"], "endpoint"))

    def list_endpoints(self, request: Body) -> Body:
        endpoints = self.state.all("endpoint")
        if request.get("SortOrder", "Descending") == "Descending":
            endpoints.reverse()
        keys = ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus")
        return {"Endpoints": [{k: e[k] for k in keys} for e in endpoints]}

    def delete_endpoint(self, request: Body) -> Body:
        name = request["EndpointName"]
        self._get("endpoint", name, "endpoint")
        self.hosting.delete(name)
        self.state.delete("endpoint", name)
        return {}

    def set_endpoint(self, name: str, **changes: Any) -> None:
        """Record a hosting outcome (called from hosting threads)."""
        with self._lock:
            body = self.state.get("endpoint", name)
            if body is None:
                return
            for key, value in changes.items():
                if value is None:
                    body.pop(key, None)
                else:
                    body[key] = value
            body["LastModifiedTime"] = time.time()
            self.state.put("endpoint", name, body, body["CreationTime"])

    def shutdown(self) -> None:
        self.runner.shutdown()
        self.hosting.shutdown()
        self.state.close()
