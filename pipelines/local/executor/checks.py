"""What CreatePipeline and UpdatePipeline refuse, checked before anything is stored.

SageMaker validates a definition when it is created, not when a step reaches the problem; the
local target does the same, and also refuses at this point what it cannot reproduce (a step type it
does not run, a container image it cannot stand in for), naming it and saying what it supports.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.model import ListShape, Shape

from pipelines.local.contract.expression_syntax import is_expression
from pipelines.local.contract.members import object_items, object_member
from pipelines.local.contract.model_packages import creation_problems
from pipelines.local.contract.models import operation_model
from pipelines.local.contract.shapes import summary, validate
from pipelines.local.executor.definition_members import all_steps, unknown_members
from pipelines.local.executor.expressions import (
    ExpressionError,
    conditions_problems,
    function_problems,
    get_references,
)
from pipelines.local.jobs.images import UnsupportedImage, check_image
from pipelines.local.jobs.limits import processing_limits, training_limits
from pipelines.local.jobs.outcome import JobError
from pipelines.local.jobs.processing import local_path_problems
from pipelines.local.jobs.requirements import check_source_archive
from pipelines.local.jobs.toolkit import TRAINING_TOOLKIT, check_entry_point, decode_hyperparameter

SCHEMA_VERSION = "2020-12-01"
STEP_NAME = re.compile(r"^[A-Za-z0-9\-_]{1,64}$")  # the definition schema's Name rule
PARAMETER_NAME = re.compile(r"^[A-Za-z0-9\-_]{1,256}$")  # StartPipelineExecution's Parameter.Name
METADATA_NAME = re.compile(r"[A-Za-z0-9\-_]{1,128}")
METADATA_VALUE = 1024
# PipelineExperimentConfig's members: the experiment and trial an execution is recorded in, named
# as every experiment entity is (ExperimentEntityName, which DescribePipelineExecution shows them in).
EXPERIMENT_MEMBERS = ("ExperimentName", "TrialName")
EXPERIMENT_ENTITY_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,119}")
RUNS_LOCALLY = ("Processing", "Training", "RegisterModel", "Lambda", "Condition", "Fail")
LAMBDA_OUTPUT_TYPES = ("String", "Integer", "Boolean", "Float")  # the SDK's LambdaOutputTypeEnum
# The SageMaker step types the SDK writes (its StepTypeEnum) that the local target does not run.
OTHER_STEP_TYPES = (
    "Model",
    "Transform",
    "Callback",
    "Tuning",
    "QualityCheck",
    "ClarifyCheck",
    "EMR",
    "EMRServerless",
    "AutoML",
    "EndpointConfig",
    "Endpoint",
    "InferenceComponent",
    "Lineage",
    "Job",
    "Cleanup",
    "ForEach",
)
# A step's texts and the members of ListPipelineExecutionSteps' steps that show them.
LISTED_STEP_TEXT = {"DisplayName": "StepDisplayName", "Description": "StepDescription"}
# The Create* request each step type's Arguments become; the name is added by the service.
REQUEST_SHAPES = {
    "Processing": ("CreateProcessingJob", {"ProcessingJobName": "step"}),
    "Training": ("CreateTrainingJob", {"TrainingJobName": "step"}),
    "RegisterModel": ("CreateModelPackage", {}),
}
MAX_TRAINING_RUNTIME = 28 * 24 * 3600  # StoppingCondition.MaxRuntimeInSeconds: "The maximum value is 28 days"
# What each job kind's request may ask for that a local job cannot reproduce (jobs/limits.py).
JOB_LIMITS = {"Processing": processing_limits, "Training": training_limits}
IMAGE_FIELDS = {
    "Processing": ("AppSpecification", "ImageUri"),
    "Training": ("AlgorithmSpecification", "TrainingImage"),
}


def definition_problems(definition: Mapping[str, Any]) -> list[str]:
    """Every reason the service would refuse this definition, in the order they appear."""
    problems = unknown_members(definition)
    if definition.get("Version") != SCHEMA_VERSION:
        problems.append(f"Version must be {SCHEMA_VERSION!r}, got {definition.get('Version')!r}")
    problems += _metadata_problems(definition.get("Metadata", {}))
    if definition.get("MlflowConfig") is not None:
        problems.append(
            "MlflowConfig logs each execution to a SageMaker MLflow tracking server, which the local "
            "SageMaker does not have (run this pipeline with --target sagemaker)"
        )
    problems += _parameter_problems(definition.get("Parameters", []))
    problems += _experiment_problems(definition.get("PipelineExperimentConfig"), definition.get("Parameters"))
    if not isinstance(definition.get("Steps"), list):
        problems.append(f"Steps must be a list of steps, got {type(definition.get('Steps')).__name__}")
    steps = list(all_steps(definition.get("Steps")))
    if not steps:
        problems.append("Steps must hold at least one step")
    property_files = {
        step["Name"]: {
            p["PropertyFileName"] for p in object_items(step.get("PropertyFiles"))
            if isinstance(p.get("PropertyFileName"), str)
        }
        for step in steps
        if isinstance(step.get("Name"), str)
    }
    for step in steps:
        problems += _step_problems(step, property_files)
    return problems


def _metadata_problems(metadata: Any) -> list[str]:
    """The definition's Metadata: names (1 to 128 letters, digits, - or _) for strings of up to
    1,024 characters, as the definition's JSON schema has it."""
    if not isinstance(metadata, Mapping):
        return [f"Metadata must be an object, got {metadata!r}"]
    return [
        f"Metadata {key!r}: a name of 1 to 128 letters, digits, - or _ for a string of up to 1024 "
        f"characters, got {value!r}"
        for key, value in metadata.items()
        if not METADATA_NAME.fullmatch(key) or not isinstance(value, str) or len(value) > METADATA_VALUE
    ]


def _parameter_problems(parameters: Any) -> list[str]:
    problems = []
    if not isinstance(parameters, list):
        return [f"Parameters must be a list of parameters, got {type(parameters).__name__}"]
    for parameter in parameters:
        if not isinstance(parameter, Mapping):
            problems.append(f"a parameter must be an object, got {parameter!r}")
            continue
        name, kind = parameter.get("Name"), parameter.get("Type")
        if not isinstance(name, str) or not PARAMETER_NAME.match(name):
            problems.append(f"parameter name {name!r} must be 1 to 256 letters, digits, - or _")
        if kind not in ("String", "Integer", "Float", "Boolean"):
            problems.append(f"parameter {name}: Type must be String, Integer, Float or Boolean, got {kind!r}")
        elif "DefaultValue" in parameter and not _fits(kind, parameter["DefaultValue"]):
            problems.append(
                f"parameter {name}: DefaultValue {parameter['DefaultValue']!r} is not a {kind}"
            )
    return problems


def _experiment_problems(config: Any, parameters: Any) -> list[str]:
    """PipelineExperimentConfig names the execution's experiment and trial: each member a name, or
    an expression of parameters and execution variables, resolved as the execution starts (before
    any step has run, so no step's property can be read)."""
    if config is None:
        return []
    if not isinstance(config, Mapping):
        return [f"PipelineExperimentConfig must be an object, got {config!r}"]
    declared = {name for p in object_items(parameters) if isinstance(name := p.get("Name"), str)}
    problems = [
        f"PipelineExperimentConfig has no member {member!r}: it names {' and '.join(EXPERIMENT_MEMBERS)}"
        for member in config if member not in EXPERIMENT_MEMBERS
    ]
    for member in (member for member in EXPERIMENT_MEMBERS if member in config):
        value, where = config[member], f"PipelineExperimentConfig.{member}"
        if is_expression(value):
            problems += [f"{where}: {problem}" for problem in function_problems(value)]
            problems += _experiment_reference_problems(where, value, declared)
        elif problem := experiment_name_problem(where, value):
            problems.append(problem)
    return problems


def _experiment_reference_problems(where: str, value: Any, declared: set[str]) -> list[str]:
    try:
        references = get_references(value)
    except ExpressionError as error:
        return [f"{where}: {error}"]
    problems = []
    for reference in references:
        if reference.namespace in ("Steps", "PipelineExperimentConfig"):
            problems.append(
                f"{where} reads {reference.expression}: it is resolved as the execution starts, "
                "from parameters and execution variables only"
            )
        elif reference.namespace == "Parameters" and reference.name not in declared:
            problems.append(f"{where} refers to undeclared parameter {reference.name}")
    return problems


def experiment_name_problem(where: str, name: Any) -> str | None:
    """Why `name` cannot name an experiment or trial, or None when it can."""
    if isinstance(name, str) and EXPERIMENT_ENTITY_NAME.fullmatch(name):
        return None
    return (
        f"{where} {name!r} is not an experiment entity name: 1 to 120 letters, digits or hyphens, "
        "starting and ending with a letter or digit"
    )


def _fits(kind: str, value: Any) -> bool:
    if kind == "String":
        return isinstance(value, str)
    if kind == "Boolean":
        return isinstance(value, bool)
    if kind == "Integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _step_problems(step: Mapping[str, Any], property_files: Mapping[Any, set[Any]]) -> list[str]:
    name, kind = step.get("Name"), step.get("Type")
    problems = []
    if not isinstance(name, str) or not STEP_NAME.match(name):
        problems.append(f"step name {name!r} must be 1 to 64 letters, digits, - or _")
    if not isinstance(kind, str):
        return [*problems, f"step {name}: Type must name a step type, got {kind!r}"]
    if kind in OTHER_STEP_TYPES:
        problems.append(
            f"step {name}: step type {kind} is not supported by the local SageMaker, which runs "
            f"{', '.join(RUNS_LOCALLY)} steps (run this pipeline with --target sagemaker)"
        )
    elif kind not in RUNS_LOCALLY:
        problems.append(f"step {name}: unknown step type {kind!r}")
    problems += [f"step {name}: {p}" for p in _listed_text_problems(step)]
    arguments = step.get("Arguments") or {}
    if not isinstance(arguments, Mapping):
        return [*problems, f"step {name}: Arguments must be an object, got {type(arguments).__name__}"]
    if kind == "Condition":
        problems += [f"step {name}: {p}" for p in conditions_problems(arguments.get("Conditions"))]
    if kind == "Lambda":
        problems += [f"step {name}: {p}" for p in _lambda_problems(step)]
    # A Condition step's branches are steps of their own, checked as such.
    expressions = arguments.get("Conditions") if kind == "Condition" else arguments
    problems += [f"step {name}: {p}" for p in function_problems(expressions)]
    problems += [f"step {name}: {p}" for p in _property_file_problems(step, property_files)]
    problems += [f"step {name}: {p}" for p in _property_file_output_problems(step)]
    if kind in REQUEST_SHAPES:
        problems += [f"step {name}: {p}" for p in request_problems(kind, arguments)]
    if kind in IMAGE_FIELDS:
        problems += [f"step {name}: {p}" for p in _image_problems(kind, arguments)]
    if kind in JOB_LIMITS:
        problems += [f"step {name}: {p}" for p in JOB_LIMITS[kind](arguments)]
    return problems


def _lambda_problems(step: Mapping[str, Any]) -> Iterator[str]:
    """A Lambda step names its function and declares each output it reads from the answer."""
    function = step.get("FunctionArn")
    if not isinstance(function, str) or not function:
        yield f"FunctionArn must name the function, got {function!r}"
    outputs = step.get("OutputParameters", [])
    if not isinstance(outputs, list):
        yield f"OutputParameters must be a list of outputs, got {outputs!r}"
        return
    names = []
    for output in outputs:
        name = output.get("OutputName") if isinstance(output, Mapping) else None
        if not isinstance(name, str) or not name:
            yield f"an output parameter must be an object with an OutputName, got {output!r}"
            continue
        if name in names:
            yield f"output parameter {name!r} is declared more than once"
        names.append(name)
        kind = output.get("OutputType", "String")
        if kind not in LAMBDA_OUTPUT_TYPES:
            allowed = ", ".join(LAMBDA_OUTPUT_TYPES)
            yield f"output parameter {name!r}: OutputType must be one of {allowed}, got {kind!r}"


def _listed_text_problems(step: Mapping[str, Any]) -> list[str]:
    """A step's DisplayName and Description as ListPipelineExecutionSteps can list them (256 and
    3,072 characters): a longer one could only be listed by breaking the answer's shape."""
    listed = operation_model("sagemaker", "ListPipelineExecutionSteps").output_shape
    shape = listed.members["PipelineExecutionSteps"].member.members
    errors = [
        error
        for field, member in LISTED_STEP_TEXT.items()
        if field in step
        for error in validate(shape[member], step[field], field)
    ]
    return [summary(errors)] if errors else []


def request_problems(kind: str, arguments: Mapping[str, Any]) -> list[str]:
    """The step's Arguments against its Create* request shape in botocore's service model: the
    literal parts at upsert (expressions pass until they are resolved), everything at run time."""
    operation, name = REQUEST_SHAPES[kind]
    shape = operation_model("sagemaker", operation).input_shape
    errors = validate(shape, {**name, **arguments}, unknown=_resolved_later)
    return ([summary(errors)] if errors else []) + list(_service_rules(kind, arguments))


def _resolved_later(shape: Shape, value: Any) -> bool:
    """An expression stands for one value, resolved when the step runs. SageMaker parses a step's
    Arguments with the request's structure and refuses an expression where a list belongs
    ("Unable to parse pipeline definition. Expecting start of Json Array."): a list of
    expressions, one per item, is what it takes."""
    return is_expression(value) and not isinstance(shape, ListShape)


def _service_rules(kind: str, arguments: Mapping[str, Any]) -> Iterator[str]:
    """What the service refuses beyond the shape (literal values only): a processing LocalPath
    missing or outside /opt/ml/processing/, a training run longer than 28 days, a Spot wait limit
    without Spot training or shorter than the run it has to hold, what CreateModelPackage refuses."""
    if kind == "Processing":
        yield from local_path_problems(arguments)
    if kind == "RegisterModel":
        yield from creation_problems(arguments)
    if kind != "Training":
        return
    stopping = object_member(arguments, "StoppingCondition")
    wait, run = stopping.get("MaxWaitTimeInSeconds"), stopping.get("MaxRuntimeInSeconds")
    if isinstance(run, int) and run > MAX_TRAINING_RUNTIME:
        yield f"MaxRuntimeInSeconds ({run}) must be at most {MAX_TRAINING_RUNTIME} (28 days)"
    if wait is None:
        return
    spot = arguments.get("EnableManagedSpotTraining")
    if spot is not True and not is_expression(spot):
        yield (
            "Invalid MaxWaitTimeInSeconds. It is only supported when EnableManagedSpotTraining is "
            "set to true"
        )
    elif isinstance(wait, int) and isinstance(run, int) and wait < run:
        yield f"MaxWaitTimeInSeconds ({wait}) must be equal to or greater than MaxRuntimeInSeconds ({run})"


def _property_file_problems(
    step: Mapping[str, Any], property_files: Mapping[Any, set[Any]]
) -> Iterator[str]:
    """A JsonGet must read a property file that its step declares."""
    try:
        references = get_references(step.get("Arguments", {}))
    except ExpressionError:
        return  # the planner reports malformed references with their context
    for reference in references:
        if reference.namespace == "Steps" and reference.is_property_file and len(reference.path) > 1:
            source, file_name = reference.name, reference.path[1].value
            if source in property_files and file_name not in property_files[source]:
                yield f"Std:JsonGet reads property file {file_name!r}, which step {source} does not declare"


def _property_file_output_problems(step: Mapping[str, Any]) -> Iterator[str]:
    """A property file is read from the output its OutputName names, which the step must have."""
    arguments = object_member(step, "Arguments")
    outputs = object_member(arguments, "ProcessingOutputConfig").get("Outputs")
    if step.get("Type") != "Processing" or is_expression(outputs):
        return
    names = [item.get("OutputName") for item in object_items(outputs)]  # any JSON: compared, not hashed
    for declared in object_items(step.get("PropertyFiles")):
        if declared.get("OutputName") not in names:
            yield (
                f"property file {declared.get('PropertyFileName')!r} is read from output "
                f"{declared.get('OutputName')!r}, which the step does not have"
            )


def _image_problems(kind: str, arguments: Mapping[str, Any]) -> Iterator[str]:
    section, field = IMAGE_FIELDS[kind]
    image = object_member(arguments, section).get(field)
    if isinstance(image, str):  # an image from a parameter is checked when the job starts
        try:
            check_image(image)
        except UnsupportedImage as error:
            yield str(error)


@dataclass(frozen=True)
class SourceCheck:
    """What check_sources found: the refusals, and, for each Training step's uploaded source
    directory, what its requirements.txt asks the toolkit to install (name to version)."""

    problems: list[str]
    requirements: list[dict[str, str]]


def check_sources(definition: Mapping[str, Any], stored_file: Callable[[str], Path | None]) -> SourceCheck:
    """Each Training step whose entry point the local target would not run as the training toolkit
    does: one that is not a .py script, or whose uploaded source directory holds a setup.py or a
    requirements.txt this machine does not satisfy. Refused at upsert, since the code is uploaded
    before the pipeline is; a program or source directory given by a parameter, or not uploaded
    yet, is checked when the job starts."""
    problems = []
    requirements = []
    for step in all_steps(definition.get("Steps")):
        if step.get("Type") != "Training":
            continue
        hyperparameters = object_member(object_member(step, "Arguments"), "HyperParameters")
        program, uri = (
            decode_hyperparameter(value) if isinstance(value, str) else None
            for value in map(hyperparameters.get, ("sagemaker_program", "sagemaker_submit_directory"))
        )
        archive = stored_file(uri) if isinstance(uri, str) else None
        try:
            if isinstance(program, str):
                check_entry_point(program)
            if archive is not None:
                requirements.append(check_source_archive(archive, TRAINING_TOOLKIT))
        except JobError as error:
            problems.append(f"step {step.get('Name')}: {uri}: {str(error).removeprefix('ClientError: ')}")
    return SourceCheck(problems, requirements)
