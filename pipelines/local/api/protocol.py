"""Wire protocols: the JSON 1.1 APIs (SageMaker, EventBridge), the runtime's invocations, and
Lambda's REST subset.

Only decoding, dispatch and encoding live here; what an operation does is in the service layer.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from pipelines.local.errors import ServiceError
from pipelines.local.service.backend import LocalSageMaker

TARGET = re.compile(r"^(SageMaker|AWSEvents)\.([A-Za-z]+)$")
INVOCATIONS = re.compile(r"^/endpoints/([^/]+)/invocations$")
FUNCTIONS = re.compile(r"^/2015-03-31/functions/?([^/]*)(/code)?/?$")
JSON_TYPE = "application/x-amz-json-1.1"


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, payload: Any, content_type: str = "application/json") -> Reply:
    return Reply(status, json.dumps(payload, default=str).encode(), content_type)


def error_reply(error: ServiceError, content_type: str = JSON_TYPE) -> Reply:
    reply = json_reply(error.status, {"__type": error.code, "message": error.message}, content_type)
    reply.headers["x-amzn-ErrorType"] = error.code
    return reply


class Dispatcher:
    """Decodes a request, calls the service operation it names, encodes the answer."""

    def __init__(self, backend: LocalSageMaker) -> None:
        self.backend = backend

    def json_api(self, target: str, body: bytes) -> Reply:
        """A JSON 1.1 call: `X-Amz-Target: <Service>.<Operation>` and a JSON object body."""
        match = TARGET.match(target)
        operation = match and self.backend.operation(match.group(1), match.group(2))
        if not operation:
            return error_reply(
                ServiceError(
                    "UnknownOperationException",
                    f"{target or 'request'} is not supported by the local SageMaker",
                )
            )
        try:
            request = json.loads(body or b"{}")
            if not isinstance(request, dict):
                raise ValueError("request body must be a JSON object")
        except ValueError as error:
            return error_reply(ServiceError("SerializationException", str(error)))
        try:
            return json_reply(200, operation(request), JSON_TYPE)
        except ServiceError as error:
            return error_reply(error)
        except KeyError as error:
            return error_reply(ServiceError("ValidationException", f"missing field {error}"))

    def invoke(self, endpoint: str, body: bytes, content_type: str, accept: str) -> Reply:
        """InvokeEndpoint: a model's own 4xx comes back as ModelError (424), as on SageMaker."""
        try:
            result = self.backend.serving.invoke(endpoint, body, content_type, accept)
        except ServiceError as error:
            return error_reply(error, "application/json")
        if result.status < 400:
            reply = Reply(result.status, result.body, result.content_type)
            reply.headers["x-Amzn-Invoked-Production-Variant"] = result.variant_name
            return reply
        message = result.body.decode("utf-8", "replace")
        reply = json_reply(
            424,
            {
                "__type": "ModelError",
                "message": f"Received {'client' if result.status < 500 else 'server'} error "
                f'({result.status}) from model with message "{message}".',
                "OriginalStatusCode": result.status,
                "OriginalMessage": message,
            },
        )
        reply.headers["x-amzn-ErrorType"] = "ModelError"
        return reply

    def functions(self, method: str, path: str, body: bytes) -> Reply:
        match = FUNCTIONS.match(path)
        if not match:
            return error_reply(ServiceError("ResourceNotFoundException", f"no route {path}", 404))
        name, code = match.group(1), match.group(2)
        functions = self.backend.functions
        try:
            if method == "POST" and not name:
                return json_reply(201, functions.create(json.loads(body), time.time()))
            if method == "PUT" and code:
                zipped = base64.b64decode(json.loads(body).get("ZipFile", ""))
                return json_reply(200, functions.update_code(name, zipped))
            if method == "GET" and name:
                return json_reply(200, functions.get(name))
        except ServiceError as error:
            return error_reply(error, "application/json")
        return error_reply(
            ServiceError("ResourceNotFoundException", f"no route {method} {path}", 404)
        )
