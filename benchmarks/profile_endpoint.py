"""Where the time of an invocation goes on our path, and what the model server's workers buy.

    python benchmarks/profile_endpoint.py [--quick] [--no-profile] [--duration S] [--rounds N]

1. Profile: py-spy (installed into benchmarks/.cache/venvs/tools) samples the local SageMaker
   server and its model server (the pre-forked workers with it) while the load generator sends
   single reviews through the runtime API; prints the hottest functions per process (on-CPU
   samples) and the share of named stages.
2. Workers: the runtime API as committed (its model server with its default number of workers),
   and our model server started directly twice, with SAGEMAKER_MODEL_SERVER_WORKERS=1 and with its
   default (one worker per available core); all up at once and measured in interleaved rounds
   (benchmarks/interleave.py). Same load generator and payloads as benchmarks/endpoint.py.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import endpoint
import interleave
import loadgen
import reviews
import stacks
from common import (
    CACHE,
    MEASUREMENT_HEADERS,
    endpoint_server_log,
    endpoint_server_pid,
    ensure_venv,
    find_model_archive,
    log,
    machine_description,
    measurement_cells,
    remove_local_state,
    runtime_signer,
    start_local_server,
    stop_local_server,
    stop_process,
    table,
)

ENDPOINT = endpoint.ENDPOINT
STAGES = {  # substring of a frame -> stage name, first match from the leaf up wins
    "predict_proba": "model: predict_proba (TF-IDF + LR)",
    "read_reviews": "model: read_reviews (parse JSON)",
    "write_answer": "model: write_answer (JSON)",
    "capture.py": "runtime: data capture",
    "ConnectionPool": "runtime: forward to model server",
    "parse_request": "http: parse request",
    "send_response": "http: write response",
    "end_headers": "http: write response",
    "_route": "runtime: routing",
    "process_request": "http: accept / thread start",
}


def pyspy() -> Path | None:
    try:
        python = ensure_venv("tools", [["py-spy==0.4.3"]])
    except subprocess.CalledProcessError as exc:
        log(f"py-spy unavailable ({exc}); skipping the profile")
        return None
    return python.parent / "py-spy"


def profile(state_dir: Path, port: int, body: bytes, duration: float, model_label: str) -> str:
    """Sample both servers while the runtime API is under load; summarise the samples. The model
    server's workers are its children (--subprocesses); the local server's are its model servers,
    so it is sampled alone."""
    spy = pyspy()
    if spy is None:
        return "(py-spy not available)"
    server_pid = json.loads((state_dir / "server.json").read_text())["pid"]
    model_pid = endpoint_server_pid(state_dir, ENDPOINT)
    outputs = {}
    procs = []
    for label, pid, file_name in (
        ("local server", server_pid, "local-server"),
        (model_label, model_pid, "model-server"),
    ):
        if pid is None:
            continue
        out = CACHE / "results" / f"pyspy-{file_name}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        procs.append(
            subprocess.Popen(
                [
                    str(spy),
                    "record",
                    "--pid",
                    str(pid),
                    "--rate",
                    "200",
                    "--duration",
                    str(int(duration)),
                    "--format",
                    "raw",
                    "--output",
                    str(out),
                    "--nonblocking",
                    "--gil",
                    *(["--subprocesses"] if file_name == "model-server" else []),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        )
        outputs[label] = out
    time.sleep(1.0)
    path = f"/endpoints/{ENDPOINT}/invocations"
    headers = runtime_signer(state_dir, port, path)(body)
    result = loadgen.run(port, path, body, 8, duration - 2, headers=headers)
    for proc in procs:
        try:
            proc.wait(timeout=duration + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
    lines = [
        "py-spy --gil: only samples of the thread holding the GIL, i.e. Python CPU time",
        f"load during the profile: {result.rps:.0f} req/s, p50 {result.percentile(50):.2f} ms, "
        f"p99 {result.percentile(99):.2f} ms (1 review, concurrency 8)",
    ]
    for label, out in outputs.items():
        if out.exists():
            lines.append(summarise(label, out.read_text()))
    return "\n\n".join(lines)


FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*)(?::\d+)?\)$")


def summarise(label: str, raw: str, top: int = 12) -> str:
    """py-spy raw output: one 'frame;frame;...;leaf count' line per distinct stack."""
    self_time: collections.Counter[str] = collections.Counter()
    stages: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        leaf = frames[-1]
        match = FRAME.match(leaf)
        name = f"{match['func']} ({Path(match['file']).name})" if match else leaf
        self_time[name] += n
        stage = "other"
        for frame in reversed(frames):
            hit = next((s for key, s in STAGES.items() if key in frame), None)
            if hit:
                stage = hit
                break
        stages[stage] += n
    if not total:
        return f"{label}: no samples"
    rows = [[f"{100 * n / total:.1f}%", name[:90]] for name, n in self_time.most_common(top)]
    stage_rows = [[f"{100 * n / total:.1f}%", name] for name, n in stages.most_common()]
    return (
        f"{label}: {total} on-CPU samples\n\n"
        + table(["self", "function"], rows)
        + "\n\n"
        + table(["share", "stage (innermost named frame)"], stage_rows)
    )


def workers_label(count: int | None) -> str:
    return "? workers (not in its log)" if count is None else f"{count} worker{'s' if count != 1 else ''}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--duration", type=float, default=None, help="seconds per cell per server")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    duration = args.duration or (2.0 if args.quick else 9.0)
    rounds = args.rounds or (1 if args.quick else 3)
    concurrencies = [1, 8] if args.quick else [1, 8, 32]
    texts = reviews.sample_texts(1000)
    bodies = endpoint.bodies(texts)["sagemaker"]
    state_dir = CACHE / "profile-state"
    work = CACHE / "profile-work"
    if state_dir.exists():
        remove_local_state(state_dir)
    log(f"provisioning a local endpoint in {state_dir}")
    endpoint.provision(state_dir)
    archive = find_model_archive(state_dir)
    stop_local_server(state_dir)
    runtime: subprocess.Popen[bytes] | None = None
    servers: list[stacks.Server] = []
    targets: list[interleave.Target] = []
    profile_text = ""
    path = f"/endpoints/{ENDPOINT}/invocations"
    try:
        log("starting the runtime API (local SageMaker)")
        runtime, port = start_local_server(state_dir, work / "local-server.log", ENDPOINT)
        log_path = endpoint_server_log(state_dir, ENDPOINT)
        model_workers = workers_label(stacks.Server("runtime", port, path, None, log_path).workers())
        label = f"runtime API, model server with {model_workers}"
        targets.append(interleave.Target(label, port, path, bodies, runtime_signer(state_dir, port, path)))
        if not args.no_profile:
            seconds = 6.0 if args.quick else 12.0
            model_label = f"model server, {model_workers}"
            profile_text = profile(state_dir, port, bodies["1 review"], seconds, model_label)
        for name, workers in (("model-server-1-worker", 1), ("model-server-default", None)):
            log(f"starting {name}")
            server = stacks.start_ours(archive, work, name=name, workers=workers)
            servers.append(server)
            label = f"model server, {workers_label(server.workers())}"
            targets.append(interleave.Target(label, server.port, "/invocations", bodies))
        rows = interleave.measure(targets, endpoint.PAYLOADS, concurrencies, duration, rounds, 200_000)
    finally:
        for server in servers:
            server.stop()
        if runtime is not None:
            stop_process(runtime)
    print(f"machine: {machine_description()}")
    print(f"client: python, {duration:g} s per cell per server in {rounds} interleaved rounds\n")
    if profile_text:
        print("## profile of the runtime path\n\n" + profile_text + "\n")
    print(
        "## model server workers: the runtime API (POST /endpoints/<name>/invocations) and the model\n"
        "## server directly (POST /invocations) with SAGEMAKER_MODEL_SERVER_WORKERS=1 and with its\n"
        "## default (one worker per available core)\n"
    )
    print(table(["server", *MEASUREMENT_HEADERS], [[r["server"], *measurement_cells(r)] for r in rows]))
    (CACHE / "results").mkdir(parents=True, exist_ok=True)
    (CACHE / "results" / "profile.json").write_text(json.dumps({"workers": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
