"""monitor.py: baseline and check modes, Model Monitor formats, capture parsing, drift, report."""

from __future__ import annotations

import base64
import csv
import io
import json
import random
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from moto import mock_aws
from sagemaker.core.model_monitor.monitoring_files import Constraints
from scipy.stats import ks_2samp
from step_helpers import REVIEWS, make_tarball, write_library, write_reviews

from steps import inference, monitor
from steps.monitoring import drift, formats
from steps.monitoring import model as monitored
from steps.monitoring.cloudwatch import FEATURES, NAMESPACE

JSON, JSONLINES, CSV = "application/json", "application/jsonlines", "text/csv"
START = datetime(2026, 11, 22, 20, 0, tzinfo=UTC)
DRIFT_WORDING = re.compile(r"^Baseline drift distance: (\d\.\d+(e-\d+)?) exceeds threshold: 0\.1$")
UNSEEN_WORDS = ("quantum", "zeppelin", "marmalade", "telescope", "harpsichord", "volcano")

Invoke = Callable[[bytes, str, str], tuple[bytes, str]]
Record = dict[str, Any]


# --- helpers --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def invoke(model_dir: Path) -> Invoke:
    """What the endpoint does with a request: the serving handlers on the trained model."""
    model = inference.model_fn(str(model_dir))

    def call(body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        texts = inference.read_reviews(body, content_type)
        return inference.write_answer(inference.score(texts, model), accept)

    return call


@pytest.fixture(scope="module")
def baseline_dir(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    """Baseline files made once from the training reviews, with the default settings."""
    base = tmp_path_factory.mktemp("baseline")
    stage_model(base, model_dir)
    write_reviews(base / "processing" / "train" / "train.csv", REVIEWS)
    assert run(base, "--mode", "baseline") == 0
    return base / "processing" / "baseline"


def stage_model(base: Path, model_dir: Path) -> None:
    make_tarball(model_dir, base / "processing" / "model" / "model.tar.gz")


def stage_check(base: Path, model_dir: Path, baseline_dir: Path) -> Path:
    stage_model(base, model_dir)
    shutil.copytree(baseline_dir, base / "processing" / "baseline")
    return base


def run(base: Path, *argv: str) -> int:
    """monitor.main with SAGEMAKER_BASE_DIR=base; returns the exit code."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SAGEMAKER_BASE_DIR", str(base))
        try:
            monitor.main(list(argv))
        except SystemExit as exc:
            return int(exc.code or 0)
    return 0


def encode(body: bytes, content_type: str, mode: str, base64_only: bool = False) -> dict[str, str]:
    """endpointInput / endpointOutput the way SageMaker writes them (text types kept readable)."""
    media = content_type.split(";")[0].strip().lower()
    encoding = "CSV" if media == CSV else "JSON" if media in (JSON, JSONLINES) else "BASE64"
    if base64_only:
        encoding = "BASE64"
    data = base64.b64encode(body).decode() if encoding == "BASE64" else body.decode()
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}


def capture_record(
    invoke: Invoke,
    body: str,
    when: datetime,
    content_type: str = JSON,
    accept: str = JSON,
    base64_output: bool = False,
) -> Record:
    answer, answer_type = invoke(body.encode(), content_type, accept)
    return {
        "captureData": {
            "endpointInput": encode(body.encode(), content_type, "INPUT"),
            "endpointOutput": encode(answer, answer_type, "OUTPUT", base64_output),
        },
        "eventMetadata": {
            "eventId": str(uuid.uuid4()),
            "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),  # SageMaker stamps whole seconds
        },
        "eventVersion": "0",
    }


def json_batch(texts: list[str]) -> str:
    return json.dumps([{"review_text": text} for text in texts])


def jsonlines_batch(texts: list[str]) -> str:
    return "".join(json.dumps({"text": text}) + "\n" for text in texts)


def csv_batch(texts: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["review_text"])
    writer.writerows([text] for text in texts)
    return out.getvalue()


def write_capture(base: Path, lines: list[str], when: datetime = START) -> Path:
    """One capture file at SageMaker's key layout below the processing input."""
    folder = base / "processing" / "capture" / "sentiment-classifier" / "AllTraffic"
    name = f"{when:%Y/%m/%d/%H}/{when:%M-%S}-{when.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def records_for(invoke: Invoke, texts: list[str], batch: int = 8) -> list[str]:
    """Send texts in batches, rotating through the request formats clients use."""
    shapes = [(JSON, json_batch), (JSONLINES, jsonlines_batch), (CSV, csv_batch)]
    lines = []
    for number, first in enumerate(range(0, len(texts), batch)):
        content_type, shape = shapes[number % len(shapes)]
        when = START + timedelta(seconds=number)
        body = shape(texts[first : first + batch])
        lines.append(json.dumps(capture_record(invoke, body, when, content_type)))
    return lines


def like_training() -> list[str]:
    """The training reviews again, five ways each (case and trailing punctuation): 200 records."""
    texts = [text for text, _ in REVIEWS]
    variants: list[Callable[[str], str]] = [
        str,
        str.capitalize,
        str.upper,
        lambda text: text + "!",
        lambda text: text + ".",
    ]
    return [variant(text) for variant in variants for text in texts]


def shifted(count: int) -> list[str]:
    """Long reviews of words the model never saw, nearly all with a negative cue."""
    rng = random.Random(7)
    reviews = []
    for index in range(count):
        words = rng.choices(UNSEEN_WORDS, k=rng.randint(40, 70))
        cue = "awful" if index % 10 else "great"
        reviews.append(" ".join([*words, cue]))
    return reviews


def read(base: Path, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (base / "processing" / "monitoring" / name).read_text(encoding="utf-8")
    )
    return document


def report(base: Path) -> str:
    return (base / "processing" / "monitoring" / "report.html").read_text(encoding="utf-8")


def assert_statistics_format(statistics: dict[str, Any]) -> None:
    assert statistics["version"] == 0.0
    assert isinstance(statistics["dataset"]["item_count"], int)
    for feature in statistics["features"]:
        assert set(feature) == {"name", "inferred_type", "numerical_statistics"}
        assert feature["inferred_type"] in ("Fractional", "Integral")
        numbers = feature["numerical_statistics"]
        assert set(numbers) == {"common", "mean", "sum", "std_dev", "min", "max", "distribution"}
        assert all(isinstance(numbers[key], float) for key in ("mean", "sum", "std_dev", "min"))
        assert isinstance(numbers["common"]["num_present"], int)
        assert isinstance(numbers["common"]["num_missing"], int)
        kll = numbers["distribution"]["kll"]
        for bucket in kll["buckets"]:
            assert set(bucket) == {"lower_bound", "upper_bound", "count"}
        assert kll["sketch"]["parameters"] == {"c": 0.64, "k": 2048.0}
        assert all(isinstance(level, list) for level in kll["sketch"]["data"])
        assert sum(b["count"] for b in kll["buckets"]) == numbers["common"]["num_present"]


# --- the feature function in inference.py ---------------------------------------------------------


def test_features_count_unigrams_and_unknown_share(model_dir: Path) -> None:
    model = inference.model_fn(str(model_dir))
    texts = ["Great product zzzz qqqq", "!!!", "great great"]
    predictions = inference.score(texts, model)
    table = inference.features(texts, predictions, model)
    assert list(table) == list(FEATURES)
    assert table["review_length"] == [23.0, 3.0, 11.0]
    assert table["token_count"] == [4.0, 0.0, 2.0]
    assert table["oov_rate"] == [0.5, 0.0, 0.0]
    assert table["predicted_label"] == [float(p["label"]) for p in predictions]
    assert table["prediction_score"] == [p["score"] for p in predictions]


def test_features_refuse_unpaired_predictions(model_dir: Path) -> None:
    model = inference.model_fn(str(model_dir))
    with pytest.raises(ValueError, match="2 reviews but 1 predictions"):
        inference.features(["a", "b"], [{"label": 1, "score": 0.9}], model)


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_reviews_are_scored_and_described_a_chunk_at_a_time_with_the_same_columns(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """A million training reviews are described in chunks, so the baseline's memory stays flat;
    the columns are those of the whole batch at once, in order."""
    model = inference.model_fn(str(model_dir))
    texts = [text for text, _ in REVIEWS][:7]
    predictions = inference.score(texts, model)
    whole = inference.features(texts, predictions, model)
    artifact = monitored.Artifact(inference, model)
    monkeypatch.setattr(monitored, "CHUNK_REVIEWS", chunk)
    for table in (artifact.describe(texts), artifact.features(texts, predictions)):
        assert list(table) == list(whole)
        for name, values in whole.items():
            assert table[name].tolist() == values, name
    assert {name: column.size for name, column in artifact.describe([]).items()} == dict.fromkeys(whole, 0)
    with pytest.raises(ValueError, match="7 reviews but 6 predictions"):
        artifact.features(texts, predictions[:6])


# --- the statistics -------------------------------------------------------------------------------


def test_ks_distance_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    base, window = rng.integers(0, 30, 500).astype(float), rng.integers(5, 40, 300).astype(float)
    distance, _ = drift.ks_distance(base, np.ones(base.size), window)
    assert distance == pytest.approx(ks_2samp(base, window).statistic)
    assert drift.ks_distance(base, np.ones(base.size), base.copy())[0] == 0.0


def test_sketch_compacts_large_samples_and_keeps_the_distribution() -> None:
    values = np.random.default_rng(5).normal(size=10_000)
    sketch = formats.kll_sketch(values)
    assert sum(len(level) for level in sketch["data"]) <= 2048
    sample, weights = formats.sketch_sample("x", sketch)
    assert weights.sum() == pytest.approx(values.size, rel=0.01)
    assert drift.ks_distance(sample, weights, values)[0] < 2 / 2048
    small = formats.kll_sketch(np.array([3.0, 1.0, 2.0]))
    assert small["data"] == [[1.0, 2.0, 3.0]]


# --- baseline mode --------------------------------------------------------------------------------


def test_baseline_writes_model_monitor_statistics_and_constraints(baseline_dir: Path) -> None:
    statistics = json.loads((baseline_dir / "statistics.json").read_text(encoding="utf-8"))
    constraints = json.loads((baseline_dir / "constraints.json").read_text(encoding="utf-8"))
    assert_statistics_format(statistics)
    assert statistics["dataset"]["item_count"] == len(REVIEWS)
    assert [f["name"] for f in statistics["features"]] == list(FEATURES)
    types = {f["name"]: f["inferred_type"] for f in statistics["features"]}
    assert types["oov_rate"] == "Fractional" and types["token_count"] == "Integral"
    assert constraints["version"] == 0.0
    for feature in constraints["features"]:
        assert set(feature) == {"name", "inferred_type", "completeness", "num_constraints"}
        assert feature["completeness"] == 1.0
        assert feature["num_constraints"] == {"is_non_negative": True}
    config = constraints["monitoring_config"]
    assert config["distribution_constraints"] == {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
        "categorical_comparison_threshold": 0.1,
        "categorical_drift_method": "LInfinity",
    }
    assert config["evaluate_constraints"] == config["emit_metrics"] == "Enabled"
    assert config["datatype_check_threshold"] == config["domain_content_threshold"] == 1.0
    assert config["min_records"] == 200


def test_baseline_records_given_threshold_and_min_records(tmp_path: Path, model_dir: Path) -> None:
    stage_model(tmp_path, model_dir)
    write_reviews(tmp_path / "processing" / "train" / "train.csv", REVIEWS)
    assert run(tmp_path, "--mode", "baseline", "--threshold", "0.25", "--min-records", "50") == 0
    constraints = json.loads(
        (tmp_path / "processing" / "baseline" / "constraints.json").read_text(encoding="utf-8")
    )
    assert constraints["monitoring_config"]["distribution_constraints"]["comparison_threshold"] == 0.25
    assert constraints["monitoring_config"]["min_records"] == 50


def test_baseline_without_features_in_artifact_fails_clearly(tmp_path: Path, model_dir: Path) -> None:
    old = shutil.copytree(model_dir, tmp_path / "old-model")
    code = (old / "code" / "inference.py").read_text(encoding="utf-8")
    stripped = code[: code.index("def features(")]
    (old / "code" / "inference.py").write_text(stripped, encoding="utf-8")
    stage_model(tmp_path, old)
    write_reviews(tmp_path / "processing" / "train" / "train.csv", REVIEWS)
    assert run(tmp_path, "--mode", "baseline") == 1
    message = (tmp_path / "output" / "message").read_text(encoding="utf-8")
    assert "has no features() function" in message and "retrain" in message


# --- check mode -----------------------------------------------------------------------------------


def test_window_like_training_has_no_violations(
    tmp_path: Path, model_dir: Path, baseline_dir: Path, invoke: Invoke
) -> None:
    base = stage_check(tmp_path, model_dir, baseline_dir)
    write_capture(base, records_for(invoke, like_training()))
    assert run(base, "--mode", "check") == 0
    metrics = read(base, "metrics.json")
    assert metrics["record_count"] == 200
    assert metrics["status"] == "no_drift", metrics
    assert read(base, "constraint_violations.json") == {"violations": []}
    assert set(metrics["features"]) == set(FEATURES)
    assert all(entry["drift_distance"] <= 0.1 for entry in metrics["features"].values())
    statistics = read(base, "statistics.json")
    assert_statistics_format(statistics)
    assert statistics["dataset"]["item_count"] == 200


def test_an_artifact_trained_before_transform_fn_is_read_through_its_old_handler_names(
    tmp_path: Path, model_dir: Path, baseline_dir: Path, invoke: Invoke
) -> None:
    """The endpoint may still serve a model whose inference.py has input_fn and predict_fn."""
    older = shutil.copytree(model_dir, tmp_path / "older-model")
    code = (older / "code" / "inference.py").read_text(encoding="utf-8")
    renamed = code.replace("def read_reviews(", "def input_fn(").replace("def score(", "def predict_fn(")
    (older / "code" / "inference.py").write_text(renamed, encoding="utf-8")
    base = stage_check(tmp_path / "run", older, baseline_dir)
    write_capture(base, records_for(invoke, like_training()))

    assert run(base, "--mode", "check") == 0

    assert read(base, "metrics.json")["record_count"] == 200


def test_shifted_window_raises_drift_violations(
    tmp_path: Path,
    model_dir: Path,
    baseline_dir: Path,
    invoke: Invoke,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = stage_check(tmp_path, model_dir, baseline_dir)
    write_capture(base, records_for(invoke, shifted(240)))
    assert run(base, "--mode", "check", "--endpoint-name", "sentiment-classifier") == 0
    violations = read(base, "constraint_violations.json")["violations"]
    drifted = {v["feature_name"] for v in violations if v["constraint_check_type"] == "baseline_drift_check"}
    assert {"oov_rate", "review_length", "token_count"} <= drifted
    for item in violations:
        assert set(item) == {"feature_name", "constraint_check_type", "description"}
        assert item["constraint_check_type"] == "baseline_drift_check"
        assert DRIFT_WORDING.match(item["description"]), item["description"]
    metrics = read(base, "metrics.json")
    assert metrics["status"] == "drift" and metrics["threshold"] == 0.1
    assert metrics["window"] == {"start": None, "end": None}
    for name in drifted:
        entry = metrics["features"][name]
        assert entry["violation"] is True and entry["drift_distance"] > 0.1
        assert set(entry) == {"drift_distance", "baseline_mean", "window_mean", "drift_checked", "violation"}
        assert entry["drift_checked"] is True
    assert metrics["features"]["oov_rate"]["window_mean"] > 0.9
    page = report(base)
    assert page.count("<svg") >= len(FEATURES)
    assert "http://" not in page and "https://" not in page
    for name in drifted:
        assert f'<tr class="violation"><td>{name}</td>' in page
    assert "Drift:" in capsys.readouterr().out


def test_threshold_argument_overrides_the_baseline(
    tmp_path: Path, model_dir: Path, baseline_dir: Path, invoke: Invoke
) -> None:
    base = stage_check(tmp_path, model_dir, baseline_dir)
    write_capture(base, records_for(invoke, shifted(240)))
    assert run(base, "--mode", "check", "--threshold", "1.0") == 0
    metrics = read(base, "metrics.json")
    assert metrics["status"] == "no_drift" and metrics["threshold"] == 1.0


def edit_constraints(base: Path, edit: Callable[[Constraints], None]) -> None:
    """Change the staged baseline's constraints.json as a user does, with the SageMaker SDK."""
    path = base / "processing" / "baseline" / "constraints.json"
    constraints = Constraints(json.loads(path.read_text(encoding="utf-8")), None)
    edit(constraints)
    path.write_text(json.dumps(constraints.body_dict), encoding="utf-8")


def test_a_feature_disabled_with_the_sagemaker_sdk_raises_nothing_and_publishes_no_drift(
    tmp_path: Path, model_dir: Path, baseline_dir: Path, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Constraints.set_monitoring(False, name) switches one feature off, as in Model Monitor: its
    distance is still shown, but it raises no violation and feeds no alarm."""
    for name, value in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    base = stage_check(tmp_path, model_dir, baseline_dir)
    edit_constraints(base, lambda constraints: constraints.set_monitoring(False, "oov_rate"))
    write_capture(base, records_for(invoke, shifted(240)))
    with mock_aws():
        argv = ["--mode", "check", "--publish-metrics", "--endpoint-name", "sentiment-classifier"]
        assert run(base, *argv) == 0
        listed = boto3.client("cloudwatch").list_metrics(Namespace=NAMESPACE)["Metrics"]
    violations = read(base, "constraint_violations.json")["violations"]
    assert "oov_rate" not in {item["feature_name"] for item in violations}
    assert {"review_length", "token_count"} <= {item["feature_name"] for item in violations}
    entry = read(base, "metrics.json")["features"]["oov_rate"]
    assert entry["drift_distance"] > 0.1 and not entry["violation"] and not entry["drift_checked"]
    assert "oov_rate_drift" not in {metric["MetricName"] for metric in listed}
    assert "review_length_drift" in {metric["MetricName"] for metric in listed}
    page = report(base)
    assert "<td>oov_rate</td>" in page and "not checked (disabled in constraints.json)" in page


@pytest.mark.parametrize(
    "disable",
    [
        pytest.param(lambda constraints: constraints.set_monitoring(False), id="evaluate_constraints"),
        pytest.param(
            lambda constraints: constraints.body_dict["monitoring_config"]["distribution_constraints"]
            .update(perform_comparison="Disabled"),
            id="perform_comparison",
        ),
    ],
)
def test_drift_checks_disabled_in_the_constraints_raise_no_violation(
    tmp_path: Path,
    model_dir: Path,
    baseline_dir: Path,
    invoke: Invoke,
    disable: Callable[[Constraints], None],
) -> None:
    base = stage_check(tmp_path, model_dir, baseline_dir)
    edit_constraints(base, disable)
    write_capture(base, records_for(invoke, shifted(240)))
    assert run(base, "--mode", "check") == 0
    metrics = read(base, "metrics.json")
    assert read(base, "constraint_violations.json") == {"violations": []}
    assert metrics["status"] == "no_drift"
    assert metrics["message"].startswith("No drift: no drift check is enabled")
    assert all(entry["drift_distance"] > 0 for entry in metrics["features"].values())


def test_emit_metrics_disabled_in_the_constraints_publishes_nothing(
    tmp_path: Path, model_dir: Path, baseline_dir: Path, invoke: Invoke,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # monitor.py imports check mode as `monitoring.check`, from the folder it puts on sys.path
    monkeypatch.setattr("monitoring.check.publish_metrics", lambda *args: pytest.fail("published"))
    base = stage_check(tmp_path, model_dir, baseline_dir)
    edit_constraints(base, lambda constraints: constraints.body_dict["monitoring_config"].update(
        emit_metrics="Disabled"))
    write_capture(base, records_for(invoke, shifted(240)))
    assert run(base, "--mode", "check", "--publish-metrics", "--endpoint-name", "ep") == 0
    assert read(base, "metrics.json")["status"] == "drift"
    assert "no metrics published: the baseline's monitoring_config.emit_metrics is Disabled" in (
        capsys.readouterr().out
    )


def test_empty_window_is_no_data(
    tmp_path: Path,
    model_dir: Path,
    baseline_dir: Path,
    invoke: Invoke,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = stage_check(tmp_path, model_dir, baseline_dir)
    write_capture(base, records_for(invoke, like_training()[:16]))
    window = ["--window-start", "2027-01-01T00:00:00Z", "--window-end", "2027-01-02T00:00:00Z"]
    assert run(base, "--mode", "check", *window) == 0
    metrics = read(base, "metrics.json")
    assert metrics["status"] == "no_data" and metrics["record_count"] == 0
    assert metrics["features"] == {}
    assert read(base, "constraint_violations.json") == {"violations": []}
    statistics = read(base, "statistics.json")
    assert statistics["dataset"]["item_count"] == 0 and statistics["features"] == []
    message = "No data: no capture records in the window [2027-01-01T00:00:00.000Z"
    assert message in capsys.readouterr().out
    assert message in report(base)


def test_missing_capture_folder_is_no_data(tmp_path: Path, model_dir: Path, baseline_dir: Path) -> None:
    base = stage_check(tmp_path, model_dir, baseline_dir)
    assert run(base, "--mode", "check") == 0
    assert read(base, "metrics.json")["status"] == "no_data"


def test_small_window_is_not_enough_data(
    tmp_path: Path, model_dir: Path, baseline_dir: Path, invoke: Invoke
) -> None:
    base = stage_check(tmp_path, model_dir, baseline_dir)
    write_capture(base, records_for(invoke, shifted(40)))
    assert run(base, "--mode", "check") == 0
    metrics = read(base, "metrics.json")
    assert metrics["status"] == "not_enough_data" and metrics["record_count"] == 40
    assert "at least 200" in metrics["message"]
    assert read(base, "constraint_violations.json") == {"violations": []}
    assert metrics["features"]["oov_rate"]["drift_distance"] > 0.5
    assert not any(entry["violation"] for entry in metrics["features"].values())
    assert "not judged" in report(base)


def test_min_records_argument_overrides_the_baseline(
    tmp_path: Path, model_dir: Path, baseline_dir: Path, invoke: Invoke
) -> None:
    base = stage_check(tmp_path, model_dir, baseline_dir)
    write_capture(base, records_for(invoke, shifted(40)))
    assert run(base, "--mode", "check", "--min-records", "40") == 0
    assert read(base, "metrics.json")["status"] == "drift"


def test_malformed_lines_are_counted_and_skipped(
    tmp_path: Path, model_dir: Path, baseline_dir: Path, invoke: Invoke
) -> None:
    base = stage_check(tmp_path, model_dir, baseline_dir)
    good = capture_record(invoke, json_batch(["great kettle", "awful kettle"]), START)

    def broken(change: Callable[[Record], None]) -> str:
        record = json.loads(json.dumps(good))
        change(record)
        return json.dumps(record)

    def set_in(path: list[str], value: Any) -> Callable[[Record], None]:
        def change(record: Record) -> None:
            target = record
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value

        return change

    lines = [
        json.dumps(good),
        "{not json",
        "[1, 2]",
        broken(lambda record: record.pop("captureData")),
        broken(lambda record: record["captureData"].pop("endpointOutput")),
        broken(lambda record: record.pop("eventMetadata")),
        broken(set_in(["eventMetadata", "inferenceTime"], "yesterday")),
        broken(set_in(["captureData", "endpointInput", "encoding"], "UTF-16")),
        broken(set_in(["captureData", "endpointInput", "encoding"], "BASE64")),
        broken(set_in(["captureData", "endpointInput", "data"], "[]")),
        broken(set_in(["captureData", "endpointInput", "observedContentType"], "text/plain")),
        broken(set_in(["captureData", "endpointOutput", "data"], '{"predictions": [1]}')),
        broken(set_in(["captureData", "endpointOutput", "data"], '{"predictions": []}')),
        "",
        json.dumps(good),
    ]
    path = write_capture(base, lines)
    with path.open("ab") as handle:
        handle.write(b'{"captureData": "\xff\xfe"}\n')
    assert run(base, "--mode", "check", "--min-records", "1") == 0
    metrics = read(base, "metrics.json")
    assert metrics["malformed_lines"] == 13
    assert metrics["record_count"] == 4
    page = report(base)
    assert "not a JSON line" in page and "no captureData object" in page


def test_batches_expand_to_one_record_per_review(
    tmp_path: Path, model_dir: Path, baseline_dir: Path, invoke: Invoke
) -> None:
    base = stage_check(tmp_path, model_dir, baseline_dir)
    texts = ["great kettle", "awful kettle", "lovely soap, great"]
    lines = [
        capture_record(invoke, json_batch(texts), START),
        capture_record(invoke, json.dumps({"instances": texts[:2]}), START),
        capture_record(invoke, jsonlines_batch(texts), START, JSONLINES, JSONLINES, True),
        capture_record(invoke, csv_batch(texts), START, CSV + "; charset=utf-8"),
        capture_record(invoke, json.dumps("just one review"), START),
    ]
    write_capture(base, [json.dumps(line) for line in lines])
    assert run(base, "--mode", "check", "--min-records", "1") == 0
    metrics = read(base, "metrics.json")
    assert metrics["record_count"] == 12 and metrics["malformed_lines"] == 0
    statistics = read(base, "statistics.json")
    lengths = next(f for f in statistics["features"] if f["name"] == "review_length")
    expected = [len(t) for t in texts * 2 + texts[:2] + texts] + [len("just one review")]
    assert lengths["numerical_statistics"]["sum"] == float(sum(expected))
    assert lengths["numerical_statistics"]["common"]["num_present"] == 12


def test_window_bounds_filter_by_inference_time(
    tmp_path: Path, model_dir: Path, baseline_dir: Path, invoke: Invoke
) -> None:
    base = stage_check(tmp_path, model_dir, baseline_dir)
    times = [START + timedelta(minutes=minutes) for minutes in (-1, 0, 30, 59, 60, 90)]
    write_capture(base, [json.dumps(capture_record(invoke, json.dumps("great kettle"), t)) for t in times])
    window = ["--window-start", "2026-11-22T20:00:00Z", "--window-end", "2026-11-22T21:00:00Z"]
    assert run(base, "--mode", "check", "--min-records", "1", *window) == 0
    metrics = read(base, "metrics.json")
    assert metrics["record_count"] == 3
    assert metrics["window"] == {
        "start": "2026-11-22T20:00:00.000Z",
        "end": "2026-11-22T21:00:00.000Z",
    }
    hours = ["--window-end", "2026-11-22T21:00:00+00:00", "--window-hours", "0.5"]
    assert run(base, "--mode", "check", "--min-records", "1", *hours) == 0
    assert read(base, "metrics.json")["record_count"] == 2


def test_reads_the_local_sagemaker_capture_writer(
    tmp_path: Path, model_dir: Path, baseline_dir: Path, invoke: Invoke
) -> None:
    capture = pytest.importorskip("pipelines.local.hosting.capture")
    base = stage_check(tmp_path, model_dir, baseline_dir)
    root = base / "processing" / "capture"

    class Store:
        def path_for(self, uri: str) -> Path:
            return root / uri.removeprefix("s3://bucket/capture/")

        def bucket_exists(self, name: str) -> bool:
            return name == "bucket"

    writer = capture.CaptureWriter(
        Store(), "s3://bucket/capture", "sentiment-classifier", "AllTraffic", 100, True, True
    )
    for number, (content_type, body) in enumerate(
        [(JSON, json_batch(["great", "awful"])), (CSV, csv_batch(["nice kettle"]))]
    ):
        answer, answer_type = invoke(body.encode(), content_type, JSONLINES)
        when = START + timedelta(seconds=number)
        writer.record(body.encode(), content_type, answer, answer_type, str(number), when)
    writer.close()
    assert run(base, "--mode", "check", "--min-records", "1") == 0
    metrics = read(base, "metrics.json")
    assert (metrics["record_count"], metrics["malformed_lines"]) == (3, 0)


# --- failures and metrics -------------------------------------------------------------------------


def test_missing_baseline_fails_with_message(tmp_path: Path, model_dir: Path) -> None:
    stage_model(tmp_path, model_dir)
    assert run(tmp_path, "--mode", "check") == 1
    message = (tmp_path / "output" / "message").read_text(encoding="utf-8")
    assert "baseline file not found" in message and "statistics.json" in message


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--mode", "drift"], "bad arguments"),
        (["--mode", "check", "--window-start", "soon"], "ISO 8601"),
        (
            ["--mode", "check", "--window-start", "2026-01-02", "--window-end", "2026-01-01"],
            "is not before its end",
        ),
        (["--mode", "check", "--window-start", "2026-01-02", "--window-hours", "1"], "not both"),
        (["--mode", "check", "--threshold", "0"], "--threshold must be in (0, 1]"),
        (["--mode", "check", "--publish-metrics"], "needs --endpoint-name"),
    ],
)
def test_bad_arguments_fail_with_message(
    tmp_path: Path, model_dir: Path, baseline_dir: Path, argv: list[str], expected: str
) -> None:
    base = stage_check(tmp_path, model_dir, baseline_dir)
    assert run(base, *argv) == 1
    assert expected in (base / "output" / "message").read_text(encoding="utf-8")


def test_publish_metrics_puts_drift_distances_to_cloudwatch(
    tmp_path: Path,
    model_dir: Path,
    baseline_dir: Path,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    base = stage_check(tmp_path, model_dir, baseline_dir)
    write_capture(base, records_for(invoke, shifted(240)))
    with mock_aws():
        argv = ["--mode", "check", "--publish-metrics", "--endpoint-name", "sentiment-classifier"]
        assert run(base, *argv) == 0
        listed = boto3.client("cloudwatch").list_metrics(Namespace=NAMESPACE)["Metrics"]
    names = {metric["MetricName"] for metric in listed}
    expected = {f"{feature}_drift" for feature in FEATURES}
    assert names == expected | {"records", "violations", "malformed_lines"}
    for metric in listed:
        assert metric["Dimensions"] == [{"Name": "Endpoint", "Value": "sentiment-classifier"}]


def test_script_runs_standalone(tmp_path: Path, model_dir: Path) -> None:
    """A job gets monitor.py as its code and the library folder in processing/input/lib, nothing
    else."""
    script = shutil.copy(Path(monitor.__file__), tmp_path / "monitor.py")
    base = tmp_path / "ml"
    write_library(base)
    stage_model(base, model_dir)
    write_reviews(base / "processing" / "train" / "train.csv", REVIEWS)
    blocked = "import sys, runpy; sys.modules['steps'] = sys.modules['pipelines'] = None; "
    result = subprocess.run(
        [
            sys.executable,
            "-E",
            "-c",
            blocked + "sys.argv = ['monitor.py', '--mode', 'baseline']; "
            f"runpy.run_path({str(script)!r}, run_name='__main__'); "
            "print(sorted(m for m in sys.modules if m.startswith('monitoring')))",
        ],
        cwd=tmp_path,
        env={"SAGEMAKER_BASE_DIR": str(base), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (base / "processing" / "baseline" / "constraints.json").is_file()
    # Baseline mode loads what the Evaluate step loads for the baseline, and none of check mode.
    assert result.stdout.splitlines()[-1] == (
        "['monitoring', 'monitoring.baseline', 'monitoring.formats', 'monitoring.model']"
    )


def test_a_publish_that_cannot_reach_cloudwatch_says_what_it_needs(
    tmp_path: Path, model_dir: Path, baseline_dir: Path, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a local job with PublishMetrics=true meets it: no region, no credentials."""
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    base = stage_check(tmp_path, model_dir, baseline_dir)
    write_capture(base, records_for(invoke, shifted(240)))
    assert run(base, "--mode", "check", "--publish-metrics", "--endpoint-name", "ep") == 1
    message = (base / "output" / "message").read_text()
    assert message.startswith("publishing the metrics to CloudWatch failed (NoRegionError")
    assert "the local target has no CloudWatch, so leave it false there" in message
