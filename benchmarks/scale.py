"""Preprocess, train and evaluate at scale: the real step scripts on generated reviews.

    python benchmarks/scale.py [--rows 1000000] [--test-rows 200000] [--quick] [--keep]

Writes train.csv (--rows) and test.csv (--test-rows) of synthetic reviews (benchmarks/reviews.py:
fixed seed, log-normal lengths, positive/negative/neutral words plus a long tail of rare words) to
a temp dir laid out as a Processing/Training container's /opt/ml (SAGEMAKER_BASE_DIR), then runs
steps/preprocess.py, steps/train.py and steps/evaluate.py as subprocesses, one after the other, as
the pipeline does (model.tar.gz is packed between train and evaluate, as the training job does).

For each step it prints wall time, CPU time and the peak resident memory of the step's process
(ru_maxrss from wait4 on that child), against an ml.m5.large's 8 GiB.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CACHE, PYTHON, REPO, log, machine_description, table

from pipelines.code_bundle import STEP_ENVIRONMENT

M5_LARGE_BYTES = 8 * 1024**3
STEP_TIMEOUT = 3600.0


def run_step(
    argv: list[str], env: dict[str, str], log_path: Path, timeout: float = STEP_TIMEOUT
) -> dict[str, float]:
    """Run one step; wall time and the child's own rusage (wait4), bounded by ``timeout``."""
    start = time.perf_counter()
    with log_path.open("wb") as handle:
        process = subprocess.Popen(
            argv,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.killpg(process.pid, 9)
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(
            f"{argv[-1]} exited {process.returncode}:\n{log_path.read_text(errors='replace')[-3000:]}"
        )
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_bytes": usage.ru_maxrss * 1024,
    }


def top_functions(path: Path, count: int = 14) -> str:
    """The step's own and library functions with the most cumulative time (not the runner's)."""
    import pstats

    stats = pstats.Stats(str(path))
    total = max(getattr(stats, "total_tt", 0.0), 1e-9)
    entries = []
    for (filename, line, name), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if filename.startswith("<") or "cProfile" in filename or "runpy" in filename:
            continue
        entries.append((cumtime, tottime, calls, f"{Path(filename).name}:{line} {name}"))
    entries.sort(reverse=True)
    rows = [
        [f"{cum:.1f}", f"{100 * cum / total:.0f}%", f"{tot:.1f}", calls, where[:80]]
        for cum, tot, calls, where in entries[:count]
    ]
    return table(["cum s", "cum %", "self s", "calls", "function"], rows)


def pack(model_dir: Path, archive: Path) -> float:
    start = time.perf_counter()
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--test-rows", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="100,000 + 20,000 rows")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run each step under cProfile and print its top functions "
        "(slower: the figures then include the profiler's overhead)",
    )
    parser.add_argument("--json", type=Path, default=CACHE / "results" / "scale.json")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.test_rows = 100_000, 20_000
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    base = tmp / "opt" / "ml"
    raw = base / "processing" / "input" / "data"
    results: dict[str, dict[str, float]] = {}
    profiles: dict[str, str] = {}
    try:
        log(f"generating {args.rows:,} + {args.test_rows:,} reviews in {raw}")
        start = time.perf_counter()
        # In a child process: a step's ru_maxrss starts from this process's size when it forks the
        # step, so this process must not hold the generator's memory.
        subprocess.run(
            [PYTHON, str(Path(__file__).with_name("reviews.py")), "--rows", str(args.rows),
             "--test-rows", str(args.test_rows), "--seed", str(args.seed), "--out", str(raw)],
            check=True,
        )
        size = sum((raw / name).stat().st_size for name in ("train.csv", "test.csv"))
        generate_s = time.perf_counter() - start
        log(f"generated {size / 1e6:.0f} MB in {generate_s:.1f} s")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_"))}
        env.update(
            {
                **STEP_ENVIRONMENT,
                "SAGEMAKER_BASE_DIR": str(base),
                "SM_CHANNEL_TRAIN": str(base / "processing" / "train"),
                "SM_MODEL_DIR": str(base / "model"),
            }
        )
        logs = tmp / "logs"
        logs.mkdir()
        for step in ("preprocess", "train", "evaluate"):
            if step == "evaluate":
                results["pack model.tar.gz"] = {
                    "wall_s": pack(base / "model", base / "processing" / "model" / "model.tar.gz"),
                    "cpu_s": float("nan"),
                    "peak_rss_bytes": float("nan"),
                }
            log(f"running {step}.py")
            script = str(REPO / "steps" / f"{step}.py")
            profile_path = logs / f"{step}.prof"
            argv = (
                [PYTHON, "-m", "cProfile", "-o", str(profile_path), script]
                if args.profile
                else [PYTHON, script]
            )
            results[step] = run_step(argv, env, logs / f"{step}.log")
            if args.profile:
                profiles[step] = top_functions(profile_path)
            log(
                f"{step}: {results[step]['wall_s']:.1f} s, peak RSS "
                f"{results[step]['peak_rss_bytes'] / 2**30:.2f} GiB"
            )
        evaluation = json.loads((base / "processing" / "evaluation" / "evaluation.json").read_text())
        accuracy = evaluation["binary_classification_metrics"]["accuracy"]["value"]
        model_bytes = (base / "processing" / "model" / "model.tar.gz").stat().st_size
        tails = {
            step: (logs / f"{step}.log").read_text(errors="replace").strip().splitlines()[-3:]
            for step in ("preprocess", "train")
        }
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    for step, r in results.items():
        rss = r["peak_rss_bytes"]
        rows.append(
            [
                step,
                f"{r['wall_s']:.1f}",
                "-" if r["cpu_s"] != r["cpu_s"] else f"{r['cpu_s']:.1f}",
                "-" if rss != rss else f"{rss / 2**30:.2f}",
                "-" if rss != rss else f"{100 * rss / M5_LARGE_BYTES:.0f}%",
            ]
        )
    total = generate_s + sum(r["wall_s"] for r in results.values())
    print(f"machine: {machine_description()}")
    print(
        f"data: {args.rows:,} train + {args.test_rows:,} test reviews, {size / 1e6:.0f} MB of CSV, "
        f"generated in {generate_s:.1f} s (seed {args.seed})"
    )
    print(f"model.tar.gz {model_bytes / 1e6:.1f} MB; test accuracy {accuracy:.4f}")
    print(f"total (generation + steps): {total:.1f} s = {total / 60:.1f} min\n")
    print(table(["step", "wall s", "cpu s", "peak RSS GiB", "of 8 GiB (m5.large)"], rows))
    for step, lines in tails.items():
        print(f"\n{step}.py said: " + " | ".join(lines))
    for step, text in profiles.items():
        print(f"\n{step}.py under cProfile, top functions by cumulative time:\n\n{text}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "rows": args.rows,
                "test_rows": args.test_rows,
                "csv_bytes": size,
                "generate_s": generate_s,
                "steps": results,
                "accuracy": accuracy,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
