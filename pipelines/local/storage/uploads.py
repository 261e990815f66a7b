"""S3's multipart uploads in progress: the parts a client has sent, kept on disk until the upload is
completed into an object (the object store's `put_stream`) or aborted.

Each upload is a folder `root/<upload id>/` holding `upload.json` (the object it will become: bucket,
key, the members it was created with, its checksum algorithm and type, when it was initiated) and
per part a file of its bytes and a record (`<n>.json`: that file's name, its ETag and checksum).
A part's bytes are written aside (the store's staging folder) and only then, with the upload still
in progress, moved into its folder and its record renamed into place, so a part sent again replaces
the earlier one whole, as S3 replaces it, a restart finds each acknowledged part as it was
acknowledged, and a part arriving as its upload is aborted leaves nothing behind. What changes an
upload's folder (a part put in place, an abort or completion discarding it) and what reads it whole
(the parts listed, a completion's files opened) takes one lock, so a completion reads the very parts
it checked, or is told which was replaced or that the upload is gone.

A completed upload keeps only `completed.json` (its bucket, key, the parts it was completed with and
the answer given) for a day: S3 answers a completion sent again with the same parts as it answered
the first, which is what a client retrying after a lost answer needs, and completions of one upload
are taken one at a time, so two sent at once store the object once.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipelines.local.storage.object_records import Readable, quoted, write_digested

_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{64}")
_DESCRIPTION = "upload.json"
_COMPLETION = "completed.json"
_PART_RECORD = ".json"
# How long a completed upload's answer is given again. S3 documents no such window (its reference
# allows NoSuchUpload for an upload completed earlier); a day outlasts any SDK's retries.
COMPLETION_KEPT_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Upload:
    upload_id: str
    bucket: str
    key: str
    initiated: float  # seconds since the epoch
    members: Mapping[str, Any] = field(default_factory=dict)  # headers and metadata kept for the object
    algorithm: str | None = None  # the checksum algorithm every part is summed with (CRC32...)
    checksum_type: str | None = None  # COMPOSITE or FULL_OBJECT


@dataclass(frozen=True)
class Part:
    number: int
    path: Path
    size: int
    modified: float
    etag: str  # the quoted hex MD5 of the part's bytes
    checksum: str | None  # base64, in the algorithm the part was sent with


@dataclass(frozen=True)
class Completion:
    """What an upload was completed with and what its completion answered."""

    bucket: str
    key: str
    parts: list[list[Any]]  # [part number, ETag without quotes], as the completion listed them
    answer: dict[str, Any]
    completed: float  # seconds since the epoch


class UploadGone(LookupError):
    """The upload was completed or aborted while a request on it was under way."""


class PartReplaced(LookupError):
    """A part a completion checked was sent again before the completion read it."""

    def __init__(self, number: int) -> None:
        super().__init__(number)
        self.number = number


class Uploads:
    def __init__(
        self, root: Path, atomic: Callable[[Path, Callable[[Path], object]], None],
        staging: Callable[[], AbstractContextManager[Path]],
    ) -> None:
        self.root = root
        self._atomic = atomic  # the store's: written aside, then renamed into place
        self._staging = staging  # the store's: a file name aside, removed if still there at the end
        self._lock = threading.Lock()
        self._completing: dict[str, tuple[threading.Lock, int]] = {}  # per upload id: lock, holders

    def create(
        self, bucket: str, key: str, members: Mapping[str, Any], algorithm: str | None,
        checksum_type: str | None,
    ) -> Upload:
        """A new upload with an id of S3's kind: opaque, URL-safe, unguessable."""
        self._forget_completions(lambda completion: not _fresh(completion))
        upload_id = secrets.token_urlsafe(48)
        upload = Upload(upload_id, bucket, key, time.time(), dict(members), algorithm, checksum_type)
        folder = self.root / upload.upload_id
        folder.mkdir(parents=True)
        self._atomic(folder / _DESCRIPTION, lambda dest: dest.write_text(json.dumps(asdict(upload))))
        return upload

    def get(self, upload_id: str) -> Upload | None:
        """The upload in progress with that id; None for any other id, including one that could not
        name a folder here."""
        if not _UPLOAD_ID.fullmatch(upload_id):
            return None
        try:
            document = json.loads((self.root / upload_id / _DESCRIPTION).read_text())
        except FileNotFoundError:
            return None
        return Upload(**document)

    def in_bucket(self, bucket: str) -> list[Upload]:
        """The bucket's uploads in progress, by key and then in the order they were initiated."""
        found = [self.get(folder.name) for folder in self.root.iterdir()] if self.root.is_dir() else []
        return sorted(
            (upload for upload in found if upload is not None and upload.bucket == bucket),
            key=lambda upload: (upload.key, upload.initiated, upload.upload_id),
        )

    def put_part(
        self, upload: Upload, number: int, source: Readable, check: Callable[[], str | None]
    ) -> Part:
        """Write part `number` from `source` a chunk at a time, its MD5 taken on the way; `check` runs
        once it is all on disk, may refuse it by raising (then the earlier part of that number, if
        any, stays), and returns the part's checksum to keep with it."""
        with self._staging() as arriving:
            digest = write_digested(source, arriving)
            checksum = check()
            with self._lock:
                folder = self._in_progress(upload)
                data = folder / f"{number}.{uuid.uuid4().hex}"
                record = folder / f"{number}{_PART_RECORD}"
                kept = {"File": data.name, "ETag": quoted(digest), "Checksum": checksum}
                earlier = self._part(record) if record.exists() else None
                os.replace(arriving, data)
                try:
                    self._atomic(record, lambda dest: dest.write_text(json.dumps(kept)))
                except BaseException:
                    data.unlink(missing_ok=True)
                    raise
                if earlier is not None:
                    earlier.path.unlink(missing_ok=True)
                return self._part(record)

    def parts(self, upload: Upload) -> dict[int, Part]:
        """The upload's parts by number; UploadGone once it is completed or aborted."""
        with self._lock:
            records = self._in_progress(upload).glob(f"[0-9]*{_PART_RECORD}")
            return {part.number: part for part in map(self._part, records)}

    @contextmanager
    def joined(self, upload: Upload, parts: list[Part]) -> Iterator[Readable]:
        """The bytes of `parts`, as a completion checked them, one after another, read a chunk at a
        time, files closed on leaving; UploadGone when the upload was completed or aborted since,
        PartReplaced when one of them was sent again since (its earlier file is gone)."""
        with ExitStack() as files:
            with self._lock:
                self._in_progress(upload)
                handles = []
                for part in parts:
                    try:
                        handles.append(files.enter_context(part.path.open("rb")))
                    except FileNotFoundError:
                        raise PartReplaced(part.number) from None
            yield _Joined(handles)

    def discard(self, upload: Upload) -> None:
        """Forget the upload and its parts (aborted)."""
        with self._lock:
            shutil.rmtree(self.root / upload.upload_id, ignore_errors=True)

    def discard_bucket(self, bucket: str) -> None:
        """Forget the bucket's uploads in progress and its completed ones (the bucket was deleted)."""
        for upload in self.in_bucket(bucket):
            self.discard(upload)
        self._forget_completions(lambda completion: completion.bucket == bucket)

    @contextmanager
    def completing(self, upload_id: str) -> Iterator[None]:
        """Held while a completion of `upload_id` runs: completions of one upload go one at a time."""
        with self._lock:
            lock, holders = self._completing.get(upload_id, (threading.Lock(), 0))
            self._completing[upload_id] = (lock, holders + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, holders = self._completing[upload_id]
                if holders == 1:
                    del self._completing[upload_id]
                else:
                    self._completing[upload_id] = (lock, holders - 1)

    def finish(self, upload: Upload, parts: list[list[Any]], answer: Mapping[str, Any]) -> None:
        """The upload was completed into an object: its parts go, what it was completed with and
        answered stays (`completion`)."""
        completion = Completion(upload.bucket, upload.key, parts, dict(answer), time.time())
        folder = self.root / upload.upload_id
        with self._lock:
            folder.mkdir(parents=True, exist_ok=True)  # aborted while it completed: the object is stored
            self._atomic(folder / _COMPLETION, lambda dest: dest.write_text(json.dumps(asdict(completion))))
            (folder / _DESCRIPTION).unlink(missing_ok=True)  # from here on no longer in progress
            for path in folder.iterdir():
                if path.name != _COMPLETION:
                    path.unlink()

    def completion(self, upload_id: str) -> Completion | None:
        """How the upload with that id was completed, within the day it is kept; None otherwise."""
        if not _UPLOAD_ID.fullmatch(upload_id):
            return None
        completion = _read_completion(self.root / upload_id / _COMPLETION)
        return completion if completion is not None and _fresh(completion) else None

    def _forget_completions(self, forgotten: Callable[[Completion], bool]) -> None:
        """Remove the completed uploads `forgotten` picks, and any whose record cannot be read."""
        for record in self.root.glob(f"*/{_COMPLETION}") if self.root.is_dir() else []:
            completion = _read_completion(record)
            if completion is None or forgotten(completion):
                with self._lock:
                    shutil.rmtree(record.parent, ignore_errors=True)

    def _in_progress(self, upload: Upload) -> Path:
        """The upload's folder, while it is in progress (called under the lock)."""
        folder = self.root / upload.upload_id
        if not (folder / _DESCRIPTION).is_file():
            raise UploadGone(upload.upload_id)
        return folder

    def _part(self, record: Path) -> Part:
        kept = json.loads(record.read_text())
        data = record.with_name(kept["File"])
        stat = data.stat()
        number = int(record.name.removesuffix(_PART_RECORD))
        return Part(number, data, stat.st_size, stat.st_mtime, kept["ETag"], kept["Checksum"])


def _read_completion(record: Path) -> Completion | None:
    """A completed upload's record; None when it is gone (forgotten meanwhile) or unreadable."""
    try:
        return Completion(**json.loads(record.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _fresh(completion: Completion) -> bool:
    return time.time() - completion.completed <= COMPLETION_KEPT_SECONDS


class _Joined:
    def __init__(self, handles: list[Any]) -> None:
        self.handles = handles

    def read(self, size: int, /) -> bytes:
        while self.handles:
            chunk = self.handles[0].read(size)
            if chunk:
                return bytes(chunk)
            self.handles.pop(0)
        return b""
