"""Latency and throughput of single-review invocations through the local runtime API.

    python benchmarks/invoke_latency.py [--requests 2000] [--concurrency 1 8]

Needs a deployed local endpoint (`make run-pipeline`). Sends `POST /endpoints/<name>/invocations`
over keep-alive HTTP from threads in this process and prints p50 / p99 latency and requests per
second for each concurrency.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from pipelines.local import daemon
from pipelines.settings import load_settings

BODY = b'{"review_text": "great value, works perfectly"}'


def worker(host: str, port: int, path: str, count: int, latencies: list[float],
           failures: list[int], sign: Callable[[bytes], dict[str, str]]) -> None:
    connection = http.client.HTTPConnection(host, port, timeout=30)
    headers = sign(BODY)  # good for five minutes: longer than a run
    for _ in range(count):
        start = time.perf_counter()
        connection.request("POST", path, BODY, headers)
        response = connection.getresponse()
        response.read()
        latencies.append(time.perf_counter() - start)
        if response.status != 200:
            failures.append(response.status)
    connection.close()


def signer(state_dir: Path, url: str, path: str) -> Callable[[bytes], dict[str, str]]:
    plain = {"Content-Type": "application/json", "Accept": "application/json"}
    return lambda body: daemon.signed_headers(state_dir, "POST", f"{url}{path}", body, plain)


def measure(state_dir: Path, url: str, endpoint: str, requests: int, concurrency: int) -> str:
    parsed = urlparse(url)
    path = f"/endpoints/{endpoint}/invocations"
    latencies: list[float] = []
    failures: list[int] = []
    per_thread = requests // concurrency
    threads = [
        threading.Thread(target=worker, args=(parsed.hostname, parsed.port, path, per_thread,
                                              latencies, failures, signer(state_dir, url, path)))
        for _ in range(concurrency)
    ]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    cuts = statistics.quantiles(latencies, n=100)
    return (f"concurrency {concurrency:>3}: {len(latencies) / elapsed:8.0f} req/s   "
            f"p50 {cuts[49] * 1000:6.2f} ms   p99 {cuts[98] * 1000:6.2f} ms   "
            f"failed {len(failures)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    settings = load_settings()
    server = daemon.running_server(settings.state_path)
    if not server:
        raise SystemExit("no local SageMaker running: run `make run-pipeline` first")
    state = settings.state_path
    measure(state, server["url"], settings.endpoint_name, 200, 1)  # warm-up
    for concurrency in args.concurrency:
        print(measure(state, server["url"], settings.endpoint_name, args.requests, concurrency))


if __name__ == "__main__":
    main()
