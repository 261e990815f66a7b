"""The SageMaker target's settings and a moto S3 bucket, for tests of the code paths that call S3
on AWS; tests/conftest.py makes its fixtures available to every test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipelines.settings import Settings, load_settings

BUCKET, REGION = "project-bucket", "us-east-1"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The SageMaker target with this bucket, whatever pipeline.toml or PIPELINE_* a developer has."""
    return load_settings({"target": "sagemaker", "bucket": BUCKET, "region": REGION},
                         environ={}, config_file=tmp_path / "absent.toml")


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A moto S3 client whose bucket exists; moto's own fake credentials, never a developer's."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        yield client
