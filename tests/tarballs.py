"""tar.gz archives built in memory, for tests that need a model artifact or a source archive."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping


def tar_gz(files: Mapping[str, bytes]) -> bytes:
    """A tar.gz holding each name with its bytes, in the given order."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()
