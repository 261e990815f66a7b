"""Which code a local SageMaker server runs: a digest of its own source, so that a client can tell a
server started before the checkout changed (a `git pull`, a branch switch) from one running the
code in front of it."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import pipelines

PACKAGE = Path(pipelines.__file__).resolve().parent


@functools.cache
def source_digest() -> str:
    """Sixteen hex digits of SHA-256 over the server's modules (pipelines/local and the package's
    __init__), their paths and contents, in a fixed order."""
    digest = hashlib.sha256()
    for path in sorted([PACKAGE / "__init__.py", *(PACKAGE / "local").rglob("*.py")]):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
