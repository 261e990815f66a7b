"""`make demo-drift`: show the monitor staying quiet on familiar traffic and catching a shift.

1. sends reviews from the training split of the version the endpoint serves (the data its drift
   baseline describes) and checks that window: no drift;
2. sends a shifted batch (other vocabulary, much longer, mostly negative) and checks that window:
   drift on the features that moved. Both reports' paths are printed.

The familiar traffic is found, never assumed: endpoint -> model -> registered version -> the
execution whose RegisterModel step registered it -> the training split that execution's Preprocess
step wrote (or, when that step was a cache hit, the execution that ran it). When any link is
missing the demo says which, rather than send data the model never saw.
"""

from __future__ import annotations

import csv
import io
import json
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from pipelines import executions
from pipelines.aws import Clients
from pipelines.monitoring_run import run_monitor, summary
from pipelines.settings import Settings, load_settings
from steps.deploy import describe_serving

BATCH = 10
# The monitor judges no window under 200 records (its MinRecords default); above MAX_FAMILIAR,
# a sample of the split describes it as well as the whole.
MIN_FAMILIAR = 200
MAX_FAMILIAR = 2000
SHIFTED_WORDS = (
    "firmware", "latency", "throughput", "invoice", "reconciliation", "escrow", "compliance",
    "bandwidth", "telemetry", "subpoena", "amortisation", "kerosene", "turbine", "gearbox",
    "ledger", "arbitration", "viscosity", "quarantine", "manifest", "tariff", "voltage",
)
SHIFTED_CLOSERS = ("Unacceptable.", "Refund requested.", "Escalating this.", "Never again.")


class NoFamiliarData(Exception):
    """The served version's training data cannot be found; the message says which link is missing."""


@dataclass(frozen=True)
class FamiliarData:
    """The training split behind the served version, and where it was found."""

    package_arn: str
    execution_arn: str
    uri: str
    reviews: list[str]


def executions_newest_first(sm: Any, pipeline_name: str) -> Iterator[str]:
    for page in sm.get_paginator("list_pipeline_executions").paginate(
        PipelineName=pipeline_name, SortBy="CreationTime", SortOrder="Descending"
    ):
        for summary_ in page["PipelineExecutionSummaries"]:
            yield str(summary_["PipelineExecutionArn"])


def registering_execution(sm: Any, pipeline_name: str, package_arn: str) -> str | None:
    """The execution whose RegisterModel step created the package: SageMaker records the package
    ARN in that step's metadata."""
    for arn in executions_newest_first(sm, pipeline_name):
        for step in executions.list_steps(sm, arn):
            if step.get("Metadata", {}).get("RegisterModel", {}).get("Arn") == package_arn:
                return arn
    return None


def preprocessing_execution(sm: Any, execution_arn: str) -> str:
    """The execution that ran the Preprocess step `execution_arn` used: itself, or the earlier
    one whose result a step-cache hit (or a selective execution) reused."""
    for step in executions.list_steps(sm, execution_arn):
        if step.get("StepName") == "Preprocess":
            reused = step.get("CacheHitResult") or step.get("SelectiveExecutionResult") or {}
            return str(reused.get("SourcePipelineExecutionArn", execution_arn))
    return execution_arn


def training_split_uri(settings: Settings, execution_arn: str) -> str:
    """Where that execution's Preprocess step wrote train.csv: the `train` output under the
    execution's own folder (definition.execution_uri), the input of its Train and Evaluate steps."""
    execution_id = execution_arn.rsplit("/", 1)[-1]
    return settings.s3_uri("executions", execution_id, "train", "train.csv")


def read_reviews(data: bytes) -> list[str]:
    return [row["review_text"] for row in csv.DictReader(io.StringIO(data.decode("utf-8")))]


def familiar_data(clients: Clients) -> FamiliarData:
    """The reviews the served version was trained on, which its drift baseline describes."""
    settings = clients.settings
    sm = clients.sagemaker
    try:
        serving = describe_serving(sm, settings.endpoint_name)
    except ClientError as error:
        raise NoFamiliarData(
            f"endpoint {settings.endpoint_name} cannot be described "
            f"({error.response.get('Error', {}).get('Message', error)}): run `make run-pipeline`"
        ) from None
    except ValueError as error:  # not a registered version, or one without a baseline
        raise NoFamiliarData(str(error)) from None
    package = serving["model_package_arn"]
    execution = registering_execution(sm, settings.pipeline_name, package)
    if execution is None:
        raise NoFamiliarData(
            f"{package} was not registered by any execution of pipeline {settings.pipeline_name} "
            "on record, so its training data is unknown"
        )
    uri = training_split_uri(settings, preprocessing_execution(sm, execution))
    if not clients.storage.exists(uri):
        raise NoFamiliarData(f"the training split of {execution} is no longer at {uri}")
    reviews = read_reviews(clients.storage.get_bytes(uri))
    if not reviews:
        raise NoFamiliarData(f"the training split at {uri} holds no reviews")
    return FamiliarData(package, execution, uri, reviews)


def familiar_traffic(reviews: list[str], seed: int = 7) -> list[str]:
    """The whole split (sampled down to MAX_FAMILIAR), repeated up to MIN_FAMILIAR: traffic whose
    distributions are the baseline's own."""
    chosen = random.Random(seed).sample(reviews, MAX_FAMILIAR) if len(reviews) > MAX_FAMILIAR else reviews
    rounds = -(-MIN_FAMILIAR // len(chosen))
    return chosen * rounds


def shifted_reviews(count: int, seed: int = 7) -> list[str]:
    """Long, jargon-heavy complaints: new vocabulary, other lengths, another sentiment mix."""
    rng = random.Random(seed)
    reviews = []
    for _ in range(count):
        words = [rng.choice(SHIFTED_WORDS) for _ in range(rng.randint(40, 90))]
        reviews.append(" ".join(words).capitalize() + ". " + rng.choice(SHIFTED_CLOSERS))
    return reviews


def next_whole_second(sleep: Callable[[float], None] = time.sleep) -> str:
    """Wait for the next whole second and return it. SageMaker stamps a captured record's
    inferenceTime to the second, so only windows bounded by whole seconds hold exactly the records
    sent between their bounds: a bound inside a second would drop that second's records from one
    phase, or, rounded down, let the other phase's records in."""
    moment = datetime.now(UTC)
    sleep(1 - moment.microsecond / 1_000_000)
    return (moment.replace(microsecond=0) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def send(runtime: Any, endpoint: str, reviews: list[str]) -> None:
    for start in range(0, len(reviews), BATCH):
        runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="application/json", Accept="application/json",
            Body=json.dumps(reviews[start:start + BATCH]).encode("utf-8"),
        )


def phase(clients: Clients, label: str, reviews: list[str]) -> int:
    settings = clients.settings
    start = next_whole_second()
    send(clients.runtime, settings.endpoint_name, reviews)
    end = next_whole_second()
    print(f"\n=== {label}: {len(reviews)} reviews sent, checking {start} .. {end}", flush=True)
    outcome = run_monitor(clients, {"WindowStart": start, "WindowEnd": end}, lambda _: None)
    if outcome.exit_code == 2:
        raise SystemExit("the monitoring run failed: see `python -m pipelines status`")
    print(summary(outcome.metrics))
    print(f"report: {outcome.report}")
    return outcome.exit_code


def main(settings: Settings | None = None) -> int:
    clients = Clients(settings or load_settings())
    try:
        found = familiar_data(clients)
    except NoFamiliarData as error:
        print(f"cannot show drift on familiar traffic: {error}", file=sys.stderr)
        return 2
    familiar = familiar_traffic(found.reviews)
    print(f"endpoint {clients.settings.endpoint_name} serves {found.package_arn}, trained by "
          f"{found.execution_arn}\nfamiliar traffic: {len(familiar)} reviews from its training "
          f"split {found.uri} ({len(found.reviews)} reviews)", flush=True)
    quiet = phase(clients, "in-distribution traffic", familiar)
    shifted = phase(clients, "shifted traffic", shifted_reviews(len(familiar)))
    caught = quiet == 0 and shifted == 1
    print("\n" + ("drift caught on the shifted batch and none on the familiar one"
                  if caught else "unexpected result: see the reports above"))
    return 0 if caught else 1


if __name__ == "__main__":
    sys.exit(main())
