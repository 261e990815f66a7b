"""The command line's own behaviour, apart from the commands' work."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ParamValidationError

from pipelines import REPO_ROOT, cli
from pipelines.aws import S3Storage
from pipelines.definition import definition_json
from pipelines.monitoring_definition import monitoring_definition_json
from pipelines.settings import Settings


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    """`python -m pipelines definition | head -1`: no BrokenPipeError traceback, the shell's 141."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "definition"], cwd=REPO_ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    process.stdout.close()  # gone before the first line
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 141
    assert b"Traceback" not in stderr and b"BrokenPipeError" not in stderr


class FakeClients:
    """Stands in for `Clients`: the SageMaker and runtime clients a test gives, no server."""

    def __init__(self, settings: Settings, sagemaker: Any = None, runtime: Any = None,
                 lambda_: Any = None, logs: Any = None, scheduler: Any = None, storage: Any = None) -> None:
        self.settings, self.sagemaker, self.runtime = settings, sagemaker, runtime
        self.lambda_, self.logs, self.scheduler, self.storage = lambda_, logs, scheduler, storage


def use_clients(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **clients: Any) -> None:
    monkeypatch.setenv("PIPELINE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("PIPELINE_CONFIG", "")
    monkeypatch.setattr(cli, "Clients", lambda settings: FakeClients(settings, **clients))


def client_error(code: str, message: str, **extra: Any) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}, **extra}, "Operation")


def test_an_api_limit_out_of_range_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """`executions --limit 0` ended in botocore's ParamValidationError traceback."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["executions", "--limit", "0"])
    assert exit_info.value.code == 2
    assert "0 is not between 1 and 100" in capsys.readouterr().err


def test_a_request_botocore_refuses_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class Refusing:
        def list_pipeline_executions(self, **request: Any) -> dict[str, Any]:
            raise ParamValidationError(report="Invalid value for parameter MaxResults")

    use_clients(monkeypatch, tmp_path, sagemaker=Refusing())
    assert cli.main(["executions"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Parameter validation failed") and "Traceback" not in err


def test_interrupting_a_followed_run_says_the_execution_goes_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C while `start --wait` follows: exit 130, and the user learns the run is not stopped."""
    arn = "arn:aws:sagemaker:us-east-1:000000000000:pipeline/p/execution/abc"

    class Running:
        def start_pipeline_execution(self, **request: Any) -> dict[str, Any]:
            return {"PipelineExecutionArn": arn}

        def describe_pipeline_execution(self, **request: Any) -> dict[str, Any]:
            raise KeyboardInterrupt

    use_clients(monkeypatch, tmp_path, sagemaker=Running())
    monkeypatch.setattr(cli, "_data_parameters", lambda settings, clients, given: {"InputDataUri": "s3://b/d/1"})
    assert cli.main(["start", "--wait"]) == 130
    err = capsys.readouterr().err
    assert "goes on running" in err and f"python -m pipelines status {arn}" in err
    assert f"python -m pipelines stop {arn}" in err


def test_a_followed_run_lists_its_steps_once_after_it_ends_for_the_endpoint_it_deployed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The last look of `start --wait` already listed the ended execution's steps: the endpoint the
    deploy step made is read from them, not from a second listing."""
    arn = "arn:aws:sagemaker:us-east-1:000000000000:pipeline/p/execution/abc"
    outputs = [{"Name": "action", "Value": "created"}, {"Name": "endpoint_name", "Value": "e"}]
    deployed = {"StepName": "DeployEndpoint", "StepStatus": "Succeeded",
                "Metadata": {"Lambda": {"OutputParameters": outputs}}}
    listings: list[str] = []
    waited: list[str] = []

    class Deployed:
        def start_pipeline_execution(self, **request: Any) -> dict[str, Any]:
            return {"PipelineExecutionArn": arn}

        def describe_pipeline_execution(self, **request: Any) -> dict[str, Any]:
            return {"PipelineExecutionArn": arn, "PipelineExecutionStatus": "Succeeded"}

        def get_paginator(self, operation: str) -> Any:
            listings.append(operation)
            pages = [{"PipelineExecutionSteps": [deployed]}]
            return type("Pages", (), {"paginate": lambda self, **request: pages})()

        def describe_endpoint(self, EndpointName: str) -> dict[str, Any]:
            waited.append(EndpointName)
            return {"EndpointStatus": "InService", "EndpointConfigName": "c"}

    use_clients(monkeypatch, tmp_path, sagemaker=Deployed())
    monkeypatch.setattr(cli, "_data_parameters", lambda settings, clients, given: {"InputDataUri": "s3://b/d/1"})
    assert cli.main(["start", "--wait"]) == 0
    assert (listings, waited) == (["list_pipeline_execution_steps"], ["e"])


def test_start_without_an_uploaded_dataset_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """InputDataUri has no default (a run names the data it reads): with nothing uploaded, `start`
    says what to do instead of sending a start that SageMaker refuses."""
    started: list[dict[str, Any]] = []

    class Registry:
        def start_pipeline_execution(self, **request: Any) -> dict[str, Any]:
            started.append(request)
            return {"PipelineExecutionArn": "arn:aws:sagemaker:us-east-1:000000000000:pipeline/p/execution/a"}

    use_clients(monkeypatch, tmp_path, sagemaker=Registry())
    monkeypatch.setattr(cli, "_data_parameters", lambda settings, clients, given: {})
    assert cli.main(["start"]) == 2
    assert "no dataset uploaded to s3://" in capsys.readouterr().err and started == []
    assert cli.main(["start", "--param", "InputDataUri=s3://b/mine/"]) == 0
    assert {"Name": "InputDataUri", "Value": "s3://b/mine/"} in started[0]["PipelineParameters"]


def test_invoke_without_a_review_on_a_terminal_says_what_to_give(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reading a body from a terminal would wait, silently, for input the user does not know to type."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

        def read(self, size: int | None = -1) -> str:
            raise AssertionError("read a body from the terminal")

    use_clients(monkeypatch, tmp_path)
    monkeypatch.setattr(sys, "stdin", Terminal())
    assert cli.main(["invoke"]) == 2
    assert capsys.readouterr().err.startswith("error: invoke needs a review")


class Runtime:
    def __init__(self, error: ClientError) -> None:
        self.error = error

    def invoke_endpoint(self, **request: Any) -> dict[str, Any]:
        raise self.error


class Recording:
    """A runtime that answers one prediction and keeps what it was sent."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def invoke_endpoint(self, **request: Any) -> dict[str, Any]:
        self.sent.append(request)
        return {"Body": io.BytesIO(b'{"predictions": [{"label": 1, "score": 0.9}]}')}


def test_a_content_type_for_a_review_given_as_text_is_refused_not_mislabelled(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`invoke --content-type text/csv "hello"` sent {"review_text": "hello"} labelled text/csv: the
    model scored the JSON document's text as the review."""
    runtime = Recording()
    use_clients(monkeypatch, tmp_path, runtime=runtime)
    assert cli.main(["invoke", "--content-type", "text/csv", "hello"]) == 2
    assert "--content-type is the type of a body on stdin" in capsys.readouterr().err
    assert runtime.sent == []
    assert cli.main(["invoke", "hello"]) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello\n"))
    assert cli.main(["invoke", "--content-type", "text/csv"]) == 0
    assert [(r["ContentType"], r["Body"]) for r in runtime.sent] == [
        ("application/json", b'{"review_text": "hello"}'), ("text/csv", b"hello\n")]


def test_invoke_before_any_endpoint_says_how_to_deploy_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = client_error("ValidationError", "Endpoint sentiment-classifier of account 1 not found.")
    use_clients(monkeypatch, tmp_path, runtime=Runtime(missing))
    assert cli.main(["invoke", "fine"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no endpoint sentiment-classifier: `make run-pipeline` deploys one")


def test_a_local_server_gone_away_is_named_with_its_log_not_the_network(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A killed server's port refuses connections: "check the network" sent users the wrong way."""
    with socket.socket() as closed:  # a loopback port nothing listens on once closed
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    runtime = boto3.Session(
        aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1"
    ).client("sagemaker-runtime", endpoint_url=url, config=Config(retries={"max_attempts": 1}))
    use_clients(monkeypatch, tmp_path, runtime=runtime)
    assert cli.main(["invoke", "fine"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: the local SageMaker server stopped answering at {url}")
    assert str(tmp_path / "state" / "server.log") in err
    assert "network" not in err


def test_a_model_error_shows_what_the_model_answered(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not the runtime's pointer to CloudWatch Logs, which the local target has not."""
    refused = client_error(
        "ModelError", 'Received client error (400) ... See https://console.aws.amazon.com/cloudwatch ...',
        OriginalStatusCode=400, OriginalMessage='{"error": "index 0: the review is empty"}',
    )
    use_clients(monkeypatch, tmp_path, runtime=Runtime(refused))
    assert cli.main(["invoke", ""]) == 2
    assert capsys.readouterr().err == (
        "error: the model refused the request (400): index 0: the review is empty\n"
    )


def test_graph_of_the_latest_run_before_any_run_draws_the_steps(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make graph` on a fresh clone: the picture without statuses, not an error."""

    class NoPipeline:
        def list_pipeline_executions(self, **request: Any) -> dict[str, Any]:
            raise client_error("ResourceNotFound", "Pipeline 'sentiment-classifier' does not exist.")

    use_clients(monkeypatch, tmp_path, sagemaker=NoPipeline())
    monkeypatch.setattr(cli, "_definition", built_definition)
    out = tmp_path / "pipeline.svg"
    assert cli.main(["graph", "--execution", "latest", "--out", str(out)]) == 0
    assert "has not run yet" in capsys.readouterr().out
    assert "Training ·" not in out.read_text() and "Training" in out.read_text()


def built_definition(settings: Settings, monitoring: bool = False) -> str:
    """cli._definition without the definition cache: built here, as a fresh clone builds it."""
    return monitoring_definition_json(settings) if monitoring else definition_json(settings)


def test_the_monitoring_pipeline_is_drawn_with_its_own_latest_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`graph --pipeline-name sentiment-classifier-monitor` drew the training pipeline's steps under
    that name: the flag names the training pipeline. `--monitoring` draws the monitoring one."""
    asked: list[str] = []

    class NotRunYet:
        def list_pipeline_executions(self, PipelineName: str, **request: Any) -> dict[str, Any]:
            asked.append(PipelineName)
            return {"PipelineExecutionSummaries": []}

    use_clients(monkeypatch, tmp_path, sagemaker=NotRunYet())
    monkeypatch.setattr(cli, "_definition", built_definition)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["graph", "--monitoring", "--execution", "latest", "--out", "m.svg"]) == 0
    assert asked == ["sentiment-classifier-monitor"]
    assert "pipeline sentiment-classifier-monitor has not run yet" in capsys.readouterr().out
    svg = (tmp_path / "m.svg").read_text()
    assert ">CheckDrift<" in svg and ">Train<" not in svg


def test_the_graph_of_a_run_marks_cache_hits_and_retried_steps(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, default_settings: Settings
) -> None:
    """A second run's picture was all green `Succeeded`, the same as a first run's: it showed
    neither which jobs the step cache served nor which a retry policy ran again. It is drawn from
    the definition the execution ran (an upsert since may have added or removed steps)."""
    arn = "arn:aws:sagemaker:us-east-1:000000000000:pipeline/sentiment-classifier/execution/abc"
    steps = [
        {"StepName": "Preprocess", "StepStatus": "Succeeded", "AttemptCount": 1,
         "CacheHitResult": {"SourcePipelineExecutionArn": arn}},
        {"StepName": "Train", "StepStatus": "Succeeded", "AttemptCount": 2},
        {"StepName": "Evaluate", "StepStatus": "Succeeded", "AttemptCount": 1},
    ]

    class Ran:
        def list_pipeline_executions(self, **request: Any) -> dict[str, Any]:
            return {"PipelineExecutionSummaries": [{"PipelineExecutionArn": arn}]}

        def describe_pipeline_definition_for_execution(self, PipelineExecutionArn: str) -> dict[str, Any]:
            assert PipelineExecutionArn == arn
            ran = json.loads(definition_json(default_settings))
            ran["Steps"][0]["DisplayName"] = "As the execution ran it"
            return {"PipelineDefinition": json.dumps(ran)}

        def get_paginator(self, operation: str) -> Any:
            assert operation == "list_pipeline_execution_steps"
            pages = [{"PipelineExecutionSteps": steps}]
            return type("Pages", (), {"paginate": lambda self, **request: pages})()

    use_clients(monkeypatch, tmp_path, sagemaker=Ran())
    out = tmp_path / "pipeline.svg"
    assert cli.main(["graph", "--execution", "latest", "--out", str(out)]) == 0
    svg = out.read_text()
    assert ">As the execution ran it<" in svg
    assert ">Processing · Succeeded · cached<" in svg
    assert ">Training · Succeeded · 2 attempts<" in svg
    assert ">Processing · Succeeded<" in svg  # Evaluate: run once, not from the cache


def test_a_path_the_command_cannot_write_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`graph --out` a folder ended in IsADirectoryError's traceback."""
    use_clients(monkeypatch, tmp_path)
    monkeypatch.setattr(cli, "_definition", built_definition)
    assert cli.main(["graph", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path}: Is a directory\n"


class NoSageMakerCalls:
    """A SageMaker client a command must not reach: it had to refuse before asking."""

    def __getattr__(self, operation: str) -> Any:
        raise AssertionError(f"{operation} was called")


@pytest.mark.parametrize("argv", [["status", "nope"], ["logs", "Train", "--execution", "arn:nope"],
                                  ["graph", "--execution", "sentiment-classifier/1"]])
def test_something_that_is_not_an_execution_arn_is_named_before_any_call(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not the server's regular expression for the ARN, echoed back."""
    use_clients(monkeypatch, tmp_path, sagemaker=NoSageMakerCalls())
    given = argv[1] if argv[0] == "status" else argv[-1]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {given!r} is not a pipeline execution ARN (arn:aws:sagemaker:")
    assert "`python -m pipelines executions` lists them" in err


def test_an_execution_arn_is_passed_on_as_given(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    arn = "arn:aws:sagemaker:us-east-1:000000000000:pipeline/sentiment-classifier/execution/abc123"
    asked: list[str] = []

    class Steps:
        def describe_pipeline_execution(self, PipelineExecutionArn: str) -> dict[str, Any]:
            asked.append(PipelineExecutionArn)
            raise client_error("ResourceNotFound", "not found")

    use_clients(monkeypatch, tmp_path, sagemaker=Steps())
    assert cli.main(["status", arn]) == 2
    assert asked == [arn]


@pytest.mark.parametrize(("option", "value", "words"), [
    ("--window-start", "yesterday", "'yesterday' is not an ISO 8601 time"),
    ("--window-end", "2026-13-01", "'2026-13-01' is not an ISO 8601 time"),
    ("--window-hours", "-2", "'-2' is not a number of hours above 0"),
    ("--window-hours", "two", "'two' is not a number of hours above 0"),
    ("--window-hours", "inf", "'inf' is not a number of hours above 0"),
])
def test_a_monitoring_window_the_check_cannot_read_is_refused_before_a_run(
    option: str, value: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["monitor", "run", option, value])
    assert exit_info.value.code == 2
    assert words in capsys.readouterr().err


@pytest.mark.parametrize("command", [["start", "--wait"], ["run"], ["retry", "--wait"],
                                     ["stop", "--wait"], ["monitor", "run"]])
@pytest.mark.parametrize("value", ["-5", "0", "nan", "inf", "soon"])
def test_a_wait_bound_that_is_not_a_number_of_seconds_above_0_is_a_usage_error(
    command: list[str], value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A negative bound gave up before the first look and "nan" never gave up: both ran first."""
    use_clients(monkeypatch, tmp_path, sagemaker=NoSageMakerCalls())
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*command, "--timeout", value])
    assert exit_info.value.code == 2
    assert f"{value!r} is not a number of seconds above 0" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "unused"), [
    (["monitor", "show", "--window-hours", "3"], "--window-hours 3"),
    (["monitor", "history", "--schedule", "rate(1 day)"], "--schedule rate(1 day)"),
    (["monitor", "setup", "--execution", "arn:x"], "--execution arn:x"),
    (["monitor", "run", "--limit", "5"], "--limit 5"),
    (["models", "list", "3"], "3"),
    (["models", "reject", "3", "--wait"], "--wait"),
])
def test_an_option_the_action_does_not_take_is_refused_not_ignored(
    argv: list[str], unused: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each action of `monitor` and `models` took every option of its command and ignored those
    it had no use for: `monitor show --window-hours 3` showed the latest run, whatever its window."""
    use_clients(monkeypatch, tmp_path, sagemaker=NoSageMakerCalls())
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert f"unrecognized arguments: {unused}\n" in capsys.readouterr().err


@pytest.mark.parametrize(("action", "options", "others"), [
    ("run", ["--window-start", "--window-hours", "--param", "--timeout"], ["--schedule", "--limit"]),
    ("setup", ["--schedule", "--window-hours", "--disable"], ["--window-start", "--timeout"]),
    ("show", ["--execution"], ["--window-hours", "--limit"]),
    ("history", ["--limit", "--out"], ["--execution", "--schedule"]),
])
def test_each_monitor_action_lists_only_its_own_options(
    action: str, options: list[str], others: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["monitor", action, "--help"])
    shown = capsys.readouterr().out
    assert all(option in shown for option in options)
    assert not any(option in shown for option in others)


def test_an_approval_change_without_a_version_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["models", "rollback"])
    assert exit_info.value.code == 2
    assert "the following arguments are required: package" in capsys.readouterr().err


@pytest.mark.parametrize("end", ["2026-01-01T00:00:00Z", "2025-06-01"])
def test_a_window_that_ends_before_it_starts_is_refused_before_a_run(
    end: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It ran the monitoring pipeline, which then failed at CheckDrift with the same words."""
    use_clients(monkeypatch, tmp_path, sagemaker=NoSageMakerCalls())
    assert cli.main(["monitor", "run", "--window-start", "2026-01-01", "--window-end", end]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the window start 2026-01-01T00:00:00")
    assert "is not before its end" in err


def test_the_window_is_checked_by_the_command_as_users_run_it(tmp_path: Path) -> None:
    """In a fresh interpreter, with only what `python -m pipelines` puts on the path: the check's
    parser comes from steps/monitoring/capture.py, whose job imports (artifact.py, found in the
    job's library folder) are not there."""
    done = subprocess.run(
        [sys.executable, "-m", "pipelines", "monitor", "run", "--window-start", "yesterday"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PIPELINE_STATE_DIR": str(tmp_path / "state")},
    )
    assert done.returncode == 2
    assert "'yesterday' is not an ISO 8601 time" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_monitoring_window_in_the_checks_own_forms_is_accepted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    asked: list[dict[str, str]] = []

    class Ran:
        exit_code = 0

    def run_monitor(clients: Any, overrides: dict[str, str], say: Any, timeout: float) -> Ran:
        asked.append(overrides)
        return Ran()

    use_clients(monkeypatch, tmp_path)
    monkeypatch.setattr("pipelines.monitoring_run.run_monitor", run_monitor)
    argv = ["monitor", "run", "--window-start", "2026-12-01T09:00:00Z", "--window-end", "2026-12-01T10:00"]
    assert cli.main(argv) == 0
    assert cli.main(["monitor", "run", "--window-hours", "1.5"]) == 0
    assert cli.main(["monitor", "run", "--window-start", "2026-12-01", "--window-hours", "1"]) == 2
    assert asked == [{"WindowStart": "2026-12-01T09:00:00Z", "WindowEnd": "2026-12-01T10:00"},
                     {"WindowHours": "1.5"}]


def test_monitor_setup_takes_the_window_a_cron_schedule_needs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, s3: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--window-hours` reached the schedule as text and setup crashed on it (TypeError)."""
    scheduler = boto3.client("scheduler", region_name="us-east-1")
    use_clients(monkeypatch, tmp_path, scheduler=scheduler, storage=S3Storage(s3))
    argv = ["monitor", "setup", "--schedule", "cron(0 9 ? * MON-FRI *)"]
    assert cli.main(argv) == 2
    assert "pass window_hours for cron() or at() expressions (--window-hours)" in capsys.readouterr().err
    assert cli.main([*argv, "--window-hours", "24"]) == 0
    out = capsys.readouterr().out
    assert '"window_hours": 24.0' in out and "has captured no traffic yet" in out
    schedule = scheduler.get_schedule(Name="sentiment-classifier-monitor-schedule")
    parameters = json.loads(schedule["Target"]["Input"])["PipelineParameters"]
    assert {"Name": "WindowHours", "Value": "24"} in parameters


PACKAGE = "arn:aws:sagemaker:us-east-1:000000000000:model-package/sentiment-classifier/3"


@pytest.mark.parametrize(("action", "status", "changes"), [
    ("approve", "PendingManualApproval", ["Approved"]),
    ("approve", "Rejected", ["Approved"]),
    ("approve", "Approved", []),
    # Only a change *to* Approved deploys: an Approved version goes through a status the rule ignores.
    ("rollback", "Approved", ["PendingManualApproval", "Approved"]),
    ("rollback", "Rejected", ["Approved"]),
    ("reject", "Approved", ["Rejected"]),
])
def test_approval_changes_make_the_change_the_approval_rule_deploys_on(
    action: str, status: str, changes: list[str], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    made: list[str] = []

    class Registry:
        def describe_model_package(self, ModelPackageName: str) -> dict[str, Any]:
            assert ModelPackageName == PACKAGE
            return {"ModelPackageArn": PACKAGE, "ModelApprovalStatus": status}

        def update_model_package(self, ModelPackageArn: str, ModelApprovalStatus: str) -> dict[str, Any]:
            assert ModelPackageArn == PACKAGE
            made.append(ModelApprovalStatus)
            return {"ModelPackageArn": PACKAGE}

    use_clients(monkeypatch, tmp_path, sagemaker=Registry())
    assert cli.main(["models", action, PACKAGE]) == 0
    assert made == changes
    out = capsys.readouterr().out
    if not changes:  # `approve` of an Approved version said "Approved" and deployed nothing
        assert "already Approved; nothing changed, so nothing is deployed" in out
        assert f"models rollback {PACKAGE}" in out


def test_an_endpoint_being_updated_shows_the_config_it_leaves_and_the_one_it_moves_to(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It showed `Updating  <old config>` alone, which reads as an update to the old config."""

    class Updating:
        def get_paginator(self, operation: str) -> Any:
            assert operation == "list_endpoints"
            pages = [{"Endpoints": [{"EndpointName": "sentiment-classifier", "EndpointStatus": "Updating"}]}]
            return type("Pages", (), {"paginate": lambda self, **request: pages})()

        def describe_endpoint(self, EndpointName: str) -> dict[str, Any]:
            return {"EndpointName": EndpointName, "EndpointStatus": "Updating",
                    "EndpointConfigName": "sentiment-classifier-v2-aaaaaaaa-11111111",
                    "PendingDeploymentSummary": {
                        "EndpointConfigName": "sentiment-classifier-v4-bbbbbbbb-22222222"}}

    use_clients(monkeypatch, tmp_path, sagemaker=Updating())
    assert cli.main(["endpoints"]) == 0
    assert capsys.readouterr().out.split() == [
        "sentiment-classifier", "Updating", "sentiment-classifier-v2-aaaaaaaa-11111111", "->",
        "sentiment-classifier-v4-bbbbbbbb-22222222"]


CHANGE = datetime(2024, 1, 1, 0, 0, 5, tzinfo=UTC)  # when the version waited for was approved
LATER_CHANGE = datetime(2024, 1, 1, 0, 0, 9, tzinfo=UTC)
EARLIER_CHANGE = datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize(("served_version", "updating", "served_at", "status_since", "error"), [
    (4, True, LATER_CHANGE, "Approved", "will not serve v3: it is on its way to v4, Approved at "
     "2024-01-01 00:00:09, after this version was approved (2024-01-01 00:00:05): the later decision stands"),
    (4, False, LATER_CHANGE, "Approved", "will not serve v3: it serves v4, Approved at 2024-01-01 "
     "00:00:09, after this version was approved (2024-01-01 00:00:05): the later decision stands"),
    (3, True, LATER_CHANGE, "Rejected", "will not serve v3: it is Rejected now"),
    (2, True, EARLIER_CHANGE, "Approved", "does not serve v3 after 600 s"),  # its deploy may still come
])
def test_waiting_for_an_approval_stops_once_the_endpoint_cannot_come_to_the_version(
    served_version: int, updating: bool, served_at: datetime, status_since: str, error: str,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """A version approved after this one stands (its deploy replaces this one's, or this one's gives
    way), and a version no longer Approved is skipped: `--wait` went on waiting for the whole
    timeout (30 minutes by default) for a version that could not come."""
    from steps.deploy import package_tag

    other = PACKAGE.rsplit("/", 1)[0] + f"/{served_version}"
    served = f"sentiment-classifier-{package_tag(other, served_version)}-0badc0de"
    statuses = {PACKAGE: "PendingManualApproval"}

    class Registry:
        def describe_model_package(self, ModelPackageName: str) -> dict[str, Any]:
            if ModelPackageName == PACKAGE:
                return {"ModelPackageArn": PACKAGE, "ModelPackageVersion": 3, "CreationTime": CHANGE,
                        "LastModifiedTime": CHANGE, "ModelApprovalStatus": statuses[PACKAGE]}
            assert ModelPackageName == other
            return {"ModelPackageArn": other, "ModelPackageVersion": served_version,
                    "CreationTime": served_at, "LastModifiedTime": served_at,
                    "ModelApprovalStatus": "Approved"}

        def update_model_package(self, ModelPackageArn: str, ModelApprovalStatus: str) -> dict[str, Any]:
            statuses[ModelPackageArn] = status_since if ModelApprovalStatus == "Approved" else "?"
            return {"ModelPackageArn": ModelPackageArn}

        def describe_endpoint(self, EndpointName: str) -> dict[str, Any]:
            if not updating:
                return {"EndpointStatus": "InService", "EndpointConfigName": served}
            return {"EndpointStatus": "Updating", "EndpointConfigName": "sentiment-classifier-v1-0-0",
                    "PendingDeploymentSummary": {"EndpointConfigName": served}}

    class Functions:
        def get_function_configuration(self, FunctionName: str) -> dict[str, Any]:
            return {}

    class Logs:
        exceptions = type("Exceptions", (), {"ResourceNotFoundException": LookupError})

        def get_paginator(self, operation: str) -> Any:
            return type("Pages", (), {"paginate": lambda self, **window: [{"events": []}]})()

    slept: list[float] = []
    clock = [0.0]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr(cli.executions.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(cli.executions.time, "sleep", sleep)
    use_clients(monkeypatch, tmp_path, sagemaker=Registry(), lambda_=Functions(), logs=Logs())
    assert cli.main(["models", "approve", PACKAGE, "--wait", "--timeout", "600"]) == 1
    assert f"error: endpoint sentiment-classifier {error}" in capsys.readouterr().err
    assert (slept == []) == error.startswith("will not serve")


@pytest.mark.parametrize(("served", "code"), [
    ("sentiment-classifier-v3-TAG-0badc0de", 0), ("sentiment-classifier-v2-aaaaaaaa-0badc0de", 1)])
def test_waiting_for_an_approval_to_deploy_ends_once_the_endpoint_serves_the_version(
    served: str, code: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The approval's deploy is asynchronous: nothing else says whether it put the version on."""
    from steps.deploy import package_tag

    served = served.replace("TAG", package_tag(PACKAGE, 3).split("-")[1])
    other = PACKAGE.replace("/3", "/2")

    statuses = ["PendingManualApproval"]

    class Registry:
        def describe_model_package(self, ModelPackageName: str) -> dict[str, Any]:
            return {"ModelPackageArn": PACKAGE, "ModelPackageVersion": 3, "CreationTime": CHANGE,
                    "ModelApprovalStatus": statuses[-1]}

        def update_model_package(self, ModelPackageArn: str, ModelApprovalStatus: str) -> dict[str, Any]:
            statuses.append(ModelApprovalStatus)
            return {"ModelPackageArn": PACKAGE}

        def describe_endpoint(self, EndpointName: str) -> dict[str, Any]:
            return {"EndpointStatus": "InService", "EndpointConfigName": served}

    class Functions:
        def get_function_configuration(self, FunctionName: str) -> dict[str, Any]:
            assert FunctionName.endswith(":function:sentiment-classifier-deploy")
            return {}

    # The approval's deploy, and the pipeline's own for another version just before it: the
    # deploy function runs several at once, and only those about v3 are shown.
    logged = [{"logStreamName": stream, "timestamp": 0, "message": message} for stream, message in (
        ("a", "START RequestId: r0 Version: $LATEST"), ("b", "START RequestId: r1 Version: $LATEST"),
        ("a", f"deploy: version {package_tag(other, 2)}: {other}, Approved"),
        ("b", f"deploy: version {package_tag(PACKAGE, 3)}: {PACKAGE}, Approved"),
        ("a", f"deploy: unchanged {package_tag(other, 2)}: endpoint sentiment-classifier already ..."),
        ("b", "[ERROR] ModelDataMismatch: the model data at s3://b/k has SHA-256 ab, not the registered cd"),
        ("a", "END RequestId: r0"), ("a", "REPORT RequestId: r0"),
        ("b", "END RequestId: r1"), ("b", "REPORT RequestId: r1"))]

    class Logs:
        exceptions = type("Exceptions", (), {"ResourceNotFoundException": LookupError})

        def get_paginator(self, operation: str) -> Any:
            assert operation == "filter_log_events"
            return type("Pages", (), {"paginate": lambda self, **window: [{"events": logged}]})()

    use_clients(monkeypatch, tmp_path, sagemaker=Registry(), lambda_=Functions(), logs=Logs())
    assert cli.main(["models", "approve", PACKAGE, "--wait", "--timeout", "0.01"]) == code
    if code:
        err = capsys.readouterr().err
        assert ("does not serve v3 after 0.01 s; the deploy function logs to "
                "/aws/lambda/sentiment-classifier-deploy\nits invocations for v3 since the approval:\n"
                "START RequestId: r1 Version: $LATEST\n") in err
        assert "[ERROR] ModelDataMismatch: the model data at s3://b/k has SHA-256 ab" in err
        assert "r0" not in err and other not in err


def test_a_pipeline_not_yet_made_on_aws_is_made_by_the_aws_targets_upsert(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class NoPipeline:
        def list_pipeline_executions(self, **request: Any) -> dict[str, Any]:
            raise client_error("ResourceNotFound", "Pipeline 'arn:aws:sagemaker:eu-west-1:123456789012:"
                               "pipeline/sentiment-classifier' does not exist.")

    use_clients(monkeypatch, tmp_path, sagemaker=NoPipeline())
    argv = ["--target", "sagemaker", "--bucket", "b", "--role-arn", "arn:aws:iam::123456789012:role/r"]
    assert cli.main([*argv, "executions"]) == 2
    err = capsys.readouterr().err
    assert "`make upsert-pipeline TARGET=sagemaker` creates the project's pipelines" in err
    assert "`make run-pipeline TARGET=sagemaker` also runs the training one" in err


class TwoPipelines:
    """The training pipeline's latest run (Train, Evaluate) and the monitoring one's (CheckDrift)."""

    STEPS: ClassVar[dict[str, list[str]]] = {"train1": ["Train", "Evaluate"], "check1": ["CheckDrift"]}
    RUNS: ClassVar[dict[str, list[str]]] = {  # latest first
        "sentiment-classifier": ["train1"], "sentiment-classifier-monitor": ["check1"]
    }
    DEFINED: ClassVar[dict[str, list[dict[str, Any]]]] = {
        "sentiment-classifier": [
            {"Name": "Preprocess", "Type": "Processing"}, {"Name": "Train", "Type": "Training"},
            {"Name": "Evaluate", "Type": "Processing"},
            {"Name": "AccuracyCheck", "Type": "Condition",
             "Arguments": {"IfSteps": [{"Name": "RegisterModel", "Type": "RegisterModel"}], "ElseSteps": []}},
        ],
        "sentiment-classifier-monitor": [{"Name": "CheckDrift", "Type": "Processing"}],
    }

    @staticmethod
    def arn(pipeline: str, run: str) -> str:
        return f"arn:aws:sagemaker:us-east-1:000000000000:pipeline/{pipeline}/execution/{run}"

    def list_pipeline_executions(self, PipelineName: str, **request: Any) -> dict[str, Any]:
        started = datetime(2026, 12, 1, 9, tzinfo=UTC)
        summaries = [
            {"PipelineExecutionArn": self.arn(PipelineName, run), "PipelineExecutionStatus": "Failed",
             "StartTime": started}
            for run in self.RUNS[PipelineName][: request.get("MaxResults", 100)]
        ]
        return {"PipelineExecutionSummaries": summaries}

    def describe_pipeline_execution(self, PipelineExecutionArn: str) -> dict[str, Any]:
        return {"PipelineExecutionArn": PipelineExecutionArn, "PipelineExecutionStatus": "Failed",
                "CreationTime": datetime(2026, 12, 1, 9, tzinfo=UTC)}

    def describe_pipeline(self, PipelineName: str) -> dict[str, Any]:
        return {"PipelineDefinition": json.dumps({"Steps": self.DEFINED[PipelineName]})}

    def describe_pipeline_definition_for_execution(self, PipelineExecutionArn: str) -> dict[str, Any]:
        return self.describe_pipeline(PipelineExecutionArn.split("/")[1])

    def get_paginator(self, operation: str) -> Any:
        assert operation == "list_pipeline_execution_steps"

        def paginate(PipelineExecutionArn: str, **request: Any) -> list[dict[str, Any]]:
            names = self.STEPS[PipelineExecutionArn.rsplit("/", 1)[-1]]
            steps = [{"StepName": name, "StepStatus": "Failed"} for name in names]
            return [{"PipelineExecutionSteps": steps}]

        return type("Pages", (), {"paginate": staticmethod(paginate)})()


class StoppedBeforeTrain(TwoPipelines):
    """The training pipeline's latest run failed at Preprocess; the one before ran Train."""

    STEPS: ClassVar[dict[str, list[str]]] = {**TwoPipelines.STEPS, "train2": ["Preprocess"]}
    RUNS: ClassVar[dict[str, list[str]]] = {**TwoPipelines.RUNS, "sentiment-classifier": ["train2", "train1"]}


@pytest.mark.parametrize(("argv", "shown"), [
    (["status", "--monitoring"], "CheckDrift"),
    (["status"], "Evaluate"),
    (["executions", "--monitoring"], "sentiment-classifier-monitor/execution/check1"),
    (["executions"], "sentiment-classifier/execution/train1"),
])
def test_monitoring_runs_are_followed_with_the_same_commands(
    argv: list[str], shown: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A scheduled check that failed could be looked at only by naming its ARN, or the monitoring
    pipeline through --pipeline-name <name>-monitor (which names the training pipeline)."""
    use_clients(monkeypatch, tmp_path, sagemaker=TwoPipelines())
    cli.main(argv)
    assert shown in capsys.readouterr().out


def test_a_step_of_the_other_pipeline_is_pointed_at_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use_clients(monkeypatch, tmp_path, sagemaker=TwoPipelines())
    training_steps = "Preprocess, Train, Evaluate, AccuracyCheck, RegisterModel"
    assert cli.main(["logs", "CheckDrift"]) == 2
    assert capsys.readouterr().err == (
        f"error: no step 'CheckDrift' in pipeline sentiment-classifier (its steps: {training_steps}); "
        "`logs CheckDrift --monitoring` reads the monitoring pipeline's latest run\n")
    assert cli.main(["logs", "Train", "--monitoring"]) == 2
    assert "; `logs Train` reads the training pipeline's latest run" in capsys.readouterr().err
    assert cli.main(["logs", "Bogus"]) == 2  # in neither pipeline: no pointer
    assert capsys.readouterr().err == (
        f"error: no step 'Bogus' in pipeline sentiment-classifier (its steps: {training_steps})\n")


@pytest.mark.parametrize(("argv", "said"), [
    (["logs", "Train"], "step 'Train' has not run in the latest execution (Failed; steps run: Preprocess); "
     f"`logs Train --execution {TwoPipelines.arn('sentiment-classifier', 'train1')}` reads the latest run "
     "that has it"),
    (["logs", "RegisterModel"], "step 'RegisterModel' has not run in the latest execution (Failed; steps "
     "run: Preprocess), nor in any of sentiment-classifier's recent runs"),
    (["logs", "Train", "--execution", TwoPipelines.arn("sentiment-classifier", "train2")],
     "step 'Train' has not run in this execution (Failed; steps run: Preprocess)"),
])
def test_a_step_a_run_stopped_before_is_read_from_the_latest_run_that_ran_it(
    argv: list[str], said: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """After a run failed at Preprocess, `logs Train` pointed at the monitoring pipeline, which has no
    Train step: the step is the training pipeline's own, and an earlier run has its log."""
    use_clients(monkeypatch, tmp_path, sagemaker=StoppedBeforeTrain())
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == f"error: {said}\n"


class DefinitionsDenied(StoppedBeforeTrain):
    def describe_pipeline_definition_for_execution(self, PipelineExecutionArn: str) -> dict[str, Any]:
        raise client_error("AccessDeniedException", "not authorized to read the definition")


def test_a_missing_step_without_the_right_to_read_definitions_is_still_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Telling where the step's log is needs more reads than the log; a role without them still gets
    the plain reason, not an AccessDenied about something it did not ask for."""
    use_clients(monkeypatch, tmp_path, sagemaker=DefinitionsDenied())
    assert cli.main(["logs", "Train"]) == 2
    assert capsys.readouterr().err == "error: no step 'Train' in this execution; its steps: Preprocess\n"
