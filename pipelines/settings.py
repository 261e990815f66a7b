"""Project settings, resolved once: CLI flag > environment > project config file > default.

Every command reads the same `Settings`, so the pipeline definition, the CLI and the local
SageMaker agree on names, bucket and target without passing a dozen flags around.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pipelines import REPO_ROOT
from pipelines.local.system.identity import ACCOUNT

Target = Literal["local", "sagemaker"]

CONFIG_FILE_NAME = "pipeline.toml"
ENV_PREFIX = "PIPELINE_"


class SettingsError(Exception):
    """A setting is missing or invalid; the message says what to set, in one line."""


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know about where and what to run."""

    target: Target = "local"
    region: str = "us-east-1"
    bucket: str = ""
    prefix: str = "sentiment-classifier"
    role_arn: str = ""
    pipeline_name: str = "sentiment-classifier"
    model_package_group: str = "sentiment-classifier"
    endpoint_name: str = "sentiment-classifier"
    deploy_function_name: str = "sentiment-classifier-deploy"
    deploy_function_role_arn: str = ""
    schedule_role_arn: str = ""
    sklearn_version: str = "1.9-0"
    processing_instance_type: str = "ml.m5.large"
    training_instance_type: str = "ml.m5.large"
    endpoint_instance_type: str = "ml.m5.large"
    # The endpoint's size and capture, whoever deploys: the pipeline's defaults and the deploy
    # function's settings for approvals (the infra stack's EndpointInstanceCount, CapturePercentage).
    endpoint_instance_count: int = 1
    capture_percentage: int = 100
    model_approval_status: str = ""
    state_dir: str = ""
    local_port: int = 0

    @property
    def is_local(self) -> bool:
        return self.target == "local"

    @property
    def account(self) -> str:
        """The account in ARNs: parsed from the role on AWS, a fixed fake one locally."""
        parts = self.role_arn.split(":")
        return parts[4] if len(parts) > 4 and parts[4] else ACCOUNT

    @property
    def approval_status(self) -> str:
        """Locally models deploy at once; on AWS a person approves them first."""
        if self.model_approval_status:
            return self.model_approval_status
        return "Approved" if self.is_local else "PendingManualApproval"

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir) if self.state_dir else REPO_ROOT / ".local-sagemaker"

    def s3_uri(self, *parts: str) -> str:
        """An S3 URI under the project prefix of the bucket."""
        key = "/".join(p.strip("/") for p in (self.prefix, *parts) if p)
        return f"s3://{self.bucket}/{key}"

    @property
    def data_uri(self) -> str:
        return self.s3_uri("data")

    @property
    def monitoring_pipeline_name(self) -> str:
        return f"{self.pipeline_name}-monitor"

    def monitoring_output_uri(self, endpoint: str, execution_id: str) -> str:
        """Where one monitoring run writes statistics, violations, metrics and report.html."""
        return self.s3_uri("monitoring", endpoint, execution_id)

    @property
    def deploy_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.deploy_function_name}"

    def require_aws(self) -> None:
        """Fail with a one-line hint when the SageMaker target lacks what it cannot guess."""
        if self.is_local:
            return
        missing = [name for name in ("bucket", "role_arn") if not getattr(self, name)]
        if missing:
            hints = ", ".join(f"{ENV_PREFIX}{name.upper()}" for name in missing)
            raise SettingsError(
                f"target 'sagemaker' needs {' and '.join(missing)}: set {hints}, "
                f"or add them to {CONFIG_FILE_NAME} (see README, 'Run on SageMaker')"
            )


FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
# Whole-number settings' bounds: what SageMaker accepts as InitialInstanceCount and
# InitialSamplingPercentage (the stack's parameters have the same), and a TCP port (0: any free one).
RANGES = {"endpoint_instance_count": (1, None), "capture_percentage": (0, 100), "local_port": (0, 65535)}


def _local_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """Fill in what the local target can invent: a bucket name and the roles."""
    if values.get("target", "local") != "local":
        return values
    values.setdefault("bucket", "local-sagemaker")
    values.setdefault("role_arn", f"arn:aws:iam::{ACCOUNT}:role/local-sagemaker")
    values.setdefault("deploy_function_role_arn", values["role_arn"])
    values.setdefault("schedule_role_arn", values["role_arn"])
    return values


def _named_config_file(environ: Mapping[str, str]) -> Path | None:
    """The file PIPELINE_CONFIG names, which must be there: a mistyped path would otherwise fall
    back to the defaults, the local target among them, and a run meant for AWS would run here.
    Set empty, no file is read; unset, the repository's pipeline.toml, if there is one."""
    named = environ.get(f"{ENV_PREFIX}CONFIG")
    if named is None:
        return REPO_ROOT / CONFIG_FILE_NAME
    if not named:
        return None
    if not Path(named).is_file():
        raise SettingsError(f"{ENV_PREFIX}CONFIG names {named}, which is not a file (set it empty for none)")
    return Path(named)


def _read_config_file(path: Path | None) -> dict[str, Any]:
    if path is None or not path.is_file():
        return {}
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    section = data.get("pipeline", data)
    unknown = sorted(set(section) - set(FIELDS))
    if unknown:
        raise SettingsError(f"{path}: unknown setting(s) {', '.join(unknown)}")
    return dict(section)


def _read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in FIELDS:
        env_name = f"{ENV_PREFIX}{name.upper()}"
        if environ.get(env_name):
            values[name] = environ[env_name]
    if "region" not in values:
        region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
        if region:
            values["region"] = region
    return values


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    coerced: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        if FIELDS[name].type in ("int", int):
            try:
                coerced[name] = int(value)
            except (TypeError, ValueError):
                raise SettingsError(
                    f"setting {name} must be a whole number, got {value!r}"
                ) from None
        else:
            coerced[name] = str(value)
    if coerced.get("target", "local") not in ("local", "sagemaker"):
        raise SettingsError(f"target must be 'local' or 'sagemaker', got {coerced['target']!r}")
    for name, (low, high) in RANGES.items():
        value = coerced.get(name)
        if value is not None and (value < low or (high is not None and value > high)):
            bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise SettingsError(f"setting {name} must be {bounds}, got {value}")
    return coerced


def load_settings(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge the four sources, highest first: flags, environment, config file, defaults."""
    environ = os.environ if environ is None else environ
    values = _read_config_file(config_file if config_file is not None else _named_config_file(environ))
    values.update(_read_environment(environ))
    values.update({k: v for k, v in (flags or {}).items() if v is not None and k in FIELDS})
    return Settings(**_local_defaults(_coerce(values)))
