"""integrity.py: a model.tar.gz is checked against the digest its model package registered."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from steps import integrity

PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/sentiment-classifier/4"


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_matching_model_data_passes(tmp_path: Path) -> None:
    data = bytes(range(256)) * 10_000  # several read chunks
    archive = write(tmp_path / "model.tar.gz", data)
    integrity.verify_model_data(archive, hashlib.sha256(data).hexdigest())
    integrity.verify_model_data(archive, hashlib.sha256(data).hexdigest().upper())


def test_replaced_model_data_is_refused_naming_both_digests(tmp_path: Path) -> None:
    registered = hashlib.sha256(b"the evaluated model").hexdigest()
    archive = write(tmp_path / "model.tar.gz", b"a replacement")
    with pytest.raises(integrity.ModelDataMismatch) as caught:
        integrity.verify_model_data(archive, registered)
    message = str(caught.value)
    assert str(archive) in message and registered in message
    assert hashlib.sha256(b"a replacement").hexdigest() in message
    assert "refusing to serve it" in message


def test_missing_model_data_is_refused(tmp_path: Path) -> None:
    with pytest.raises(integrity.ModelDataMismatch, match="does not exist"):
        integrity.verify_model_data(tmp_path / "model.tar.gz", "0" * 64)


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        pytest.param(None, "records no ModelDataSha256", id="no-properties"),
        pytest.param({}, "records no ModelDataSha256", id="no-key"),
        pytest.param({"ModelDataSha256": " "}, "records no ModelDataSha256", id="blank"),
        pytest.param({"ModelDataSha256": "md5:abc"}, "not a SHA-256 hex digest", id="not-hex"),
    ],
)
def test_expected_digest_refuses_a_package_without_a_usable_one(
    properties: dict[str, str] | None, message: str
) -> None:
    package = {"ModelPackageArn": PACKAGE, "CustomerMetadataProperties": properties}
    with pytest.raises(integrity.ModelDataMismatch, match=message) as caught:
        integrity.expected_digest(package)
    assert PACKAGE in str(caught.value)


def test_expected_digest_reads_the_registered_value() -> None:
    digest = "AB" * 32
    package = {"ModelPackageArn": PACKAGE, "CustomerMetadataProperties": {"ModelDataSha256": digest}}
    assert integrity.expected_digest(package) == digest.lower()
