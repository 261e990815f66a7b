"""Local Lambda: functions are stored zips, invoked in child processes whose boto3 reaches this server.

The deploy step on AWS is a Lambda function; here the very same handler file runs in a child
process with `AWS_ENDPOINT_URL_SAGEMAKER` pointing back at the local SageMaker, so the code path that
creates models, endpoint configs and endpoints is the one that runs in the cloud. Like a Lambda, the
process gets its own credentials (the state directory's, which the server accepts) and none of the
AWS_* settings of the server's environment, it runs on its declared runtime's interpreter
(python_runtimes.py), and it stays warm between invocations (runtime.py).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import os
import re
import stat
import tempfile
import threading
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.local.errors import ServiceError
from pipelines.local.jobs.log_groups import LogGroups
from pipelines.local.lambdas.configuration import (
    ARCHITECTURE,
    CONFIGURABLE,
    KEPT,
    check_configuration,
    check_revision,
    invalid_parameter,
    kept,
    log_group,
)
from pipelines.local.lambdas.python_runtimes import UnavailableRuntime, interpreter, runtime_version
from pipelines.local.lambdas.runtime import Configuration, Request, WarmEnvironments
from pipelines.local.storage import credentials
from pipelines.local.storage.database import Database, public
from pipelines.local.system.identity import ACCOUNT, arn
from pipelines.local.system.isolation import Confinement
from pipelines.local.system.supervision import library_path


@dataclass
class Invocation:
    """One invocation's answer: the handler's result, or (when `error` is set) Lambda's error
    document, which `error` renders in one line for failure reasons and logs."""

    payload: Any
    error: str = ""
    log: str = ""
    request_id: str = ""


@dataclass(frozen=True)
class FunctionReference:
    """A FunctionName as Lambda reads it: the name, a qualifier, and the region and account."""

    name: str
    qualifier: str | None
    region: str
    account: str

    @property
    def arn(self) -> str:
        """The ARN named, qualified when a qualifier was given."""
        unqualified = f"arn:aws:lambda:{self.region}:{self.account}:function:{self.name}"
        return unqualified + (f":{self.qualifier}" if self.qualifier else "")


WRITE = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
RESPONSE_LIMIT = 6 * 1024 * 1024 + 100  # the largest synchronous response, as Lambda's message counts it

# Lambda's FunctionName: a name, or a full or partial ARN, optionally with a version qualifier.
FUNCTION_NAME = re.compile(
    r"(?:arn:[a-zA-Z-]*:lambda:)?(?:(?P<region>[a-z]{2}(?:-gov)?-[a-z]+-\d):)?(?:(?P<account>\d{12}):)?"
    r"(?:function:)?(?P<name>[a-zA-Z0-9_-]+)(?::(?P<qualifier>[a-zA-Z0-9_$-]+))?"
)
LATEST = "$LATEST"  # the only version of a local function: none is ever published


PENDING = "The function is currently in the following state: Pending"


def conflict(reason: str) -> ServiceError:
    """Lambda's refusal of what a function's state does not allow yet."""
    return ServiceError(
        "ResourceConflictException", f"The operation cannot be performed at this time. {reason}", 409
    )


def function_name(name_or_arn: str) -> str:
    """The function's own name in a FunctionName member (unchanged if it is not one)."""
    found = FUNCTION_NAME.fullmatch(name_or_arn)
    return found.group("name") if found else name_or_arn


class Functions:
    def __init__(
        self, database: Database, root: Path, scratch: Path, region: str, server_url: str,
        credentials_path: Path | None = None, confinement: Confinement | None = None,
        logs: LogGroups | None = None,
    ) -> None:
        self.database = database
        self.root = root
        self.confinement = confinement
        self.region = region
        self.server_url = server_url
        self.credentials_path = credentials_path
        self.environments = WarmEnvironments(scratch, logs)
        self._lock = threading.Lock()
        self._creating = threading.Lock()  # a name's check and its storing, one create at a time
        self._unpacking = threading.Lock()  # two requests with the same code unpack it once
        self._changing: dict[str, tuple[str, str]] = {}  # function -> (RevisionId, kind) of a change
        # What an update in progress replaces: invocations run it until the update is complete.
        self._previous: dict[str, dict[str, Any]] = {}

    def _arn(self, name: str) -> str:
        return arn("lambda", self.region, f"function:{name}")

    def _save_code(self, name: str, zipped: bytes) -> tuple[str, str]:
        """Unpack the zip once per content hash; return (CodeSha256, code directory)."""
        check_code(zipped)
        digest = base64.b64encode(hashlib.sha256(zipped).digest()).decode()
        code_dir = self.root / name / hashlib.sha256(zipped).hexdigest()[:16]
        with self._unpacking:
            if not code_dir.exists():
                self.root.mkdir(parents=True, exist_ok=True)
                tmp = Path(tempfile.mkdtemp(dir=self.root))
                with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
                    archive.extractall(tmp)
                code_dir.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, code_dir)
                read_only(code_dir)
            function_home(code_dir).mkdir(exist_ok=True)
        return digest, str(code_dir)

    def create(self, request: dict[str, Any], zipped: bytes, now: float) -> dict[str, Any]:
        """CreateFunction's configuration members with the code's zip (the service reads it from
        the request or from S3, as update_code's)."""
        name = function_name(request["FunctionName"])
        if not request.get("Handler") or not request.get("Runtime"):
            raise invalid_parameter(
                "Runtime and Handler are mandatory parameters for functions created with deployment "
                "packages."
            )
        check_configuration(request, self.region)
        # Unpacked first: Lambda stores a function (Pending) as it accepts its create, so from the
        # moment the name is taken the function can be read, and a second create is a duplicate.
        sha, code_dir = self._save_code(name, zipped)
        with self._creating:
            if self.database.get("function", name):
                raise ServiceError("ResourceConflictException", f"Function already exist: {name}", 409)
            with self._change(name, CREATING) as revision:
                body = {
                    "FunctionName": name,
                    "FunctionArn": self._arn(name),
                    "Runtime": request["Runtime"],
                    "Role": request.get("Role", ""),
                    "Handler": request["Handler"],
                    "Timeout": int(request.get("Timeout", 3)),
                    "MemorySize": int(request.get("MemorySize", 128)),
                    "Environment": request.get("Environment", {"Variables": {}}),
                    "CodeSha256": sha,
                    "CodeSize": len(zipped),
                    "Version": LATEST,
                    "PackageType": "Zip",
                    "Architectures": [ARCHITECTURE],
                    "LastModified": last_modified(),
                    "RevisionId": revision,
                    **kept(name, request),
                    "_CodeDir": code_dir,
                    "_Tags": request.get("Tags", {}),
                    "_Incarnation": revision,
                }
                self.database.put("function", name, body, now)
        return self._settle(body)

    def update_code(
        self, name: str, zipped: bytes, dry_run: bool = False, revision: str | None = None
    ) -> dict[str, Any]:
        """New code, unless `revision` is given and no longer the function's; with `dry_run`, only
        the checks: the function and its configuration stay."""
        body = self._get(name)
        check_revision(body, revision)
        if dry_run:
            check_code(zipped)
            return self.describe(body)
        with self._change(body["FunctionName"], UPDATING) as revision:
            self._keep_previous(body)
            body["CodeSha256"], body["_CodeDir"] = self._save_code(body["FunctionName"], zipped)
            body.update(CodeSize=len(zipped), RevisionId=revision, LastModified=last_modified())
            self.database.put("function", body["FunctionName"], body, 0)
        return self._settle(body)

    def update_configuration(self, request: dict[str, Any]) -> dict[str, Any]:
        """The members given replace the stored ones (Environment as a whole, as Lambda does);
        new environments start with the new configuration."""
        body = self._get(request["FunctionName"])
        check_revision(body, request.get("RevisionId"))
        changed = {key: request[key] for key in CONFIGURABLE if key in request}
        check_configuration({**body, **request}, self.region)
        with self._change(body["FunctionName"], UPDATING) as revision:
            self._keep_previous(body)
            body.update(changed, **kept(body["FunctionName"], changed))
            body.update(Timeout=int(body["Timeout"]))
            body.update(RevisionId=revision, LastModified=last_modified())
            self.database.put("function", body["FunctionName"], body, 0)
        return self._settle(body)

    def delete(self, name_or_arn: str, qualifier: str | None = None) -> str:
        """DeleteFunction: the function and its idle environments go (an invocation in progress
        finishes in its own); returns its name. Its log group stays, as Lambda's does, and so does
        its unpacked code, which the same code uploaded again reuses. Refused while another change
        of it is in progress, as Lambda refuses a second one."""
        reference = self.named(name_or_arn, qualifier)
        if reference.qualifier == LATEST:
            raise invalid_parameter("$LATEST version cannot be deleted without deleting the function.")
        if reference.qualifier is not None:
            raise invalid_parameter(
                f"Qualifier {reference.qualifier} names a published version or an alias, which the local "
                "Lambda does not keep: a function has only its $LATEST version here. Call without "
                "Qualifier to delete the function."
            )
        name = self._get(name_or_arn)["FunctionName"]
        with self._change(name, UPDATING) as revision:
            self.database.delete("function", name)
        self._changed(name, revision)
        self.environments.retire(name)
        return name

    def stored(self) -> list[dict[str, Any]]:
        """Every function, as stored (describe() gives its configuration)."""
        return self.database.all("function")

    def get(self, name: str, qualifier: str | None = None) -> dict[str, Any]:
        """GetFunction's answer: the configuration, and the tags when the function has any."""
        body = self._get(name, qualifier)
        tags = body.get("_Tags")
        return {"Configuration": self.describe(body), **({"Tags": tags} if tags else {})}

    @contextmanager
    def _change(self, name: str, kind: str) -> Iterator[str]:
        """Lambda takes one change of a function at a time: claim it for this one, under its new
        RevisionId, or refuse it as Lambda does while another is in progress. The claim ends when
        an environment of the change is initialised (_settle), or at once if the change fails."""
        revision = str(uuid.uuid4())
        with self._lock:
            busy = self._changing.setdefault(name, (revision, kind))
        if busy[0] != revision:
            updating = f"An update is in progress for resource: {self._arn(name)}"
            raise conflict(PENDING if busy[1] == CREATING else updating)
        try:
            yield revision
        except BaseException:
            self._changed(name, revision)
            raise

    def _keep_previous(self, body: dict[str, Any]) -> None:
        """Lambda's update "is complete and the function is processing events with the new
        configuration" once LastUpdateStatus is Successful: until then invocations run this one."""
        with self._lock:
            self._previous[body["FunctionName"]] = copy.deepcopy(body)

    def _changed(self, name: str, revision: str) -> None:
        with self._lock:
            if self._changing.get(name, ("",))[0] == revision:
                del self._changing[name]
                self._previous.pop(name, None)

    def _settle(self, body: dict[str, Any]) -> dict[str, Any]:
        """The answer to a change (Pending, or InProgress), which becomes Active and Successful
        once an environment of the new code and configuration has been initialised."""
        answer = self.describe(body)
        name, revision = body["FunctionName"], body["RevisionId"]
        self.environments.prepare(self._configuration(body), lambda: self._changed(name, revision))
        return answer

    def describe(self, body: dict[str, Any]) -> dict[str, Any]:
        """The stored configuration with its state, as GetFunctionConfiguration answers it."""
        with self._lock:
            changing = self._changing.get(body["FunctionName"])
        kind = changing[1] if changing and changing[0] == body.get("RevisionId") else ""
        version = runtime_version(body["Runtime"], self.region)
        return {
            **kept(body["FunctionName"], KEPT), **public(body), **STATES[kind],
            "RuntimeVersionConfig": {"RuntimeVersionArn": version.arn},
        }

    def named(self, name_or_arn: str, qualifier: str | None = None) -> FunctionReference:
        """What a FunctionName (and Qualifier) names, whether or not it exists; a qualifier in the
        name that differs from `qualifier` is refused as Lambda refuses it."""
        found = FUNCTION_NAME.fullmatch(name_or_arn)
        parts = found.groupdict() if found else {"name": name_or_arn}
        named = parts.get("qualifier")
        if named and qualifier and named != qualifier:
            raise invalid_parameter(
                "The derived qualifier from the function name does not match the specified qualifier."
            )
        region, account = parts.get("region") or self.region, parts.get("account") or ACCOUNT
        return FunctionReference(parts["name"], qualifier or named, region, account)

    def find(self, reference: FunctionReference) -> dict[str, Any] | None:
        """The function a reference names: its $LATEST, the only version here. Another version, an
        alias, or an ARN of another region or account names nothing."""
        if (reference.region, reference.account) != (self.region, ACCOUNT):
            return None
        if reference.qualifier not in (None, LATEST):
            return None
        return self.database.get("function", reference.name)

    def _get(self, name_or_arn: str, qualifier: str | None = None) -> dict[str, Any]:
        reference = self.named(name_or_arn, qualifier)
        body = self.find(reference)
        if body is None:
            raise ServiceError("ResourceNotFoundException", f"Function not found: {reference.arn}", 404)
        return body

    def _sdk_environment(self) -> dict[str, str]:
        """Endpoints of this server, its region and, once a server has made them, its credentials."""
        path = self.credentials_path
        keys = credentials.Credentials("", "")
        if path is not None and path.exists():
            keys = credentials.load(path)
        environment = credentials.sdk_environment(self.server_url, self.region, keys)
        return {key: value for key, value in environment.items() if value}

    def _configuration(self, body: dict[str, Any]) -> Configuration:
        python = runtime_interpreter(body["Runtime"])
        return Configuration(
            function=body["FunctionName"],
            interpreter=str(python),
            code_dir=body["_CodeDir"],
            handler=body["Handler"],
            confinement=self.confinement,
            ephemeral_storage_mb=int(body.get("EphemeralStorage", KEPT["EphemeralStorage"])["Size"]),
            init_start=runtime_version(body["Runtime"], self.region).init_start(),
            incarnation=body.get("_Incarnation", ""),
            environment={
                **runtime_defaults(body, python),
                **body.get("Environment", {}).get("Variables", {}),
                **self._sdk_environment(),
                **reserved_runtime_variables(body, python),
            },
        )

    def invocable(self, name_or_arn: str, qualifier: str | None = None) -> dict[str, Any]:
        """The function Invoke runs; refused while it is Pending, as Lambda refuses it. While an
        update is in progress the invocation runs, with the code and configuration it replaces."""
        body = self._get(name_or_arn, qualifier)
        with self._lock:
            changing = self._changing.get(body["FunctionName"])
            previous = self._previous.get(body["FunctionName"])
        if changing and changing[1] == CREATING:
            raise conflict(PENDING)
        return previous if changing and previous is not None else body

    def invoke(
        self, name_or_arn: str, event: Any, qualifier: str | None = None, request_id: str = "",
        client_context: dict[str, Any] | None = None,
    ) -> Invocation:
        """Run the handler once in a warm environment; what fails is reported as Lambda reports it.
        The context's invoked_function_arn is qualified when the caller qualified the name, and its
        client_context is the invoker's. An asynchronous invocation's retries pass the request id of
        its first attempt, as Lambda's do."""
        body = self.invocable(name_or_arn, qualifier)
        qualified = self.named(name_or_arn, qualifier).qualifier
        invoked = body["FunctionArn"] + (f":{LATEST}" if qualified else "")
        request = Request(event, request_id or str(uuid.uuid4()), invoked, client_context)
        outcome = self.environments.invoke(self._configuration(body), request, float(body["Timeout"]))
        document = outcome.error
        if document is None and len((outcome.payload or "").encode()) > RESPONSE_LIMIT:
            document = {
                "errorMessage": "Response payload size exceeded maximum allowed payload size "
                f"({RESPONSE_LIMIT} bytes).",
                "errorType": "Function.ResponseSizeTooLarge",
            }
        if document is not None:
            error = f"{document['errorType']}: {document['errorMessage']}"
            return Invocation(document, error, outcome.log, request.request_id)
        return Invocation(json.loads(outcome.payload or "null"), "", outcome.log, request.request_id)

    def close(self) -> None:
        """Shut down every warm environment (the server is stopping)."""
        self.environments.close()


CREATING, UPDATING = "creating", "updating"
# State and LastUpdateStatus, with their reasons, by the change in progress ("": none).
STATES: dict[str, dict[str, str]] = {
    "": {"State": "Active", "LastUpdateStatus": "Successful"},
    CREATING: {
        "State": "Pending", "StateReason": "The function is being created.", "StateReasonCode": "Creating",
    },
    # Lambda gives an update the reason it gives a creation, as every CLI answer shows, and with it
    # LastUpdateStatusReasonCode "Creating", a value its own service model does not allow: left out.
    UPDATING: {
        "State": "Active", "LastUpdateStatus": "InProgress",
        "LastUpdateStatusReason": "The function is being created.",
    },
}


def last_modified() -> str:
    """Now, as Lambda writes LastModified: `2024-06-01T12:00:00.000+0000`."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def check_code(zipped: bytes) -> None:
    """What Lambda refuses in a deployment package: no bytes or a zip with nothing in it, a file
    that is not a zip; here also a member whose path would leave the code directory."""
    empty = invalid_parameter("Uploaded file must be a non-empty zip")
    if not zipped:
        raise empty
    try:
        with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
            archive.testzip()
            names = archive.namelist()
    except zipfile.BadZipFile:
        raise invalid_parameter(
            "Could not unzip uploaded file. Please check your file, then try to upload again."
        ) from None
    if not names:
        raise empty
    for member in names:
        if member.startswith("/") or ".." in Path(member).parts:
            raise invalid_parameter(f"unsafe path in function code: {member}")


def read_only(tree: Path) -> None:
    """Take every write permission off an unpacked package, as /var/task is read-only on Lambda:
    a handler cannot change its own code, nor the code later environments start from."""
    for folder, _, files in os.walk(tree, topdown=False):
        for name in files:
            path = Path(folder, name)
            path.chmod(stat.S_IMODE(path.lstat().st_mode) & ~WRITE)
        Path(folder).chmod(stat.S_IMODE(Path(folder).stat().st_mode) & ~WRITE)


def function_home(code_dir: Path) -> Path:
    """An empty home for the function's environments: there are no ~/.aws files in Lambda."""
    return code_dir.parent / "home"


def runtime_interpreter(runtime: str) -> Path:
    """A stored function's interpreter; its environment may have been removed since CreateFunction,
    which Lambda reports as it reports a runtime it no longer runs."""
    try:
        return interpreter(runtime)
    except UnavailableRuntime as error:
        raise ServiceError("InvalidRuntimeException", str(error), 502) from None


def runtime_defaults(body: dict[str, Any], python: Path) -> dict[str, str]:
    """The variables Lambda's Python runtime sets that a function's own variables may replace,
    with this machine's paths: the runtime's interpreter `python` first on PATH. None of the
    server's own environment: a PYTHONPATH or a token set on this machine reaches no handler."""
    return {
        "PATH": os.pathsep.join([str(python.parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        **library_path(),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "HOME": str(function_home(Path(body["_CodeDir"]))),
    }


def reserved_runtime_variables(body: dict[str, Any], python: Path) -> dict[str, str]:
    """The variables Lambda's runtime reserves (no function variable may name them)."""
    return {
        "LAMBDA_TASK_ROOT": body["_CodeDir"],
        "_HANDLER": body["Handler"],
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{body['Runtime']}",
        "AWS_LAMBDA_FUNCTION_NAME": body["FunctionName"],
        "AWS_LAMBDA_FUNCTION_VERSION": LATEST,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(body.get("MemorySize", 128)),
        "AWS_LAMBDA_LOG_GROUP_NAME": log_group(body),
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "LAMBDA_RUNTIME_DIR": str(python.parent.parent),  # the runtime's own environment
    }
