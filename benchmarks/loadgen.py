"""One HTTP load generator for every server in the endpoint benchmark.

asyncio, one keep-alive connection per unit of concurrency (closed loop: each connection sends its
next request as soon as the previous answer is read), the request bytes built once, responses read
by Content-Length (or chunked). Latency is from the first byte written to the last byte read.

Bounded twice: a run stops at ``max_requests`` or after ``duration`` seconds, whichever comes
first, and every read has a timeout. Targets loopback addresses only.

    python benchmarks/loadgen.py --port 8080 --path /invocations --body '"great"' -c 8 -d 5
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import math
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"


@dataclass
class Result:
    requests: int = 0
    errors: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    first_error: str = ""
    p50_ms: float | None = None  # set directly by the wrk client
    p99_ms: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile in milliseconds."""
        if q == 50 and self.p50_ms is not None:
            return self.p50_ms
        if q == 99 and self.p99_ms is not None:
            return self.p99_ms
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
        return ordered[rank] * 1000


def check_loopback(host: str) -> None:
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the load generator only targets loopback addresses, not {host}")


def build_request(
    host: str, port: int, path: str, body: bytes, content_type: str, headers: dict[str, str] | None = None
) -> bytes:
    """The request's bytes; `headers` add to or replace the defaults (e.g. a SigV4 signature)."""
    fields = {"Host": f"{host}:{port}", "Content-Type": content_type, "Accept": "application/json"}
    fields.update(headers or {})
    lines = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    head = f"POST {path} HTTP/1.1\r\n{lines}Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    return head.encode("ascii") + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; returns (status, server_will_close)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    close = headers.get("connection", "").lower() == "close"
    return status, close


async def _worker(
    host: str, port: int, request: bytes, result: Result, deadline: float, budget: list[int], timeout: float
) -> None:
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    try:
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            if connection is None:
                connection = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            reader, writer = connection
            start = time.perf_counter()
            try:
                writer.write(request)
                status, close = await asyncio.wait_for(_read_response(reader), timeout)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                result.errors += 1
                result.requests += 1
                result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"
                writer.close()
                connection = None
                continue
            result.latencies.append(time.perf_counter() - start)
            result.requests += 1
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status != 200:
                result.errors += 1
                result.first_error = result.first_error or f"HTTP {status}"
            if close:
                writer.close()
                connection = None
    finally:
        if connection is not None:
            connection[1].close()


async def _run(
    host: str, port: int, request: bytes, concurrency: int, duration: float, max_requests: int, timeout: float
) -> Result:
    result = Result()
    budget = [max_requests]
    start = time.perf_counter()
    deadline = start + duration
    await asyncio.gather(
        *(_worker(host, port, request, result, deadline, budget, timeout) for _ in range(concurrency))
    )
    result.elapsed = time.perf_counter() - start
    return result


def run(
    port: int,
    path: str,
    body: bytes,
    concurrency: int,
    duration: float,
    max_requests: int = 1_000_000,
    content_type: str = "application/json",
    timeout: float = 60.0,
    host: str = HOST,
    headers: dict[str, str] | None = None,
) -> Result:
    """Closed-loop load: ``concurrency`` connections for ``duration`` s or ``max_requests``."""
    check_loopback(host)
    request = build_request(host, port, path, body, content_type, headers)
    return asyncio.run(_run(host, port, request, concurrency, duration, max_requests, timeout))


# --- optional: wrk, when installed (apt-get install -y wrk) ---------------------------------

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "{content_type}"
wrk.headers["Accept"] = "application/json"
{extra_headers}
local f = io.open("{body_path}", "rb")
wrk.body = f:read("*all")
f:close()
done = function(summary, latency, requests)
  io.write(string.format("BENCH %d %d %d %d %d %f %f\\n", summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, summary.duration, 0, latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    port: int,
    path: str,
    body: bytes,
    concurrency: int,
    duration: float,
    content_type: str = "application/json",
    timeout: float = 60.0,
    host: str = HOST,
    headers: dict[str, str] | None = None,
) -> Result:
    """The same measurement with wrk (C, so the client costs less CPU). Bounded by duration."""
    check_loopback(host)
    with tempfile.TemporaryDirectory() as tmp:
        body_path = Path(tmp) / "body"
        body_path.write_bytes(body)
        script = Path(tmp) / "post.lua"
        extra = "\n".join(
            f'wrk.headers["{name}"] = "{value}"' for name, value in (headers or {}).items() if name != "Host"
        )
        script.write_text(
            WRK_SCRIPT.format(content_type=content_type, body_path=body_path, extra_headers=extra)
        )
        threads = max(1, min(2, concurrency))
        argv = [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(concurrency),
            "-d",
            f"{max(1, int(duration))}s",
            "--timeout",
            f"{int(timeout)}s",
            "-s",
            str(script),
            f"http://{host}:{port}{path}",
        ]
        out = subprocess.run(
            argv, capture_output=True, text=True, timeout=duration + timeout + 30, check=True
        ).stdout
    match = re.search(r"^BENCH (\d+) (\d+) (\d+) (\d+) \d+ ([\d.]+) ([\d.]+)$", out, re.M)
    if not match:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    requests, socket_errors, status_errors, micros = (int(match.group(i)) for i in range(1, 5))
    result = Result(requests=requests, errors=socket_errors + status_errors, elapsed=micros / 1e6)
    result.p50_ms = float(match.group(5)) / 1000
    result.p99_ms = float(match.group(6)) / 1000
    if result.errors:
        result.first_error = f"wrk: {socket_errors} socket errors, {status_errors} non-2xx"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/invocations")
    parser.add_argument("--body", default='"great value, works perfectly"')
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("-d", "--duration", type=float, default=5.0)
    parser.add_argument("-n", "--max-requests", type=int, default=100_000)
    parser.add_argument("--client", choices=["python", "wrk"], default="python")
    args = parser.parse_args()
    body = args.body.encode()
    if args.client == "wrk":
        result = run_wrk(args.port, args.path, body, args.concurrency, args.duration)
    else:
        result = run(args.port, args.path, body, args.concurrency, args.duration, args.max_requests)
    print(
        json.dumps(
            {
                "requests": result.requests,
                "rps": round(result.rps, 1),
                "p50_ms": round(result.percentile(50), 3),
                "p99_ms": round(result.percentile(99), 3),
                "errors": result.errors,
                "first_error": result.first_error,
            }
        )
    )


if __name__ == "__main__":
    main()
