"""What `start --wait` and `status` print: a live table on a terminal, plain lines through a pipe."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from terminal_capture import LINES, colours, run_in_terminal, screen_of, shown_lines, terminal_environment

from pipelines import step_table

SCRIPT = Path(__file__).parent / "data" / "scripted_execution.py"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ARN = "arn:aws:sagemaker:us-east-1:000000000000:pipeline/p/execution/e1"


def in_terminal(outcome: str, lines: int = LINES, **extra_env: str) -> tuple[int, bytes]:
    """Run the scripted execution with a pseudo-terminal as its stdout."""
    return run_in_terminal([sys.executable, str(SCRIPT), outcome],
                           terminal_environment(os.environ, **extra_env), timeout=60, lines=lines)


def test_a_terminal_gets_one_table_redrawn_in_place_with_colours() -> None:
    code, raw = in_terminal("succeed")
    assert code == 0
    assert raw.count(b"\x1b[1A") > 0, "the table was never redrawn in place"
    screen = screen_of(raw)
    lines = shown_lines(screen)
    assert sum(line.startswith("STEP") for line in lines) == 1, lines
    assert lines[0].startswith("demo execution abc123") and "Succeeded" in lines[0]
    assert lines[-1] == "Succeeded in 12.0s"
    rows = {line.split()[0]: line.split() for line in lines if line.split()[0] in
            ("Preprocess", "Train", "Evaluate")}
    assert rows["Preprocess"][:4] == ["Preprocess", "Succeeded", "1.0s", "cached"]
    assert rows["Train"][:4] == ["Train", "Succeeded", "8.0s", "2"]
    assert "green" in colours(screen)


def test_a_terminal_shows_a_failure_once_with_each_problem_on_its_line() -> None:
    code, raw = in_terminal("fail")
    assert code == 1
    lines = shown_lines(screen_of(raw))
    assert sum(line.startswith("STEP") for line in lines) == 1, lines
    assert lines[-3:] == [
        "Failed after 12.0s at step Preprocess:",
        "  train.csv: line 1: missing column 'sentiment'; found columns ['review_text']",
        "  test.csv: line 2: sentiment must be 0 or 1, found '2'",
    ]


def test_a_table_taller_than_the_terminal_is_printed_whole_at_the_end() -> None:
    code, raw = in_terminal("succeed", lines=5)
    assert code == 0
    # What follows the last erase of the live frame is the final print, in colour (SGR) only.
    final = re.sub(r"\x1b\[[0-9;]*m", "", raw.rsplit(b"\x1b[2K", 1)[1].decode())
    assert "\x1b" not in final.replace("\x1b[?25h", "")
    lines = [line.split() for line in final.replace("\r", "").splitlines() if line.strip()]
    assert [
        words[:2] for words in lines if words[0] in ("Preprocess", "Train", "Evaluate")
    ] == [["Preprocess", "Succeeded"], ["Train", "Succeeded"], ["Evaluate", "Succeeded"]]
    assert lines[-1] == ["Succeeded", "in", "12.0s"]


def test_no_color_keeps_the_live_table_without_colours() -> None:
    code, raw = in_terminal("succeed", NO_COLOR="1")
    assert code == 0
    screen = screen_of(raw)
    assert sum(line.startswith("STEP") for line in shown_lines(screen)) == 1
    assert colours(screen) == {"default"}


def test_a_pipe_gets_plain_lines_one_per_change_and_the_table_once() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "succeed"], capture_output=True,
                          env=terminal_environment(os.environ), timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    assert step_table.CONTROL.search(text.replace("\n", "")) is None
    changes = [line.split(None, 1)[1].split() for line in text.splitlines()[:6]]
    assert changes == [
        ["Preprocess", "Executing"], ["Preprocess", "Succeeded", "1.0s", "cached"],
        ["Train", "Executing"], ["Train", "Succeeded", "8.0s", "attempt", "2"],
        ["Evaluate", "Executing"], ["Evaluate", "Succeeded", "3.0s"],
    ]
    assert text.count("STEP ") == 1
    assert text.rstrip().splitlines()[-1] == "Succeeded in 12.0s"


def step(name: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"StepName": name, "StepStatus": status, "StartTime": NOW - timedelta(seconds=5),
            **extra}


def test_plain_table_has_cache_and_attempt_columns() -> None:
    steps = [
        step("Preprocess", "Succeeded", EndTime=NOW - timedelta(seconds=4), AttemptCount=1,
             CacheHitResult={"SourcePipelineExecutionArn": ARN}),
        step("Train", "Executing", AttemptCount=3),
        step("Evaluate", "Succeeded", EndTime=NOW - timedelta(seconds=4), AttemptCount=1,
             SelectiveExecutionResult={"SourcePipelineExecutionArn": ARN}),
    ]
    assert step_table.plain_table(steps, NOW).splitlines() == [
        "STEP        STATUS     TIME  CACHE   ATTEMPTS  DETAIL",
        "Preprocess  Succeeded  1.0s  cached  1",
        "Train       Executing  5.0s          3",
        "Evaluate    Succeeded  1.0s  reused  1",
    ]


def test_a_running_step_and_execution_show_their_elapsed_time() -> None:
    execution = {"PipelineExecutionArn": ARN, "PipelineExecutionStatus": "Executing",
                 "CreationTime": NOW - timedelta(seconds=125)}
    assert step_table.execution_elapsed(execution, NOW) == "2m05s"
    assert step_table.plain_table([step("Train", "Executing")], NOW).splitlines()[1].split()[2] == "5.0s"


def test_outcome_names_the_failed_step_and_why() -> None:
    execution = {"PipelineExecutionArn": ARN, "PipelineExecutionStatus": "Failed",
                 "CreationTime": NOW - timedelta(seconds=9), "LastModifiedTime": NOW}
    failed = step("AccuracyTooLow", "Failed",
                  FailureReason="Model accuracy 0.725 is not above the threshold 0.8")
    assert step_table.outcome_lines(execution, [failed], NOW) == [
        "Failed after 9.0s at step AccuracyTooLow: "
        "Model accuracy 0.725 is not above the threshold 0.8"
    ]


def test_a_failed_processing_step_shows_what_its_job_said_then_sagemakers_reason() -> None:
    execution = {"PipelineExecutionArn": ARN, "PipelineExecutionStatus": "Failed",
                 "CreationTime": NOW - timedelta(seconds=9), "LastModifiedTime": NOW}
    failed = step("Preprocess", "Failed", FailureReason="AlgorithmError: See job logs for more information",
                  ExitMessage="train.csv, line 5: label must be 0 or 1, got 2")
    assert step_table.outcome_lines(execution, [failed], NOW) == [
        "Failed after 9.0s at step Preprocess:",
        "  train.csv, line 5: label must be 0 or 1, got 2",
        "  AlgorithmError: See job logs for more information",
    ]


def test_a_training_script_crash_reads_as_its_exit_code_then_says_where_its_log_is() -> None:
    execution = {"PipelineExecutionArn": ARN, "PipelineExecutionStatus": "Failed",
                 "CreationTime": NOW - timedelta(seconds=9), "LastModifiedTime": NOW}
    reason = "\n".join([
        "AlgorithmError: ExecuteUserScriptError:", "ExitCode 1", 'ErrorMessage ""',
        'Command "python train.py", exit code: 1',
    ])
    job = {"TrainingJob": {"Arn": "arn:aws:sagemaker:us-east-1:000000000000:training-job/pipelines-x"}}
    failed = step("Train", "Failed", FailureReason=reason, Metadata=job)
    row = step_table.StepRow.of(failed, NOW)
    assert row.cell == "AlgorithmError: ExecuteUserScriptError: ExitCode 1 (+2 more below)"
    assert step_table.outcome_lines(execution, [failed], NOW) == [
        "Failed after 9.0s at step Train:",
        "  AlgorithmError: ExecuteUserScriptError: ExitCode 1",
        '  ErrorMessage ""',
        '  Command "python train.py", exit code: 1',
        f"Train's log: python -m pipelines logs Train --execution {ARN}",
    ]


def test_a_failed_step_that_ran_nothing_gets_no_log_hint() -> None:
    execution = {"PipelineExecutionArn": ARN, "PipelineExecutionStatus": "Failed",
                 "CreationTime": NOW - timedelta(seconds=9), "LastModifiedTime": NOW}
    gate = {"Fail": {"ErrorMessage": "too low"}}
    failed = step("AccuracyTooLow", "Failed", FailureReason="too low", Metadata=gate)
    assert step_table.outcome_lines(execution, [failed], NOW) == [
        "Failed after 9.0s at step AccuracyTooLow: too low"
    ]


def test_outcome_falls_back_to_the_execution_reason() -> None:
    execution = {"PipelineExecutionArn": ARN, "PipelineExecutionStatus": "Failed",
                 "CreationTime": NOW - timedelta(seconds=2), "LastModifiedTime": NOW,
                 "FailureReason": "The local SageMaker server stopped."}
    assert step_table.outcome_lines(execution, [], NOW) == [
        "Failed after 2.0s: The local SageMaker server stopped."
    ]


@pytest.mark.parametrize("reason", ["bad\x1b[31m red", "bad\r\x07 bell", "bad\x9b1A up"])
def test_service_text_cannot_inject_control_characters(reason: str) -> None:
    row = step_table.StepRow.of(step("X", "Failed", FailureReason=reason), NOW)
    assert row.detail[0].startswith("bad")
    assert not any(step_table.CONTROL.search(text) for text in [*row.detail, row.cell])


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0.0, "0ms"), (0.0449, "45ms"), (0.9994, "999ms"), (0.9995, "1.0s"), (4.24, "4.2s"), (187, "3m07s"),
     (3900, "1h05m")],
)
def test_a_duration_is_shown_to_the_millisecond_under_a_second_and_coarser_above(
    value: float, shown: str
) -> None:
    assert step_table.seconds(value) == shown
