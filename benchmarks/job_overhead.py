"""What a job costs beyond its script: preprocess.py run directly against the same script run
through the job runner's `run_container`, unconfined and confined as a job is.

    python benchmarks/job_overhead.py [--rounds 20]

Each round runs the three side by side, in turn, on fresh copies of the project's data (the way
`benchmarks/pipeline.py` runs the scripts alone, and the way a Processing job stages its code and
inputs). The difference between "directly" and "unconfined" is the runner's own work (its pipes,
log stream and waiter); between "unconfined" and "confined", the user and mount namespaces that
keep a job from the server's state (pipelines/local/system/isolation.py).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, REPO, machine_description, table

from pipelines.code_bundle import STEP_ENVIRONMENT
from pipelines.local.jobs.container import JobDirs, base_env, prepare_job_dir, run_container
from pipelines.local.jobs.image_python import ImagePython, image_python
from pipelines.local.layout import StateLayout
from pipelines.local.system.isolation import Confinement, read_only_tree_unavailable

SCRIPT = "preprocess.py"


def stage(base: Path) -> Path:
    """The job's inputs and its code where a Processing job finds them; returns the script."""
    raw = base / "processing" / "input" / "data"
    raw.mkdir(parents=True)
    for name in ("train.csv", "test.csv"):
        shutil.copy(REPO / "data" / name, raw / name)
    code = base / "processing" / "input" / "code"
    code.mkdir(parents=True)
    return Path(shutil.copy(REPO / "steps" / SCRIPT, code / SCRIPT))


def directly() -> float:
    """As the scripts-alone side of benchmarks/pipeline.py runs a step script."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        stage(base)
        env = {**os.environ, **STEP_ENVIRONMENT, "SAGEMAKER_BASE_DIR": str(base)}
        start = time.perf_counter()
        subprocess.run([PYTHON, str(REPO / "steps" / SCRIPT)], env=env, check=True, capture_output=True)
        return time.perf_counter() - start


def through_runner(job: JobDirs, python: ImagePython, confinement: Confinement | None) -> float:
    """As a Processing job runs it: in the image's Python (made before the rounds, as the server
    makes it when it starts)."""
    script = stage(job.base)
    env = {**base_env(job, python), **STEP_ENVIRONMENT}
    start = time.perf_counter()
    finish = run_container([str(python.python), str(script)], env, job.base, job, python, io.StringIO(), None,
                           None, confinement=confinement)
    seconds = time.perf_counter() - start
    if finish.returncode != 0:
        raise SystemExit(f"{SCRIPT} failed in the job runner: {finish}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:  # not /tmp: a confined job has its own
        layout = StateLayout(Path(tmp) / "state")
        layout.create_root()
        unavailable = read_only_tree_unavailable()
        if unavailable:
            print(f"jobs cannot be confined on this machine: {unavailable}")
        confinement = layout.confinement()
        work = layout.jobs / "benchmark"
        work.mkdir(parents=True)
        python = image_python(layout.image_environments)
        times: dict[str, list[float]] = {
            "directly": [], "job runner, unconfined": [], "job runner, confined": []
        }
        for round_number in range(args.rounds):
            times["directly"].append(directly())
            job = prepare_job_dir(work, f"unconfined-{round_number}", None)
            times["job runner, unconfined"].append(through_runner(job, python, None))
            job = prepare_job_dir(work, f"confined-{round_number}", confinement)
            times["job runner, confined"].append(through_runner(job, python, confinement))
    print(f"machine: {machine_description()}")
    print(f"{SCRIPT}, {args.rounds} rounds, median ms:\n")
    alone = statistics.median(times["directly"])
    medians = {label: statistics.median(values) for label, values in times.items()}
    rows = [[label, f"{ms * 1000:.1f}", f"{(ms - alone) * 1000:+.1f}"] for label, ms in medians.items()]
    print(table(["run", "ms", "against directly"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
