"""The JSON request handler every local server shares (pipelines/local/system/json_http.py)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer

from pipelines.local.system.json_http import JsonRequestHandler

WAIT_SECONDS = 10.0


class AnswersThenLingers(JsonRequestHandler):
    """Answers, then keeps its handler busy until the test lets it go (as a draining server's
    in-flight count would still hold the request)."""

    released = threading.Event()

    def do_GET(self) -> None:
        self.send_json(200, b'{"ok": true}')
        self.released.wait(WAIT_SECONDS)


@contextmanager
def serving() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), AnswersThenLingers)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        AnswersThenLingers.released.set()
        server.shutdown()
        server.server_close()


def test_a_response_is_on_the_wire_before_its_handler_returns() -> None:
    AnswersThenLingers.released.clear()
    with serving() as port, socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while not answer.endswith(b'{"ok": true}'):
            chunk = sock.recv(65536)  # times out if the response waits in the handler's buffer
            assert chunk, answer
            answer += chunk
        assert not AnswersThenLingers.released.is_set()
    assert answer.startswith(b"HTTP/1.1 200 ")
