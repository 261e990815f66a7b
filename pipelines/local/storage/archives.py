"""Unpacking tar.gz archives that come from the store (model artifacts, training source).

One rule for every archive the local SageMaker opens: regular files and folders only. Absolute
names, `..` and links could write (or later read) outside the destination, so an archive holding
any of them is refused whole, before anything is written.
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path, PurePosixPath


class UnsafeArchive(ValueError):
    """The archive cannot be unpacked safely; the message names the member or the problem."""


def _check(member: tarfile.TarInfo) -> None:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        raise UnsafeArchive(f"unsafe path {member.name!r} in archive")
    if not (member.isfile() or member.isdir()):
        raise UnsafeArchive(f"{member.name!r} in archive is not a regular file")


def extract_tar(archive: Path, dest: Path) -> None:
    """Unpack `archive` into `dest` after checking every member."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check(member)
            dest.mkdir(parents=True, exist_ok=True)
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise UnsafeArchive(f"cannot unpack {archive.name} as a tar.gz: {exc}") from None
