"""Where the time of an invocation goes on our path, and what the proposed fixes buy.

    python benchmarks/profile_endpoint.py [--quick] [--no-profile] [--duration S]

1. Profile: py-spy (installed into benchmarks/.cache/venvs/tools) samples the local SageMaker
   server and its model server while the load generator sends single reviews through the runtime
   API; prints the hottest functions per process (on-CPU samples) and the share of named stages.
2. Prototypes: benchmarks/prototype.py patches a copy of pipelines/ under benchmarks/.cache/proto;
   the same endpoint (same state dir, restored on server start) is measured through the runtime API
   with the original code and each cumulative fix, and the model server directly with and without
   the pre-fork workers fix. Same load generator, same payloads as benchmarks/endpoint.py.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import endpoint  # noqa: E402
import loadgen  # noqa: E402
import prototype  # noqa: E402
import reviews  # noqa: E402
import stacks  # noqa: E402
from common import (  # noqa: E402
    CACHE,
    PYTHON,
    REPO,
    endpoint_server_pid,
    ensure_venv,
    find_model_archive,
    log,
    machine_description,
    start_process,
    stop_local_server,
    stop_process,
    table,
    wait_endpoint_in_service,
)

ENDPOINT = endpoint.ENDPOINT
VARIANTS = {
    "original": [],
    "+nodelay": ["nodelay"],
    "+nodelay +backlog-pool": ["nodelay", "backlog-pool"],
    "+nodelay +backlog-pool +workers": ["nodelay", "backlog-pool", "workers"],
}
STAGES = {  # substring of a frame -> stage name, first match from the leaf up wins
    "predict_proba": "model: predict_proba (TF-IDF + LR)",
    "input_fn": "model: input_fn (parse JSON)",
    "output_fn": "model: output_fn (JSON)",
    "capture.py": "runtime: data capture",
    "_ConnectionPool": "runtime: forward to model server",
    "parse_request": "http: parse request",
    "send_response": "http: write response",
    "end_headers": "http: write response",
    "_route": "runtime: routing",
    "process_request": "http: accept / thread start",
}


def start_local(state_dir: Path, root: Path, log_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    """The local SageMaker server from ``root`` (the repo or a patched copy) on ``state_dir``;
    it restores the endpoint before it publishes server.json."""
    (state_dir / "server.json").unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(root)}
    process = start_process([PYTHON, "-m", "pipelines.local.server", "--state-dir", str(state_dir),
                             "--port", "0"], log_path, env, cwd=root)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (state_dir / "server.json").exists():
            info = json.loads((state_dir / "server.json").read_text())
            if info.get("pid") == process.pid:
                wait_endpoint_in_service(state_dir, ENDPOINT, timeout=120)
                return process, int(info["port"])
        if process.poll() is not None:
            raise RuntimeError(f"local server exited: {log_path.read_text()[-2000:]}")
        time.sleep(0.1)
    stop_process(process)
    raise TimeoutError("local server did not start")


def pyspy() -> Path | None:
    try:
        python = ensure_venv("tools", [["py-spy==0.4.3"]])
    except subprocess.CalledProcessError as exc:
        log(f"py-spy unavailable ({exc}); skipping the profile")
        return None
    return python.parent / "py-spy"


def profile(state_dir: Path, port: int, body: bytes, duration: float) -> str:
    """Sample both processes while the runtime API is under load; summarise the samples."""
    spy = pyspy()
    if spy is None:
        return "(py-spy not available)"
    server_pid = json.loads((state_dir / "server.json").read_text())["pid"]
    model_pid = endpoint_server_pid(state_dir, ENDPOINT)
    outputs = {}
    procs = []
    for label, pid in (("local server", server_pid), ("model server", model_pid)):
        if pid is None:
            continue
        out = CACHE / "results" / f"pyspy-{label.replace(' ', '-')}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        procs.append(subprocess.Popen(
            [str(spy), "record", "--pid", str(pid), "--rate", "200", "--duration", str(int(duration)),
             "--format", "raw", "--output", str(out), "--nonblocking", "--gil"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        outputs[label] = out
    time.sleep(1.0)
    result = loadgen.run(port, f"/endpoints/{ENDPOINT}/invocations", body, 8, duration - 2)
    for proc in procs:
        try:
            proc.wait(timeout=duration + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
    lines = ["py-spy --gil: only samples of the thread holding the GIL, i.e. Python CPU time",
             f"load during the profile: {result.rps:.0f} req/s, p50 {result.percentile(50):.2f} ms, "
             f"p99 {result.percentile(99):.2f} ms (1 review, concurrency 8)"]
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
    return (f"{label}: {total} on-CPU samples\n\n" + table(["self", "function"], rows) + "\n\n"
            + table(["share", "stage (innermost named frame)"], stage_rows))


def measure_cells(port: int, path: str, bodies: dict[str, bytes], concurrencies: list[int],
                  duration: float, label: str) -> list[list[object]]:
    rows = []
    for payload, body in bodies.items():
        loadgen.run(port, path, body, max(concurrencies), min(2.0, duration), max_requests=200)
        for c in concurrencies:
            r = loadgen.run(port, path, body, c, duration)
            rows.append([label, payload, c, f"{r.rps:.1f}", f"{r.rps * endpoint.PAYLOADS[payload]:.0f}",
                         f"{r.percentile(50):.2f}", f"{r.percentile(99):.2f}", r.errors])
            log(f"{label:34} {payload:12} c={c:<3} {r.rps:8.1f} req/s p50 {r.percentile(50):8.2f} "
                f"p99 {r.percentile(99):8.2f} errors {r.errors}")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = parser.parse_args()
    duration = args.duration or (2.0 if args.quick else 6.0)
    concurrencies = [1, 8] if args.quick else [1, 8, 32]
    texts = reviews.sample_texts(1000)
    bodies = endpoint.bodies(texts)["sagemaker"]
    state_dir = CACHE / "profile-state"
    if state_dir.exists():
        stop_local_server(state_dir)
        shutil.rmtree(state_dir)
    log(f"provisioning a local endpoint in {state_dir}")
    endpoint.provision(state_dir)
    archive = find_model_archive(state_dir)
    stop_local_server(state_dir)
    runtime_rows: list[list[object]] = []
    direct_rows: list[list[object]] = []
    profile_text = ""
    logs = CACHE / "proto-logs"
    try:
        for label in args.variants:
            fixes = VARIANTS[label]
            root = prototype.build(fixes) if fixes else REPO
            process, port = start_local(state_dir, root, logs / f"local-{len(fixes)}.log")
            try:
                if label == "original" and not args.no_profile:
                    profile_text = profile(state_dir, port, bodies["1 review"],
                                           6.0 if args.quick else 12.0)
                runtime_rows += measure_cells(port, f"/endpoints/{ENDPOINT}/invocations", bodies,
                                              concurrencies, duration, f"runtime API, {label}")
            finally:
                stop_process(process)
        for label, fixes in (("model server, original", []), ("model server, +workers", ["workers"])):
            root = prototype.build(fixes) if fixes else REPO
            server = stacks.start_ours(archive, CACHE / "proto-work", pythonpath=str(root),
                                       name="proto-" + "-".join(fixes or ["original"]))
            try:
                direct_rows += measure_cells(server.port, "/invocations", bodies, concurrencies,
                                             duration, label)
            finally:
                server.stop()
    finally:
        if (state_dir / "server.json").exists():
            stop_local_server(state_dir)
    headers = ["variant", "payload", "concurrency", "req/s", "reviews/s", "p50 ms", "p99 ms", "errors"]
    print(f"machine: {machine_description()}\nclient: python, {duration:g} s per cell\n")
    if profile_text:
        print("## profile of the runtime path (original code)\n\n" + profile_text + "\n")
    print("## prototypes: runtime API (POST /endpoints/<name>/invocations)\n")
    print(table(headers, runtime_rows))
    print("\n## prototypes: model server directly (POST /invocations)\n")
    print(table(headers, direct_rows))
    (CACHE / "results").mkdir(parents=True, exist_ok=True)
    (CACHE / "results" / "prototypes.json").write_text(json.dumps(
        {"runtime": runtime_rows, "direct": direct_rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
