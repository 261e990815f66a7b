"""What a Lambda handler tells its test, over loopback: Lambda's filesystem is read-only but for the
environment's own /tmp, so a handler has no folder to share with its test, and reports as it would
to anything outside Lambda, over the network."""

from __future__ import annotations

import json
import socketserver
import threading
from collections import defaultdict
from typing import Any

# What a handler imports (it is put in its package as `marks.py`): `mark(name, line)` adds a line
# to the mark `name`, `mark(name)` only reads it; either answers its lines.
CLIENT = """
import json, os, socket

def mark(name, line=None):
    host, port = os.environ["MARKS"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(json.dumps([name, line]).encode() + b"\\n")
        return json.loads(connection.makefile().readline())
"""


class Marks:
    """Named lists of lines that handlers add to, served on 127.0.0.1 until closed."""

    def __init__(self) -> None:
        self._lines: defaultdict[str, list[str]] = defaultdict(list)
        self._lock = threading.Lock()
        marks = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                name, line = json.loads(self.rfile.readline())
                self.wfile.write(json.dumps(marks.add(name, line)).encode() + b"\n")

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        """For the handler's MARKS variable."""
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def add(self, name: str, line: str | None) -> list[str]:
        """The lines of `name`, with `line` added to them unless it is None."""
        with self._lock:
            if line is not None:
                self._lines[name].append(line)
            return list(self._lines[name])

    def lines(self, name: str) -> list[str]:
        return self.add(name, None)

    def __enter__(self) -> Marks:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
