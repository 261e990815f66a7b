"""What a long history costs a run and a listing: the local SageMaker's lookups at N executions.

    python benchmarks/history.py [--executions 1000 10000] [--quick]

A pipeline on an hourly schedule (the monitoring one) runs 8,760 times a year, and every run is
kept. For each N this fills a fresh state's database with N executions of one pipeline, six steps
each (each step with one of 50 cache keys, as repeated runs on a few datasets and code versions
give), then times, through the service as the server calls it: a step-cache lookup that finds a
source and one that finds none (each cacheable step of a run makes one), DescribePipeline and
ListPipelines (each pipeline's last run), and ListPipelineExecutions with MaxResults=1 (what
`status` asks first). Median of 20 calls each, in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import log, machine_description, table

from pipelines.local.api.protocol import Dispatcher
from pipelines.local.service.backend import LocalSageMaker

STEPS = ("Preprocess", "Train", "Evaluate", "AccuracyCheck", "RegisterModel", "DeployEndpoint")
KEYS = 50
ROLE = "arn:aws:iam::000000000000:role/bench"
TOKEN = "history-benchmark-0000000000000000"  # CreatePipeline's idempotency token: 32 characters or more
STOP = {"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": "x"}}
DEFINITION = {"Version": "2020-12-01", "Steps": [STOP]}


def call(dispatcher: Dispatcher, operation: str, **request: Any) -> dict[str, Any]:
    reply = dispatcher.json_api(f"SageMaker.{operation}", json.dumps(request).encode())
    body = reply.body if isinstance(reply.body, bytes) else b"".join(reply.body)
    if reply.status != 200:
        raise RuntimeError(f"{operation}: {body.decode()}")
    return dict(json.loads(body))


def median_ms(action: Callable[[], object], calls: int = 20) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(executions: int) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        backend = LocalSageMaker(Path(tmp), "us-east-1", "http://127.0.0.1:1")
        try:
            dispatcher = Dispatcher(backend)
            pipeline = call(dispatcher, "CreatePipeline", PipelineName="history", RoleArn=ROLE,
                            PipelineDefinition=json.dumps(DEFINITION), ClientRequestToken=TOKEN)
            arn = pipeline["PipelineArn"]
            database = backend.pipelines.database
            first = time.time() - executions * 3600
            for number in range(executions):
                execution = f"{arn}/execution/{number:012x}"
                created = first + number * 3600
                database.save_execution({
                    "PipelineExecutionArn": execution, "PipelineArn": arn, "CreationTime": created,
                    "LastModifiedTime": created + 60, "PipelineExecutionStatus": "Succeeded",
                    "PipelineExecutionDisplayName": f"execution-{number}", "PipelineVersionId": 1,
                })
                for name in STEPS:
                    database.save_step(execution, {
                        "StepName": name, "StepStatus": "Succeeded", "StartTime": created,
                        "EndTime": created + 30, "AttemptCount": 1, "Metadata": {},
                        "_CacheKey": f"{name}-{number % KEYS}",
                    })
            pipelines = backend.pipelines
            lookups: list[Callable[[], object]] = [
                lambda: pipelines.cached_step(arn, "Train", "Train-7", None),
                lambda: pipelines.cached_step(arn, "Train", "Train-new", None),
                lambda: call(dispatcher, "DescribePipeline", PipelineName="history"),
                lambda: call(dispatcher, "ListPipelines"),
                lambda: call(dispatcher, "ListPipelineExecutions", PipelineName="history", MaxResults=1),
            ]
            return [str(executions), *(f"{median_ms(lookup):.2f}" for lookup in lookups)]
        finally:
            backend.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--executions", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--quick", action="store_true", help="1,000 executions only")
    args = parser.parse_args()
    sizes = [1000] if args.quick else args.executions
    rows = []
    for size in sizes:
        log(f"{size} executions")
        rows.append(measure(size))
    print(f"machine: {machine_description()}\n")
    print("median ms of 20 calls, through the service as the server calls it:\n")
    print(table(["executions", "cache lookup (hit)", "cache lookup (miss)", "DescribePipeline",
                 "ListPipelines", "ListPipelineExecutions (1)"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
