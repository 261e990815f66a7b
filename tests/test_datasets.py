"""Datasets under a content address: a new URI exactly when the data changes, and a manifest."""

from __future__ import annotations

import json
import re
from pathlib import Path

import botocore.session
import pytest
from buckets import with_buckets

from pipelines import cli
from pipelines.datasets import latest_dataset, upload_data
from pipelines.local.storage.objects import ObjectStore

DESTINATION = "s3://bucket/project/data"


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return with_buckets(ObjectStore(tmp_path / "store"), "bucket")


def folder(path: Path, train: str = "review_text,sentiment\ngood,1\nbad,0\n") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "train.csv").write_text(train)
    (path / "test.csv").write_text("review_text,sentiment\nfine,1\n")
    return path


def test_a_dataset_lands_under_its_digest_with_a_manifest(store: ObjectStore, tmp_path: Path) -> None:
    dataset = upload_data(store, folder(tmp_path / "d"), DESTINATION)
    assert dataset.uploaded
    assert dataset.uri == f"{DESTINATION}/{dataset.sha256[:16]}"
    assert store.get_bytes(f"{dataset.uri}/train.csv") == (tmp_path / "d" / "train.csv").read_bytes()
    assert store.list(f"{dataset.uri}/") == [f"{dataset.uri}/test.csv", f"{dataset.uri}/train.csv"]
    manifest = json.loads(store.get_bytes(f"{DESTINATION}/manifests/{dataset.sha256[:16]}.json"))
    assert manifest == dataset.manifest()
    assert manifest["files"]["train.csv"]["version_id"] == store.versions(f"{dataset.uri}/train.csv")[-1]
    assert latest_dataset(store, DESTINATION) == dataset.__class__.from_manifest(manifest, uploaded=False)


def test_identical_data_is_found_in_place(store: ObjectStore, tmp_path: Path) -> None:
    first = upload_data(store, folder(tmp_path / "d"), DESTINATION)
    again = upload_data(store, folder(tmp_path / "copy"), DESTINATION)
    assert not again.uploaded
    assert (again.uri, again.files) == (first.uri, first.files)
    assert len(store.versions(f"{first.uri}/train.csv")) == 1


def test_changed_data_in_the_same_folder_gets_a_new_address(store: ObjectStore, tmp_path: Path) -> None:
    first = upload_data(store, folder(tmp_path / "d"), DESTINATION)
    changed = upload_data(store, folder(tmp_path / "d", train="review_text,sentiment\nugly,0\n"), DESTINATION)
    assert changed.uri != first.uri and changed.uploaded
    latest = latest_dataset(store, DESTINATION)
    assert latest is not None and latest.uri == changed.uri
    assert store.exists(f"{first.uri}/train.csv")  # what older runs read stays readable


def test_nothing_uploaded_means_no_latest_dataset(store: ObjectStore) -> None:
    assert latest_dataset(store, DESTINATION) is None


def test_a_folder_without_both_files_is_refused(store: ObjectStore, tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"has no test\.csv"):
        upload_data(store, tmp_path, DESTINATION)


def test_a_path_that_is_no_folder_or_holds_neither_file_is_named_so(
    store: ObjectStore, tmp_path: Path
) -> None:
    """A mistyped folder was said to have "no train.csv or test.csv", as if it existed."""
    with pytest.raises(FileNotFoundError) as missing:
        upload_data(store, tmp_path / "mistyped", DESTINATION)
    assert str(missing.value) == (
        f"{tmp_path / 'mistyped'} is not a folder: give one that holds train.csv and test.csv")
    with pytest.raises(FileNotFoundError) as empty:
        upload_data(store, tmp_path, DESTINATION)
    assert str(empty.value) == f"{tmp_path} has no train.csv and no test.csv"


def test_a_dataset_path_the_system_cannot_look_up_is_named_with_the_reason(
    store: ObjectStore, tmp_path: Path
) -> None:
    """An OSError other than a missing file (here ENAMETOOLONG) ended `data upload` in a traceback:
    it reaches the CLI, which says the path and the reason in one line."""
    folder = tmp_path / ("a" * 300)
    with pytest.raises(OSError) as raised:
        upload_data(store, folder, DESTINATION)
    assert cli._file_problem(raised.value) == f"{folder}: File name too long"


def test_the_lineage_parameters_fit_customer_metadata_properties(store: ObjectStore, tmp_path: Path) -> None:
    # The register step copies them into CustomerMetadataProperties: values of 1-256 characters
    # from a restricted set (no commas, quotes or braces).
    shape = botocore.session.get_session().get_service_model("sagemaker").shape_for("CustomerMetadataMap")
    allowed = re.compile(r"^[\w\s.:/=+\-@]{1,256}$")
    parameters = upload_data(store, folder(tmp_path / "d"), DESTINATION).parameters()
    assert set(parameters) == {"InputDataUri", "InputDataSha256", "InputDataVersionIds"}
    assert shape.value.metadata["max"] == 256
    for value in parameters.values():
        assert allowed.match(value), value
    assert parameters["InputDataVersionIds"].startswith("test.csv=")
