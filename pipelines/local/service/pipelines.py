"""Pipelines and their executions: CreatePipeline ... RetryPipelineExecution, as SageMaker answers.

Executions run in `executor.runner`; what they record (steps, the final status) comes back through
the ExecutionRecords methods here, under the service lock.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.local.contract.members import repeated
from pipelines.local.errors import ServiceError, invalid
from pipelines.local.executor.checks import check_sources
from pipelines.local.executor.engine import (
    DefinitionError,
    ParameterError,
    experiment_names,
    resolve_parameters,
    step_dependencies,
    validate_definition,
)
from pipelines.local.executor.runner import RUNNING_STEPS, ExecutionRunner, execution_context
from pipelines.local.executor.selection import SelectionError, select_steps
from pipelines.local.jobs.image_python import image_python
from pipelines.local.service.context import CREATED_BY, ServiceContext
from pipelines.local.service.idempotency import once
from pipelines.local.service.listing import Listing, between, numbered, only, prefix
from pipelines.local.service.version_aliases import ALIASES, answered, assigned, with_alias, with_aliases
from pipelines.local.storage.database import Body, public
from pipelines.local.storage.objects import NoSuchKey
from pipelines.local.system.supervision import kill_recorded_groups

ACTIVE = ("Executing", "Stopping")
PIPELINE_FIELDS = (
    "PipelineArn", "PipelineName", "PipelineDisplayName", "PipelineDefinition", "PipelineDescription",
    "RoleArn", "PipelineStatus", "CreationTime", "LastModifiedTime", "ParallelismConfiguration",
)
EXECUTION_FIELDS = (
    "PipelineArn", "PipelineExecutionArn", "PipelineExecutionDisplayName", "PipelineExecutionStatus",
    "PipelineExecutionDescription", "FailureReason", "CreationTime", "LastModifiedTime",
    "PipelineVersionId", "ParallelismConfiguration", "SelectiveExecutionConfig", "PipelineExperimentConfig",
)
# Who created and last changed a pipeline or an execution: always the account's caller here.
CREATOR = {"CreatedBy": CREATED_BY, "LastModifiedBy": CREATED_BY}
VERSION_NAMING = ("PipelineVersionDisplayName", "PipelineVersionDescription")  # UpdatePipelineVersion's
EXECUTION_UPDATES = (
    "PipelineExecutionDescription", "PipelineExecutionDisplayName", "ParallelismConfiguration",
)
PIPELINES = Listing(
    "ListPipelines", "PipelineSummaries", {"Name": "PipelineName", "CreationTime": "CreationTime"},
    identity="PipelineArn",
    filters={
        "PipelineNamePrefix": prefix("PipelineName"),
        **between("CreatedAfter", "CreatedBefore"),
        "ManagedBy": only("CUSTOMER"),
    },
)
EXECUTIONS = Listing(
    "ListPipelineExecutions", "PipelineExecutionSummaries",
    {"CreationTime": "CreationTime", "PipelineExecutionArn": "PipelineExecutionArn"},
    identity="PipelineExecutionArn", filters=between("CreatedAfter", "CreatedBefore"),
    scope=("PipelineName", "PipelineVersionAlias"),
)
PIPELINE_VERSIONS = Listing(
    "ListPipelineVersions", "PipelineVersionSummaries", {"CreationTime": "CreationTime"},
    identity="PipelineVersionId", filters=between("CreatedAfter", "CreatedBefore"), scope=("PipelineName",),
)
STEPS = Listing(
    "ListPipelineExecutionSteps", "PipelineExecutionSteps", {"StartTime": "StartTime"},
    identity="StepName", default_sort="StartTime", scope=("PipelineExecutionArn",),
)
PARAMETERS = Listing.as_recorded(
    "ListPipelineParametersForExecution", "PipelineParameters", "Name", scope=("PipelineExecutionArn",)
)
SELECTION_SOURCES = ("Succeeded", "Failed")  # the API reference: "either Failed or Success"
# The longest FailureReason a step (ListPipelineExecutionSteps) and an execution
# (DescribePipelineExecution) can show: a longer reason (a Fail step's own message, a request
# that breaks its shape naming every value an enum allows, a definition the executor cannot read)
# is kept to its first characters.
STEP_REASON_LIMIT = 1024
EXECUTION_REASON_LIMIT = 1300


def _reused_step(body: Body, source_arn: str) -> Body:
    """A source execution's step as a selective execution lists it: reused, not run again."""
    copied = {k: v for k, v in body.items() if k not in ("CacheHitResult", "_CacheKey")}
    copied["SelectiveExecutionResult"] = {"SourcePipelineExecutionArn": source_arn}
    return copied


class PipelineOperations:
    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        self.database = context.database
        self.runner: ExecutionRunner | None = None  # set once the runner exists (it needs us)

    def _runner(self) -> ExecutionRunner:
        assert self.runner is not None, "the execution runner is attached at start-up"
        return self.runner

    def _once(self, operation: str, request: Body, act: Callable[[], Body]) -> Body:
        """An operation with a ClientRequestToken "completes no more than one time"."""
        return once(self.context, "ClientRequestToken", operation, request, act)

    # ---- pipelines -------------------------------------------------------------------------
    def _definition(self, request: Body) -> str:
        """The definition's text, from the request or the S3 object it names, once it is checked."""
        raw = self._definition_text(request)
        try:
            definition: Body = json.loads(raw)
            if not isinstance(definition, dict):
                raise DefinitionError("a definition is a JSON object")
            validate_definition(definition)
        except (json.JSONDecodeError, DefinitionError) as error:
            raise invalid(f"Invalid pipeline definition: {error}") from None
        sources = check_sources(definition, self._stored_file)
        if sources.problems:
            raise invalid("Invalid pipeline definition: " + "\n".join(sources.problems))
        # The environments its Training steps will run in, made now rather than inside a run's Train:
        # 3 ms on a quiet disk, 70-100 ms while a run writes to it (jobs/image_python.py).
        for requirements in sources.requirements:
            image_python(self.context.layout.image_environments, requirements)
        return raw

    def _definition_text(self, request: Body) -> str:
        """PipelineDefinition, or the object PipelineDefinitionS3Location names (where the SDK puts
        a definition of 100 KB or more), read from the local S3."""
        location = request.get("PipelineDefinitionS3Location")
        if "PipelineDefinition" in request and location is not None:
            raise invalid("Specify PipelineDefinition or PipelineDefinitionS3Location, not both.")
        if location is None:
            if not request.get("PipelineDefinition"):
                raise invalid("PipelineDefinition or PipelineDefinitionS3Location is required.")
            return str(request["PipelineDefinition"])
        uri = f"s3://{location['Bucket']}/{location['ObjectKey']}"
        try:
            return self.context.store.get_bytes(uri, location.get("VersionId")).decode("utf-8")
        except (NoSuchKey, ValueError) as error:  # no such object or version; a key unsafe here
            raise invalid(f"Could not read the pipeline definition at {uri}: {error}") from None
        except UnicodeDecodeError:
            raise invalid(f"The pipeline definition at {uri} is not UTF-8 text.") from None

    def _stored_file(self, uri: str) -> Path | None:
        """The local S3 object's file, if `uri` names one that exists."""
        try:
            path = self.context.store.path_for(uri)
        except ValueError:
            return None
        return path if path.is_file() else None

    def create_pipeline(self, request: Body) -> Body:
        return self._once("CreatePipeline", request, lambda: self._create_pipeline(request))

    def _create_pipeline(self, request: Body) -> Body:
        name = request["PipelineName"]
        aliases = assigned([], 1, request.get(ALIASES, []))
        definition_text = self._definition(request)
        with self.context.lock:
            if self._find(name):
                raise invalid(
                    "Pipeline names must be unique within an AWS account and region. "
                    f"Pipeline with name ({name}) already exists."
                )
            now = time.time()
            body = {
                "PipelineArn": self.context.arn("pipeline", name),  # in the name's case, as SageMaker has it
                "PipelineName": name,
                "PipelineDisplayName": request.get("PipelineDisplayName", name),
                "PipelineDefinition": definition_text,
                "RoleArn": request["RoleArn"],
                "PipelineStatus": "Active",
                "CreationTime": now,
                "LastModifiedTime": now,
                "_VersionId": 1,
            }
            body.update(_given(request, "PipelineDescription", "ParallelismConfiguration"))
            self.database.put("pipeline", name, body, now)
            self._save_version(body, aliases)
            self.context.add_tags(body["PipelineArn"], request.get("Tags", []))
        return {"PipelineArn": body["PipelineArn"]}

    def update_pipeline(self, request: Body) -> Body:
        """A version is a definition: an update that gives one creates the next version (the API
        reference assigns aliases "only when the update changes the pipeline definition"); one
        that changes only the display name, description, role or parallelism answers the current
        version."""
        changes = _given(
            request, "PipelineDisplayName", "PipelineDescription", "RoleArn", "ParallelismConfiguration"
        )
        redefined = "PipelineDefinition" in request or "PipelineDefinitionS3Location" in request
        if ALIASES in request and not redefined:
            raise invalid(
                "PipelineVersionAliases can be given only when the update changes the pipeline definition; "
                "to change the aliases of an existing version, use UpdatePipelineVersion."
            )
        if redefined:
            changes["PipelineDefinition"] = self._definition(request)
        with self.context.lock:
            body = self._pipeline(request["PipelineName"])
            version = _version_id(body) + (1 if redefined else 0)
            aliases = assigned(self._versions(body), version, request.get(ALIASES, [])) if redefined else []
            body.update(changes)
            body["LastModifiedTime"] = time.time()
            body["_VersionId"] = version
            body.pop("PipelineVersionId", None)  # where state written before versions kept it
            self.database.put("pipeline", body["PipelineName"], body, body["CreationTime"])
            if redefined:
                self._save_version(body, aliases)
        return {"PipelineArn": body["PipelineArn"], "PipelineVersionId": body["_VersionId"]}

    def _save_version(self, pipeline: Body, aliases: list[str]) -> None:
        """Each create or update is a version that ListPipelineVersions lists."""
        version = {
            "PipelineArn": pipeline["PipelineArn"],
            "PipelineVersionId": _version_id(pipeline),
            "CreationTime": pipeline["LastModifiedTime"],
            "PipelineDefinition": pipeline["PipelineDefinition"],
        }
        self._put_version(with_aliases(version, aliases))

    def _put_version(self, version: Body) -> None:
        self.database.put(
            "pipeline_version", f"{version['PipelineArn']}#{version['PipelineVersionId']}", version,
            version["CreationTime"],
        )

    def _versions(self, pipeline: Body) -> list[Body]:
        """The pipeline's versions, oldest first."""
        arn = pipeline["PipelineArn"]
        return [v for v in self.database.all("pipeline_version") if v["PipelineArn"] == arn]

    def _requested_version(self, pipeline: Body, request: Body) -> int | None:
        """The version a request names by PipelineVersionId or PipelineVersionAlias (one at most, as
        the API reference has it), or None when it names neither."""
        if "PipelineVersionId" in request and "PipelineVersionAlias" in request:
            raise invalid("PipelineVersionId and PipelineVersionAlias cannot both be given.")
        if "PipelineVersionAlias" not in request:
            return int(request["PipelineVersionId"]) if "PipelineVersionId" in request else None
        alias = request["PipelineVersionAlias"]
        found = with_alias(self._versions(pipeline), alias)
        if found is None:
            raise ServiceError(
                "ResourceNotFound",
                f"Pipeline '{pipeline['PipelineName']}' has no version with alias '{alias}'.",
            )
        return int(found["PipelineVersionId"])

    def _version_aliases(self, pipeline_arn: str, version: Any) -> Body:
        """The aliases the version has now, as an execution of it answers them."""
        found = self.database.get("pipeline_version", f"{pipeline_arn}#{version}")
        return answered(found or {})

    def _find(self, name_or_arn: str) -> Body | None:
        """Pipeline names are unique regardless of case, and an ARN names one too."""
        return self.database.find("pipeline", name_or_arn.rsplit("pipeline/", 1)[-1])

    def _pipeline(self, name_or_arn: str) -> Body:
        body = self._find(name_or_arn)
        if body is None:
            raise ServiceError("ResourceNotFound", f"Pipeline '{name_or_arn}' does not exist.")
        return body

    def describe_pipeline(self, request: Body) -> Body:
        """The pipeline, with the definition, display name and description of the version asked
        for (the current one otherwise)."""
        body = self._pipeline(request["PipelineName"])
        described = {k: body[k] for k in PIPELINE_FIELDS if k in body}
        requested = self._requested_version(body, request)
        version = self._version(body, _version_id(body) if requested is None else requested, quiet=True)
        if requested is not None:
            described["PipelineDefinition"] = version["PipelineDefinition"]
        described.update({k: version[k] for k in VERSION_NAMING if k in version})
        described.update(answered(version))
        last_run = self.database.last_execution_times().get(body["PipelineArn"])
        if last_run is not None:
            described["LastRunTime"] = last_run
        return {**described, **CREATOR}

    def _version(self, pipeline: Body, version: int, quiet: bool = False) -> Body:
        """A version of the pipeline; `quiet`: {} for one state written before versions were kept."""
        found = self.database.get("pipeline_version", f"{pipeline['PipelineArn']}#{version}")
        if found is None and quiet and version == _version_id(pipeline):
            return {}
        if found is None:
            raise ServiceError(
                "ResourceNotFound", f"Pipeline '{pipeline['PipelineArn']}' has no version {version}."
            )
        return found

    def update_pipeline_version(self, request: Body) -> Body:
        """A version's display name, description and aliases, which ListPipelineVersions and
        DescribePipeline answer; its definition never changes."""
        with self.context.lock:
            pipeline = self._pipeline(request["PipelineArn"])
            version = self._version(pipeline, request["PipelineVersionId"])
            version.update(_given(request, *VERSION_NAMING))
            operations = request.get("PipelineVersionAliasOperations")
            if operations is not None:
                aliases = assigned(self._versions(pipeline), version["PipelineVersionId"],
                                   operations.get("Add", []), operations.get("Remove", []))
                version = with_aliases(version, aliases)
            self._put_version(version)
        return {"PipelineArn": pipeline["PipelineArn"], "PipelineVersionId": version["PipelineVersionId"]}

    def delete_pipeline(self, request: Body) -> Body:
        return self._once("DeletePipeline", request, lambda: self._delete_pipeline(request))

    def _delete_pipeline(self, request: Body) -> Body:
        """Only with no execution running; its executions, steps and versions go with it, so a
        pipeline created again under the name starts with no history (and no step cache)."""
        with self.context.lock:
            body = self._pipeline(request["PipelineName"])
            arn = body["PipelineArn"]
            running = self.database.active_executions(arn, ACTIVE)
            if running:
                raise ServiceError(
                    "ConflictException",
                    f"Pipeline {body['PipelineName']} has {len(running)} running execution(s); stop "
                    "them before deleting it.",
                )
            self.database.delete("pipeline", body["PipelineName"])
            self.database.delete_pipeline_history(arn)
            self.context.delete_tags(arn)
        return {"PipelineArn": arn}

    def list_pipelines(self, request: Body) -> Body:
        keys = (
            "PipelineArn", "PipelineName", "PipelineDisplayName", "PipelineDescription", "RoleArn",
            "CreationTime", "LastModifiedTime",
        )
        last_runs = self.database.last_execution_times()

        def summary(pipeline: Body) -> Body:
            found = {k: pipeline[k] for k in keys if k in pipeline}
            if pipeline["PipelineArn"] in last_runs:
                found["LastExecutionTime"] = last_runs[pipeline["PipelineArn"]]
            return found

        return PIPELINES.page(self.database.all("pipeline"), request, summary)

    def list_pipeline_versions(self, request: Body) -> Body:
        pipeline = self._pipeline(request["PipelineName"])
        versions = self._versions(pipeline)
        last_runs: dict[int, str] = {}
        for execution in self.database.executions(pipeline["PipelineArn"]):  # oldest first
            last_runs[int(execution.get("PipelineVersionId", 1))] = execution["PipelineExecutionArn"]

        def summary(version: Body) -> Body:
            shown = ("PipelineArn", "PipelineVersionId", "CreationTime", *VERSION_NAMING)
            found = {**{k: version[k] for k in shown if k in version}, **answered(version)}
            if version["PipelineVersionId"] in last_runs:
                found["LastExecutionPipelineExecutionArn"] = last_runs[version["PipelineVersionId"]]
            return found

        return PIPELINE_VERSIONS.page(versions, request, summary)

    # ---- executions ------------------------------------------------------------------------
    def start_pipeline_execution(self, request: Body) -> Body:
        return self._once("StartPipelineExecution", request, lambda: self._start_execution(request))

    def _start_execution(self, request: Body) -> Body:
        _refuse_start_options(request)
        overrides = _overrides(request)
        pipeline = self._pipeline(request["PipelineName"])
        version = _version_id(pipeline)
        definition_text = pipeline["PipelineDefinition"]
        requested = self._requested_version(pipeline, request)
        if requested is not None:  # an earlier version's definition, run as it was
            version = requested
            definition_text = self._version(pipeline, version)["PipelineDefinition"]
        definition = json.loads(definition_text)
        try:
            parameters = resolve_parameters(definition, overrides)
        except ParameterError as error:
            raise invalid(str(error)) from None
        parallelism = request.get("ParallelismConfiguration") or pipeline.get("ParallelismConfiguration")
        selective, reused = self._selection(pipeline, definition, request)
        execution_id = uuid.uuid4().hex[:12]
        now = time.time()
        body = {
            "PipelineArn": pipeline["PipelineArn"],
            "PipelineExecutionArn": f"{pipeline['PipelineArn']}/execution/{execution_id}",
            "PipelineExecutionDisplayName": request.get(
                "PipelineExecutionDisplayName", f"execution-{int(now * 1000)}"
            ),
            "PipelineExecutionStatus": "Executing",
            "CreationTime": now,
            "LastModifiedTime": now,
            "PipelineParameters": _parameter_values(definition, overrides),
            "PipelineVersionId": version,
            "_Definition": definition,
            "_Parameters": parameters,
            **_given(request, "PipelineExecutionDescription"),
        }
        if parallelism:
            body["ParallelismConfiguration"] = parallelism
        if selective:
            body["SelectiveExecutionConfig"] = selective
        try:
            experiment = experiment_names(definition, execution_context(body), parameters)
        except DefinitionError as error:
            raise invalid(str(error)) from None
        if experiment:
            body["PipelineExperimentConfig"] = experiment
        self.database.save_execution(body)
        for step in reused:
            self.save_step(body["PipelineExecutionArn"], step)
        self._runner().start(body)
        return {"PipelineExecutionArn": body["PipelineExecutionArn"]}

    def _selection(self, pipeline: Body, definition: Body, request: Body) -> tuple[Body | None, list[Body]]:
        """A SelectiveExecutionConfig checked as SageMaker checks it, and the source execution's
        steps that the selected ones need (they are listed, not run)."""
        config = request.get("SelectiveExecutionConfig")
        if config is None:
            return None, []
        selected = config["SelectedSteps"]  # its shape (1 to 50 names) is the contract layer's
        try:
            selection = select_steps(step_dependencies(definition), [s["StepName"] for s in selected])
        except (SelectionError, DefinitionError) as error:
            raise invalid(f"Invalid selective execution: {error}") from None
        source_arn = config.get("SourcePipelineExecutionArn")
        public_config = {"SelectedSteps": [{"StepName": s["StepName"]} for s in selected]}
        if not source_arn:
            if selection.reused:  # SageMaker's words, its lists as Java prints them
                raise invalid(
                    "Invalid SourcePipelineExecutionArn: null. The selected steps "
                    f"[{', '.join(s['StepName'] for s in selected)}] have dependencies on "
                    f"[{', '.join(sorted(selection.reused))}]"
                )
            return public_config, []
        source = self.execution(source_arn)
        if source["PipelineArn"] != pipeline["PipelineArn"]:
            raise invalid(f"Source execution {source_arn} is not an execution of {pipeline['PipelineName']}")
        if source["PipelineExecutionStatus"] not in SELECTION_SOURCES:
            raise invalid(
                f"Source execution {source_arn} is {source['PipelineExecutionStatus']}; it must "
                f"be {' or '.join(SELECTION_SOURCES)}"
            )
        steps = {s["StepName"]: s for s in self.database.steps(source_arn)}
        missing = sorted(
            n for n in selection.reused if steps.get(n, {}).get("StepStatus") != "Succeeded"
        )
        if missing:
            raise invalid(
                f"step(s) {', '.join(missing)} did not succeed in the source execution "
                f"{source_arn}, and the selected steps depend on them"
            )
        public_config["SourcePipelineExecutionArn"] = source_arn
        return public_config, [_reused_step(steps[n], source_arn) for n in steps if n in selection.reused]

    def execution(self, arn: str) -> Body:
        body = self.database.execution(arn)
        if body is None:
            raise ServiceError("ResourceNotFound", f"Pipeline execution '{arn}' does not exist.")
        return body

    def describe_pipeline_execution(self, request: Body) -> Body:
        body = self.execution(request["PipelineExecutionArn"])
        described = {k: body[k] for k in EXECUTION_FIELDS if k in body}
        aliases = self._version_aliases(body["PipelineArn"], body.get("PipelineVersionId"))
        return {**described, **aliases, **CREATOR}

    def describe_pipeline_definition_for_execution(self, request: Body) -> Body:
        """The definition the execution runs, that of the pipeline version it started from, and
        when the pipeline was created (the API reference's CreationTime)."""
        body = self.execution(request["PipelineExecutionArn"])
        version = self.database.get(
            "pipeline_version", f"{body['PipelineArn']}#{body.get('PipelineVersionId')}"
        )
        definition = version["PipelineDefinition"] if version else json.dumps(body["_Definition"])
        created = self._pipeline(body["PipelineArn"])["CreationTime"]
        return {"PipelineDefinition": definition, "CreationTime": created}

    def list_pipeline_parameters_for_execution(self, request: Body) -> Body:
        body = self.execution(request["PipelineExecutionArn"])
        return PARAMETERS.page(numbered(body.get("PipelineParameters", [])), request, public)

    def list_pipeline_executions(self, request: Body) -> Body:
        """The pipeline's executions; with PipelineVersionAlias, those of the version that has the
        alias now."""
        pipeline = self._pipeline(request["PipelineName"])
        executions = self.database.executions(pipeline["PipelineArn"])
        version = self._requested_version(pipeline, _given(request, "PipelineVersionAlias"))
        if version is not None:
            executions = [e for e in executions if int(e.get("PipelineVersionId", 1)) == version]
        aliases = {int(v["PipelineVersionId"]): answered(v) for v in self._versions(pipeline)}

        def summary(execution: Body) -> Body:
            found = {
                "PipelineExecutionArn": execution["PipelineExecutionArn"],
                "StartTime": execution["CreationTime"],
                "PipelineExecutionStatus": execution["PipelineExecutionStatus"],
                "PipelineExecutionDisplayName": execution["PipelineExecutionDisplayName"],
            }
            if "PipelineExecutionDescription" in execution:
                found["PipelineExecutionDescription"] = execution["PipelineExecutionDescription"]
            if execution.get("FailureReason"):
                found["PipelineExecutionFailureReason"] = execution["FailureReason"]
            return {**found, **aliases.get(int(execution.get("PipelineVersionId", 1)), {})}

        return EXECUTIONS.page(executions, request, summary)

    def list_pipeline_execution_steps(self, request: Body) -> Body:
        arn = request.get("PipelineExecutionArn")
        if arn is None:
            raise invalid("PipelineExecutionArn is required.")
        self.execution(arn)
        return STEPS.page(self.database.steps(arn), request, public)

    def stop_pipeline_execution(self, request: Body) -> Body:
        return self._once("StopPipelineExecution", request, lambda: self._stop_execution(request))

    def _stop_execution(self, request: Body) -> Body:
        """The execution, its running jobs and their steps are Stopping together, so that no
        answer shows one stopping and not the others."""
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
        return self._once("RetryPipelineExecution", request, lambda: self._retry_execution(request))

    def _retry_execution(self, request: Body) -> Body:
        with self.context.lock:
            body = self.execution(request["PipelineExecutionArn"])
            if body["PipelineExecutionStatus"] not in ("Failed", "Stopped"):
                raise invalid(
                    f"Execution is {body['PipelineExecutionStatus']}; only Failed or Stopped can retry."
                )
            parallelism = request.get("ParallelismConfiguration") or body.get("ParallelismConfiguration")
            body = self.update_execution(
                body["PipelineExecutionArn"],
                PipelineExecutionStatus="Executing",
                FailureReason=None,
                ParallelismConfiguration=parallelism,
            )
            self._runner().start(body)  # under the lock: an update now reaches the running execution
        return {"PipelineExecutionArn": body["PipelineExecutionArn"]}

    def update_pipeline_execution(self, request: Body) -> Body:
        """Sets the description, display name and parallelism of an execution in any status; a
        new parallelism binds the steps a running execution has not started yet."""
        changes = _given(request, *EXECUTION_UPDATES)
        arn = request["PipelineExecutionArn"]
        with self.context.lock:
            self.update_execution(arn, **changes)
            if "ParallelismConfiguration" in changes:
                steps = changes["ParallelismConfiguration"]["MaxParallelExecutionSteps"]
                self._runner().limit_steps(arn, steps)
        return {"PipelineExecutionArn": arn}

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
        if "FailureReason" in body:
            body["FailureReason"] = body["FailureReason"][:STEP_REASON_LIMIT]
        with self.context.lock:
            self.database.save_step(execution_arn, body)

    def finish_execution(self, execution_arn: str, status: str, reason: str) -> None:
        reason = reason[:EXECUTION_REASON_LIMIT]
        self.update_execution(execution_arn, PipelineExecutionStatus=status, FailureReason=reason or None)

    def cached_step(
        self, pipeline_arn: str, step_name: str, cache_key: str, not_before: float | None
    ) -> tuple[str, Body] | None:
        return self.database.latest_cached_step(pipeline_arn, step_name, cache_key, not_before)

    def recover(self) -> None:
        """After a restart nothing is running: executions left active fail with a reason."""
        reason = "The local SageMaker server stopped while this execution ran; retry it to resume."
        kill_recorded_groups(self.context.layout.jobs)
        for body in self.database.executions():
            if body["PipelineExecutionStatus"] not in ACTIVE:
                continue
            stopped = body["PipelineExecutionStatus"] == "Stopping"
            for step in self.database.steps(body["PipelineExecutionArn"]):
                if step["StepStatus"] in RUNNING_STEPS:
                    if stopped:
                        step.update(StepStatus="Stopped", EndTime=time.time())
                    else:
                        step.update(StepStatus="Failed", FailureReason=reason, EndTime=time.time())
                    self.save_step(body["PipelineExecutionArn"], step)
            self.finish_execution(
                body["PipelineExecutionArn"], "Stopped" if stopped else "Failed", "" if stopped else reason
            )


def _version_id(pipeline: Body) -> int:
    return int(pipeline.get("_VersionId") or pipeline.get("PipelineVersionId") or 1)


def _given(request: Body, *members: str) -> Body:
    """The members the request gives: a member it leaves out is not set, and not answered."""
    return {member: request[member] for member in members if member in request}


def _refuse_start_options(request: Body) -> None:
    """What StartPipelineExecution takes for pipelines and tracking this target does not have."""
    if "RoleArn" in request:  # the API reference: only for a pipeline AWS manages
        raise invalid("RoleArn can only be given for a pipeline that Amazon Web Services manages.")
    if "MlflowExperimentName" in request:
        raise invalid(
            "MlflowExperimentName is not supported by the local SageMaker: it has no MLflow tracking server."
        )


def _overrides(request: Body) -> dict[str, str]:
    """PipelineParameters by name; a name given twice has no one value, and is refused."""
    given = [parameter["Name"] for parameter in request.get("PipelineParameters", [])]
    twice = repeated(given)
    if twice:
        raise invalid(f"Pipeline parameter names must be unique; given more than once: {', '.join(twice)}")
    return {p["Name"]: p["Value"] for p in request.get("PipelineParameters", [])}


def _parameter_values(definition: Body, overrides: dict[str, str]) -> list[Body]:
    """Each declared parameter's value as ListPipelineParametersForExecution lists it: the text
    the request gave, or the default as the definition writes it."""
    values = []
    for declared in definition.get("Parameters") or []:
        name = declared["Name"]
        value = overrides[name] if name in overrides else declared.get("DefaultValue")
        values.append({"Name": name, "Value": value if isinstance(value, str) else json.dumps(value)})
    return values
