"""The model server's app (pipelines/local/hosting/model_server.py's ModelApp: model_fn once, then
the handlers as the serving toolkit calls them, one prediction at a time per process) as a WSGI
application, so the benchmark can run the very same app under gunicorn beside the hand-written
pre-fork server.

    MODEL_DIR=/path/to/model gunicorn -k gthread --preload wsgi_app:application

Answers as the model server does: /ping 200, /invocations 200 or the status of a response the
handler returned, 500 for any exception.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pipelines.local.hosting import serving_toolkit as toolkit
from pipelines.local.hosting.model_server import DEFAULT_CONTENT_TYPE, ModelApp

StartResponse = Callable[..., Any]
APP = ModelApp.load(Path(os.environ["MODEL_DIR"]))


def _answer(start_response: StartResponse, status: int, body: bytes, content_type: str) -> list[bytes]:
    reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}
    start_response(
        f"{status} {reason.get(status, 'Error')}",
        [("Content-Type", content_type), ("Content-Length", str(len(body)))],
    )
    return [body]


def _error(start_response: StartResponse, status: int, message: str) -> list[bytes]:
    return _answer(start_response, status, json.dumps({"error": message}).encode(), DEFAULT_CONTENT_TYPE)


def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
    if path == "/ping":
        if method != "GET":
            return _error(start_response, 405, "use GET for /ping")
        return _answer(start_response, 200, b'{"status": "healthy"}', DEFAULT_CONTENT_TYPE)
    if path != "/invocations":
        return _error(start_response, 404, f"no route for {method} {path}")
    if method != "POST":
        return _error(start_response, 405, "use POST for /invocations")
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    accept = environ.get("HTTP_ACCEPT") or DEFAULT_CONTENT_TYPE
    if accept.strip() == "*/*":
        accept = DEFAULT_CONTENT_TYPE
    try:
        payload, payload_type = APP.invoke(body, environ.get("CONTENT_TYPE") or DEFAULT_CONTENT_TYPE, accept)
    except Exception as exc:
        answer = toolkit.answer_for(exc)
        if answer is not None:
            return _answer(start_response, *answer)
        traceback.print_exc(file=sys.stderr)
        return _error(start_response, 500, f"internal error: {type(exc).__name__}: {exc}")
    return _answer(start_response, 200, payload, payload_type)
