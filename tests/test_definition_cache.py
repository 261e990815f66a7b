"""The definition cache: a hit only when every input of the build is unchanged, and no SDK on a hit."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pipelines import REPO_ROOT, definition_cache
from pipelines.code_bundle import STEPS_DIR, CodeBundle
from pipelines.definition_cache import Definitions, cache_key, definitions
from pipelines.sdk_env import prepare_sdk_environment
from pipelines.settings import Settings

SETTINGS = Settings(bucket="bucket", role_arn="arn:aws:iam::123456789012:role/r")


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """Stands in for the SDK build: records each build and returns a definition naming it."""
    made: list[Settings] = []

    def build(settings: Settings, bundle: CodeBundle) -> Definitions:
        made.append(settings)
        return Definitions(f'{{"build": {len(made)}}}', f'{{"monitor": {len(made)}}}')

    monkeypatch.setattr(definition_cache, "build", build)
    return made


def test_an_unchanged_build_is_served_from_the_cache(tmp_path: Path, builds: list[Settings]) -> None:
    first = definitions(SETTINGS, CodeBundle(), tmp_path)
    again = definitions(SETTINGS, CodeBundle(), tmp_path)
    assert again == first == Definitions('{"build": 1}', '{"monitor": 1}')
    assert len(builds) == 1


def test_a_build_is_announced_and_a_hit_is_not(tmp_path: Path, builds: list[Settings]) -> None:
    said: list[str] = []
    definitions(SETTINGS, CodeBundle(), tmp_path, say=said.append)
    definitions(SETTINGS, CodeBundle(), tmp_path, say=said.append)
    assert said == [definition_cache.BUILDING_MESSAGE] and len(builds) == 1


def test_other_settings_build_afresh(tmp_path: Path, builds: list[Settings]) -> None:
    definitions(SETTINGS, CodeBundle(), tmp_path)
    other = definitions(replace(SETTINGS, endpoint_name="other"), CodeBundle(), tmp_path)
    assert other.training == '{"build": 2}' and len(builds) == 2


def test_where_the_local_server_runs_is_no_part_of_the_key_nor_of_the_definitions() -> None:
    elsewhere = replace(SETTINGS, state_dir="/elsewhere/state", local_port=4567)
    assert cache_key(elsewhere, CodeBundle()) == cache_key(SETTINGS, CodeBundle())
    assert definition_cache.build(elsewhere, CodeBundle()) == definition_cache.build(SETTINGS, CodeBundle())


def test_changed_step_code_changes_the_key(tmp_path: Path) -> None:
    steps = tmp_path / "steps"
    shutil.copytree(STEPS_DIR, steps, ignore=shutil.ignore_patterns("__pycache__"))
    before = cache_key(SETTINGS, CodeBundle(steps))
    (steps / "train.py").write_text((steps / "train.py").read_text() + "\n# changed\n")
    assert cache_key(SETTINGS, CodeBundle(steps)) != before


def test_changed_package_source_changes_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "pipelines"
    ignored = shutil.ignore_patterns("__pycache__", "local")
    shutil.copytree(definition_cache.PACKAGE_DIR, package, ignore=ignored)
    monkeypatch.setattr(definition_cache, "PACKAGE_DIR", package)
    before = cache_key(SETTINGS, CodeBundle())
    (package / "definition.py").write_text((package / "definition.py").read_text() + "\n# changed\n")
    assert cache_key(SETTINGS, CodeBundle()) != before


def test_the_sdk_version_and_its_config_file_change_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(config))
    keys = {cache_key(SETTINGS, CodeBundle())}
    config.write_text("SageMaker:\n  PythonSDK:\n    Modules:\n      Session:\n        DefaultS3Bucket: b\n")
    keys.add(cache_key(SETTINGS, CodeBundle()))
    monkeypatch.setattr(definition_cache, "_distribution_fingerprint", lambda name: "another release")
    keys.add(cache_key(SETTINGS, CodeBundle()))
    assert len(keys) == 3


def test_credentials_stay_out_of_the_key_and_other_aws_settings_do_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = cache_key(SETTINGS, CodeBundle())
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "rotated")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "rotated")
    assert cache_key(SETTINGS, CodeBundle()) == before
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert cache_key(SETTINGS, CodeBundle()) != before


def test_a_damaged_entry_is_rebuilt(tmp_path: Path, builds: list[Settings]) -> None:
    definitions(SETTINGS, CodeBundle(), tmp_path)
    (entry,) = tmp_path.glob("*.json")
    entry.write_text('{"training": ')
    assert definitions(SETTINGS, CodeBundle(), tmp_path).training == '{"build": 2}'
    assert json.loads(entry.read_text())["training"] == '{"build": 2}'


def test_old_entries_are_pruned(tmp_path: Path, builds: list[Settings]) -> None:
    for number in range(definition_cache.KEPT + 3):
        definitions(replace(SETTINGS, prefix=f"p{number}"), CodeBundle(), tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == definition_cache.KEPT


def as_run_builds(cache_dir: Path) -> tuple[dict[str, Any], bool]:
    """In a fresh process, as `run` does: the build started in the background, then the definitions
    taken; (the training definition, whether the process loaded the SageMaker SDK)."""
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from pipelines.code_bundle import CodeBundle\n"
        "from pipelines.definition_cache import build_in_background, definitions\n"
        "from pipelines.settings import Settings\n"
        f"settings = Settings(bucket='bucket', role_arn={SETTINGS.role_arn!r})\n"
        f"build_in_background(settings, CodeBundle(), Path({str(cache_dir)!r}))\n"
        f"found = definitions(settings, CodeBundle(), Path({str(cache_dir)!r}))\n"
        "loaded = any(name.startswith('sagemaker') for name in sys.modules)\n"
        "print(json.dumps([json.loads(found.training), loaded]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                          check=True, timeout=300)
    training, sdk_loaded = json.loads(done.stdout.splitlines()[-1])
    return training, sdk_loaded


def test_a_hit_does_not_load_the_sagemaker_sdk(tmp_path: Path) -> None:
    key = cache_key(SETTINGS, CodeBundle())
    (tmp_path / f"{key}.json").write_text(json.dumps({"training": '{"T": 1}', "monitoring": "M"}))
    assert as_run_builds(tmp_path) == ({"T": 1}, False)


def test_a_miss_is_built_in_a_child_process_and_kept(tmp_path: Path) -> None:
    """`run` builds in the background without loading the SDK itself: it follows the execution
    without the SDK's memory, and the next run finds the entry."""
    training, sdk_loaded = as_run_builds(tmp_path)
    assert [step["Name"] for step in training["Steps"]][:2] == ["Preprocess", "Train"]
    assert sdk_loaded is False
    assert [entry.name for entry in tmp_path.glob("*.json")] == [f"{cache_key(SETTINGS, CodeBundle())}.json"]


def test_loading_the_sdk_does_not_change_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's environment defaults are set when it loads, perhaps on a thread mid-command; a
    key taken before and one taken after must agree, or every run would miss."""
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "SAGEMAKER_VALIDATE_ROLE"):
        monkeypatch.setenv(name, "recorded")  # so the undo also removes what the SDK sets below
        monkeypatch.delenv(name)
    before = cache_key(SETTINGS, CodeBundle())
    prepare_sdk_environment()
    assert cache_key(SETTINGS, CodeBundle()) == before
