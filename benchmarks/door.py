"""How HTTP front ends hold up under idle and slow clients, and how fast SIGTERM stops them.

    python benchmarks/door.py [--flood 2000] [--slow 200] [--probes 20]

Each design serves the same trivial request in its own process on 127.0.0.1:

- `stdlib-threading`: the standard library's ThreadingHTTPServer (a thread per connection), as the
  local server had it;
- `bounded`: pipelines/local/system/bounded_http.py (one connection thread, a fixed pool of
  workers, connection cap, head and idle timeouts), as the local server has it now;
- `uvicorn-h11`: uvicorn with its pure-Python h11 parser and an ASGI app, keep-alive timeout 5 s;
- `local-server`: the real local SageMaker server (bounded front, SigV4 door), asked a signed
  `ListEndpoints`.

For each: the time to answer a request on a fresh connection when idle, requests per second of 8
keep-alive clients (benchmarks/loadgen.py, 3 s: the cost of the front on the hot path), then with
`--flood` idle
sockets and `--slow` slowloris clients (headers that never end) connected; the server's thread
count under the flood; and the time from SIGTERM to the process's exit with the flood still
connected. Loopback only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]

HOST = "127.0.0.1"
ANSWER_TIMEOUT = 30.0
CONNECT_TIMEOUT = 5.0
EXIT_TIMEOUT = 60.0
DESIGNS = ("stdlib-threading", "bounded", "uvicorn-h11", "local-server")


# --- the servers (run as `door.py serve DESIGN`) ----------------------------------------------


def serve(design: str) -> None:
    """Serve `GET /` until SIGTERM; the first stdout line is `LISTENING <port>`."""
    from http.server import ThreadingHTTPServer

    from pipelines.local.system.bounded_http import BoundedHTTPServer, OneRequestHandler
    from pipelines.local.system.json_http import JsonRequestHandler
    from pipelines.local.system.signals import stop_on_signals

    class Plain(JsonRequestHandler):
        def do_GET(self) -> None:
            self.send_json(200, b'{"status": "ok"}')

        def do_POST(self) -> None:
            if self.read_body() is not None:
                self.send_json(200, b'{"status": "ok"}')

    class Bounded(OneRequestHandler, Plain):
        pass

    if design == "uvicorn-h11":
        serve_uvicorn()
        return
    server: Any
    if design == "stdlib-threading":  # as the local server had it: daemon threads, a backlog of 128
        ThreadingHTTPServer.request_queue_size = 128
        server = ThreadingHTTPServer((HOST, 0), Plain)
        server.daemon_threads = True
    else:
        server = BoundedHTTPServer((HOST, 0), Bounded)
    stop = stop_on_signals((signal.SIGTERM,))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(f"LISTENING {server.server_address[1]}", flush=True)
    while not stop.wait(1.0):
        pass
    if design == "bounded":
        server.stop_accepting()
        server.wait_idle(5.0)
    server.shutdown()
    server.server_close()


def serve_uvicorn() -> None:
    import uvicorn

    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"status": "ok"}'})

    sock = socket.create_server((HOST, 0), backlog=2048)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted sockets inherit it
    print(f"LISTENING {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, http="h11", lifespan="off", log_level="warning", timeout_keep_alive=5,
                            timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])


# --- the measurement --------------------------------------------------------------------------


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    port: int
    request: Callable[[], None]
    load_headers: dict[str, str] | None = None  # what a POST / needs to be served (a signature)


def first_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    assert process.stdout is not None
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    return result[0].decode().strip() if result else ""


@contextlib.contextmanager
def started(design: str, work: Path) -> Iterator[Running]:
    if design == "local-server":
        with local_server(work) as running:
            yield running
        return
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "serve", design],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO,
    )
    try:
        line = first_line(process, 60)
        if not line.startswith("LISTENING "):
            raise RuntimeError(f"{design} did not start: {line!r}")
        port = int(line.split()[1])
        yield Running(process, port, lambda: plain_get(port))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(EXIT_TIMEOUT)


@contextlib.contextmanager
def local_server(work: Path) -> Iterator[Running]:
    import boto3
    from botocore.config import Config

    from pipelines.local import daemon

    state = work / "local-state"
    url = daemon.ensure_running(state)
    pid = daemon.server_pid(state)
    assert pid is not None
    keys = daemon.credentials(state)
    client = boto3.Session(region_name="us-east-1", **keys.session_arguments()).client(
        "sagemaker", endpoint_url=url,
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=ANSWER_TIMEOUT,
                      read_timeout=ANSWER_TIMEOUT, max_pool_connections=1),
    )

    def signed_call() -> None:
        client.list_endpoints()
        client._endpoint.http_session.close()  # the next call opens a fresh connection

    process = _Adopted(pid)
    api = {"Content-Type": "application/x-amz-json-1.1", "Accept": "application/json",
           "X-Amz-Target": "SageMaker.ListEndpoints"}
    signed = daemon.signed_headers(state, "POST", f"{url}/", b"{}", api)
    try:
        yield Running(process, int(url.rsplit(":", 1)[1]), signed_call, signed)  # type: ignore[arg-type]
    finally:
        if process.poll() is None:
            daemon.stop(state)


class _Adopted:
    """The part of Popen the measurement uses, for a server `ensure_running` started."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def poll(self) -> int | None:
        from pipelines.local import daemon

        return None if daemon._alive(self.pid) else 0

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)


def plain_get(port: int) -> None:
    connection = http.client.HTTPConnection(HOST, port, timeout=ANSWER_TIMEOUT)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
    finally:
        connection.close()


def timed_requests(request: Callable[[], None], count: int) -> tuple[float, float, int]:
    """Median and worst seconds to an answer over `count` fresh connections, and the failures."""
    times, failures = [], 0
    for _ in range(count):
        start = time.perf_counter()
        try:
            request()
        except (OSError, RuntimeError, http.client.HTTPException, Exception):
            failures += 1
        times.append(time.perf_counter() - start)
    return statistics.median(times), max(times), failures


def threads_of(pid: int) -> int:
    try:
        return len(list(Path(f"/proc/{pid}/task").iterdir()))
    except OSError:
        return 0


async def _open_flood(port: int, idle: int, slow: int) -> list[socket.socket]:
    """Connect `idle` silent clients and `slow` ones that start a head and never finish it."""
    sockets: list[socket.socket] = []
    for n in range(idle + slow):
        sock = socket.socket()
        sock.setblocking(False)
        try:
            connecting = asyncio.get_running_loop().sock_connect(sock, (HOST, port))
            await asyncio.wait_for(connecting, CONNECT_TIMEOUT)
            if n >= idle:
                sock.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        except (OSError, TimeoutError):
            sock.close()
            continue
        sockets.append(sock)
    return sockets


def sigterm_to_exit(process: Any) -> float:
    start = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    while process.poll() is None:
        if time.perf_counter() - start > EXIT_TIMEOUT:
            process.send_signal(signal.SIGKILL)
            return float("inf")
        time.sleep(0.01)
    return time.perf_counter() - start


def keep_alive_rate(running: Running, seconds: float) -> float:
    """Requests per second of 8 keep-alive clients posting `{}` to `/` (the front's hot path)."""
    import loadgen

    result = loadgen.run(running.port, "/", b"{}", 8, seconds, headers=running.load_headers)
    return result.rps if not result.errors else float("nan")


def measure(design: str, flood: int, slow: int, probes: int, work: Path) -> dict[str, Any]:
    with started(design, work) as running:
        timed_requests(running.request, probes)  # warm-up: imports, first use of each thread
        idle_median, _, _ = timed_requests(running.request, probes)
        rate = keep_alive_rate(running, 3.0)
        sockets = asyncio.run(_open_flood(running.port, flood, slow))
        try:
            time.sleep(1.0)  # let the server take in the flood before probing
            median, worst, failures = timed_requests(running.request, probes)
            threads = threads_of(running.process.pid)
            exit_seconds = sigterm_to_exit(running.process)
        finally:
            for sock in sockets:
                sock.close()
    return {
        "design": design, "idle_ms": idle_median * 1000, "rate": rate, "connected": len(sockets),
        "flood_median_ms": median * 1000, "flood_worst_ms": worst * 1000, "failures": failures,
        "threads": threads, "sigterm_exit_s": exit_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", nargs="?", default="measure", choices=["measure", "serve"])
    parser.add_argument("design", nargs="?", choices=DESIGNS)
    parser.add_argument("--flood", type=int, default=2000, help="idle sockets")
    parser.add_argument("--slow", type=int, default=200, help="slowloris clients")
    parser.add_argument("--probes", type=int, default=20, help="timed requests per condition")
    parser.add_argument("--designs", nargs="+", choices=DESIGNS, default=list(DESIGNS))
    args = parser.parse_args()
    if args.mode == "serve":
        serve(args.design)
        return
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"# HTTP fronts under {args.flood} idle + {args.slow} slowloris sockets "
          f"(descriptor limit {hard}, {os.cpu_count()} cores)")
    print(f"{'design':<18}{'idle p50':>10}{'keep-alive':>12}{'flood p50':>11}{'flood max':>11}{'failed':>8}"
          f"{'sockets':>9}{'threads':>9}{'SIGTERM->exit':>15}")
    with tempfile.TemporaryDirectory() as tmp:
        for design in args.designs:
            row = measure(design, args.flood, args.slow, args.probes, Path(tmp))
            print(f"{design:<18}{row['idle_ms']:>8.2f}ms{row['rate']:>8.0f}/s"
                  f"{row['flood_median_ms']:>9.2f}ms"
                  f"{row['flood_worst_ms']:>9.1f}ms{row['failures']:>8}{row['connected']:>9}"
                  f"{row['threads']:>9}{row['sigterm_exit_s']:>14.2f}s", flush=True)


if __name__ == "__main__":
    main()
