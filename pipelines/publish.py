"""Upsert: put the code where the target can read it, then create or update the pipeline.

The definition refers to code by content hash, so publishing is idempotent: unchanged code is found
in place and not uploaded again, and an unchanged definition leaves SageMaker's step cache warm.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from pipelines.aws import Clients
from pipelines.code_bundle import CodeBundle
from pipelines.executions import poll_intervals
from pipelines.settings import Settings


@dataclass(frozen=True)
class PipelineSpec:
    """A pipeline to upsert: its name, definition JSON and a one-line description."""

    name: str
    definition: str
    description: str


@dataclass
class UpsertResult:
    uploaded: list[str] = field(default_factory=list)
    pipelines: dict[str, tuple[str, bool]] = field(default_factory=dict)  # name -> (arn, created)


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class FunctionChangeFailed(RuntimeError):
    """Lambda ended a change of the deploy function Failed, or did not end it in time."""


# What GetFunctionConfiguration reports once Lambda has made a change: the success states of
# botocore's function_active_v2 and function_updated_v2 waiters (which read it through GetFunction,
# whose answer also lends out the code: more than a wait needs to be allowed).
CREATED = ("State", "Active")
UPDATED = ("LastUpdateStatus", "Successful")
FUNCTION_WAIT_SECONDS = 300.0  # as long as those waiters wait (300 polls a second apart)


def wait_for_function(
    clients: Clients, done: tuple[str, str], timeout: float = FUNCTION_WAIT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once the deploy function's change is done (`done`: CREATED or UPDATED), as
    botocore's waiters do, but polling from 0.05 s apart, backing off to 1 s, instead of every
    second: a change that is done in 0.3 s (a local function's init) is seen then, not a second
    later, and a long one on AWS is polled as often as the waiter polls it."""
    field, wanted = done
    name = clients.settings.deploy_function_name
    deadline = time.monotonic() + timeout
    intervals = poll_intervals(1.0, first=0.05)
    while True:
        configuration = clients.lambda_.get_function_configuration(FunctionName=name)
        status = configuration.get(field)
        if status == wanted:
            return
        if status == "Failed":
            reason = configuration.get("StateReason" if field == "State" else "LastUpdateStatusReason")
            raise FunctionChangeFailed(f"Lambda function {name}: {field} Failed ({reason})")
        if time.monotonic() > deadline:
            raise FunctionChangeFailed(
                f"Lambda function {name}: {field} still {status} after {timeout:.0f} s"
            )
        sleep(next(intervals))


def upload_code(clients: Clients, bundle: CodeBundle) -> list[str]:
    """Upload each artifact that is not already stored under its content-hash key (one listing of
    each folder finds them: the library's holds all its files)."""
    settings = clients.settings
    listed: dict[str, set[str]] = {}
    uploaded = []
    for name, data in bundle.artifacts.items():
        folder = f"s3://{settings.bucket}/{bundle.folder(settings.prefix, name)}"
        if folder not in listed:
            listed[folder] = clients.storage.names_below(folder)
        if name not in listed[folder]:
            clients.storage.put_bytes(f"{folder}/{name}", data)
            uploaded.append(f"{folder}/{name}")
    return uploaded


def provision_local_bucket(clients: Clients) -> None:
    """Locally, the project's bucket, which the infra stack creates on AWS: created through S3's
    CreateBucket where it does not exist yet. Outside us-east-1 S3 wants the region named, and
    answers BucketAlreadyOwnedByYou for a bucket the account has (us-east-1 answers 200)."""
    settings = clients.settings
    assert settings.is_local, "on AWS the infra stack owns the bucket"
    location = {} if settings.region == "us-east-1" else {
        "CreateBucketConfiguration": {"LocationConstraint": settings.region}
    }
    try:
        clients.s3.create_bucket(Bucket=settings.bucket, **location)
    except ClientError as error:
        if _error_code(error) != "BucketAlreadyOwnedByYou":
            raise


def deploy_function_environment(settings: Settings) -> dict[str, str]:
    """What the deploy handler reads when an approval event (not the pipeline) invokes it: the
    same settings the pipeline's parameters default to, so either deploy sizes the endpoint alike."""
    return {
        "ENDPOINT_NAME": settings.endpoint_name,
        "EXECUTION_ROLE_ARN": settings.role_arn,
        "INSTANCE_TYPE": settings.endpoint_instance_type,
        "INSTANCE_COUNT": str(settings.endpoint_instance_count),
        "CAPTURE_DESTINATION": settings.s3_uri("data-capture"),
        "CAPTURE_PERCENTAGE": str(settings.capture_percentage),
    }


# The infra stack's DeployFunctionEventInvokeConfig as far as the local target reproduces it: an
# approval's failed deploy is tried 3 times in all and its event waits up to 6 hours. Its OnFailure
# SQS queue has no local counterpart; there a failed asynchronous deploy is in the server's log.
LOCAL_EVENT_INVOKE_CONFIG = {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 21600}


def publish_deploy_function(clients: Clients, bundle: CodeBundle) -> None:
    """Point the deploy Lambda at this code and return once Lambda runs it (see begin_publishing)."""
    wait_for_function(clients, begin_publishing(clients, bundle))


def begin_publishing(clients: Clients, bundle: CodeBundle) -> tuple[str, str]:
    """Point the deploy Lambda at this code: update it, or create it where the target allows;
    return the state (CREATED or UPDATED) to wait for before an execution may invoke it, since
    until the change is done Lambda runs the previous code and configuration (or, while it is
    created, none). Code Lambda already has (its CodeSha256) is not sent again: an update would
    only make Lambda start new execution environments for the same code.

    On AWS the function itself comes from the CloudFormation stack (infra/); here only its code is
    replaced. The local target has no stack, so the function is created on first upsert and its
    configuration and asynchronous invocation settings follow the settings on every upsert, as the
    stack's would on deploy.
    """
    settings = clients.settings
    code = bundle.artifacts["deploy.zip"]
    name = settings.deploy_function_name
    try:
        current = clients.lambda_.get_function_configuration(FunctionName=name)
    except ClientError as error:
        if _error_code(error) != "ResourceNotFoundException" or not settings.is_local:
            raise
        current = _create_function(clients, code)
    if current is None:
        done = CREATED  # Pending until created
    else:
        if not _has_code(current, code):
            current = _one_change_at_a_time(
                clients, lambda: clients.lambda_.update_function_code(FunctionName=name, ZipFile=code)
            )
        if settings.is_local:
            _follow_settings(clients, current)
        done = UPDATED  # InProgress until updated
    if settings.is_local:
        clients.lambda_.put_function_event_invoke_config(FunctionName=name, **LOCAL_EVENT_INVOKE_CONFIG)
    return done


def _create_function(clients: Clients, code: bytes) -> dict[str, Any] | None:
    """Create the deploy function: None once this call created it, or the configuration of the
    one another upsert created since this one looked (Lambda refuses a second CreateFunction with
    ResourceConflictException), which is then updated like any existing function."""
    name = clients.settings.deploy_function_name
    try:
        clients.lambda_.create_function(
            FunctionName=name, Code={"ZipFile": code}, **local_function_configuration(clients.settings)
        )
    except ClientError as error:
        if _error_code(error) != "ResourceConflictException":
            raise
        return dict(clients.lambda_.get_function_configuration(FunctionName=name))
    return None


def _has_code(configuration: dict[str, Any], code: bytes) -> bool:
    """Whether the function's code is this zip (CodeSha256: its SHA-256, base64), and the last
    change of it did not fail (then sending it again is how it is mended)."""
    sha = base64.b64encode(hashlib.sha256(code).digest()).decode()
    failed = "Failed" in (configuration.get("State"), configuration.get("LastUpdateStatus"))
    return configuration.get("CodeSha256") == sha and not failed


def _follow_settings(clients: Clients, current: dict[str, Any]) -> None:
    """Change the local deploy function's configuration where it differs from the settings'."""
    wanted = local_function_configuration(clients.settings)
    changed = {key: value for key, value in wanted.items() if current.get(key) != value}
    if changed:
        # The code update is InProgress: Lambda refuses another change until it is done.
        wait_for_function(clients, UPDATED)
        name = clients.settings.deploy_function_name
        clients.lambda_.update_function_configuration(FunctionName=name, **changed)


def _one_change_at_a_time(clients: Clients, change: Callable[[], Any]) -> Any:
    """Make a change of the deploy function; if Lambda refuses it because an earlier one (a create
    or an update by another upsert) is still in progress, wait for that one to end and make it."""
    try:
        return change()
    except ClientError as error:
        if _error_code(error) != "ResourceConflictException":
            raise
    wait_for_function(clients, UPDATED)
    return change()


def local_function_configuration(settings: Settings) -> dict[str, Any]:
    """The deploy function's configuration where no infra stack declares it (the local target)."""
    return {
        "Runtime": "python3.12",
        "Role": settings.deploy_function_role_arn or settings.role_arn,
        "Handler": "deploy.handler",
        "Timeout": 120,
        "MemorySize": 256,  # infra/template.yaml's
        "Environment": {"Variables": deploy_function_environment(settings)},
    }


def approval_rule_pattern(settings: Settings) -> dict[str, object]:
    """The EventBridge pattern of the approval rule (infra/template.yaml's): a version of this
    project's group that an update made Approved. SageMaker also sends the event when a version is
    created and when other members change; a version created Approved is deployed by whoever made
    it (the pipeline's DeployEndpoint step), and annotating an Approved one deploys nothing."""
    return {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {
            "ModelPackageGroupName": [settings.model_package_group],
            "ModelApprovalStatus": ["Approved"],
            "UpdatedModelPackageFields": ["ModelApprovalStatus"],
        },
    }


def publish_approval_rule(clients: Clients) -> None:
    """Locally, the rule the infra stack creates on AWS: approving a version of this project's
    group invokes the deploy function, and a version of any other group deploys nothing."""
    settings = clients.settings
    rule = f"{settings.deploy_function_name}-approval"
    clients.events.put_rule(Name=rule, EventPattern=json.dumps(approval_rule_pattern(settings)))
    clients.events.put_targets(
        Rule=rule, Targets=[{"Id": "deploy-function", "Arn": settings.deploy_function_arn}]
    )


def upsert_pipeline(clients: Clients, spec: PipelineSpec) -> tuple[str, bool]:
    """Create the pipeline, or update it when it exists; return (ARN, created)."""
    sm = clients.sagemaker
    request = {
        "PipelineName": spec.name,
        "PipelineDefinition": spec.definition,
        "RoleArn": clients.settings.role_arn,
    }
    if not _pipeline_exists(sm, spec.name):
        try:
            arn = sm.create_pipeline(
                **request, PipelineDisplayName=spec.name, PipelineDescription=spec.description
            )["PipelineArn"]
            return str(arn), True
        except ClientError:
            if not _pipeline_exists(sm, spec.name):
                raise
            # Another upsert created it since this one looked: update it as if it had been there.
    return str(sm.update_pipeline(**request)["PipelineArn"]), False


def _pipeline_exists(sm: Any, name: str) -> bool:
    try:
        sm.describe_pipeline(PipelineName=name)
    except ClientError as error:
        if _error_code(error) not in ("ResourceNotFound", "ValidationException"):
            raise
        return False
    return True


def upsert(
    clients: Clients,
    bundle: CodeBundle,
    build_specs: Callable[[], list[PipelineSpec]],
    *,
    publish_handler: bool = True,
) -> UpsertResult:
    """The code, the deploy handler and the pipelines that refer to both, then a wait until Lambda
    runs the handler's new code; locally the bucket before all, as the infra stack makes it on AWS.

    The handler goes first and is waited for last: while a new handler's execution environment
    initialises (locally, a process importing boto3, about 0.3 s) the code is uploaded and the
    definitions are built and upserted, and it is done before the run that follows starts.
    Without publish_handler the deploy Lambda keeps its code: on AWS the pipeline workflow's role
    may not change it (the approval workflow publishes it, behind the reviewers).
    """
    if clients.settings.is_local:
        provision_local_bucket(clients)
    published = begin_publishing(clients, bundle) if publish_handler else None
    result = UpsertResult(uploaded=upload_code(clients, bundle))
    if clients.settings.is_local:
        publish_approval_rule(clients)
    for spec in build_specs():
        result.pipelines[spec.name] = upsert_pipeline(clients, spec)
    if published:
        wait_for_function(clients, published)
    return result
