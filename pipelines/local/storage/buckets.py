"""The local S3's buckets: a bucket exists when its record does, not when a folder of its name does.

Each bucket is a small JSON record, `root/.buckets/<name>.json`, holding the region it was made in
and when, so a bucket keeps its creation date across restarts and a folder that some writer made
is no bucket. A record is made whole or not at all (written aside, then linked into place, which
fails if another is there), so two creators of one name cannot both succeed.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

FOLDER = ".buckets"


@dataclass(frozen=True)
class Bucket:
    name: str
    region: str
    created: float  # seconds since the epoch
    location: str = ""  # the LocationConstraint it was created with ("" in us-east-1, as S3 keeps it)

    def text(self) -> str:
        document = {
            "BucketRegion": self.region, "CreationDate": self.created, "LocationConstraint": self.location
        }
        return json.dumps(document, sort_keys=True)


class BucketExists(Exception):
    """The name is taken (by this account: the local S3 has no other)."""


class BucketRecords:
    def __init__(self, root: Path) -> None:
        self.folder = Path(root) / FOLDER

    def get(self, name: str) -> Bucket | None:
        try:
            document = json.loads(self._path(name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return Bucket(
            name, document["BucketRegion"], document["CreationDate"], document["LocationConstraint"]
        )

    def exists(self, name: str) -> bool:
        """Whether the bucket's record is there: one stat, for the checks on every write and
        every captured record, where the record's contents are not needed."""
        return self._path(name).is_file()

    def all(self) -> list[Bucket]:
        """Every bucket, by name."""
        if not self.folder.is_dir():
            return []
        names = sorted(entry.name.removesuffix(".json") for entry in self.folder.glob("*.json"))
        return [bucket for bucket in map(self.get, names) if bucket is not None]

    def create(self, bucket: Bucket) -> None:
        """Keep the record; BucketExists if the name has one already."""
        self.folder.mkdir(parents=True, exist_ok=True)
        staged = self.folder / f".{uuid.uuid4().hex}"
        staged.write_text(bucket.text(), encoding="utf-8")
        try:
            os.link(staged, self._path(bucket.name))
        except FileExistsError:
            raise BucketExists(bucket.name) from None
        finally:
            staged.unlink()

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.json"
