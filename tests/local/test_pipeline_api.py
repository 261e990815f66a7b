"""The pipeline API as SageMaker answers it, through the wire protocol with responses checked:
idempotent retries, pipeline versions, deletion, the experiment config, parameters as given, and
Lambda outputs typed as declared."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from buckets import with_buckets
from waiting import wait_until

from pipelines.local.errors import ServiceError
from pipelines.local.executor.engine import EXECUTION_FAILURE
from pipelines.local.executor.runner import job_name
from pipelines.local.lambdas.functions import Invocation
from pipelines.local.service.backend import LocalSageMaker

from .test_service import ROLE, call, ended, fail_message, listed_steps
from .world import IMAGE, MODEL_DATA, processing_step

FUNCTION = "arn:aws:lambda:us-east-1:000000000000:function:decide"


class ScriptedFunctions:
    """The Lambda functions a pipeline's steps call: each answers `payload` (or fails with
    `error`), once `go` is set."""

    def __init__(self, payload: Any, error: str = "") -> None:
        self.payload = payload
        self.error = error
        self.go = threading.Event()
        self.go.set()

    def invoke(self, name_or_arn: str, event: Any) -> Invocation:
        self.go.wait(30)
        return Invocation(self.payload, self.error)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LocalSageMaker]:
    backend = LocalSageMaker(tmp_path / "state", "us-east-1", "http://127.0.0.1:1")
    yield backend
    backend.shutdown()


def lambda_pipeline(outputs: dict[str, str], **definition: Any) -> str:
    """A Lambda step with the declared outputs, and a condition on its `flag` when it has one."""
    steps: list[dict[str, Any]] = [
        {
            "Name": "Decide",
            "Type": "Lambda",
            "FunctionArn": FUNCTION,
            "Arguments": {},
            "OutputParameters": [{"OutputName": name, "OutputType": kind} for name, kind in outputs.items()],
        }
    ]
    if "flag" in outputs:
        flag = {"Get": "Steps.Decide.OutputParameters['flag']"}
        steps.append(
            {
                "Name": "Check",
                "Type": "Condition",
                "Arguments": {
                    "Conditions": [{"Type": "Equals", "LeftValue": flag, "RightValue": True}],
                    "IfSteps": [],
                    "ElseSteps": [{"Name": "Refuse", "Type": "Fail", "Arguments": {"ErrorMessage": "else"}}],
                },
            }
        )
    return json.dumps({"Version": "2020-12-01", "Steps": steps, **definition})


def create(service: LocalSageMaker, definition: str, name: str = "P") -> None:
    call(service, "CreatePipeline", RoleArn=ROLE, PipelineName=name, PipelineDefinition=definition)


def refused(service: LocalSageMaker, operation: str, **request: Any) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        call(service, operation, **request)
    return caught.value


def test_lambda_outputs_are_typed_as_declared_so_a_boolean_equals_true(service: LocalSageMaker) -> None:
    service.runner.functions = ScriptedFunctions({"flag": True, "count": 3, "ratio": 1, "note": {"a": 1}})
    create(
        service, lambda_pipeline({"flag": "Boolean", "count": "Integer", "ratio": "Float", "note": "String"})
    )
    arn = call(service, "StartPipelineExecution", PipelineName="P")["PipelineExecutionArn"]
    assert ended(service, arn)["PipelineExecutionStatus"] == "Succeeded"
    steps = listed_steps(service, arn)
    assert steps["Check"]["Metadata"]["Condition"]["Outcome"] == "True"
    assert steps["Decide"]["Metadata"]["Lambda"]["OutputParameters"] == [
        {"Name": "flag", "Value": "true"},
        {"Name": "count", "Value": "3"},
        {"Name": "ratio", "Value": "1.0"},
        {"Name": "note", "Value": '{"a": 1}'},
    ]


@pytest.mark.parametrize(
    ("answer", "declared", "reason"),
    [
        ({"flag": "yes"}, {"flag": "Boolean"},
         'Lambda output flag is declared Boolean but the function returned "yes"'),
        ({"note": "x" * 1025}, {"note": "String"},
         "Lambda output note is 1025 characters long: an output parameter's value holds at most 1024"),
    ],
    ids=["another type than declared", "longer than an output parameter holds"],
)
def test_a_lambda_output_the_step_cannot_take_fails_it(
    service: LocalSageMaker, answer: dict[str, Any], declared: dict[str, str], reason: str
) -> None:
    service.runner.functions = ScriptedFunctions(answer)
    create(service, lambda_pipeline(declared))
    arn = call(service, "StartPipelineExecution", PipelineName="P")["PipelineExecutionArn"]
    assert ended(service, arn)["FailureReason"] == EXECUTION_FAILURE
    assert listed_steps(service, arn)["Decide"]["FailureReason"] == reason


def test_a_null_member_of_a_steps_arguments_is_one_not_sent(service: LocalSageMaker) -> None:
    """As AWS's JSON protocols read it: the job runs as if the member were left out."""
    work = processing_step("Work", "print('worked')")
    work["Arguments"].update(ProcessingOutputConfig=None, Environment=None, StoppingCondition=None)
    create(service, json.dumps({"Version": "2020-12-01", "Steps": [work]}))
    arn = call(service, "StartPipelineExecution", PipelineName="P")["PipelineExecutionArn"]
    assert ended(service, arn)["PipelineExecutionStatus"] == "Succeeded"
    assert listed_steps(service, arn)["Work"]["StepStatus"] == "Succeeded"


def test_arguments_an_expression_makes_no_object_fail_the_step(service: LocalSageMaker) -> None:
    service.runner.functions = ScriptedFunctions({})
    ratio = {"Name": "N", "Type": "Float", "DefaultValue": 0.5}
    document = json.loads(lambda_pipeline({}, Parameters=[ratio]))
    document["Steps"][0]["Arguments"] = {"Get": "Parameters.N"}
    create(service, json.dumps(document))
    arn = call(service, "StartPipelineExecution", PipelineName="P")["PipelineExecutionArn"]
    assert ended(service, arn)["FailureReason"] == EXECUTION_FAILURE
    assert listed_steps(service, arn)["Decide"]["FailureReason"] == (
        "the step's Arguments resolved to 0.5, not an object"
    )


def test_a_register_model_steps_properties_are_the_version_as_described(service: LocalSageMaker) -> None:
    """The SDK gives a RegisterModel step DescribeModelPackage's members as properties, so a later
    step may read the version's approval status and number, not only its ARN."""
    specification = {"Containers": [{"Image": IMAGE, "ModelDataUrl": MODEL_DATA}],
                     "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]}
    register = {"Name": "Register", "Type": "RegisterModel", "Arguments": {
        "ModelPackageGroupName": "group", "InferenceSpecification": specification,
        "ModelApprovalStatus": "PendingManualApproval"}}
    read = [{"Get": f"Steps.Register.{member}"} for member in (
        "ModelPackageGroupName", "ModelPackageVersion", "ModelApprovalStatus",
        "InferenceSpecification.Containers[0].ModelDataUrl")]
    report = {"Name": "Report", "Type": "Fail",
              "Arguments": {"ErrorMessage": {"Std:Join": {"On": " ", "Values": read}}}}
    create(service, json.dumps({"Version": "2020-12-01", "Steps": [register, report]}))
    arn = call(service, "StartPipelineExecution", PipelineName="P")["PipelineExecutionArn"]
    assert fail_message(service, arn) == f"group 1 PendingManualApproval {MODEL_DATA}"


def test_a_long_failure_is_kept_to_what_a_step_can_show(service: LocalSageMaker) -> None:
    message = "".join(f"{number:05d}" for number in range(1000))  # 5,000 characters, none alike
    fail = {"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": message}}
    create(service, json.dumps({"Version": "2020-12-01", "Steps": [fail]}))
    arn = call(service, "StartPipelineExecution", PipelineName="P")["PipelineExecutionArn"]
    assert ended(service, arn)["FailureReason"] == EXECUTION_FAILURE
    step = listed_steps(service, arn)["Stop"]
    assert step["FailureReason"] == message[:1024]
    assert step["Metadata"]["Fail"]["ErrorMessage"] == message[:3072]


def test_a_retried_start_with_its_token_starts_one_execution(service: LocalSageMaker) -> None:
    service.runner.functions = ScriptedFunctions({"flag": True})
    create(service, lambda_pipeline({"flag": "Boolean"}))
    token = "retry-" + "1" * 32  # at least 32 characters
    first = call(service, "StartPipelineExecution", PipelineName="P", ClientRequestToken=token)
    again = call(service, "StartPipelineExecution", PipelineName="P", ClientRequestToken=token)
    assert again == first
    listed = call(service, "ListPipelineExecutions", PipelineName="P")["PipelineExecutionSummaries"]
    assert [e["PipelineExecutionArn"] for e in listed] == [first["PipelineExecutionArn"]]
    error = refused(
        service,
        "StartPipelineExecution",
        PipelineName="P",
        ClientRequestToken=token,
        PipelineExecutionDescription="another request",
    )
    assert (error.code, error.message) == (
        "ValidationException",
        f"ClientRequestToken {token} was already used by another StartPipelineExecution request.",
    )
    create_twice = {
        "RoleArn": ROLE,
        "PipelineName": "Q",
        "PipelineDefinition": lambda_pipeline({}),
        "ClientRequestToken": "create-" + "2" * 32,
    }
    assert call(service, "CreatePipeline", **create_twice) == call(service, "CreatePipeline", **create_twice)


def test_an_execution_runs_the_version_it_names(service: LocalSageMaker) -> None:
    service.runner.functions = ScriptedFunctions({"flag": False})
    create(service, lambda_pipeline({"flag": "Boolean"}))  # version 1: Check, and Refuse when false
    call(
        service, "UpdatePipeline", PipelineName="P", PipelineDefinition=lambda_pipeline({})
    )  # 2: Decide only
    first = call(service, "StartPipelineExecution", PipelineName="P", PipelineVersionId=1)[
        "PipelineExecutionArn"
    ]
    latest = call(service, "StartPipelineExecution", PipelineName="P")["PipelineExecutionArn"]
    assert (ended(service, first)["PipelineExecutionStatus"], ended(service, first)["PipelineVersionId"]) == (
        "Failed",
        1,
    )
    assert (
        ended(service, latest)["PipelineExecutionStatus"],
        ended(service, latest)["PipelineVersionId"],
    ) == ("Succeeded", 2)
    assert set(listed_steps(service, first)) == {"Decide", "Check", "Refuse"}
    error = refused(service, "StartPipelineExecution", PipelineName="P", PipelineVersionId=9)
    assert error.code == "ResourceNotFound"


def test_a_pipeline_is_deleted_only_when_nothing_runs_and_takes_its_history_with_it(
    service: LocalSageMaker,
) -> None:
    functions = ScriptedFunctions({"flag": True})
    service.runner.functions = functions
    create(service, lambda_pipeline({"flag": "Boolean"}))
    functions.go.clear()  # the Lambda step waits: the execution stays Executing
    arn = call(service, "StartPipelineExecution", PipelineName="P")["PipelineExecutionArn"]
    error = refused(service, "DeletePipeline", PipelineName="P")
    assert (error.code, error.message) == (
        "ConflictException",
        "Pipeline P has 1 running execution(s); stop them before deleting it.",
    )
    functions.go.set()
    assert ended(service, arn)["PipelineExecutionStatus"] == "Succeeded"

    call(service, "DeletePipeline", PipelineName="P")
    assert refused(service, "DescribePipelineExecution", PipelineExecutionArn=arn).code == "ResourceNotFound"
    create(service, lambda_pipeline({"flag": "Boolean"}))  # the same name again: no history
    assert call(service, "ListPipelineExecutions", PipelineName="P")["PipelineExecutionSummaries"] == []
    assert "LastRunTime" not in call(service, "DescribePipeline", PipelineName="P")
    versions = call(service, "ListPipelineVersions", PipelineName="P")["PipelineVersionSummaries"]
    assert [v["PipelineVersionId"] for v in versions] == [1]


def test_listed_pipelines_show_when_their_last_execution_began_as_describe_does(
    service: LocalSageMaker,
) -> None:
    service.runner.functions = ScriptedFunctions({"flag": True})
    create(service, lambda_pipeline({"flag": "Boolean"}))
    create(service, lambda_pipeline({"flag": "Boolean"}), name="Idle")
    started = [call(service, "StartPipelineExecution", PipelineName="P")["PipelineExecutionArn"]
               for _ in range(2)]
    began = [ended(service, arn)["CreationTime"] for arn in started]

    summaries = {p["PipelineName"]: p for p in call(service, "ListPipelines")["PipelineSummaries"]}
    described = call(service, "DescribePipeline", PipelineName="P")
    assert summaries["P"]["LastExecutionTime"] == max(began) == described["LastRunTime"]
    assert "LastExecutionTime" not in summaries["Idle"]


def test_an_executions_definition_is_its_versions_beside_when_the_pipeline_was_created(
    service: LocalSageMaker,
) -> None:
    service.runner.functions = ScriptedFunctions({"flag": True})
    first = lambda_pipeline({"flag": "Boolean"})
    create(service, first)
    arn = call(service, "StartPipelineExecution", PipelineName="P")["PipelineExecutionArn"]
    ended(service, arn)
    call(service, "UpdatePipeline", PipelineName="P", PipelineDefinition=lambda_pipeline({"flag": "String"}))

    answer = call(service, "DescribePipelineDefinitionForExecution", PipelineExecutionArn=arn)
    assert json.loads(answer["PipelineDefinition"]) == json.loads(first)
    # "CreationTime: The time when the pipeline was created." (the API reference), not the execution
    assert answer["CreationTime"] == call(service, "DescribePipeline", PipelineName="P")["CreationTime"]
    assert answer["CreationTime"] != call(service, "DescribePipelineExecution", PipelineExecutionArn=arn)[
        "CreationTime"]


def test_an_execution_shows_its_experiment_config_and_steps_can_read_it(service: LocalSageMaker) -> None:
    service.runner.functions = ScriptedFunctions({"flag": True})
    experiment = {"ExperimentName": {"Get": "Execution.PipelineName"}, "TrialName": "trial-a"}
    fail = {
        "Name": "Say",
        "Type": "Fail",
        "Arguments": {
            "ErrorMessage": {
                "Std:Join": {
                    "On": "/",
                    "Values": [
                        {"Get": "PipelineExperimentConfig.ExperimentName"},
                        {"Get": "PipelineExperimentConfig.TrialName"},
                    ],
                }
            }
        },
    }
    create(
        service,
        json.dumps({"Version": "2020-12-01", "PipelineExperimentConfig": experiment, "Steps": [fail]}),
        name="Mixed",
    )
    arn = call(service, "StartPipelineExecution", PipelineName="Mixed")["PipelineExecutionArn"]
    described = ended(service, arn)
    # The ARNs keep the name's case; Execution.PipelineName is the name in lower case.
    assert described["PipelineArn"] == "arn:aws:sagemaker:us-east-1:000000000000:pipeline/Mixed"
    assert arn.startswith(f"{described['PipelineArn']}/execution/")
    assert described["PipelineExperimentConfig"] == {"ExperimentName": "mixed", "TrialName": "trial-a"}
    assert fail_message(service, arn) == "mixed/trial-a"
    assert re.fullmatch(r"execution-\d{13}", described["PipelineExecutionDisplayName"])


@pytest.mark.parametrize(
    ("error", "execution", "step"),
    [("", "Stopped", "Succeeded"), ("Task timed out after 3.00 seconds", "Failed", "Failed")],
    ids=["function-finishes", "function-times-out"],
)
def test_a_stop_waits_for_a_running_lambda_step_whose_end_decides_stopped_or_failed(
    service: LocalSageMaker, error: str, execution: str, step: str
) -> None:
    """The API reference: a running Lambda step cannot be stopped; if its function finishes the
    execution is Stopped, if it times out, Failed."""
    functions = ScriptedFunctions({}, error)
    functions.go.clear()
    service.runner.functions = functions
    create(service, lambda_pipeline({}))
    arn = call(service, "StartPipelineExecution", PipelineName="P")["PipelineExecutionArn"]
    wait_until(lambda: listed_steps(service, arn).get("Decide"), 30, "the Lambda step to start")

    call(service, "StopPipelineExecution", PipelineExecutionArn=arn)
    stopping = call(service, "DescribePipelineExecution", PipelineExecutionArn=arn)
    functions.go.set()

    assert stopping["PipelineExecutionStatus"] == "Stopping"
    assert ended(service, arn)["PipelineExecutionStatus"] == execution
    assert listed_steps(service, arn)["Decide"]["StepStatus"] == step


def test_a_pipeline_and_its_execution_name_who_created_and_last_changed_them(service: LocalSageMaker) -> None:
    create(service, lambda_pipeline({}))
    arn = call(service, "StartPipelineExecution", PipelineName="P")["PipelineExecutionArn"]

    pipeline = call(service, "DescribePipeline", PipelineName="P")
    execution = ended(service, arn)

    caller = {"IamIdentity": {"Arn": "arn:aws:iam::000000000000:root", "PrincipalId": "000000000000"}}
    for described in (pipeline, execution):
        assert (described["CreatedBy"], described["LastModifiedBy"]) == (caller, caller)


def test_an_experiment_name_a_parameter_makes_invalid_is_refused_at_start(service: LocalSageMaker) -> None:
    experiment = {"ExperimentName": {"Std:Join": {"On": "-", "Values": ["run", {"Get": "Parameters.Tag"}]}}}
    document = {
        "Version": "2020-12-01",
        "Parameters": [{"Name": "Tag", "Type": "String", "DefaultValue": "a"}],
        "PipelineExperimentConfig": experiment,
        "Steps": [{"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": "stopped"}}],
    }
    create(service, json.dumps(document))
    tag = [{"Name": "Tag", "Value": "b c"}]
    error = refused(service, "StartPipelineExecution", PipelineName="P", PipelineParameters=tag)
    assert (error.code, error.message) == (
        "ValidationException",
        "PipelineExperimentConfig.ExperimentName 'run-b c' is not an experiment entity name: 1 to 120 "
        "letters, digits or hyphens, starting and ending with a letter or digit",
    )
    assert call(service, "ListPipelineExecutions", PipelineName="P")["PipelineExecutionSummaries"] == []
    arn = call(service, "StartPipelineExecution", PipelineName="P")["PipelineExecutionArn"]
    assert ended(service, arn)["PipelineExperimentConfig"] == {
        "ExperimentName": "run-a", "TrialName": arn.rsplit("/", 1)[-1]
    }


def test_parameters_are_listed_as_given_and_an_empty_one_is_refused(service: LocalSageMaker) -> None:
    service.runner.functions = ScriptedFunctions({"flag": True})
    parameters = [
        {"Name": "Ratio", "Type": "Float", "DefaultValue": 0.5},
        {"Name": "Go", "Type": "Boolean", "DefaultValue": False},
        {"Name": "Label", "Type": "String", "DefaultValue": "a"},
    ]
    create(service, lambda_pipeline({"flag": "Boolean"}, Parameters=parameters))
    given = [{"Name": "Ratio", "Value": "2"}, {"Name": "Go", "Value": "TRUE"}]
    arn = call(service, "StartPipelineExecution", PipelineName="P", PipelineParameters=given)[
        "PipelineExecutionArn"
    ]
    listed = call(service, "ListPipelineParametersForExecution", PipelineExecutionArn=arn)[
        "PipelineParameters"
    ]
    assert listed == [
        {"Name": "Ratio", "Value": "2"},
        {"Name": "Go", "Value": "TRUE"},
        {"Name": "Label", "Value": "a"},
    ]
    error = refused(
        service,
        "StartPipelineExecution",
        PipelineName="P",
        PipelineParameters=[{"Name": "Label", "Value": ""}],
    )
    assert error.message.endswith('string "" is too short (length: 0, required minimum: 1)')


@pytest.mark.parametrize(("member", "value"), [("RoleArn", ROLE), ("MlflowExperimentName", "runs")])
def test_start_options_for_pipelines_this_target_has_not_are_refused(
    service: LocalSageMaker, member: str, value: str
) -> None:
    create(service, lambda_pipeline({}))
    assert refused(service, "StartPipelineExecution", PipelineName="P", **{member: value}).code == (
        "ValidationException"
    )
    assert call(service, "ListPipelineExecutions", PipelineName="P")["PipelineExecutionSummaries"] == []


@pytest.mark.parametrize("step_name", ["Train", "a" * 64, "Pre_process-Step", "___"])
def test_every_attempt_of_a_step_is_a_job_of_its_own_with_a_valid_name(step_name: str) -> None:
    names = [job_name("0123456789ab", step, attempt) for step in (step_name, step_name + "2")
             for attempt in (1, 2, 3, 100)]
    assert len(set(names)) == len(names)
    assert all(len(name) <= 63 and re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name) for name in names)
    assert job_name("0123456789ab", "Train", 1).startswith("pipelines-0123456789ab-Train-")  # the step's case


def test_a_job_keeps_the_first_20_characters_of_its_steps_name_as_sagemakers_jobs_do() -> None:
    # Real step metadata: step Rossmann-Model-Training ran as
    # pipelines-8pk6dxn4cfvl-Rossmann-Model-Train-bPVYsMzUlc.
    name = job_name("8pk6dxn4cfvl", "Rossmann-Model-Training", 1)
    assert re.fullmatch(r"pipelines-8pk6dxn4cfvl-Rossmann-Model-Train-[0-9A-Za-z]{10}", name), name
    # Two steps that share those 20 characters still run as jobs of their own.
    assert name != job_name("8pk6dxn4cfvl", "Rossmann-Model-Trainer", 1)


def test_a_jobs_suffix_has_letters_of_either_case_and_digits_as_sagemakers_do() -> None:
    # Real suffixes: bPVYsMzUlc (above), T5io3oBe9u (TrainAbaloneModel-T5io3oBe9u in a real model URI).
    suffixes = "".join(job_name("8pk6dxn4cfvl", f"Step{n}", attempt).rpartition("-")[2]
                       for n in range(20) for attempt in (1, 2))
    assert {character.isupper() for character in suffixes if character.isalpha()} == {True, False}
    assert any(character.isdigit() for character in suffixes)
    assert job_name("8pk6dxn4cfvl", "Train", 2) == job_name("8pk6dxn4cfvl", "Train", 2)  # a restart's


def test_a_retried_execution_runs_its_failed_step_as_a_new_job_and_keeps_the_failed_one(
    service: LocalSageMaker,
) -> None:
    """The step fails on its input; the input is mended in S3 and the execution retried, which
    stages the input again."""
    store = with_buckets(service.context.store, "retry")
    store.put_bytes("s3://retry/input/verdict", b"the first attempt fails")
    code = ("import os, pathlib, sys; base = os.environ.get('SAGEMAKER_BASE_DIR', '/opt/ml'); "
            "verdict = pathlib.Path(base, 'processing/input/verdict/verdict').read_text(); "
            "sys.exit(None if verdict == 'mended' else verdict)")
    step = processing_step("Flaky", code)
    step["Arguments"]["ProcessingInputs"] = [{"InputName": "verdict", "S3Input": {
        "S3Uri": "s3://retry/input", "LocalPath": "/opt/ml/processing/input/verdict",
        "S3DataType": "S3Prefix", "S3InputMode": "File"}}]
    create(service, json.dumps({"Version": "2020-12-01", "Steps": [step]}))
    arn = call(service, "StartPipelineExecution", PipelineName="P")["PipelineExecutionArn"]
    assert ended(service, arn)["PipelineExecutionStatus"] == "Failed"
    first = listed_steps(service, arn)["Flaky"]["Metadata"]["ProcessingJob"]["Arn"].rsplit("/", 1)[-1]

    store.put_bytes("s3://retry/input/verdict", b"mended")
    call(service, "RetryPipelineExecution", PipelineExecutionArn=arn, ClientRequestToken="r" * 32)

    assert ended(service, arn)["PipelineExecutionStatus"] == "Succeeded"
    step = listed_steps(service, arn)["Flaky"]
    second = step["Metadata"]["ProcessingJob"]["Arn"].rsplit("/", 1)[-1]
    assert (step["AttemptCount"], first != second) == (2, True)
    failed = call(service, "DescribeProcessingJob", ProcessingJobName=first)
    assert (failed["ProcessingJobStatus"], failed["FailureReason"]) == (
        "Failed", "AlgorithmError: See job logs for more information")
    succeeded = call(service, "DescribeProcessingJob", ProcessingJobName=second)
    assert succeeded["ProcessingJobStatus"] == "Completed"
    jobs = service.context.layout.execution_dir(arn.rsplit("/", 1)[-1])
    assert "the first attempt fails" in (jobs / first / "logs.txt").read_text()
    assert (jobs / second / "logs.txt").is_file()


def test_a_job_name_is_never_saved_twice(service: LocalSageMaker) -> None:
    job = {"ProcessingJobName": "once", "ProcessingStartTime": "2026-01-02T03:04:05.000Z"}
    service.jobs.save_job("ProcessingJob", {**job, "ProcessingJobStatus": "InProgress"})  # a running job
    service.jobs.save_job("ProcessingJob", {**job, "ProcessingJobStatus": "Failed"})
    with pytest.raises(ServiceError) as caught:
        service.jobs.save_job("ProcessingJob", {**job, "ProcessingJobStatus": "Completed"})
    assert caught.value.code == "ResourceInUse"
    kept = service.jobs.describe_processing_job({"ProcessingJobName": "once"})
    assert kept["ProcessingJobStatus"] == "Failed"


def test_an_unknown_job_is_a_validation_exception_as_sagemaker_answers_it(service: LocalSageMaker) -> None:
    training = refused(service, "DescribeTrainingJob", TrainingJobName="nope")
    processing = refused(service, "DescribeProcessingJob", ProcessingJobName="nope")
    assert (training.code, training.message) == ("ValidationException", "Requested resource not found.")
    assert (processing.code, processing.message) == (
        "ValidationException", 'Could not find processing job "nope".'
    )


class CountingFunctions:
    """Lambda functions that answer once `go` is set (or after two minutes, longer than any test
    waits for them), counting the invocations under way."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.under_way = 0
        self._lock = threading.Lock()

    def invoke(self, name_or_arn: str, event: Any) -> Invocation:
        with self._lock:
            self.under_way += 1
        self.go.wait(120)
        return Invocation({})


def two_lambda_steps() -> str:
    steps = [{"Name": n, "Type": "Lambda", "FunctionArn": FUNCTION, "Arguments": {}} for n in ("A", "B")]
    return json.dumps({"Version": "2020-12-01", "Steps": steps})


def test_an_updated_parallelism_binds_the_steps_a_running_execution_has_not_started(
    service: LocalSageMaker,
) -> None:
    functions = CountingFunctions()
    service.runner.functions = functions
    create(service, two_lambda_steps())
    arn = call(service, "StartPipelineExecution", PipelineName="P",
               ParallelismConfiguration={"MaxParallelExecutionSteps": 1})["PipelineExecutionArn"]
    try:
        wait_until(lambda: functions.under_way == 1, 30, "the first step to run")
        assert len(listed_steps(service, arn)) == 1  # the other waits: one step at a time
        answer = call(service, "UpdatePipelineExecution", PipelineExecutionArn=arn,
                      ParallelismConfiguration={"MaxParallelExecutionSteps": 2})
        assert answer == {"PipelineExecutionArn": arn}
        wait_until(lambda: functions.under_way == 2, 30, "the second step to start while the first runs")
        described = call(service, "DescribePipelineExecution", PipelineExecutionArn=arn)
        assert described["ParallelismConfiguration"] == {"MaxParallelExecutionSteps": 2}
    finally:
        functions.go.set()
    assert ended(service, arn)["PipelineExecutionStatus"] == "Succeeded"


def test_an_update_sets_the_description_and_display_name_that_describe_and_list_show(
    service: LocalSageMaker,
) -> None:
    service.runner.functions = ScriptedFunctions({"flag": True})
    create(service, lambda_pipeline({"flag": "Boolean"}))
    arn = call(service, "StartPipelineExecution", PipelineName="P",
               PipelineExecutionDisplayName="first")["PipelineExecutionArn"]
    ended(service, arn)  # an ended execution takes an update too
    before = call(service, "DescribePipelineExecution", PipelineExecutionArn=arn)
    call(service, "UpdatePipelineExecution", PipelineExecutionArn=arn,
         PipelineExecutionDescription="annotated", PipelineExecutionDisplayName="renamed")
    after = call(service, "DescribePipelineExecution", PipelineExecutionArn=arn)
    names = (after["PipelineExecutionDescription"], after["PipelineExecutionDisplayName"])
    assert names == ("annotated", "renamed")
    assert after["LastModifiedTime"] >= before["LastModifiedTime"]
    assert after["PipelineExecutionStatus"] == before["PipelineExecutionStatus"] == "Succeeded"
    summary = call(service, "ListPipelineExecutions", PipelineName="P")["PipelineExecutionSummaries"][0]
    assert (summary["PipelineExecutionDescription"], summary["PipelineExecutionDisplayName"]) == (
        "annotated", "renamed")


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        ({"PipelineExecutionDisplayName": "not valid!"}, "ValidationException"),
        ({"ParallelismConfiguration": {"MaxParallelExecutionSteps": 0}}, "ValidationException"),
        ({"PipelineExecutionDescription": "x" * 3073}, "ValidationException"),
    ],
)
def test_an_update_is_checked_against_its_shape(
    service: LocalSageMaker, request_: dict[str, Any], code: str
) -> None:
    service.runner.functions = ScriptedFunctions({"flag": True})
    create(service, lambda_pipeline({"flag": "Boolean"}))
    arn = call(service, "StartPipelineExecution", PipelineName="P")["PipelineExecutionArn"]
    assert refused(service, "UpdatePipelineExecution", PipelineExecutionArn=arn, **request_).code == code


def test_an_update_of_a_missing_execution_is_resource_not_found(service: LocalSageMaker) -> None:
    create(service, lambda_pipeline({"flag": "Boolean"}))
    missing = "arn:aws:sagemaker:us-east-1:000000000000:pipeline/p/execution/nothere"
    error = refused(service, "UpdatePipelineExecution", PipelineExecutionArn=missing,
                    PipelineExecutionDescription="x")
    assert error.code == "ResourceNotFound"
    assert error.message == f"Pipeline execution '{missing}' does not exist."
