"""CreatePipeline refuses at upsert what SageMaker refuses, and what the local target cannot run."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from tarballs import tar_gz

from pipelines import REPO_ROOT
from pipelines.local.api.protocol import Dispatcher
from pipelines.local.executor import checks
from pipelines.local.executor.checks import check_sources, definition_problems, request_problems
from pipelines.local.executor.engine import DefinitionError, validate_definition
from pipelines.local.jobs import limits
from pipelines.local.jobs.image_python import environment_for
from pipelines.local.jobs.images import UnsupportedImage, check_image, local_sklearn_release
from pipelines.local.jobs.processing import run_processing_job
from pipelines.local.storage.objects import ObjectStore

from .shapes_support import send
from .world import BUCKET, IMAGE, MODEL_DATA, ROLE, local_sagemaker, training_step

REGISTRY = "683313688378.dkr.ecr.us-east-1.amazonaws.com"
HERE = f"{REGISTRY}/sagemaker-scikit-learn:{local_sklearn_release()}-1-cpu-py3"
ARN_PREFIX = "arn:aws:sagemaker:us-east-1:000000000000"


def processing(
    name: str = "Prep", image: Any = HERE, count: Any = 1, environment: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A Processing step whose Arguments are a complete CreateProcessingJob request."""
    step: dict[str, Any] = {
        "Name": name,
        "Type": "Processing",
        "Arguments": {
            "ProcessingResources": {
                "ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": count, "VolumeSizeInGB": 30}
            },
            "AppSpecification": {"ImageUri": image, "ContainerEntrypoint": ["python3"]},
            "RoleArn": "arn:aws:iam::000000000000:role/local-sagemaker",
        },
    }
    if environment is not None:
        step["Arguments"]["Environment"] = environment
    return step


def condition(*conditions: Any, **branches: list[dict[str, Any]]) -> dict[str, Any]:
    """A Condition step named C; `branches` gives IfSteps and ElseSteps."""
    return {"Name": "C", "Type": "Condition", "Arguments": {"Conditions": list(conditions), **branches}}


def definition(*steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"Version": "2020-12-01", "Parameters": [], "Steps": list(steps), **extra}


def lambda_step(**members: Any) -> dict[str, Any]:
    """A Lambda step with one declared output, its members replaced by `members`."""
    step = {"Name": "Decide", "Type": "Lambda",
            "FunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:f", "Arguments": {},
            "OutputParameters": [{"OutputName": "deploy", "OutputType": "Boolean"}]}
    return {**step, **members}


@pytest.fixture(scope="module")
def project_definition() -> dict[str, Any]:
    """The project's own definition, built once; tests copy it before changing it."""
    built = subprocess.run(
        [sys.executable, "-m", "pipelines", "definition"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    )
    return dict(json.loads(built.stdout))


def test_the_projects_definition_passes(project_definition: dict[str, Any]) -> None:
    assert definition_problems(project_definition) == []
    validate_definition(project_definition)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (definition(processing("x" * 65)), "must be 1 to 64 letters"),
        (definition(processing("has.dot")), "step name 'has.dot'"),
        (definition(), "Steps must hold at least one step"),
        (definition(processing(), Version="2021-01-01"), "Version must be '2020-12-01'"),
        (definition(processing(), Parameters=[{"Name": "N", "Type": "Number"}]), "Type must be String"),
        (definition(processing(), Parameters=[{"Name": "N", "Type": "Integer", "DefaultValue": "1"}]),
         "DefaultValue '1' is not a Integer"),
        (definition(processing(), Parameters=[{"Name": "bad name", "Type": "String"}]), "parameter name"),
        (definition({"Name": "T", "Type": "Transform", "Arguments": {}}),
         "step type Transform is not supported by the local SageMaker"),
        (definition({"Name": "B", "Type": "Bogus", "Arguments": {}}), "unknown step type 'Bogus'"),
        (definition({"Name": "C", "Type": "Condition", "Arguments": {
            "Conditions": [{"Type": "Between", "LeftValue": 1, "RightValue": 2}]}}),
         "unknown condition type 'Between'"),
        (definition({"Name": "C", "Type": "Condition", "Arguments": {"Conditions": [
            {"Type": "Not", "Condition": {"Type": "Sometimes"}}]}}), "unknown condition type 'Sometimes'"),
        (definition(condition({"Type": "Equals", "LeftValue": 1})), "step C: Equals: missing RightValue"),
        (definition(condition({"Type": "In", "QueryValue": 1, "Values": "a"})), "In: Values must be a list"),
        (definition(condition({"Type": "Not"})), "Not: missing the Condition it negates"),
        (definition({"Name": "C", "Type": "Condition", "Arguments": {"Conditions": {"Type": "Equals"}}}),
         "step C: Conditions must be a list of conditions"),
        (definition(condition({"Type": "Equals", "LeftValue": {"Std:Join": {"On": "/", "Values": "a"}},
                               "RightValue": "a"})), "step C: Std:Join expects"),
        (definition(processing(environment={"RUN": {"Std:Upper": "x"}})),
         "step Prep: unsupported function Std:Upper"),
        (definition({"Name": "F", "Type": "Fail",
                     "Arguments": {"ErrorMessage": {"Std:JsonGet": {"Path": "a"}}}}),
         "step F: Std:JsonGet needs a PropertyFile or an S3Uri"),
        (definition(lambda_step(FunctionArn=None)),
         "step Decide: FunctionArn must name the function, got None"),
        (definition(lambda_step(OutputParameters={"Get": "Parameters.Out"})),
         "step Decide: OutputParameters must be a list of outputs, got {'Get': 'Parameters.Out'}"),
        (definition(lambda_step(OutputParameters=["deploy"])),
         "step Decide: an output parameter must be an object with an OutputName, got 'deploy'"),
        (definition(lambda_step(OutputParameters=[{"OutputName": "a"}, {"OutputName": "a"}])),
         "step Decide: output parameter 'a' is declared more than once"),
        (definition(lambda_step(OutputParameters=[{"OutputName": "a", "OutputType": "List"}])),
         "step Decide: output parameter 'a': OutputType must be one of String, Integer, Boolean, Float, "
         "got 'List'"),
        (definition(processing(), PipelineExperimentConfig=["x"]),
         "PipelineExperimentConfig must be an object, got ['x']"),
        (definition(processing(), PipelineExperimentConfig={"ExperimentName": ["Stop"]}),
         "PipelineExperimentConfig.ExperimentName ['Stop'] is not an experiment entity name"),
        (definition(processing(), PipelineExperimentConfig={"TrialName": "trial_1"}),
         "PipelineExperimentConfig.TrialName 'trial_1' is not an experiment entity name: 1 to 120 letters"),
        (definition(processing(), PipelineExperimentConfig={"Trial": "t"}),
         "PipelineExperimentConfig has no member 'Trial': it names ExperimentName and TrialName"),
        (definition(processing(), PipelineExperimentConfig={"TrialName": {"Get": "Parameters.Run"}}),
         "PipelineExperimentConfig.TrialName refers to undeclared parameter Run"),
        (definition(processing(), PipelineExperimentConfig={"TrialName": {"Get": "Steps.Prep.Arguments"}}),
         "PipelineExperimentConfig.TrialName reads Steps.Prep.Arguments: it is resolved as the "
         "execution starts"),
        (definition(processing(), PipelineExperimentConfig={"ExperimentName": {"Std:Join": {"On": "-"}}}),
         "PipelineExperimentConfig.ExperimentName: Std:Join expects"),
        (definition(processing(image=f"{REGISTRY}/sagemaker-xgboost:1.7-1")), "cannot run locally"),
        (definition(processing(image=f"{REGISTRY}/sagemaker-scikit-learn:0.23-1-cpu-py3")),
         "has scikit-learn 0.23"),
        # SageMaker's parser refuses a member it does not know, at any level, in its own words.
        (definition(processing(), Bogus=1), "the definition: Cannot parse object, unknown property 'Bogus'"),
        (definition(condition({"Type": "Equals", "LeftValue": 1, "RightValue": 1, "Expression": 2})),
         "step C: Conditions[0]: Cannot parse object, unknown property 'Expression'"),
        (definition(condition({"Type": "Or", "Conditions": [
            {"Type": "In", "QueryValue": 1, "Values": [1], "In": [1]}]})),
         "step C: Conditions[0].Conditions[0]: Cannot parse object, unknown property 'In'"),
        (definition(condition({"Type": "Not", "Condition": {"Type": "Equals", "Left": 1}})),
         "step C: Conditions[0].Condition: Cannot parse object, unknown property 'Left'"),
        (definition({**condition(), "Arguments": {"Conditions": [], "ThenSteps": []}}),
         "step C: Arguments: Cannot parse object, unknown property 'ThenSteps'"),
        (definition({**processing(), "Timeout": 60}),
         "step Prep: Cannot parse object, unknown property 'Timeout'"),
        (definition(condition(ElseSteps=[{"Name": "F", "Type": "Fail", "Arguments": {"ErrorMessage": "no"},
                                          "CacheConfig": {"Enabled": True}}])),
         "step F: Cannot parse object, unknown property 'CacheConfig'"),
        (definition({**processing(), "CacheConfig": {"Enabled": True, "Expire": "P1D"}}),
         "step Prep: CacheConfig: Cannot parse object, unknown property 'Expire'"),
        (definition({**processing(),
                     "RetryPolicies": [{"ExceptionType": ["Step.THROTTLING"], "MaxAttempt": 2}]}),
         "step Prep: RetryPolicies[0]: Cannot parse object, unknown property 'MaxAttempt'"),
        (definition(processing(), Parameters=[{"Name": "N", "Type": "String", "Default": "x"}]),
         "Parameters[0]: Cannot parse object, unknown property 'Default'"),
        (definition(lambda_step(OutputParameters=[{"OutputName": "a", "Type": "String"}])),
         "step Decide: OutputParameters[0]: Cannot parse object, unknown property 'Type'"),
        (definition(processing(), MlflowConfig={"MlflowResourceArn": f"{ARN_PREFIX}:mlflow-app/app-1"}),
         "MlflowConfig logs each execution to a SageMaker MLflow tracking server, which the local "
         "SageMaker does not have"),
        (definition(processing(), Metadata={"owner": 1}), "Metadata 'owner': a name of 1 to 128 letters"),
        # SageMaker's words (its integration test test_invalid_pipeline_depended_on_fail_step)
        (definition({**condition(), "Name": "CondStep", "DependsOn": ["FailStep"]},
                    {"Name": "FailStep", "Type": "Fail", "Arguments": {"ErrorMessage": "no"}}),
         "CondStep can not depends on FailStep"),
    ],
)
def test_refused_at_upsert(document: dict[str, Any], expected: str) -> None:
    with pytest.raises(DefinitionError, match=re.escape(expected)):
        validate_definition(document)


def test_a_json_get_of_an_undeclared_property_file_is_refused(project_definition: dict[str, Any]) -> None:
    document = copy.deepcopy(project_definition)
    evaluate = next(s for s in document["Steps"] if s["Name"] == "Evaluate")
    evaluate["PropertyFiles"][0]["PropertyFileName"] = "SomethingElse"
    problems = definition_problems(document)
    wanted = "property file 'EvaluationReport', which step Evaluate does not declare"
    assert any(wanted in problem for problem in problems)


def test_a_branch_step_is_checked_once_as_a_step_of_its_own() -> None:
    fail = {"Name": "F", "Type": "Fail", "Arguments": {"ErrorMessage": {"Std:Upper": "x"}}}
    problems = definition_problems(definition(condition(
        {"Type": "Equals", "LeftValue": 1, "RightValue": 1}, IfSteps=[], ElseSteps=[fail])))
    assert problems == ["step F: unsupported function Std:Upper (the functions are Std:Join and Std:JsonGet)"]


def test_a_not_condition_as_sdk_v2_writes_it_passes() -> None:
    negated = {"Type": "Not", "Expression": {"Type": "Equals", "LeftValue": 1, "RightValue": 2}}
    assert definition_problems(definition(condition(negated))) == []


def test_the_members_the_sdks_write_pass() -> None:
    """What SDK v3 writes at the top (Metadata, an MlflowConfig of null) and the step members of
    each type, a Not as either SDK writes it."""
    output = {"OutputName": "report", "S3Output": {
        "S3Uri": f"{BUCKET}/r", "LocalPath": "/opt/ml/processing/report", "S3UploadMode": "EndOfJob"}}
    retry = {"ExceptionType": ["Step.THROTTLING"], "IntervalSeconds": 1, "BackoffRate": 2.0, "MaxAttempts": 3}
    steps = [
        {**with_arguments(processing(), ProcessingOutputConfig={"Outputs": [output]}),
         "CacheConfig": {"Enabled": True, "ExpireAfter": "P30D"}, "RetryPolicies": [retry],
         "PropertyFiles": [{"PropertyFileName": "R", "OutputName": "report", "FilePath": "r.json"}],
         "DependsOn": [], "DisplayName": "Prep", "Description": "prepares"},
        lambda_step(CacheConfig={"Enabled": False}),
        condition({"Type": "Not", "Condition": {"Type": "In", "QueryValue": 1, "Values": [1]}},
                  {"Type": "Or", "Conditions": [{"Type": "GreaterThan", "LeftValue": 2, "RightValue": 1}]},
                  IfSteps=[], ElseSteps=[{"Name": "F", "Type": "Fail", "Arguments": {"ErrorMessage": "no"}}]),
    ]
    mode = {"Name": "Mode", "Type": "String", "DefaultValue": "a", "EnumValues": ["a"]}
    document = definition(*steps, Metadata={"team-a": "ml"}, MlflowConfig=None, Parameters=[mode])
    assert definition_problems(document) == []


def test_every_step_type_the_sdk_writes_runs_or_is_refused_as_one_the_local_target_does_not_run() -> None:
    """Each of the SDK's step types (its StepTypeEnum, read in a process of its own) is one the
    local target runs, or is refused as a SageMaker step type it does not run, never as unknown."""
    listed = subprocess.run(
        [sys.executable, "-c", "import json; from pipelines.sdk_env import prepare_sdk_environment; "
         "prepare_sdk_environment(); from sagemaker.mlops.workflow.steps import StepTypeEnum; "
         "print(json.dumps([kind.value for kind in StepTypeEnum]))"],
        capture_output=True, text=True, check=True, cwd=REPO_ROOT,
    )
    kinds = json.loads(listed.stdout)
    assert {"Processing", "Training", "Model", "ForEach"} <= set(kinds)
    for kind in kinds:
        problems = definition_problems(definition({"Name": "S", "Type": kind, "Arguments": {}}))
        refused = [p for p in problems if f"step type {kind} is not supported by the local SageMaker" in p]
        assert not any("unknown step type" in p for p in problems), (kind, problems)
        assert bool(refused) != (kind in checks.RUNS_LOCALLY), (kind, problems)


def test_every_problem_is_reported_at_once() -> None:
    problems = definition_problems(definition(processing("a.b"), {"Name": "T", "Type": "Tuning"},
                                              Version="1"))
    assert len(problems) == 3


def test_check_image_accepts_only_the_local_release() -> None:
    check_image(HERE)
    check_image(HERE.replace("us-east-1.amazonaws.com", "cn-north-1.amazonaws.com.cn"))
    with pytest.raises(UnsupportedImage, match=f"scikit-learn {local_sklearn_release()}"):
        check_image("python:3.11")


def test_an_image_from_a_parameter_fails_the_job_naming_it(tmp_path: Path) -> None:
    """Upsert cannot see a parameterised image; the job refuses it before running anything."""
    image = f"{REGISTRY}/pytorch-training:2.3-cpu-py311"
    marker = tmp_path / "ran"
    request = processing(image=image)["Arguments"]
    request["AppSpecification"]["ContainerEntrypoint"] = ["python3", "-c", f"open({str(marker)!r}, 'w')"]
    with open(tmp_path / "log.txt", "w") as log:
        result = run_processing_job("job-1", request, ObjectStore(tmp_path / "store"), tmp_path / "jobs", log)
    assert result.status == "Failed"
    assert image in result.failure_reason and "cannot run locally" in result.failure_reason
    assert not marker.exists()


def test_literal_arguments_are_checked_against_the_create_request_shape() -> None:
    step = processing(count="many")
    step["Arguments"]["Bogus"] = 1
    del step["Arguments"]["RoleArn"]
    (problem,) = definition_problems(definition(step))
    assert problem.startswith("step Prep: 3 validation errors detected: ")
    assert "'processingResources.clusterConfig.instanceCount' failed to satisfy constraint" in problem
    assert "at 'bogus' failed to satisfy constraint: Member is not defined" in problem
    assert "at 'roleArn' failed to satisfy constraint: Member must not be null" in problem


def test_an_expression_passes_at_upsert_and_its_value_is_checked_when_resolved() -> None:
    step = processing(count={"Get": "Parameters.Count"})
    assert definition_problems(definition(step, Parameters=[
        {"Name": "Count", "Type": "String", "DefaultValue": "many"}])) == []
    resolved = processing(count="many")["Arguments"]
    (problem,) = request_problems("Processing", resolved)
    assert "instanceCount' failed to satisfy constraint: Member must be an integer" in problem


def test_an_expression_where_a_list_belongs_is_refused_at_upsert_and_one_per_item_is_taken() -> None:
    """As SageMaker parses Arguments ("Expecting start of Json Array"): an expression is one value."""
    parameters = [{"Name": "Script", "Type": "String", "DefaultValue": "prep.py"}]
    whole = processing()
    whole["Arguments"]["AppSpecification"]["ContainerArguments"] = {"Get": "Parameters.Script"}
    (problem,) = definition_problems(definition(whole, Parameters=parameters))
    assert problem.startswith("step Prep: 1 validation error detected: ")
    assert ("at 'appSpecification.containerArguments' failed to satisfy constraint: Member must be a list"
            in problem)
    each = processing()
    each["Arguments"]["AppSpecification"]["ContainerArguments"] = ["--script", {"Get": "Parameters.Script"}]
    assert definition_problems(definition(each, Parameters=parameters)) == []


@pytest.mark.parametrize(
    ("kind", "where", "section"),
    [("Processing", "ProcessingResources.ClusterConfig", ("ProcessingResources", "ClusterConfig")),
     ("Training", "ResourceConfig", ("ResourceConfig",))],
)
def test_resources_given_as_one_expression_are_checked_for_an_instance_type_once_resolved(
    kind: str, where: str, section: tuple[str, ...]
) -> None:
    def with_resources(resources: dict[str, Any]) -> dict[str, Any]:
        for name in reversed(section[1:]):
            resources = {name: resources}
        return {section[0]: resources}

    refusals = {"Processing": limits.processing_limits, "Training": limits.training_limits}[kind]
    expression = {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Size.PropertyFiles.Size"}, "Path": "r"}}
    assert not [p for p in refusals(with_resources(expression)) if "InstanceType" in p]
    refused = [p for p in refusals(with_resources({"InstanceCount": 1})) if "InstanceType" in p]
    assert refused == [f"{where} names no InstanceType: a local job runs on the InstanceType it names"]


@pytest.mark.parametrize(
    ("requirements", "refusal"),
    [
        (None, None),
        (f"# as pinned for the image\nnumpy=={version('numpy')}\n", None),
        ("scikit-learn\nnumpy==0.0.1  # too old\n",
         f"step Fit: s3://bucket/code/fit.tar.gz: requirements.txt line 2 ('numpy==0.0.1'): the local "
         f"environment has numpy {version('numpy')}"),
        ("-r more.txt\n", "requirements.txt line 1 ('-r more.txt'): pip options cannot be checked locally"),
    ],
)
def test_a_training_requirement_this_machine_lacks_is_refused_at_upsert(
    tmp_path: Path, requirements: str | None, refusal: str | None
) -> None:
    backend = local_sagemaker(tmp_path)
    sources = {"train.py": b"print('fitting')\n"}
    if requirements is not None:
        sources["requirements.txt"] = requirements.encode()
    backend.context.store.put_bytes(f"{BUCKET}/code/fit.tar.gz", tar_gz(sources))
    step = training_step("Fit")
    # as the SDK writes it: every hyperparameter value JSON-encoded
    hyperparameters = step["Arguments"]["HyperParameters"]
    hyperparameters["sagemaker_submit_directory"] = json.dumps(f"{BUCKET}/code/fit.tar.gz")
    dispatcher = Dispatcher(backend)
    request = {"PipelineName": "p", "PipelineDefinition": json.dumps(definition(step)), "RoleArn": ROLE,
               "ClientRequestToken": "t" * 32}

    reply = send(dispatcher, "SageMaker", "CreatePipeline", request)

    if refusal is None:
        assert reply.status == 200, reply.body
        return
    assert reply.status == 400
    error = json.loads(reply.body)
    assert error["__type"] == "ValidationException"
    assert refusal in error["message"]
    assert send(dispatcher, "SageMaker", "DescribePipeline", {"PipelineName": "p"}).status == 400


@pytest.mark.parametrize(
    ("program", "extra", "refusal"),
    [
        ("train.py", {"setup.py": b"from setuptools import setup\nsetup()\n"},
         "step Fit: s3://bucket/code/fit.tar.gz: the code directory holds setup.py, which the training "
         "toolkit would pip-install as a package (pip install .)"),
        ("fit.sh", {"fit.sh": b"#!/bin/sh\n"},
         "step Fit: s3://bucket/code/fit.tar.gz: sagemaker_program 'fit.sh' is not a .py file, so the "
         "training toolkit would run it as a shell command; the local target runs Python entry points only"),
        ("train.py", {"lib/setup.py": b""}, None),  # the toolkit looks at the top of the directory only
    ],
)
def test_an_entry_point_the_toolkit_would_install_or_run_as_a_command_is_refused_at_upsert(
    tmp_path: Path, program: str, extra: dict[str, bytes], refusal: str | None
) -> None:
    backend = local_sagemaker(tmp_path)
    backend.context.store.put_bytes(f"{BUCKET}/code/fit.tar.gz", tar_gz({"train.py": b"pass\n", **extra}))
    step = training_step("Fit")
    hyperparameters = step["Arguments"]["HyperParameters"]
    hyperparameters["sagemaker_submit_directory"] = json.dumps(f"{BUCKET}/code/fit.tar.gz")
    hyperparameters["sagemaker_program"] = json.dumps(program)
    request = {"PipelineName": "p", "PipelineDefinition": json.dumps(definition(step)), "RoleArn": ROLE,
               "ClientRequestToken": "t" * 32}

    reply = send(Dispatcher(backend), "SageMaker", "CreatePipeline", request)

    if refusal is None:
        assert reply.status == 200, reply.body
        return
    assert reply.status == 400
    error = json.loads(reply.body)
    assert (error["__type"], refusal in error["message"]) == ("ValidationException", True), error


def test_a_damaged_source_tarball_is_left_to_the_job_that_unpacks_it(tmp_path: Path) -> None:
    backend = local_sagemaker(tmp_path)
    whole = tar_gz({"train.py": bytes(range(256)) * 4096, "requirements.txt": b"numpy==0.0.1\n"})
    backend.context.store.put_bytes(f"{BUCKET}/code/cut.tar.gz", whole[: len(whole) // 2])
    step = training_step("Fit")
    step["Arguments"]["HyperParameters"]["sagemaker_submit_directory"] = f"{BUCKET}/code/cut.tar.gz"
    request = {"PipelineName": "p", "PipelineDefinition": json.dumps(definition(step)), "RoleArn": ROLE,
               "ClientRequestToken": "t" * 32}

    reply = send(Dispatcher(backend), "SageMaker", "CreatePipeline", request)

    assert reply.status == 200, reply.body


def test_an_upsert_makes_the_environment_its_training_step_will_run_in(tmp_path: Path) -> None:
    """The first run's Train does not wait for its requirements' environment: the upsert that
    found them has it made (jobs/image_python.py)."""
    backend = local_sagemaker(tmp_path)
    source = tar_gz({"train.py": b"print('fit')\n", "requirements.txt": b"vaderSentiment\n"})
    backend.context.store.put_bytes(f"{BUCKET}/code/fit.tar.gz", source)
    step = training_step("Fit")
    step["Arguments"]["HyperParameters"]["sagemaker_submit_directory"] = f"{BUCKET}/code/fit.tar.gz"
    request = {"PipelineName": "p", "PipelineDefinition": json.dumps(definition(step)), "RoleArn": ROLE,
               "ClientRequestToken": "t" * 32}
    expected = environment_for(backend.context.layout.image_environments, ["vaderSentiment"]).folder

    reply = send(Dispatcher(backend), "SageMaker", "CreatePipeline", request)

    assert reply.status == 200, reply.body
    assert (expected / "bin" / "python").exists()


def test_a_source_directory_from_a_parameter_or_not_yet_uploaded_is_left_to_the_job() -> None:
    from_parameter = training_step("Fit")
    from_parameter["Arguments"]["HyperParameters"]["sagemaker_submit_directory"] = {"Get": "Parameters.Code"}
    missing = training_step("Later")

    checked = check_sources(definition(from_parameter, missing), lambda uri: None)

    assert (checked.problems, checked.requirements) == ([], [])


S3_INPUT = {"S3Uri": f"{BUCKET}/in", "LocalPath": "/opt/ml/processing/input", "S3DataType": "S3Prefix",
            "S3InputMode": "File"}
S3_CHANNEL = {"S3DataSource": {"S3Uri": f"{BUCKET}/in", "S3DataType": "S3Prefix"}}


def with_arguments(step: dict[str, Any], **arguments: Any) -> dict[str, Any]:
    step["Arguments"].update(arguments)
    return step


VPC_CONFIG = {"SecurityGroupIds": ["sg-0123456789abcdef0"], "Subnets": ["subnet-0123456789abcdef0"]}


def fit_step(**arguments: Any) -> dict[str, Any]:
    step = training_step("Fit")
    return with_arguments(step, **{"InputDataConfig": [{"ChannelName": "train", "DataSource": S3_CHANNEL}],
                                   **arguments})


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (processing(count=2), "step Prep: ProcessingResources.ClusterConfig.InstanceCount 2: a local job "
         "runs on one instance"),
        (with_arguments(processing(), ProcessingInputs=[
            {"InputName": "in", "S3Input": {**S3_INPUT, "S3InputMode": "Pipe"}}]),
         "input 'in' S3InputMode Pipe streams the data through a FIFO"),
        (with_arguments(processing(), ProcessingInputs=[
            {"InputName": "in", "S3Input": {**S3_INPUT, "S3DataType": "ManifestFile"}}]),
         "input 'in' S3DataType ManifestFile lists its objects in a manifest"),
        (with_arguments(processing(), ProcessingInputs=[
            {"InputName": "in", "S3Input": {**S3_INPUT, "S3CompressionType": "Gzip"}}]),
         "input 'in' S3CompressionType Gzip"),
        (with_arguments(processing(), ProcessingInputs=[{"InputName": "q", "DatasetDefinition": {
            "AthenaDatasetDefinition": {}}}]), "input 'q' reads DatasetDefinition, not an S3Input"),
        (with_arguments(processing(), ProcessingOutputConfig={"Outputs": [
            {"OutputName": "f", "FeatureStoreOutput": {"FeatureGroupName": "g"}}]}),
         "output 'f' writes FeatureStoreOutput, not an S3Output"),
        (with_arguments(processing(), NetworkConfig={"VpcConfig": VPC_CONFIG}),
         "step Prep: NetworkConfig.VpcConfig connects the job's containers to a VPC's subnets (they reach "
         "what the VPC's routes and security groups allow): a local job uses this machine's network"),
        (fit_step(VpcConfig=VPC_CONFIG),
         "step Fit: VpcConfig connects the job's containers to a VPC's subnets"),
        (fit_step(ResourceConfig={"InstanceCount": 4, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}),
         "step Fit: ResourceConfig.InstanceCount 4: a local job runs on one instance"),
        (fit_step(ResourceConfig={"InstanceCount": 1, "InstanceType": "ml.g4dn.xlarge", "VolumeSizeInGB": 1}),
         "step Fit: ResourceConfig.InstanceType ml.g4dn.xlarge is not an instance type the local target "
         "reproduces: a local job runs on the CPU instance types whose memory and vCPUs it reproduces"),
        (with_arguments(processing(), ProcessingResources={"ClusterConfig": {
            "InstanceType": "ml.p3.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30}}),
         "step Prep: ProcessingResources.ClusterConfig.InstanceType ml.p3.2xlarge is not an instance type "
         "the local target reproduces"),
        (fit_step(AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "Pipe"}),
         "AlgorithmSpecification.TrainingInputMode Pipe streams the data through a FIFO"),
        (fit_step(InputDataConfig=[{"ChannelName": "train", "DataSource": S3_CHANNEL, "InputMode": "Pipe"}]),
         "channel 'train' InputMode Pipe"),
        (fit_step(InputDataConfig=[{"ChannelName": "train", "DataSource": {"FileSystemDataSource": {
            "FileSystemId": "fs-1", "FileSystemAccessMode": "ro", "FileSystemType": "EFS",
            "DirectoryPath": "/d"}}}]), "channel 'train' reads FileSystemDataSource, not an S3DataSource"),
        (fit_step(AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File",
                                          "MetricDefinitions": [{"Name": "acc", "Regex": "acc=([0-9.]+"}]}),
         "metric 'acc': Regex 'acc=([0-9.]+' is not a regular expression Python reads"),
        (fit_step(AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File",
                                          "MetricDefinitions": [{"Name": "acc", "Regex": "acc=[0-9.]+"}]}),
         "metric 'acc': Regex 'acc=[0-9.]+' has no group: the value is what its first group captures"),
        (fit_step(AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File",
                                          "ContainerEntrypoint": ["/bin/bash", "sm_train.sh"]}),
         "AlgorithmSpecification.ContainerEntrypoint runs its own command in the container"),
        (fit_step(AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File",
                                          "ContainerArguments": ["python3", "train.py"]}),
         "AlgorithmSpecification.ContainerArguments run in the container in place of its train command"),
        (fit_step(AlgorithmSpecification={"AlgorithmName": "autogluon-tabular", "TrainingInputMode": "File"}),
         "step Fit: AlgorithmSpecification.AlgorithmName trains with an algorithm resource (created with "
         "CreateAlgorithm or subscribed to on AWS Marketplace): the local SageMaker keeps none"),
        (fit_step(HyperParameters={"sagemaker_program": "train.py"}),
         "hyperparameters sagemaker_submit_directory are missing: a local training job runs the scikit-learn "
         "image's training toolkit"),
        (fit_step(OutputDataConfig={"S3OutputPath": f"{BUCKET}/m", "CompressionType": "NONE"}),
         "OutputDataConfig.CompressionType NONE asks SageMaker to upload the model directory uncompressed"),
        (fit_step(DebugHookConfig={"S3OutputPath": f"{BUCKET}/debug"}),
         "step Fit: DebugHookConfig asks SageMaker Debugger's hook to save the job's tensors to S3: a local "
         "job runs no Debugger hook and saves no tensors"),
        (fit_step(DebugRuleConfigurations=[{"RuleConfigurationName": "Loss", "RuleEvaluatorImage": IMAGE}]),
         "step Fit: DebugRuleConfigurations asks for rule evaluation jobs beside the training job: a local "
         "job runs no rule evaluation and reports no DebugRuleEvaluationStatuses"),
        (fit_step(ProfilerRuleConfigurations=[{"RuleConfigurationName": "Rep", "RuleEvaluatorImage": IMAGE}]),
         "step Fit: ProfilerRuleConfigurations asks for rule evaluation jobs beside the training job: a "
         "local job runs no rule evaluation and reports no ProfilerRuleEvaluationStatuses"),
        (fit_step(ProfilerConfig={"S3OutputPath": f"{BUCKET}/profile"}),
         "step Fit: ProfilerConfig without DisableProfiler true asks SageMaker Debugger to profile the "
         "job's system and framework metrics: a local job is not profiled (its ProfilingStatus is Disabled)"),
        (with_arguments(processing(), ProcessingOutputConfig={"Outputs": [
            {"OutputName": "o", "S3Output": {"S3Uri": f"{BUCKET}/o", "S3UploadMode": "EndOfJob"}}]}),
         "step Prep: output 'o' has no LocalPath: for both ProcessingInput and ProcessingOutput, the path "
         "in the processing container must begin with /opt/ml/processing/"),
        ({**processing(), "PropertyFiles": [
            {"PropertyFileName": "Evaluation", "OutputName": "evaluation", "FilePath": "evaluation.json"}]},
         "step Prep: property file 'Evaluation' is read from output 'evaluation', which the step does not "
         "have"),
        (with_arguments(processing(), ProcessingResources={"ClusterConfig": {"InstanceCount": 1,
                                                                      "VolumeSizeInGB": 30}}),
         "step Prep: ProcessingResources.ClusterConfig names no InstanceType: a local job runs on the "
         "InstanceType it names"),
        (fit_step(ResourceConfig={"InstanceCount": 1, "VolumeSizeInGB": 1}),
         "step Fit: ResourceConfig names no InstanceType: a local job runs on the InstanceType it names"),
        (fit_step(AlgorithmSpecification=None),
         "step Fit: AlgorithmSpecification is missing: a local training job runs the scikit-learn image's "
         "training toolkit"),
        (fit_step(ResourceConfig=None), "step Fit: ResourceConfig is missing: a local job runs on the "
         "InstanceType it names"),
        (fit_step(ServerlessJobConfig={"BaseModelArn": "arn:aws:sagemaker:us-east-1:aws:hub-content/m",
                                       "JobType": "FineTuning"}),
         "step Fit: ServerlessJobConfig asks for serverless training of a base model"),
        (fit_step(MlflowConfig={"MlflowResourceArn": f"{ARN_PREFIX}:mlflow-app/a"}),
         "step Fit: MlflowConfig logs the job to a SageMaker managed MLflow tracking server: the local "
         "target has none"),
        (fit_step(ModelPackageConfig={"ModelPackageGroupArn": f"{ARN_PREFIX}:model-package-group/g"}),
         "step Fit: ModelPackageConfig registers the trained model in a model package group"),
        (fit_step(ResourceConfig={"InstanceCount": 1, "VolumeSizeInGB": 1,
                                  "InstancePreferences": [{"InstanceType": "ml.m5.large"}]}),
         "step Fit: ResourceConfig.InstancePreferences asks SageMaker for the first instance type with "
         "capacity: a local job runs on the InstanceType it names"),
        (fit_step(ResourceConfig={"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1,
                                  "TrainingPlanArn": f"{ARN_PREFIX}:training-plan/p"}),
         "step Fit: ResourceConfig.TrainingPlanArn runs the job on a training plan's reserved capacity"),
        (fit_step(ResourceConfig={"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1,
                                  "SelectedInstanceType": "ml.m5.large"}),
         "step Fit: ResourceConfig.SelectedInstanceType is DescribeTrainingJob's to answer: "
         "CreateTrainingJob takes none"),
        (fit_step(ResourceConfig={"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1,
                                  "KeepAlivePeriodInSeconds": 600}),
         "step Fit: ResourceConfig.KeepAlivePeriodInSeconds asks SageMaker to keep the job's instance in a "
         "warm pool for the next job: a local job's process ends with the job, and it reports no "
         "WarmPoolStatus"),
    ],
)
def test_what_a_local_job_cannot_reproduce_is_refused_at_upsert(step: dict[str, Any], expected: str) -> None:
    problems = definition_problems(definition(step))
    assert any(expected in problem for problem in problems), problems


def test_what_a_local_job_can_reproduce_passes() -> None:
    fast_file = fit_step(AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "FastFile"})
    output = {"S3Uri": f"{BUCKET}/o", "LocalPath": "/opt/ml/processing/o", "S3UploadMode": "Continuous"}
    continuous = with_arguments(processing(), ProcessingOutputConfig={"Outputs": [
        {"OutputName": "o", "S3Output": output}]})
    from_parameter = processing(count={"Get": "Parameters.Count"})
    checkpointed = fit_step(CheckpointConfig={"S3Uri": f"{BUCKET}/checkpoints"})
    checkpointed["Name"] = "Resume"
    unprofiled = fit_step(TensorBoardOutputConfig={"S3OutputPath": f"{BUCKET}/tensorboard"},
                          ProfilerConfig={"S3OutputPath": f"{BUCKET}/profile", "DisableProfiler": True})
    unprofiled["Name"] = "Board"
    profiled_if_asked = fit_step(ProfilerConfig={"DisableProfiler": {"Get": "Parameters.NoProfiler"}})
    profiled_if_asked["Name"] = "Maybe"
    no_warm_pool = fit_step(ResourceConfig={"InstanceCount": 1, "InstanceType": "ml.m5.large",
                                            "VolumeSizeInGB": 1, "KeepAlivePeriodInSeconds": 0})
    no_warm_pool["Name"] = "Cold"
    assert definition_problems(definition(
        fast_file, continuous, from_parameter, checkpointed, unprofiled, profiled_if_asked, no_warm_pool
    )) == []


def test_create_pipeline_refuses_a_training_step_with_debugger_and_profiler(tmp_path: Path) -> None:
    step = fit_step(DebugHookConfig={"S3OutputPath": f"{BUCKET}/models"},
                    ProfilerConfig={"S3OutputPath": f"{BUCKET}/models", "DisableProfiler": False})
    request = {"PipelineName": "p", "PipelineDefinition": json.dumps(definition(step)), "RoleArn": ROLE,
               "ClientRequestToken": "t" * 32}

    reply = send(Dispatcher(local_sagemaker(tmp_path)), "SageMaker", "CreatePipeline", request)

    error = json.loads(reply.body)
    assert (reply.status, error["__type"]) == (400, "ValidationException")
    assert "step Fit: DebugHookConfig asks SageMaker Debugger's hook" in error["message"]
    assert "step Fit: ProfilerConfig without DisableProfiler true" in error["message"]


def test_a_processing_local_path_outside_opt_ml_processing_is_refused_at_upsert() -> None:
    outside = with_arguments(
        processing(),
        ProcessingInputs=[{"InputName": "in", "S3Input": {**S3_INPUT, "LocalPath": "/opt/ml/input/data"}}],
        ProcessingOutputConfig={"Outputs": [{"OutputName": "m", "S3Output": {
            "S3Uri": f"{BUCKET}/o", "LocalPath": "/opt/ml/model", "S3UploadMode": "EndOfJob"}}]},
    )
    rule = ("for both ProcessingInput and ProcessingOutput, the path in the processing container must begin "
            "with /opt/ml/processing/")
    assert definition_problems(definition(outside)) == [
        f"step Prep: input 'in' LocalPath '/opt/ml/input/data': {rule}",
        f"step Prep: output 'm' LocalPath '/opt/ml/model': {rule}",
    ]
    from_parameter = with_arguments(processing(), ProcessingInputs=[
        {"InputName": "in", "S3Input": {**S3_INPUT, "LocalPath": {"Get": "Parameters.Where"}}}])
    assert definition_problems(definition(from_parameter)) == []
    resolved = with_arguments(processing(), ProcessingInputs=[
        {"InputName": "in", "S3Input": {**S3_INPUT, "LocalPath": "/opt/ml/input/data"}}])
    assert request_problems("Processing", resolved["Arguments"]) == [
        f"input 'in' LocalPath '/opt/ml/input/data': {rule}"
    ]


def test_an_instance_count_from_a_parameter_fails_the_job_before_it_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    request = processing(count=3)["Arguments"]  # as the parameter resolved
    request["AppSpecification"]["ContainerEntrypoint"] = ["python3", "-c", f"open({str(marker)!r}, 'w')"]
    with open(tmp_path / "log.txt", "w") as log:
        result = run_processing_job("job-3", request, ObjectStore(tmp_path / "store"), tmp_path / "jobs", log)
    assert (result.status, result.failure_reason) == ("Failed", "ValidationException: "
                                                      "ProcessingResources.ClusterConfig.InstanceCount 3: "
                                                      "a local job runs on one instance")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("image", "refusal"),
    [
        (f"{REGISTRY}/sagemaker-xgboost:1.7-1", "cannot run locally"),
        (f"{REGISTRY}/sagemaker-scikit-learn:0.23-1-cpu-py3", "has scikit-learn 0.23"),
        (HERE, None),
    ],
)
def test_a_model_for_an_image_the_local_model_server_cannot_stand_in_for_is_refused(
    tmp_path: Path, image: str, refusal: str | None
) -> None:
    dispatcher = Dispatcher(local_sagemaker(tmp_path))
    request = {"ModelName": "m", "ExecutionRoleArn": ROLE,
               "PrimaryContainer": {"Image": image, "ModelDataUrl": MODEL_DATA}}

    reply = send(dispatcher, "SageMaker", "CreateModel", request)

    described = send(dispatcher, "SageMaker", "DescribeModel", {"ModelName": "m"})
    if refusal is None:
        assert (reply.status, described.status) == (200, 200)
        return
    error = json.loads(reply.body)
    assert (reply.status, error["__type"], described.status) == (400, "ValidationException", 400)
    assert error["message"].startswith(f"PrimaryContainer.Image: image {image!r}")
    assert refusal in error["message"] and "model servers" in error["message"]


@pytest.mark.parametrize(
    "step",
    [
        with_arguments(training_step("Fit"), InputDataConfig=["not a channel"], HyperParameters=[1]),
        with_arguments(processing(), ProcessingInputs="none", ProcessingOutputConfig={"Outputs": [3]}),
        {"Name": "Fit", "Type": "Training", "Arguments": ["not", "a", "request"]},
        {"Name": "Gate", "Type": "Condition", "Arguments": ["IfSteps"]},
    ],
)
def test_a_malformed_request_is_reported_not_raised(tmp_path: Path, step: dict[str, Any]) -> None:
    backend = local_sagemaker(tmp_path)
    request = {"PipelineName": "p", "PipelineDefinition": json.dumps(definition(step)), "RoleArn": ROLE,
               "ClientRequestToken": "t" * 32}
    reply = send(Dispatcher(backend), "SageMaker", "CreatePipeline", request)
    assert reply.status == 400, reply.body
    assert json.loads(reply.body)["__type"] == "ValidationException"


def test_network_isolation_this_machine_cannot_provide_is_refused_at_upsert(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    isolated = fit_step(EnableNetworkIsolation=True)
    monkeypatch.setattr(limits, "isolation_unavailable", lambda: "")  # a machine that can provide it
    assert definition_problems(definition(isolated)) == []
    monkeypatch.setattr(limits, "isolation_unavailable", lambda: "no user namespaces here")
    (problem,) = definition_problems(definition(isolated))
    assert problem == ("step Fit: EnableNetworkIsolation: no user namespaces here, and a local job is "
                       "not run with the network instead")
    assert definition_problems(definition(fit_step(EnableNetworkIsolation=False))) == []


@pytest.mark.parametrize(
    ("arguments", "refusal"),
    [
        ({"StoppingCondition": {"MaxRuntimeInSeconds": 60, "MaxWaitTimeInSeconds": 120}},
         "Invalid MaxWaitTimeInSeconds. It is only supported when EnableManagedSpotTraining is set to true"),
        ({"EnableManagedSpotTraining": True,
          "StoppingCondition": {"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 300}},
         "MaxWaitTimeInSeconds (300) must be equal to or greater than MaxRuntimeInSeconds (600)"),
        ({"EnableManagedSpotTraining": True,
          "StoppingCondition": {"MaxRuntimeInSeconds": 60, "MaxWaitTimeInSeconds": 120}}, None),
        ({"StoppingCondition": {"MaxRuntimeInSeconds": 2419201}},
         "MaxRuntimeInSeconds (2419201) must be at most 2419200 (28 days)"),
        ({"StoppingCondition": {"MaxRuntimeInSeconds": 2419200}}, None),
    ],
)
def test_a_spot_wait_limit_is_checked_as_the_service_checks_it(
    arguments: dict[str, Any], refusal: str | None
) -> None:
    problems = request_problems("Training", {**fit_step(**arguments)["Arguments"]})
    assert problems == ([refusal] if refusal else [])
