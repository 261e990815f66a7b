"""Settings resolve flag > environment > config file > default, and explain what is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines import settings as settings_module
from pipelines.settings import SettingsError, load_settings


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pipeline.toml"
    path.write_text(text)
    return path


def test_precedence_flag_over_environment_over_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[pipeline]\nbucket = "from-file"\nprefix = "file-prefix"\n')
    environ = {"PIPELINE_BUCKET": "from-env"}
    assert load_settings({}, environ, config).bucket == "from-env"
    assert load_settings({"bucket": "from-flag"}, environ, config).bucket == "from-flag"
    assert load_settings({}, environ, config).prefix == "file-prefix"
    assert load_settings({}, {}, tmp_path / "absent.toml").prefix == "sentiment-classifier"


def test_local_target_is_the_default_and_needs_nothing(tmp_path: Path) -> None:
    settings = load_settings({}, {}, tmp_path / "absent.toml")
    assert settings.is_local
    assert settings.bucket and settings.role_arn
    assert settings.approval_status == "Approved"
    settings.require_aws()


def test_sagemaker_target_names_the_missing_settings(tmp_path: Path) -> None:
    settings = load_settings({"target": "sagemaker"}, {}, tmp_path / "absent.toml")
    assert settings.approval_status == "PendingManualApproval"
    with pytest.raises(SettingsError, match=r"PIPELINE_BUCKET.*PIPELINE_ROLE_ARN"):
        settings.require_aws()


def test_account_comes_from_the_role(tmp_path: Path) -> None:
    settings = load_settings(
        {"target": "sagemaker", "role_arn": "arn:aws:iam::123456789012:role/x", "bucket": "b"},
        {}, tmp_path / "absent.toml",
    )
    assert settings.deploy_function_arn == (
        "arn:aws:lambda:us-east-1:123456789012:function:sentiment-classifier-deploy"
    )


def test_bad_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="target"):
        load_settings({"target": "cloud"}, {}, tmp_path / "absent.toml")
    with pytest.raises(SettingsError, match="local_port"):
        load_settings({}, {"PIPELINE_LOCAL_PORT": "eighty"}, tmp_path / "absent.toml")
    for name, value, bounds in (("LOCAL_PORT", "70000", "from 0 to 65535"),  # was bind()'s OverflowError
                                ("ENDPOINT_INSTANCE_COUNT", "0", "at least 1"),
                                ("CAPTURE_PERCENTAGE", "101", "from 0 to 100")):
        with pytest.raises(SettingsError, match=f"{name.lower()} must be {bounds}, got {value}"):
            load_settings({}, {f"PIPELINE_{name}": value}, tmp_path / "absent.toml")
    config = write_config(tmp_path, '[pipeline]\nbucktet = "typo"\n')
    with pytest.raises(SettingsError, match="bucktet"):
        load_settings({}, {}, config)


def test_a_config_file_named_but_not_there_is_refused_not_replaced_by_the_defaults(tmp_path: Path) -> None:
    """A mistyped PIPELINE_CONFIG read as no file ran on the defaults: the local target, not AWS."""
    config = write_config(tmp_path, '[pipeline]\ntarget = "sagemaker"\n')
    assert load_settings({}, {"PIPELINE_CONFIG": str(config)}).target == "sagemaker"
    typo = tmp_path / "pipline.toml"
    with pytest.raises(SettingsError) as refused:
        load_settings({}, {"PIPELINE_CONFIG": str(typo)})
    assert str(refused.value) == f"PIPELINE_CONFIG names {typo}, which is not a file (set it empty for none)"


def test_an_empty_config_setting_reads_no_file_not_even_the_repositorys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings_module, "REPO_ROOT", tmp_path)
    write_config(tmp_path, '[pipeline]\nprefix = "from-the-repository"\n')
    assert load_settings({}, {}).prefix == "from-the-repository"
    assert load_settings({}, {"PIPELINE_CONFIG": ""}).prefix == "sentiment-classifier"
