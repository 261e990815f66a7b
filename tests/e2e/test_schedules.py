"""`monitor setup` on a fresh local server: a schedule made before anything it needs exists says
so, and its invocations' refusals land in the server's log, as Scheduler's land in its metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from waiting import wait_until

from pipelines import cli

pytestmark = pytest.mark.e2e


def test_a_schedule_made_before_the_pipeline_and_any_traffic_says_so_and_logs_its_refusal(
    state: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPELINE_CONFIG", "")
    assert cli.main(["--state-dir", str(state), "monitor", "setup", "--schedule", "rate(5 minutes)"]) == 0
    out = capsys.readouterr().out
    assert '"state": "ENABLED"' in out and '"window_hours": 0.0833' in out
    assert "note: endpoint sentiment-classifier has captured no traffic yet" in out
    log = state / "server.log"
    refused = wait_until(lambda: [line for line in log.read_text().splitlines()
                                  if "schedule sentiment-classifier-monitor" in line],
                         what="the schedule's first invocation")
    assert "StartPipelineExecution for " in refused[0]
    assert "refused: ResourceNotFound: Pipeline 'sentiment-classifier-monitor' does not exist." in refused[0]
    assert cli.main(["--state-dir", str(state), "local", "status"]) == 0
    status = capsys.readouterr().out
    assert "schedule sentiment-classifier-monitor-schedule: rate(5 minutes), ENABLED\n" in status
    assert cli.main(["--state-dir", str(state), "monitor", "setup", "--disable"]) == 0
    assert "the schedule is paused" in capsys.readouterr().out
