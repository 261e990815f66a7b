"""Endpoint throughput and latency: our local endpoint (through the runtime API and its model
server directly, and the same model-server app under gunicorn) beside the SageMaker scikit-learn
serving stack (sagemaker-containers: gunicorn + gevent + Flask) and `mlflow models serve`, all on
this machine, all driven by the same load generator (benchmarks/loadgen.py).

Two models: the pipeline's model.tar.gz (the compiled scorer: plain data, no scikit-learn on the
request path) and the previous model (TF-IDF + logistic regression pickled with joblib, scored
with scikit-learn's predict_proba; previous_model.py). Servers whose name ends in `-sklearn` serve
the previous model; so do sagemaker-containers (what the SageMaker stack serves today) and MLflow
(which serves scikit-learn pipelines); sagemaker-containers-compiled serves the compiled scorer.

    python benchmarks/endpoint.py [--quick] [--state-dir DIR] [--servers ...] [--payloads ...]
                                  [--duration S]

Without --state-dir it brings up its own local SageMaker in benchmarks/.cache/endpoint-state
(upload, upsert, start --wait, as `make run-pipeline` does; if the pipeline cannot run, it trains
with the step scripts and deploys through CreateModel / CreateEndpointConfig / CreateEndpoint with
the deploy Lambda's settings, data capture on). One server runs at a time; each gets a warm-up,
then for each payload (1 review, a batch of 1000) and each concurrency a closed-loop run bounded by
--duration seconds and --max-requests requests. The workers column is how many worker processes
each server's own log says it runs (ours: SAGEMAKER_MODEL_SERVER_WORKERS, by default one per core;
sagemaker-containers: --smc-workers, by default one per core; mlflow: --mlflow-workers, default 1).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import interleave
import loadgen
import reviews
import stacks
from common import (
    CACHE,
    LOOPBACK,
    MEASUREMENT_HEADERS,
    PYTHON,
    REPO,
    deploy_endpoint,
    endpoint_server_log,
    endpoint_server_pid,
    find_model_archive,
    log,
    machine_description,
    measurement_cells,
    package_versions,
    remove_local_state,
    runtime_signer,
    start_local_server,
    stop_local_server,
    stop_process,
    table,
    wait_endpoint_in_service,
)
from previous_model import build_previous_archive

ENDPOINT = os.environ.get("PIPELINE_ENDPOINT_NAME", "sentiment-classifier")
ALL_SERVERS = (
    "ours-runtime",
    "ours-direct",
    "ours-gunicorn",
    "ours-direct-sklearn",
    "sagemaker-containers",
    "sagemaker-containers-compiled",
    "mlflow",
)
PAYLOADS = {"1 review": 1, "1000 reviews": 1000}


# --- the endpoint under test -----------------------------------------------------------------


def provision(state_dir: Path) -> dict[str, object]:
    """A local SageMaker with an InService endpoint in ``state_dir``; returns how it was made."""
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        times = deploy_endpoint(state_dir)
        wait_endpoint_in_service(state_dir, ENDPOINT)
        return {"how": "pipeline (data upload, upsert, start --wait)", "seconds": times}
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, TimeoutError) as exc:
        detail = getattr(exc, "stdout", "") or ""
        log(f"the pipeline did not deploy an endpoint ({exc}); last output:\n{str(detail)[-1500:]}")
        log("falling back: step scripts + CreateModel/CreateEndpointConfig/CreateEndpoint")
    return provision_direct(state_dir)


def train_archive(out: Path) -> Path:
    """preprocess + train on data/ with the step scripts; pack model.tar.gz as the job would."""
    base = out / "opt" / "ml"
    raw = base / "processing" / "input" / "data"
    raw.mkdir(parents=True, exist_ok=True)
    for name in ("train.csv", "test.csv"):
        shutil.copyfile(REPO / "data" / name, raw / name)
    env = {
        **os.environ,
        "SAGEMAKER_BASE_DIR": str(base),
        "SM_CHANNEL_TRAIN": str(base / "processing" / "train"),
    }
    for script in ("preprocess.py", "train.py"):
        subprocess.run(
            [PYTHON, str(REPO / "steps" / script)], env=env, check=True, capture_output=True, timeout=600
        )
    archive = out / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted((base / "model").iterdir()):
            tar.add(path, arcname=path.name)
    return archive


def provision_direct(state_dir: Path) -> dict[str, object]:
    import boto3

    from pipelines.local import daemon
    from pipelines.local.storage.objects import ObjectStore

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        archive = train_archive(Path(tmp))
        url = daemon.ensure_running(state_dir)
        keys = daemon.credentials(state_dir)
        session = boto3.Session(region_name="us-east-1", **keys.session_arguments())
        session.client("s3", endpoint_url=url).create_bucket(Bucket="local-sagemaker")
        model_uri = "s3://local-sagemaker/benchmarks/model/model.tar.gz"
        ObjectStore(state_dir / "store").put_file(model_uri, archive)
    sm = session.client("sagemaker", endpoint_url=url)
    sm.create_model(
        ModelName=f"{ENDPOINT}-bench",
        ExecutionRoleArn="arn:aws:iam::000000000000:role/local",
        PrimaryContainer={
            "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
            "ModelDataUrl": model_uri,
            "Environment": {
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
            },
        },
    )
    sm.create_endpoint_config(  # what steps/deploy.py asks for: data capture of every request
        EndpointConfigName=f"{ENDPOINT}-bench",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"{ENDPOINT}-bench",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
        DataCaptureConfig={
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": "s3://local-sagemaker/sentiment-classifier/data-capture",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {
                "CsvContentTypes": ["text/csv"],
                "JsonContentTypes": ["application/json", "application/jsonlines"],
            },
        },
    )
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=f"{ENDPOINT}-bench")
    wait_endpoint_in_service(state_dir, ENDPOINT)
    return {
        "how": "step scripts + CreateEndpoint (pipeline unavailable)",
        "seconds": {"total": time.perf_counter() - start},
    }


# --- payloads --------------------------------------------------------------------------------


def bodies(texts: list[str]) -> dict[str, dict[str, bytes]]:
    """Per body format, per payload name: the request body."""
    out: dict[str, dict[str, bytes]] = {"sagemaker": {}, "mlflow": {}}
    for name, count in PAYLOADS.items():
        chosen = texts[:count]
        out["sagemaker"][name] = json.dumps(
            {"review_text": chosen[0]} if count == 1 else {"instances": chosen}
        ).encode()
        out["mlflow"][name] = json.dumps({"inputs": chosen}).encode()
    return out


def labels_from(server: str, body: bytes) -> list[int]:
    document = json.loads(body)
    predictions = document["predictions"]
    if predictions and isinstance(predictions[0], dict):
        return [int(p["label"]) for p in predictions]
    return [int(row[1] >= row[0]) for row in predictions]  # mlflow: predict_proba rows


def post(port: int, path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    request = urllib.request.Request(
        f"http://{LOOPBACK}:{port}{path}",
        data=body,
        method="POST",
        headers=headers or {"Content-Type": "application/json", "Accept": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read()


# --- one server ------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    texts = reviews.sample_texts(1000)
    payload_bodies = bodies(texts)
    work = CACHE / "endpoint-work"
    work.mkdir(parents=True, exist_ok=True)
    own_state = args.state_dir is None
    state_dir = args.state_dir or CACHE / "endpoint-state"
    if own_state and state_dir.exists():
        remove_local_state(state_dir)
    provenance: dict[str, object] = {"how": "existing state dir"}
    checks: dict[str, list[int]] = {}
    startup: dict[str, float] = {}
    workers: dict[str, int | None] = {}
    servers: list[stacks.Server] = []
    runtime: list[subprocess.Popen[bytes]] = []
    try:
        if own_state:
            log(f"provisioning a local endpoint in {state_dir}")
            provenance = provision(state_dir)
        archive = find_model_archive(state_dir)
        log(f"model: {archive}")
        wanted = list(args.servers)
        if "ours-runtime" in wanted:
            # Restart the provisioned server as a process of ours, from this checkout.
            stop_local_server(state_dir)
            log("starting ours-runtime (local SageMaker)")
            began = time.monotonic()
            process, port = start_local_server(state_dir, work / "ours-runtime.log", ENDPOINT)
            runtime.append(process)
            startup["ours-runtime"] = time.monotonic() - began
            servers.append(
                stacks.Server(
                    "ours-runtime",
                    port,
                    f"/endpoints/{ENDPOINT}/invocations",
                    None,
                    endpoint_server_log(state_dir, ENDPOINT),
                )
            )
            log(f"ours-runtime: port {port}, model server pid {endpoint_server_pid(state_dir, ENDPOINT)}")
        previous = build_previous_archive(work)
        starters: dict[str, Callable[[], stacks.Server]] = {
            "ours-direct": lambda: stacks.start_ours(archive, work),
            "ours-gunicorn": lambda: stacks.start_gunicorn(archive, work),
            "ours-direct-sklearn": lambda: stacks.start_ours(previous, work, name="ours-direct-sklearn"),
            "sagemaker-containers": lambda: stacks.start_smc(previous, work, args.smc_workers),
            "sagemaker-containers-compiled": lambda: stacks.start_smc(
                archive, work, args.smc_workers, name="sagemaker-containers-compiled"
            ),
            "mlflow": lambda: stacks.start_mlflow(previous, work, args.mlflow_workers),
        }
        for name in [n for n in wanted if n in starters]:
            log(f"starting {name}")
            server = starters[name]()
            servers.append(server)
            startup[name] = server.startup_seconds
        targets = []
        for server in servers:
            bodies_for = payload_bodies[server.body_format]
            sign = (
                runtime_signer(state_dir, server.port, server.invocations_path)
                if server.name == "ours-runtime" else None
            )
            target = interleave.Target(server.name, server.port, server.invocations_path, bodies_for, sign)
            body = bodies_for["1000 reviews"]
            checks[server.name] = labels_from(
                server.name, post(server.port, server.invocations_path, body, target.headers(body))
            )
            targets.append(target)
        results = interleave.measure(
            targets,
            {name: PAYLOADS[name] for name in args.payloads},
            args.concurrency,
            args.duration,
            args.rounds,
            args.max_requests,
            args.client,
        )
        workers = {server.name: server.workers() for server in servers}  # before they stop
        for row in results:
            row["workers"] = workers[str(row["server"])]
    finally:
        for server in servers:
            server.stop()
        for process in runtime:
            stop_process(process)
        if own_state and (state_dir / "server.json").exists():
            stop_local_server(state_dir)
    reference = next(iter(checks.values()), [])
    agreement = {
        name: sum(a == b for a, b in zip(labels, reference, strict=False)) / max(len(reference), 1)
        for name, labels in checks.items()
    }
    return {
        "results": results,
        "provenance": provenance,
        "agreement": agreement,
        "startup_seconds": startup,
        "workers": workers,
    }


def versions() -> dict[str, dict[str, str]]:
    out = {"project venv": package_versions(PYTHON, ["scikit-learn", "numpy", "scipy", "joblib"])}
    smc = stacks.CACHE / "venvs" / "sagemaker-containers" / "bin" / "python"
    if smc.exists():
        out["sagemaker-containers venv"] = package_versions(
            smc,
            ["sagemaker-containers", "gunicorn", "gevent", "flask", "werkzeug", "protobuf", "scikit-learn"],
        )
    ml = stacks.CACHE / "venvs" / "mlflow" / "bin" / "python"
    if ml.exists():
        out["mlflow venv"] = package_versions(ml, ["mlflow", "uvicorn", "fastapi", "scikit-learn"])
    gunicorn = stacks.CACHE / "venvs" / "gunicorn" / "bin" / "python"
    if gunicorn.exists():
        out["gunicorn venv"] = package_versions(gunicorn, ["gunicorn", "numpy"])
    return out


def render(report: dict[str, Any], args: argparse.Namespace) -> str:
    rows = [
        [
            r["server"],
            "-" if r["workers"] is None else r["workers"],
            *measurement_cells(r),
            f"{r['load1']:.1f}",
        ]
        for r in report["results"]
    ]
    lines = [
        f"machine: {machine_description()}",
        f"client: {args.client}, {args.duration:g} s per cell in {args.rounds} interleaved rounds "
        f"(at most {args.max_requests} requests),"
        f" closed loop, keep-alive",
        f"endpoint provisioned by: {report['provenance']}",
        f"server start to healthy (s): { {k: round(v, 1) for k, v in report['startup_seconds'].items()} }",
        f"worker processes, as each server's log says: {report['workers']}",
        f"label agreement with {args.servers[0]} on the 1000-review batch: {report['agreement']}",
        "",
        table(
            ["server", "workers", *MEASUREMENT_HEADERS, "load before"],
            rows,
        ),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2 s per cell, concurrency 1 and 8: a smoke run in about 2 minutes",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="use the endpoint already deployed in this local state dir",
    )
    parser.add_argument("--servers", nargs="+", choices=ALL_SERVERS, default=list(ALL_SERVERS))
    parser.add_argument(
        "--payloads", nargs="+", choices=list(PAYLOADS), default=list(PAYLOADS), help="default: both"
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=None)
    parser.add_argument("--duration", type=float, default=None, help="seconds per cell")
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument(
        "--rounds", type=int, default=None, help="slices per cell, servers visited in alternating order"
    )
    parser.add_argument(
        "--client",
        choices=["python", "wrk"],
        default="wrk" if os.environ.get("BENCH_CLIENT") == "wrk" else "python",
    )
    parser.add_argument(
        "--smc-workers",
        type=int,
        default=None,
        help="SAGEMAKER_MODEL_SERVER_WORKERS (default: its own, one per core)",
    )
    parser.add_argument(
        "--mlflow-workers", type=int, default=None, help="mlflow models serve --workers (default: its own, 1)"
    )
    parser.add_argument("--json", type=Path, default=CACHE / "results" / "endpoint.json")
    args = parser.parse_args(argv)
    args.concurrency = args.concurrency or ([1, 8] if args.quick else [1, 8, 32])
    args.duration = args.duration or (2.0 if args.quick else 12.0)
    args.rounds = args.rounds or (1 if args.quick else 3)
    if args.client == "wrk" and not loadgen.wrk_available():
        log("wrk not installed (apt-get install -y wrk); using the Python client")
        args.client = "python"
    report = run(args)
    report["versions"] = versions()
    report["args"] = {k: str(v) for k, v in vars(args).items()}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str))
    print(render(report, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
