"""Settings resolve flag > environment > config file > default, and explain what is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    config = write_config(tmp_path, '[pipeline]\nbucktet = "typo"\n')
    with pytest.raises(SettingsError, match="bucktet"):
        load_settings({}, {}, config)
