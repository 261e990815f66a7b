"""Measure several servers fairly on a shared machine: every server is up at once (idle ones
cost memory, not CPU), and each measurement cell (payload x concurrency) is split into rounds
that visit the servers in alternating order, so load from other work on the machine spreads
over all of them instead of landing on whichever ran at that moment.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import loadgen
from common import log


@dataclass
class Target:
    name: str
    port: int
    path: str
    bodies: dict[str, bytes]  # payload name -> request body
    sign: Callable[[bytes], dict[str, str]] | None = None  # headers a body's request needs (SigV4)

    def headers(self, body: bytes) -> dict[str, str] | None:
        """Signed afresh for each run: a signature is good for five minutes."""
        return self.sign(body) if self.sign else None


def measure(
    targets: Sequence[Target],
    payloads: dict[str, int],
    concurrencies: Sequence[int],
    duration: float,
    rounds: int,
    max_requests: int,
    client: str = "python",
) -> list[dict[str, object]]:
    """One row per target x payload x concurrency; ``duration`` seconds per cell per target, in
    ``rounds`` slices. Latency percentiles are over every request of the cell (python client) or
    the median of the rounds' percentiles (wrk, which only reports percentiles)."""
    rows: list[dict[str, object]] = []
    slice_s = max(1.0, duration / rounds)
    for payload, count in payloads.items():
        for target in targets:  # warm-up: every worker loads the model and touches the path
            loadgen.run(
                target.port,
                target.path,
                target.bodies[payload],
                max(concurrencies),
                min(2.0, duration),
                max_requests=200,
                headers=target.headers(target.bodies[payload]),
            )
        for concurrency in concurrencies:
            merged = {t.name: loadgen.Result() for t in targets}
            p50s: dict[str, list[float]] = {t.name: [] for t in targets}
            p99s: dict[str, list[float]] = {t.name: [] for t in targets}
            loads: list[float] = []
            for round_ in range(rounds):
                order = list(targets) if round_ % 2 == 0 else list(reversed(targets))
                for target in order:
                    loads.append(os.getloadavg()[0])
                    body = target.bodies[payload]
                    if client == "wrk":
                        result = loadgen.run_wrk(
                            target.port, target.path, body, concurrency, slice_s, headers=target.headers(body)
                        )
                    else:
                        result = loadgen.run(
                            target.port,
                            target.path,
                            body,
                            concurrency,
                            slice_s,
                            max_requests=max(1, max_requests // rounds),
                            headers=target.headers(body),
                        )
                    into = merged[target.name]
                    into.requests += result.requests
                    into.errors += result.errors
                    into.elapsed += result.elapsed
                    into.latencies.extend(result.latencies)
                    into.first_error = into.first_error or result.first_error
                    p50s[target.name].append(result.percentile(50))
                    p99s[target.name].append(result.percentile(99))
            for target in targets:
                result = merged[target.name]
                if client == "wrk":
                    result.p50_ms = statistics.median(p50s[target.name])
                    result.p99_ms = statistics.median(p99s[target.name])
                row = {
                    "server": target.name,
                    "payload": payload,
                    "concurrency": concurrency,
                    "requests": result.requests,
                    "rps": result.rps,
                    "reviews_per_s": result.rps * count,
                    "p50_ms": result.percentile(50),
                    "p99_ms": result.percentile(99),
                    "errors": result.errors,
                    "first_error": result.first_error,
                    "load1": statistics.mean(loads),
                }
                rows.append(row)
                log(
                    f"{target.name:28} {payload:12} c={concurrency:<3} {result.rps:8.1f} req/s "
                    f"p50 {row['p50_ms']:8.2f} ms p99 {row['p99_ms']:8.2f} ms errors {result.errors}"
                )
    return rows
