"""What a Lambda function's configuration may hold: Lambda's limits and refusals, the members the
local Lambda keeps and echoes, and the ones it refuses because it cannot reproduce them.

CreateFunction and UpdateFunctionConfiguration check a request here before anything is stored
(functions.py); a refusal names the member and says what the local Lambda does instead.
"""

from __future__ import annotations

import json
import platform
from typing import Any

from pipelines.local.contract.shapes import over_limit, summary
from pipelines.local.errors import ServiceError
from pipelines.local.lambdas.destinations import cannot_deliver
from pipelines.local.lambdas.python_runtimes import UnavailableRuntime, interpreter


def invalid_parameter(message: str) -> ServiceError:
    """Lambda's code for a request it cannot act on (SageMaker's would be ValidationException)."""
    return ServiceError("InvalidParameterValueException", message)


# Members Lambda keeps and echoes, with Lambda's defaults: a description, X-Ray tracing (no traces
# are sent), /tmp's size (the size of each environment's /tmp, runtime.py), SnapStart (it snapshots
# published versions only, and none is published here) and where logs go (the log group's name is
# what a handler's context gives).
KEPT: dict[str, Any] = {
    "Description": "",
    "KMSKeyArn": None,  # the key that encrypts the variables at rest: echoed only when given
    "TracingConfig": {"Mode": "PassThrough"},
    "EphemeralStorage": {"Size": 512},
    "SnapStart": {"ApplyOn": "None"},
    "LoggingConfig": {"LogFormat": "Text"},
}


# What UpdateFunctionConfiguration changes here: the members CreateFunction stores.
CONFIGURABLE = ("Role", "Handler", "Timeout", "MemorySize", "Environment", "Runtime", *KEPT)


ENVIRONMENT_LIMIT = 4096  # bytes of a function's variables, as JSON


# Lambda's limits where its model allows more (for Lambda Managed Instances and accelerators, which
# the local Lambda refuses): (member, part of it, largest value).
LIMITS = (("Timeout", "", 900), ("MemorySize", "", 10240), ("EphemeralStorage", "Size", 10240))


# The Lambda architecture of this machine: the one the local Lambda runs.
ARCHITECTURE = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(
    platform.machine().lower(), platform.machine()
)


# Members that change how a function runs in ways the local Lambda cannot reproduce, and why.
UNSUPPORTED = {
    "Layers": "the local Lambda installs no layers: a function runs with its own package's code only",
    "VpcConfig": "the local Lambda connects no function to a VPC: its environments use this machine's "
    "network",
    "FileSystemConfigs": "the local Lambda mounts no EFS or S3 Files file system",
    "CodeSigningConfigArn": "the local Lambda checks no code signatures, so it would run code the "
    "configuration refuses",
    "ImageConfig": "the local Lambda runs .zip packages, not container images",
    "TenancyConfig": "the local Lambda keeps no environments of their own for tenants",
    "CapacityProviderConfig": "the local Lambda runs no function on Lambda Managed Instances: each "
    "environment is a process of this machine",
    "DurableConfig": "the local Lambda runs no durable functions: it keeps no execution state between "
    "invocations",
    "RuntimeConfig": "the local Lambda runs the Python runtimes built here, not a customer-managed runtime",
    "AcceleratorConfig": "the local Lambda attaches no accelerator",
}


def kept(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """The KEPT members of `given` as Lambda echoes them: each structure over its defaults, SnapStart
    off for $LATEST (no snapshot is taken of it), the log group /aws/lambda/<name> unless another is
    named."""
    echoed: dict[str, Any] = {}
    for member, default in KEPT.items():
        if given.get(member) is not None:
            echoed[member] = {**default, **given[member]} if isinstance(default, dict) else given[member]
    if "SnapStart" in echoed:
        echoed["SnapStart"]["OptimizationStatus"] = "Off"
    if "LoggingConfig" in echoed:
        echoed["LoggingConfig"].setdefault("LogGroup", log_group({"FunctionName": name}))
    return echoed


def log_group(body: dict[str, Any]) -> str:
    """The function's log group: the one its LoggingConfig names, or Lambda's default."""
    return str(body.get("LoggingConfig", {}).get("LogGroup") or f"/aws/lambda/{body['FunctionName']}")


def sets(value: Any) -> bool:
    """Whether a member's value asks for anything: empty lists and strings, Lambda's way of removing
    a setting, do not."""
    if isinstance(value, dict):
        return any(sets(item) for item in value.values())
    if isinstance(value, list):
        return any(sets(item) for item in value)
    return bool(value)


def unsupported(member: str, why: str, instead: str = "") -> ServiceError:
    """The refusal of a member the local Lambda cannot reproduce: what it does instead, and how to call."""
    return invalid_parameter(
        f"{member} is not supported by the local Lambda: {why}. Call {instead or 'without ' + member}."
    )


def check_configuration(request: dict[str, Any], region: str) -> None:
    """What CreateFunction and UpdateFunctionConfiguration refuse: what Lambda refuses (a value over
    its limits, a reserved variable name) and what the local Lambda cannot reproduce (a runtime it
    has no environment for, another architecture, a dead-letter queue, layers, a VPC...)."""
    check_limits(request)
    try:
        interpreter(request["Runtime"])
    except UnavailableRuntime as error:
        raise invalid_parameter(str(error)) from None
    check_variables(request.get("Environment", {}).get("Variables", {}))
    check_architecture(request)
    for member, why in UNSUPPORTED.items():
        if sets(request.get(member)):
            raise unsupported(member, why)
    if request.get("PackageType", "Zip") != "Zip":
        raise unsupported(
            f"PackageType {request['PackageType']}", UNSUPPORTED["ImageConfig"],
            "with PackageType Zip or without it",
        )
    logging = request.get("LoggingConfig", {})
    if logging.get("LogFormat", "Text") != "Text" or {"ApplicationLogLevel", "SystemLogLevel"} & set(logging):
        raise unsupported(
            "LoggingConfig with LogFormat JSON or log levels", "its runtime writes every log line as text",
            "with LogFormat Text (or none) and no log levels",
        )
    target = request.get("DeadLetterConfig", {}).get("TargetArn", "")
    if target:
        raise invalid_parameter(
            cannot_deliver("failed asynchronous events (DeadLetterConfig)", target, region)
            + " Call without DeadLetterConfig, and name one of those as the OnFailure destination of the "
            "function's event invoke config."
        )


def check_limits(request: dict[str, Any]) -> None:
    """Refuse values over Lambda's LIMITS as Lambda does, with a ValidationException."""
    errors = []
    for member, part, high in LIMITS:
        value = request.get(member)
        if part and isinstance(value, dict):
            value = value.get(part)
        if isinstance(value, int) and value > high:
            errors.append(over_limit(value, (member, part) if part else (member,), high))
    if errors:
        raise ServiceError("ValidationException", summary(errors))


def check_architecture(request: dict[str, Any]) -> None:
    """An architecture other than this machine's would run here on this machine's."""
    architectures = request.get("Architectures", [ARCHITECTURE])
    if architectures != [ARCHITECTURE]:
        raise unsupported(
            f"Architectures {json.dumps(architectures)}",
            f"it runs functions on this machine's {ARCHITECTURE}",
            f'with Architectures ["{ARCHITECTURE}"] or without it',
        )


def check_revision(body: dict[str, Any], revision: str | None) -> None:
    """An update for a RevisionId that is no longer the function's is refused, as Lambda refuses it."""
    if revision not in (None, body["RevisionId"]):
        raise ServiceError(
            "PreconditionFailedException",
            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias "
            "API to retrieve the latest Revision Id",
            412,
        )


# Lambda refuses a function variable with one of these names; the runtime sets them itself.
RESERVED_VARIABLES = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
})


def check_variables(variables: dict[str, str]) -> None:
    """Refuse more than 4 KB of variables, and reserved names, as Lambda does (rather than let the
    runtime's value silently win)."""
    measured = json.dumps(variables, separators=(",", ":"))
    if len(measured.encode()) > ENVIRONMENT_LIMIT:
        raise invalid_parameter(
            "Lambda was unable to configure your environment variables because the environment "
            f"variables you have provided exceeded the 4KB limit. String measured: {measured}"
        )
    reserved = sorted(RESERVED_VARIABLES.intersection(variables))
    if reserved:
        raise invalid_parameter(
            "Lambda was unable to configure your environment variables because the environment "
            "variables you have provided contains reserved keys that are currently not supported "
            f"for modification. Reserved keys used in this request: {', '.join(reserved)}"
        )
