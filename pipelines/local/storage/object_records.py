"""What the store keeps with each version besides its bytes: its ETag, the members it was put with, the
sizes of its parts when it was uploaded in parts, and whether it is a delete marker.

A version's record is a small JSON file beside it (`<version_id>.json`), written before the version
itself is renamed into place, so a reader that finds a version finds its record. The ETag is taken
while the bytes are written, so no read hashes the object again. The members (`ContentType`,
`Metadata`...) are kept as the writer gave them, in S3's names; the server's own writers give none.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

SUFFIX = ".json"
CHUNK_BYTES = 1 << 20  # what a streamed put or get holds in memory at a time


class Readable(Protocol):
    """A body to store, read a chunk at a time (a request's, as it arrives)."""

    def read(self, size: int, /) -> bytes: ...


@dataclass(frozen=True)
class Record:
    # S3's ETag: for an object stored in one part the hex MD5 of its bytes, quoted; for one
    # completed from parts, the MD5 of their MD5s and their count (`"<hex>-3"`)
    etag: str
    members: Mapping[str, Any] = field(default_factory=dict)
    parts: tuple[int, ...] = ()  # the sizes of the parts it was completed from, in order
    delete_marker: bool = False  # a version that says the object was deleted (it has no bytes)
    # The multipart upload it was completed from: a completion retried after a crash between
    # storing the object and recording the completion finds it, rather than storing it again.
    upload_id: str | None = None

    def text(self) -> str:
        document: dict[str, Any] = {"ETag": self.etag, "Members": dict(self.members)}
        if self.parts:
            document["Parts"] = list(self.parts)
        if self.delete_marker:
            document["DeleteMarker"] = True
        if self.upload_id is not None:
            document["UploadId"] = self.upload_id
        return json.dumps(document, sort_keys=True)


def record_path(version: Path) -> Path:
    return version.with_name(version.name + SUFFIX)


def read_record(version: Path) -> Record | None:
    """The version's record; None for a version stored before records were kept."""
    try:
        document = json.loads(record_path(version).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return Record(
        document["ETag"], document["Members"], tuple(document.get("Parts", ())),
        document.get("DeleteMarker", False), document.get("UploadId"),
    )


def quoted(digest: Any) -> str:
    return f'"{digest.hexdigest()}"'


def write_digested(source: Readable, dest: Path) -> Any:
    """Write what `source` yields to `dest` a chunk at a time; the MD5 of the bytes, taken as they pass."""
    digest = hashlib.md5(usedforsecurity=False)
    with dest.open("wb") as out:
        while chunk := source.read(CHUNK_BYTES):
            digest.update(chunk)
            out.write(chunk)
    return digest


def file_etag(path: Path) -> str:
    """The ETag of a file that has no record, read a chunk at a time."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return quoted(digest)


@dataclass(frozen=True)
class FileSpan:
    """`length` bytes of a stored file from `start`, read a chunk at a time as they are sent: an
    answer holds one chunk in memory, never the object. The file is open from the moment the
    answer is made, so a version deleted while it is sent is still sent whole."""

    handle: BinaryIO
    start: int
    length: int

    def __iter__(self) -> Iterator[bytes]:
        with self.handle as handle:
            handle.seek(self.start)
            left = self.length
            while left > 0:
                chunk = handle.read(min(CHUNK_BYTES, left))
                if not chunk:
                    raise OSError(f"{handle.name} ended {left} bytes short of what was described")
                left -= len(chunk)
                yield chunk
