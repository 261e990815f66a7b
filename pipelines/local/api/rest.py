"""Routes of a REST-JSON API (Lambda's), read from the service model rather than written by hand.

Each served operation's `http.requestUri` (e.g. `/2015-03-31/functions/{FunctionName}/code`) becomes
a pattern; a request's method and path name the operation and give the members bound in the URI.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from pipelines.local.contract.models import operation_model

LABEL = re.compile(r"\{([A-Za-z0-9]+)\}")


@dataclass(frozen=True)
class Route:
    operation: str
    method: str
    path: re.Pattern[str]


class RestRoutes:
    def __init__(self, service: str, operations: Iterable[str]) -> None:
        self.routes = []
        for name in operations:
            http = operation_model(service, name).http
            self.routes.append(Route(name, http["method"], _pattern(http["requestUri"])))

    def match(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        """(operation, URI members) of the route `method path` takes, if any."""
        for route in self.routes:
            found = route.path.fullmatch(path)
            if found and route.method == method:
                return route.operation, {k: unquote(v) for k, v in found.groupdict().items()}
        return None


def _pattern(request_uri: str) -> re.Pattern[str]:
    """`/a/{Name}/b` -> `/a/(?P<Name>[^/]+)/b/?` (the query part of the URI is not routed on)."""
    parts = LABEL.split(request_uri.split("?", 1)[0])  # literal, label, literal, ...
    return re.compile(
        "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts))
        + "/?"
    )
