"""`make demo-drift`: show the monitor staying quiet on familiar traffic and catching a shift.

1. sends the training reviews again (traffic like the baseline's data) and checks that window:
   no drift;
2. sends a shifted batch (other vocabulary, much longer, mostly negative) and checks that window:
   drift on the features that moved. Both reports' paths are printed.
"""

from __future__ import annotations

import csv
import json
import random
import sys
import time
from datetime import UTC, datetime
from typing import Any

from pipelines import REPO_ROOT
from pipelines.aws import Clients
from pipelines.monitoring_run import run_monitor, summary
from pipelines.settings import load_settings

BATCH = 10
SHIFTED_WORDS = (
    "firmware", "latency", "throughput", "invoice", "reconciliation", "escrow", "compliance",
    "bandwidth", "telemetry", "subpoena", "amortisation", "kerosene", "turbine", "gearbox",
    "ledger", "arbitration", "viscosity", "quarantine", "manifest", "tariff", "voltage",
)
SHIFTED_CLOSERS = ("Unacceptable.", "Refund requested.", "Escalating this.", "Never again.")


def training_reviews() -> list[str]:
    """The baseline describes the training data, so traffic like it must not alert.

    (Held-out reviews would: the baseline's out-of-vocabulary rate is 0 by construction, and
    new words are exactly what that feature is there to flag.)"""
    with (REPO_ROOT / "data" / "train.csv").open(encoding="utf-8") as handle:
        return [row["review_text"] for row in csv.DictReader(handle)]


def shifted_reviews(count: int, seed: int = 7) -> list[str]:
    """Long, jargon-heavy complaints: new vocabulary, other lengths, another sentiment mix."""
    rng = random.Random(seed)
    reviews = []
    for _ in range(count):
        words = [rng.choice(SHIFTED_WORDS) for _ in range(rng.randint(40, 90))]
        reviews.append(" ".join(words).capitalize() + ". " + rng.choice(SHIFTED_CLOSERS))
    return reviews


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def send(runtime: Any, endpoint: str, reviews: list[str]) -> None:
    for start in range(0, len(reviews), BATCH):
        runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="application/json", Accept="application/json",
            Body=json.dumps(reviews[start:start + BATCH]).encode("utf-8"),
        )


def phase(clients: Clients, label: str, reviews: list[str]) -> int:
    settings = clients.settings
    start = now()
    send(clients.runtime, settings.endpoint_name, reviews)
    time.sleep(0.05)
    end = now()
    print(f"\n=== {label}: {len(reviews)} reviews sent, checking {start} .. {end}", flush=True)
    outcome = run_monitor(clients, {"WindowStart": start, "WindowEnd": end}, lambda _: None)
    if outcome.exit_code == 2:
        raise SystemExit("the monitoring run failed: see `python -m pipelines status`")
    print(summary(outcome.metrics))
    print(f"report: {outcome.report}")
    return outcome.exit_code


def main() -> int:
    clients = Clients(load_settings())
    familiar = training_reviews() * 2
    quiet = phase(clients, "in-distribution traffic", familiar)
    shifted = phase(clients, "shifted traffic", shifted_reviews(len(familiar)))
    caught = quiet == 0 and shifted == 1
    print("\n" + ("drift caught on the shifted batch and none on the familiar one"
                  if caught else "unexpected result: see the reports above"))
    return 0 if caught else 1


if __name__ == "__main__":
    sys.exit(main())
