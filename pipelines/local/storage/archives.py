"""Unpacking tar.gz archives that come from the store (model artifacts, training source), or
reading named files of one.

One rule for every archive the local SageMaker opens: regular files and folders only. Absolute
names, `..` and links could write (or later read) outside the destination, so an archive holding
any of them is refused whole, before anything is written.

An archive is also refused before anything is written when it would unpack to more than
`max_bytes` or more than `max_members` entries, or to more than the free space of the disk: a
small archive of zeros can unpack to gigabytes (a "tar bomb"), and a full disk would stop the whole
local SageMaker, not only the job or endpoint that asked. The sizes in the tar headers are exactly
what extraction writes, so they are counted from the headers, as they are read. Unpacking goes to a
temporary sibling of the destination that is renamed into place only when complete, so a failure
(even a disk that fills meanwhile) leaves no partial files.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Collection
from pathlib import Path, PurePosixPath

MAX_UNPACKED_BYTES = 512 * 1024 * 1024
MAX_MEMBERS = 10_000
BLOCK_BYTES = 4096  # the least a file or folder takes on disk
# What a damaged archive raises while it is read: a truncated gzip stream ends in EOFError.
UNREADABLE = (tarfile.TarError, EOFError, zlib.error, OSError)


class UnsafeArchive(ValueError):
    """The archive cannot be unpacked safely; the message names the member or the problem."""


def _check(member: tarfile.TarInfo) -> None:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        raise UnsafeArchive(f"unsafe path {member.name!r} in archive")
    if not (member.isfile() or member.isdir()):
        raise UnsafeArchive(f"{member.name!r} in archive is not a regular file")


def _members(tar: tarfile.TarFile, name: str, max_bytes: int, max_members: int) -> list[tarfile.TarInfo]:
    """Every member, checked, reading headers only as far as the limits allow."""
    members: list[tarfile.TarInfo] = []
    total = 0
    for member in tar:
        _check(member)
        members.append(member)
        total += member.size
        if len(members) > max_members:
            raise UnsafeArchive(f"{name} holds more than {max_members} files and folders, the limit")
        if total > max_bytes:
            raise UnsafeArchive(f"{name} unpacks to more than {max_bytes} bytes, the limit")
    return members


def _check_space(folder: Path, members: list[tarfile.TarInfo], name: str) -> None:
    needed = sum(member.size + BLOCK_BYTES for member in members)
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise UnsafeArchive(
            f"No space left on device: {name} needs {needed} bytes unpacked, {free} bytes are free"
        )


def extract_tar(
    archive: Path,
    dest: Path,
    *,
    max_bytes: int = MAX_UNPACKED_BYTES,
    max_members: int = MAX_MEMBERS,
) -> None:
    """Unpack `archive` as `dest` (absent or an empty folder), all or nothing."""
    staging: Path | None = None
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = _members(tar, archive.name, max_bytes, max_members)
            dest.parent.mkdir(parents=True, exist_ok=True)
            _check_space(dest.parent, members, archive.name)
            staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
            tar.extractall(staging, members=members, filter="data")
        if dest.is_dir():
            dest.rmdir()  # only an empty one: a folder with files in it is an error below
        os.replace(staging, dest)
    except UNREADABLE as exc:
        raise UnsafeArchive(f"cannot unpack {archive.name} as a tar.gz: {exc}") from None
    finally:
        if staging is not None and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def read_members(
    archive: Path,
    names: Collection[str],
    *,
    max_bytes: int = MAX_UNPACKED_BYTES,
    max_members: int = MAX_MEMBERS,
) -> dict[str, bytes]:
    """The regular files among `names` at the top of `archive` (a leading `./` aside), by name, read
    in one pass that checks the whole archive as extract_tar does."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in _members(tar, archive.name, max_bytes, max_members):
                name = member.name.removeprefix("./")
                readable = tar.extractfile(member) if member.isfile() and name in names else None
                if readable is not None:
                    found[name] = readable.read()
    except UNREADABLE as exc:
        raise UnsafeArchive(f"cannot read {archive.name} as a tar.gz: {exc}") from None
    return found
