"""A full local pipeline run beside the step scripts run directly, and where the difference goes.

    python benchmarks/pipeline.py [--runs 1] [--quick]

Reuses benchmarks/local_pipeline.py (steps_directly: preprocess -> train -> evaluate as plain
scripts; full_local_run: server start, data upload, upsert, start --wait, in this process) and
adds the breakdown: each step's duration as the local executor recorded it (ListPipelineExecution
Steps) against the same script run directly, the endpoint's time to InService after the run, and
the fixed costs measured alone: interpreter start, importing the SageMaker SDK (what upsert pays
to build the definition), starting the local server, staging inputs through the object store,
packing model.tar.gz, the Lambda subprocess (interpreter + boto3), a model server's start.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import local_pipeline
import stacks
from common import CACHE, PYTHON, REPO, find_model_archive, log, machine_description, table

ENDPOINT = os.environ.get("PIPELINE_ENDPOINT_NAME", "sentiment-classifier")
PIPELINE = os.environ.get("PIPELINE_PIPELINE_NAME", "sentiment-classifier")


def python_seconds(code: str, repeats: int = 3) -> float:
    """Median wall time of ``python -c code`` in a fresh interpreter (cwd = repo)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([PYTHON, "-c", code], cwd=REPO, check=True, capture_output=True, timeout=300)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fixed_costs(state_dir: Path) -> dict[str, float]:
    from pipelines.local.storage.objects import ObjectStore

    costs = {
        "interpreter start (python -c pass)": python_seconds("pass"),
        "import pandas + sklearn (every step script)": python_seconds(
            "import pandas, sklearn.linear_model, sklearn.feature_extraction.text"
        ),
        "import boto3 (Lambda subprocess, CLI)": python_seconds("import boto3"),
        "import pipelines.cli (every CLI command)": python_seconds("import pipelines.cli"),
        "import pipelines.definition (SageMaker SDK, upsert)": python_seconds("import pipelines.definition"),
    }
    with tempfile.TemporaryDirectory() as tmp:
        store = ObjectStore(Path(tmp) / "store")
        start = time.perf_counter()
        for name in ("train.csv", "test.csv"):
            store.put_file(f"s3://bench-bucket/data/{name}", REPO / "data" / name)
        store.download("s3://bench-bucket/data", Path(tmp) / "staged")
        costs["stage data in and out of the object store"] = time.perf_counter() - start
    archive = find_model_archive(state_dir)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = stacks.extract(archive, Path(tmp) / "model")
        start = time.perf_counter()
        local_pipeline_pack(model_dir, Path(tmp) / "model.tar.gz")
        costs["pack model.tar.gz"] = time.perf_counter() - start
        server = stacks.start_ours(archive, Path(tmp) / "ours")
        server.stop()
        costs["model server start (unpack, start, load, /ping)"] = server.startup_seconds
    return costs


def local_pipeline_pack(model_dir: Path, archive: Path) -> None:
    import tarfile

    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)


def execution_breakdown(state_dir: Path) -> tuple[dict[str, float], float]:
    """Per-step durations of the latest execution, and the wait for the endpoint InService."""
    import boto3

    from pipelines.local import daemon

    url = daemon.ensure_running(state_dir)
    keys = daemon.credentials(state_dir)
    session = boto3.Session(region_name="us-east-1", **keys.session_arguments())
    sm = session.client("sagemaker", endpoint_url=url)
    arn = sm.list_pipeline_executions(PipelineName=PIPELINE, SortBy="CreationTime", SortOrder="Descending")[
        "PipelineExecutionSummaries"
    ][0]["PipelineExecutionArn"]
    steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    durations = {}
    for step in steps:
        start, end = step.get("StartTime"), step.get("EndTime")
        if isinstance(start, datetime) and isinstance(end, datetime):
            durations[f"{step['StepName']} ({step.get('StepStatus')})"] = (end - start).total_seconds()
    execution = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
    durations["execution (created -> last modified)"] = (
        execution["LastModifiedTime"] - execution["CreationTime"]
    ).total_seconds()
    start = time.perf_counter()
    deadline = start + 180
    status = "?"
    while time.perf_counter() < deadline:
        try:
            status = sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"]
        except sm.exceptions.ClientError:
            status = "missing"
        if status not in ("Creating", "Updating", "missing"):
            break
        time.sleep(0.1)
    return durations, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=None, help="default 3 (1 with --quick)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    direct: list[dict[str, float]] = []
    local: list[dict[str, float]] = []
    steps: list[dict[str, float]] = []
    in_service: list[float] = []
    costs: dict[str, float] = {}
    for run in range(runs):
        log(f"run {run + 1}/{runs}: step scripts directly")
        direct.append(local_pipeline.steps_directly())
        with tempfile.TemporaryDirectory(dir=CACHE if CACHE.exists() else None) as tmp:
            state = Path(tmp)
            try:
                log(f"run {run + 1}/{runs}: full local run in {state}")
                with contextlib.redirect_stdout(sys.stderr):  # the CLI's step tables
                    local.append(local_pipeline.full_local_run(state))
                durations, waited = execution_breakdown(state)
                steps.append(durations)
                in_service.append(waited)
                if run == runs - 1:
                    log("measuring fixed costs")
                    costs = fixed_costs(state)
            finally:
                local_pipeline.daemon.stop(state)
    os.environ.pop("PIPELINE_STATE_DIR", None)

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows if key in r)

    direct_total = statistics.median(sum(r.values()) for r in direct)
    local_total = statistics.median(sum(r.values()) for r in local)
    endpoint_wait = statistics.median(in_service)
    print(f"machine: {machine_description()}")
    print(f"{runs} run(s), medians in seconds\n")
    rows = [["steps run directly: " + k, f"{med(direct, k):.2f}"] for k in direct[0]]
    rows.append(["steps run directly: total", f"{direct_total:.2f}"])
    rows += [["full local run: " + k, f"{med(local, k):.2f}"] for k in local[0]]
    rows.append(["full local run: total", f"{local_total:.2f}"])
    rows.append(["  + endpoint InService after start --wait returned", f"{endpoint_wait:.2f}"])
    rows.append(
        ["difference (full run + endpoint - direct)", f"{local_total + endpoint_wait - direct_total:.2f}"]
    )
    print(table(["phase", "seconds"], rows))
    print("\nsteps as the local executor timed them (start -> end), beside the script alone:\n")
    script_of = {"Preprocess": "preprocess", "Train": "train", "Evaluate": "evaluate"}
    step_rows = []
    for key in steps[0]:
        name = key.split(" ")[0]
        alone = med(direct, script_of[name]) if name in script_of else None
        value = med(steps, key)
        step_rows.append(
            [
                key,
                f"{value:.2f}",
                "-" if alone is None else f"{alone:.2f}",
                "-" if alone is None else f"{value - alone:+.2f}",
            ]
        )
    print(table(["step", "in the pipeline", "script alone", "overhead"], step_rows))
    print("\nfixed costs measured alone (median of 3 where a process is started):\n")
    print(table(["cost", "seconds"], [[k, f"{v:.3f}"] for k, v in costs.items()]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
