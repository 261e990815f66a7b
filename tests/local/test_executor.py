"""Tests for the pipeline definition interpreter (pipelines/local/executor.py)."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipelines.local.executor.engine import (
    EXECUTION_FAILURE,
    DefinitionError,
    ExecutionContext,
    ExecutionResult,
    ParameterError,
    StepOutcome,
    StepRequest,
    StepRunner,
    resolve_parameters,
    run_execution,
    validate_definition,
)

EXAMPLE = Path(__file__).resolve().parent / "data" / "sdk-definition.json"
EVAL_REPORT_URI = "s3://my-bucket/p/eval/evaluation.json"
CONTEXT = ExecutionContext(
    pipeline_name="sentiment-classifier",
    pipeline_arn="arn:aws:sagemaker:us-east-1:123456789012:pipeline/sentiment-classifier",
    execution_id="abc123",
    execution_arn="arn:aws:sagemaker:us-east-1:123456789012:pipeline/sentiment-classifier/execution/abc123",
    start_time=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
)


def example_definition() -> dict[str, Any]:
    """The SDK-produced example, plus the ModelApprovalStatus parameter its RegisterModel reads.

    The trimmed example omits that declaration (the project's real definition has it);
    test_example_without_its_approval_parameter_is_rejected covers the unpatched file.
    """
    definition: dict[str, Any] = json.loads(EXAMPLE.read_text())
    definition["Parameters"].append(
        {"Name": "ModelApprovalStatus", "Type": "String", "DefaultValue": "Approved"}
    )
    return definition


@dataclass
class MemoryJournal:
    """In-memory Journal recording every call in order."""

    completed: dict[str, StepOutcome] = field(default_factory=dict)
    events: list[tuple[str, str]] = field(default_factory=list)
    started: dict[str, tuple[str, str | None, str | None]] = field(default_factory=dict)
    finished: dict[str, StepOutcome] = field(default_factory=dict)

    def step_started(
        self,
        name: str,
        type: str,
        display_name: str | None,
        description: str | None,
        start: datetime,
    ) -> None:
        self.events.append(("started", name))
        self.started[name] = (type, display_name, description)

    def step_retried(self, name: str, failure_reason: str) -> None:
        self.events.append(("retried", name))

    def step_finished(self, name: str, outcome: StepOutcome, end: datetime) -> None:
        self.events.append(("finished", name))
        self.finished[name] = outcome

    def completed_steps(self) -> dict[str, StepOutcome]:
        return dict(self.completed)


@dataclass
class FakeSageMaker:
    """Runners returning Describe*-shaped properties; records every request they get."""

    requests: list[StepRequest] = field(default_factory=list)
    raise_in: dict[str, Exception] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [request.name for request in self.requests]

    def request(self, name: str) -> StepRequest:
        return next(request for request in self.requests if request.name == name)

    def runners(self) -> dict[str, StepRunner]:
        return {
            "Processing": self.processing,
            "Training": self.training,
            "RegisterModel": self.register,
            "Lambda": self.invoke,
        }

    def _record(self, request: StepRequest) -> None:
        self.requests.append(request)
        if request.name in self.raise_in:
            raise self.raise_in[request.name]

    def processing(self, request: StepRequest) -> StepOutcome:
        self._record(request)
        arn = f"arn:aws:sagemaker:us-east-1:123456789012:processing-job/{request.name.lower()}"
        args = request.arguments
        return StepOutcome(
            "Succeeded",
            properties={
                "ProcessingJobName": request.name.lower(),
                "ProcessingJobArn": arn,
                "ProcessingJobStatus": "Completed",
                "ProcessingInputs": args.get("ProcessingInputs", []),
                "ProcessingOutputConfig": args.get("ProcessingOutputConfig", {}),
            },
            metadata={"ProcessingJob": {"Arn": arn}},
        )

    def training(self, request: StepRequest) -> StepOutcome:
        self._record(request)
        arn = "arn:aws:sagemaker:us-east-1:123456789012:training-job/train-1"
        output = request.arguments["OutputDataConfig"]["S3OutputPath"]
        return StepOutcome(
            "Succeeded",
            properties={
                "TrainingJobName": "train-1",
                "TrainingJobArn": arn,
                "ModelArtifacts": {"S3ModelArtifacts": f"{output}/train-1/output/model.tar.gz"},
                "HyperParameters": request.arguments["HyperParameters"],
            },
            metadata={"TrainingJob": {"Arn": arn}},
        )

    def register(self, request: StepRequest) -> StepOutcome:
        self._record(request)
        arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/grp/1"
        return StepOutcome(
            "Succeeded",
            properties={"ModelPackageArn": arn},
            metadata={"RegisterModel": {"Arn": arn}},
        )

    def invoke(self, request: StepRequest) -> StepOutcome:
        self._record(request)
        outputs = [{"Name": "action", "Value": "created"}]
        return StepOutcome(
            "Succeeded",
            properties={"OutputParameters": outputs},
            metadata={"Lambda": {"Arn": request.step["FunctionArn"], "OutputParameters": outputs}},
        )


def report(accuracy: float) -> dict[str, Any]:
    return {"binary_classification_metrics": {"accuracy": {"value": accuracy}}}


def no_documents(uri: str) -> Any:
    raise KeyError(uri)


def run(
    definition: Mapping[str, Any],
    fake: FakeSageMaker,
    journal: MemoryJournal,
    *,
    accuracy: float = 0.9,
    overrides: Mapping[str, str] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    runners: Mapping[str, StepRunner] | None = None,
) -> ExecutionResult:
    """run_execution with typed parameters and an evaluation report of the given accuracy."""
    documents = {EVAL_REPORT_URI: report(accuracy)}
    return run_execution(
        definition,
        resolve_parameters(definition, dict(overrides or {})),
        CONTEXT,
        fake.runners() if runners is None else runners,
        journal,
        documents.__getitem__,
        should_stop,
    )


def contains_expression(value: Any) -> bool:
    if isinstance(value, dict):
        if any(key == "Get" or key.startswith("Std:") for key in value):
            return True
        return any(contains_expression(item) for item in value.values())
    if isinstance(value, list):
        return any(contains_expression(item) for item in value)
    return False


def step(name: str, kind: str = "Processing", **extra: Any) -> dict[str, Any]:
    return {"Name": name, "Type": kind, "Arguments": extra.pop("Arguments", {}), **extra}


def synthetic(*steps: dict[str, Any], parameters: list[Any] | None = None) -> dict[str, Any]:
    return {"Version": "2020-12-01", "Parameters": parameters or [], "Steps": list(steps)}


# Parameters ------------------------------------------------------------------------------------


def test_parameter_defaults_are_typed() -> None:
    assert resolve_parameters(example_definition(), {}) == {
        "InputDataUri": "s3://my-bucket/p/data",
        "ProcessingInstanceType": "ml.m5.large",
        "AccuracyThreshold": 0.8,
        "NgramMax": 2,
        "ModelApprovalStatus": "Approved",
    }


def test_parameter_overrides_are_parsed_as_declared_types() -> None:
    definition = synthetic(
        parameters=[
            {"Name": "F", "Type": "Float", "DefaultValue": 1},
            {"Name": "I", "Type": "Integer", "DefaultValue": 1},
            {"Name": "B", "Type": "Boolean", "DefaultValue": False},
            {"Name": "S", "Type": "String", "DefaultValue": "a"},
        ]
    )
    values = resolve_parameters(definition, {"F": "0.95", "I": "7", "B": "True", "S": "12"})
    assert values == {"F": 0.95, "I": 7, "B": True, "S": "12"}
    assert [type(v) for v in values.values()] == [float, int, bool, str]
    assert type(resolve_parameters(definition, {})["F"]) is float


@pytest.mark.parametrize(
    ("declaration", "overrides", "message"),
    [
        ({"Name": "I", "Type": "Integer", "DefaultValue": 1}, {"J": "1"}, "unknown parameter"),
        ({"Name": "I", "Type": "Integer", "DefaultValue": 1}, {"I": "2.5"}, "not a valid Integer"),
        ({"Name": "F", "Type": "Float", "DefaultValue": 1.0}, {"F": "high"}, "not a valid Float"),
        ({"Name": "F", "Type": "Float", "DefaultValue": 1.0}, {"F": "nan"}, "not a valid Float"),
        (
            {"Name": "B", "Type": "Boolean", "DefaultValue": True},
            {"B": "yes"},
            "not a valid Boolean",
        ),
        ({"Name": "S", "Type": "String"}, {}, "S has no default value"),
        ({"Name": "T", "Type": "Timestamp", "DefaultValue": "x"}, {}, "unsupported type Timestamp"),
        (
            {"Name": "S", "Type": "String", "DefaultValue": "a", "EnumValues": ["a", "b"]},
            {"S": "c"},
            "not one of",
        ),
    ],
)
def test_bad_parameters_raise(
    declaration: dict[str, Any], overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(ParameterError, match=message):
        resolve_parameters(synthetic(parameters=[declaration]), overrides)


def test_enum_values_accept_a_listed_value() -> None:
    declaration = {"Name": "S", "Type": "String", "DefaultValue": "a", "EnumValues": ["a", "b"]}
    assert resolve_parameters(synthetic(parameters=[declaration]), {"S": "b"}) == {"S": "b"}


# The example definition ------------------------------------------------------------------------


def test_happy_path_runs_every_step_in_order_with_resolved_arguments() -> None:
    fake, journal = FakeSageMaker(), MemoryJournal()
    result = run(example_definition(), fake, journal)

    assert result == ExecutionResult("Succeeded")
    assert fake.names == ["Preprocess", "Train", "Evaluate", "RegisterModel", "DeployEndpoint"]
    order = ["Preprocess", "Train", "Evaluate", "AccuracyCheck", "RegisterModel", "DeployEndpoint"]
    assert journal.events == [(event, n) for n in order for event in ("started", "finished")]
    assert all(outcome.status == "Succeeded" for outcome in journal.finished.values())
    assert not any(contains_expression(request.arguments) for request in fake.requests)

    train = fake.request("Train").arguments
    s3_uri = train["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    assert s3_uri == "s3://my-bucket/p/runs/x/train"
    assert (
        s3_uri
        == (
            fake.request("Preprocess").arguments["ProcessingOutputConfig"]["Outputs"][0][
                "S3Output"
            ]["S3Uri"]
        )
    )
    assert train["HyperParameters"]["ngram-max"] == 2
    model = "s3://my-bucket/p/models/train-1/output/model.tar.gz"
    evaluate = fake.request("Evaluate").arguments
    assert evaluate["ProcessingInputs"][0]["S3Input"]["S3Uri"] == model
    assert evaluate["ProcessingResources"]["ClusterConfig"]["InstanceType"] == "ml.m5.large"
    register = fake.request("RegisterModel").arguments
    assert register["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == model
    assert register["ModelApprovalStatus"] == "Approved"
    statistics = register["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    assert statistics == EVAL_REPORT_URI
    deploy = fake.request("DeployEndpoint")
    assert deploy.arguments == {
        "model_package_arn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/grp/1",
        "endpoint_name": "ep",
    }


def test_requests_carry_raw_step_context_display_name_and_description() -> None:
    fake, journal = FakeSageMaker(), MemoryJournal()
    run(example_definition(), fake, journal)
    preprocess = fake.request("Preprocess")
    assert (preprocess.type, preprocess.display_name, preprocess.description) == (
        "Processing",
        "Preprocess reviews",
        "d",
    )
    assert preprocess.context == CONTEXT
    assert fake.request("Train").display_name is None
    assert fake.request("DeployEndpoint").step["FunctionArn"].endswith("function:deploy")
    assert journal.started["RegisterModel"] == ("RegisterModel", "Register", "reg")
    assert journal.started["AccuracyCheck"] == ("Condition", None, None)


def test_condition_true_records_outcome_and_skips_else_branch() -> None:
    fake, journal = FakeSageMaker(), MemoryJournal()
    run(example_definition(), fake, journal, accuracy=0.9)
    check = journal.finished["AccuracyCheck"]
    assert check.properties == {"Outcome": True}
    assert check.metadata == {"Condition": {"Outcome": "True"}}
    assert "AccuracyTooLow" not in journal.started
    assert (
        journal.finished["DeployEndpoint"].properties["OutputParameters"][0]["Value"] == "created"
    )


def test_condition_false_runs_fail_step_with_accuracy_and_threshold() -> None:
    fake, journal = FakeSageMaker(), MemoryJournal()
    result = run(example_definition(), fake, journal, accuracy=0.75)

    message = "Accuracy 0.75 is not above 0.8"
    assert result == ExecutionResult("Failed", message)
    assert fake.names == ["Preprocess", "Train", "Evaluate"]
    assert journal.finished["AccuracyCheck"].metadata == {"Condition": {"Outcome": "False"}}
    fail = journal.finished["AccuracyTooLow"]
    assert (fail.status, fail.failure_reason) == ("Failed", message)
    assert fail.metadata == {"Fail": {"ErrorMessage": message}}
    assert "RegisterModel" not in journal.started
    assert "DeployEndpoint" not in journal.started


def test_threshold_override_changes_the_branch() -> None:
    fake, journal = FakeSageMaker(), MemoryJournal()
    result = run(
        example_definition(), fake, journal, accuracy=0.9, overrides={"AccuracyThreshold": "0.95"}
    )
    assert result == ExecutionResult("Failed", "Accuracy 0.9 is not above 0.95")
    assert "RegisterModel" not in fake.names


def test_unreadable_metric_fails_the_condition_step() -> None:
    definition = example_definition()
    conditions = definition["Steps"][3]["Arguments"]["Conditions"]
    conditions[0]["LeftValue"]["Std:JsonGet"]["Path"] = "binary_classification_metrics.f1.value"
    fake, journal = FakeSageMaker(), MemoryJournal()
    result = run(definition, fake, journal)

    assert result.status == "Failed"
    assert result.failure_reason.startswith(f"{EXECUTION_FAILURE} Step AccuracyCheck failed: ")
    assert "has no value at binary_classification_metrics.f1" in result.failure_reason
    assert journal.finished["AccuracyCheck"].status == "Failed"
    assert "RegisterModel" not in journal.started


def test_example_without_its_approval_parameter_is_rejected() -> None:
    definition = json.loads(EXAMPLE.read_text())
    with pytest.raises(DefinitionError, match="undeclared parameter ModelApprovalStatus"):
        validate_definition(definition)
    fake, journal = FakeSageMaker(), MemoryJournal()
    with pytest.raises(DefinitionError):
        run_execution(definition, {}, CONTEXT, fake.runners(), journal, no_documents, lambda: False)
    assert fake.requests == [] and journal.events == []


# Retry -----------------------------------------------------------------------------------------


def test_retry_skips_succeeded_steps_and_reuses_their_properties() -> None:
    previous = "s3://my-bucket/p/models/earlier-run/output/model.tar.gz"
    journal = MemoryJournal(
        completed={
            "Preprocess": StepOutcome("Succeeded", properties={"ProcessingJobName": "p"}),
            "Train": StepOutcome(
                "Succeeded", properties={"ModelArtifacts": {"S3ModelArtifacts": previous}}
            ),
        }
    )
    fake = FakeSageMaker()
    result = run(example_definition(), fake, journal)

    assert result.status == "Succeeded"
    assert fake.names == ["Evaluate", "RegisterModel", "DeployEndpoint"]
    assert "Train" not in journal.started and "Preprocess" not in journal.started
    assert fake.request("Evaluate").arguments["ProcessingInputs"][0]["S3Input"]["S3Uri"] == previous
    container = fake.request("RegisterModel").arguments["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == previous


def test_retry_after_a_decided_condition_keeps_its_branch() -> None:
    journal = MemoryJournal(
        completed={
            name: StepOutcome("Succeeded")
            for name in ("Preprocess", "Train", "Evaluate", "RegisterModel")
        }
    )
    journal.completed["RegisterModel"] = StepOutcome(
        "Succeeded", properties={"ModelPackageArn": "arn:earlier"}
    )
    journal.completed["AccuracyCheck"] = StepOutcome(
        "Succeeded", metadata={"Condition": {"Outcome": "True"}}
    )
    fake = FakeSageMaker()
    result = run(example_definition(), fake, journal, accuracy=0.1)

    assert result.status == "Succeeded"
    assert fake.names == ["DeployEndpoint"]
    assert fake.request("DeployEndpoint").arguments["model_package_arn"] == "arn:earlier"


# Failures and stopping -------------------------------------------------------------------------


def test_runner_exception_fails_the_step_and_stops_the_run() -> None:
    fake = FakeSageMaker(raise_in={"Train": RuntimeError("out of memory")})
    journal = MemoryJournal()
    result = run(example_definition(), fake, journal)

    reason = "InternalServerError: out of memory"
    assert result == ExecutionResult("Failed", f"{EXECUTION_FAILURE} Step Train failed: {reason}")
    assert journal.finished["Train"] == StepOutcome("Failed", failure_reason=reason)
    assert fake.names == ["Preprocess", "Train"]
    assert journal.events[-1] == ("finished", "Train")


def test_failed_outcome_from_a_runner_stops_the_run() -> None:
    def broken(request: StepRequest) -> StepOutcome:
        return StepOutcome("Failed", failure_reason="AlgorithmError: exit code 1")

    definition = synthetic(step("A"), step("B", DependsOn=["A"]))
    fake, journal = FakeSageMaker(), MemoryJournal()
    result = run(definition, fake, journal, runners={"Processing": broken})
    assert result.failure_reason == (
        f"{EXECUTION_FAILURE} Step A failed: AlgorithmError: exit code 1"
    )
    assert journal.events == [("started", "A"), ("finished", "A")]


def test_a_failure_starts_nothing_new_but_lets_running_steps_finish() -> None:
    # A fails while C (independent of A) is still running: C finishes and is recorded, B (after
    # C) never starts, and the execution fails with A's reason.
    a_failed = threading.Event()

    def runner(request: StepRequest) -> StepOutcome:
        if request.name == "A":
            a_failed.set()
            return StepOutcome("Failed", failure_reason="boom")
        assert a_failed.wait(5)
        return StepOutcome("Succeeded")

    definition = synthetic(step("A"), step("C"), step("B", DependsOn=["C"]))
    fake, journal = FakeSageMaker(), MemoryJournal()
    result = run(definition, fake, journal, runners={"Processing": runner})
    assert result == ExecutionResult("Failed", f"{EXECUTION_FAILURE} Step A failed: boom")
    assert set(journal.started) == {"A", "C"}
    assert journal.finished["C"].status == "Succeeded"


def test_independent_steps_run_at_the_same_time() -> None:
    # Evaluate and Baseline each wait for the other to be running too: run one after the other,
    # the barrier would time out and fail the first of them.
    barrier = threading.Barrier(2, timeout=10)

    def runner(request: StepRequest) -> StepOutcome:
        if request.name in ("Evaluate", "Baseline"):
            barrier.wait()
        return StepOutcome("Succeeded")

    definition = synthetic(
        step("Train"),
        step("Evaluate", DependsOn=["Train"]),
        step("Baseline", DependsOn=["Train"]),
        step("Register", DependsOn=["Evaluate", "Baseline"]),
    )
    fake, journal = FakeSageMaker(), MemoryJournal()
    result = run(definition, fake, journal, runners={"Processing": runner})
    assert result.status == "Succeeded", result
    events = journal.events
    assert events.index(("started", "Register")) > max(
        events.index(("finished", "Evaluate")), events.index(("finished", "Baseline"))
    )


def test_unresolvable_argument_fails_that_step_without_calling_its_runner() -> None:
    fake = FakeSageMaker()
    fake_training = fake.training

    def training_without_artifacts(request: StepRequest) -> StepOutcome:
        outcome = fake_training(request)
        del outcome.properties["ModelArtifacts"]
        return outcome

    runners = {**fake.runners(), "Training": training_without_artifacts}
    definition, journal = example_definition(), MemoryJournal()
    result = run(definition, fake, journal, runners=runners)
    reason = (
        "Steps.Train.ModelArtifacts.S3ModelArtifacts: step Train has no property ModelArtifacts"
    )
    assert journal.finished["Evaluate"] == StepOutcome("Failed", failure_reason=reason)
    assert result.failure_reason == f"{EXECUTION_FAILURE} Step Evaluate failed: {reason}"
    assert fake.names == ["Preprocess", "Train"]


def test_unsupported_step_type_fails_the_step() -> None:
    definition = synthetic(step("T", "Transform"), step("After", DependsOn=["T"]))
    fake, journal = FakeSageMaker(), MemoryJournal()
    result = run(definition, fake, journal)
    assert journal.finished["T"].failure_reason == "unsupported step type Transform"
    assert result.failure_reason == (
        f"{EXECUTION_FAILURE} Step T failed: unsupported step type Transform"
    )
    assert fake.names == []


def test_should_stop_is_checked_before_each_step() -> None:
    fake, journal = FakeSageMaker(), MemoryJournal()
    result = run(example_definition(), fake, journal, should_stop=lambda: len(fake.requests) >= 2)
    assert result == ExecutionResult("Stopped")
    assert fake.names == ["Preprocess", "Train"]
    assert "Evaluate" not in journal.started


# Ordering and definition errors ----------------------------------------------------------------


def test_depends_on_and_references_order_steps() -> None:
    definition = synthetic(
        step("Late", DependsOn=["Early"]),
        step("Reader", Arguments={"x": {"Get": "Steps.Late.ProcessingJobName"}}),
        step("Early"),
        step("Free"),
    )
    fake, journal = FakeSageMaker(), MemoryJournal()
    result = run(definition, fake, journal)
    assert result.status == "Succeeded"
    events = journal.events
    for later, earlier in (("Late", "Early"), ("Reader", "Late")):
        assert events.index(("started", later)) > events.index(("finished", earlier))
    assert sorted(fake.names) == ["Early", "Free", "Late", "Reader"]
    assert fake.request("Reader").arguments == {"x": "late"}


def test_branch_steps_wait_for_their_condition_and_unchosen_branch_blocks_dependents() -> None:
    condition = step(
        "Check",
        "Condition",
        Arguments={
            "Conditions": [
                {"Type": "Equals", "LeftValue": {"Get": "Parameters.Go"}, "RightValue": True}
            ],
            "IfSteps": [step("Yes")],
            "ElseSteps": [step("No")],
        },
        DependsOn=["First"],
    )
    definition = synthetic(
        condition,
        step("First"),
        step("AfterNo", DependsOn=["No"]),
        parameters=[{"Name": "Go", "Type": "Boolean", "DefaultValue": True}],
    )
    for go, ran in (("true", ["First", "Yes"]), ("false", ["First", "No", "AfterNo"])):
        fake, journal = FakeSageMaker(), MemoryJournal()
        result = run(definition, fake, journal, overrides={"Go": go})
        assert result.status == "Succeeded"
        assert fake.names == ran
        assert set(journal.started) == {"Check", *ran}


def test_fail_step_outside_a_condition_fails_with_its_message() -> None:
    definition = synthetic(
        step("Stop", "Fail", Arguments={"ErrorMessage": {"Get": "Execution.PipelineExecutionId"}}),
        step("Never", DependsOn=["Stop"]),
    )
    fake, journal = FakeSageMaker(), MemoryJournal()
    result = run(definition, fake, journal)
    assert result == ExecutionResult("Failed", "abc123")
    assert fake.names == []


def test_execution_variables_reach_runner_arguments() -> None:
    arguments = {
        "id": {"Get": "Execution.PipelineExecutionId"},
        "start": {"Get": "Execution.StartDateTime"},
        "now": {"Get": "Execution.CurrentDateTime"},
    }
    fake, journal = FakeSageMaker(), MemoryJournal()
    run_execution(
        synthetic(step("A", Arguments=arguments)),
        {},
        CONTEXT,
        fake.runners(),
        journal,
        no_documents,
        lambda: False,
        clock=lambda: datetime(2025, 1, 1, tzinfo=UTC),
    )
    assert fake.request("A").arguments == {
        "id": "abc123",
        "start": "2024-01-02T03:04:05.000Z",
        "now": "2025-01-01T00:00:00.000Z",
    }


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (
            [step("A", DependsOn=["B"]), step("B", Arguments={"x": {"Get": "Steps.A.Name"}})],
            "dependency cycle: A -> B -> A",
        ),
        ([step("A", DependsOn=["A"])], "dependency cycle: A -> A"),
        (
            [step("A", DependsOn=["B"]), step("B", DependsOn=["C"]), step("C", DependsOn=["A"])],
            "dependency cycle: A -> B -> C -> A",
        ),
        ([step("A", Arguments={"x": {"Get": "Steps.Ghost.X"}})], "unknown step Ghost"),
        ([step("A", DependsOn=["Ghost"])], "depends on unknown step"),
        ([step("A"), step("A")], "duplicate step name"),
        ([step("A", Arguments={"x": {"Get": "Steps.B"}}), step("B")], "step A: Steps.B"),
        ([{"Name": "A"}], "needs a Name, a Type"),
    ],
)
def test_definition_errors_are_raised_before_anything_runs(
    steps: list[dict[str, Any]], message: str
) -> None:
    fake, journal = FakeSageMaker(), MemoryJournal()
    with pytest.raises(DefinitionError, match=message):
        run(synthetic(*copy.deepcopy(steps)), fake, journal)
    assert fake.requests == [] and journal.events == []
