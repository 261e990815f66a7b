"""The runtime's side of the hop to a model server: pooled keep-alive HTTP/1.1 over a Unix socket.

Every model server hosting starts listens on a Unix socket in its variant's directory, mode 0600, not
on a loopback port: nothing else on the machine reaches a model except through the runtime's signed
door, and a server in a network namespace of its own (EnableNetworkIsolation) is still reachable.

Why not ``http.client``: every invocation crosses this hop, and ``http.client`` validates and
encodes each header one call at a time and parses every response's headers with the ``email``
package, about 160 us of CPU per exchange against 40 us for the exchange below: a third of the
runtime server's time per small request. The peer is always our model server
(pipelines/local/hosting/model_server.py), which answers every request with a Content-Length, so the
client only needs to understand that much of HTTP/1.1; anything else is refused as a bad response.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from pipelines.local.hosting.model_server import CUSTOM_ATTRIBUTES, HOST

MAX_IDLE_CONNECTIONS = 128
MAX_HEADER_LINE = 65536
MAX_HEADERS = 100
ONE_SEND_LIMIT = 64 * 1024  # smaller bodies go out with their head in one send()


class BadResponse(Exception):
    """The model server answered with something that is not the HTTP this client reads."""


class Disconnected(ConnectionError):
    """The server closed the connection before answering (e.g. an idle keep-alive timed out)."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str
    keep_alive: bool
    custom_attributes: str = ""  # the model's X-Amzn-SageMaker-Custom-Attributes, if it set one


class ServerSocket:
    """Where one model server listens: a fresh socket name in a directory, reached through a
    descriptor of that directory, since a socket's path may not exceed 107 bytes and a variant's
    directory in the state directory can be longer."""

    def __init__(self, directory: Path) -> None:
        self.name = f"model-{uuid.uuid4().hex[:12]}.sock"  # a restarted server never meets a stale one
        self.file = directory / self.name
        self._directory = os.open(directory, os.O_PATH | os.O_DIRECTORY)

    @property
    def path(self) -> str:
        """The socket's path through the directory's descriptor (short, whatever the directory)."""
        return f"/proc/self/fd/{self._directory}/{self.name}"

    def connect(self, timeout: float) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(self.path)
        except BaseException:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        """Forget the directory and remove the socket's file (the server is gone). Idempotent."""
        with contextlib.suppress(OSError):
            os.close(self._directory)
        self._directory = -1
        self.file.unlink(missing_ok=True)


def ping(server: ServerSocket, timeout: float = 2.0) -> bool:
    """True when the model server answers ``GET /ping`` with 200 (used only while deploying)."""
    try:
        conn = Connection(server, timeout)
    except OSError:
        return False
    try:
        return conn.get("/ping").status == 200
    except (OSError, BadResponse):
        return False
    finally:
        conn.close()


class Connection:
    """One keep-alive connection to a model server."""

    def __init__(self, server: ServerSocket, timeout: float) -> None:
        self._sock = server.connect(timeout)
        self._reader = self._sock.makefile("rb")

    def get(self, path: str) -> Response:
        self._sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode("latin-1"))
        return self._read_response()

    def post(
        self, path: str, body: bytes, content_type: str, accept: str, custom_attributes: str = ""
    ) -> Response:
        """The caller's CustomAttributes go to the model as SageMaker forwards them: verbatim, in
        their own header, and only when given."""
        attributes = custom_attributes and f"{CUSTOM_ATTRIBUTES}: {header_value(custom_attributes)}\r\n"
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: {header_value(content_type)}\r\n"
            f"Accept: {header_value(accept)}\r\n{attributes}Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        if len(body) <= ONE_SEND_LIMIT:
            self._sock.sendall(head + body)
        else:
            self._sock.sendall(head)
            self._sock.sendall(body)
        return self._read_response()

    def _read_response(self) -> Response:
        status_line = self._reader.readline(MAX_HEADER_LINE)
        if not status_line:
            raise Disconnected("the model server closed the connection without answering")
        version, status = parse_status_line(status_line)
        headers = self._read_headers()
        if "transfer-encoding" in headers:
            raise BadResponse("chunked responses are not supported")
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" and (version == "HTTP/1.1" or connection == "keep-alive")
        length = headers.get("content-length")
        if length is None:
            body, keep_alive = self._reader.read(), False  # the body ends when the socket does
        else:
            body = self._read_exactly(parse_length(length))
        attributes = headers.get(CUSTOM_ATTRIBUTES.lower(), "")
        return Response(status, body, headers.get("content-type", ""), keep_alive, attributes)

    def _read_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            line = self._reader.readline(MAX_HEADER_LINE)
            if line in (b"\r\n", b"\n"):
                return headers
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon or not line.endswith(b"\n"):
                raise BadResponse(f"malformed header line {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        raise BadResponse(f"more than {MAX_HEADERS} headers")

    def _read_exactly(self, length: int) -> bytes:
        body = self._reader.read(length)
        if len(body) != length:
            raise BadResponse(f"the response ended after {len(body)} of {length} bytes")
        return body

    def close(self) -> None:
        self._reader.close()
        self._sock.close()


def header_value(value: str) -> str:
    """A header value as sent: a CR or LF would let a caller inject headers of its own."""
    if "\r" in value or "\n" in value:
        raise BadResponse(f"refusing to forward a header value with a line break: {value[:80]!r}")
    return value


def parse_status_line(line: bytes) -> tuple[str, int]:
    parts = line.decode("latin-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise BadResponse(f"malformed status line {line[:80]!r}")
    return parts[0], int(parts[1])


def parse_length(value: str) -> int:
    if not value.isdigit():
        raise BadResponse(f"malformed Content-Length {value[:80]!r}")
    return int(value)


class ConnectionPool:
    """Idle keep-alive connections to one model server (LIFO, so warm sockets are reused)."""

    def __init__(self, server: ServerSocket, timeout: float) -> None:
        self._server = server
        self._timeout = timeout
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def post(self, body: bytes, content_type: str, accept: str, custom_attributes: str = "") -> Response:
        """POST /invocations; a pooled connection the server dropped is retried once afresh."""
        request = (body, content_type, accept, custom_attributes)
        conn, reused = self._take()
        try:
            return self._exchange(conn, *request)
        except ConnectionError:
            if not reused:
                raise
        return self._exchange(Connection(self._server, self._timeout), *request)

    def _exchange(
        self, conn: Connection, body: bytes, content_type: str, accept: str, custom_attributes: str
    ) -> Response:
        try:
            response = conn.post("/invocations", body, content_type, accept, custom_attributes)
        except BaseException:
            conn.close()
            raise
        self._give_back(conn, response.keep_alive)
        return response

    def _take(self) -> tuple[Connection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return Connection(self._server, self._timeout), False

    def _give_back(self, conn: Connection, keep_alive: bool) -> None:
        with self._lock:
            if keep_alive and not self._closed and len(self._idle) < MAX_IDLE_CONNECTIONS:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True  # connections still in use are closed when handed back
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
