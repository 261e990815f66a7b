"""The runtime's HTTP client for model servers, against a scripted server on a real Unix socket."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipelines.local.hosting.upstream import (
    BadResponse,
    Connection,
    ConnectionPool,
    Disconnected,
    ServerSocket,
    ping,
)

TIMEOUT = 10.0
OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok": 1.0}'

# A script answers one request: it gets the request bytes and returns (reply, close_after).
Script = Callable[[bytes], tuple[bytes, bool]]


class ScriptedServer:
    """Accepts connections; each request is answered by the next script in the list."""

    def __init__(self, scripts: list[Script], directory: Path) -> None:
        self.scripts = scripts
        self.requests: list[bytes] = []
        self.connections = 0
        self.address = ServerSocket(directory)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.address.path)
        self.listener.listen()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.scripts:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                while self.scripts:
                    request = read_request(conn)
                    if not request:
                        break
                    self.requests.append(request)
                    reply, close = self.scripts.pop(0)(request)
                    conn.sendall(reply)
                    if close:
                        break

    def close(self) -> None:
        self.listener.close()
        self.address.close()


def read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [
        line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    ]
    while len(body) < (int(lengths[0]) if lengths else 0):
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


def answer(reply: bytes, close: bool = False) -> Script:
    return lambda _request: (reply, close)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[list[Script]], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(scripts: list[Script]) -> ScriptedServer:
        directory = tmp_path / f"server-{len(servers)}"
        directory.mkdir()
        servers.append(ScriptedServer(scripts, directory))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_request_carries_the_types_and_the_body_and_the_connection_is_kept(
    serve: Callable[[list[Script]], ScriptedServer],
) -> None:
    server = serve([answer(OK), answer(OK)])
    conn = Connection(server.address, TIMEOUT)
    first = conn.post("/invocations", b'{"a": 1}', "application/json", "text/csv")
    second = conn.post("/invocations", b"x" * 100_000, "text/csv", "application/json")
    conn.close()
    assert (first.status, first.body, first.content_type, first.keep_alive) == (
        200,
        b'{"ok": 1.0}',
        "application/json",
        True,
    )
    assert second.body == b'{"ok": 1.0}' and server.connections == 1
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /invocations HTTP/1.1\r\n")
    assert b"\r\nContent-Type: application/json\r\n" in head and b"\r\nAccept: text/csv\r\n" in head
    assert body == b'{"a": 1}'
    assert server.requests[1].endswith(b"x" * 100_000)


@pytest.mark.parametrize(
    ("reply", "keep_alive", "body"),
    [
        (b"HTTP/1.1 413 Too Large\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", False, b"{}"),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}", False, b"{}"),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}", True, b"{}"),
        (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end", False, b"to the end"),
    ],
)
def test_keep_alive_and_body_end_follow_the_response_headers(
    serve: Callable[[list[Script]], ScriptedServer], reply: bytes, keep_alive: bool, body: bytes
) -> None:
    server = serve([answer(reply, close=True)])
    conn = Connection(server.address, TIMEOUT)
    response = conn.post("/invocations", b"{}", "application/json", "application/json")
    conn.close()
    assert (response.keep_alive, response.body) == (keep_alive, body)


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (b"SMTP ready\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "malformed Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort", "ended after 5 of 50 bytes"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "chunked"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", "more than 100 headers"),
    ],
)
def test_a_response_this_client_cannot_read_is_refused_by_name(
    serve: Callable[[list[Script]], ScriptedServer], reply: bytes, problem: str
) -> None:
    server = serve([answer(reply, close=True)])
    conn = Connection(server.address, TIMEOUT)
    with pytest.raises(BadResponse, match=problem):
        conn.post("/invocations", b"{}", "application/json", "application/json")
    conn.close()


def test_custom_attributes_go_verbatim_in_their_header_and_come_back_from_the_answer(
    serve: Callable[[list[Script]], ScriptedServer],
) -> None:
    header = b'X-Amzn-SageMaker-Custom-Attributes: trace=9; x="y"'
    with_attributes = OK.replace(b"\r\n\r\n", b"\r\n" + header + b"\r\n\r\n")
    server = serve([answer(with_attributes), answer(OK)])
    pool = ConnectionPool(server.address, TIMEOUT)
    first = pool.post(b"{}", "application/json", "application/json", 'c000b4f9, "quoted" ;x')
    second = pool.post(b"{}", "application/json", "application/json")
    pool.close()
    assert (first.custom_attributes, second.custom_attributes) == ('trace=9; x="y"', "")
    assert b'\r\nX-Amzn-SageMaker-Custom-Attributes: c000b4f9, "quoted" ;x\r\n' in server.requests[0]
    assert b"custom-attributes" not in server.requests[1].lower()


def test_a_header_value_with_a_line_break_is_never_sent(
    serve: Callable[[list[Script]], ScriptedServer],
) -> None:
    server = serve([answer(OK)])
    conn = Connection(server.address, TIMEOUT)
    with pytest.raises(BadResponse, match="line break"):
        conn.post("/invocations", b"{}", "application/json\r\nX-Injected: 1", "application/json")
    conn.close()
    assert server.requests == []


def test_the_pool_reuses_a_connection_and_retries_one_the_server_dropped(
    serve: Callable[[list[Script]], ScriptedServer],
) -> None:
    # The first connection answers once and is then closed by the server, as an idle keep-alive
    # connection is when it times out; the pool must notice on reuse and retry on a new one.
    drop_after_answer = answer(OK, close=True)
    server = serve([answer(OK), drop_after_answer, answer(OK)])
    pool = ConnectionPool(server.address, TIMEOUT)
    assert [pool.post(b"{}", "application/json", "application/json").status for _ in range(3)] == [
        200,
        200,
        200,
    ]
    pool.close()
    assert server.connections == 2 and len(server.requests) == 3


def test_a_fresh_connection_that_fails_is_not_retried(
    serve: Callable[[list[Script]], ScriptedServer],
) -> None:
    server = serve([answer(b"", close=True), answer(OK)])
    pool = ConnectionPool(server.address, TIMEOUT)
    with pytest.raises(Disconnected):
        pool.post(b"{}", "application/json", "application/json")
    pool.close()
    assert len(server.requests) == 1  # a POST is not sent twice when the first try was not stale


def test_a_server_that_is_not_listening_is_an_os_error_and_fails_its_ping(tmp_path: Path) -> None:
    nobody = ServerSocket(tmp_path)
    pool = ConnectionPool(nobody, TIMEOUT)
    with pytest.raises(OSError):
        pool.post(b"{}", "application/json", "application/json")
    assert ping(nobody) is False


def test_ping_is_a_get_and_reads_the_status(serve: Callable[[list[Script]], ScriptedServer]) -> None:
    unhealthy = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
    server = serve([answer(OK), answer(unhealthy)])
    assert ping(server.address) is True
    assert ping(server.address) is False
    assert [request.split(b"\r\n")[0] for request in server.requests] == [b"GET /ping HTTP/1.1"] * 2


def test_a_socket_in_a_directory_longer_than_a_socket_path_may_be_is_reached(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 100) / ("e" * 100)
    deep.mkdir(parents=True)
    server = ScriptedServer([answer(OK)], deep)
    try:
        assert len(str(server.address.file)) > 107  # too long to bind or connect to by itself
        conn = Connection(server.address, TIMEOUT)
        assert conn.post("/invocations", b"{}", "application/json", "application/json").status == 200
        conn.close()
    finally:
        server.close()
    assert not server.address.file.exists()  # closing the address removes the socket's file
