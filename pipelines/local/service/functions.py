"""Lambda's function operations as the REST API names them, over the local functions.

A function's code comes as a zip in the request or as an object in the local S3 (S3Bucket, S3Key,
S3ObjectVersion), as the SDK's Lambda helper uploads a larger one; a container image it cannot
run is refused. An Event invocation and the event invoke configs that govern it are
`lambdas/asynchronous.py` and `lambdas/event_invoke.py`.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from typing import Any

from pipelines.local.errors import ServiceError
from pipelines.local.lambdas.asynchronous import AsyncInvocations
from pipelines.local.lambdas.configuration import check_architecture, invalid_parameter
from pipelines.local.lambdas.functions import Functions
from pipelines.local.service.listing import Listing
from pipelines.local.storage.database import Body
from pipelines.local.storage.objects import NoSuchKey, ObjectStore

SYNCHRONOUS_PAYLOAD_LIMIT = 6 * 1024 * 1024  # Lambda's request limit for RequestResponse, in bytes
EVENT_PAYLOAD_LIMIT = 1024 * 1024  # and for Event (1 MB since January 2026; 256 KB before)
# Lambda answers a payload over either limit with this code, which botocore's model names
# RequestTooLargeException (boto3 raises it as a ClientError carrying the code sent).
TOO_LARGE = "RequestEntityTooLargeException"
LOG_TAIL_BYTES = 4096  # LogType Tail: the end of the invocation's log
# ListFunctions: by name, 50 a page unless MaxItems says, continued with Marker. MasterRegion and
# FunctionVersion are applied by the operation itself.
FUNCTIONS = Listing(
    "ListFunctions", "Functions", {"FunctionName": "FunctionName"}, "FunctionName",
    default_sort="FunctionName", default_order="Ascending", scope=("MasterRegion", "FunctionVersion"),
    # "ListFunctions returns a maximum of 50 items in each response, even if you set the number higher"
    limit_member="MaxItems", default_limit=50, most=50, token_member="Marker", next_member="NextMarker",
    refuse=invalid_parameter,
)
# What ListFunctions leaves out of each configuration, as its API reference says: GetFunction has them.
STATE_MEMBERS = (
    "State", "StateReason", "StateReasonCode", "LastUpdateStatus", "LastUpdateStatusReason",
    "LastUpdateStatusReasonCode",
)


def _client_context(encoded: str | None) -> dict[str, Any] | None:
    """Invoke's ClientContext, decoded for the handler's context; Lambda's refusal, in its words,
    for one that is not the base64 of a JSON object."""
    if encoded is None:
        return None
    try:
        decoded = json.loads(base64.b64decode(encoded, validate=True))
    except ValueError:  # not base64, not UTF-8 or not JSON
        decoded = None
    if not isinstance(decoded, dict):
        raise ServiceError(
            "InvalidRequestContentException", "Client context must be a valid Base64-encoded JSON object."
        )
    return decoded


def refuse_publish(request: Body) -> None:
    """Publish=True (or PublishTo) asks for a numbered version, which the local Lambda does not keep."""
    for member in ("Publish", "PublishTo"):
        if request.get(member):
            raise invalid_parameter(
                f"{member} is not supported by the local Lambda: a function has only its $LATEST version "
                f"here. Call without {member}."
            )


class FunctionOperations:
    def __init__(self, functions: Functions, invocations: AsyncInvocations, store: ObjectStore) -> None:
        self.functions = functions
        self.invocations = invocations
        self.configs = invocations.configs
        self.store = store

    def create_function(self, request: Body) -> Body:
        refuse_publish(request)
        return self.functions.create(request, self._code(request["Code"], "Code."), time.time())

    def delete_function(self, request: Body) -> Body:
        """The function, with its event invoke config, answered 204 as Lambda answers a function's
        deletion; events already queued for it fail their attempts from now on, as those of a
        missing function do."""
        self.configs.forget(self.functions.delete(request["FunctionName"], request.get("Qualifier")))
        return {"StatusCode": 204}

    def list_functions(self, request: Body) -> Body:
        """Every function's configuration, without its state. FunctionVersion ALL would add the
        published versions, and MasterRegion lists only Lambda@Edge replicas: the local Lambda has
        neither."""
        if request.get("MasterRegion"):
            if request.get("FunctionVersion") != "ALL":
                raise invalid_parameter("FunctionVersion must be ALL when MasterRegion is specified.")
            return {"Functions": []}
        return FUNCTIONS.page(self.functions.stored(), request, self._listed)

    def _listed(self, body: Body) -> Body:
        return {k: v for k, v in self.functions.describe(body).items() if k not in STATE_MEMBERS}

    def get_function(self, request: Body) -> Body:
        return self.functions.get(request["FunctionName"], request.get("Qualifier"))

    def update_function_code(self, request: Body) -> Body:
        refuse_publish(request)
        check_architecture(request)
        code = self._code(request, "")
        return self.functions.update_code(
            request["FunctionName"], code, bool(request.get("DryRun")), request.get("RevisionId")
        )

    def update_function_configuration(self, request: Body) -> Body:
        return self.functions.update_configuration(request)

    def get_function_configuration(self, request: Body) -> Body:
        return self.functions.get(request["FunctionName"], request.get("Qualifier"))["Configuration"]

    def invoke(self, request: Body) -> Body:
        """RequestResponse runs the handler and answers its result or error document (200), Event
        queues it with Lambda's retries and destinations (202), DryRun only finds the function (204)."""
        payload = request.get("Payload", b"")
        kind = request.get("InvocationType", "RequestResponse")
        if kind == "Event" and len(payload) > EVENT_PAYLOAD_LIMIT:
            raise ServiceError(
                TOO_LARGE,
                f"{len(payload)} byte payload is too large for the Event invocation type (limit "
                f"{EVENT_PAYLOAD_LIMIT} bytes)",
                413,
            )
        if len(payload) > SYNCHRONOUS_PAYLOAD_LIMIT:
            raise ServiceError(
                TOO_LARGE,
                f"Request must be smaller than {SYNCHRONOUS_PAYLOAD_LIMIT} bytes for the InvokeFunction "
                "operation",
                413,
            )
        try:
            event = json.loads(payload or b"{}")
        except ValueError as error:
            raise ServiceError(
                "InvalidRequestContentException",
                f"Could not parse request body into json: Could not parse payload into json: {error}",
            ) from None
        context = _client_context(request.get("ClientContext"))
        name, qualifier = request["FunctionName"], request.get("Qualifier")
        self.functions.get(name, qualifier)  # a missing function is refused whatever the type
        if kind == "DryRun":
            return {"StatusCode": 204}
        if kind == "Event":
            request_id = self.invocations.submit(name, event, qualifier)
            return {"StatusCode": 202, "ResponseMetadata": {"RequestId": request_id}}
        invocation = self.functions.invoke(name, event, qualifier, client_context=context)
        payload = json.dumps(invocation.payload).encode()
        answer: Body = {"StatusCode": 200, "Payload": payload, "ExecutedVersion": "$LATEST"}
        if invocation.error:
            answer["FunctionError"] = "Unhandled"
        if request.get("LogType") == "Tail":
            answer["LogResult"] = base64.b64encode(invocation.log.encode()[-LOG_TAIL_BYTES:]).decode()
        return answer

    def put_function_event_invoke_config(self, request: Body) -> Body:
        return self.configs.put(request)

    def update_function_event_invoke_config(self, request: Body) -> Body:
        return self.configs.update(request)

    def get_function_event_invoke_config(self, request: Body) -> Body:
        return self.configs.get(request)

    def delete_function_event_invoke_config(self, request: Body) -> Body:
        self.configs.delete(request)
        return {}

    def list_function_event_invoke_configs(self, request: Body) -> Body:
        """One page always: a local function has one config at most (its $LATEST's), so no listing
        is ever continued, and a Marker can only be one this server never gave."""
        if request.get("Marker"):
            raise invalid_parameter("Invalid Marker: the local Lambda never continues this listing.")
        return {"FunctionEventInvokeConfigs": self.configs.listed(request["FunctionName"])}

    def _code(self, source: Mapping[str, Any], prefix: str) -> bytes:
        """The zip a request carries, or the one in the S3 object it names."""
        if "ZipFile" in source:
            return base64.b64decode(source["ZipFile"])
        if "S3Bucket" not in source or "S3Key" not in source:
            raise invalid_parameter(
                f"{prefix}ZipFile or {prefix}S3Bucket and {prefix}S3Key are required: the local "
                "Lambda runs .zip packages, not container images."
            )
        uri = f"s3://{source['S3Bucket']}/{source['S3Key']}"
        try:
            return self.store.get_bytes(uri, source.get("S3ObjectVersion"))
        except (NoSuchKey, ValueError):
            raise invalid_parameter(
                "Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: The "
                f"specified key does not exist. ({uri})",
            ) from None
