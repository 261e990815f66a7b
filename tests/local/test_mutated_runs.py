"""A definition the service accepts runs to an end, whatever its parts are.

Each example replaces one or two parts, three or more keys deep, of a small definition that
exercises what the executor resolves while it runs (a property file read by Std:JsonGet,
parameters of each type, a condition and its branches of Training, RegisterModel and Lambda steps
or a Fail step, the experiment config, step caching and a retry policy) with arbitrary JSON or one
of the parts such definitions are made of. When CreatePipeline and StartPipelineExecution accept
it, the execution must end (Succeeded, Failed or Stopped) with every step ended and no step failed
by an internal error, and every answer about it must fit the operation's output shape (the
dispatcher checks them).
"""

from __future__ import annotations

import copy
import itertools
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutations import mutated, values

from pipelines.local.api.protocol import Dispatcher
from pipelines.local.lambdas.functions import Invocation
from pipelines.local.service.backend import LocalSageMaker

from .test_service import ended, listed_steps
from .world import BUCKET, IMAGE, ROLE, local_sagemaker, processing_step, source_tar, training_step

EXAMPLES = 200
WRITE_EVALUATION = (
    "import json, os; folder = os.environ.get('SAGEMAKER_BASE_DIR', '/opt/ml') + '/processing/evaluation'; "
    "os.makedirs(folder, exist_ok=True); "
    "json.dump({'metrics': {'accuracy': {'value': 0.9}}}, open(folder + '/evaluation.json', 'w'))"
)


def work_step() -> dict[str, Any]:
    step = processing_step("Work", WRITE_EVALUATION)
    step["Arguments"]["ProcessingOutputConfig"] = {"Outputs": [{
        "OutputName": "evaluation", "S3Output": {
            "S3Uri": f"{BUCKET}/evaluation", "LocalPath": "/opt/ml/processing/evaluation",
            "S3UploadMode": "EndOfJob"}}]}
    step["PropertyFiles"] = [
        {"PropertyFileName": "Evaluation", "OutputName": "evaluation", "FilePath": "evaluation.json"}
    ]
    step["CacheConfig"] = {"Enabled": True, "ExpireAfter": "P30D"}
    step["RetryPolicies"] = [
        {"ExceptionType": ["SageMaker.JOB_INTERNAL_ERROR"], "IntervalSeconds": 1, "MaxAttempts": 2}
    ]
    return step


MODEL_ARTIFACTS = {"Get": "Steps.Fit.ModelArtifacts.S3ModelArtifacts"}
REGISTER = {"Name": "Register", "Type": "RegisterModel", "Arguments": {
    "ModelPackageGroupName": "group",
    "InferenceSpecification": {
        "Containers": [{"Image": IMAGE, "ModelDataUrl": MODEL_ARTIFACTS}],
        "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
    "ModelApprovalStatus": {"Get": "Parameters.Approval"},
    "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": {
        "Std:Join": {"On": "/", "Values": [
            {"Get": "Steps.Work.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"},
            "evaluation.json"]}}}}},
}}
DECIDE = {
    "Name": "Decide", "Type": "Lambda",
    "FunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:decide",
    "Arguments": {"package": {"Get": "Steps.Register.ModelPackageArn"},
                  "threshold": {"Get": "Parameters.Threshold"}},
    "OutputParameters": [{"OutputName": "deploy", "OutputType": "Boolean"},
                         {"OutputName": "note", "OutputType": "String"}],
}
ACCURACY = {"Std:JsonGet": {
    "PropertyFile": {"Get": "Steps.Work.PropertyFiles.Evaluation"}, "Path": "metrics.accuracy.value"}}
DEFINITION: dict[str, Any] = {
    "Version": "2020-12-01",
    "Parameters": [
        {"Name": "Threshold", "Type": "Float", "DefaultValue": 0.8},
        {"Name": "Count", "Type": "Integer", "DefaultValue": 1},
        {"Name": "Flag", "Type": "Boolean", "DefaultValue": True},
        {"Name": "Why", "Type": "String", "DefaultValue": "below"},
        {"Name": "Approval", "Type": "String", "DefaultValue": "PendingManualApproval"},
    ],
    "PipelineExperimentConfig": {
        "ExperimentName": {"Get": "Execution.PipelineName"},
        "TrialName": {"Get": "Execution.PipelineExecutionId"},
    },
    "Steps": [
        work_step(),
        {"Name": "Check", "Type": "Condition", "Arguments": {
            "Conditions": [
                {"Type": "GreaterThanOrEqualTo", "LeftValue": ACCURACY,
                 "RightValue": {"Get": "Parameters.Threshold"}},
                {"Type": "Not", "Expression": {
                    "Type": "Equals", "LeftValue": {"Get": "Parameters.Flag"}, "RightValue": False}},
                {"Type": "In", "QueryValue": {"Get": "Parameters.Count"}, "Values": [1, 2, 3]},
            ],
            "IfSteps": [training_step("Fit"), REGISTER, DECIDE],
            "ElseSteps": [{"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": {
                "Std:Join": {"On": " ", "Values": ["accuracy", {"Get": "Parameters.Why"}]}}}}],
        }},
    ],
}
# Parts such a definition is made of, to put where others were: references to what it declares.
REFERENCES = st.sampled_from([
    {"Get": "Parameters.Threshold"}, {"Get": "Parameters.Count"}, {"Get": "Parameters.Flag"},
    {"Get": "Parameters.Why"}, {"Get": "Steps.Work.ProcessingJobName"},
    {"Get": "Steps.Work.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"},
    {"Get": "Execution.StartDateTime"}, {"Get": "PipelineExperimentConfig.TrialName"}, ACCURACY,
    MODEL_ARTIFACTS, {"Get": "Steps.Fit.TrainingJobName"},
    {"Get": "Steps.Register.ModelPackageArn"}, {"Get": "Parameters.Approval"}, "Approved", "Fit", "Register",
    {"Get": "Steps.Decide.OutputParameters['deploy']"}, {"Get": "Steps.Decide.OutputParameters['note']"},
    {"OutputName": "extra"}, "Boolean", "Integer", "Decide",
    {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Work.PropertyFiles.Evaluation"}, "Path": "metrics.none"}},
    {"Std:Join": {"On": "/", "Values": [{"Get": "Parameters.Count"}, "a"]}},
    {"Type": "Equals", "LeftValue": 1, "RightValue": "1"}, {"Type": "Or", "Conditions": []},
    {"Enabled": True, "ExpireAfter": "PT1S"}, ["Work"], ["Stop"], "Work", "Stop",
    [{"StepType": ["Processing"], "MaxAttempts": 2, "IntervalSeconds": 1, "BackoffRate": 1.0}],
    None, True, False, 0, -1, 2.5, "", [], {},
]).map(copy.deepcopy)
# Arbitrary JSON is CreatePipeline's to refuse (reliability/test_bad_definitions.py): here three
# replacements in four are parts of its own kind, so that most definitions still run.
PARTS = st.integers(0, 3).flatmap(lambda pick: values if pick == 0 else REFERENCES)
NAMES = (f"p{number}" for number in itertools.count())


class Decide:
    """The deploy decision a Lambda step asks for: answered at once, with its two outputs."""

    def invoke(self, name_or_arn: str, event: Any) -> Invocation:
        return Invocation({"deploy": True, "note": json.dumps(event)})


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSageMaker]:
    backend = local_sagemaker(tmp_path_factory.mktemp("mutated-runs"))
    backend.context.store.put_bytes(f"{BUCKET}/code/source.tar.gz", source_tar())
    backend.runner.functions = Decide()  # type: ignore[assignment]
    yield backend
    backend.shutdown()


def accepted(service: LocalSageMaker, operation: str, **request: Any) -> dict[str, Any] | None:
    """The answer, or None where the service refused the request as the client's fault."""
    reply = Dispatcher(service, check_responses=True).json_api(
        f"SageMaker.{operation}", json.dumps({**request, "ClientRequestToken": uuid.uuid4().hex}).encode()
    )
    assert reply.status < 500, reply.body
    return json.loads(reply.body) if reply.status == 200 else None


def run(service: LocalSageMaker, document: Any) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The ended execution of `document` and its steps, or None when the service refused it."""
    name = next(NAMES)
    if accepted(service, "CreatePipeline", PipelineName=name, RoleArn=ROLE,
                PipelineDefinition=json.dumps(document)) is None:
        return None
    started = accepted(service, "StartPipelineExecution", PipelineName=name)
    if started is None:
        return None
    arn = started["PipelineExecutionArn"]
    return ended(service, arn), list(listed_steps(service, arn).values())


def test_the_definition_unmutated_runs_every_step_it_should(service: LocalSageMaker) -> None:
    result = run(service, DEFINITION)
    assert result is not None
    execution, steps = result
    assert execution["PipelineExecutionStatus"] == "Succeeded", steps
    assert {s["StepName"]: s["StepStatus"] for s in steps} == {
        "Work": "Succeeded", "Check": "Succeeded", "Fit": "Succeeded", "Register": "Succeeded",
        "Decide": "Succeeded"}


@st.composite
def mutated_definitions(draw: st.DrawFn) -> Any:
    return mutated(draw, DEFINITION, PARTS, most=2, depth=3)  # inside a step, a parameter or the config


@settings(
    deadline=None, database=None, max_examples=EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
@given(document=mutated_definitions())
def test_an_accepted_mutated_definition_runs_to_an_end(service: LocalSageMaker, document: Any) -> None:
    result = run(service, document)
    if result is None:
        return
    execution, steps = result
    assert execution["PipelineExecutionStatus"] in ("Succeeded", "Failed", "Stopped")
    for step in steps:
        assert step["StepStatus"] in ("Succeeded", "Failed", "Stopped"), step
        reason = step.get("FailureReason", "")
        assert "internal" not in reason.lower() and "unexpected" not in reason.lower(), step
