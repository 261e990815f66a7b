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
from urllib.parse import urlparse

from pipelines.local import daemon
from pipelines.settings import load_settings

BODY = b'{"review_text": "great value, works perfectly"}'


def worker(host: str, port: int, path: str, count: int, latencies: list[float],
           failures: list[int]) -> None:
    connection = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    for _ in range(count):
        start = time.perf_counter()
        connection.request("POST", path, BODY, headers)
        response = connection.getresponse()
        response.read()
        latencies.append(time.perf_counter() - start)
        if response.status != 200:
            failures.append(response.status)
    connection.close()


def measure(url: str, endpoint: str, requests: int, concurrency: int) -> str:
    parsed = urlparse(url)
    latencies: list[float] = []
    failures: list[int] = []
    per_thread = requests // concurrency
    threads = [
        threading.Thread(target=worker, args=(parsed.hostname, parsed.port,
                                              f"/endpoints/{endpoint}/invocations", per_thread,
                                              latencies, failures))
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
    measure(server["url"], settings.endpoint_name, 200, 1)  # warm-up
    for concurrency in args.concurrency:
        print(measure(server["url"], settings.endpoint_name, args.requests, concurrency))


if __name__ == "__main__":
    main()
