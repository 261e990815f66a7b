"""An HTTP/1.1 server whose cost is bounded whatever its clients do: idle, slow, many, or gone.

The standard library's ThreadingHTTPServer gives every connection a thread that blocks on it, so
20,000 idle sockets are 20,000 threads and the process stops answering anyone, SIGTERM included.
Here one thread owns every connection that is not running a request: it accepts, reads request
heads without blocking, and enforces the limits; a fixed pool of worker threads runs complete
request heads only. Hence:

- at most `connections` sockets are open; to admit a new one the connection that has waited longest
  for a request is closed, so a flood of idle clients cannot lock others out;
- a request's head must arrive within `header_seconds` of its first byte (slowloris), and a
  kept-alive connection is closed after `idle_seconds` without one;
- at most `workers` threads run requests, and a worker waits for a head only right after answering
  the same client (at most STICKY_SECONDS, while nobody else waits); inside a request a socket read
  or write waits at most `io_seconds`;
- a connection is closed gracefully: after the last answer the server stops sending, then reads and
  drops what the client still sends for `linger_seconds`, so the client reads the answer instead of
  a reset;
- `stop_accepting` closes the listening socket (new clients are refused) and the idle connections;
  requests already queued are still handed to the handler, which sees `draining` and can answer 503.

Handlers are BaseHTTPRequestHandler subclasses that list `OneRequestHandler` first among their bases:
each instance answers exactly one request, reading from the head the server already holds.
"""

from __future__ import annotations

import contextlib
import queue
import selectors
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

HEAD_END = b"\r\n\r\n"
RECV_BYTES = 64 * 1024
TICK_SECONDS = 0.25  # how often deadlines are checked
ACCEPTS_PER_TICK = 512  # a burst of connections cannot starve the connections already open
# A worker that has answered waits this long for the same client's next request before handing the
# connection back: a client calling in a loop then costs no hand-off between threads per request.
STICKY_SECONDS = 0.02
STICKY_REQUESTS = 100


@dataclass(frozen=True)
class Limits:
    connections: int = 1024
    workers: int = 32
    header_seconds: float = 10.0
    idle_seconds: float = 60.0
    io_seconds: float = 30.0
    linger_seconds: float = 2.0
    header_bytes: int = 64 * 1024 + 8 * 1024  # the handler answers 431/414 past its own limits
    backlog: int = 1024


class Reader:
    """The request stream of one connection: the bytes the server already read, then the socket."""

    def __init__(self, sock: socket.socket, buffered: bytes) -> None:
        self._sock = sock
        self._buffer = bytearray(buffered)

    def _fill(self) -> bool:
        chunk = self._sock.recv(RECV_BYTES)
        self._buffer += chunk
        return bool(chunk)

    def _take(self, size: int) -> bytes:
        taken = bytes(self._buffer[:size])
        del self._buffer[:size]
        return taken

    def readline(self, limit: int = -1) -> bytes:
        scanned = 0
        while True:
            end = self._buffer.find(b"\n", scanned)
            if end >= 0 and (limit < 0 or end < limit):
                return self._take(end + 1)
            if 0 <= limit <= len(self._buffer):
                return self._take(limit)
            scanned = len(self._buffer)
            if not self._fill():
                return self._take(len(self._buffer))

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            while self._fill():
                pass
            return self._take(len(self._buffer))
        if size <= len(self._buffer):
            return self._take(size)
        result = bytearray(size)
        view = memoryview(result)
        have = len(self._buffer)
        view[:have] = self._buffer
        self._buffer.clear()
        while have < size:
            received = self._sock.recv_into(view[have:])
            if not received:
                break
            have += received
        return bytes(view[:have])

    def read1(self, size: int = -1) -> bytes:
        if not self._buffer:
            self._fill()
        return self._take(len(self._buffer) if size < 0 else size)

    def leftover(self) -> bytes:
        """What the client sent beyond the request just answered (a pipelined next request)."""
        return self._take(len(self._buffer))

    def close(self) -> None:
        """The socket outlives the request: the server decides when it closes."""


class Writer:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def write(self, data: bytes) -> int:
        self._sock.sendall(data)
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered."""

    def close(self) -> None:
        """The socket outlives the request."""


class Connection:
    """A client socket and what the server has read from it so far."""

    __slots__ = ("address", "buffer", "deadline", "reader", "sock", "writer")

    def __init__(self, sock: socket.socket, address: tuple[str, int], deadline: float) -> None:
        self.sock = sock
        self.address = address
        self.buffer = bytearray()
        self.deadline = deadline
        self.reader = Reader(sock, b"")
        self.writer = Writer(sock)

    def head_complete(self, limit: int) -> bool:
        return HEAD_END in self.buffer or len(self.buffer) > limit


class OneRequestHandler(BaseHTTPRequestHandler):
    """Answers the one request whose head the server has read; list it first among the bases."""

    request: Connection

    def setup(self) -> None:
        self.connection = self.request.sock
        self.rfile = self.request.reader  # type: ignore[assignment]
        self.wfile = self.request.writer  # type: ignore[assignment]

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()

    def finish(self) -> None:
        """The server keeps or closes the socket."""


class BoundedHTTPServer:
    def __init__(
        self, address: tuple[str, int], handler: type[OneRequestHandler], limits: Limits = Limits()
    ) -> None:
        self.limits = limits
        self.handler = handler
        self.listener: socket.socket | None = socket.create_server(address, backlog=limits.backlog)
        self.listener.setblocking(False)
        self.server_address: tuple[str, int] = self.listener.getsockname()[:2]
        self.draining = False
        self._selector = selectors.DefaultSelector()
        self._waiting: OrderedDict[int, Connection] = OrderedDict()  # oldest wait first
        self._lingering: OrderedDict[int, Connection] = OrderedDict()
        self._returned: queue.SimpleQueue[tuple[Connection, bool]] = queue.SimpleQueue()
        self._ready: queue.SimpleQueue[Connection | None] = queue.SimpleQueue()
        self._busy = 0
        self._idle = threading.Condition()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._running = True
        self._accepting = True
        self._not_accepting = threading.Event()
        self._workers = [
            threading.Thread(target=self._work, name=f"http-worker-{n}", daemon=True)
            for n in range(limits.workers)
        ]
        for worker in self._workers:
            worker.start()

    # --- the connection thread --------------------------------------------------------------

    def serve_forever(self) -> None:
        assert self.listener is not None
        self._selector.register(self.listener, selectors.EVENT_READ, "listener")
        self._selector.register(self._wake_reader, selectors.EVENT_READ, "wake")
        next_tick = time.monotonic() + TICK_SECONDS
        while self._running:
            for key, _ in self._selector.select(TICK_SECONDS):
                if key.data == "listener":
                    self._accept()
                elif key.data == "wake":
                    self._take_returned()
                elif key.data.sock.fileno() >= 0:  # not closed earlier in this round (evicted)
                    self._receive(key.data)
            if not self._accepting and self.listener is not None:
                self._close_listener()
                while self._waiting:
                    self._close(self._waiting.popitem()[1])
                self._not_accepting.set()
            now = time.monotonic()
            if now >= next_tick:
                self._expire(now)
                next_tick = now + TICK_SECONDS
        self._close_all()

    def _open_count(self) -> int:
        return len(self._waiting) + len(self._lingering) + self._busy

    def _accept(self) -> None:
        assert self.listener is not None
        for _ in range(ACCEPTS_PER_TICK):
            try:
                sock, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # out of descriptors: the kernel keeps the rest in the backlog
                return
            if self._open_count() >= self.limits.connections and not self._evict_one():
                sock.close()
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._wait(Connection(sock, address, time.monotonic() + self.limits.header_seconds))

    def _evict_one(self) -> bool:
        """Close the connection that has waited longest for a request (lingering ones first)."""
        for pool in (self._lingering, self._waiting):
            if pool:
                _, connection = pool.popitem(last=False)
                self._close(connection)
                return True
        return False

    def _wait(self, connection: Connection) -> None:
        """Watch a connection for its next request."""
        fd = connection.sock.fileno()
        self._waiting[fd] = connection
        self._selector.register(connection.sock, selectors.EVENT_READ, connection)

    def _receive(self, connection: Connection) -> None:
        fd = connection.sock.fileno()
        try:
            chunk = connection.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if fd in self._lingering:
            if not chunk:
                del self._lingering[fd]
                self._close(connection)
            return
        if not chunk:
            del self._waiting[fd]
            self._close(connection)
            return
        if not connection.buffer:  # a new request starts: its head has header_seconds to arrive
            connection.deadline = time.monotonic() + self.limits.header_seconds
        connection.buffer += chunk
        if connection.head_complete(self.limits.header_bytes):
            del self._waiting[fd]
            self._selector.unregister(connection.sock)
            self._dispatch(connection)

    def _dispatch(self, connection: Connection) -> None:
        connection.reader = Reader(connection.sock, bytes(connection.buffer))
        connection.buffer.clear()
        with self._idle:
            self._busy += 1
        self._ready.put(connection)

    def _take_returned(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_reader.recv(4096):
                pass
        while True:
            try:
                connection, keep = self._returned.get_nowait()
            except queue.Empty:
                return
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()
            if not keep or not self._accepting:
                self._linger(connection)
                continue
            connection.buffer = bytearray(connection.reader.leftover())
            if connection.buffer and connection.head_complete(self.limits.header_bytes):
                self._dispatch(connection)
                continue
            now = time.monotonic()
            connection.deadline = now + (
                self.limits.header_seconds if connection.buffer else self.limits.idle_seconds
            )
            self._wait(connection)

    def _linger(self, connection: Connection) -> None:
        """Stop sending, then drop what the client still sends until it closes or time is up."""
        try:
            connection.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(connection)
            return
        connection.deadline = time.monotonic() + self.limits.linger_seconds
        self._lingering[connection.sock.fileno()] = connection
        self._selector.register(connection.sock, selectors.EVENT_READ, connection)

    def _expire(self, now: float) -> None:
        for pool in (self._waiting, self._lingering):
            for fd in [fd for fd, connection in pool.items() if connection.deadline <= now]:
                self._close(pool.pop(fd))

    def _close(self, connection: Connection) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(connection.sock)
        with contextlib.suppress(OSError):
            connection.sock.close()

    def _close_all(self) -> None:
        for pool in (self._waiting, self._lingering):
            while pool:
                self._close(pool.popitem()[1])
        self._close_listener()

    def _close_listener(self) -> None:
        if self.listener is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(self.listener)
            self.listener.close()
            self.listener = None

    # --- the workers ------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            connection = self._ready.get()
            if connection is None:
                return
            keep = self._serve(connection)
            self._returned.put((connection, keep))
            self._wake()

    def _serve(self, connection: Connection) -> bool:
        """Answer the connection's request, and the next ones while they follow at once (a
        keep-alive client in a loop) and nobody else waits; whether the connection stays open."""
        try:
            for _ in range(STICKY_REQUESTS):
                connection.sock.settimeout(self.limits.io_seconds)
                handler = self.handler(connection, connection.address, self)  # type: ignore[arg-type]
                if handler.close_connection:
                    return False
                if self.draining or not self._ready.empty() or not self._next_head(connection):
                    break
            connection.sock.setblocking(False)
        except Exception:  # a client gone, a timeout: the connection ends, the worker lives on
            return False
        return True

    def _next_head(self, connection: Connection) -> bool:
        """Whether the next request's head arrives within STICKY_SECONDS; what did arrive stays in
        the connection's reader either way (the connection thread waits for the rest)."""
        sock = connection.sock
        buffer = bytearray(connection.reader.leftover())
        deadline = time.monotonic() + STICKY_SECONDS
        complete = HEAD_END in buffer
        while not complete and len(buffer) <= self.limits.header_bytes:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(RECV_BYTES)
            except TimeoutError:
                break
            if not chunk:
                raise ConnectionError("closed by the client")
            buffer += chunk
            complete = HEAD_END in buffer
        connection.reader = Reader(sock, bytes(buffer))
        return complete or len(buffer) > self.limits.header_bytes

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_writer.send(b"\0")

    # --- control, from other threads ----------------------------------------------------------

    def stop_accepting(self) -> None:
        """New connections are refused and idle ones closed; requests already read still run."""
        self.draining = True
        self._accepting = False
        self._wake()
        self._not_accepting.wait(5.0)

    def wait_idle(self, timeout: float) -> bool:
        """Whether every request in progress has been answered within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def shutdown(self) -> None:
        """Stop the connection thread and the workers; open sockets are closed."""
        self._running = False
        self._wake()
        for _ in self._workers:
            self._ready.put(None)

    def server_close(self) -> None:
        self._close_listener()
        self._wake_reader.close()
        self._wake_writer.close()
