"""A model trained on other reviews than the sample data, followed live in a terminal, then the drift
demo against it: quiet on its own training data, alarmed by the shifted batch.

Self-contained: its own state directory and server, its own generated dataset, and every command run
as a subprocess with its own environment, so nothing here depends on other tests or their order.
"""

from __future__ import annotations

import csv
import os
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from terminal_capture import run_in_terminal, screen_of, shown_lines, terminal_environment

from pipelines.local import daemon
from pipelines.settings import REPO_ROOT

pytestmark = pytest.mark.e2e
DATA_URI = "s3://local-sagemaker/uploads/hotel-reviews"
PRAISE = ("spotless room", "friendly concierge", "quiet courtyard", "superb breakfast buffet",
          "comfortable mattress", "stunning harbour view", "helpful reception staff", "cosy lounge")
COMPLAINTS = ("filthy bathroom", "rude receptionist", "noisy corridor", "cold shower",
              "broken air conditioning", "stained sheets", "overpriced minibar", "mouldy ceiling")
OPENERS = ("We stayed three nights.", "A weekend break.", "Business trip, two nights.", "")


def hotel_review(rng: random.Random, positive: bool) -> str:
    """A review in a vocabulary the sample data (product reviews) does not use."""
    aspects = rng.sample(PRAISE if positive else COMPLAINTS, 2)
    verdict = rng.choice(("would return", "loved our stay") if positive
                         else ("never again", "asked for a refund"))
    return f"{rng.choice(OPENERS)} {aspects[0].capitalize()} and {aspects[1]}, {verdict}.".strip()


def write_split(path: Path, count: int, rng: random.Random) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review_text", "sentiment"])
        for index in range(count):
            positive = index % 2 == 0
            writer.writerow([hotel_review(rng, positive), int(positive)])


class Session:
    """Commands of one user against one state directory, each in its own process."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.env = {**os.environ, "PIPELINE_STATE_DIR": str(state_dir),
                    "PIPELINE_CONFIG": "", "PIPELINE_TARGET": "local"}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], env=self.env, cwd=REPO_ROOT, text=True,
                              capture_output=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    state_dir = tmp_path_factory.mktemp("other-data-state")
    data = tmp_path_factory.mktemp("hotel-reviews")
    rng = random.Random(11)
    write_split(data / "train.csv", 300, rng)
    write_split(data / "test.csv", 80, rng)
    user = Session(state_dir)
    try:
        for args in (("data", "upload", str(data), "--to", DATA_URI), ("upsert",)):
            done = user.run("-m", "pipelines", *args)
            assert done.returncode == 0, done.stderr
        yield user
    finally:
        daemon.stop(state_dir)


@pytest.fixture(scope="module")
def trained(session: Session) -> bytes:
    """`start --wait` on the hotel reviews, in a terminal; what the terminal received."""
    code, raw = run_in_terminal(
        [sys.executable, "-m", "pipelines", "start", "--wait", "--input-data", DATA_URI],
        terminal_environment(session.env), timeout=600,
    )
    assert code == 0, raw.decode(errors="replace")[-2000:]
    return raw


def test_start_wait_in_a_terminal_leaves_one_table(trained: bytes) -> None:
    lines = shown_lines(screen_of(trained))
    assert sum(line.startswith("STEP") for line in lines) == 1, lines
    assert sum(line.startswith("Succeeded in ") for line in lines) == 1, lines
    steps = {line.split()[0] for line in lines}
    assert {"Preprocess", "Train", "Evaluate", "RegisterModel", "DeployEndpoint"} <= steps


def test_demo_is_quiet_on_the_served_versions_data_and_catches_the_shift(
    session: Session, trained: bytes
) -> None:
    done = session.run("-m", "pipelines.demo_drift")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    execution = trained.decode().split("started ", 1)[1].split()[0]
    assert f"trained by {execution}\n" in out
    split = f"executions/{execution.rsplit('/', 1)[-1]}/train/train.csv"
    assert re.search(rf"familiar traffic: \d+ reviews from its training split s3://\S+/{split}", out)
    quiet, shifted = out.split("=== shifted traffic")
    assert "status: no_drift" in quiet.split("=== in-distribution traffic")[1]
    assert "status: drift" in shifted
    assert out.rstrip().endswith("drift caught on the shifted batch and none on the familiar one")
