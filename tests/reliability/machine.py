"""Faults of the machine for the reliability tests: a small tmpfs that fills up, a read-only view of
a folder, an SQLite database locked by another process, and a tar bomb.

Mounting needs root (CI runs as root); elsewhere the tests that need it skip and say why.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

FILL_CHUNK = 64 * 1024
LOCK_LIMIT_SECONDS = 120  # a lock holder never outlives this, whatever the test does

# Takes the database's write lock (as `sqlite3 state.db 'BEGIN EXCLUSIVE'` would), says so, holds
# it for the given seconds, then commits and prints when it let go (time.time()).
LOCK_HOLDER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("LOCKED", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
print("RELEASED", time.time(), flush=True)
"""


def _mount(*args: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs or a read-only view needs root (CI runs the tests as root)")
    done = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"this machine does not allow `mount {' '.join(args)}`: {done.stderr.strip()}")


def _unmount(path: Path) -> None:
    subprocess.run(["umount", "--lazy", str(path)], capture_output=True, timeout=30, check=False)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (as mount takes it: 8m, 64m) mounted at `path` for the block."""
    path.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path))
    try:
        yield path
    finally:
        _unmount(path)


@contextlib.contextmanager
def read_only_view(source: Path, view: Path) -> Iterator[Path]:
    """`source` seen read-only at `view` (a bind mount), as a read-only state directory."""
    view.mkdir(parents=True, exist_ok=True)
    _mount("--bind", str(source), str(view))
    try:
        _mount("-o", "remount,bind,ro", str(view))
        yield view
    finally:
        _unmount(view)


def fill(folder: Path) -> Path:
    """Write zeros to `folder/filler` until the disk is full; returns the filler to delete."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as handle:
        with contextlib.suppress(OSError):
            while True:
                handle.write(bytes(FILL_CHUNK))
        with contextlib.suppress(OSError):
            while True:  # the last pages, a byte at a time
                handle.write(b"\0")
    return filler


class LockHolder:
    """Another process holding the database's write lock for `seconds`."""

    def __init__(self, database: Path, seconds: float) -> None:
        assert seconds < LOCK_LIMIT_SECONDS
        self.process = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(database), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        assert line == "LOCKED", line

    def released_at(self) -> float:
        """Wait (bounded) for the holder to let go; when it did, by the wall clock."""
        assert self.process.stdout is not None
        self.process.wait(LOCK_LIMIT_SECONDS)
        line = self.process.stdout.readline().split()
        assert line[:1] == ["RELEASED"], line
        return float(line[1])

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        if self.process.stdout:
            self.process.stdout.close()


def tar_bomb(path: Path, unpacked_bytes: int, member: str = "model.joblib") -> Path:
    """A model.tar.gz of about unpacked_bytes / 1000 whose one member unpacks to unpacked_bytes of
    zeros, made in milliseconds: gzip members can be concatenated, so one compressed MiB of zeros is
    written as often as needed."""
    assert unpacked_bytes % (1 << 20) == 0
    info = tarfile.TarInfo(member)
    info.size = unpacked_bytes
    info.mtime = int(time.time())
    mebibyte = gzip.compress(bytes(1 << 20))
    with path.open("wb") as out:
        out.write(gzip.compress(info.tobuf(tarfile.GNU_FORMAT)))
        for _ in range(unpacked_bytes >> 20):
            out.write(mebibyte)
        out.write(gzip.compress(bytes(2 * tarfile.BLOCKSIZE)))  # the end-of-archive blocks
    return path
