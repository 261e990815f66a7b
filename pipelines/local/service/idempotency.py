"""Requests that carry an idempotency token act once, whatever the retries.

An SDK fills the token in (botocore generates one for a member the model marks `idempotencyToken`)
and sends it again when it retries a call whose reply was lost, so the retry must answer what the
first call answered instead of acting again: a second pipeline execution, a second model version.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable

from pipelines.local.errors import invalid
from pipelines.local.service.context import ServiceContext
from pipelines.local.storage.database import Body

COMPLETED_REQUESTS = "completed_request"  # what a token's first call answered


def once(
    context: ServiceContext, member: str, operation: str, request: Body, act: Callable[[], Body]
) -> Body:
    """`act()`'s answer to the first call with the token in `request[member]`, the same answer to
    every call after it; a call with no token just acts. The token of one request given with other
    members is refused: it names another request."""
    token = request.get(member)
    if token is None:
        return act()
    given = {k: v for k, v in request.items() if k != member}
    digest = hashlib.sha256(json.dumps(given, sort_keys=True).encode()).hexdigest()
    key = f"{operation}#{token}"
    with context.lock:
        completed = context.database.get(COMPLETED_REQUESTS, key)
        if completed is not None:
            if completed["Digest"] != digest:
                raise invalid(f"{member} {token} was already used by another {operation} request.")
            return dict(completed["Response"])
        response = act()
        context.database.put(COMPLETED_REQUESTS, key, {"Digest": digest, "Response": response}, time.time())
        return response
