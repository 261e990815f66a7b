"""Check a model.tar.gz against the digest its model package records.

The digest inside the artifact (metadata.json) only guards against corruption: whoever can replace
model.tar.gz can replace it too. The pipeline's Evaluate step hashes the very tarball it scored, and
RegisterModel records that SHA-256 in the model package (`CustomerMetadataProperties`, key
`ModelDataSha256`), which the artifact's writer cannot change. Deploying and hosting check the
object against it before anything in it is used. Standard library only: it ships in the deploy
Lambda's zip beside deploy.py and in the Processing jobs' library folder (evaluate.py hashes the
model.tar.gz it scores with it), and local hosting imports it as `steps.integrity`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

DIGEST_KEY = "ModelDataSha256"
CHUNK_BYTES = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ModelDataMismatch(RuntimeError):
    """The model data is not the one the model package was registered with."""


def sha256_chunks(chunks: Iterable[bytes]) -> str:
    """Hex SHA-256 of a stream, read a chunk at a time (a model can be large)."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def expected_digest(package: Mapping[str, Any]) -> str:
    """The registered SHA-256 of a DescribeModelPackage response; refuses a package without one."""
    name = package.get("ModelPackageArn") or package.get("ModelPackageName") or "the model package"
    return registered_digest(str((package.get("CustomerMetadataProperties") or {}).get(DIGEST_KEY, "")), name)


def registered_digest(value: str, name: str) -> str:
    """A registered ModelDataSha256 value, normalised; refuses a missing or malformed one, naming
    the package (`name`) that records it."""
    value = value.strip().lower()
    if not value:
        raise ModelDataMismatch(
            f"{name} records no {DIGEST_KEY} in its CustomerMetadataProperties, so its model data "
            "cannot be verified; register the model again with the current pipeline"
        )
    if not _SHA256.fullmatch(value):
        raise ModelDataMismatch(f"{name} records {DIGEST_KEY}={value!r}, which is not a SHA-256 hex digest")
    return value


def check_digest(actual: str, expected: str, where: str) -> None:
    """Raise ModelDataMismatch, naming both digests, unless they are equal."""
    if actual != expected.strip().lower():
        raise ModelDataMismatch(
            f"the model data at {where} has SHA-256 {actual}, but its model package records "
            f"{DIGEST_KEY}={expected}: it was changed after the model was evaluated and registered; "
            "refusing to serve it"
        )


def sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return sha256_chunks(iter(lambda: handle.read(CHUNK_BYTES), b""))


def verify_model_data(path: Path, expected_sha256: str) -> None:
    """Check a local model.tar.gz against the registered digest; raises ModelDataMismatch."""
    if not path.is_file():
        raise ModelDataMismatch(f"the model data {path} does not exist")
    check_digest(sha256_file(path), expected_sha256, str(path))
