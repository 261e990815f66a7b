"""AWS Lambda handler: put an approved model package behind the real-time endpoint.

Idempotent so the pipeline can re-run it safely: model and endpoint-config names derive from the
model package (its ARN, so versions of different groups never share a name) and the config's
settings, existing ones are reused, and an endpoint already on (or moving to) the wanted config is
left alone. It never waits for InService; it waits for a Failed endpoint's deletion, which
SageMaker requires before the endpoint can be created again (it refuses to update a Failed one),
and for another deploy's change to end. Deploys of approvals made close together run at once, in
no order; each gives way to a version approved after its own (later_approval), so the endpoint
ends on the version approved last. Before it creates anything it checks the model data in S3
against the SHA-256 the package recorded (integrity.py, shipped beside it): a replaced
model.tar.gz fails the deploy and the endpoint keeps serving what it served.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import BotoCoreError, ClientError, WaiterError

try:
    from . import integrity
except ImportError:  # the Lambda runtime: integrity.py is beside this file
    import integrity  # type: ignore[no-redef]

MAX_NAME = 63
VARIANT = "AllTraffic"
BAKE_SECONDS = 600
# Waiting on the endpoint (a Failed one's deletion, another deploy's change under way), within the
# function's 120 s timeout (infra/template.yaml).
POLL_SECONDS = 5
FIRST_POLL_SECONDS = 0.5  # waiting on another deploy's change starts here and doubles to POLL_SECONDS
WAIT_SECONDS = 90
AFTER_WAIT_SECONDS = 15  # kept back from the invocation's remaining time to create and answer
PRIMING = "deploy-priming"  # the init-time answerer's id (_prime)
CHANGING = ("Creating", "Updating", "SystemUpdating", "RollingBack")  # UpdateEndpoint refuses these
REQUIRED_KEYS = (
    "model_package_arn",
    "endpoint_name",
    "role_arn",
    "instance_type",
    "instance_count",
    "capture_destination",
)


def log(message: str) -> None:
    """Lambda sends stdout to CloudWatch Logs."""
    print(f"deploy: {message}", flush=True)


def version_name(package: dict[str, Any]) -> str:
    """How the deploy's log names the version it is about: its tag (the ARN for a package without
    a version). Deploys of several approvals run at once and their lines interleave, and
    `models approve --wait` shows only the invocations about its version."""
    version = package.get("ModelPackageVersion")
    return package_tag(package["ModelPackageArn"], version) if version else str(package["ModelPackageArn"])


def log_outcome(action: str, package: dict[str, Any], reason: str) -> None:
    """The deploy's last line: what it did, for which version, and why."""
    log(f"{action} {version_name(package)}: {reason}")


def _environment_clients() -> dict[str, Any]:
    """Inside Lambda, the clients are made once per execution environment, at init, as Lambda
    advises: warm invocations reuse them. Elsewhere (tests) each call makes its own."""
    if not os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return {}
    clients = {name: boto3.client(name) for name in ("sagemaker", "s3")}
    # The first connection's host name goes through the idna codec (socket.getaddrinfo), which
    # Python imports on first use: 2 ms of a first invocation, here at init instead.
    codecs.lookup("idna")
    _prime(clients["sagemaker"], clients["s3"])
    return clients


class _Answer:
    """The body of an answer made in this process, read as botocore reads a received one."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, *_: Any, **__: Any) -> Iterator[bytes]:
        yield self.body


def _answering(status: int, body: bytes) -> Callable[..., AWSResponse]:
    """A before-send handler: botocore takes the answer it returns instead of sending."""
    return lambda request, **_: AWSResponse(request.url, status, {}, _Answer(body))


def _prime(sm: Any, s3: Any) -> None:
    """Run each call a deploy makes once at init, answered in this process: priming, as AWS advises
    for functions whose init runs ahead of their first invocation.

    A client's first call of an operation builds what every later one reuses (its serializer,
    signer, parser and event handlers): about 10 ms of a first deploy. Here every call gets an
    error made in this process (botocore's before-send event answers instead of sending), so no
    request leaves the environment and no API is called; parsing those errors also builds each
    client's exception classes (about 7 ms), which a first deploy needs when it looks up the
    endpoint before it exists."""
    answers = (
        (sm, 400, b'{"__type":"ValidationException","message":"priming"}'),
        (s3, 404, b"<Error><Code>NoSuchKey</Code><Message>priming</Message></Error>"),
    )
    name, role = "priming", "arn:aws:iam::000000000000:role/priming"
    calls: list[Callable[[], object]] = [
        lambda: sm.describe_model_package(ModelPackageName=name),
        lambda: s3.get_object(Bucket=name, Key=name),
        lambda: sm.describe_endpoint(EndpointName=name),
        lambda: sm.describe_endpoint_config(EndpointConfigName=name),
        lambda: sm.describe_model(ModelName=name),
        lambda: sm.create_model(ModelName=name, ExecutionRoleArn=role, PrimaryContainer={"Image": name}),
        lambda: sm.create_endpoint_config(
            EndpointConfigName=name, ProductionVariants=[{"VariantName": name, "ModelName": name}]
        ),
        lambda: sm.create_endpoint(EndpointName=name, EndpointConfigName=name),
        lambda: sm.update_endpoint(EndpointName=name, EndpointConfigName=name),
    ]
    for primed, status, body in answers:
        primed.meta.events.register_first(
            "before-send", _answering(status, body), unique_id=PRIMING
        )
    try:
        for call in calls:
            with contextlib.suppress(BotoCoreError, ClientError):
                call()
    finally:
        for primed, _, _ in answers:
            primed.meta.events.unregister("before-send", unique_id=PRIMING)


_CLIENTS = _environment_clients()


def client(name: str) -> Any:
    return _CLIENTS.get(name) or boto3.client(name)


def sagemaker_name(prefix: str, suffix: str) -> str:
    """Join prefix+suffix within SageMaker's 63 characters; when it must cut the prefix, a digest
    of the full name keeps distinct long names distinct."""
    full = prefix + suffix
    if len(full) <= MAX_NAME:
        return full
    digest = hashlib.sha256(full.encode("utf-8")).hexdigest()[:8]
    keep = MAX_NAME - len(suffix) - len(digest) - 1
    return f"{prefix[:keep].rstrip('-')}-{digest}{suffix}"


def package_tag(package_arn: str, version: int) -> str:
    """`v<version>-<8 hex digits of the ARN's sha256>`: readable, stable for one package, and
    different for the same version number in another model package group (or account, region)."""
    return f"v{version}-{hashlib.sha256(package_arn.encode('utf-8')).hexdigest()[:8]}"


CONFIG_NAME = re.compile(r".*-v(?P<version>\d+)-(?P<hash>[0-9a-f]{8})-[0-9a-f]{8}")


def package_of_config(config_name: str, group_package_arn: str) -> str | None:
    """The version of `group_package_arn`'s group whose endpoint config this is, read from the
    config's name as the handler makes it (`<endpoint>-<package tag>-<settings digest>`), or None
    (another group's, or not the handler's)."""
    match = CONFIG_NAME.fullmatch(config_name)
    if match is None:
        return None
    arn = f"{group_package_arn.rsplit('/', 1)[0]}/{match['version']}"
    return arn if package_tag(arn, int(match["version"])) == f"v{match['version']}-{match['hash']}" else None


def decided_after(package: dict[str, Any], approved: datetime) -> bool:
    """Whether `package`'s status was set after `approved`, and not to Rejected: a later decision,
    which stands over the approval made at `approved`. A PendingManualApproval one counts: a
    rollback passes through that status on its way back to Approved."""
    return package.get("ModelApprovalStatus") != "Rejected" and last_change(package) > approved


def _whole_number(event: dict[str, Any], key: str, default: int | None = None) -> int:
    """Pipeline parameters may arrive as strings; an absent or empty value takes the default."""
    raw = event.get(key)
    if raw in (None, ""):
        raw = default
    problem = f"{key} must be a whole number, got {raw!r}"
    try:
        value = float(str(raw))
    except ValueError:
        raise ValueError(problem) from None
    if not value.is_integer():
        raise ValueError(problem)
    return int(value)


APPROVAL_EVENT = "SageMaker Model Package State Change"
PACKAGE_VARIABLE = "MODEL_PACKAGE_ARN"
ENVIRONMENT_KEYS = {
    "endpoint_name": "ENDPOINT_NAME",
    "role_arn": "EXECUTION_ROLE_ARN",
    "instance_type": "INSTANCE_TYPE",
    "instance_count": "INSTANCE_COUNT",
    "capture_destination": "CAPTURE_DESTINATION",
    "capture_percentage": "CAPTURE_PERCENTAGE",
}


def is_approval(event: dict[str, Any]) -> bool:
    """Whether the deploy was started by the approval rule (EventBridge), not by a pipeline run."""
    return event.get("detail-type") == APPROVAL_EVENT


def from_approval_event(event: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """An EventBridge approval event names only the package; the endpoint settings come from
    the function's environment (set by the infra stack, or by the local upsert)."""
    if not is_approval(event):
        return event
    settings: dict[str, Any] = {
        key: environ[name] for key, name in ENVIRONMENT_KEYS.items() if environ.get(name)
    }
    settings.setdefault("instance_count", 1)
    settings["model_package_arn"] = event.get("detail", {}).get("ModelPackageArn")
    return settings


def read_event(event: dict[str, Any]) -> dict[str, Any]:
    """Validate the event and normalise its numbers and alarm list."""
    event = from_approval_event(event, os.environ)
    missing = [key for key in REQUIRED_KEYS if event.get(key) in (None, "")]
    if missing:
        raise ValueError(f"deploy event is missing {missing}")
    settings = {key: event[key] for key in REQUIRED_KEYS}
    settings["instance_count"] = _whole_number(event, "instance_count")
    settings["capture_percentage"] = _whole_number(event, "capture_percentage", 100)
    if settings["instance_count"] < 1:
        raise ValueError(f"instance_count must be at least 1, got {settings['instance_count']}")
    if not 0 <= settings["capture_percentage"] <= 100:
        raise ValueError(f"capture_percentage must be 0..100, got {settings['capture_percentage']}")
    alarms = event.get("rollback_alarms") or []
    if not isinstance(alarms, list) or not all(isinstance(alarm, str) for alarm in alarms):
        raise ValueError(f"rollback_alarms must be a list of alarm names, got {alarms!r}")
    settings["rollback_alarms"] = alarms
    return settings


def endpoint_config_request(settings: dict[str, Any], model_name: str) -> dict[str, Any]:
    """The CreateEndpointConfig arguments, without the name (which is derived from them)."""
    return {
        "ProductionVariants": [
            {
                "VariantName": VARIANT,
                "ModelName": model_name,
                "InstanceType": settings["instance_type"],
                "InitialInstanceCount": settings["instance_count"],
            }
        ],
        "DataCaptureConfig": {
            "EnableCapture": True,
            "InitialSamplingPercentage": settings["capture_percentage"],
            "DestinationS3Uri": settings["capture_destination"],
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {
                "CsvContentTypes": ["text/csv"],
                "JsonContentTypes": ["application/json", "application/jsonlines"],
            },
        },
    }


def settings_digest(request: dict[str, Any]) -> str:
    """Eight hex digits that change whenever any endpoint-config setting changes."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:8]


def _validation_error(error: ClientError, wording: str) -> bool:
    """SageMaker tells "not found" and "already exists" from other bad requests by message only."""
    details = error.response.get("Error", {})
    return details.get("Code") == "ValidationException" and wording in str(details.get("Message", ""))


def _not_found(error: ClientError) -> bool:
    return _validation_error(error, "Could not find")


def _already_exists(error: ClientError) -> bool:
    return _validation_error(error, "Cannot create already existing")


def verify_model_data(s3: Any, package: dict[str, Any], model_data_url: str) -> str:
    """Hash the model data object in S3 and compare it with the package's registered digest;
    raises integrity.ModelDataMismatch. Returns the digest."""
    expected = integrity.expected_digest(package)
    parts = urlsplit(model_data_url)
    if parts.scheme != "s3" or not parts.netloc or not parts.path.strip("/"):
        raise integrity.ModelDataMismatch(f"ModelDataUrl {model_data_url!r} is not an s3://bucket/key URI")
    body = s3.get_object(Bucket=parts.netloc, Key=parts.path.lstrip("/"))["Body"]
    actual = integrity.sha256_chunks(body.iter_chunks(integrity.CHUNK_BYTES))
    integrity.check_digest(actual, expected, model_data_url)
    return actual


def ensure_model(
    sm: Any, name: str, role_arn: str, container: dict[str, Any], package_arn: str
) -> None:
    """Create the model, or reuse the model of that name (names are per model package).

    The package ARN travels in the container environment so that monitoring can find the
    version (and its drift baseline) behind whatever the endpoint serves."""
    primary: dict[str, Any] = {
        key: container[key] for key in ("Image", "ModelDataUrl") if key in container
    }
    primary["Environment"] = {**container.get("Environment", {}), PACKAGE_VARIABLE: package_arn}
    create_or_reuse(
        f"model {name}",
        lambda: sm.create_model(ModelName=name, ExecutionRoleArn=role_arn, PrimaryContainer=primary),
        f" from {primary.get('ModelDataUrl')}",
    )


def ensure_endpoint_config(sm: Any, name: str, request: dict[str, Any]) -> None:
    """Create the endpoint config, or reuse the one of that name (its name encodes its settings)."""
    create_or_reuse(
        f"endpoint config {name}", lambda: sm.create_endpoint_config(EndpointConfigName=name, **request)
    )


def create_or_reuse(what: str, create: Callable[[], object], detail: str = "") -> None:
    """Create `what`; on SageMaker's "already existing" the one of that name is reused. Creating
    first takes one call where describing first took two, and leaves no gap in which another
    deploy could create it in between."""
    try:
        create()
    except ClientError as error:
        if not _already_exists(error):
            raise
        log(f"reusing {what}")
        return
    log(f"created {what}{detail}")


def _group_of(package_arn: str) -> str:
    """The model package group in a versioned package ARN (...:model-package/<group>/<version>)."""
    parts = package_arn.split(":", 5)[-1].split("/")
    return parts[1] if len(parts) == 3 else ""


def describe_endpoint(sm: Any, endpoint: str) -> dict[str, Any] | None:
    """The endpoint's description, or None when there is no such endpoint."""
    try:
        return dict(sm.describe_endpoint(EndpointName=endpoint))
    except ClientError as error:
        if not _not_found(error):
            raise
        return None


def served_by(sm: Any, config_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """An endpoint config and the model of its first variant, described."""
    config = sm.describe_endpoint_config(EndpointConfigName=config_name)
    model = sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    return config, model


def served_if_known(sm: Any, config_name: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """served_by, or None when the endpoint's config or its model has been deleted: SageMaker
    lets those of a live endpoint be deleted, and the endpoint goes on serving without them."""
    try:
        return served_by(sm, config_name)
    except ClientError as error:
        if not _not_found(error):
            raise
    log(f"endpoint config {config_name} or its model no longer exists: what the endpoint serves is unknown")
    return None


def package_of(model: dict[str, Any]) -> str:
    """The model package a described model was made from (ensure_model records it), or ""."""
    return str(model["PrimaryContainer"].get("Environment", {}).get(PACKAGE_VARIABLE, ""))


def approval_time(event: dict[str, Any], package: dict[str, Any]) -> datetime:
    """When this deploy's version was approved: the moment of the change an approval event reports
    (its LastModifiedTime, in epoch milliseconds), else the version's LastModifiedTime (a pipeline
    run deploys the version it has just registered)."""
    moment = event.get("detail", {}).get("LastModifiedTime") if is_approval(event) else None
    if isinstance(moment, int | float) and not isinstance(moment, bool):
        return datetime.fromtimestamp(moment / 1000, UTC)
    return last_change(package)


def last_change(package: dict[str, Any]) -> datetime:
    """When a version last changed: its LastModifiedTime, or its creation if it never did."""
    return package.get("LastModifiedTime") or package["CreationTime"]


def later_approval(sm: Any, endpoint: str, package_arn: str, approved: datetime) -> str | None:
    """Why this deploy gives way, if it does: the endpoint, described now, serves another version
    whose status was set after this one was approved, and not to Rejected. Approvals seconds apart
    deploy at the same time (EventBridge and Lambda keep no order), so without this the deploy that
    finished last, not the version approved last, stayed on the endpoint. A served version that is
    PendingManualApproval counts: a rollback passes through it on its way back to Approved."""
    current = describe_endpoint(sm, endpoint)
    if current is None:
        return None
    served_model = served_if_known(sm, current["EndpointConfigName"])
    served_arn = package_of(served_model[1]) if served_model else ""  # unknown: no decision to give way to
    if not served_arn or served_arn == package_arn:
        return None
    try:
        served = sm.describe_model_package(ModelPackageName=served_arn)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ValidationException":
            raise
        return None  # deleted since: nothing to give way to
    if not decided_after(served, approved):
        return None
    return (
        f"endpoint {endpoint} serves {served_arn}, {served.get('ModelApprovalStatus', '')} at "
        f"{last_change(served).isoformat()}, after this version was approved (at "
        f"{approved.isoformat()}): the later decision stands"
    )


def already_serving(
    sm: Any, current: dict[str, Any] | None, container: dict[str, Any], request: dict[str, Any], group: str
) -> tuple[str, str] | None:
    """(model, endpoint config) when the endpoint, InService, already serves this very container
    (image, model data, environment) of a version of the same group with the same variant and
    capture settings; None otherwise.

    An unchanged rerun registers the cached model again as a new version; rolling the endpoint to
    a copy of what it serves would only restart it, so the pipeline's deploy leaves it as it is. An
    approval's deploy does not ask: the user named the version to serve (see the handler)."""
    if current is None:
        return None
    if current.get("EndpointStatus") != "InService" or current.get("PendingDeploymentSummary"):
        return None
    config_name = current["EndpointConfigName"]
    served = served_if_known(sm, config_name)
    if served is None:  # nothing to compare with: rolling out onto this version's config replaces it
        return None
    config, described = served
    variants = config.get("ProductionVariants", [])
    if len(variants) != 1:
        return None
    model = described["PrimaryContainer"]
    environment = dict(model.get("Environment", {}))
    served_group = _group_of(environment.pop(PACKAGE_VARIABLE, ""))
    wanted_variant = {k: v for k, v in request["ProductionVariants"][0].items() if k != "ModelName"}
    capture = config.get("DataCaptureConfig", {})
    same = (
        served_group == group
        and all(model.get(key) == container.get(key) for key in ("Image", "ModelDataUrl"))
        and environment == container.get("Environment", {})
        and all(variants[0].get(key) == value for key, value in wanted_variant.items())
        and all(capture.get(key) == value for key, value in request["DataCaptureConfig"].items())
    )
    return (variants[0]["ModelName"], config_name) if same else None


def deployment_config(alarms: list[str]) -> dict[str, Any]:
    """Blue/green, all traffic at once, rolled back if any alarm fires while the old fleet waits."""
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
            "TerminationWaitInSeconds": BAKE_SECONDS,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": alarm} for alarm in alarms]},
    }


def wait_budget(context: Any) -> float:
    """Seconds the handler may wait on the endpoint: WAIT_SECONDS, less when the invocation
    has less time left (Lambda's context says; elsewhere there is none)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return WAIT_SECONDS
    return min(WAIT_SECONDS, remaining() / 1000 - AFTER_WAIT_SECONDS)


def remove_endpoint(sm: Any, endpoint: str, status: str, budget: float) -> None:
    """Delete a Failed endpoint (a Deleting one is on its way) and wait until it is gone, as the
    endpoint_deleted waiter does, for at most `budget` seconds; a RuntimeError past that."""
    if status == "Failed":
        sm.delete_endpoint(EndpointName=endpoint)
    attempts = max(1, int(budget // POLL_SECONDS))
    try:
        sm.get_waiter("endpoint_deleted").wait(
            EndpointName=endpoint, WaiterConfig={"Delay": POLL_SECONDS, "MaxAttempts": attempts}
        )
    except WaiterError as error:
        raise RuntimeError(
            f"endpoint {endpoint} is not deleted after {attempts * POLL_SECONDS} s ({error}); "
            "deploy again to create it once it is gone"
        ) from None


def settled(sm: Any, endpoint: str, current: dict[str, Any], budget: float) -> dict[str, Any] | None:
    """The endpoint once the change under way (a second pipeline run's deploy, an approval's) is
    over: UpdateEndpoint refuses an endpoint that is Creating, Updating, SystemUpdating or
    RollingBack. Polls from FIRST_POLL_SECONDS, doubling up to POLL_SECONDS (a local update ends
    within a second, a SageMaker one in minutes), for at most `budget` seconds; a RuntimeError past
    that."""
    waited, delay = 0.0, min(FIRST_POLL_SECONDS, POLL_SECONDS)
    status = current.get("EndpointStatus")
    while True:
        time.sleep(delay)
        waited += delay
        latest = describe_endpoint(sm, endpoint)
        if latest is None or latest.get("EndpointStatus") not in CHANGING:
            return latest
        status = latest.get("EndpointStatus")
        delay = min(delay * 2, POLL_SECONDS)
        if waited + delay > budget:
            raise RuntimeError(
                f"endpoint {endpoint} is still {status} after {waited:g} s: "
                "another deploy is changing it; deploy again once it is InService"
            )


def pending_config(current: dict[str, Any]) -> str | None:
    """The config an update under way moves the endpoint to (PendingDeploymentSummary), if any;
    EndpointConfigName is still the config it is leaving."""
    pending = current.get("PendingDeploymentSummary", {}).get("EndpointConfigName")
    return str(pending) if pending else None


def heading_to(current: dict[str, Any]) -> str | None:
    """The config the endpoint serves once its change under way is over: during an update the
    pending one, else its own."""
    return pending_config(current) or current.get("EndpointConfigName")


def roll_out(
    sm: Any, endpoint: str, current: dict[str, Any] | None, config: str, alarms: list[str], budget: float,
    gives_way: Callable[[], str | None] = lambda: None,
) -> tuple[str, str]:
    """Create, update or leave the endpoint (described as `current`); return (action, reason).
    Another deploy's change under way is waited for (unless it deploys this very config), and so is
    one that began, or an endpoint another deploy created, after this one looked; a Failed endpoint
    cannot be updated, so it is deleted and created again. Right before an update, `gives_way`
    says why this deploy leaves the endpoint to a later approval, if it does ("superseded"):
    SageMaker refuses an update while another is under way, so the one that gets in is followed by
    every later look."""
    if current is not None and current.get("EndpointStatus") in CHANGING and heading_to(current) != config:
        current = settled(sm, endpoint, current, budget)
    before = "did not exist"
    if current is not None and current.get("EndpointStatus") in ("Failed", "Deleting"):
        status, failure = current["EndpointStatus"], current.get("FailureReason")
        before = f"was {status}" + (f" ({failure})" if failure else "") + "; deleted"
        remove_endpoint(sm, endpoint, status, budget)
        current = None
    if current is None:
        try:
            sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
        except ClientError as error:
            if not _already_exists(error):
                raise
            # Another deploy (a concurrent execution's, an approval's) created it since this one
            # looked: roll out onto that one, once its creation is over.
            return roll_out(sm, endpoint, describe_endpoint(sm, endpoint), config, alarms, budget, gives_way)
        return "created", f"endpoint {endpoint} {before}; creating it with {config}"
    if heading_to(current) == config:
        status = current.get("EndpointStatus", "unknown")
        return "unchanged", f"endpoint {endpoint} already uses {config} (status {status})"
    reason = gives_way()
    if reason:
        return "superseded", reason
    update: dict[str, Any] = {"EndpointName": endpoint, "EndpointConfigName": config}
    if alarms:
        update["DeploymentConfig"] = deployment_config(alarms)
    previous = current.get("EndpointConfigName")
    try:
        sm.update_endpoint(**update)
    except ClientError as error:
        if _not_found(error) and f"endpoint-config/{str(previous).lower()}" in str(error):
            raise RuntimeError(
                f"endpoint {endpoint} serves endpoint config {previous}, which has been deleted: SageMaker "
                "does not update an endpoint whose config is gone (it keeps it to roll back to). Create "
                f"{previous} again, or delete endpoint {endpoint}, then deploy again"
            ) from None
        if not _validation_error(error, "Cannot update in-progress endpoint"):
            raise
        # Another deploy's change began since this one looked: wait for it, then roll out again.
        return roll_out(sm, endpoint, describe_endpoint(sm, endpoint), config, alarms, budget, gives_way)
    rollback = f" with auto-rollback on alarms {alarms}" if alarms else ""
    return "updated", f"endpoint {endpoint} moving from {previous} to {config}{rollback}"


def describe_serving(sm: Any, endpoint: str) -> dict[str, str]:
    """What the endpoint serves now: package, model artifact and drift baseline (for monitoring)."""
    config_name = sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    served = served_if_known(sm, config_name)
    if served is None:
        raise ValueError(f"endpoint {endpoint} uses {config_name}, whose config or model has been deleted: "
                         "what it serves cannot be known until a version is deployed to it again")
    _, model = served
    package_arn = package_of(model)
    if not package_arn:
        raise ValueError(f"endpoint {endpoint} serves {model['ModelName']}, not a registered version")
    try:
        package = sm.describe_model_package(ModelPackageName=package_arn)
    except ClientError as error:
        if not _validation_error(error, "does not exist"):
            raise
        raise ValueError(f"endpoint {endpoint} serves {package_arn}, which has been deleted, and its drift "
                         "baseline with it: deploy a registered version to monitor it") from None
    quality = package.get("DriftCheckBaselines", {}).get("ModelDataQuality", {})
    statistics = quality.get("Statistics", {}).get("S3Uri", "")
    if not statistics:
        raise ValueError(f"{package_arn} has no drift-check baseline")
    return {
        "endpoint_config_name": config_name,
        "model_package_arn": package_arn,
        "model_data_url": model["PrimaryContainer"]["ModelDataUrl"],
        "baseline_uri": statistics.rsplit("/", 1)[0],
    }


def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    """Deploy the package in event['model_package_arn'] if it is Approved; with
    `"action": "describe_serving"`, say what an endpoint serves instead."""
    if event.get("action") == "describe_serving":
        return describe_serving(client("sagemaker"), str(event["endpoint_name"]))
    settings = read_event(event)
    arn, endpoint = settings["model_package_arn"], settings["endpoint_name"]
    sm = client("sagemaker")
    package = sm.describe_model_package(ModelPackageName=arn)
    result = {
        "endpoint_name": endpoint,
        "model_name": "",
        "endpoint_config_name": "",
        "model_package_arn": arn,
    }
    status = package.get("ModelApprovalStatus", "unknown")
    log(f"version {version_name(package)}: {arn}, {status}")
    if status != "Approved":
        reason = f"model package {arn} is {status}, not Approved"
        log_outcome("skipped", package, reason)
        return {**result, "action": "skipped", "reason": reason}
    tag = package_tag(package["ModelPackageArn"], package["ModelPackageVersion"])
    model_name = sagemaker_name(endpoint, f"-{tag}")
    request = endpoint_config_request(settings, model_name)
    config_name = sagemaker_name(endpoint, f"-{tag}-{settings_digest(request)}")
    container = package["InferenceSpecification"]["Containers"][0]
    digest = verify_model_data(client("s3"), package, container.get("ModelDataUrl", ""))
    log(f"model data {container.get('ModelDataUrl')} matches the registered sha256 {digest}")
    current = describe_endpoint(sm, endpoint)
    # An approval names the version to serve. Left on a copy served as another version, the
    # endpoint would not say it serves this one (`models rollback N --wait` waited in vain), and a
    # deploy of a version approved before this one would see no later decision and replace it.
    served = None if is_approval(event) else already_serving(
        sm, current, container, request, package.get("ModelPackageGroupName", ""))
    if served:
        reason = (
            f"endpoint {endpoint} already serves {container.get('ModelDataUrl')} with these settings "
            f"(model {served[0]}); left as it is"
        )
        log_outcome("unchanged", package, reason)
        return {**result, "model_name": served[0], "endpoint_config_name": served[1],
                "action": "unchanged", "reason": reason}
    ensure_model(sm, model_name, settings["role_arn"], container, arn)
    ensure_endpoint_config(sm, config_name, request)
    approved = approval_time(event, package)
    action, reason = roll_out(
        sm, endpoint, current, config_name, settings["rollback_alarms"], wait_budget(context),
        lambda: later_approval(sm, endpoint, arn, approved),
    )
    log_outcome(action, package, reason)
    return {
        **result,
        "model_name": model_name,
        "endpoint_config_name": config_name,
        "action": action,
        "reason": reason,
    }
