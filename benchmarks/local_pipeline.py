"""Wall time of a full local run beside the three step scripts run directly.

    python benchmarks/local_pipeline.py [--runs 3]

The difference between the two is the local SageMaker's own cost: upsert, staging inputs and
outputs through the object store, packing model.tar.gz, registry, the deploy Lambda and bringing
the endpoint up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pipelines import cli
from pipelines.code_bundle import STEP_ENVIRONMENT
from pipelines.local import daemon

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def run_step(script: str, base: Path, *args: str) -> None:
    env = {**os.environ, **STEP_ENVIRONMENT, "SAGEMAKER_BASE_DIR": str(base)}  # as the jobs get it
    subprocess.run([PYTHON, str(REPO / "steps" / script), *args], env=env, check=True,
                   capture_output=True)


def steps_directly(base: Path | None = None) -> dict[str, float]:
    """preprocess -> train -> evaluate as plain scripts on the same data, no orchestration; in
    the folder `base` (left in place) when given, else in a temporary one."""
    if base is None:
        with tempfile.TemporaryDirectory() as tmp:
            return steps_directly(Path(tmp))
    raw = base / "processing" / "input" / "data"
    raw.mkdir(parents=True)
    for name in ("train.csv", "test.csv"):
        (raw / name).write_bytes((REPO / "data" / name).read_bytes())
    times = {"preprocess": timed(lambda: run_step("preprocess.py", base))}
    os.environ["SM_CHANNEL_TRAIN"] = str(base / "processing" / "train")
    times["train"] = timed(lambda: run_step("train.py", base))
    model_dir = base / "processing" / "model"
    model_dir.mkdir(parents=True)
    with tarfile.open(model_dir / "model.tar.gz", "w:gz") as archive:
        for path in (base / "model").iterdir():
            archive.add(path, arcname=path.name)
    times["evaluate"] = timed(lambda: run_step("evaluate.py", base))
    del os.environ["SM_CHANNEL_TRAIN"]
    return times


def full_local_run(state_dir: Path) -> dict[str, float]:
    """upsert, start --wait, until the endpoint answers InService."""
    os.environ["PIPELINE_STATE_DIR"] = str(state_dir)
    times = {"server start": timed(lambda: daemon.ensure_running(state_dir))}
    times["data upload"] = timed(lambda: cli.main(["data", "upload"]) and None)
    times["upsert"] = timed(lambda: cli.main(["upsert"]) and None)
    times["execute"] = timed(lambda: cli.main(["start", "--wait"]) and None)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    direct, local = [], []
    for _ in range(args.runs):
        direct.append(steps_directly())
        with tempfile.TemporaryDirectory() as tmp:
            try:
                local.append(full_local_run(Path(tmp)))
            finally:
                daemon.stop(Path(tmp))
    print(f"\n{args.runs} runs each, median seconds (machine: {os.cpu_count()} cores)")
    for label, rows in (("steps run directly", direct), ("full local run", local)):
        print(f"\n{label}")
        for key in rows[0]:
            print(f"  {key:<14} {statistics.median(r[key] for r in rows):6.2f}")
        print(f"  {'total':<14} {statistics.median(sum(r.values()) for r in rows):6.2f}")


if __name__ == "__main__":
    main()
