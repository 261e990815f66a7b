"""Folders SageMaker uploads while the job runs: a processing output whose `S3UploadMode` is
`Continuous`, a training job's checkpoints (`CheckpointConfig`) and its TensorBoard output.

A look every SYNC_SECONDS uploads each file that is as it was at the look before (size and
modification time) and not as it was last uploaded: a file still being written is not whole yet,
and one written again is uploaded again (a new version in a versioned bucket). So a failed, stopped
or killed job leaves in S3 what it wrote, and an observer sees a checkpoint in S3 while the job
runs, as on SageMaker. The last look, once the job's processes have ended, uploads every file not
uploaded as it is, whole or not. A refused upload is raised only there; a look while the job runs
leaves the file to the next one. A file deleted after its upload stays in S3. SageMaker does not
say how soon it uploads a file; here it is within two looks of its last write.

The job writes the folder while the server reads it, so a file is opened without following a link,
and used only if it is a regular file inside the folder once open: a job cannot swap a file for a
link to the server's credentials between the look and the read, nor for a FIFO that would block it.
"""

from __future__ import annotations

import os
import stat
import threading
from contextlib import suppress
from pathlib import Path

from pipelines.local.storage.objects import NoSuchBucket, ObjectStore, iter_files, split_uri

SYNC_SECONDS = 1.0

Signature = tuple[int, int]  # (size, modification time in ns)


class FolderSync:
    """`folder`'s files uploaded under `uri` while a job runs: `with` it around the job's run (its
    looks run in a thread of their own until then), then `finish()`."""

    def __init__(self, store: ObjectStore, folder: Path, uri: str) -> None:
        self.store = store
        self.folder = folder
        self.uri = uri.rstrip("/")
        self._interval = SYNC_SECONDS
        self._uploaded: dict[Path, Signature] = {}
        self._seen: dict[Path, Signature] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sync-{folder.name}", daemon=True)

    def restored(self) -> FolderSync:
        """Count the files there now as the objects just restored from `uri` (a training job's
        checkpoints): uploaded again only once they change."""
        self._uploaded = _signatures(self.folder)
        return self

    def __enter__(self) -> FolderSync:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def finish(self) -> None:
        """The last look, once the job's processes have ended: every file not uploaded as it is now.
        NoSuchBucket or ValueError when the store refuses one, or the bucket is gone, files or not."""
        bucket = split_uri(self.uri, prefix=True)[0]
        if not self.store.bucket_exists(bucket):
            raise NoSuchBucket(self.uri, bucket)
        self.look(last=True)

    def look(self, last: bool = False) -> None:
        """Upload what changed since it was last uploaded and, unless `last`, has stayed the same
        since the look before. A refusal, or a failure to read, is raised by the last look only."""
        current = _signatures(self.folder)
        for path, signature in current.items():
            if self._uploaded.get(path) == signature or not (last or self._seen.get(path) == signature):
                continue
            try:
                self._upload(path)
            except (NoSuchBucket, ValueError, OSError):
                if last:
                    raise
        self._seen = current

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.look()

    def _upload(self, path: Path) -> None:
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:  # gone, or a link put in its place since the look
            return
        with os.fdopen(descriptor, "rb") as handle:
            opened = os.fstat(descriptor)
            if not stat.S_ISREG(opened.st_mode) or not _inside(descriptor, self.folder):
                return
            key = path.relative_to(self.folder).as_posix()
            self.store.put_stream(f"{self.uri}/{key}", handle, lambda: None, {})
        self._uploaded[path] = (opened.st_size, opened.st_mtime_ns)


def _signatures(folder: Path) -> dict[Path, Signature]:
    """Each regular file below `folder` (not a link) as it is now."""
    found = {}
    for path in iter_files(folder):
        with suppress(OSError):  # gone since the walk
            status = path.lstat()
            found[path] = (status.st_size, status.st_mtime_ns)
    return found


def _inside(descriptor: int, folder: Path) -> bool:
    """Whether the open file is below `folder`, wherever the links on the way to it led."""
    opened = Path(os.readlink(f"/proc/self/fd/{descriptor}"))
    return Path(os.path.realpath(folder)) in opened.parents
