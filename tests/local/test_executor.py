"""Tests for the pipeline definition interpreter (pipelines/local/executor.py)."""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipelines.local.executor.caching import cache_key, parse_duration
from pipelines.local.executor.engine import (
    EXECUTION_FAILURE,
    CacheHit,
    DefinitionError,
    ExecutionContext,
    ExecutionResult,
    ParameterError,
    RunOptions,
    StepOutcome,
    StepRequest,
    StepRunner,
    resolve_parameters,
    run_execution,
    step_dependencies,
    validate_definition,
)
from pipelines.local.executor.parallelism import StepLimit
from pipelines.local.executor.retries import exception_type
from pipelines.local.executor.selection import SelectionError, select_steps

EXAMPLE = Path(__file__).resolve().parent / "data" / "sdk-definition.json"
EVAL_REPORT_URI = "s3://my-bucket/p/eval/evaluation.json"
CONTEXT = ExecutionContext(
    pipeline_name="sentiment-classifier",
    pipeline_arn="arn:aws:sagemaker:us-east-1:123456789012:pipeline/sentiment-classifier",
    execution_id="abc123",
    execution_arn="arn:aws:sagemaker:us-east-1:123456789012:pipeline/sentiment-classifier/execution/abc123",
    start_time=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
)
LATER = dataclasses.replace(
    CONTEXT, execution_id="def456", execution_arn=CONTEXT.execution_arn.replace("abc123", "def456")
)
NOW = datetime(2024, 6, 1, tzinfo=UTC)
PLAIN = RunOptions()


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
    options: RunOptions = PLAIN,
    context: ExecutionContext = CONTEXT,
    clock: Callable[[], datetime] = lambda: NOW,
) -> ExecutionResult:
    """run_execution with typed parameters and an evaluation report of the given accuracy."""
    documents = {EVAL_REPORT_URI: report(accuracy)}
    return run_execution(
        definition,
        resolve_parameters(definition, dict(overrides or {})),
        context,
        fake.runners() if runners is None else runners,
        journal,
        documents.__getitem__,
        should_stop,
        clock,
        options,
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
    assert result == ExecutionResult("Failed", EXECUTION_FAILURE)  # SageMaker's, a Fail step's too
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
    assert result == ExecutionResult("Failed", EXECUTION_FAILURE)
    assert journal.finished["AccuracyTooLow"].failure_reason == "Accuracy 0.9 is not above 0.95"
    assert "RegisterModel" not in fake.names


def test_unreadable_metric_fails_the_condition_step() -> None:
    definition = example_definition()
    conditions = definition["Steps"][3]["Arguments"]["Conditions"]
    conditions[0]["LeftValue"]["Std:JsonGet"]["Path"] = "binary_classification_metrics.f1.value"
    fake, journal = FakeSageMaker(), MemoryJournal()
    result = run(definition, fake, journal)

    assert result.status == "Failed"
    assert result.failure_reason == EXECUTION_FAILURE  # SageMaker's one sentence; the why is the step's
    assert journal.finished["AccuracyCheck"].status == "Failed"
    reason = journal.finished["AccuracyCheck"].failure_reason
    assert "has no value at binary_classification_metrics.f1" in reason
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


EARLIER_MODEL = "s3://my-bucket/p/models/earlier-run/output/model.tar.gz"


def trained_earlier() -> MemoryJournal:
    """A journal in which Preprocess and Train already succeeded (Train made EARLIER_MODEL)."""
    return MemoryJournal(
        completed={
            "Preprocess": StepOutcome("Succeeded", properties={"ProcessingJobName": "p"}),
            "Train": StepOutcome(
                "Succeeded", properties={"ModelArtifacts": {"S3ModelArtifacts": EARLIER_MODEL}}
            ),
        }
    )


def test_retry_skips_succeeded_steps_and_reuses_their_properties() -> None:
    previous, journal = EARLIER_MODEL, trained_earlier()
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
    assert result == ExecutionResult("Failed", EXECUTION_FAILURE)
    assert journal.finished["Train"] == StepOutcome("Failed", failure_reason=reason)
    assert fake.names == ["Preprocess", "Train"]
    assert journal.events[-1] == ("finished", "Train")


def test_failed_outcome_from_a_runner_stops_the_run() -> None:
    def broken(request: StepRequest) -> StepOutcome:
        return StepOutcome("Failed", failure_reason="AlgorithmError: exit code 1")

    definition = synthetic(step("A"), step("B", DependsOn=["A"]))
    fake, journal = FakeSageMaker(), MemoryJournal()
    result = run(definition, fake, journal, runners={"Processing": broken})
    assert result.failure_reason == EXECUTION_FAILURE
    assert journal.finished["A"].failure_reason == "AlgorithmError: exit code 1"
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
    assert result == ExecutionResult("Failed", EXECUTION_FAILURE)
    assert journal.finished["A"].failure_reason == "boom"
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
    assert result.failure_reason == EXECUTION_FAILURE
    assert fake.names == ["Preprocess", "Train"]


def test_unsupported_step_type_fails_the_step() -> None:
    definition = synthetic(step("T", "Transform"), step("After", DependsOn=["T"]))
    fake, journal = FakeSageMaker(), MemoryJournal()
    result = run(definition, fake, journal)
    assert journal.finished["T"].failure_reason == "unsupported step type Transform"
    assert result.failure_reason == EXECUTION_FAILURE
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
    )
    fake, journal = FakeSageMaker(), MemoryJournal()
    result = run(definition, fake, journal)
    assert result == ExecutionResult("Failed", EXECUTION_FAILURE)
    assert journal.finished["Stop"].failure_reason == "abc123"
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


# Step caching ----------------------------------------------------------------------------------

CACHE_30_DAYS = {"Enabled": True, "ExpireAfter": "P30D"}


def cached_pipeline(cache: dict[str, Any] | None = None) -> dict[str, Any]:
    """Prep (Processing) -> Fit (Training) -> Report (Processing without a CacheConfig); outputs
    under the execution's id, as the project's definition writes them."""

    def under_execution(name: str) -> dict[str, Any]:
        values = ["s3://b/runs", {"Get": "Execution.PipelineExecutionId"}, name]
        return {"Std:Join": {"On": "/", "Values": values}}

    prep = step(
        "Prep",
        Arguments={
            "AppSpecification": {"ContainerEntrypoint": ["python3", "prep.py"]},
            "ProcessingInputs": [{"InputName": "raw", "S3Input": {"S3Uri": {"Get": "Parameters.Data"}}}],
            "ProcessingOutputConfig": {
                "Outputs": [{"OutputName": "clean", "S3Output": {"S3Uri": under_execution("clean")}}]
            },
        },
        CacheConfig=cache or CACHE_30_DAYS,
    )
    clean = "Steps.Prep.ProcessingOutputConfig.Outputs['clean'].S3Output.S3Uri"
    fit = step(
        "Fit",
        "Training",
        Arguments={
            "AlgorithmSpecification": {"TrainingImage": "sklearn"},
            "HyperParameters": {"c": {"Get": "Parameters.C"}},
            "InputDataConfig": [
                {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": {"Get": clean}}}}
            ],
            "OutputDataConfig": {"S3OutputPath": under_execution("model")},
        },
        CacheConfig=cache or CACHE_30_DAYS,
    )
    model = {"Get": "Steps.Fit.ModelArtifacts.S3ModelArtifacts"}
    reporting = step(
        "Report",
        Arguments={"ProcessingInputs": [{"InputName": "model", "S3Input": {"S3Uri": model}}]},
    )
    parameters = [
        {"Name": "Data", "Type": "String", "DefaultValue": "s3://b/data/aaaa"},
        {"Name": "C", "Type": "String", "DefaultValue": "1.0"},
    ]
    return synthetic(prep, fit, reporting, parameters=parameters)


@dataclass
class MemoryCache:
    """A StepCache over runs remembered from journals: (execution ARN, step, key, end, outcome)."""

    runs: list[tuple[str, str, str, datetime, StepOutcome]] = field(default_factory=list)
    asked: list[tuple[str, datetime | None]] = field(default_factory=list)

    def remember(self, context: ExecutionContext, journal: MemoryJournal, end: datetime = NOW) -> None:
        for name, outcome in journal.finished.items():
            if outcome.cache_key:
                self.runs.append((context.execution_arn, name, outcome.cache_key, end, outcome))

    def lookup(self, step_name: str, key: str, not_before: datetime | None) -> CacheHit | None:
        self.asked.append((step_name, not_before))
        found = [
            run for run in self.runs
            if run[1:3] == (step_name, key) and (not_before is None or run[3] >= not_before)
        ]
        if not found:
            return None
        arn, *_, outcome = max(found, key=lambda run: run[3])
        return CacheHit(arn, outcome)


def test_a_second_run_reuses_cached_steps_and_their_properties() -> None:
    cache, first = MemoryCache(), MemoryJournal()
    run(cached_pipeline(), FakeSageMaker(), first, options=RunOptions(cache=cache))
    assert all(first.finished[name].cache_key for name in ("Prep", "Fit"))
    cache.remember(CONTEXT, first)

    fake, second = FakeSageMaker(), MemoryJournal()
    result = run(cached_pipeline(), fake, second, options=RunOptions(cache=cache), context=LATER)

    assert result.status == "Succeeded"
    assert fake.names == ["Report"]  # Report has no CacheConfig: it always runs
    for name in ("Prep", "Fit"):
        hit = second.finished[name]
        assert hit.cache_hit == CONTEXT.execution_arn and hit.status == "Succeeded"
        assert hit.properties == first.finished[name].properties and not hit.cache_key
    model = "s3://b/runs/abc123/model/train-1/output/model.tar.gz"
    assert fake.request("Report").arguments["ProcessingInputs"][0]["S3Input"]["S3Uri"] == model


def test_a_changed_input_misses_and_every_step_after_it_runs_again() -> None:
    cache, first = MemoryCache(), MemoryJournal()
    run(cached_pipeline(), FakeSageMaker(), first, options=RunOptions(cache=cache))
    cache.remember(CONTEXT, first)

    fake, second = FakeSageMaker(), MemoryJournal()
    run(cached_pipeline(), fake, second, options=RunOptions(cache=cache), context=LATER,
        overrides={"Data": "s3://b/data/bbbb"})
    assert fake.names == ["Prep", "Fit", "Report"]
    assert not any(outcome.cache_hit for outcome in second.finished.values())
    # Fit reads the new Prep output (under this execution's id), so its key changed too.
    assert second.finished["Fit"].cache_key != first.finished["Fit"].cache_key


def test_a_changed_hyperparameter_misses_only_the_training_step() -> None:
    cache, first = MemoryCache(), MemoryJournal()
    run(cached_pipeline(), FakeSageMaker(), first, options=RunOptions(cache=cache))
    cache.remember(CONTEXT, first)
    fake = FakeSageMaker()
    run(cached_pipeline(), fake, MemoryJournal(), options=RunOptions(cache=cache), context=LATER,
        overrides={"C": "2.0"})
    assert fake.names == ["Fit", "Report"]


@pytest.mark.parametrize(("age_days", "hit"), [(29, True), (31, False)])
def test_only_runs_within_expire_after_are_reused(age_days: int, hit: bool) -> None:
    cache, first = MemoryCache(), MemoryJournal()
    run(cached_pipeline(), FakeSageMaker(), first, options=RunOptions(cache=cache))
    cache.remember(CONTEXT, first, end=NOW - timedelta(days=age_days))
    fake = FakeSageMaker()
    run(cached_pipeline(), fake, MemoryJournal(), options=RunOptions(cache=cache), context=LATER)
    assert ("Prep" not in fake.names) is hit
    assert cache.asked[-1][1] == NOW - timedelta(days=30)


def test_disabled_caching_never_looks_up() -> None:
    cache = MemoryCache()
    definition = cached_pipeline({"Enabled": False})
    run(definition, FakeSageMaker(), MemoryJournal(), options=RunOptions(cache=cache))
    assert cache.asked == []


def test_the_cache_key_holds_only_the_documented_attributes() -> None:
    processing = {
        "AppSpecification": {"ImageUri": "i"},
        "Environment": {"A": "1"},
        "ProcessingInputs": [{"S3Input": {"S3Uri": "s3://b/x"}}],
        "ProcessingOutputConfig": {"Outputs": [{"S3Output": {"S3Uri": "s3://b/run-1"}}]},
        "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.m5.large"}},
    }
    key = cache_key("Processing", processing)
    assert key is not None
    unchanged = {**processing, "ProcessingOutputConfig": {}, "ProcessingResources": {}, "RoleArn": "r"}
    assert cache_key("Processing", unchanged) == key
    for changed in ({"Environment": {"A": "2"}}, {"ProcessingInputs": [{"S3Input": {"S3Uri": "s3://b/y"}}]},
                    {"AppSpecification": {"ImageUri": "j"}}):
        assert cache_key("Processing", {**processing, **changed}) != key
    training = {"HyperParameters": {"c": "1"}, "OutputDataConfig": {"S3OutputPath": "s3://b/1"}}
    assert cache_key("Training", training) == cache_key(
        "Training", {**training, "OutputDataConfig": {"S3OutputPath": "s3://b/2"}, "ResourceConfig": {}})
    assert cache_key("Training", training) != cache_key("Training", {"HyperParameters": {"c": "2"}})
    assert cache_key("RegisterModel", training) is None


def test_a_null_member_keys_as_one_not_given() -> None:
    """The job reads `Environment: null` as no Environment, so the two must share their runs."""
    given = {"AppSpecification": {"ImageUri": "i", "ContainerArguments": None}, "ProcessingInputs": []}
    with_nulls = {**given, "Environment": None}
    assert cache_key("Processing", with_nulls) == cache_key("Processing", {**given, "AppSpecification": {
        "ImageUri": "i"}})
    assert cache_key("Processing", with_nulls) != cache_key("Processing", {**given, "Environment": {}})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P30D", timedelta(days=30)),
        ("p30d", timedelta(days=30)),
        ("30d", timedelta(days=30)),
        ("T16m", timedelta(minutes=16)),
        ("30dT5h", timedelta(days=30, hours=5)),
        ("PT1H", timedelta(hours=1)),
        ("P1Y", timedelta(days=365)),
        ("P2W", timedelta(days=14)),
        ("P1M", timedelta(days=30)),
    ],
)
def test_expire_after_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "P", "PT", "P1DT", "30 days", "PT5S", "P-1D"])
def test_malformed_expire_after_is_refused_at_upsert(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_duration(text)
    definition = cached_pipeline({"Enabled": True, "ExpireAfter": text})
    with pytest.raises(DefinitionError, match="step Prep: ExpireAfter"):
        validate_definition(definition)


# Retry policies --------------------------------------------------------------------------------


def flaky(failures: list[str]) -> StepRunner:
    """A runner that fails with the given reasons, one per attempt, then succeeds."""
    remaining = list(failures)

    def runner(request: StepRequest) -> StepOutcome:
        if remaining:
            return StepOutcome("Failed", failure_reason=remaining.pop(0))
        return StepOutcome("Succeeded", properties={"ProcessingJobName": request.name})

    return runner


def retrying(*policies: dict[str, Any]) -> dict[str, Any]:
    return synthetic(step("A", RetryPolicies=list(policies)), step("B", DependsOn=["A"]))


INTERNAL = "InternalServerError: the local store could not write"


def test_a_retry_policy_runs_the_step_again_with_backoff() -> None:
    delays: list[float] = []

    def pause(seconds: float) -> bool:
        delays.append(seconds)
        return False

    policy = {"ExceptionType": ["SageMaker.JOB_INTERNAL_ERROR"], "IntervalSeconds": 2,
              "BackoffRate": 3.0, "MaxAttempts": 3}
    journal = MemoryJournal()
    result = run(retrying(policy), FakeSageMaker(), journal,
                 runners={"Processing": flaky([INTERNAL, INTERNAL])}, options=RunOptions(pause=pause))
    assert result.status == "Succeeded"
    assert delays == [2.0, 6.0]
    assert journal.events[:4] == [("started", "A"), ("retried", "A"), ("retried", "A"), ("finished", "A")]


def test_retries_stop_at_max_attempts() -> None:
    policy = {"ExceptionType": ["SageMaker.JOB_INTERNAL_ERROR"], "IntervalSeconds": 1, "MaxAttempts": 2}
    journal = MemoryJournal()
    result = run(retrying(policy), FakeSageMaker(), journal,
                 runners={"Processing": flaky([INTERNAL] * 5)}, options=RunOptions(pause=lambda s: False))
    assert result.failure_reason == EXECUTION_FAILURE
    assert journal.finished["A"].failure_reason == INTERNAL
    assert journal.events.count(("retried", "A")) == 2
    assert "B" not in journal.started


def test_an_algorithm_error_is_not_retried() -> None:
    policy = {"ExceptionType": ["SageMaker.JOB_INTERNAL_ERROR", "Step.SERVICE_FAULT"], "MaxAttempts": 5}
    journal = MemoryJournal()
    result = run(retrying(policy), FakeSageMaker(), journal,
                 runners={"Processing": flaky(["AlgorithmError: the container exited with code 1"])},
                 options=RunOptions(pause=lambda s: False))
    assert result.status == "Failed" and ("retried", "A") not in journal.events


def test_expire_after_min_bounds_retries_in_time() -> None:
    times = iter(NOW + timedelta(minutes=m) for m in range(0, 100, 4))
    policy = {"ExceptionType": ["SageMaker.JOB_INTERNAL_ERROR"], "ExpireAfterMin": 10}
    journal = MemoryJournal()
    result = run(retrying(policy), FakeSageMaker(), journal, clock=lambda: next(times),
                 runners={"Processing": flaky([INTERNAL] * 10)}, options=RunOptions(pause=lambda s: False))
    assert result.status == "Failed"
    assert 1 <= journal.events.count(("retried", "A")) < 4


def test_a_stop_during_the_backoff_ends_the_step_stopped() -> None:
    policy = {"ExceptionType": ["SageMaker.JOB_INTERNAL_ERROR"], "IntervalSeconds": 300, "MaxAttempts": 3}
    journal = MemoryJournal()
    result = run(retrying(policy), FakeSageMaker(), journal,
                 runners={"Processing": flaky([INTERNAL])}, options=RunOptions(pause=lambda s: True))
    assert result == ExecutionResult("Stopped")
    assert journal.finished["A"].status == "Stopped" and "B" not in journal.started


def test_a_broken_runner_is_an_internal_error_that_a_policy_retries() -> None:
    attempts: list[str] = []

    def broken_once(request: StepRequest) -> StepOutcome:
        attempts.append(request.name)
        if len(attempts) == 1:
            raise OSError("disk full")
        return StepOutcome("Succeeded")

    policy = {"ExceptionType": ["SageMaker.JOB_INTERNAL_ERROR"], "MaxAttempts": 1}
    result = run(retrying(policy), FakeSageMaker(), MemoryJournal(),
                 runners={"Processing": broken_once}, options=RunOptions(pause=lambda s: False))
    assert result.status == "Succeeded" and attempts == ["A", "A", "B"]


@pytest.mark.parametrize(
    ("step_type", "reason", "expected"),
    [
        ("Processing", "InternalServerError: boom", "SageMaker.JOB_INTERNAL_ERROR"),
        ("Training", "CapacityError: no ml.p4d", "SageMaker.CAPACITY_ERROR"),
        ("Training", "ResourceLimitExceeded: quota", "SageMaker.RESOURCE_LIMIT"),
        ("RegisterModel", "InternalServerError: boom", "Step.SERVICE_FAULT"),
        ("RegisterModel", "ThrottlingException: slow down", "Step.THROTTLING"),
        ("Lambda", "TooManyRequestsException: rate", "Step.THROTTLING"),
        ("Processing", "AlgorithmError: exit code 1", None),
        ("Processing", "ClientError: No S3 objects found", None),
        ("RegisterModel", "ValidationException: bad", None),
    ],
)
def test_failures_are_classified_into_retry_exception_types(
    step_type: str, reason: str, expected: str | None
) -> None:
    assert exception_type(step_type, reason) == expected


@pytest.mark.parametrize(
    ("policies", "step_type", "message"),
    [
        ([{"ExceptionType": ["Bogus.ERROR"], "MaxAttempts": 1}], "Processing", "Bogus.ERROR cannot apply"),
        ([{"ExceptionType": ["Step.THROTTLING"], "MaxAttempts": 999}], "Processing", "MaxAttempts must be"),
        ([{"ExceptionType": ["Step.THROTTLING"], "MaxAttempts": 0}], "Processing", "MaxAttempts must be"),
        ([{"ExceptionType": ["Step.THROTTLING"], "IntervalSeconds": -5, "MaxAttempts": 1}], "Processing",
         "IntervalSeconds must be"),
        ([{"ExceptionType": ["Step.THROTTLING"], "BackoffRate": -1, "MaxAttempts": 1}], "Processing",
         "BackoffRate must be"),
        ([{"ExceptionType": ["Step.THROTTLING"], "ExpireAfterMin": 20000}], "Processing",
         "ExpireAfterMin must be"),
        ([{"ExceptionType": ["Step.THROTTLING"], "MaxAttempts": 1, "ExpireAfterMin": 5}], "Processing",
         "exactly one of MaxAttempts and ExpireAfterMin"),
        ([{"ExceptionType": ["Step.THROTTLING"]}], "Processing", "exactly one of"),
        ([{"ExceptionType": [], "MaxAttempts": 1}], "Processing", "non-empty list"),
        ([{"ExceptionType": ["SageMaker.CAPACITY_ERROR"], "MaxAttempts": 1}], "RegisterModel",
         "SageMaker.CAPACITY_ERROR cannot apply to a RegisterModel step"),
        ([{"ExceptionType": ["Step.THROTTLING"], "MaxAttempts": 1}], "Lambda",
         "a Lambda step cannot have RetryPolicies"),
        ({"ExceptionType": ["Step.THROTTLING"]}, "Processing", "must be a list"),
    ],
)
def test_invalid_retry_policies_are_refused_at_upsert(policies: Any, step_type: str, message: str) -> None:
    definition = synthetic(step("A", step_type, RetryPolicies=policies))
    with pytest.raises(DefinitionError, match=f"step A: .*{message}"):
        validate_definition(definition)


# Parallelism -----------------------------------------------------------------------------------


def independent(count: int) -> dict[str, Any]:
    return synthetic(*(step(f"S{i}") for i in range(count)))


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (None, ["started S0", "started S1", "started S2"]),
        (1, ["started S0", "finished S0", "started S1", "finished S1", "started S2"]),
        (2, ["started S0", "started S1", "finished S0", "started S2"]),
    ],
)
def test_max_parallel_execution_steps_bounds_running_steps(limit: int | None, expected: list[str]) -> None:
    # Steps start on the executor's thread before it waits for any of them, so the journal's
    # order shows how many were running at once.
    journal = MemoryJournal()
    result = run(independent(3), FakeSageMaker(), journal, options=RunOptions(parallelism=StepLimit(limit)))
    assert result.status == "Succeeded"
    events = [f"{event} {name}" for event, name in journal.events]
    assert events[: len(expected)] == expected


def test_a_raised_limit_starts_waiting_steps_while_the_running_one_goes_on() -> None:
    """UpdatePipelineExecution's parallelism binds the steps not started yet: S0 runs alone under
    a limit of 1 and goes on running until S1 and S2 have started under the new limit of 3."""
    limit = StepLimit(1)
    s0_running, others_started = threading.Event(), threading.Event()
    started: list[str] = []

    def processing(request: StepRequest) -> StepOutcome:
        started.append(request.name)
        if request.name == "S0":
            s0_running.set()
            assert others_started.wait(30), "S1 and S2 did not start while S0 ran"
        elif len(started) == 3:
            others_started.set()
        return StepOutcome("Succeeded")

    def raise_limit() -> None:
        s0_running.wait(30)
        limit.change(3)

    raiser = threading.Thread(target=raise_limit)
    raiser.start()
    result = run(independent(3), FakeSageMaker(), MemoryJournal(), runners={"Processing": processing},
                 options=RunOptions(parallelism=limit))
    raiser.join()
    assert result.status == "Succeeded" and started[0] == "S0" and sorted(started) == ["S0", "S1", "S2"]


def test_a_lowered_limit_binds_the_steps_not_started_yet() -> None:
    limit = StepLimit()
    journal = MemoryJournal()

    def processing(request: StepRequest) -> StepOutcome:
        limit.change(1)  # while S0, S1 and S2 run: S3 and S4 then start one at a time
        return StepOutcome("Succeeded")

    definition = synthetic(*(step(f"S{i}") for i in range(3)),
                           *(step(f"S{i}", DependsOn=["S0"]) for i in (3, 4)))
    run(definition, FakeSageMaker(), journal, runners={"Processing": processing},
        options=RunOptions(parallelism=limit))
    events = [f"{event} {name}" for event, name in journal.events]
    assert events[-4:] == ["started S3", "finished S3", "started S4", "finished S4"]


# Selective execution ---------------------------------------------------------------------------


def test_selection_reuses_what_the_selected_steps_need() -> None:
    dependencies = step_dependencies(example_definition())
    selection = select_steps(dependencies, ["Train", "Evaluate"])
    assert selection.reused == {"Preprocess"}
    assert select_steps(dependencies, ["Preprocess"]).reused == frozenset()


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["Train", "AccuracyCheck"], "Evaluate lie between selected steps"),
        (["Preprocess", "Evaluate"], "Train lie between"),
        (["Ghost"], "Ghost are not in the pipeline"),
    ],
)
def test_a_selection_with_gaps_or_unknown_steps_is_refused(names: list[str], message: str) -> None:
    with pytest.raises(SelectionError, match=message):
        select_steps(step_dependencies(example_definition()), names)


def test_a_selective_run_runs_only_the_selected_steps_on_the_reused_properties() -> None:
    previous, journal = EARLIER_MODEL, trained_earlier()
    fake = FakeSageMaker()
    result = run(example_definition(), fake, journal,
                 options=RunOptions(selected_steps=frozenset({"Evaluate"})))
    assert result.status == "Succeeded"
    assert fake.names == ["Evaluate"]  # AccuracyCheck and what follows are downstream: not run
    assert set(journal.started) == {"Evaluate"}
    assert fake.request("Evaluate").arguments["ProcessingInputs"][0]["S3Input"]["S3Uri"] == previous


# Stop ------------------------------------------------------------------------------------------


def test_a_step_its_runner_reports_stopped_stops_the_execution() -> None:
    def stopped(request: StepRequest) -> StepOutcome:
        return StepOutcome("Stopped", failure_reason="Stopped: the job was stopped on request.")

    journal = MemoryJournal()
    result = run(synthetic(step("A"), step("B", DependsOn=["A"])), FakeSageMaker(), journal,
                 runners={"Processing": stopped})
    assert result == ExecutionResult("Stopped")
    assert journal.finished["A"].status == "Stopped" and "B" not in journal.started
