"""Run every benchmark in sequence and keep the output.

    python benchmarks/run_all.py            # full: about 25 minutes on 2 cores
    python benchmarks/run_all.py --quick    # smoke: about 5 minutes
    python benchmarks/run_all.py --only endpoint scale

Order: pipeline (task 2), what a job costs beyond its script and what a long history costs the
local SageMaker's lookups, endpoint comparison (task 1),
profile + the model server's workers, scale (task 3), the scorer in process, model quality on the
review corpus in ../shared/data.
They run one at a time, never in parallel, since each measures the whole machine. Each is a
separate process (a crash in one does not stop the others) bounded by a timeout. Output goes to
stdout and to benchmarks/.cache/results/<name>.txt; the exit code is non-zero if any benchmark
failed. The first run also builds the side virtualenvs under benchmarks/.cache/venvs (a few
minutes, then reused).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import CACHE, PYTHON, log, machine_description  # noqa: E402

# name -> (script, full args, quick args, timeout seconds)
BENCHMARKS = {
    "pipeline": ("pipeline.py", ["--runs", "3"], ["--quick"], 1800),
    "job_overhead": ("job_overhead.py", [], ["--rounds", "5"], 600),
    "history": ("history.py", [], ["--quick"], 900),
    "endpoint": ("endpoint.py", [], ["--quick"], 3600),
    "profile": ("profile_endpoint.py", [], ["--quick"], 1800),
    "scale": ("scale.py", [], ["--quick"], 3600),
    "scorer": ("scorer.py", [], ["--seconds", "1"], 600),
    "model_quality": ("model_quality.py", [], ["--draws", "10"], 3600),
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    args = parser.parse_args()
    results = CACHE / "results"
    results.mkdir(parents=True, exist_ok=True)
    print(f"# benchmarks ({'quick' if args.quick else 'full'}), {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"machine: {machine_description()}\n")
    failed = []
    for name in args.only:
        script, full, quick, timeout = BENCHMARKS[name]
        argv = [PYTHON, str(HERE / script), *(quick if args.quick else full)]
        log(f"{name}: {' '.join(argv[1:])}")
        start = time.perf_counter()
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=HERE.parent,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            code, out, err = done.returncode, done.stdout, done.stderr
        except subprocess.TimeoutExpired as exc:
            code, out = (
                -1,
                (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or ""),
            )
            err = f"timed out after {timeout} s"
        elapsed = time.perf_counter() - start
        (results / f"{name}.txt").write_text(out)
        (results / f"{name}.log").write_text(err or "")
        print(f"## {name} ({elapsed / 60:.1f} min{'' if code == 0 else f', FAILED with {code}'})\n")
        print(out)
        if code != 0:
            failed.append(name)
            print("stderr (end):\n" + "\n".join((err or "").splitlines()[-25:]) + "\n")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
