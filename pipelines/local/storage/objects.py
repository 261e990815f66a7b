"""The local S3: objects are plain files under one root, and every version is kept.

`s3://bucket/key` lives at `root/<bucket>/<key>` so the state stays inspectable with ordinary tools;
each put also lands in `root/.versions/<bucket>/<key>/<version_id>`, the guarantee of a versioned
bucket that a rerun never destroys an artifact an earlier run registered, with its record (its
ETag and the members it was put with: object_records.py). Writes go through `root/.tmp` and an atomic
rename, so a reader never sees half an object, nor one refused once written.

A bucket is its record (buckets.py), made by CreateBucket; every write into a bucket without one
is refused with NoSuchBucket, whoever writes (the S3 API, a job's upload), as S3 refuses it.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.local.storage.buckets import Bucket, BucketRecords
from pipelines.local.storage.object_records import (
    Readable,
    Record,
    file_etag,
    quoted,
    read_record,
    record_path,
    write_digested,
)
from pipelines.local.storage.uploads import Uploads

SCHEME = "s3://"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_VERSION_ID = re.compile(r"[0-9]{20}-[0-9a-f]{12}")

_Writer = Callable[[Path], object]
MAX_NAME_BYTES = 255  # a file name's limit on Linux file systems
log = logging.getLogger(__name__)
UNVERSIONED = "null"  # S3's version id of an object stored before versioning kept its versions
# What a file name cannot hold as it is, each kept under a name of its own: a key that ends in "/" (a
# folder object, what S3's console makes with "Create folder") is a file of the first name in the
# folder its key names, so that the folder can hold the keys below it too; a part of a key that is
# empty ("a//b", "/a"), "." or "..", a folder or file of the name PART_NAMES gives it, which also
# keeps every key inside its bucket's folder. A key whose name is also the folder of keys below it
# (`a` beside `a/b`) is the file NAMED_AS_FOLDER in that folder. A part longer than a file name (S3
# keeps any part of a key up to 1024 bytes) is kept in pieces, each a folder but the last, with a
# CONTINUED folder between two pieces. No key may have a part named as one of these.
SLASH_ENDED = ".key-ending-in-slash"
NAMED_AS_FOLDER = ".key-named-as-this-folder"
CONTINUED = ".key-part-continued"
PART_NAMES = {"": ".key-part-empty", ".": ".key-part-dot", "..": ".key-part-dot-dot"}
_PARTS = {name: part for part, name in PART_NAMES.items()}
RESERVED_NAMES = frozenset({SLASH_ENDED, NAMED_AS_FOLDER, CONTINUED, *_PARTS})
_PIECE_BYTES = MAX_NAME_BYTES - 3  # a piece may end up to 3 bytes longer, to end on a character


class NoSuchKey(KeyError):
    """The object, or for a prefix every object under it, does not exist; `marker` is the id of
    the delete marker that is its current version, if one is."""

    def __init__(self, uri: str, marker: str | None = None) -> None:
        super().__init__(uri)
        self.uri = uri
        self.marker = marker

    def __str__(self) -> str:
        return f"NoSuchKey: the specified key does not exist: {self.uri}"


class NoSuchBucket(LookupError):
    """The bucket an object is read from or written to does not exist."""

    def __init__(self, uri: str, bucket: str) -> None:
        super().__init__(uri)
        self.uri = uri
        self.bucket = bucket

    def __str__(self) -> str:
        return f"NoSuchBucket: the specified bucket does not exist: {self.bucket} ({self.uri})"


class DeleteMarkerVersion(LookupError):
    """The version asked for is a delete marker: it has no bytes to read."""

    def __init__(self, uri: str, version_id: str, modified: float) -> None:
        super().__init__(uri)
        self.version_id = version_id
        self.modified = modified


class BucketNotEmpty(Exception):
    """A bucket that still holds an object, or a version of one, cannot be deleted."""


@dataclass(frozen=True)
class StoredObject:
    """One version of an object, as S3's GetObject and HeadObject describe it."""

    path: Path
    version_id: str
    size: int
    modified: float  # seconds since the epoch
    etag: str
    members: Mapping[str, Any] = field(default_factory=dict)  # as the writer put it (object_records.py)
    parts: tuple[int, ...] = ()  # the sizes of the parts it was uploaded in; () for one PUT

    @property
    def committed(self) -> float:
        """When this version became current, in seconds since the epoch: its id's stamp; the file's
        time for bytes written in place."""
        return self.modified if self.version_id == UNVERSIONED else _committed_ns(self.version_id) / 1e9


@dataclass(frozen=True)
class VersionEntry:
    """One version of a key as ListObjectVersions lists it: an object's, or a delete marker."""

    key: str
    version_id: str
    is_latest: bool
    modified: float
    delete_marker: bool
    size: int = 0
    etag: str = ""
    members: Mapping[str, Any] = field(default_factory=dict)  # as the writer put it (object_records.py)


def split_uri(uri: str, *, prefix: bool = False) -> tuple[str, str]:
    """Split `s3://bucket/key`, refusing keys that could not map safely onto the file system.

    Object keys must be non-empty. A key with a part named as the store keeps what a file name
    cannot hold (RESERVED_NAMES) is refused; any other is kept (`_key_path`).
    """
    if not uri.startswith(SCHEME):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len(SCHEME) :].partition("/")
    if not _BUCKET.match(bucket):
        raise ValueError(f"invalid bucket name {bucket!r} in {uri!r}")
    if prefix:
        return bucket, key
    if not key:
        raise ValueError(f"no key in {uri!r}")
    parts = key.split("/")
    reserved = RESERVED_NAMES.intersection(parts)
    if reserved:
        raise ValueError(f"invalid key {key!r} in {uri!r}: the store keeps keys it cannot name as files "
                         f"under the name {min(reserved)}")
    return bucket, key


def is_version_id(value: str) -> bool:
    """Whether `value` has the form of an id the store gives a version (or is `null`)."""
    return value == UNVERSIONED or _VERSION_ID.fullmatch(value) is not None


def iter_files(directory: Path) -> list[Path]:
    """Regular files below `directory`, sorted; symlinks are skipped so nothing outside leaks in."""
    return sorted(_files(directory))


def _files(directory: Path) -> Iterator[Path]:
    """Regular files below `directory` as the walk finds them (not symlinks)."""
    for folder, _subdirs, names in os.walk(directory):
        for name in names:
            path = Path(folder, name)
            if path.is_file() and not path.is_symlink():
                yield path


class ObjectStore:
    """S3 semantics (flat keys, prefixes, versions) over a directory tree."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.buckets = BucketRecords(self.root)
        self.uploads = Uploads(self.root / ".uploads", self._atomic, self._staging)
        # One write at a time puts versions and live copies in place (their bytes are written before).
        self._commit = threading.Lock()
        self._last_stamp = 0

    def path_for(self, uri: str) -> Path:
        """Where the current version of the object at `uri` lives (whether or not it exists): its
        key's path, or the NAMED_AS_FOLDER file in it when that path is the folder of other keys."""
        bucket, key = split_uri(uri)
        path = self.root / bucket / _key_path(key)
        return path / NAMED_AS_FOLDER if path.is_dir() else path

    def put_file(self, uri: str, src: Path) -> str:
        """Store a copy of `src` as the new current version; returns its version id."""
        with src.open("rb") as handle:
            return self._put(uri, handle, {}, lambda: None)

    def put_bytes(self, uri: str, data: bytes) -> str:
        """Store `data` as the new current version; returns its version id."""
        return self._put(uri, io.BytesIO(data), {}, lambda: None)

    def put_stream(
        self, uri: str, source: Readable, check: Callable[[], None], members: Mapping[str, Any],
        parts: tuple[int, ...] = (), etag: str | None = None, upload_id: str | None = None,
        condition: Callable[[], None] = lambda: None,
    ) -> str:
        """Store what `source` yields until it ends, one chunk at a time, as the new current version
        put with `members`; returns its version id. `check` runs once it is all on disk and may
        refuse it by raising: then nothing is stored; `condition` likewise, under the commit lock,
        so no other write lands between it and this one. An object completed from parts keeps their
        sizes, the ETag S3 gives it and the upload's id (`completed_from`); any other's ETag is the
        MD5 of its bytes."""
        return self._put(uri, source, members, check, parts, etag, upload_id, condition)

    def completed_from(self, uri: str, upload_id: str, since: float) -> str | None:
        """The version of the object that the multipart upload `upload_id`, created at `since`
        (seconds since the epoch), was completed into, if any: only versions stored since then
        are read, newest first."""
        for version_id in reversed(self.versions(uri)):
            if version_id == UNVERSIONED or _committed_ns(version_id) < since * 1e9:
                return None
            record = read_record(self._version_path(uri, version_id))
            if record is not None and record.upload_id == upload_id:
                return version_id
        return None

    def get_bytes(self, uri: str, version_id: str | None = None) -> bytes:
        """The current version, or the given earlier one."""
        path = self.path_for(uri) if version_id is None else self._version_path(uri, version_id)
        if not path.is_file():
            raise NoSuchKey(uri if version_id is None else f"{uri}?versionId={version_id}")
        return path.read_bytes()

    def describe(self, uri: str, version_id: str | None = None) -> StoredObject:
        """The current version of the object at `uri`, or the given one, with its record; NoSuchKey
        if there is none, ValueError for a URI or version id that cannot name one.

        The current version is read from its version file (the live file jobs and hosting read is
        another name of it), so bytes, ETag and members are one version's even while another is put. An
        object with no versions was written in place (data capture appends to its file): its ETag
        is computed on each read, since its bytes may change. A version stored before records were
        kept gets its ETag computed once, and kept."""
        known = self.versions(uri) if version_id is None else [version_id]
        if not known:
            live = self.path_for(uri)
            if not live.is_file():
                raise NoSuchKey(uri)
            stat = live.stat()
            return StoredObject(live, UNVERSIONED, stat.st_size, stat.st_mtime, file_etag(live))
        path = self._version_path(uri, known[-1])
        if not path.is_file():
            raise NoSuchKey(uri)
        stat = path.stat()
        record = self._record(path)
        if record.delete_marker:
            if version_id is None:
                raise NoSuchKey(uri, marker=known[-1])
            raise DeleteMarkerVersion(uri, version_id, stat.st_mtime)
        return StoredObject(
            path, known[-1], stat.st_size, stat.st_mtime, record.etag, record.members, record.parts
        )

    def bucket(self, name: str) -> Bucket | None:
        """The bucket's record; None for a name no bucket has (or could have)."""
        return self.buckets.get(name) if _BUCKET.fullmatch(name) else None

    def bucket_exists(self, name: str) -> bool:
        return bool(_BUCKET.fullmatch(name)) and self.buckets.exists(name)

    def create_bucket(self, bucket: Bucket) -> None:
        """Make the bucket; BucketExists (buckets.py) if it is there already."""
        if not _BUCKET.fullmatch(bucket.name):
            raise ValueError(f"invalid bucket name {bucket.name!r}")
        self.buckets.create(bucket)
        (self.root / bucket.name).mkdir(parents=True, exist_ok=True)

    def delete_bucket(self, name: str) -> None:
        """Delete an existing bucket that holds nothing: no object and no version of one (folders
        left empty and multipart uploads in progress do not count: they go with it); BucketNotEmpty
        otherwise. A put still arriving then finds no bucket when it commits."""
        folders = [self.root / name, self.root / ".versions" / name]
        with self._commit:
            if any(next(_files(folder), None) for folder in folders):  # stops at the first file
                raise BucketNotEmpty(name)
            self.buckets.delete(name)
            for folder in folders:
                shutil.rmtree(folder, ignore_errors=True)
        self.uploads.discard_bucket(name)  # S3 deletes a bucket's uploads in progress with it

    def adopt_folders(self, region: str) -> None:
        """Give each bucket folder of a store kept before buckets had records one, dated by the
        folder: its objects were written when any write made a bucket."""
        if self.root.is_dir() and not self.buckets.folder.is_dir():
            for folder in sorted(self.root.iterdir()):
                if folder.is_dir() and _BUCKET.fullmatch(folder.name):
                    self.buckets.create(Bucket(folder.name, region, folder.stat().st_mtime))
            self.buckets.folder.mkdir(parents=True, exist_ok=True)

    def exists(self, uri: str) -> bool:
        """Whether an object (not a mere prefix) exists at `uri`."""
        return self.path_for(uri).is_file()

    def list(self, prefix_uri: str) -> list[str]:
        """URIs of all objects whose key starts with the prefix (plain string match, as S3 does)."""
        bucket, prefix = split_uri(prefix_uri, prefix=True)
        return [f"{SCHEME}{bucket}/{key}" for key in self.keys(bucket, prefix)]

    def versions(self, uri: str) -> builtins.list[str]:
        """Version ids of the object, delete markers included, oldest first (empty if it was never
        written, or only ever written in place); `null`, the bytes it held in place before it was
        deleted, comes first."""
        folder = self._versions_dir(uri)
        if not folder.is_dir():
            return []
        with os.scandir(folder) as entries:
            return _ordered_versions([entry.name for entry in entries if entry.is_file()])

    def delete(self, uri: str, condition: Callable[[], None] = lambda: None) -> str:
        """S3's DeleteObject in a versioned bucket: a delete marker becomes the current version (the
        object is gone from reads and listings, every version kept); returns the marker's id. Bytes
        written in place are kept as the `null` version first. `condition` runs under the commit
        lock first and may refuse the delete by raising."""
        with self._commit:
            self._require_bucket(uri, split_uri(uri)[0])
            live = self.path_for(uri)
            condition()
            if live.is_file() and not self.versions(uri):
                self._atomic(self._version_path(uri, UNVERSIONED), lambda dest: shutil.copyfile(live, dest))
            version_id = self._new_version_id()
            marker = self._version_path(uri, version_id)
            self._keep_record(marker, Record("", {}, (), delete_marker=True))
            self._atomic(marker, lambda dest: dest.write_bytes(b""))
            self._remove_live(live)
        return version_id

    def delete_version(self, uri: str, version_id: str) -> bool | None:
        """S3's DeleteObject of one version: gone for good, and when it was the current one the
        version before it becomes current. Whether it was a delete marker; None if there was no such
        version (S3 answers that as a deletion too)."""
        with self._commit:
            self._require_bucket(uri, split_uri(uri)[0])
            return self._delete_version(uri, version_id)

    def _delete_version(self, uri: str, version_id: str) -> bool | None:
        path = self._version_path(uri, version_id)
        known = self.versions(uri)
        live = self.path_for(uri)
        if not known and version_id == UNVERSIONED and live.is_file():  # written in place only
            self._remove_live(live)
            return False
        if version_id not in known:
            return None
        record = read_record(path)
        path.unlink(missing_ok=True)
        record_path(path).unlink(missing_ok=True)
        if known[-1] == version_id:
            self._restore_live(uri, known[:-1])
        return bool(record and record.delete_marker)

    def version_entries(self, bucket: str, prefix: str) -> builtins.list[VersionEntry]:
        """Every version of every key starting with `prefix`, by key, newest first within a key;
        an object written in place and never deleted is its `null` version."""
        versioned = self._versioned_keys(bucket, prefix)
        entries = []
        keys = sorted({*versioned, *self.keys(bucket, prefix)})
        for key in keys:
            uri = f"{SCHEME}{bucket}/{key}"
            ids = self.versions(uri) if key in versioned else []
            if not ids:  # written in place, never deleted
                live = self.path_for(uri)
                stat = live.stat()
                entries.append(
                    VersionEntry(key, UNVERSIONED, True, stat.st_mtime, False, stat.st_size, file_etag(live))
                )
                continue
            for position, version_id in enumerate(reversed(ids)):
                entries.append(self._entry(uri, key, version_id, position == 0))
        return entries

    def _versioned_keys(self, bucket: str, prefix: str) -> set[str]:
        """Keys starting with `prefix` that have versions: their folders under `.versions` hold them."""
        root = self.root / ".versions" / bucket
        start = _prefix_folder(root, prefix)
        found = set()
        for folder, _subdirs, names in os.walk(start):
            if _ordered_versions(names):
                key = _path_key(Path(folder).relative_to(root).as_posix())
                if key.startswith(prefix):
                    found.add(key)
        return found

    def _entry(self, uri: str, key: str, version_id: str, latest: bool) -> VersionEntry:
        path = self._version_path(uri, version_id)
        stat = path.stat()
        record = self._record(path)
        if record.delete_marker:
            return VersionEntry(key, version_id, latest, stat.st_mtime, True)
        return VersionEntry(
            key, version_id, latest, stat.st_mtime, False, stat.st_size, record.etag, record.members
        )

    def _restore_live(self, uri: str, remaining: builtins.list[str]) -> None:
        """The live file made the last of `remaining` (the versions left after the current one went,
        or all of them for a repair), or removed when that is a delete marker or there is none."""
        previous = self._version_path(uri, remaining[-1]) if remaining else None
        record = read_record(previous) if previous is not None else None
        if previous is None or (record is not None and record.delete_marker):
            self._remove_live(self.path_for(uri))
            if not remaining:  # its folder may hold the versions of the keys below it too
                with contextlib.suppress(OSError):
                    self._versions_dir(uri).rmdir()
            return
        self._link_live(previous, self._placed(uri))

    def repair_live_files(self) -> int:
        """After a crash between a write's two renames (its version's, then its live file's), the
        live file of a key can be an older version, or linger behind a delete marker: make every
        versioned key's live file its current version again. Returns how many were repaired."""
        repaired = 0
        versions_root = self.root / ".versions"
        for folder, _subdirs, names in os.walk(versions_root):
            ids = _ordered_versions(names)
            if not ids:
                continue  # no versions here: not a key's folder
            uri = SCHEME + _path_key(Path(folder).relative_to(versions_root).as_posix())
            if _same_file(str(self.path_for(uri)), os.path.join(folder, ids[-1])):
                continue  # the live file is the current version: nothing to repair
            with self._commit:
                repaired += self._repair_live_file(uri)
        if repaired:
            log.info("made %d live object files their current version again", repaired)
        return repaired

    def _repair_live_file(self, uri: str) -> bool:
        """Whether the key's live file was not its current version's, and was made so again."""
        known = self.versions(uri)
        current = self._version_path(uri, known[-1])
        live = self.path_for(uri)
        record = read_record(current)
        if record is not None and record.delete_marker:
            right = not live.is_file()
        else:
            right = _same_file(str(live), str(current))
        if right:
            return False
        try:
            self._restore_live(uri, known)
        except OSError as error:  # a folder where the key's file should be: left for a write to refuse
            log.warning("cannot make the live file of %s its current version: %s", uri, error)
            return False
        return True

    def _remove_live(self, live: Path) -> None:
        """Remove an object's live file and the folders it leaves empty, up to its bucket's, so that
        the key's prefix can be an object's name again."""
        live.unlink(missing_ok=True)
        bucket_dir = self.root / live.relative_to(self.root).parts[0]
        for folder in live.parents:
            if folder == bucket_dir or not folder.is_relative_to(bucket_dir):
                break
            try:
                folder.rmdir()
            except OSError:  # not empty
                break

    def download(self, uri: str, dest_dir: Path) -> builtins.list[Path]:
        """Copy objects into `dest_dir` the way SageMaker stages an S3Prefix input: every object
        whose key starts with the prefix (a plain string match, as S3 lists them, so `p/data` also
        takes `p/data-2.csv`). An object below the prefix taken as a folder (`p/data/...`) keeps its
        path relative to that folder; any other (the prefix itself as a key, or a key the prefix
        names only in part) keeps its path relative to the prefix's own folder: its full name.
        """
        bucket, key = split_uri(uri, prefix=True)
        self._require_bucket(uri, bucket)
        keys = self.keys(bucket, key)
        if not keys:
            raise NoSuchKey(uri)
        folder = key if key.endswith("/") or not key else key + "/"
        parent = key.rpartition("/")[0] + "/" if "/" in key else ""

        staged = []
        for k in keys:
            object_uri = f"{SCHEME}{bucket}/{k}"
            relative = k[len(folder) :] if k.startswith(folder) else k[len(parent) :]
            named = relative.split("/")[:-1] if relative.endswith("/") else relative.split("/")
            if relative and any(part in PART_NAMES for part in named):
                raise ValueError(f"{object_uri} cannot be staged as a file: its path below the prefix has "
                                 "an empty, '.' or '..' part")
            if any(len(part.encode()) > MAX_NAME_BYTES for part in named):
                raise ValueError(f"{object_uri} cannot be staged as a file: a part of its path below the "
                                 f"prefix is over a file name's {MAX_NAME_BYTES} bytes")
            staged.append(_copy(self.path_for(object_uri), Path(dest_dir, relative), object_uri))
        return staged

    def upload_dir(self, src_dir: Path, prefix_uri: str) -> builtins.list[str]:
        """Put each regular file under `src_dir` at `<prefix>/<relative path>`; returns the URIs.
        The bucket must exist even when there is nothing to put."""
        self._require_bucket(prefix_uri, split_uri(prefix_uri, prefix=True)[0])
        base = prefix_uri.rstrip("/")
        uris = []
        for path in iter_files(Path(src_dir)):
            uri = f"{base}/{path.relative_to(src_dir).as_posix()}"
            self.put_file(uri, path)
            uris.append(uri)
        return uris

    def _put(
        self, uri: str, source: Readable, members: Mapping[str, Any], check: Callable[[], None],
        parts: tuple[int, ...] = (), etag: str | None = None, upload_id: str | None = None,
        condition: Callable[[], None] = lambda: None,
    ) -> str:
        """The bytes are written aside first, however long the body takes; then, under the commit
        lock, the version gets its id, its record and its place, and the live file becomes that
        version's file. So the put that finishes last is the current version for every reader, and
        a delete never lands between a version and its live file."""
        self._require_bucket(uri, split_uri(uri)[0])
        with self._staging() as version_bytes:
            digest = write_digested(source, version_bytes)
            check()
            with self._commit:
                self._require_bucket(uri, split_uri(uri)[0])  # not deleted while the body arrived
                condition()
                live = self._placed(uri)
                version_id = self._new_version_id()
                version = self._version_path(uri, version_id)
                record = Record(etag or quoted(digest), members, parts, upload_id=upload_id)
                self._keep_record(version, record)
                version.parent.mkdir(parents=True, exist_ok=True)
                os.replace(version_bytes, version)
                self._link_live(version, live)
        return version_id

    def _link_live(self, version: Path, live: Path) -> None:
        """Make the live file a second name of the version's file: nothing is copied, and whether
        the live file is the current version is one `samefile` away (`repair_live_files`). A file
        system without hard links gets a copy."""
        self._atomic(live, lambda name: _linked(version, name))

    def _placed(self, uri: str) -> Path:
        """The object's live path, once its folders are folders: an object whose file stands where
        one of them goes (`a`, for `a/b`) moves into it as its NAMED_AS_FOLDER file. Under the
        commit lock."""
        bucket, key = split_uri(uri)
        bucket_dir = self.root / bucket
        for folder in reversed((bucket_dir / _key_path(key)).parents):
            if folder.is_relative_to(bucket_dir) and folder != bucket_dir and folder.is_file():
                with self._staging() as temporary:
                    os.replace(folder, temporary)
                    folder.mkdir()
                    os.replace(temporary, folder / NAMED_AS_FOLDER)
        return self.path_for(uri)

    def _require_bucket(self, uri: str, bucket: str) -> None:
        if not self.bucket_exists(bucket):
            raise NoSuchBucket(uri, bucket)

    def _record(self, version: Path) -> Record:
        """A version's record; one stored before records were kept gets its ETag computed once, and kept."""
        return read_record(version) or self._keep_record(version, Record(file_etag(version)))

    def _keep_record(self, version: Path, record: Record) -> Record:
        self._atomic(record_path(version), lambda dest: dest.write_text(record.text(), encoding="utf-8"))
        return record

    def _atomic(self, dest: Path, write: _Writer) -> None:
        with self._staging() as temporary:
            write(temporary)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temporary, dest)

    @contextmanager
    def _staging(self) -> Iterator[Path]:
        """A file name beside the store's folders, to write before renaming into place; removed
        if it is still there at the end."""
        staging = self.root / ".tmp"
        staging.mkdir(parents=True, exist_ok=True)
        temporary = staging / uuid.uuid4().hex
        try:
            yield temporary
        finally:
            temporary.unlink(missing_ok=True)

    def _new_version_id(self) -> str:
        """Ids sort in commit order (taken under the commit lock): a strictly rising clock, plus
        randomness across processes."""
        self._last_stamp = max(time.time_ns(), self._last_stamp + 1)
        return f"{self._last_stamp:020d}-{uuid.uuid4().hex[:12]}"

    def _versions_dir(self, uri: str) -> Path:
        bucket, key = split_uri(uri)
        return self.root / ".versions" / bucket / _key_path(key)

    def _version_path(self, uri: str, version_id: str) -> Path:
        if not is_version_id(version_id):
            raise ValueError(f"invalid version id {version_id!r}")
        return self._versions_dir(uri) / version_id

    def keys(self, bucket: str, prefix: str) -> builtins.list[str]:
        """Sorted keys starting with `prefix`, walking only the folder the prefix points into."""
        bucket_dir = self.root / bucket
        start = _prefix_folder(bucket_dir, prefix)
        if not start.is_dir():
            return []
        keys = (_path_key(path.relative_to(bucket_dir).as_posix()) for path in iter_files(start))
        return sorted(key for key in keys if key.startswith(prefix))


def _key_path(key: str) -> str:
    """Where `key` is kept, relative to its bucket's folder (and to its versions folder): its parts
    as folders and file, each empty, `.` or `..` part under its PART_NAMES name, each part over a file
    name's bytes in pieces (`_part_path`), and a key ending in `/` as the SLASH_ENDED file in the
    folder it names."""
    parts = key.split("/")
    if key.endswith("/"):
        parts[-1] = SLASH_ENDED
    return _joined(parts)


def _path_key(path: str) -> str:
    """The key kept at `path` (POSIX, relative to its bucket's folder): _key_path's inverse."""
    parts: builtins.list[str] = []
    continued = False
    for name in path.split("/"):
        if name == CONTINUED:
            continued = True
        elif continued:
            parts[-1] += name
            continued = False
        else:
            parts.append(_PARTS.get(name, name))
    if parts[-1] == SLASH_ENDED:
        parts[-1] = ""
    elif parts[-1] == NAMED_AS_FOLDER:
        parts.pop()
    return "/".join(parts)


def _prefix_folder(base: Path, prefix: str) -> Path:
    """The folder under `base` that holds every key a prefix can match: the one its folder part
    names, each part as `_key_path` names it."""
    folder = prefix.rpartition("/")[0]
    return base / _joined(folder.split("/")) if folder else base


def _joined(parts: builtins.list[str]) -> str:
    return "/".join(_part_path(part) for part in parts)


def _part_path(part: str) -> str:
    """The names that keep one part of a key: itself, its PART_NAMES name, or, over a file name's
    bytes, its pieces with CONTINUED between them."""
    if part in PART_NAMES:
        return PART_NAMES[part]
    encoded = part.encode()
    if len(encoded) <= MAX_NAME_BYTES:
        return part
    return f"/{CONTINUED}/".join(piece.decode() for piece in _pieces(encoded))


def _pieces(encoded: bytes) -> builtins.list[bytes]:
    """UTF-8 bytes cut into pieces of near-equal size, each a file name's at most, on character
    boundaries: each piece holds over a hundred bytes, so none is empty, `.`, `..` or a reserved name."""
    count = -(-len(encoded) // _PIECE_BYTES)
    pieces, start = [], 0
    for index in range(1, count + 1):
        end = len(encoded) * index // count
        while end < len(encoded) and encoded[end] & 0xC0 == 0x80:  # a character's continuation byte
            end -= 1
        pieces.append(encoded[start:end])
        start = end
    return pieces


def _committed_ns(version_id: str) -> int:
    """When a version was committed, in nanoseconds since the epoch: the stamp `_new_version_id`
    begins its ids with."""
    return int(version_id.partition("-")[0])


def _ordered_versions(file_names: builtins.list[str]) -> builtins.list[str]:
    """The version ids among the file names of a key's versions folder, oldest first; `null`, the
    bytes it held in place before it was first deleted, first of all."""
    ids = sorted(name for name in file_names if _VERSION_ID.fullmatch(name))
    return [UNVERSIONED, *ids] if UNVERSIONED in file_names else ids


def _same_file(one: str, other: str) -> bool:
    """Whether both names are one file; False when either is missing or cannot be one."""
    try:
        return os.path.samefile(one, other)
    except OSError:
        return False


def _linked(source: Path, name: Path) -> None:
    """`name` made a second name of `source`; a copy on a file system without hard links."""
    try:
        os.link(source, name)
    except OSError:
        shutil.copyfile(source, name)


def _copy(src: Path, dest: Path, uri: str) -> Path:
    """`src` (the object at `uri`) copied to `dest`; a key ending in `/` (`dest` then names a
    folder) is staged as that folder, made with nothing in it. Files cannot hold what S3 can, a key
    beside the keys below it (`a` and `a/b`): the second of them staged is a ValueError."""
    try:
        if src.name == SLASH_ENDED:
            dest.mkdir(parents=True, exist_ok=True)
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    except (FileExistsError, NotADirectoryError, IsADirectoryError):
        raise ValueError(f"{uri} cannot be staged as a file: another key staged with it is a file where "
                         "it needs a folder, or a folder where it is a file") from None
    return dest
