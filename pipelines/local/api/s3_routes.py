"""Which S3 operation a path-style request is, read from botocore's S3 model.

Every S3 operation shares a handful of paths (`/`, `/{Bucket}`, `/{Bucket}/{Key+}`); the method, the
sub-resource in the query (`?list-type=2`, `?tagging`...) and the query parameters and headers an
operation requires tell them apart. Knowing all of them, the server tells GetObject from
GetObjectTagging, and refuses by name an operation it does not serve.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

from botocore.model import OperationModel

from pipelines.local.api.rest import Headers
from pipelines.local.contract.models import service_model

IGNORED_QUERY = "x-id"  # the operation's name, which some SDKs add and others do not


@dataclass(frozen=True)
class S3Route:
    model: OperationModel
    level: str  # "service", "bucket" or "object"
    query: dict[str, str]  # the sub-resource: parameters the URI names, with their value if fixed
    required_query: tuple[str, ...]
    required_headers: tuple[str, ...]

    def score(self, method: str, level: str, query: dict[str, list[str]], headers: Headers) -> int | None:
        """How much of the request this operation accounts for; None when it cannot be it."""
        if method != self.model.http["method"] or level != self.level:
            return None
        fixed = self.query.items()
        if any(name not in query or (value and value not in query[name]) for name, value in fixed):
            return None
        if any(name not in query for name in self.required_query):
            return None
        if any(headers.get(name) is None for name in self.required_headers):
            return None
        return len(self.query) + len(self.required_query) + len(self.required_headers)


def _route(model: OperationModel) -> S3Route:
    path, _, literal = model.http["requestUri"].partition("?")
    level = "service" if path == "/" else "object" if "{Key+}" in path else "bucket"
    query = {name: values[0] for name, values in parse_qs(literal, keep_blank_values=True).items()}
    query.pop(IGNORED_QUERY, None)
    shape = model.input_shape
    required = [shape.members[name].serialization for name in shape.required_members]
    return S3Route(
        model, level, query,
        tuple(where["name"] for where in required if where.get("location") == "querystring"),
        tuple(where["name"] for where in required if where.get("location") == "header"),
    )


def split_path(path: str) -> tuple[str, str, str]:
    """(level, bucket, key) of a path-style request path, decoded."""
    bucket, _, key = path.lstrip("/").partition("/")
    level = "object" if key else "bucket" if bucket else "service"
    return level, unquote(bucket), unquote(key)


class S3Routes:
    def __init__(self) -> None:
        model = service_model("s3")
        self.routes = [_route(model.operation_model(name)) for name in model.operation_names]

    def match(self, method: str, level: str, query: str, headers: Headers) -> OperationModel | None:
        """The operation the request is: the one that accounts for most of it; of equals (`GET /` is
        ListBuckets and S3 Express's ListDirectoryBuckets) the one with the plainest name."""
        parameters = parse_qs(query, keep_blank_values=True)
        scored = [(route.score(method, level, parameters, headers), route) for route in self.routes]
        candidates = [(score, -len(route.model.name), route) for score, route in scored if score is not None]
        return max(candidates, key=lambda found: found[:2])[2].model if candidates else None
