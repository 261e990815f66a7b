"""The REST APIs served (Lambda's, and the runtime's InvokeEndpoint), read from their service
models rather than written by hand.

Each operation's `http.requestUri` (e.g. `/2015-03-31/functions/{FunctionName}/code`) becomes a
route; a request's members are gathered from wherever the model puts them: the URI, headers, a
raw payload, or a JSON body.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote

from botocore.model import OperationModel

from pipelines.local.contract.models import operation_model

LABEL = re.compile(r"\{([A-Za-z0-9]+)\}")


class Headers(Protocol):
    def get(self, name: str, default: Any = None) -> Any: ...

    def items(self) -> Iterable[tuple[str, Any]]: ...


@dataclass(frozen=True)
class Route:
    group: str  # the backend's group, e.g. "Lambda"
    model: OperationModel
    path: re.Pattern[str]


class RestRoutes:
    def __init__(self, served: Iterable[tuple[str, str, str]]) -> None:
        """`served`: (group, botocore service, operation) of each operation routed."""
        self.routes = []
        for group, service, name in served:
            model = operation_model(service, name)
            self.routes.append(Route(group, model, _pattern(model.http["requestUri"])))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route `method path` takes, if any, and the members its URI binds."""
        for route in self.routes:
            found = route.path.fullmatch(path)
            if found and route.model.http["method"] == method:
                return route, {k: unquote(v) for k, v in found.groupdict().items()}
        return None


def request_members(
    model: OperationModel, uri: Mapping[str, str], headers: Headers, body: bytes | Mapping[str, Any],
    query: str = "",
) -> dict[str, Any]:
    """The request as one dict of members: `body` is the raw payload when the model names one
    (an empty payload is an empty value, not a missing one), else the decoded JSON body; `query`
    is the URI's query string."""
    shape = model.input_shape
    members: dict[str, Any] = {}
    payload = shape.serialization.get("payload")
    if payload is not None:
        members[payload] = body
    else:
        assert isinstance(body, Mapping)
        members.update(body)
    parameters = dict(parse_qsl(query, keep_blank_values=True))
    for name, member in shape.members.items():
        where, wire_name = member.serialization.get("location"), member.serialization.get("name")
        value = headers.get(wire_name, None) if where == "header" else None
        if where == "headers":  # a map of every header with the prefix (S3's x-amz-meta-)
            prefix = wire_name.lower()
            value = {k[len(prefix):]: v for k, v in headers.items() if k.lower().startswith(prefix)} or None
        if where == "querystring" and wire_name in parameters:
            value = parameters[wire_name]
            value = int(value) if member.type_name == "integer" and value.isdigit() else value
        if value is not None:
            members[name] = value
    members.update(uri)
    return members


def response_members(model: OperationModel, result: Mapping[str, Any]) -> tuple[int, dict[str, str], Any]:
    """The response as the model places its members: (status, headers, body), the body being the
    raw payload when the model names one, else the members left for a JSON body."""
    status = int(model.http.get("responseCode", 200))
    shape = model.output_shape
    headers: dict[str, str] = {}
    body = dict(result)
    for name, member in shape.members.items() if shape is not None else ():
        where = member.serialization.get("location")
        if name in body and where == "statusCode":
            status = int(body.pop(name))
        elif name in body and where == "header":
            headers[member.serialization["name"]] = str(body.pop(name))
    if status == 204:  # No Content (a Delete of Lambda's): whatever members are left, no body at all
        return status, headers, b""
    payload = shape.serialization.get("payload") if shape is not None else None
    return status, headers, body if payload is None else body.get(payload, b"")


def has_payload(model: OperationModel) -> bool:
    return model.input_shape.serialization.get("payload") is not None


def _pattern(request_uri: str) -> re.Pattern[str]:
    """`/a/{Name}/b` -> `/a/(?P<Name>[^/]+)/b/?` (the query part of the URI is not routed on)."""
    parts = LABEL.split(request_uri.split("?", 1)[0])  # literal, label, literal, ...
    return re.compile(
        "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts))
        + "/?"
    )
