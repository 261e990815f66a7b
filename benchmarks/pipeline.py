"""`make run-pipeline` three times in one state, beside the step scripts run directly.

    python benchmarks/pipeline.py [--runs 1] [--quick]

Each run is what `make run-pipeline` runs, `python -m pipelines run` (data upload, upsert, start
--wait in one process; it waits for the endpoint to be InService): first as on a fresh clone (a
fresh state, and no definitions cached: the checkout's out/cache/definitions is emptied, so the
SageMaker SDK builds them, as a fresh clone's first run does), then again
with unchanged data and code (every step before the gate should be a step-cache hit), then after
uploading changed data (a new content address: every step runs again). Beside them: the three step
scripts run directly (benchmarks/local_pipeline.py steps_directly), each step's duration as the
local executor recorded it, and the fixed costs measured alone: interpreter start, importing the
SageMaker SDK (what upsert pays to build the definition), staging inputs through the object store,
packing model.tar.gz, a model server's start. The scripts run once untimed first, then in each
round where a first run's jobs start (on a fresh state, after its data upload and upsert), and every
second round runs them after the pipeline instead of before it.

Nothing a round makes is deleted before the benchmark ends: every state and every folder of the
scripts is kept in one scratch folder under the benchmark cache, removed last. On an ext4 without a
journal (this project's test VM), creating a file or folder near hundreds freed seconds before
costs 0.15-0.9 ms instead of 0.02 ms, for a minute or more (the inode allocator looks at the
recently freed inodes one by one: `recently_deleted` in a kernel profile). A first run creates
about 300 files and folders, the scripts about 25, so a state deleted just before a run could cost
the pipeline a tenth of a second that the scripts did not pay. Each round shows what creating a file
cost just before each side ran.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import local_pipeline
import stacks
from common import (
    CACHE,
    PYTHON,
    REPO,
    cli,
    find_model_archive,
    log,
    machine_description,
    median_interval,
    table,
)

from pipelines.definition_cache import CACHE_DIR as DEFINITIONS_CACHE

ENDPOINT = os.environ.get("PIPELINE_ENDPOINT_NAME", "sentiment-classifier")
PIPELINE = os.environ.get("PIPELINE_PIPELINE_NAME", "sentiment-classifier")
SCENARIOS = ("first run", "unchanged rerun", "changed data")
NEW_REVIEWS = b'"arrived on time and works as described",1\n"stopped charging after a week",0\n'


def python_seconds(code: str, repeats: int = 3) -> float:
    """Median wall time of ``python -c code`` in a fresh interpreter (cwd = repo)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([PYTHON, "-c", code], cwd=REPO, check=True, capture_output=True, timeout=300)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def job_start_seconds(through_setpriv: bool, repeats: int = 20) -> float:
    """Median time for Popen to start a job process (it returns once the child has exec'd), the
    way the server starts jobs: with the parent-death signal, through setpriv or a preexec_fn."""
    from pipelines.local.system import supervision

    saved = supervision.SETPRIV
    supervision.SETPRIV = saved if through_setpriv else None
    times = []
    try:
        for _ in range(repeats):
            launch = supervision.dying_with_parent([PYTHON, "-c", "pass"], os.environ, REPO)
            start = time.perf_counter()
            child = subprocess.Popen(launch.argv, preexec_fn=launch.preexec_fn, start_new_session=True)
            times.append(time.perf_counter() - start)
            child.wait()
    finally:
        supervision.SETPRIV = saved
    return statistics.median(times)


def fixed_costs(state_dir: Path) -> dict[str, float]:
    from pipelines.local.jobs.training import pack_directory
    from pipelines.local.storage.buckets import Bucket
    from pipelines.local.storage.objects import ObjectStore

    costs = {
        "interpreter start (python -c pass)": python_seconds("pass"),
        "import pandas + sklearn (train.py; the other scripts do not)": python_seconds(
            "import pandas, sklearn.linear_model, sklearn.feature_extraction.text"
        ),
        "import boto3 (Lambda subprocess, CLI)": python_seconds("import boto3"),
        "import pipelines.cli (every CLI command)": python_seconds("import pipelines.cli"),
        "import pipelines.definition (SageMaker SDK, upsert)": python_seconds("import pipelines.definition"),
        "start a job process through setpriv (vfork)": job_start_seconds(through_setpriv=True),
        "start a job process with a preexec_fn (fork; the fallback)": job_start_seconds(
            through_setpriv=False
        ),
    }
    with tempfile.TemporaryDirectory() as tmp:
        store = ObjectStore(Path(tmp) / "store")
        store.create_bucket(Bucket("bench-bucket", "us-east-1", time.time()))
        start = time.perf_counter()
        for name in ("train.csv", "test.csv"):
            store.put_file(f"s3://bench-bucket/data/{name}", REPO / "data" / name)
        store.download("s3://bench-bucket/data", Path(tmp) / "staged")
        costs["stage data in and out of the object store"] = time.perf_counter() - start
    archive = find_model_archive(state_dir)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = stacks.extract(archive, Path(tmp) / "model")
        start = time.perf_counter()
        pack_directory(model_dir, Path(tmp) / "model.tar.gz")
        costs["pack model.tar.gz"] = time.perf_counter() - start
        server = stacks.start_ours(archive, Path(tmp) / "ours")
        server.stop()
        costs["model server start (unpack, start, load, /ping)"] = server.startup_seconds
    return costs


def where_a_first_run_starts(
    measure: Callable[[Path], dict[str, float]], folder: Path
) -> dict[str, float]:
    """`measure` at the point where a first run's execution starts: on a fresh state, right after
    the same server start, data upload and upsert, rather than seconds after the pipeline's own
    Train. On a VM that hands the memory its guest frees back to the host (free page reporting),
    what ran just before changes what a job pays to allocate: train.py alone took 2.30 s after 10 s
    idle against 1.75 s right after another train.py, and 1.80 s when 1 GiB was touched and freed
    first (five rounds each). Both sides now start from what a first run starts from. `measure`
    runs in a folder of `folder`, beside the state."""
    state = folder / "state"
    try:
        cli(state, "data", "upload", str(REPO / "data"))
        cli(state, "upsert")
        return measure(folder / "scripts")
    finally:
        local_pipeline.daemon.stop(state)


def create_seconds(folder: Path, files: int = 40) -> float:
    """Median time to create an empty file in a new subfolder of `folder`: what the files and
    folders of a state or of the scripts cost there at that moment."""
    folder.mkdir(parents=True, exist_ok=True)
    probe = Path(tempfile.mkdtemp(prefix="create-probe-", dir=folder))
    times = []
    for number in range(files):
        start = time.perf_counter()
        (probe / str(number)).touch()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_pipeline(state_dir: Path, data_dir: Path) -> dict[str, float]:
    """`make run-pipeline` on `data_dir`: the CLI's `run` command (data upload, upsert, start
    --wait in one process), timed from process start until the endpoint is InService."""
    start = time.perf_counter()
    cli(state_dir, "run", str(data_dir))
    return {"total": time.perf_counter() - start}


def changed_data(folder: Path) -> Path:
    """The project's data with two more training reviews: the same file names, new contents."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.csv").write_bytes((REPO / "data" / "train.csv").read_bytes() + NEW_REVIEWS)
    (folder / "test.csv").write_bytes((REPO / "data" / "test.csv").read_bytes())
    return folder


def latest_steps(state_dir: Path) -> dict[str, tuple[float, str]]:
    """The latest execution's steps: (seconds, status or "cached"), and the execution itself."""
    import boto3

    from pipelines.local import daemon

    url = daemon.ensure_running(state_dir)
    keys = daemon.credentials(state_dir)
    session = boto3.Session(region_name="us-east-1", **keys.session_arguments())
    sm = session.client("sagemaker", endpoint_url=url)
    arn = sm.list_pipeline_executions(PipelineName=PIPELINE, SortBy="CreationTime", SortOrder="Descending")[
        "PipelineExecutionSummaries"
    ][0]["PipelineExecutionArn"]
    found: dict[str, tuple[float, str]] = {}
    for step in sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]:
        start, end = step.get("StartTime"), step.get("EndTime")
        if isinstance(start, datetime) and isinstance(end, datetime):
            status = "cached" if step.get("CacheHitResult") else step["StepStatus"]
            found[step["StepName"]] = ((end - start).total_seconds(), status)
    execution = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
    wall = (execution["LastModifiedTime"] - execution["CreationTime"]).total_seconds()
    found["execution (created -> last modified)"] = (wall, execution["PipelineExecutionStatus"])
    return found


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=None, help="default 3 (1 with --quick)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    direct: list[dict[str, float]] = []
    phases: dict[str, list[dict[str, float]]] = {name: [] for name in SCENARIOS}
    steps: dict[str, list[dict[str, tuple[float, str]]]] = {name: [] for name in SCENARIOS}
    costs: dict[str, float] = {}
    CACHE.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="pipeline-", dir=CACHE))  # removed last (see above)
    creates: dict[str, list[float]] = {"scripts": [], "pipeline": []}
    try:
        log("warming up: the step scripts once, untimed (the first run of anything reads cold files)")
        local_pipeline.steps_directly(scratch / "warm-up")

        def scripts_alone(folder: Path) -> dict[str, float]:
            creates["scripts"].append(create_seconds(folder))
            return local_pipeline.steps_directly(folder)

        def scripts_directly(run: int) -> None:
            log(f"run {run + 1}/{runs}: step scripts directly, where a first run's jobs start")
            direct.append(where_a_first_run_starts(scripts_alone, scratch / f"round-{run + 1}-scripts"))

        for run in range(runs):
            # Every second round runs the scripts after the pipeline's runs, not before: a machine
            # that speeds up or slows down over a round then favours neither side.
            scripts_last = run % 2 == 1
            if not scripts_last:
                scripts_directly(run)
            folder = scratch / f"round-{run + 1}-pipeline"
            state = folder / "state"
            try:
                datasets = (REPO / "data", REPO / "data", changed_data(folder / "changed"))
                shutil.rmtree(DEFINITIONS_CACHE, ignore_errors=True)  # as in a fresh clone
                creates["pipeline"].append(create_seconds(folder))
                for scenario, data in zip(SCENARIOS, datasets, strict=True):
                    log(f"run {run + 1}/{runs}: {scenario}")
                    phases[scenario].append(run_pipeline(state, data))
                    steps[scenario].append(latest_steps(state))
                if run == runs - 1:
                    log("measuring fixed costs")
                    costs = fixed_costs(state)
            finally:
                local_pipeline.daemon.stop(state)
            if scripts_last:
                scripts_directly(run)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows if key in r)

    direct_total = statistics.median(sum(r.values()) for r in direct)
    print(f"machine: {machine_description()}")
    print(f"{runs} run(s), medians in seconds\n")
    print("`make run-pipeline` (one `run` process, until the endpoint is InService):\n")
    labels = list(phases[SCENARIOS[0]][0])
    rows = [[label, *(f"{med(phases[s], label):.2f}" for s in SCENARIOS)] for label in labels]
    print(table(["phase", *SCENARIOS], rows))
    print("\nsteps as the local executor timed them (start -> end; cached = a step-cache hit):\n")
    step_rows = []
    for name in steps[SCENARIOS[0]][0]:
        cells = []
        for scenario in SCENARIOS:
            seconds = statistics.median(r[name][0] for r in steps[scenario] if name in r)
            status = steps[scenario][-1].get(name, (0.0, "-"))[1]
            cells.append(f"{seconds:.2f} {status}")
        step_rows.append([name, *cells])
    print(table(["step", *SCENARIOS], step_rows))
    print("\nthe first run beside the step scripts run directly:\n")
    script_of = {"Preprocess": "preprocess", "Train": "train", "Evaluate": "evaluate"}
    rows = [[f"script alone: {k}", f"{med(direct, k):.2f}"] for k in direct[0]]
    rows.append(["scripts alone: total", f"{direct_total:.2f}"])
    first = steps[SCENARIOS[0]]
    for name, script in script_of.items():
        in_pipeline = statistics.median(r[name][0] for r in first)
        rows.append([f"{name} in the first run (alone {med(direct, script):.2f})", f"{in_pipeline:.2f}"])
    execution = "execution (created -> last modified)"
    rows.append(["first run: execution", f"{statistics.median(r[execution][0] for r in first):.2f}"])
    rows.append(["first run: make run-pipeline total", f"{med(phases[SCENARIOS[0]], 'total'):.2f}"])
    print(table(["", "seconds"], rows))
    print("\nround by round (each first run beside the scripts run in the same round):\n")
    pairs = [(sum(alone.values()), run[execution][0]) for alone, run in zip(direct, first, strict=True)]
    round_rows = [
        [str(number), f"{alone:.2f}", f"{executed:.2f}", f"{executed / alone:.2f}x",
         f"{scripts_create * 1e6:.0f} / {pipeline_create * 1e6:.0f}"]
        for number, ((alone, executed), scripts_create, pipeline_create) in enumerate(
            zip(pairs, creates["scripts"], creates["pipeline"], strict=True), start=1
        )
    ]
    ratios = [executed / alone for alone, executed in pairs]
    round_rows.append(["median", "", "", f"{statistics.median(ratios):.2f}x", ""])
    interval = median_interval(ratios)
    if interval is not None:
        low, high, confidence = interval
        round_rows.append([f"{confidence:.0%} interval", "", "", f"{low:.2f}x-{high:.2f}x", ""])
    print(table(
        ["round", "scripts alone", "first run: execution", "ratio", "file create, µs (scripts / run)"],
        round_rows,
    ))
    print("\nfixed costs measured alone (median of 3 where a process is started):\n")
    print(table(["cost", "seconds"], [[k, f"{v:.4f}"] for k, v in costs.items()]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
