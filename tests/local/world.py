"""A local SageMaker holding one of everything its API serves, for conformance tests: pipelines
with finished executions and real jobs, a registry, models, endpoints, rules, a function, tags.

Endpoints are served by `InstantHosting` (InService at once, a fixed answer), so no model server
starts; everything else is the real service.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from buckets import with_buckets
from waiting import wait_until

from pipelines.local.api.protocol import Dispatcher
from pipelines.local.executor.runner import JOB_ARN_KINDS
from pipelines.local.hosting.endpoints import CaptureSpec, VariantSpec
from pipelines.local.hosting.model_process import InvokeResult
from pipelines.local.jobs.images import local_sklearn_release
from pipelines.local.jobs.outcome import job_arn
from pipelines.local.lambdas.functions import Functions
from pipelines.local.service.backend import LocalSageMaker

from .shapes_support import send, with_tokens

ROLE = "arn:aws:iam::000000000000:role/local"
BUCKET = "s3://bucket"
MODEL_DATA = f"{BUCKET}/model.tar.gz"  # in the local S3 of every local_sagemaker(), as CreateModel requires
# The scikit-learn image whose release is the one installed here: the one image jobs run locally.
IMAGE = (
    "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:"
    f"{local_sklearn_release()}-1-cpu-py3"
)
FAIL_ONLY: dict[str, Any] = {
    "Version": "2020-12-01",
    "Parameters": [{"Name": "Why", "Type": "String", "DefaultValue": "no reason"}],
    "Steps": [{"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": {"Get": "Parameters.Why"}}}],
}
RESOURCES = {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}}


def processing_step(name: str, code: str) -> dict[str, Any]:
    return {
        "Name": name,
        "Type": "Processing",
        "Arguments": {
            "ProcessingResources": RESOURCES,
            "AppSpecification": {"ImageUri": IMAGE, "ContainerEntrypoint": ["python3", "-c", code]},
            "RoleArn": ROLE,
        },
    }


def training_step(name: str, source: str = "source.tar.gz") -> dict[str, Any]:
    return {
        "Name": name,
        "Type": "Training",
        "Arguments": {
            "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            "HyperParameters": {
                "sagemaker_program": "train.py",
                "sagemaker_submit_directory": f"{BUCKET}/code/{source}",
            },
            "OutputDataConfig": {"S3OutputPath": f"{BUCKET}/models"},
            "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 60},
            "RoleArn": ROLE,
        },
    }


JOBS = {
    "Version": "2020-12-01",
    "Steps": [
        processing_step("Work", "print('working')"),
        training_step("Fit"),
        {"Name": "Stop", "Type": "Fail", "DependsOn": ["Work", "Fit"], "Arguments": {"ErrorMessage": "done"}},
    ],
}
SLOW = {"Version": "2020-12-01", "Steps": [processing_step("Wait", "import time; time.sleep(600)")]}
SLOW_TRAINING = {"Version": "2020-12-01", "Steps": [training_step("Wait", "slow.tar.gz")]}


class InstantHosting:
    """Stands in for hosting.endpoints.Endpoints: every deployment is InService at once; each
    invocation is answered at once and remembered (endpoint, variant asked for, InferenceId,
    CustomAttributes); `custom_attributes` is what the model sets in its answer."""

    def __init__(self) -> None:
        self.invocations: list[tuple[str, str | None, str | None, str]] = []
        self.custom_attributes = ""

    def deploy(
        self, endpoint_name: str, deployment_id: str, variants: list[VariantSpec],
        capture: CaptureSpec | None, on_status: Any,
    ) -> None:
        on_status(endpoint_name, "InService", "", deployment_id)

    def restore(self, *args: Any) -> tuple[str, str]:
        return "InService", ""

    def invoke(
        self, endpoint_name: str, body: bytes, content_type: str, accept: str,
        target_variant: str | None = None, inference_id: str | None = None, custom_attributes: str = "",
    ) -> InvokeResult:
        self.invocations.append((endpoint_name, target_variant, inference_id, custom_attributes))
        return InvokeResult(
            200, b'{"predictions": []}', "application/json", "AllTraffic", self.custom_attributes
        )

    def delete(self, endpoint_name: str, on_gone: Any) -> None:
        on_gone(endpoint_name)

    def live_instances(self, endpoint_name: str, deployment_id: str) -> dict[str, int]:
        return {}  # no process runs: DescribeEndpoint shows the counts the config asked for

    def shutdown(self) -> None:
        pass


def schedule_request(name: str) -> dict[str, Any]:
    return {
        "Name": name, "ScheduleExpression": "rate(1 hour)", "State": "DISABLED",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {"Arn": "arn:aws:scheduler:::aws-sdk:sagemaker:startPipelineExecution", "RoleArn": ROLE,
                   "Input": json.dumps({"PipelineName": "q"})},
    }


def local_sagemaker(state_dir: Path) -> LocalSageMaker:
    backend = LocalSageMaker(state_dir, "us-east-1", "http://127.0.0.1:1")
    backend.serving.processes = InstantHosting()  # type: ignore[assignment]
    with_buckets(backend.context.store, "bucket")
    backend.context.store.put_bytes(MODEL_DATA, b"not a model: InstantHosting serves none")
    return backend


def function_zip() -> str:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as archive:
        archive.writestr("index.py", "def handler(event, context):\n    return {'ok': True}\n")
    return base64.b64encode(raw.getvalue()).decode()


def source_tar(script: bytes = b"print('fitting')\n") -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as archive:
        info = tarfile.TarInfo("train.py")
        info.size = len(script)
        archive.addfile(info, io.BytesIO(script))
    return raw.getvalue()


@dataclass
class World:
    backend: LocalSageMaker
    dispatcher: Dispatcher = field(init=False)
    known: dict[str, Any] = field(default_factory=dict)
    _names: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.dispatcher = Dispatcher(self.backend, check_responses=True)

    def fresh(self, prefix: str) -> str:
        return f"{prefix}-{next(self._names)}"

    def call(self, group: str, name: str, **request: Any) -> dict[str, Any]:
        """The operation, which must succeed; idempotency tokens filled in as SDKs do."""
        reply = send(self.dispatcher, group, name, with_tokens(group, name, request))
        assert reply.status in (200, 201), reply.body
        return dict(json.loads(reply.body)) if reply.body else {}

    def sm(self, name: str, **request: Any) -> dict[str, Any]:
        return self.call("SageMaker", name, **request)

    def pipeline(self, definition: dict[str, Any], name: str | None = None) -> str:
        name = name or self.fresh("pipeline")
        self.sm("CreatePipeline", PipelineName=name, PipelineDefinition=json.dumps(definition), RoleArn=ROLE)
        return name

    def start(self, pipeline: str, **request: Any) -> str:
        started = self.sm("StartPipelineExecution", PipelineName=pipeline, **request)
        return str(started["PipelineExecutionArn"])

    def finished(self, arn: str) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            body = self.sm("DescribePipelineExecution", PipelineExecutionArn=arn)
            return body if body["PipelineExecutionStatus"] not in ("Executing", "Stopping") else None

        body = wait_until(ended, 60, f"execution {arn} to end")
        assert body is not None
        return body

    def fail_message(self, arn: str) -> str:
        """The message of the Fail step that ended an execution, once it has ended (the execution's
        own FailureReason is SageMaker's one sentence, whichever step failed)."""
        assert self.finished(arn)["PipelineExecutionStatus"] == "Failed"
        steps = self.sm("ListPipelineExecutionSteps", PipelineExecutionArn=arn)["PipelineExecutionSteps"]
        (failed,) = [step for step in steps if "Fail" in step.get("Metadata", {})]
        return str(failed["FailureReason"])

    def running_job(self, pipeline: str, kind: str) -> str:
        """The job (kind ProcessingJob or TrainingJob) that the first step of a new execution of
        `pipeline` runs, once it is InProgress."""
        arn = self.start(pipeline)

        def started() -> str | None:
            steps = self.sm("ListPipelineExecutionSteps", PipelineExecutionArn=arn)["PipelineExecutionSteps"]
            named = [s["Metadata"][kind]["Arn"].rsplit("/", 1)[-1] for s in steps if kind in s["Metadata"]]
            if not named:
                return None
            reply = send(self.dispatcher, "SageMaker", f"Describe{kind}", {f"{kind}Name": named[0]})
            running = reply.status == 200 and json.loads(reply.body)[f"{kind}Status"] == "InProgress"
            return named[0] if running else None

        name = wait_until(started, 60, f"the {kind} of {pipeline} to run")
        assert name is not None
        return name

    def job(self, kind: str, name: str | None = None, **description: Any) -> str:
        """A job record (kind ProcessingJob or TrainingJob) saved as the runner saves one
        (`JobRecords.save_job`), with no process behind it: Completed unless `description` says
        otherwise, created and last modified when it says."""
        name = name or self.fresh("job")
        self.backend.jobs.save_job(kind, {
            f"{kind}Name": name, f"{kind}Arn": job_arn(JOB_ARN_KINDS[kind], name),
            f"{kind}Status": "Completed", "CreationTime": 1.0, "LastModifiedTime": 2.0, **description,
        })
        return name

    def model(self, name: str | None = None) -> str:
        name = name or self.fresh("model")
        container = {"Image": IMAGE, "ModelDataUrl": MODEL_DATA}
        self.sm("CreateModel", ModelName=name, PrimaryContainer=container, ExecutionRoleArn=ROLE)
        return name

    def endpoint_config(self, model: str, name: str | None = None, **request: Any) -> str:
        name = name or self.fresh("config")
        variant = {"VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 1,
                   "InstanceType": "ml.m5.large"}
        self.sm("CreateEndpointConfig", EndpointConfigName=name, ProductionVariants=[variant], **request)
        return name

    def endpoint(self, config: str, name: str | None = None) -> str:
        name = name or self.fresh("endpoint")
        self.sm("CreateEndpoint", EndpointName=name, EndpointConfigName=config)
        return name

    def package(self, group: str) -> str:
        specification = {
            "Containers": [{"Image": IMAGE, "ModelDataUrl": MODEL_DATA}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        }
        return str(self.sm("CreateModelPackage", ModelPackageGroupName=group,
                           InferenceSpecification=specification)["ModelPackageArn"])

    def rule(self, name: str | None = None) -> str:
        name = name or self.fresh("rule")
        self.call("AWSEvents", "PutRule", Name=name, EventPattern=json.dumps({"source": ["nothing"]}))
        return name

    def schedule(self, name: str | None = None) -> str:
        """A paused schedule of the pipeline `q` (no timer runs in a world: nothing would start it)."""
        name = name or self.fresh("schedule")
        self.call("Scheduler", "CreateSchedule", **schedule_request(name))
        return name

    def function(self, name: str | None = None) -> str:
        name = name or self.fresh("function")
        self.call("Lambda", "CreateFunction", FunctionName=name, Role=ROLE, Handler="index.handler",
                  Runtime="python3.12", Code={"ZipFile": function_zip()})
        return self.settled(name)

    def event_invoke_config(self, function: str) -> str:
        self.call("Lambda", "PutFunctionEventInvokeConfig", FunctionName=function, MaximumRetryAttempts=0)
        return function

    def settled(self, function: str) -> str:
        function_settled(self.backend.functions, function)
        return function


def lambda_call(dispatcher: Dispatcher, operation: str, **request: Any) -> tuple[int, dict[str, Any]]:
    """A Lambda operation as its REST protocol carries it: the answer's status and JSON body."""
    reply = send(dispatcher, "Lambda", operation, request)
    return reply.status, json.loads(reply.body)


def function_settled(functions: Functions, name: str) -> dict[str, Any]:
    """A function's configuration once its last change is done: Lambda takes one change at a time."""

    def done() -> dict[str, Any] | None:
        configuration: dict[str, Any] = functions.get(name)["Configuration"]
        settled = (configuration["State"], configuration.get("LastUpdateStatus")) == ("Active", "Successful")
        return configuration if settled else None

    configuration = wait_until(done, 30, f"function {name} to be Active, its last update Successful")
    assert configuration is not None
    return configuration


def build_world(state_dir: Path) -> World:
    world = World(local_sagemaker(state_dir))
    store = world.backend.context.store
    store.put_bytes(f"{BUCKET}/code/source.tar.gz", source_tar())
    store.put_bytes(f"{BUCKET}/code/slow.tar.gz", source_tar(b"import time; time.sleep(600)\n"))
    jobs = world.start(world.pipeline(JOBS, "p"))
    assert world.fail_message(jobs) == "done"
    steps = world.sm("ListPipelineExecutionSteps", PipelineExecutionArn=jobs)["PipelineExecutionSteps"]
    job_names = {
        kind: metadata["Arn"].rsplit("/", 1)[-1]
        for step in steps for kind, metadata in step["Metadata"].items() if kind.endswith("Job")
    }
    world.pipeline(FAIL_ONLY, "q")
    world.pipeline(SLOW, "slow")
    world.pipeline(SLOW_TRAINING, "slow-training")
    world.sm("CreateModelPackageGroup", ModelPackageGroupName="g")
    package = world.package("g")
    capture = {"EnableCapture": True, "InitialSamplingPercentage": 100,
               "DestinationS3Uri": f"{BUCKET}/capture", "CaptureOptions": [{"CaptureMode": "Input"}]}
    world.endpoint(world.endpoint_config(world.model("m"), "c", DataCaptureConfig=capture), "e")
    world.endpoint_config("m", "c2")
    world.endpoint("c", "u")
    world.function("f")
    world.rule("r")
    world.schedule("r")
    function_arn = world.call("Lambda", "GetFunction", FunctionName="f")["Configuration"]["FunctionArn"]
    world.call("AWSEvents", "PutTargets", Rule="r", Targets=[{"Id": "t0", "Arn": function_arn}])
    pipeline_arn = world.sm("DescribePipeline", PipelineName="p")["PipelineArn"]
    world.sm("AddTags", ResourceArn=pipeline_arn, Tags=[{"Key": "k", "Value": "v"}])
    world.known.update(
        PipelineName="p",
        PipelineExecutionArn=jobs,
        ProcessingJobName=job_names["ProcessingJob"],
        TrainingJobName=job_names["TrainingJob"],
        ModelPackageGroupName="g",
        ModelPackageName=package,
        ModelPackageArn=package,
        ModelName="m",
        EndpointConfigName="c",
        EndpointName="e",
        ResourceArn=pipeline_arn,
        Name="r",
        Rule="r",
        FunctionName="f",
        FunctionArn=function_arn,
        Body=base64.b64encode(b'{"review_text": "fine"}').decode(),
        ContentType="application/json",
    )
    return world
