"""A request handler whose every answer is JSON, even when the request itself is malformed.

Both local servers (the SageMaker API/runtime and each model server) build on it, so one place
decides how bodies are read and how refusals look: a bad or missing Content-Length, a body over
the limit, an oversized header or an unknown method gets a 4xx with `{"error": ...}` — never the
standard library's HTML page, a 5xx, or a hang.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler

DRAIN_LIMIT = 64 * 1024 * 1024  # an oversized body up to this size is read and dropped
DRAIN_CHUNK = 1024 * 1024
DRAIN_IDLE_SECONDS = 2.0


class JsonRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    # Buffered: a response's status line, headers and body leave in one write when send_json
    # flushes. Unbuffered, headers and body were two writes, two packets (no Nagle) and two
    # wake-ups of the client for one small answer.
    wbufsize = -1
    max_body_bytes = 6 * 1024 * 1024
    require_length = True

    def log_message(self, format: str, *args: object) -> None:
        """No access log: a line per request costs more than serving it."""

    def body_limit(self) -> int:
        """The largest body this request may carry (a subclass may decide by path)."""
        return self.max_body_bytes

    def error_body(self, status: int, message: str) -> bytes:
        """The JSON document of an error; subclasses may add fields (e.g. AWS's __type)."""
        return json.dumps({"error": message}).encode("utf-8")

    def send_json(
        self, status: int, body: bytes | Iterable[bytes], content_type: str = "application/json",
        headers: dict[str, str] | None = None, close: bool = False, length: int | None = None,
    ) -> None:
        """`length`: a HEAD answer's Content-Length, the size of the body a GET would get, or that
        of a body given as chunks, each written as it comes so that only one is held at a time; an
        answer to HEAD never carries a body."""
        if length is None:
            assert isinstance(body, bytes), "chunks are sent with their length"
            length = len(body)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if getattr(self, "command", "") != "HEAD":
            for chunk in [body] if isinstance(body, bytes) else body:
                self.wfile.write(chunk)
        # Sent now, not when handle_one_request returns: a server draining on SIGTERM may exit as
        # soon as its handlers are done, and a response still in the buffer would be lost.
        self.wfile.flush()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own refusals (bad request line, huge header, unknown method),
        as JSON. An unknown method is a client error here: 405, not 501."""
        status = HTTPStatus.METHOD_NOT_ALLOWED if code == HTTPStatus.NOT_IMPLEMENTED else code
        text = message or HTTPStatus(status).phrase
        self.send_json(int(status), self.error_body(int(status), text), close=True)

    def _declared_length(self) -> int | None:
        """Content-Length as digits only; None after answering 400/411."""
        header = self.headers.get("Content-Length")
        if header is None:
            if self.require_length:
                self.send_json(411, self.error_body(411, "Content-Length is required"), close=True)
                return None
            return 0
        if not header.strip().isdigit():
            message = f"invalid Content-Length {header!r}"
            self.send_json(400, self.error_body(400, message), close=True)
            return None
        return int(header)

    def handle_expect_100(self) -> bool:
        """Refuse an oversized body before the client sends it."""
        length = self.headers.get("Content-Length", "")
        if length.strip().isdigit() and int(length) > self.body_limit():
            self._too_large(int(length), drain=False)
            return False
        accepted = super().handle_expect_100()
        self.wfile.flush()  # the client waits for "100 Continue" before it sends the body
        return accepted

    def read_body(self) -> bytes | None:
        """The request body, or None after answering 400/411/413."""
        length = self._declared_length()
        if length is None:
            return None
        if length > self.body_limit():
            self._too_large(length, drain=True)
            return None
        return self.rfile.read(length)

    def _too_large(self, length: int, drain: bool) -> None:
        """413 at once, then a lingering close: whatever body the client is still sending is read
        (bounded in size and idle time) so it sees the answer rather than a reset connection."""
        message = f"request body of {length} bytes exceeds the {self.body_limit()}-byte limit"
        self.send_json(413, self.error_body(413, message), close=True)
        if not drain or length > DRAIN_LIMIT:
            return
        self.connection.settimeout(DRAIN_IDLE_SECONDS)
        remaining = length
        try:
            while remaining > 0:
                chunk = self.rfile.read1(min(DRAIN_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:  # the client stopped sending (timeout) or went away
            pass
