"""Bad datasets (tests/data/bad/): each is rejected by Preprocess with its file, line and problem,
alone (the script as a subprocess) and through the local pipeline, where nothing gets registered
and the endpoint keeps serving the previous model. Odd but valid datasets are accepted.

tests/data/bad/cases.json is the manifest: `rejected` cases are folders that break exactly one
file; `generated` cases are built at test time (a 10 MiB line is not worth committing);
`accepted` cases must pass and clean to the given row counts.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipelines.local.executor.engine import EXECUTION_FAILURE

from .support import DATA_DIR, REPO_ROOT, Local

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad"
MANIFEST: dict[str, Any] = json.loads((CORPUS / "cases.json").read_text(encoding="utf-8"))
REJECTED: dict[str, dict[str, Any]] = {**MANIFEST["rejected"], **MANIFEST["generated"]}
ACCEPTED: dict[str, dict[str, Any]] = MANIFEST["accepted"]
FILES = ("train.csv", "test.csv")
PREPROCESS = REPO_ROOT / "steps" / "preprocess.py"
RUN_TIMEOUT = 120.0

def params(names: list[str]) -> list[Any]:
    return [
        pytest.param(name, id=name)
        for name in names
    ]


def build_long_line(spec: dict[str, Any], folder: Path) -> Path:
    """data/ with one line of train.csv replaced by a single review of review_bytes bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DATA_DIR / "test.csv", folder / "test.csv")
    lines = (DATA_DIR / "train.csv").read_bytes().splitlines(keepends=True)
    number = spec["replace_line"]
    ending = lines[number - 1][len(lines[number - 1].rstrip(b"\r\n")) :]
    words = b"lorem ipsum dolor sit amet "
    review = (words * (spec["review_bytes"] // len(words) + 1))[: spec["review_bytes"]]
    lines[number - 1] = b'"' + review + b'",1' + ending
    (folder / "train.csv").write_bytes(b"".join(lines))
    return folder


def materialise(name: str, scratch: Path) -> Path:
    """The folder holding the case's train.csv and test.csv."""
    if name in MANIFEST["generated"]:
        return build_long_line(MANIFEST["generated"][name]["build"], scratch / name)
    return CORPUS / name


def stage(folder: Path, base: Path) -> Path:
    """Lay the two files out as the Processing job's input channel."""
    data = base / "processing" / "input" / "data"
    data.mkdir(parents=True)
    for name in FILES:
        shutil.copyfile(folder / name, data / name)
    return base


def prepare(name: str, base: Path) -> Path:
    """The case laid out as a Processing job's input (a generated case is built in place)."""
    if name in MANIFEST["generated"]:
        build_long_line(MANIFEST["generated"][name]["build"], base / "processing" / "input" / "data")
        return base
    return stage(CORPUS / name, base)


def run_preprocess(base: Path) -> subprocess.CompletedProcess[str]:
    """The script alone, as a Processing job runs it."""
    return subprocess.run(
        [sys.executable, str(PREPROCESS)],
        env={**os.environ, "SAGEMAKER_BASE_DIR": str(base)},
        cwd=base,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def assert_names_file_line_and_problem(message: str, case: dict[str, Any]) -> None:
    """The one problem line names the broken file, its line (when one is at fault), the problem
    and not the other file."""
    assert len(message.splitlines()) == 1, message
    assert message.startswith(f"{case['file']}: "), message
    other = FILES[1 - FILES.index(case["file"])]
    assert other not in message, message
    if case["line"] is None:
        assert not re.search(r"\bline \d", message), message
    else:
        assert re.search(rf"\bline {case['line']}\b", message), message
    assert case["problem"] in message, message


def read_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


@pytest.fixture(scope="module")
def clean_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """What preprocess writes for the repository's own (good) data."""
    base = stage(DATA_DIR, tmp_path_factory.mktemp("good") / "ml")
    result = run_preprocess(base)
    assert result.returncode == 0, result.stderr
    return {split: (base / "processing" / split / f"{split}.csv").read_bytes() for split in ("train", "test")}


# --- the corpus itself ----------------------------------------------------------------------


def test_corpus_covers_the_required_cases_and_matches_its_manifest() -> None:
    required_rejected = {
        "missing-column",
        "renamed-column",
        "empty-file",
        "header-only",
        "label-2",
        "label-minus-1",
        "label-pos",
        "missing-text",
        "whitespace-text",
        "not-utf8",
        "one-class",
        "repeated-header",
        "long-line",
        "semicolon-delimiter",
    }
    assert required_rejected <= set(REJECTED)
    assert {"bom", "crlf", "quoted-newlines"} <= set(ACCEPTED)
    assert len(REJECTED) >= 12
    folders = {p.name for p in CORPUS.iterdir() if p.is_dir()}
    assert folders == set(MANIFEST["rejected"]) | set(ACCEPTED)
    assert not set(MANIFEST["generated"]) & folders
    for name in folders:
        assert sorted(p.name for p in (CORPUS / name).iterdir()) == sorted(FILES), name
    for name, case in REJECTED.items():
        assert case["file"] in FILES and case["problem"], name
        assert case["line"] is None or case["line"] >= 1, name


def test_generated_long_line_is_one_ten_megabyte_review(tmp_path: Path) -> None:
    case = MANIFEST["generated"]["long-line"]
    folder = materialise("long-line", tmp_path)
    lines = (folder / "train.csv").read_bytes().splitlines()
    assert len(lines[case["line"] - 1]) >= case["build"]["review_bytes"]
    assert len(lines) == len((DATA_DIR / "train.csv").read_bytes().splitlines())


# --- (a) fast: the script alone ----------------------------------------------------------------


@pytest.mark.parametrize("name", params(sorted(REJECTED)))
def test_preprocess_rejects_bad_dataset_naming_file_line_and_problem(name: str, tmp_path: Path) -> None:
    case = REJECTED[name]
    base = prepare(name, tmp_path / "ml")
    result = run_preprocess(base)
    assert result.returncode == 1, (result.stdout[-2000:], result.stderr[-2000:])
    message = (base / "output" / "message").read_text(encoding="utf-8")
    assert_names_file_line_and_problem(message, case)
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    for split in ("train", "test"):
        assert not (base / "processing" / split).exists(), f"{split} output written for bad data"


def test_long_review_message_states_its_real_length(tmp_path: Path) -> None:
    base = prepare("long-line", tmp_path / "ml")
    result = run_preprocess(base)
    assert result.returncode == 1
    message = (base / "output" / "message").read_text(encoding="utf-8")
    found = re.search(r"review_text is ([\d,]+) characters long", message)
    assert found, message
    assert int(found.group(1).replace(",", "")) > 10_000_000


@pytest.mark.parametrize("name", params(sorted(ACCEPTED)))
def test_preprocess_accepts_odd_but_valid_dataset(
    name: str, tmp_path: Path, clean_data: dict[str, bytes]
) -> None:
    case = ACCEPTED[name]
    base = stage(CORPUS / name, tmp_path / "ml")
    result = run_preprocess(base)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not (base / "output" / "message").exists()
    for split in ("train", "test"):
        path = base / "processing" / split / f"{split}.csv"
        raw = path.read_bytes()
        assert not raw.startswith(b"\xef\xbb\xbf") and b"\r" not in raw
        rows = read_rows(path)
        assert rows[0] == ["review_text", "sentiment"]
        assert len(rows) - 1 == case["rows"][split]
        for text, label in rows[1:]:
            assert label in ("0", "1")
            assert text == " ".join(text.split()) and text and "\ufeff" not in text
        if case["same_as_data"]:
            assert raw == clean_data[split], f"{split}.csv cleans differently from data/"


# --- (b) end to end: every bad case through the local pipeline ------------------------------


class BadRuns:
    """All bad cases uploaded and run once against a deployed local SageMaker."""

    def __init__(self) -> None:
        self.before: dict[str, Any] = {}
        self.after: dict[str, Any] = {}
        self.executions: dict[str, dict[str, Any]] = {}
        self.steps: dict[str, dict[str, dict[str, Any]]] = {}
        self.waited: dict[str, Any] = {}


@pytest.fixture(scope="module")
def bad_runs(local: Local, tmp_path_factory: pytest.TempPathFactory) -> BadRuns:
    runs = BadRuns()
    endpoint = local.in_service() or {}
    assert endpoint, "the endpoint must be serving before the bad runs"
    runs.before = {"packages": len(local.packages()), "config": endpoint["EndpointConfigName"]}
    scratch = tmp_path_factory.mktemp("bad-data")
    arns: dict[str, str] = {}
    names = sorted(REJECTED)
    for name in names:
        uri = f"s3://local-sagemaker/bad/{name}"
        upload = local.cli("data", "upload", str(materialise(name, scratch)), "--to", uri)
        assert upload.code == 0, upload.err
    # One run followed by the CLI as a user would (--wait); the rest started together.
    first = local.cli(
        "start",
        "--input-data",
        f"s3://local-sagemaker/bad/{names[0]}",
        "--wait",
        "--timeout",
        str(RUN_TIMEOUT),
    )
    runs.waited = {"code": first.code, "out": first.out}
    for name in names:
        if name == names[0]:
            found = re.search(r"^started (\S+)$", first.out, re.MULTILINE)
        else:
            started = local.cli("start", "--input-data", f"s3://local-sagemaker/bad/{name}")
            assert started.code == 0, started.err
            found = re.search(r"^started (\S+)$", started.out, re.MULTILINE)
        assert found, f"no execution ARN printed for {name}"
        arns[name] = found.group(1)
    finals = local.wait_for_executions(list(arns.values()), timeout=300)
    for name, arn in arns.items():
        runs.executions[name] = finals[arn]
        runs.steps[name] = local.steps(arn)
    endpoint = local.endpoint()
    runs.after = {
        "packages": len(local.packages()),
        "config": endpoint["EndpointConfigName"],
        "status": endpoint["EndpointStatus"],
    }
    return runs


@pytest.mark.e2e
@pytest.mark.parametrize("name", params(sorted(REJECTED)))
def test_pipeline_fails_at_preprocess_with_the_problem_as_failure_reason(
    bad_runs: BadRuns, name: str
) -> None:
    execution, steps = bad_runs.executions[name], bad_runs.steps[name]
    assert execution["PipelineExecutionStatus"] == "Failed"
    assert set(steps) == {"Preprocess"}, "a step after Preprocess ran on bad data"
    preprocess = steps["Preprocess"]
    assert preprocess["StepStatus"] == "Failed"
    # SageMaker's one sentence for the step; what preprocess.py said is its job's ExitMessage
    assert preprocess["FailureReason"] == "AlgorithmError: See job logs for more information"
    assert_names_file_line_and_problem(preprocess["ExitMessage"], REJECTED[name])
    # SageMaker's one sentence for the execution; which step failed, and why, is the step's reason
    assert execution["FailureReason"] == EXECUTION_FAILURE


@pytest.mark.e2e
def test_bad_runs_register_nothing_and_the_endpoint_keeps_serving(bad_runs: BadRuns, local: Local) -> None:
    assert bad_runs.waited["code"] == 1, bad_runs.waited["out"][-2000:]
    assert "Preprocess" in bad_runs.waited["out"] and "Failed" in bad_runs.waited["out"]
    assert bad_runs.after["packages"] == bad_runs.before["packages"]
    assert bad_runs.after["config"] == bad_runs.before["config"]
    assert bad_runs.after["status"] == "InService"
    assert local.invoke("great value, works perfectly")["label"] == 1
    assert local.invoke("broke after two days, a complete waste of money")["label"] == 0
