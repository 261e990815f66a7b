"""The runtime's side of the hop to a model server: pooled keep-alive HTTP/1.1 over loopback.

Why not ``http.client``: every invocation crosses this hop, and ``http.client`` validates and
encodes each header one call at a time and parses every response's headers with the ``email``
package, about 160 us of CPU per exchange against 40 us for the exchange below: a third of the
runtime server's time per small request. The peer is always our model server
(pipelines/local/hosting/model_server.py), which answers every request with a Content-Length, so the
client only needs to understand that much of HTTP/1.1; anything else is refused as a bad response.
"""

from __future__ import annotations

import http.client
import socket
import threading
from dataclasses import dataclass

from pipelines.local.hosting.model_server import HOST

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


def ping(port: int, timeout: float = 2.0) -> bool:
    """True when the model server answers ``GET /ping`` with 200 (used only while deploying)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", "/ping")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


class Connection:
    """One keep-alive connection; Nagle is off so a small request is not held back."""

    def __init__(self, port: int, timeout: float) -> None:
        self._sock = socket.create_connection((HOST, port), timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = self._sock.makefile("rb")

    def post(self, path: str, body: bytes, content_type: str, accept: str) -> Response:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: {header_value(content_type)}\r\n"
            f"Accept: {header_value(accept)}\r\nContent-Length: {len(body)}\r\n\r\n"
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
        return Response(status, body, headers.get("content-type", ""), keep_alive)

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

    def __init__(self, port: int, timeout: float) -> None:
        self._port = port
        self._timeout = timeout
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def post(self, body: bytes, content_type: str, accept: str) -> Response:
        """POST /invocations; a pooled connection the server dropped is retried once afresh."""
        conn, reused = self._take()
        try:
            return self._exchange(conn, body, content_type, accept)
        except ConnectionError:
            if not reused:
                raise
        return self._exchange(Connection(self._port, self._timeout), body, content_type, accept)

    def _exchange(self, conn: Connection, body: bytes, content_type: str, accept: str) -> Response:
        try:
            response = conn.post("/invocations", body, content_type, accept)
        except BaseException:
            conn.close()
            raise
        self._give_back(conn, response.keep_alive)
        return response

    def _take(self) -> tuple[Connection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return Connection(self._port, self._timeout), False

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
