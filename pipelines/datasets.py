"""Datasets stored under a content address, so a pipeline run names exactly the data it reads.

SageMaker's step cache compares S3 URIs, not the objects behind them: new data uploaded to a fixed
prefix would be a Preprocess cache hit on the old data, and every step after it would hit too. A
dataset here lives at `<destination>/<sha256[:16]>/` instead, so its URI changes exactly when its
contents do, and uploading identical data again finds it in place. Beside the datasets:

    <destination>/manifests/<sha256[:16]>.json   what was stored: digests and S3 version ids
    <destination>/latest.json                    the manifest of the last upload, read by `start`

Both sit outside every dataset's prefix, so a job that reads a dataset never sees them.
"""

from __future__ import annotations

import hashlib
import json
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.aws import Storage

DATA_FILES = ("train.csv", "test.csv")
LATEST = "latest.json"
ADDRESS_LENGTH = 16
UNRECORDED = "unrecorded"  # parameter default when a run's data did not come from `data upload`


@dataclass(frozen=True)
class Dataset:
    """One uploaded dataset: where it is and what it holds."""

    uri: str  # the prefix the pipeline reads (InputDataUri)
    sha256: str  # of every file's name and SHA-256, in DATA_FILES order
    files: dict[str, dict[str, str]]  # name -> {"sha256", "version_id"}
    uploaded: bool = True  # False when identical data was already stored

    def manifest(self) -> dict[str, Any]:
        return {"uri": self.uri, "sha256": self.sha256, "files": self.files}

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], uploaded: bool) -> Dataset:
        return cls(manifest["uri"], manifest["sha256"], manifest["files"], uploaded)

    def version_ids(self) -> str:
        """`name=version` pairs: what CustomerMetadataProperties can hold (no commas or braces)."""
        return " ".join(f"{name}={self.files[name]['version_id']}" for name in sorted(self.files))

    def parameters(self) -> dict[str, str]:
        """The pipeline parameters that run on this dataset and record it on the model."""
        return {
            "InputDataUri": self.uri,
            "InputDataSha256": self.sha256,
            "InputDataVersionIds": self.version_ids(),
        }


def _file_digests(folder: Path) -> dict[str, str]:
    """Each data file's SHA-256, read a chunk at a time (a dataset may be larger than memory)."""
    try:
        is_folder = stat.S_ISDIR(folder.stat().st_mode)  # any other reason it cannot be read: raised
    except FileNotFoundError:
        is_folder = False
    if not is_folder:
        raise FileNotFoundError(f"{folder} is not a folder: give one that holds {' and '.join(DATA_FILES)}")
    missing = [name for name in DATA_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} has no {' and no '.join(missing)}")
    digests = {}
    for name in DATA_FILES:
        with (folder / name).open("rb") as handle:
            digests[name] = hashlib.file_digest(handle, "sha256").hexdigest()
    return digests


def dataset_digest(files: dict[str, str]) -> str:
    """The dataset's SHA-256: of each file's name and SHA-256, in DATA_FILES order."""
    summary = "".join(f"{name}\0{files[name]}\n" for name in DATA_FILES)
    return hashlib.sha256(summary.encode()).hexdigest()


def _put_json(storage: Storage, uri: str, document: dict[str, Any]) -> None:
    storage.put_bytes(uri, json.dumps(document, indent=2, sort_keys=True).encode())


def upload_data(storage: Storage, folder: Path, destination: str) -> Dataset:
    """Store the folder's train.csv and test.csv under their content address (unless already
    there) and point `<destination>/latest.json` at them."""
    digests = _file_digests(folder)
    digest = dataset_digest(digests)
    root = destination.rstrip("/")
    address = digest[:ADDRESS_LENGTH]
    uri = f"{root}/{address}"
    manifest_uri = f"{root}/manifests/{address}.json"
    stored = storage.exists(manifest_uri) and all(storage.exists(f"{uri}/{n}") for n in DATA_FILES)
    if stored:
        dataset = Dataset.from_manifest(json.loads(storage.get_bytes(manifest_uri)), uploaded=False)
    else:
        files = {
            name: {"sha256": digests[name], "version_id": storage.put_file(f"{uri}/{name}", folder / name)}
            for name in DATA_FILES
        }
        dataset = Dataset(uri, digest, files)
        _put_json(storage, manifest_uri, dataset.manifest())
    _put_json(storage, f"{root}/{LATEST}", dataset.manifest())
    return dataset


def latest_dataset(storage: Storage, location: str) -> Dataset | None:
    """The dataset last uploaded to `location`, or None if nothing was uploaded there."""
    pointer = f"{location.rstrip('/')}/{LATEST}"
    if not storage.exists(pointer):
        return None
    return Dataset.from_manifest(json.loads(storage.get_bytes(pointer)), uploaded=False)
