"""Wire protocols: the JSON 1.1 APIs (SageMaker, EventBridge, CloudWatch Logs), the runtime's
invocations, Lambda's and EventBridge Scheduler's REST subsets, and S3's (s3.py).

Only decoding, checking against the service model, dispatch and encoding live here; what an
operation does is in the service layer. Every request is checked against its operation's input
shape before the service sees it, so a service method may rely on its required members. With
LOCAL_SAGEMAKER_CHECK_RESPONSES=1 (the test suite sets it) every response is checked against its
output shape too, and a response that breaks it becomes a 500 naming the violation.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
from typing import Any

from pipelines.local.api.auth import scoped_service
from pipelines.local.api.reply import Reply
from pipelines.local.api.rest import Headers, RestRoutes, has_payload, request_members, response_members
from pipelines.local.api.s3 import S3Front
from pipelines.local.contract.models import operation_model
from pipelines.local.contract.shapes import summary, validate, without_nulls
from pipelines.local.errors import ServiceError
from pipelines.local.hosting.model_process import InvokeResult, endpoint_log_group
from pipelines.local.hosting.model_server import CUSTOM_ATTRIBUTES
from pipelines.local.service.backend import MODELS, LocalSageMaker
from pipelines.local.storage.object_records import Readable
from pipelines.local.system.identity import ACCOUNT, arn

TARGET = re.compile(r"^(SageMaker|AWSEvents|Logs_20140328)\.([A-Za-z]+)$")
INVOCATIONS = re.compile(r"^/endpoints/([^/]+)/invocations$")
JSON_TYPE = "application/x-amz-json-1.1"
CHECK_RESPONSES = "LOCAL_SAGEMAKER_CHECK_RESPONSES"
REST_GROUPS = ("Lambda", "Scheduler")  # the REST APIs served, routed by their requests' paths
RUNTIME = "Runtime"  # SageMaker Runtime's InvokeEndpoint: answered by the model, not the service
MESSAGE_LIMIT = 2048  # the ModelError shape's Message and OriginalMessage
# The code a request that breaks its input shape is answered with, where the service's own is not
# ValidationException: CloudWatch Logs answers "1 validation error detected: ..." as
# InvalidParameterException (localstack's answers recorded from AWS, GetLogEvents' limit).
VALIDATION_CODES = {"Logs_20140328": "InvalidParameterException"}
log = logging.getLogger(__name__)


def json_reply(status: int, payload: Any, content_type: str = "application/json") -> Reply:
    return Reply(status, json.dumps(payload, default=str).encode(), content_type)


def error_reply(error: ServiceError, content_type: str = JSON_TYPE) -> Reply:
    reply = json_reply(error.status, {"__type": error.code, "message": error.message}, content_type)
    reply.headers["x-amzn-ErrorType"] = error.code
    return reply


def decode(body: bytes) -> dict[str, Any]:
    """A JSON object body; anything else (or nesting Python cannot parse) is a client error."""
    try:
        request = json.loads(body or b"{}")
    except (ValueError, RecursionError) as error:
        raise ServiceError("SerializationException", f"The request body is not valid JSON: {error}") from None
    if not isinstance(request, dict):
        raise ServiceError("SerializationException", "The request body must be a JSON object.")
    return request


class Dispatcher:
    """Decodes a request, checks it, calls the service operation it names, encodes the answer."""

    def __init__(self, backend: LocalSageMaker, check_responses: bool | None = None) -> None:
        self.backend = backend
        self.check_responses = (
            os.environ.get(CHECK_RESPONSES) == "1" if check_responses is None else check_responses
        )
        self.rest_routes = RestRoutes(
            [(group, MODELS[group], name) for group in REST_GROUPS for name in backend.served(group)]
            + [(RUNTIME, "sagemaker-runtime", "InvokeEndpoint")]
        )
        self.s3 = S3Front(backend, self.check_responses)

    def route(self, method: str, path: str, headers: Headers, body: bytes | Readable) -> Reply:
        """The API a request is for: S3 when its signature says so, JSON 1.1 at `/`, else the REST
        route its path (with its query string) takes. Only S3's body may still be unread."""
        target = path
        path, _, query = target.partition("?")
        if scoped_service(headers, target) == "s3":
            stream = io.BytesIO(body) if isinstance(body, bytes) else body
            return self.s3.route(method, path, query, headers, stream)
        assert isinstance(body, bytes), "only an S3 request's body is streamed"
        if method == "POST" and path == "/":
            return self.json_api(headers.get("X-Amz-Target", ""), body)
        found = self.rest_routes.match(method, path)
        if found is None:
            return error_reply(
                ServiceError("UnknownOperationException", f"no route {method} {path}", 404),
                "application/json",
            )
        route, uri = found
        try:
            content = body if has_payload(route.model) else decode(body) if body else {}
        except ServiceError as error:
            return error_reply(error, "application/json")
        request = request_members(route.model, uri, headers, content, query)
        if route.group == RUNTIME:
            return self.invoke(request)
        return self.call(route.group, route.model.name, request, "application/json")

    def json_api(self, target: str, body: bytes) -> Reply:
        """A JSON 1.1 call: `X-Amz-Target: <Service>.<Operation>` and a JSON object body."""
        match = TARGET.match(target)
        if not match or not self.backend.operation(match.group(1), match.group(2)):
            return error_reply(
                ServiceError(
                    "UnknownOperationException",
                    f"{target or 'request'} is not supported by the local SageMaker",
                )
            )
        try:
            request = decode(body)
        except ServiceError as error:
            return error_reply(error)
        return self.call(match.group(1), match.group(2), request, JSON_TYPE)

    def call(self, group: str, name: str, request: dict[str, Any], content_type: str) -> Reply:
        """Check the request, run the operation, check the response (when asked to)."""
        model = operation_model(MODELS[group], name)
        operation = self.backend.operation(group, name)
        assert operation is not None, f"{group}.{name} is routed but not served"
        errors = validate(model.input_shape, request)
        if errors:
            code = VALIDATION_CODES.get(group, "ValidationException")
            return error_reply(ServiceError(code, summary(errors)), content_type)
        try:
            result = operation(without_nulls(model.input_shape, request))
        except ServiceError as error:
            return error_reply(error, content_type)
        except Exception:  # a bug is the server's fault: never a client error
            log.exception("%s.%s failed", group, name)
            return error_reply(
                ServiceError("InternalFailure", f"{name} failed inside the local SageMaker.", 500),
                content_type,
            )
        # An operation may name the request id its answer carries (botocore's ResponseMetadata), as
        # an asynchronous Invoke answers with the id its invocation runs under.
        metadata = result.pop("ResponseMetadata", None) if isinstance(result, dict) else None
        if self.check_responses:
            violations = validate(model.output_shape, result) if model.output_shape else []
            if violations or (model.output_shape is None and result):
                message = f"The response of {name} breaks its output shape: {summary(violations)}"
                log.error("%s", message)
                return error_reply(ServiceError("InternalFailure", message, 500), content_type)
        status, headers, body = response_members(model, result)
        raw = isinstance(body, bytes)
        reply = Reply(status, body, content_type) if raw else json_reply(status, body, content_type)
        reply.headers.update(headers)
        if metadata:
            reply.headers["x-amzn-RequestId"] = metadata["RequestId"]
        return reply

    def invoke(self, request: dict[str, Any]) -> Reply:
        """InvokeEndpoint: a model's own 4xx or 5xx, or no answer in time, comes back as
        ModelError (424), as on SageMaker."""
        errors = validate(operation_model("sagemaker-runtime", "InvokeEndpoint").input_shape, request)
        if errors:
            return error_reply(ServiceError("ValidationError", summary(errors)), "application/json")
        try:
            result = self.backend.serving.invoke(request)
        except ServiceError as error:
            return error_reply(error, "application/json")
        if 200 <= result.status < 400:
            reply = Reply(result.status, result.body, result.content_type)
            reply.headers["x-Amzn-Invoked-Production-Variant"] = result.variant_name
            if result.custom_attributes:
                reply.headers[CUSTOM_ATTRIBUTES] = result.custom_attributes
            return reply
        reply = json_reply(424, self.model_error(request["EndpointName"], result))
        reply.headers["x-amzn-ErrorType"] = "ModelError"
        return reply

    def model_error(self, endpoint: str, result: InvokeResult) -> dict[str, Any]:
        """SageMaker's ModelError: its words, which point at the endpoint's CloudWatch log group, and
        the stream of the model server that answered (locally, its server.log: docs/contracts.md)."""
        region = self.backend.context.region
        group = endpoint_log_group(endpoint)
        console = f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        kind = "client" if 400 <= result.status < 500 else "server"
        opening = f"Received {kind} error ({result.status}) from primary with message "
        closing = f". See {console}#logEventViewer:group={group} in account {ACCOUNT} for more information."
        original = result.body.decode("utf-8", "replace")[:MESSAGE_LIMIT]
        quoted = original[: MESSAGE_LIMIT - len(opening) - len(closing) - 2]
        return {
            "__type": "ModelError",
            "message": f'{opening}"{quoted}"{closing}',
            "OriginalStatusCode": result.status,
            "OriginalMessage": original,
            "LogStreamArn": arn("logs", region, f"log-group:{group}:log-stream:{result.log_stream}"),
        }
