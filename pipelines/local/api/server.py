"""The local SageMaker server process: HTTP on 127.0.0.1, one state directory, one at a time.

`python -m pipelines.local.api.server --state-dir DIR [--port N]` binds, takes the state directory's
lock (a second server on the same state exits at once), recovers what a crash left behind, writes
`server.json` (pid, port, url) for clients to find it, and serves until SIGTERM.
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
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import IO

from pipelines.local.api.protocol import INVOCATIONS, Dispatcher, Reply, error_reply, json_reply
from pipelines.local.errors import ServiceError
from pipelines.local.layout import StateLayout
from pipelines.local.service.backend import LocalSageMaker
from pipelines.local.system.json_http import JsonRequestHandler
from pipelines.local.system.signals import stop_on_signals

API_BODY_LIMIT = 64 * 1024 * 1024  # pipeline definitions and function code
INVOKE_BODY_LIMIT = 6 * 1024 * 1024  # SageMaker's real-time inference request limit
log = logging.getLogger("local-sagemaker")


class Handler(JsonRequestHandler):
    server: LocalServer
    require_length = False  # GETs and empty POSTs

    def body_limit(self) -> int:
        """Invocations have SageMaker's 6 MB limit; API calls may carry larger documents."""
        return INVOKE_BODY_LIMIT if INVOCATIONS.match(self.path.split("?", 1)[0]) else API_BODY_LIMIT

    def error_body(self, status: int, message: str) -> bytes:
        """AWS's error shape (`__type`, `message`), which boto3 turns into a ClientError."""
        code = "PayloadTooLarge" if status == 413 else "ValidationError"
        return json.dumps({"__type": code, "message": message, "error": message}).encode()

    def send_json(
        self, status: int, body: bytes, content_type: str = "application/json",
        headers: dict[str, str] | None = None, close: bool = False,
    ) -> None:
        """Every answer, refusals included, carries a request id as AWS's do."""
        headers = {"x-amzn-RequestId": str(uuid.uuid4()), **(headers or {})}
        super().send_json(status, body, content_type, headers, close)

    def _send(self, reply: Reply) -> None:
        self.send_json(reply.status, reply.body, reply.content_type, reply.headers)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(json_reply(200, {"status": "ok", "pid": os.getpid()}))
            return
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def _route(self, method: str) -> None:
        try:
            body = self.read_body()
            if body is None:
                return
            self._send(self._dispatch(method, body))
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as error:  # a bug must not take the server down
            log.exception("unexpected error on %s %s", method, self.path)
            self._send(
                error_reply(ServiceError("InternalFailure", f"internal error: {error}", 500))
            )

    def _dispatch(self, method: str, body: bytes) -> Reply:
        return self.server.protocol.route(method, self.path.split("?", 1)[0], self.headers, body)


# The accept backlog's default of 5 resets connections when many clients connect at once.
class LocalServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    protocol: Dispatcher  # set once the service exists: it needs this server's URL

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), Handler)


def _take_lock(layout: StateLayout) -> IO[str] | None:
    layout.root.mkdir(parents=True, exist_ok=True)
    handle = layout.server_lock.open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def serve(state_dir: Path, port: int, region: str) -> int:
    layout = StateLayout(state_dir)
    lock = _take_lock(layout)
    if lock is None:
        print(f"another local SageMaker server owns {state_dir}", file=sys.stderr)
        return 3
    server = LocalServer(port)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    backend = LocalSageMaker(state_dir, region, url)
    server.protocol = Dispatcher(backend)
    # Endpoints are back before clients can find the server, so no invocation races a restore.
    backend.start()
    info = {"pid": os.getpid(), "port": server.server_address[1], "url": url}
    tmp = layout.server_info.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, layout.server_info)
    stop = stop_on_signals((signal.SIGTERM,))
    log.info("local SageMaker serving %s from %s", url, state_dir)
    # serve_forever runs off the main thread, which only waits for SIGTERM: shutdown() must not be
    # called from the thread serving, and a signal handler must not start a thread (see signals.py).
    accept = threading.Thread(target=server.serve_forever, args=(0.2,), name="accept", daemon=True)
    accept.start()
    try:
        while not stop.wait(1.0) and accept.is_alive():
            pass
    finally:
        server.shutdown()
        backend.shutdown()
        server.server_close()
        layout.server_info.unlink(missing_ok=True)
        lock.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
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
