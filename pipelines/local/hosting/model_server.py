"""The local inference container: SageMaker's serving contract over HTTP, without Docker.

Run as ``python -m pipelines.local.hosting.model_server --model-dir DIR (--port PORT | --socket NAME)``.
Like the SageMaker
scikit-learn serving image it imports ``$SAGEMAKER_PROGRAM`` (default ``inference.py``) from
``$SAGEMAKER_SUBMIT_DIRECTORY`` (default ``DIR/code``; one in S3 was unpacked to ``DIR/../code``, as
the serving toolkit downloads it to /opt/ml/code), calls ``model_fn(DIR)`` once, then answers
``GET /ping`` and ``POST /invocations`` with ``input_fn`` -> ``predict_fn`` -> ``output_fn``.

Design notes (why it looks like this):
- The model is loaded *before* the port is bound, so a model that fails to load can never answer
  ``/ping``; the process exits 1 with the error on stderr instead.
- ``LISTENING <port>`` is the first stdout line, so a parent can use ``--port 0`` and learn the port
  without racing another process for a "free" one.
- ``--socket NAME`` listens on a Unix socket of that name in the working directory instead, readable
  and writable by this user only (hosting starts every model server so): nothing else on the machine
  can reach it past the runtime's signed door, and it still serves from a network namespace of its
  own (a model with EnableNetworkIsolation).
- A threaded HTTP/1.1 server with keep-alive and no per-request logging keeps per-request overhead
  to a dict lookup and two socket writes; Nagle is disabled so those writes are not delayed.
- One worker process per core (``$SAGEMAKER_MODEL_SERVER_WORKERS`` overrides), forked after the
  model is loaded (prefork.py): a threaded Python server alone uses one core.
- SIGTERM stops accepting, waits for in-flight requests, then exits: the blue/green switch in
  hosting/endpoints.py relies on that to lose no request.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pkgutil
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, cast
from urllib.parse import urlsplit

from pipelines import REPO_ROOT
from pipelines.local.hosting import serving_toolkit as toolkit
from pipelines.local.hosting.prefork import ConnectionCounts, serve_forked, worker_count
from pipelines.local.system.json_http import JsonRequestHandler
from pipelines.local.system.signals import StopFlag, stop_on_signals

HOST = "127.0.0.1"
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # SageMaker real-time inference request limit
DEFAULT_CONTENT_TYPE = "application/json"
DEFAULT_PROGRAM = "inference.py"
IDLE_CONNECTION_SECONDS = 300  # reap keep-alive connections a client abandoned
DRAIN_SECONDS = 90.0  # longer than SageMaker's 60 s invocation timeout
ACCEPT_DEFER_SECONDS = 0.005  # a worker's GIL switch interval: long enough for an idle one to act
# InvokeEndpoint's CustomAttributes, as SageMaker forwards them to the container and back.
CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"


@dataclass
class ModelApp:
    """The loaded model and its handler chain, independent of HTTP so it is easy to test.

    predict_fn runs one call at a time per process, as in the SageMaker images (gunicorn workers
    finish one request before the next): handler code need not be thread-safe, and CPU-bound
    predictions no longer contend for the GIL in turns of 5 ms, which cost throughput and
    stretched every request's latency. Parsing and answering still overlap on the threads."""

    model: Any
    input_fn: Callable[[bytes | str, str], Any]
    predict_fn: Callable[[Any, Any], Any]
    output_fn: Callable[[Any, str], Any]
    transform_fn: Callable[[Any, bytes | str, str, str], Any] | None = None
    _predicting: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, model_dir: Path) -> ModelApp:
        """The handlers as the toolkit takes them (serving_toolkit.py): its defaults for those left
        out, or transform_fn alone."""
        module = import_program(model_dir)
        model_fn = getattr(module, "model_fn", None)
        if model_fn is None:
            raise RuntimeError(f"{module.__file__} defines no model_fn(model_dir)")
        transform_fn = toolkit.transform_of(module)
        return cls(
            model=model_fn(str(model_dir)),
            input_fn=getattr(module, "input_fn", None) or toolkit.default_input_fn,
            predict_fn=getattr(module, "predict_fn", None) or toolkit.default_predict_fn,
            output_fn=getattr(module, "output_fn", None) or toolkit.default_output_fn,
            transform_fn=transform_fn,
        )

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        content = toolkit.request_content(body, content_type)
        if self.transform_fn is not None:
            with self._predicting:  # it predicts too: one call at a time, as predict_fn
                result = self.transform_fn(self.model, content, content_type, accept)
            return normalise_output(result, accept)
        data = self.input_fn(content, content_type)
        with self._predicting:
            prediction = self.predict_fn(data, self.model)
        return normalise_output(self.output_fn(prediction, accept), accept)


def hide_own_code(own_root: Path = REPO_ROOT) -> None:
    """Leave the handler only what the image's serving stack leaves it. There the toolkit sits in
    site-packages under names of its own; here this server is the project's code, which
    PYTHONPATH names to start it. Once loaded, the project's folder leaves sys.path and
    PYTHONPATH (so do the working directory `-m` put first), and its packages leave sys.modules
    (this server keeps the modules it holds): an inference.py that imports the project's `steps`
    or `pipelines` fails as on SageMaker, and one that ships a package so named gets its own."""
    launched_from = os.getcwd()
    sys.path[:] = [entry for entry in sys.path if entry not in (str(own_root), launched_from, "")]
    kept = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep)
            if entry and entry != str(own_root)]
    if kept:
        os.environ["PYTHONPATH"] = os.pathsep.join(kept)
    else:
        os.environ.pop("PYTHONPATH", None)
    own = {module.name for module in pkgutil.iter_modules([str(own_root)])}
    for name in [name for name in sys.modules if name.partition(".")[0] in own]:
        del sys.modules[name]


def code_dir(model_dir: Path, submit: str) -> Path:
    """Where the handler is: SAGEMAKER_SUBMIT_DIRECTORY when it names a folder, else the model's
    `code/`. One in S3 the serving toolkit downloads to /opt/ml/code, beside /opt/ml/model, and leaves
    the variable as it was (the local hosting unpacks it there before the server starts)."""
    if submit.startswith("s3://"):
        return model_dir.parent / "code"
    return Path(submit) if submit else model_dir / "code"


def import_program(model_dir: Path) -> ModuleType:
    """Import the handler module by file path, with its directory importable for its siblings."""
    program = os.environ.get("SAGEMAKER_PROGRAM") or DEFAULT_PROGRAM
    if not program.endswith(".py"):
        program += ".py"
    submit_dir = code_dir(model_dir, os.environ.get("SAGEMAKER_SUBMIT_DIRECTORY", ""))
    path = submit_dir / program
    if not path.is_file():
        raise FileNotFoundError(f"handler module {path} not found")
    name = Path(program).stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    sys.path.insert(0, str(submit_dir))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # so pickles and dataclasses referring to it resolve
    spec.loader.exec_module(module)
    return module


def normalise_output(result: Any, accept: str) -> tuple[bytes, str]:
    """output_fn (or transform_fn) may return (body, content_type), a response object (Flask's:
    its status, data and mimetype) or just a body; the body may be str or bytes."""
    if hasattr(result, "status_code") and hasattr(result, "get_data"):
        result = toolkit.response_parts(result)
    body, content_type = result[:2] if isinstance(result, tuple) else (result, accept)
    if isinstance(body, str):
        body = body.encode("utf-8")
    if not isinstance(body, (bytes, bytearray)):
        raise TypeError(f"output_fn returned a {type(body).__name__}, expected bytes or str")
    return bytes(body), str(content_type or accept)


class InFlight:
    """Counts requests being handled so a graceful stop can wait for them."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()
        self.stopping = False

    def __enter__(self) -> None:
        with self._idle:
            self._count += 1

    def __exit__(self, *exc: object) -> None:
        with self._idle:
            self._count -= 1
            if self._count == 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._count == 0, timeout)

    def busy(self) -> int:
        with self._idle:
            return self._count


class Handler(JsonRequestHandler):
    server_version = "LocalSageMakerModelServer/1.0"
    timeout = IDLE_CONNECTION_SECONDS
    max_body_bytes = MAX_PAYLOAD_BYTES

    @property
    def model_server(self) -> ModelHTTPServer:
        return cast(ModelHTTPServer, self.server)

    def log_error(self, format: str, *args: Any) -> None:
        """Malformed requests are worth a line; an idle keep-alive connection timing out is not."""
        if not format.startswith("Request timed out"):
            sys.stderr.write(f"model server: {format % args}\n")

    def do_GET(self) -> None:
        with self.model_server.in_flight:
            path = urlsplit(self.path).path
            if path == "/ping":
                self._send(200, b'{"status": "healthy"}', DEFAULT_CONTENT_TYPE)
            elif path == "/invocations":
                self._send_error(405, "use POST for /invocations")
            else:
                self._send_error(404, f"no route for GET {path}")

    def do_POST(self) -> None:
        with self.model_server.in_flight:
            body = self.read_body()
            if body is None:
                return
            path = urlsplit(self.path).path
            if path == "/invocations":
                self._invoke(body)
            elif path == "/ping":
                self._send_error(405, "use GET for /ping")
            else:
                self._send_error(404, f"no route for POST {path}")

    def _invoke(self, body: bytes) -> None:
        content_type = toolkit.request_content_type(self.headers)
        accept = toolkit.response_accept(self.headers)
        try:
            payload, payload_type = self.model_server.app.invoke(body, content_type, accept)
        except Exception as exc:
            self._send_exception(exc)
            return
        self._send(200, payload, payload_type)

    def _send_exception(self, exc: Exception) -> None:
        answer = toolkit.answer_for(exc)
        if answer is not None:
            self._send(*answer)
            return
        traceback.print_exc(file=sys.stderr)
        attributes = self.headers.get(CUSTOM_ATTRIBUTES)
        if attributes:  # the handlers never see them (as in the scikit-learn image); the log does
            sys.stderr.write(f"model server: the failed request's CustomAttributes: {attributes}\n")
        self._send_error(500, f"internal error: {type(exc).__name__}: {exc}")

    def _send_error(self, status: int, message: str, close: bool = False) -> None:
        self._send(status, self.error_body(status, message), DEFAULT_CONTENT_TYPE, close)

    def _send(self, status: int, body: bytes, content_type: str, close: bool = False) -> None:
        """Connections close once the server is stopping, so clients move to the new version."""
        self.send_json(status, body, content_type,
                       close=close or self.model_server.in_flight.stopping)


class UnixHandler(Handler):
    disable_nagle_algorithm = False  # a TCP option: a Unix socket refuses it


class ModelHTTPServer(ThreadingHTTPServer):
    """Thread per connection; daemon threads and no join on close, so idle keep-alive
    connections never hold up shutdown (in-flight requests are awaited via InFlight instead)."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    handler_class: type[Handler] = Handler

    def __init__(self, address: tuple[str, int] | str, app: ModelApp) -> None:
        super().__init__(address, self.handler_class)  # type: ignore[arg-type]
        self.app = app
        self.in_flight = InFlight()
        self.connections: ConnectionCounts | None = None  # set in each pre-forked worker

    def get_request(self) -> tuple[Any, Any]:
        """Accept, after a short pause when this worker holds more connections than another, so
        that worker takes the connection if it can (BlockingIOError here: it did)."""
        if self.connections is not None and self.connections.busier_than_least():
            time.sleep(ACCEPT_DEFER_SECONDS)
        request, address = super().get_request()
        if self.connections is not None:
            self.connections.opened()
        return request, address

    def close_request(self, request: Any) -> None:
        super().close_request(request)
        if self.connections is not None:
            self.connections.closed()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client dropping a keep-alive connection is routine, not worth a traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class UnixModelHTTPServer(ModelHTTPServer):
    """The same server on a Unix socket (a name in the working directory), mode 0600."""

    address_family = socket.AF_UNIX
    handler_class = UnixHandler

    def server_bind(self) -> None:
        self.socket.bind(self.server_address)
        os.chmod(cast(str, self.server_address), 0o600)
        self.server_name, self.server_port = "localhost", 0


def serve_until(server: ModelHTTPServer, stop: StopFlag,
                drain_seconds: float = DRAIN_SECONDS) -> None:
    """Serve on a worker thread until ``stop`` is set, then stop accepting and wait for in-flight
    work.

    serve_forever runs off the main thread because shutdown() called from a signal handler on the
    thread running serve_forever would deadlock."""
    worker = threading.Thread(target=server.serve_forever, name="accept", daemon=True)
    worker.start()
    while not stop.wait(1.0) and worker.is_alive():
        pass
    server.in_flight.stopping = True
    server.shutdown()
    sys.stderr.write(f"model server: stopping, {server.in_flight.busy()} request(s) in flight\n")
    if not server.in_flight.wait_idle(drain_seconds):
        sys.stderr.write("model server: in-flight requests did not finish; exiting anyway\n")
    server.server_close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model-dir", type=Path, required=True)
    listen = parser.add_mutually_exclusive_group()
    listen.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    listen.add_argument("--socket", help="listen on a Unix socket of this name in the working directory")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        workers = worker_count()
    except ValueError as exc:
        sys.stderr.write(f"model server: {exc}\n")
        return 1
    hide_own_code()
    try:
        app = ModelApp.load(args.model_dir)
    except BaseException as exc:
        traceback.print_exc(file=sys.stderr)
        sys.stderr.write(f"model server: failed to load the model from {args.model_dir}: {exc}\n")
        return 1
    stop = stop_on_signals()  # before the port is announced: a stop may follow it at once
    if args.socket:
        server: ModelHTTPServer = UnixModelHTTPServer(args.socket, app)
        print(f"LISTENING {args.socket}", flush=True)
    else:
        server = ModelHTTPServer((HOST, args.port), app)
        print(f"LISTENING {server.server_address[1]}", flush=True)
    sys.stderr.write(f"model server: {workers} worker{'s' if workers > 1 else ''}\n")
    if workers == 1:
        serve_until(server, stop)
        return 0
    # A worker that loses the race for a connection must get EAGAIN, not block in accept() where
    # it could never notice a stop request.
    server.socket.setblocking(False)
    connections = ConnectionCounts(workers)

    def serve_worker(slot: int, stop: StopFlag) -> None:
        connections.claim(slot)
        server.connections = connections
        serve_until(server, stop)

    try:
        return serve_forked(serve_worker, workers, stop)
    finally:
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())
