"""The local SageMaker server process: HTTP on 127.0.0.1, one state directory, one at a time.

`python -m pipelines.local.api.server --state-dir DIR [--port N]` binds, takes the state directory's
lock (a second server on the same state exits at once), makes the state's credentials on first start,
recovers what a crash left behind, writes `server.json` (pid, port, url, region, the digest of its
source) for clients to find it, and serves until SIGTERM. Every request passes the door (auth.py)
before an operation sees it.
On SIGTERM new connections are refused, requests in progress get `DRAIN_SECONDS` to finish, and
anything answered while the service is being torn down is a 503, which SDKs retry.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import signal
import sys
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import IO, cast

from pipelines.local.api import s3
from pipelines.local.api.auth import Claim, Door, Refusal, scoped_service
from pipelines.local.api.protocol import (
    INVOCATIONS,
    JSON_TYPE,
    TARGET,
    Dispatcher,
    error_reply,
    json_reply,
)
from pipelines.local.api.reply import Reply
from pipelines.local.api.s3_body import RequestBody
from pipelines.local.errors import ServiceError
from pipelines.local.layout import StateLayout
from pipelines.local.service.backend import LocalSageMaker
from pipelines.local.storage import credentials
from pipelines.local.system.bounded_http import BoundedHTTPServer, OneRequestHandler
from pipelines.local.system.json_http import JsonRequestHandler
from pipelines.local.system.signals import stop_on_signals
from pipelines.local.system.source import source_digest

API_BODY_LIMIT = 64 * 1024 * 1024  # pipeline definitions and function code
INVOKE_BODY_LIMIT = 6 * 1024 * 1024  # SageMaker's real-time inference request limit
DRAIN_SECONDS = 5.0
FUNCTIONS_PREFIX = "/2015-03-31/functions"
SCHEDULES_PREFIX = "/schedules"
SIGNING_NAMES = {"SageMaker": "sagemaker", "AWSEvents": "events", "Logs_20140328": "logs"}
log = logging.getLogger("local-sagemaker")


@dataclass(frozen=True)
class Route:
    """What the path and headers say about a request before its body is read."""

    service: str | None  # the SigV4 signing name of the API it belongs to; None: no such route
    json_protocol: bool  # SageMaker's, EventBridge's and CloudWatch Logs' JSON 1.1 (else the REST APIs)
    s3: bool = False  # S3's REST-XML: its errors are XML, in its own codes

    @property
    def content_type(self) -> str:
        return JSON_TYPE if self.json_protocol else "application/json"

    def streams(self, method: str) -> bool:
        """S3's PUTs carry objects of up to 5 GB: their bodies are read as the operation stores them."""
        return self.s3 and method == "PUT"


S3_ROUTE = Route("s3", False, True)


def route_of(method: str, target: str, headers: Message) -> Route:
    """The API a request (`target`: its path and query) is for. S3's paths are anyone's
    (`/endpoints/...` could be a bucket), so a request is S3's when its signature (in its headers,
    or a presigned URL's query) is scoped to s3, or when, unsigned, it reads, writes or deletes a
    path no other API has: S3 then refuses it in its own words."""
    path = target.split("?", 1)[0]
    signed_for = scoped_service(headers, target)
    if signed_for == "s3":
        return S3_ROUTE
    if method == "POST" and path == "/":
        match = TARGET.match(headers.get("X-Amz-Target", ""))
        return Route(SIGNING_NAMES[match.group(1)] if match else None, True)
    if method == "POST" and INVOCATIONS.match(path):
        return Route("sagemaker", False)  # the runtime signs as "sagemaker"
    if path.startswith(FUNCTIONS_PREFIX):
        return Route("lambda", False)
    if path == SCHEDULES_PREFIX or path.startswith(f"{SCHEDULES_PREFIX}/"):
        return Route("scheduler", False)
    if signed_for is None and method in ("GET", "HEAD", "PUT", "DELETE"):
        return S3_ROUTE
    return Route(None, False)


def unavailable() -> ServiceError:
    return ServiceError("ServiceUnavailable", "the local SageMaker is shutting down; retry", 503)


class Handler(OneRequestHandler, JsonRequestHandler):
    require_length = False  # GETs and empty POSTs
    continue_expected = False  # the client waits for "100 Continue" before it sends a streamed body

    @property
    def local(self) -> LocalServer:
        return cast(LocalServer, self.server)

    def handle_expect_100(self) -> bool:
        """A streamed body's client is told to go on once the operation reads it (s3_body.py)."""
        if route_of(self.command, self.path, self.headers).streams(self.command):
            self.continue_expected = True
            return True
        return super().handle_expect_100()

    def _go_on(self) -> None:
        if self.continue_expected:
            self.send_response_only(100)
            self.end_headers()

    def body_limit(self) -> int:
        """Invocations have SageMaker's 6 MB limit; API calls may carry larger documents."""
        return INVOKE_BODY_LIMIT if INVOCATIONS.match(self.path.split("?", 1)[0]) else API_BODY_LIMIT

    def error_body(self, status: int, message: str) -> bytes:
        """AWS's error shape (`__type`, `message`), which boto3 turns into a ClientError. An
        invocation over the limit is SageMaker Runtime's bare 413, which names no error type (botocore
        reads its code as "413"), in its words."""
        if status == 413 and self.body_limit() == INVOKE_BODY_LIMIT:
            exceeded = f"HTTP content length exceeded {INVOKE_BODY_LIMIT} bytes."
            return json.dumps({"message": exceeded}).encode()
        code = "PayloadTooLarge" if status == 413 else "ValidationError"
        return json.dumps({"__type": code, "message": message, "error": message}).encode()

    def send_json(
        self, status: int, body: bytes | Iterable[bytes], content_type: str = "application/json",
        headers: dict[str, str] | None = None, close: bool = False, length: int | None = None,
    ) -> None:
        """Every answer, refusals included, carries a request id as AWS's do; S3's carry S3's own
        two (s3.py)."""
        headers = dict(headers or {})
        if s3.REQUEST_ID not in headers:
            headers = {"x-amzn-RequestId": str(uuid.uuid4()), **headers}
        super().send_json(status, body, content_type, headers, close, length)

    def _send(self, reply: Reply, close: bool = False) -> None:
        close = close or self.local.draining
        self.send_json(reply.status, reply.body, reply.content_type, reply.headers, close, reply.length)

    def _error(self, error: ServiceError, route: Route) -> Reply:
        """An error in the shape of the API the request is for."""
        if route.s3:
            return s3.error_reply(error, self.command == "HEAD")
        return error_reply(error, route.content_type)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._health()
            return
        self._route("GET")

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _health(self) -> None:
        """Unsigned, for clients that have not read the credentials yet; still only from loopback."""
        try:
            self.local.door.check_origin(self.headers)
        except Refusal as refusal:
            self._refuse(refusal, Route(None, False))
            return
        if self.local.draining:
            self._send(error_reply(unavailable(), "application/json"))
            return
        self._send(json_reply(200, {"status": "ok", "pid": os.getpid()}))

    def _refuse(self, refusal: Refusal, route: Route, close: bool = True) -> None:
        if route.s3:
            error = ServiceError(refusal.s3_code, refusal.s3_message, refusal.s3_status(), refusal.s3_fields,
                                 refusal.s3_headers)
        else:
            error = ServiceError(refusal.code, refusal.message, refusal.status(route.json_protocol))
        self._send(self._error(error, route), close)

    def _route(self, method: str) -> None:
        route = route_of(method, self.path, self.headers)
        if self.local.draining:
            self._send(self._error(unavailable(), route))
            return
        try:
            # The body is unread: the connection closes after the refusal.
            claim = self.local.door.check_headers(self.headers, route.service, self.path)
        except Refusal as refusal:
            self._refuse(refusal, route)
            return
        if route.streams(method):
            self._stream(method, route, claim)
            return
        try:
            body = self.read_body()
            if body is None:
                return
            self.local.door.check_signature(claim, method, self.path, self.headers, body)
        except Refusal as refusal:
            self._refuse(refusal, route, close=False)
            return
        except (ConnectionError, TimeoutError):
            self.close_connection = True
            return
        self._send(self._answer(method, self.path, body, route))

    def _stream(self, method: str, route: Route, claim: Claim) -> None:
        """Signature and framing judged on the headers, then the operation reads the body as it
        stores it; a connection whose body was not read to its end is closed."""
        try:
            self.local.door.check_s3_headers_signature(claim, method, self.path, self.headers)
            body = RequestBody.of(self.headers, self.rfile, self._go_on)
        except Refusal as refusal:
            self._refuse(refusal, route)
            return
        except ServiceError as error:
            self._send(self._error(error, route), close=True)
            return
        reply = self._answer(method, self.path, body, route)
        self._send(reply, close=not body.complete)

    def _answer(self, method: str, path: str, body: bytes | RequestBody, route: Route) -> Reply:
        try:
            reply = self._dispatch(method, path, body)
        except Exception as error:  # a bug must not take the server down
            log.exception("unexpected error on %s %s", method, self.path)
            reply = self._error(ServiceError("InternalFailure", f"internal error: {error}", 500), route)
        if reply.status >= 400 and self.local.stopping_service:
            # Whatever failed while endpoints and runners were being stopped was the shutdown,
            # not the request: say so in a way that SDKs retry.
            return self._error(unavailable(), route)
        return reply

    def _dispatch(self, method: str, path: str, body: bytes | RequestBody) -> Reply:
        return self.local.protocol.route(method, path, self.headers, body)


class LocalServer(BoundedHTTPServer):
    # Set once the service exists: the service needs this server's URL, the door its port.
    protocol: Dispatcher
    door: Door
    stopping_service = False

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), Handler)


def _take_lock(layout: StateLayout) -> IO[str] | None:
    """The state's lock, with this pid in it for `local down`; None if another server holds it."""
    layout.create_root()
    handle = layout.server_lock.open("a+")  # not "w": that would erase the holder's pid
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def serve(state_dir: Path, port: int, region: str) -> int:
    os.umask(0o077)  # everything the server and its children write is the owner's alone
    layout = StateLayout(state_dir)
    lock = _take_lock(layout)
    if lock is None:
        print(f"another local SageMaker server owns {state_dir}", file=sys.stderr)
        return 3
    server = LocalServer(port)
    port = server.server_address[1]
    url = f"http://127.0.0.1:{port}"
    server.door = Door(credentials.load_or_create(layout.credentials), port, region)
    backend = LocalSageMaker(state_dir, region, url)
    server.protocol = Dispatcher(backend)
    # Endpoints are back before clients can find the server, so no invocation races a restore.
    backend.start()
    info = {"pid": os.getpid(), "port": port, "url": url, "region": region, "source": source_digest()}
    tmp = layout.server_info.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, layout.server_info)
    stop = stop_on_signals((signal.SIGTERM,))
    log.info("local SageMaker serving %s from %s", url, state_dir)
    # The connection loop runs off the main thread, which only waits for SIGTERM: a signal handler
    # must not start a thread or take a lock (see signals.py).
    accept = threading.Thread(target=server.serve_forever, name="connections", daemon=True)
    accept.start()
    try:
        while not stop.wait(1.0) and accept.is_alive():
            pass
    finally:
        server.stop_accepting()
        if not server.wait_idle(DRAIN_SECONDS):
            log.warning("requests still running after %g s; stopping the service under them", DRAIN_SECONDS)
        server.stopping_service = True
        backend.shutdown()
        server.shutdown()
        accept.join(5.0)
        server.server_close()
        layout.server_info.unlink(missing_ok=True)
        lock.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--region",
        default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
    )
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return serve(args.state_dir.resolve(), args.port, args.region)
    except (OSError, ServiceError) as error:  # a read-only or full state directory, a busy port
        print(f"cannot start the local SageMaker server in {args.state_dir}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
