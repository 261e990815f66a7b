"""The bounded HTTP front, in this process on real loopback sockets, with limits small enough to see.

Each test starts its own server with a trivial handler: `GET /` answers 200 (503 while draining),
`GET /hold` waits until the test releases it.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from collections.abc import Iterator

import pytest
from waiting import wait_until

from pipelines.local.system.bounded_http import BoundedHTTPServer, Limits, OneRequestHandler

WAIT = 10.0


class Handler(OneRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server  # type: ignore[assignment]

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        if self.path == "/hold":
            self.server.held.set()
            self.server.release.wait(WAIT)
        status = 503 if self.server.draining else 200
        body = f"{status} {self.path}".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(BoundedHTTPServer):
    def __init__(self, limits: Limits) -> None:
        super().__init__(("127.0.0.1", 0), Handler, limits)
        self.held = threading.Event()
        self.release = threading.Event()

    @property
    def port(self) -> int:
        return self.server_address[1]


@contextlib.contextmanager
def running(limits: Limits) -> Iterator[Server]:
    server = Server(limits)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        thread.join(WAIT)
        server.server_close()
        assert not thread.is_alive()


def get(port: int, path: str = "/") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def read_until(sock: socket.socket, marker: bytes, count: int = 1) -> bytes:
    received = b""
    sock.settimeout(WAIT)
    while received.count(marker) < count:
        chunk = sock.recv(4096)
        assert chunk, received
        received += chunk
    return received


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed `sock` (a read gives EOF or a reset)."""
    sock.settimeout(WAIT)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


def test_answers_and_keeps_the_connection_alive() -> None:
    with running(Limits(workers=2)) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT)
        for path in ("/a", "/b", "/c"):
            connection.request("GET", path)
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, f"200 {path}".encode())
        connection.close()


def test_pipelined_requests_are_answered_in_order() -> None:
    with running(Limits(workers=2)) as server, socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n")
        received = read_until(sock, b"200 /", 2)
        assert received.index(b"200 /one") < received.index(b"200 /two")


def test_a_head_sent_too_slowly_is_cut_off() -> None:
    with (
        running(Limits(header_seconds=0.3)) as server,
        socket.create_connection(("127.0.0.1", server.port)) as sock,
    ):
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
        assert closed_by_server(sock)
        assert get(server.port) == (200, b"200 /")


def test_an_idle_connection_is_closed() -> None:
    with running(Limits(header_seconds=0.3, idle_seconds=0.3)) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as silent:
            assert closed_by_server(silent)
        with socket.create_connection(("127.0.0.1", server.port)) as kept:
            kept.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            read_until(kept, b"200 /")
            assert closed_by_server(kept)  # kept alive, then idle too long


def test_a_flood_of_idle_sockets_does_not_lock_others_out() -> None:
    limits = Limits(connections=50, workers=2)
    with running(limits) as server:
        flood = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(200)]
        slow = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(50)]
        try:
            for sock in slow:
                sock.sendall(b"GET / HTTP/1.1\r\nHo")
            assert get(server.port) == (200, b"200 /")
            # The oldest waiters made room: most of the flood has been closed by the server.
            closed = sum(closed_by_server(sock) for sock in flood[:100])
            assert closed == 100
        finally:
            for sock in flood + slow:
                sock.close()


def test_requests_beyond_the_workers_wait_their_turn() -> None:
    with running(Limits(workers=1)) as server:
        holder = threading.Thread(target=get, args=(server.port, "/hold"))
        holder.start()
        assert server.held.wait(WAIT)
        answers: list[tuple[int, bytes]] = []
        waiter = threading.Thread(target=lambda: answers.append(get(server.port, "/next")))
        waiter.start()
        server.release.set()
        holder.join(WAIT)
        waiter.join(WAIT)
        assert answers == [(200, b"200 /next")]


def test_draining_refuses_new_connections_and_finishes_the_running_request() -> None:
    with running(Limits(workers=2)) as server:
        answers: list[tuple[int, bytes]] = []
        holder = threading.Thread(target=lambda: answers.append(get(server.port, "/hold")))
        holder.start()
        assert server.held.wait(WAIT)
        idle = socket.create_connection(("127.0.0.1", server.port))
        server.stop_accepting()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
        assert closed_by_server(idle)
        idle.close()
        assert not server.wait_idle(0.0)
        server.release.set()
        holder.join(WAIT)
        assert answers == [(503, b"503 /hold")]  # answered, saying the server is going away
        assert server.wait_idle(WAIT)


def test_a_queued_request_is_answered_during_a_drain() -> None:
    with running(Limits(workers=1)) as server:
        answers: list[tuple[int, bytes]] = []
        holder = threading.Thread(target=get, args=(server.port, "/hold"))
        holder.start()
        assert server.held.wait(WAIT)
        queued = threading.Thread(target=lambda: answers.append(get(server.port, "/queued")))
        queued.start()
        wait_until(lambda: server._busy == 2, WAIT, "the second request to be queued")
        server.stop_accepting()
        server.release.set()
        queued.join(WAIT)
        holder.join(WAIT)
        assert answers == [(503, b"503 /queued")]
