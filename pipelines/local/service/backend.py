"""The local SageMaker's service layer, assembled: state, operations, and the parts that run things.

Each operation is a method taking the request's fields and returning the response body (moto's
split: `api.protocol` only decodes and encodes). The parts below this layer (executor, hosting,
Lambda) see the service only through the narrow interfaces they declare, never this object.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipelines.local.executor.runner import ExecutionRunner
from pipelines.local.hosting.endpoints import Endpoints
from pipelines.local.jobs.log_groups import LogGroups
from pipelines.local.lambdas.asynchronous import AsyncInvocations
from pipelines.local.lambdas.event_invoke import EventInvokeConfigs
from pipelines.local.lambdas.functions import Functions
from pipelines.local.layout import StateLayout
from pipelines.local.service.buckets import BucketOperations
from pipelines.local.service.context import ServiceContext
from pipelines.local.service.deliveries import Deliveries
from pipelines.local.service.endpoints import EndpointOperations, EndpointRecords
from pipelines.local.service.events import EventOperations
from pipelines.local.service.functions import FunctionOperations
from pipelines.local.service.jobs import JobOperations
from pipelines.local.service.logs import LogOperations
from pipelines.local.service.multipart import MultipartUploads
from pipelines.local.service.object_copies import ObjectCopies
from pipelines.local.service.object_deletes import ObjectDeletes
from pipelines.local.service.object_writes import ObjectWrites
from pipelines.local.service.objects import ObjectOperations
from pipelines.local.service.pipelines import PipelineOperations
from pipelines.local.service.registry import RegistryOperations
from pipelines.local.service.schedule_timer import ScheduleTimer
from pipelines.local.service.schedules import ScheduleOperations
from pipelines.local.service.serving import Serving
from pipelines.local.service.tags import TagOperations, refusing_reserved_keys
from pipelines.local.storage.database import Body, Database
from pipelines.local.storage.objects import ObjectStore
from pipelines.local.system.clock import Clock
from pipelines.local.system.isolation import read_only_tree_unavailable

Operation = Callable[[Body], Body]


class LocalSageMaker:
    """Operations of the SageMaker, EventBridge and Lambda APIs that the project and the SDK use,
    S3's buckets and its reads and puts of the object store, CloudWatch Logs' reads of the jobs'
    logs, and EventBridge Scheduler's schedules of pipeline executions."""

    def __init__(self, state_dir: Path, region: str, server_url: str, clock: Clock | None = None) -> None:
        layout = StateLayout(state_dir)
        self.context = ServiceContext(
            layout, region, Database(layout.database), ObjectStore(layout.objects)
        )
        log_groups = LogGroups(layout.log_groups)
        self.context.store.adopt_folders(region)
        self.context.store.repair_live_files()
        # Whether this machine can confine children (a trial of namespaces and mounts, about
        # 50 ms) is found once, here, rather than by the first job of a pipeline's run.
        read_only_tree_unavailable()
        self.functions = Functions(
            self.context.database, layout.functions, layout.lambda_scratch, region, server_url,
            layout.credentials, layout.lambda_confinement(), log_groups,
        )
        configs = EventInvokeConfigs(self.functions)
        clock = clock or Clock()
        self.invocations = AsyncInvocations(self.functions, configs, clock)
        self.deliveries = Deliveries(self.context.database, self.invocations, clock)
        self.events = EventOperations(self.context, self.deliveries)
        self.invocations.bus = self.events
        self.registry = RegistryOperations(self.context, self.events.model_package_changed)
        self.pipelines = PipelineOperations(self.context)
        self.jobs = JobOperations(self.context)
        self.runner = ExecutionRunner(
            records=self.pipelines,
            registry=self.registry,
            functions=self.functions,
            jobs=self.jobs,
            store=self.context.store,
            layout=layout,
        )
        self.pipelines.runner = self.jobs.runner = self.runner
        hosting = Endpoints(
            layout.endpoints, self.context.store, layout.confinement(), log_groups, layout.image_environments
        )
        self.serving = Serving(EndpointRecords(self.context), hosting)
        self.endpoints = EndpointOperations(self.context, self.serving)
        uploads = MultipartUploads(self.context)
        self.schedules = ScheduleOperations(self.context)
        self.schedule_timer = ScheduleTimer(self.schedules, self.pipelines.start_pipeline_execution, clock)
        self._operations: dict[str, dict[str, Operation]] = {
            "SageMaker": {
                name: refusing_reserved_keys(method)
                for name, method in _operations(
                    "SageMaker",
                    self.pipelines, self.registry, self.endpoints, self.jobs, TagOperations(self.context),
                ).items()
            },
            "AWSEvents": _operations("AWSEvents", self.events),
            "Lambda": _operations(
                "Lambda", FunctionOperations(self.functions, self.invocations, self.context.store)
            ),
            "S3": _operations(
                "S3",
                ObjectOperations(self.context), ObjectWrites(self.context), uploads,
                ObjectCopies(self.context, uploads), ObjectDeletes(self.context),
                BucketOperations(self.context),
            ),
            "Logs_20140328": _operations("Logs_20140328", LogOperations(self.context, log_groups)),
            "Scheduler": _operations("Scheduler", self.schedules),
        }

    def operation(self, service: str, name: str) -> Operation | None:
        """The method answering `<service>.<name>` (e.g. SageMaker.CreatePipeline), if served."""
        return self._operations.get(service, {}).get(name)

    def served(self, group: str) -> list[str]:
        """The operations of a group (SageMaker, AWSEvents, Lambda, S3, Logs_20140328, Scheduler) this
        server answers."""
        return sorted(self._operations.get(group, {}))

    def start(self) -> None:
        """After a restart: fail what was running, serve again what was serving, go on with the
        asynchronous invocations Lambda had accepted and the deliveries EventBridge was retrying,
        and keep the schedules' time."""
        self.runner.make_image_environment()
        self.pipelines.recover()
        self.jobs.recover()
        self.serving.restore_all()
        self.invocations.resume()
        self.deliveries.resume()
        self.schedule_timer.start()

    def shutdown(self) -> None:
        self.schedule_timer.close()
        self.runner.shutdown()
        self.serving.shutdown()
        self.deliveries.close()
        self.invocations.close()
        self.functions.close()
        self.context.database.close()


def _operations(group: str, *parts: object) -> dict[str, Operation]:
    """API operation name -> method, for every public method named like an operation of `group`."""
    found: dict[str, Operation] = {}
    for part in parts:
        for attribute in dir(type(part)):
            if attribute.startswith("_"):
                continue
            name = "".join(word.capitalize() for word in attribute.split("_"))
            if name in OPERATIONS[group]:
                found[name] = getattr(part, attribute)
    return found


# The botocore service model that defines each group's operations.
MODELS = {
    "SageMaker": "sagemaker", "AWSEvents": "events", "Lambda": "lambda", "S3": "s3", "Logs_20140328": "logs",
    "Scheduler": "scheduler",
}
# What the server answers, by group: a service method is an API operation only if named here.
OPERATIONS = {
    "SageMaker": frozenset(
        [
            "CreatePipeline",
            "UpdatePipeline",
            "DescribePipeline",
            "DeletePipeline",
            "ListPipelines",
            "ListPipelineVersions",
            "UpdatePipelineVersion",
            "StartPipelineExecution",
            "DescribePipelineExecution",
            "ListPipelineExecutions",
            "StopPipelineExecution",
            "RetryPipelineExecution",
            "UpdatePipelineExecution",
            "ListPipelineExecutionSteps",
            "ListPipelineParametersForExecution",
            "DescribePipelineDefinitionForExecution",
            "DescribeProcessingJob",
            "DescribeTrainingJob",
            "StopProcessingJob",
            "StopTrainingJob",
            "ListProcessingJobs",
            "ListTrainingJobs",
            "CreateModelPackageGroup",
            "DescribeModelPackageGroup",
            "DeleteModelPackageGroup",
            "ListModelPackageGroups",
            "CreateModelPackage",
            "DescribeModelPackage",
            "ListModelPackages",
            "UpdateModelPackage",
            "DeleteModelPackage",
            "CreateModel",
            "DescribeModel",
            "DeleteModel",
            "ListModels",
            "CreateEndpointConfig",
            "DescribeEndpointConfig",
            "DeleteEndpointConfig",
            "ListEndpointConfigs",
            "CreateEndpoint",
            "UpdateEndpoint",
            "DescribeEndpoint",
            "DeleteEndpoint",
            "ListEndpoints",
            "AddTags",
            "ListTags",
            "DeleteTags",
        ]
    ),
    "AWSEvents": frozenset(
        [
            "PutRule", "DescribeRule", "DeleteRule", "ListRules", "PutTargets", "ListTargetsByRule",
            "RemoveTargets", "TestEventPattern", "PutEvents",
        ]
    ),
    "Lambda": frozenset(
        [
            "CreateFunction", "DeleteFunction", "GetFunction", "GetFunctionConfiguration", "ListFunctions",
            "UpdateFunctionCode", "UpdateFunctionConfiguration", "Invoke", "PutFunctionEventInvokeConfig",
            "GetFunctionEventInvokeConfig", "UpdateFunctionEventInvokeConfig",
            "DeleteFunctionEventInvokeConfig", "ListFunctionEventInvokeConfigs",
        ]
    ),
    "S3": frozenset(
        [
            "GetObject", "HeadObject", "ListObjectsV2", "ListObjects", "ListObjectVersions", "PutObject",
            "CopyObject", "DeleteObject", "DeleteObjects",
            "CreateMultipartUpload", "UploadPart", "UploadPartCopy", "CompleteMultipartUpload",
            "AbortMultipartUpload", "ListParts", "ListMultipartUploads",
            "CreateBucket", "HeadBucket", "ListBuckets", "DeleteBucket", "GetBucketVersioning",
            "PutBucketVersioning", "GetBucketLocation", "GetBucketEncryption",
        ]
    ),
    "Logs_20140328": frozenset(
        ["DescribeLogGroups", "DescribeLogStreams", "GetLogEvents", "FilterLogEvents"]
    ),
    "Scheduler": frozenset(
        ["CreateSchedule", "GetSchedule", "UpdateSchedule", "DeleteSchedule", "ListSchedules"]
    ),
}
