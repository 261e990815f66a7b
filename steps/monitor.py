"""SageMaker Processing step: data-quality monitoring of the endpoint, in two modes.

`--mode check` compares a window of the endpoint's data capture with a model version's baseline;
`--mode baseline` describes training reviews as the model answers them, as the training pipeline's
Evaluate step does for every version (monitoring/baseline.py), by hand: with another threshold or
minimum window size. Both modes go through the artifact's own code/inference.py (`read_reviews`
reads the captured requests, `features` describes the reviews) and share one statistics routine, so
a window can only differ from the baseline because the traffic did. Outputs follow SageMaker Model
Monitor's statistics / constraints / constraint_violations formats so its readers keep working;
drift is the two-sample Kolmogorov-Smirnov distance between the baseline's and the window's
distribution of each feature.

This script is the job's entry point: its arguments and the choice of mode. The rest is the
`monitoring` package (the model artifact, the baseline, statistics files, and check mode: capture
parsing, drift checks, the report, CloudWatch), shipped with artifact.py in the job's library
folder. Check mode is imported only when it runs (monitoring/check.py).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

# The library folder (artifact.py, monitoring/) is shipped beside this script: in a Processing job
# at /opt/ml/processing/input/lib (see pipelines/code_bundle.py), elsewhere it is this folder.
sys.path[:0] = [
    str(Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")) / "processing" / "input" / "lib"),
    str(Path(__file__).resolve().parent),
]
from artifact import ArtifactError  # noqa: E402
from job_failure import failure_reported  # noqa: E402
from monitoring.baseline import read_training_texts, write_baseline  # noqa: E402
from monitoring.formats import DEFAULT_MIN_RECORDS, DEFAULT_THRESHOLD, BaselineError  # noqa: E402
from monitoring.model import MonitorError, load_artifact  # noqa: E402

# --- baseline mode --------------------------------------------------------------------------------


def run_baseline(base: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Describe the training reviews as the model answers them; write statistics and constraints."""
    texts = read_training_texts(base / "processing" / "train" / "train.csv")
    with tempfile.TemporaryDirectory() as scratch:
        artifact = load_artifact(base / "processing" / "model" / "model.tar.gz", Path(scratch))
        return write_baseline(
            artifact,
            texts,
            base / "processing" / "baseline",
            DEFAULT_THRESHOLD if args.threshold is None else args.threshold,
            DEFAULT_MIN_RECORDS if args.min_records is None else args.min_records,
        )


# --- entry point ----------------------------------------------------------------------------------


class ArgumentParser(argparse.ArgumentParser):
    """Bad arguments are a failure like any other: reported in output/message, exit 1."""

    def error(self, message: str) -> NoReturn:
        raise MonitorError(f"bad arguments: {message}")


def optional_float(raw: str) -> float | None:
    """Pipeline parameters are strings; an empty one means "not set"."""
    return float(raw) if raw.strip() else None


def true_or_false(raw: str) -> bool:
    """A pipeline parameter can switch a flag only by value: `--publish-metrics true|false`."""
    if raw.strip().lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {raw!r}")
    return raw.strip().lower() == "true"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Check-only options are ignored in baseline mode."""
    parser = ArgumentParser(description="Baseline and drift check of the endpoint's traffic.")
    parser.add_argument("--mode", choices=("baseline", "check"), required=True)
    parser.add_argument("--threshold", type=float, help="drift threshold (baseline: 0.1)")
    parser.add_argument("--min-records", type=int, help="records needed to judge (baseline: 200)")
    parser.add_argument("--window-start", default="", help="ISO 8601, inclusive; empty = open")
    parser.add_argument("--window-end", default="", help="ISO 8601, exclusive; empty = open")
    parser.add_argument("--window-hours", type=optional_float,
                        help="window length back from --window-end; empty = not set")
    parser.add_argument("--endpoint-name", default="", help="the Endpoint metric dimension")
    parser.add_argument("--publish-metrics", type=true_or_false, nargs="?", const=True,
                        default=False, help="put metrics to CloudWatch (true/false)")
    args = parser.parse_args(argv)
    if args.threshold is not None and not 0 < args.threshold <= 1:
        raise MonitorError(f"--threshold must be in (0, 1], got {args.threshold}")
    if args.min_records is not None and args.min_records < 1:
        raise MonitorError(f"--min-records must be at least 1, got {args.min_records}")
    if args.window_hours is not None and not args.window_hours > 0:
        raise MonitorError(f"--window-hours must be positive, got {args.window_hours}")
    if args.publish_metrics and not args.endpoint_name:
        raise MonitorError("--publish-metrics needs --endpoint-name (the metrics' dimension)")
    return args


def main(argv: list[str] | None = None) -> None:
    """Entry point of the Processing job; drift is a finding, not a failure (exit 0)."""
    base = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
    with failure_reported(base, (MonitorError, BaselineError, ArtifactError), "monitoring"):
        args = parse_args(argv)
        if args.mode == "baseline":
            run_baseline(base, args)
        else:
            from monitoring.check import run_check  # only now: see monitoring/check.py

            run_check(base, args)


if __name__ == "__main__":
    main()
    gc.freeze()  # exit without collecting the survivors once more (see train.py)
