"""A fresh local state, before the first upsert: each command that reads what an upsert or a run
makes says which command makes it, in the server's own words first."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines import cli

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(("command", "pipeline"), [
    (["status"], "sentiment-classifier"),
    (["executions"], "sentiment-classifier"),
    (["logs", "Train"], "sentiment-classifier"),
    (["monitor", "show"], "sentiment-classifier-monitor"),
    (["monitor", "history"], "sentiment-classifier-monitor"),
])
def test_a_command_on_a_pipeline_not_yet_made_says_what_makes_it(
    command: list[str], pipeline: str, state: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """They ended with the server's "Pipeline '...' does not exist." and nothing more."""
    monkeypatch.setenv("PIPELINE_CONFIG", "")
    assert cli.main(["--state-dir", str(state), *command]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: ResourceNotFound: Pipeline '{pipeline}' does not exist. ")
    assert "(`make upsert-pipeline` creates the project's pipelines" in err


def test_models_list_before_the_first_registration_says_what_registers_one(
    state: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It ended with "ValidationException: ModelPackageGroup sentiment-classifier does not exist."."""
    monkeypatch.setenv("PIPELINE_CONFIG", "")
    assert cli.main(["--state-dir", str(state), "models", "list"]) == 0
    assert capsys.readouterr().out == (
        "no model versions in sentiment-classifier yet: a run that passes the accuracy check registers "
        "one (`make run-pipeline`)\n"
    )
