"""SageMaker data capture: sampled request/response pairs as JSON Lines in the object store.

Records and keys follow SageMaker's format so Model Monitor-style readers work unchanged:
``<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-mmm>-<uuid>.jsonl``, one JSON object per
line with ``captureData.endpointInput`` / ``endpointOutput`` and ``eventMetadata``.

Why it writes through ``store.path_for`` and appends to a file instead of putting whole objects:
a reader (monitoring, tests, a human with ``tail -f``) sees each record as soon as it is written.
Each record is one ``write`` of the whole line; when the disk fills, a short or failed write is cut
back to where the file ended, so a file holds whole records only.

A destination whose bucket does not exist gets no record: the invocation is answered all the same
(capture never fails an inference) and the server's log says once per variant that its records are
dropped until the bucket is created.
"""

from __future__ import annotations

import base64
import errno
import json
import logging
import os
import random
import threading
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

MAX_RECORDS_PER_FILE = 1000
log = logging.getLogger(__name__)


class PathStore(Protocol):
    """What capture needs from the object store: where an s3:// URI lives on disk, in a bucket
    that exists."""

    def path_for(self, uri: str) -> Path: ...

    def bucket_exists(self, name: str) -> bool: ...


def media_type(header: str) -> str:
    """'Application/JSON; charset=utf-8' -> 'application/json'."""
    return header.split(";")[0].strip().lower()


def inference_time(when: datetime) -> str:
    """ISO 8601 in UTC to the whole second with a Z (`2019-11-22T08:24:40Z`), as SageMaker writes
    eventMetadata.inferenceTime: readers that parse it with that format must work here too. The
    file name keeps the milliseconds, as SageMaker's do. Naive means UTC."""
    moment = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def encode_payload(
    body: bytes, content_type: str, mode: str, csv_types: set[str], json_types: set[str]
) -> dict[str, str]:
    """One endpointInput/endpointOutput object; text types stay readable, the rest is base64."""
    kind = media_type(content_type)
    encoding = "CSV" if kind in csv_types else "JSON" if kind in json_types else "BASE64"
    data: str | None = None
    if encoding != "BASE64":
        try:
            data = body.decode("utf-8")
        except UnicodeDecodeError:
            encoding = "BASE64"  # declared text but not UTF-8: keep the bytes exact
    if data is None:
        data = base64.b64encode(body).decode("ascii")
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}


def append_whole(fd: int, data: bytes) -> None:
    """Append `data` with one write; if the disk takes only part of it (or none), cut the file back
    to its size before, so no torn record stays, and raise."""
    size = os.lseek(fd, 0, os.SEEK_END)
    try:
        written = os.write(fd, data)
    except OSError:
        os.ftruncate(fd, size)
        raise
    if written != len(data):
        os.ftruncate(fd, size)
        raise OSError(errno.ENOSPC, f"No space left on device: wrote {written} of {len(data)} bytes")


def _created(path: Path) -> int:
    """A new file at `path` (its folders made), open for appending."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


class CaptureWriter:
    """Appends sampled records for one endpoint variant; safe to call from many threads."""

    def __init__(
        self,
        store: PathStore,
        destination_s3_uri: str,
        endpoint_name: str,
        variant_name: str,
        sampling_percentage: float,
        capture_input: bool,
        capture_output: bool,
        csv_types: Iterable[str] = (),
        json_types: Iterable[str] = (),
        *,
        max_records_per_file: int = MAX_RECORDS_PER_FILE,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._prefix = f"{destination_s3_uri.rstrip('/')}/{endpoint_name}/{variant_name}"
        self._bucket = destination_s3_uri.removeprefix("s3://").partition("/")[0]
        self._dropping = False  # records are being dropped for want of the bucket (logged once)
        self._sampling = float(sampling_percentage)
        self._capture_input = capture_input
        self._capture_output = capture_output
        self._csv_types = {media_type(t) for t in csv_types}
        self._json_types = {media_type(t) for t in json_types}
        self._max_records = max_records_per_file
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._file: int | None = None  # descriptor of the open capture file
        self._file_minute: tuple[int, int, int, int, int] | None = None
        self._file_records = 0

    def sampled(self) -> bool:
        """Whether this invocation falls in the sampled fraction."""
        if not (self._capture_input or self._capture_output) or self._sampling <= 0:
            return False
        return self._sampling >= 100 or self._rng.random() * 100 < self._sampling

    def record(
        self,
        request_body: bytes,
        request_type: str,
        response_body: bytes,
        response_type: str,
        event_id: str,
        when: datetime,
        inference_id: str | None = None,
        custom_attributes: str = "",
    ) -> bool:
        """Write one record if sampled; returns whether it was written. The caller's InferenceId,
        when it gave one, is kept in the record, where ground truth is later joined on it, and so
        are its CustomAttributes, where Model Monitor's record preprocessors read them."""
        if not self.sampled() or not self._bucket_exists():
            return False
        metadata: dict[str, Any] = {"eventId": event_id}
        if inference_id is not None:
            metadata["inferenceId"] = inference_id
        if custom_attributes:  # SageMaker keeps the header as a list of one string
            metadata["customAttributes"] = [custom_attributes]
        metadata["inferenceTime"] = inference_time(when)
        record = self._record(request_body, request_type, response_body, response_type, metadata)
        line = json.dumps(record, separators=(",", ":"))
        with self._lock:
            append_whole(self._file_for(when), (line + "\n").encode("utf-8"))
            self._file_records += 1
        return True

    def _bucket_exists(self) -> bool:
        exists = self._store.bucket_exists(self._bucket)
        if not exists and not self._dropping:
            log.warning("data capture to %s dropped: no bucket %r", self._prefix, self._bucket)
        self._dropping = not exists
        return exists

    def _record(
        self,
        request_body: bytes,
        request_type: str,
        response_body: bytes,
        response_type: str,
        metadata: dict[str, Any],
    ) -> dict[str, Any]:
        capture: dict[str, Any] = {}
        types = (self._csv_types, self._json_types)
        if self._capture_input:
            capture["endpointInput"] = encode_payload(request_body, request_type, "INPUT", *types)
        if self._capture_output:
            capture["endpointOutput"] = encode_payload(
                response_body, response_type, "OUTPUT", *types
            )
        return {"captureData": capture, "eventMetadata": metadata, "eventVersion": "0"}

    def _file_for(self, when: datetime) -> int:
        """The open file for this minute (lock held). Rotates on a later minute or a full file;
        a record stamped a moment earlier than the open file (threads race) joins that file
        rather than reopening an older minute. A file deleted meanwhile (DeleteObject of its key)
        is not written on unseen: the record starts a new one."""
        moment = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        minute = (moment.year, moment.month, moment.day, moment.hour, moment.minute)
        later = self._file_minute is None or minute > self._file_minute
        deleted = self._file is not None and os.fstat(self._file).st_nlink == 0
        if self._file is None or later or deleted or self._file_records >= self._max_records:
            self._close_file()
            self._file = self._open(moment)
            self._file_minute = minute
            self._file_records = 0
        return self._file

    def _open(self, moment: datetime) -> int:
        name = f"{moment:%M-%S}-{moment.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
        path = self._store.path_for(f"{self._prefix}/{moment:%Y/%m/%d/%H}/{name}")
        try:
            return _created(path)
        except FileNotFoundError:  # a delete removed the folder it emptied between mkdir and open
            return _created(path)

    def _close_file(self) -> None:
        if self._file is not None:
            os.close(self._file)
            self._file = None

    def close(self) -> None:
        """Close the current file; a later record opens a new one."""
        with self._lock:
            self._close_file()
