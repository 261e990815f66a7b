"""CloudWatch Logs over the jobs' log streams, through boto3's own logs client (in-process): stream
names and times, paging of streams and of events with forward and backward tokens, CloudWatch's
errors; and the CLI's `logs` reading a step's log through this API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pipelines import cli
from pipelines.executions import list_steps
from pipelines.local.api.protocol import Dispatcher
from pipelines.step_logs import failed_job_tails, step_log

from . import inprocess
from .world import World, local_sagemaker, processing_step, source_tar, training_step

PROCESSING = "/aws/sagemaker/ProcessingJobs"
TRAINING = "/aws/sagemaker/TrainingJobs"
LINES = 7
# Seven lines 20 ms apart, stdout and stderr mixed: each has a time of its own.
TALKING = (
    "import sys, time; [print(f'line {i}', file=sys.stderr if i % 2 else sys.stdout, flush=True)"
    f" or time.sleep(0.02) for i in range({LINES})]"
)
DEFINITION = {
    "Version": "2020-12-01",
    "Steps": [
        processing_step("Talk", TALKING),
        {**processing_step("Second", "print('second')"), "DependsOn": ["Talk"]},
        {**processing_step("Third", "print('third')"), "DependsOn": ["Second"]},
        {**training_step("Fit"), "DependsOn": ["Talk"]},
        {"Name": "Gate", "Type": "Condition", "DependsOn": ["Third", "Fit"], "Arguments": {
            "Conditions": [{"Type": "Equals", "LeftValue": 1, "RightValue": 1}],
            "IfSteps": [], "ElseSteps": []}},
    ],
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = World(local_sagemaker(tmp_path_factory.mktemp("logs")))
    made.backend.context.store.put_bytes("s3://bucket/code/source.tar.gz", source_tar())
    arn = made.start(made.pipeline(DEFINITION, "talks"))
    assert made.finished(arn)["PipelineExecutionStatus"] == "Succeeded"
    made.known["execution"] = arn
    steps = made.sm("ListPipelineExecutionSteps", PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    made.known.update({
        step["StepName"]: next(iter(step["Metadata"].values()))["Arn"].rsplit("/", 1)[-1]
        for step in steps if step["StepName"] != "Gate"
    })
    yield made
    made.backend.shutdown()


@pytest.fixture(scope="module")
def logs(world: World) -> Any:
    return inprocess.client(Dispatcher(world.backend, check_responses=True), "logs")


def stream_of(logs: Any, job: str, group: str = PROCESSING) -> str:
    found = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=f"{job}/")["logStreams"]
    assert len(found) == 1
    return str(found[0]["logStreamName"])


def error_of(call: Any) -> dict[str, str]:
    with pytest.raises(ClientError) as raised:
        call()
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return dict(raised.value.response["Error"])


def test_a_job_has_one_stream_named_as_sagemaker_names_it(world: World, logs: Any) -> None:
    job = world.known["Talk"]
    described = world.sm("DescribeProcessingJob", ProcessingJobName=job)
    name = stream_of(logs, job)
    started, ended = described["ProcessingStartTime"], described["ProcessingEndTime"]
    prefix, _, seconds = name.partition("/algo-1-")
    assert prefix == job and int(started) <= int(seconds) <= ended
    stream = logs.describe_log_streams(logGroupName=PROCESSING, logStreamNamePrefix=name)["logStreams"][0]
    assert stream["creationTime"] == int(seconds) * 1000
    assert stream["arn"] == f"arn:aws:logs:us-east-1:000000000000:log-group:{PROCESSING}:log-stream:{name}"


def test_events_are_the_jobs_lines_with_the_times_they_were_written(world: World, logs: Any) -> None:
    job = world.known["Talk"]
    described = world.sm("DescribeProcessingJob", ProcessingJobName=job)
    events = logs.get_log_events(logGroupName=PROCESSING, logStreamName=stream_of(logs, job))["events"]
    assert [event["message"] for event in events] == [f"line {i}" for i in range(LINES)]
    times = [event["timestamp"] for event in events]
    assert times == sorted(times) and times[-1] - times[0] >= 20 * (LINES - 1) - 10
    assert described["ProcessingStartTime"] * 1000 <= times[0]
    assert times[-1] <= described["ProcessingEndTime"] * 1000
    assert all(event["ingestionTime"] == event["timestamp"] for event in events)
    stream = logs.describe_log_streams(logGroupName=PROCESSING, logStreamNamePrefix=job)["logStreams"][0]
    assert (stream["firstEventTimestamp"], stream["lastEventTimestamp"]) == (times[0], times[-1])


def test_the_plain_log_file_keeps_the_same_lines(world: World) -> None:
    job = world.known["Talk"]
    (logs_txt,) = world.backend.context.layout.jobs.glob(f"*/{job}/logs.txt")
    assert logs_txt.read_text().splitlines() == [f"line {i}" for i in range(LINES)]


def test_forward_pages_hold_each_event_once_and_the_last_token_comes_back(world: World, logs: Any) -> None:
    request = {"logGroupName": PROCESSING, "logStreamName": stream_of(logs, world.known["Talk"]), "limit": 3}
    page = logs.get_log_events(**request, startFromHead=True)
    seen, pages = [event["message"] for event in page["events"]], 1
    while True:
        token = page["nextForwardToken"]
        page = logs.get_log_events(**request, nextToken=token)
        seen += [event["message"] for event in page["events"]]
        pages += 1
        if page["nextForwardToken"] == token:
            break
    assert seen == [f"line {i}" for i in range(LINES)]
    assert pages == 4 and page["events"] == []  # 3 + 3 + 1, then the end


def test_from_the_end_a_page_is_the_latest_events_and_backward_tokens_go_back(
    world: World, logs: Any
) -> None:
    request = {"logGroupName": PROCESSING, "logStreamName": stream_of(logs, world.known["Talk"]), "limit": 3}
    page = logs.get_log_events(**request)  # startFromHead defaults to false
    assert [event["message"] for event in page["events"]] == ["line 4", "line 5", "line 6"]
    older = logs.get_log_events(**request, nextToken=page["nextBackwardToken"])
    assert [event["message"] for event in older["events"]] == ["line 1", "line 2", "line 3"]
    oldest = logs.get_log_events(**request, nextToken=older["nextBackwardToken"])
    assert [event["message"] for event in oldest["events"]] == ["line 0"]
    start = logs.get_log_events(**request, nextToken=oldest["nextBackwardToken"])
    assert start["events"] == [] and start["nextBackwardToken"] == oldest["nextBackwardToken"]
    newer = logs.get_log_events(**request, nextToken=oldest["nextForwardToken"])
    assert [event["message"] for event in newer["events"]] == ["line 1", "line 2", "line 3"]


def test_start_time_is_inclusive_and_end_time_exclusive(world: World, logs: Any) -> None:
    request = {"logGroupName": PROCESSING, "logStreamName": stream_of(logs, world.known["Talk"])}
    times = [event["timestamp"] for event in logs.get_log_events(**request)["events"]]
    window = logs.get_log_events(**request, startTime=times[2], endTime=times[5], startFromHead=True)
    assert [event["timestamp"] for event in window["events"]] == times[2:5]


def test_each_kind_of_job_logs_to_its_own_group(world: World, logs: Any) -> None:
    def names(group: str) -> set[str]:
        pages = logs.get_paginator("describe_log_streams").paginate(logGroupName=group)
        return {stream["logStreamName"].split("/")[0] for page in pages for stream in page["logStreams"]}

    assert names(PROCESSING) == {world.known[step] for step in ("Talk", "Second", "Third")}
    assert names(TRAINING) == {world.known["Fit"]}
    fit_stream = stream_of(logs, world.known["Fit"], TRAINING)
    fitting = logs.get_log_events(logGroupName=TRAINING, logStreamName=fit_stream)
    assert [event["message"] for event in fitting["events"]] == ["fitting"]


@pytest.mark.parametrize("descending", [False, True])
def test_streams_page_one_at_a_time_in_name_order(world: World, logs: Any, descending: bool) -> None:
    pages = list(logs.get_paginator("describe_log_streams").paginate(
        logGroupName=PROCESSING, descending=descending, PaginationConfig={"PageSize": 1}))
    names = [stream["logStreamName"] for page in pages for stream in page["logStreams"]]
    assert len(pages) == 3 and names == sorted(names, reverse=descending) and len(set(names)) == 3


def test_streams_by_last_event_time_put_the_latest_first(world: World, logs: Any) -> None:
    streams = logs.describe_log_streams(
        logGroupName=PROCESSING, orderBy="LastEventTime", descending=True)["logStreams"]
    assert [s["logStreamName"].split("/")[0] for s in streams] == [
        world.known[step] for step in ("Third", "Second", "Talk")]
    refused = error_of(lambda: logs.describe_log_streams(
        logGroupName=PROCESSING, orderBy="LastEventTime", logStreamNamePrefix="pipelines"))
    assert refused == {"Code": "InvalidParameterException",
                       "Message": "Cannot order by LastEventTime with a logStreamNamePrefix."}


def test_missing_groups_and_streams_are_cloudwatchs_errors(world: World, logs: Any) -> None:
    missing = "ResourceNotFoundException"
    missing_group = {"Code": missing, "Message": "The specified log group does not exist."}
    missing_stream = {"Code": missing, "Message": "The specified log stream does not exist."}
    endpoint_logs = "/aws/sagemaker/Endpoints/e"
    assert error_of(lambda: logs.describe_log_streams(logGroupName=endpoint_logs)) == missing_group
    assert error_of(lambda: logs.get_log_events(logGroupName="nope", logStreamName="a")) == missing_group
    assert error_of(lambda: logs.get_log_events(logGroupName=PROCESSING, logStreamName="a/algo-1-1")) == (
        missing_stream)
    training_stream = stream_of(logs, world.known["Fit"], TRAINING)
    assert error_of(lambda: logs.get_log_events(logGroupName=PROCESSING, logStreamName=training_stream)) == (
        missing_stream)
    assert error_of(lambda: logs.get_log_events(logStreamName="a"))["Code"] == "InvalidParameterException"
    token = error_of(lambda: logs.get_log_events(logGroupName=TRAINING, logStreamName=training_stream,
                                                 nextToken="f/1"))
    assert token["Code"] == "InvalidParameterException"


def test_a_group_is_named_by_its_arn_too(world: World, logs: Any) -> None:
    group_arn = f"arn:aws:logs:us-east-1:000000000000:log-group:{TRAINING}"
    streams = logs.describe_log_streams(logGroupIdentifier=group_arn)["logStreams"]
    assert [s["logStreamName"].split("/")[0] for s in streams] == [world.known["Fit"]]
    both = error_of(lambda: logs.describe_log_streams(logGroupName=TRAINING, logGroupIdentifier=group_arn))
    assert both == {"Code": "ValidationException",  # as AWS answers it (localstack's recorded answers)
                    "Message": "LogGroup name and LogGroup ARN are mutually exclusive parameters."}


def test_a_request_outside_its_shape_is_cloudwatch_logs_invalid_parameter_exception(logs: Any) -> None:
    refused = error_of(lambda: logs.get_log_events(logGroupName=TRAINING, logStreamName="a", limit=10001))
    assert refused == {"Code": "InvalidParameterException", "Message": (
        "1 validation error detected: Value '10001' at 'limit' failed to satisfy constraint: "
        "Member must have value less than or equal to 10000")}


def never_asked() -> Any:
    """A job step's log needs no Lambda client."""
    raise AssertionError("a Lambda client was made for a job step's log")


class InProcessClients:
    def __init__(self, world: World) -> None:
        dispatcher = Dispatcher(world.backend, check_responses=True)
        self.sagemaker = inprocess.client(dispatcher, "sagemaker")
        self.logs = inprocess.client(dispatcher, "logs")
        self.lambda_ = inprocess.client(dispatcher, "lambda")


def cli_logs(
    world: World, step: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, str]:
    monkeypatch.setenv("PIPELINE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("PIPELINE_CONFIG", "")
    monkeypatch.setattr(cli, "Clients", lambda settings: InProcessClients(world))
    code = cli.main(["logs", step, "--execution", world.known["execution"]])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_the_cli_prints_a_job_steps_events_in_order(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_logs(world, "Talk", monkeypatch, tmp_path, capsys) == (
        0, "".join(f"line {i}\n" for i in range(LINES)))
    assert cli_logs(world, "Fit", monkeypatch, tmp_path, capsys) == (0, "fitting\n")


def test_the_cli_says_what_a_step_without_a_job_did(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_logs(world, "Gate", monkeypatch, tmp_path, capsys) == (
        0, "Gate: Succeeded\n  Condition Outcome: True\n")
    code, out = cli_logs(world, "Nope", monkeypatch, tmp_path, capsys)
    assert code == 2 and out.startswith("error: no step 'Nope' in pipeline talks (its steps: ")
    defined = out.split("its steps: ")[1].strip().removesuffix(")").split(", ")
    assert set(defined) == {"Talk", "Second", "Third", "Fit", "Gate"}


def test_a_job_that_never_started_its_container_has_no_stream(world: World, logs: Any) -> None:
    """A job refused before its container starts (here: no code to train) logs nothing, as on
    SageMaker; the CLI says so and shows the step's failure."""
    broken = {"Version": "2020-12-01", "Steps": [training_step("Broken", "missing.tar.gz")]}
    arn = world.start(world.pipeline(broken))
    assert world.finished(arn)["PipelineExecutionStatus"] == "Failed"
    step = world.sm("ListPipelineExecutionSteps", PipelineExecutionArn=arn)["PipelineExecutionSteps"][0]
    job = step["Metadata"]["TrainingJob"]["Arn"].rsplit("/", 1)[-1]
    listed = logs.describe_log_streams(logGroupName=TRAINING, logStreamNamePrefix=f"{job}/")["logStreams"]
    assert listed == []
    clients = InProcessClients(world)
    lines = list(step_log(clients.sagemaker, logs, never_asked, arn, "Broken"))
    assert lines[0] == f"job {job} has no log stream in {TRAINING}: its container has not started\n"
    assert lines[1] == "Broken: Failed\n" and lines[-1].startswith("  failure reason: ClientError: ")


CRASHING_SCRIPT = b"""
for i in range(12):
    print(f"reading batch {i}", flush=True)
raise ValueError("C must be positive")
"""
SAYS_WHY = (
    "import pathlib, sys; message = pathlib.Path('/opt/ml/output/message'); "
    "message.parent.mkdir(parents=True, exist_ok=True); message.write_text('bad label on line 5'); "
    "print('checking', flush=True); sys.exit(1)"
)


@pytest.fixture
def failed(tmp_path: Path) -> Iterator[tuple[World, str]]:
    """A world of its own (the module's has a fixed set of streams) and an execution in which a
    training script crashed and a processing job failed saying why."""
    made = World(local_sagemaker(tmp_path))
    made.backend.context.store.put_bytes("s3://bucket/code/crash.tar.gz", source_tar(CRASHING_SCRIPT))
    failing = {"Version": "2020-12-01", "Steps": [
        training_step("Crash", "crash.tar.gz"), processing_step("Refuse", SAYS_WHY)]}
    arn = made.start(made.pipeline(failing, "fails"))
    assert made.finished(arn)["PipelineExecutionStatus"] == "Failed"
    yield made, arn
    made.backend.shutdown()


def test_a_failed_execution_shows_the_end_of_a_crashed_jobs_log_but_not_of_one_that_said_why(
    failed: tuple[World, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A training script's traceback is only in its log (SageMaker's reason holds none of it);
    a processing job that wrote its ExitMessage has said why already."""
    world, arn = failed
    clients = InProcessClients(world)
    logs = clients.logs

    ((name, tail),) = list(failed_job_tails(logs, list_steps(clients.sagemaker, arn), lines=6))

    assert name == "Crash" and len(tail) == 6
    assert "Traceback (most recent call last):" in tail and tail[-1] == "ValueError: C must be positive"
    assert "reading batch 11" in tail and "reading batch 0" not in tail

    # What `start --wait` prints once the execution has failed: the last ten lines, under the table.
    assert cli._follow(clients, arn, timeout=60) == 1
    shown = capsys.readouterr().out.splitlines()
    said = shown.index("the end of Crash's log:")
    assert len(shown[said + 1:]) == 10 and shown[-1] == "  ValueError: C must be positive"
    assert "  reading batch 6" in shown and "  reading batch 5" not in shown
    assert "the end of Refuse's log:" not in shown

    # `status` of that execution, later, shows the same.
    monkeypatch.setenv("PIPELINE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("PIPELINE_CONFIG", "")
    monkeypatch.setattr(cli, "Clients", lambda settings: clients)
    assert cli.main(["status", arn]) == 1
    status = capsys.readouterr().out.splitlines()
    assert status[status.index("the end of Crash's log:"):] == shown[said:]
