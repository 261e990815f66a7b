"""Tests for the pipeline-definition expression language (pipelines/local/expressions.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from pipelines.local.executor.expressions import (
    ExpressionError,
    Scope,
    Segment,
    condition_problems,
    evaluate_condition,
    evaluate_conditions,
    format_timestamp,
    function_problems,
    parse_path,
    parse_reference,
    references,
    render_string,
    resolve,
)

NOW = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
EVAL_URI = "s3://bucket/eval"
REPORT = {
    "binary_classification_metrics": {
        "accuracy": {"value": 0.91, "standard_deviation": "NaN"},
        "confusion_matrix": {"0": {"0": 40, "1": 3}},
    },
    "history": [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}],
    "metrics": [{"MetricName": "acc", "value": 0.9}],
}
PROPERTIES: dict[str, Mapping[str, Any]] = {
    "Pre": {
        "ProcessingInputs": [{"InputName": "raw", "S3Input": {"S3Uri": "s3://bucket/raw"}}],
        "ProcessingOutputConfig": {
            "Outputs": [
                {"OutputName": "train", "S3Output": {"S3Uri": "s3://bucket/train"}},
                {"OutputName": "test", "S3Output": {"S3Uri": "s3://bucket/test"}},
            ]
        },
    },
    "Train": {
        "ModelArtifacts": {"S3ModelArtifacts": "s3://bucket/model.tar.gz"},
        "HyperParameters": {"ngram-max": "2"},
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3Uri": "s3://bucket/tr"}}],
        "FinalMetricDataList": [{"MetricName": "acc", "Value": 0.9}],
    },
    "Eval": {
        "ProcessingOutputConfig": {
            "Outputs": [{"OutputName": "evaluation", "S3Output": {"S3Uri": EVAL_URI + "/"}}]
        }
    },
    "Deploy": {"OutputParameters": [{"Name": "action", "Value": "created"}]},
}
STEPS: dict[str, Mapping[str, Any]] = {
    "Pre": {"Name": "Pre", "Type": "Processing"},
    "Train": {"Name": "Train", "Type": "Training"},
    "Eval": {
        "Name": "Eval",
        "Type": "Processing",
        "PropertyFiles": [
            {"PropertyFileName": "Report", "OutputName": "evaluation", "FilePath": "report.json"}
        ],
    },
    "Deploy": {"Name": "Deploy", "Type": "Lambda"},
    "Later": {"Name": "Later", "Type": "Processing"},
}


def make_scope(
    parameters: Mapping[str, Any] | None = None,
    documents: Mapping[str, Any] | None = None,
) -> Scope:
    """A scope over the fixtures above; read_json is backed by a dict (missing -> KeyError)."""
    store = dict(documents if documents is not None else {f"{EVAL_URI}/report.json": REPORT})
    return Scope(
        parameters=parameters or {"Threshold": 0.8, "Count": 2, "Flag": True, "Name": "x"},
        execution={
            "PipelineExecutionId": "exec-1",
            "PipelineExecutionArn": "arn:exec-1",
            "PipelineName": "pipe",
            "PipelineArn": "arn:pipe",
            "StartDateTime": "2024-01-01T00:00:00.000Z",
        },
        steps=STEPS,
        properties=PROPERTIES,
        read_json=store.__getitem__,
        now=lambda: NOW,
    )


def get(target: str) -> dict[str, str]:
    return {"Get": target}


def join(on: str, *values: Any) -> dict[str, Any]:
    return {"Std:Join": {"On": on, "Values": list(values)}}


def report_get(path: str) -> dict[str, Any]:
    return {"Std:JsonGet": {"PropertyFile": get("Steps.Eval.PropertyFiles.Report"), "Path": path}}


# Paths and references --------------------------------------------------------------------------


def test_parse_path_reads_attributes_indexes_and_quoted_keys() -> None:
    assert parse_path("Outputs['train'].S3Output[0][\"a b\"]") == (
        Segment("Outputs"),
        Segment("train", quoted=True),
        Segment("S3Output"),
        Segment(0),
        Segment("a b", quoted=True),
    )


@pytest.mark.parametrize("path", ["", "a..b", "a.", "a[x]", "a[0]b", "a['b"])
def test_parse_path_rejects_malformed_paths(path: str) -> None:
    with pytest.raises(ExpressionError):
        parse_path(path)


def test_parse_reference_splits_step_name_from_property_path() -> None:
    ref = parse_reference("Steps.Deploy.OutputParameters['action']")
    assert (ref.namespace, ref.name) == ("Steps", "Deploy")
    assert ref.path == (Segment("OutputParameters"), Segment("action", quoted=True))


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("Steps.Train", "expected Steps.<StepName>.<property path>"),
        ("Execution.Tomorrow", "unknown execution variable Tomorrow"),
        # SageMaker's own, named as ones the local target does not resolve, not as unknown
        ("Execution.ProcessingJobName", r"^Execution\.ProcessingJobName \(the name of the processing job "
         r"its Processing step launches\) is not supported by the local SageMaker, which resolves "
         r"CurrentDateTime, "),
        ("Execution.TrainingJobName", r"^Execution\.TrainingJobName \(the name of the training job"),
        ("Parameters.", "malformed Parameters reference"),
        ("Things.X", "unknown reference"),
        ("Steps.Train.A..B", "malformed path"),
    ],
)
def test_parse_reference_rejects_bad_targets(target: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        parse_reference(target)


def test_references_lists_steps_in_gets_joins_and_property_files() -> None:
    value = {
        "a": [get("Steps.Pre.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri")],
        "b": join("/", get("Steps.Train.ModelArtifacts.S3ModelArtifacts"), get("Parameters.X")),
        "c": report_get("x"),
        "d": get("Execution.PipelineName"),
    }
    assert references(value) == {"Pre", "Train", "Eval"}
    assert references({"plain": ["data", 1, None]}) == set()


# Get -------------------------------------------------------------------------------------------


def test_resolve_replaces_parameters_inside_nested_data_and_keeps_plain_values() -> None:
    value = {"a": [get("Parameters.Threshold"), {"b": get("Parameters.Count")}], "c": None}
    assert resolve(value, make_scope()) == {"a": [0.8, {"b": 2}], "c": None}


def test_unknown_parameter_is_named_in_the_error() -> None:
    with pytest.raises(ExpressionError, match=r"^Parameters\.Missing: no such parameter$"):
        resolve(get("Parameters.Missing"), make_scope())


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        ("PipelineExecutionId", "exec-1"),
        ("PipelineExecutionArn", "arn:exec-1"),
        ("PipelineName", "pipe"),
        ("PipelineArn", "arn:pipe"),
        ("StartDateTime", "2024-01-01T00:00:00.000Z"),
        ("CurrentDateTime", "2024-05-06T07:08:09.123Z"),
    ],
)
def test_execution_variables_resolve(variable: str, expected: str) -> None:
    assert resolve(get(f"Execution.{variable}"), make_scope()) == expected


def test_format_timestamp_converts_to_utc_with_milliseconds() -> None:
    moment = datetime(2024, 1, 1, 2, 0, 0, 5000, tzinfo=timezone(timedelta(hours=2)))
    assert format_timestamp(moment) == "2024-01-01T00:00:00.005Z"
    assert format_timestamp(datetime(2024, 1, 1)) == "2024-01-01T00:00:00.000Z"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("Steps.Pre.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri", "s3://bucket/test"),
        ("Steps.Pre.ProcessingInputs['raw'].S3Input.S3Uri", "s3://bucket/raw"),
        ("Steps.Pre.ProcessingOutputConfig.Outputs[1].OutputName", "test"),
        ("Steps.Train.ModelArtifacts.S3ModelArtifacts", "s3://bucket/model.tar.gz"),
        ("Steps.Train.HyperParameters['ngram-max']", "2"),
        ("Steps.Train.InputDataConfig['train'].DataSource.S3Uri", "s3://bucket/tr"),
        ("Steps.Train.FinalMetricDataList['acc'].Value", 0.9),
        ("Steps.Deploy.OutputParameters['action']", "created"),
    ],
)
def test_step_property_paths_resolve(target: str, expected: Any) -> None:
    assert resolve(get(target), make_scope()) == expected


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            "Steps.Pre.ModelArtifacts.S3ModelArtifacts",
            "Steps.Pre.ModelArtifacts.S3ModelArtifacts: step Pre has no property ModelArtifacts",
        ),
        (
            "Steps.Pre.ProcessingOutputConfig.Outputs['nope'].S3Output.S3Uri",
            "step Pre has no property ProcessingOutputConfig.Outputs['nope']",
        ),
        (
            "Steps.Pre.ProcessingOutputConfig.Outputs[5]",
            "step Pre has no property ProcessingOutputConfig.Outputs[5]",
        ),
        (
            "Steps.Pre.ProcessingOutputConfig.Outputs.train",
            "step Pre has no property ProcessingOutputConfig.Outputs.train",
        ),
        ("Steps.Later.Anything", "Steps.Later.Anything: step Later has not run"),
        ("Steps.Ghost.Anything", "Steps.Ghost.Anything: step Ghost does not exist"),
        ("Steps.Eval.PropertyFiles.Report", "can only be read through Std:JsonGet"),
    ],
)
def test_unresolvable_step_properties_say_what_is_missing(target: str, message: str) -> None:
    with pytest.raises(ExpressionError) as raised:
        resolve(get(target), make_scope())
    assert message in str(raised.value)


def test_unsupported_function_is_an_error() -> None:
    with pytest.raises(ExpressionError, match="unsupported function Std:Upper"):
        resolve({"Std:Upper": "x"}, make_scope())


# Std:Join --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.8, "0.8"), (0.1 + 0.2, "0.30000000000000004"), (1.0, "1.0"), (2, "2"), (True, "true")],
)
def test_render_string_matches_sagemaker(value: Any, expected: str) -> None:
    assert render_string(value) == expected
    assert render_string(False) == "false"


def test_join_renders_parameters_of_every_type() -> None:
    value = join(
        "|",
        "s3://b",
        get("Parameters.Threshold"),
        get("Parameters.Count"),
        get("Parameters.Flag"),
        join("-", "a", 1),
        get("Execution.PipelineExecutionId"),
    )
    assert resolve(value, make_scope()) == "s3://b|0.8|2|true|a-1|exec-1"


def test_join_refuses_non_scalar_values() -> None:
    value = join("/", "a", get("Steps.Train.ModelArtifacts"))
    with pytest.raises(ExpressionError, match="Std:Join: value 1: cannot render dict"):
        resolve(value, make_scope())


def test_join_needs_a_values_list() -> None:
    with pytest.raises(ExpressionError, match="Std:Join expects"):
        resolve({"Std:Join": {"On": "/"}}, make_scope())


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"Std:Join": {"On": "/", "Values": "a"}}, "Std:Join expects {'On': ..., 'Values': [...]}"),
        ({"Std:Join": {"On": 1, "Values": []}}, "Std:Join: On must be a string, got 1"),
        ({"Std:JsonGet": {"S3Uri": "s3://b/k"}}, "Std:JsonGet expects a Path"),
        ({"Std:JsonGet": {"Path": "a"}}, "Std:JsonGet needs a PropertyFile or an S3Uri"),
        ({"Std:JsonGet": {"PropertyFile": "Report", "Path": "a"}}, "PropertyFile must be a Get"),
        ({"Std:JsonGet": {"S3Uri": 5, "Path": "a"}}, "Std:JsonGet: S3Uri must be a string"),
        ({"Std:Upper": "x"}, "unsupported function Std:Upper (the functions are Std:Join and Std:JsonGet)"),
        # inside data and inside another function's arguments
        ({"Env": [{"X": {"Std:Upper": "x"}}]}, "unsupported function Std:Upper"),
        (join("/", "a", {"Std:Join": "b"}), "Std:Join expects an object of arguments, got 'b'"),
    ],
)
def test_malformed_functions_are_found_before_anything_runs(value: Any, problem: str) -> None:
    (found,) = function_problems(value)
    assert problem in found
    with pytest.raises(ExpressionError) as raised:  # and resolving says the same
        resolve(value, make_scope())
    assert str(raised.value) == found


def test_well_formed_functions_have_no_problems() -> None:
    value = join("/", get("Parameters.Name"), {"Std:JsonGet": {"S3Uri": join("/", "s3://b", "k"),
                                                              "Path": get("Parameters.Name")}})
    assert list(function_problems(value)) == []


# Std:JsonGet -----------------------------------------------------------------------------------


def test_json_get_reads_the_property_file_of_the_named_output() -> None:
    calls: list[str] = []

    def read_json(uri: str) -> Any:
        calls.append(uri)
        return REPORT

    scope = replace(make_scope(), read_json=read_json)
    value = report_get("binary_classification_metrics.accuracy.value")
    assert resolve(value, scope) == 0.91
    assert calls == [f"{EVAL_URI}/report.json"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("history[1].loss", 0.25),
        ("binary_classification_metrics.confusion_matrix['0'].1", 3),
        ("$.history[0].epoch", 1),
    ],
)
def test_json_get_walks_nested_paths_and_list_indexes(path: str, expected: Any) -> None:
    assert resolve(report_get(path), make_scope()) == expected


def test_json_get_with_an_s3_uri_built_by_join() -> None:
    value = {
        "Std:JsonGet": {
            "S3Uri": join("/", get("Parameters.Name"), "other.json"),
            "Path": "score",
        }
    }
    scope = make_scope(documents={"x/other.json": {"score": 7}})
    assert resolve(value, scope) == 7


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "binary_classification_metrics.accuracy.valu",
            f"Std:JsonGet: {EVAL_URI}/report.json has no value at "
            "binary_classification_metrics.accuracy.valu",
        ),
        ("history[2].loss", "has no value at history[2]"),
        ("history.loss", "has no value at history.loss"),
        ("metrics['acc']", "has no value at metrics['acc']"),
        ("history[", "Std:JsonGet: malformed path"),
    ],
)
def test_json_get_missing_path_names_file_and_path(path: str, message: str) -> None:
    with pytest.raises(ExpressionError) as raised:
        resolve(report_get(path), make_scope())
    assert message in str(raised.value)


def test_json_get_unreadable_file_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError, match=f"cannot read {EVAL_URI}/report.json: KeyError"):
        resolve(report_get("a"), make_scope(documents={}))


def test_json_get_undeclared_property_file_is_named() -> None:
    value = {"Std:JsonGet": {"PropertyFile": get("Steps.Eval.PropertyFiles.Nope"), "Path": "a"}}
    with pytest.raises(ExpressionError, match="step Eval declares no property file Nope"):
        resolve(value, make_scope())


# Conditions ------------------------------------------------------------------------------------


def binary(kind: str, left: Any, right: Any) -> dict[str, Any]:
    return {"Type": kind, "LeftValue": left, "RightValue": right}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (binary("Equals", get("Parameters.Count"), 2), True),
        (binary("Equals", get("Parameters.Count"), 3), False),
        (binary("Equals", "0.80", get("Parameters.Threshold")), True),
        (binary("Equals", get("Parameters.Flag"), "true"), True),
        (binary("Equals", "a", "b"), False),
        (
            binary(
                "GreaterThan",
                report_get("binary_classification_metrics.accuracy.value"),
                get("Parameters.Threshold"),
            ),
            True,
        ),
        (binary("GreaterThan", 0.8, get("Parameters.Threshold")), False),
        (binary("GreaterThanOrEqualTo", 0.8, get("Parameters.Threshold")), True),
        (binary("GreaterThanOrEqualTo", 0.79, get("Parameters.Threshold")), False),
        (binary("LessThan", "10", 9), False),
        (binary("LessThan", "9", 10), True),
        (binary("LessThanOrEqualTo", 2, get("Parameters.Count")), True),
        (binary("LessThanOrEqualTo", 3, get("Parameters.Count")), False),
        (binary("LessThan", "2024-01-01", "2024-02-01"), True),
        ({"Type": "In", "QueryValue": get("Parameters.Name"), "Values": ["y", "x"]}, True),
        ({"Type": "In", "QueryValue": get("Parameters.Count"), "Values": ["2.0", 5]}, True),
        ({"Type": "In", "QueryValue": "z", "Values": ["y", get("Parameters.Name")]}, False),
        ({"Type": "Not", "Condition": binary("Equals", 1, 1)}, False),
        ({"Type": "Not", "Condition": binary("Equals", 1, 2)}, True),
        ({"Type": "Not", "Expression": binary("Equals", 1, 1)}, False),  # as SDK v2 writes it
        ({"Type": "Or", "Conditions": [binary("Equals", 1, 2), binary("Equals", 2, 2)]}, True),
        ({"Type": "Or", "Conditions": [binary("Equals", 1, 2), binary("Equals", 3, 2)]}, False),
    ],
)
def test_conditions(condition: dict[str, Any], expected: bool) -> None:
    assert evaluate_condition(condition, make_scope()) is expected


def test_conditions_list_is_a_conjunction() -> None:
    true, false = binary("Equals", 1, 1), binary("Equals", 1, 2)
    assert evaluate_conditions([true, true], make_scope()) is True
    assert evaluate_conditions([true, false], make_scope()) is False


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (binary("GreaterThan", "abc", 1), "GreaterThan: cannot compare 'abc' with 1"),
        (binary("LessThan", True, 1), "LessThan: cannot compare True with 1"),
        ({"Type": "Between", "LeftValue": 1, "RightValue": 2}, "unknown condition type 'Between'"),
        ({"Type": "Equals", "LeftValue": 1}, "Equals: missing RightValue"),
        ({"Type": "In", "QueryValue": 1, "Values": 1}, "In: Values must be a list"),
        ({"Type": "In", "Values": [1]}, "In: missing QueryValue"),
        ({"Type": "Not"}, "Not: missing the Condition it negates"),
        ({"Type": "Or", "Conditions": binary("Equals", 1, 1)}, "Or: Conditions must be a list"),
        (binary("Equals", get("Parameters.Nope"), 1), "Parameters.Nope: no such parameter"),
    ],
)
def test_bad_conditions_raise(condition: dict[str, Any], message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        evaluate_condition(condition, make_scope())


@pytest.mark.parametrize(
    ("condition", "problems"),
    [
        ({"Type": "Equals", "LeftValue": 1}, ["Equals: missing RightValue"]),
        ({"Type": "LessThan"}, ["LessThan: missing LeftValue", "LessThan: missing RightValue"]),
        ({"Type": "In", "QueryValue": 1, "Values": get("Parameters.Name")}, []),  # known when run
        ({"Type": "Not", "Expression": {"Type": "Between"}}, ["unknown condition type 'Between'"]),
        ({"Type": "Or", "Conditions": [binary("Equals", 1, 1), {"Type": "GreaterThan", "LeftValue": 1}]},
         ["GreaterThan: missing RightValue"]),
    ],
)
def test_condition_problems_are_found_before_anything_runs(condition: Any, problems: list[str]) -> None:
    found = list(condition_problems(condition))
    assert len(found) == len(problems)
    for problem, message in zip(problems, found, strict=True):
        assert message.startswith(problem)
