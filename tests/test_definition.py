"""The pipeline definition: structure, parameters, the quality gate, references, determinism."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pipelines import REPO_ROOT
from pipelines.code_bundle import CodeBundle
from pipelines.definition import definition_json
from pipelines.local.executor.engine import validate_definition
from pipelines.monitoring_definition import monitoring_definition_json
from pipelines.publish import deploy_function_environment
from pipelines.settings import Settings

GET_STEP = re.compile(r"^Steps\.([A-Za-z0-9_-]+)\.(.+)$")


@pytest.fixture(scope="module")
def definition(default_settings: Settings) -> dict[str, Any]:
    return dict(json.loads(definition_json(default_settings)))


def all_steps(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}

    def visit(steps: list[dict[str, Any]]) -> None:
        for step in steps:
            found[step["Name"]] = step
            visit(step.get("Arguments", {}).get("IfSteps", []))
            visit(step.get("Arguments", {}).get("ElseSteps", []))

    visit(definition["Steps"])
    return found


def gets(value: Any) -> list[str]:
    if isinstance(value, dict):
        own = [value["Get"]] if isinstance(value.get("Get"), str) else []
        return own + [g for v in value.values() for g in gets(v)]
    if isinstance(value, list):
        return [g for v in value for g in gets(v)]
    return []


def test_steps_have_the_documented_names_and_types(definition: dict[str, Any]) -> None:
    types = {name: step["Type"] for name, step in all_steps(definition).items()}
    assert types == {
        "Preprocess": "Processing",
        "Train": "Training",
        "Evaluate": "Processing",
        "AccuracyCheck": "Condition",
        "RegisterModel": "RegisterModel",
        "DeployEndpoint": "Lambda",
        "AccuracyTooLow": "Fail",
    }
    assert [s["Name"] for s in definition["Steps"]] == [
        "Preprocess", "Train", "Evaluate", "AccuracyCheck",
    ]


def test_every_step_has_a_display_name_and_description(definition: dict[str, Any]) -> None:
    for name, step in all_steps(definition).items():
        assert step.get("DisplayName"), name
        assert len(step.get("Description", "")) > 20, name


def test_condition_compares_accuracy_with_the_threshold_parameter(definition: dict[str, Any]) -> None:
    check = all_steps(definition)["AccuracyCheck"]["Arguments"]
    (condition,) = check["Conditions"]
    assert condition["Type"] == "GreaterThan"
    json_get = condition["LeftValue"]["Std:JsonGet"]
    assert json_get["Path"] == "binary_classification_metrics.accuracy.value"
    assert json_get["PropertyFile"] == {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"}
    assert condition["RightValue"] == {"Get": "Parameters.AccuracyThreshold"}
    assert [s["Name"] for s in check["IfSteps"]] == ["RegisterModel", "DeployEndpoint"]
    assert [s["Name"] for s in check["ElseSteps"]] == ["AccuracyTooLow"]


def test_fail_message_states_accuracy_and_threshold(definition: dict[str, Any]) -> None:
    message = all_steps(definition)["AccuracyTooLow"]["Arguments"]["ErrorMessage"]["Std:Join"]
    rendered = json.dumps(message["Values"])
    # The accuracy as people read it (summary.json), not the full value the condition compares.
    assert {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.EvaluationSummary"},
                            "Path": "accuracy"}} in message["Values"]
    assert "Parameters.AccuracyThreshold" in rendered


def test_parameters_and_their_defaults(definition: dict[str, Any]) -> None:
    params = {p["Name"]: p for p in definition["Parameters"]}
    assert params["AccuracyThreshold"] == {
        "Name": "AccuracyThreshold", "Type": "Float", "DefaultValue": 0.8,
    }
    # A run names its dataset: the data prefix, holding every dataset in a folder, is no default.
    assert params["InputDataUri"] == {"Name": "InputDataUri", "Type": "String"}
    assert params["ModelApprovalStatus"]["DefaultValue"] == "Approved"
    assert {"NgramMax", "MaxFeatures", "RegularizationC", "MinDf", "EndpointName",
            "CaptureSamplingPercentage", "TrainingInstanceType",
            "ProcessingInstanceType"} <= set(params)


def test_the_endpoints_size_and_capture_default_to_the_settings_the_deploy_function_has(
    default_settings: Settings,
) -> None:
    """What an approval's deploy reads from the function's environment (publish.py locally, the
    stack's parameters on AWS) is what a run's DeployEndpoint gets unless the run overrides it."""
    sized = replace(default_settings, endpoint_instance_type="ml.c5.xlarge", endpoint_instance_count=3,
                    capture_percentage=20)
    defaults = {p["Name"]: p.get("DefaultValue") for p in json.loads(definition_json(sized))["Parameters"]}
    function = deploy_function_environment(sized)
    assert defaults["EndpointInstanceType"] == function["INSTANCE_TYPE"] == "ml.c5.xlarge"
    assert defaults["EndpointInstanceCount"] == int(function["INSTANCE_COUNT"]) == 3
    assert defaults["CaptureSamplingPercentage"] == int(function["CAPTURE_PERCENTAGE"]) == 20


def test_every_get_points_at_something_that_exists(definition: dict[str, Any]) -> None:
    steps = all_steps(definition)
    params = {p["Name"] for p in definition["Parameters"]}
    references = gets(definition["Steps"])
    assert references, "the definition wires steps together through Get expressions"
    for reference in references:
        if reference.startswith("Parameters."):
            assert reference.split(".", 1)[1] in params, reference
        elif reference.startswith("Execution."):
            assert reference in {"Execution.PipelineExecutionId", "Execution.PipelineName",
                                 "Execution.PipelineExecutionArn"}, reference
        else:
            match = GET_STEP.match(reference)
            assert match and match.group(1) in steps, reference
            if match.group(2).startswith("PropertyFiles."):
                names = [f["PropertyFileName"] for f in steps[match.group(1)]["PropertyFiles"]]
                assert match.group(2).split(".")[1] in names


def test_registered_version_carries_metrics_and_its_drift_baseline(
    definition: dict[str, Any],
) -> None:
    register = all_steps(definition)["RegisterModel"]["Arguments"]
    baselines = json.dumps(register["DriftCheckBaselines"]["ModelDataQuality"])
    # The job that evaluated the model also described its training data: one load, one job.
    assert "Steps.Evaluate.ProcessingOutputConfig.Outputs['baseline']" in baselines
    assert "statistics.json" in baselines and "constraints.json" in baselines
    quality = json.dumps(register["ModelMetrics"]["ModelQuality"]["Statistics"])
    assert "Steps.Evaluate" in quality and "evaluation.json" in quality


def test_registered_version_records_the_digest_of_the_evaluated_model_data(
    definition: dict[str, Any],
) -> None:
    """ModelDataSha256 comes from what Evaluate hashed, not from anything inside the artifact."""
    steps = all_steps(definition)
    properties = steps["RegisterModel"]["Arguments"]["CustomerMetadataProperties"]
    assert properties["ModelDataSha256"] == {
        "Std:JsonGet": {
            "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.ModelDataDigest"},
            "Path": "sha256",
        }
    }
    files = steps["Evaluate"]["PropertyFiles"]
    (digest_file,) = [f for f in files if f["PropertyFileName"] == "ModelDataDigest"]
    assert digest_file == {
        "PropertyFileName": "ModelDataDigest", "OutputName": "evaluation", "FilePath": "model-data.json",
    }


@pytest.mark.parametrize(
    ("parameter", "hyperparameter"),
    [("RegularizationC", "regularization-c"), ("LexiconEmphasis", "lexicon-emphasis")],
)
def test_cross_validated_hyperparameters_are_auto_unless_a_run_sets_them(
    definition: dict[str, Any], parameter: str, hyperparameter: str
) -> None:
    params = {p["Name"]: p for p in definition["Parameters"]}
    assert params[parameter] == {"Name": parameter, "Type": "String", "DefaultValue": "auto"}
    hyperparameters = all_steps(definition)["Train"]["Arguments"]["HyperParameters"]
    assert hyperparameters[hyperparameter] == {"Get": f"Parameters.{parameter}"}


def test_registered_version_records_the_data_it_was_trained_on(definition: dict[str, Any]) -> None:
    metadata = all_steps(definition)["RegisterModel"]["Arguments"]["CustomerMetadataProperties"]
    lineage = ("InputDataUri", "InputDataSha256", "InputDataVersionIds")
    assert {name: metadata[name] for name in lineage} == {n: {"Get": f"Parameters.{n}"} for n in lineage}


def test_jobs_cache_and_retry_what_a_production_pipeline_retries(definition: dict[str, Any]) -> None:
    steps = all_steps(definition)
    for name in ("Preprocess", "Train", "Evaluate"):
        assert steps[name]["CacheConfig"] == {"Enabled": True, "ExpireAfter": "P30D"}, name
        retried = {t for policy in steps[name]["RetryPolicies"] for t in policy["ExceptionType"]}
        assert retried == {"Step.SERVICE_FAULT", "Step.THROTTLING", "SageMaker.JOB_INTERNAL_ERROR",
                           "SageMaker.CAPACITY_ERROR", "SageMaker.RESOURCE_LIMIT"}, name
    register = {t for p in steps["RegisterModel"]["RetryPolicies"] for t in p["ExceptionType"]}
    assert register == {"Step.SERVICE_FAULT", "Step.THROTTLING"}
    assert "RetryPolicies" not in steps["DeployEndpoint"]  # SageMaker takes none on Lambda steps
    validate_definition(definition)  # the local service accepts every policy


def test_deploy_step_gets_the_registered_package(definition: dict[str, Any]) -> None:
    deploy = all_steps(definition)["DeployEndpoint"]
    assert deploy["Arguments"]["model_package_arn"] == {
        "Get": "Steps.RegisterModel.ModelPackageArn"
    }
    assert deploy["FunctionArn"].endswith(":function:sentiment-classifier-deploy")
    assert {o["OutputName"] for o in deploy["OutputParameters"]} >= {"action", "endpoint_name"}


def test_code_is_referenced_at_content_hash_paths(
    definition: dict[str, Any], default_settings: Settings
) -> None:
    """Each artifact under a hash of its own bytes (the library's files under one of them all)."""
    bundle = CodeBundle()
    text = json.dumps(definition)
    for artifact in ("preprocess.py", "evaluate.py", "sourcedir.tar.gz", "lib/"):
        assert f"/code/{bundle.digests[artifact]}/{artifact}" in text
    assert f"/code/{bundle.digests['monitor.py']}/monitor.py" in monitoring_definition_json(default_settings)
    library = b"".join(f"{name}\0".encode() + data + b"\0"
                       for name, data in sorted(bundle.artifacts.items()) if name.startswith("lib/"))
    assert bundle.digests["lib/"] == hashlib.sha256(library).hexdigest()[:16]
    assert len(set(bundle.digests.values())) == len(bundle.digests) == 6


def test_jobs_that_open_the_model_get_the_library_as_one_folder(default_settings: Settings) -> None:
    """Evaluate and CheckDrift import artifact.py and monitoring/ from one S3 prefix
    input; the bundle uploads every file of it below that prefix."""
    bundle = CodeBundle()
    uris = {}
    for document in (definition_json(default_settings), monitoring_definition_json(default_settings)):
        for name, step in all_steps(json.loads(document)).items():
            for item in step.get("Arguments", {}).get("ProcessingInputs", []):
                if item["InputName"] == "lib":
                    assert item["S3Input"]["LocalPath"] == "/opt/ml/processing/input/lib"
                    assert item["S3Input"]["S3DataType"] == "S3Prefix"
                    uris[name] = item["S3Input"]["S3Uri"]
    prefix = f"s3://{default_settings.bucket}/{bundle.key(default_settings.prefix, 'lib/')}"
    assert uris == {"Evaluate": prefix, "CheckDrift": prefix}
    shipped = {name.removeprefix("lib/") for name in bundle.artifacts if name.startswith("lib/")}
    package = REPO_ROOT / "steps" / "monitoring"
    modules = {f"monitoring/{path.name}" for path in package.glob("*.py")}
    assert shipped == {"artifact.py", "integrity.py", "job_failure.py", "splits.py"} | modules


def test_building_twice_gives_identical_json(default_settings: Settings) -> None:
    settings = default_settings
    assert definition_json(settings) == definition_json(settings)


def test_a_changed_file_moves_the_code_paths_of_the_steps_that_run_it_and_no_other(
    tmp_path: Path, default_settings: Settings
) -> None:
    """A step's code URIs are in its cache key. All code shared one content-hash folder, so a
    change to evaluate.py moved every step's code: Preprocess and Train ran again (on AWS, Train's
    instance hours) where SageMaker's cache would have reused them."""
    steps = tmp_path / "steps"
    shutil.copytree(REPO_ROOT / "steps", steps, ignore=shutil.ignore_patterns("__pycache__"))

    def arguments() -> dict[str, str]:
        bundle = CodeBundle(steps)
        documents = (definition_json(default_settings, bundle),
                     monitoring_definition_json(default_settings, bundle))
        return {name: json.dumps(step.get("Arguments"), sort_keys=True)
                for document in documents for name, step in all_steps(json.loads(document)).items()}

    before, digests = arguments(), {CodeBundle(steps).digest}
    for changed, moved in (("evaluate.py", {"Evaluate"}), ("preprocess.py", {"Preprocess"}),
                           ("scorer.py", {"Train"}), ("monitoring/drift.py", {"Evaluate", "CheckDrift"}),
                           ("monitor.py", {"CheckDrift"}), ("deploy.py", set())):
        (steps / changed).write_text((steps / changed).read_text() + "\n# changed\n")
        after = arguments()
        assert {name for name in after if after[name] != before[name]} == moved, changed
        before = after
        digests.add(CodeBundle(steps).digest)
    assert len(digests) == 7  # the code as a whole: what upsert names, and the definition cache's key


def test_make_s_definition_prints_only_json_identical_twice() -> None:
    """What `make -s definition` runs: stdout must be the JSON alone, the same each time."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(REPO_ROOT)}
    command = [sys.executable, "-m", "pipelines", "definition"]
    first, second = (
        subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True)
        for _ in range(2)
    )
    assert json.loads(first.stdout)["Version"] == "2020-12-01"
    assert first.stdout == second.stdout


def test_every_job_runs_with_the_step_environment(definition: dict[str, Any]) -> None:
    """Unbuffered output for live logs, and OpenBLAS threads that sleep when idle: the same
    environment on SageMaker and locally, for every job of the step code."""
    steps = all_steps(definition)
    for name in ("Preprocess", "Train", "Evaluate"):
        environment = steps[name]["Arguments"]["Environment"]
        assert environment["PYTHONUNBUFFERED"] == "1", name
        assert environment["OPENBLAS_THREAD_TIMEOUT"] == "4", name


def test_the_drift_check_reads_only_its_own_endpoints_capture(default_settings: Settings) -> None:
    """An S3Prefix input is a key prefix on SageMaker: `.../data-capture/ep` would also stage the
    capture of `ep-canary`, mixing another endpoint's traffic into the check. The folder form
    (trailing "/") reads only this endpoint's."""
    steps = all_steps(json.loads(monitoring_definition_json(default_settings)))
    inputs = {i["InputName"]: i["S3Input"] for i in steps["CheckDrift"]["Arguments"]["ProcessingInputs"]}
    assert inputs["capture"]["S3DataType"] == "S3Prefix"
    assert inputs["capture"]["S3Uri"] == {"Std:Join": {"On": "/", "Values": [
        default_settings.s3_uri("data-capture"), {"Get": "Parameters.EndpointName"}, ""]}}
