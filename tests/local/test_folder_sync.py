"""What a job's synced folder uploads at each look, and what it never reads (folder_sync.py)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from buckets import with_buckets

from pipelines.local.jobs import folder_sync
from pipelines.local.jobs.folder_sync import FolderSync
from pipelines.local.storage.objects import NoSuchBucket, ObjectStore

URI = "s3://synced/out"


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return with_buckets(ObjectStore(tmp_path / "store"), "synced")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    made = tmp_path / "job" / "output"
    made.mkdir(parents=True)
    return made


def _contents(store: ObjectStore) -> dict[str, bytes]:
    return {uri: store.get_bytes(uri) for uri in store.list(f"{URI}/")}


def test_a_file_is_uploaded_once_it_stays_the_same_between_two_looks_and_again_when_it_changes(
    store: ObjectStore, folder: Path
) -> None:
    sync = FolderSync(store, folder, URI)
    (folder / "a.txt").write_bytes(b"first")
    sync.look()
    assert _contents(store) == {}, "a file seen once may still be being written"
    sync.look()
    assert _contents(store) == {f"{URI}/a.txt": b"first"}

    (folder / "a.txt").write_bytes(b"second, longer")
    sync.look()
    assert len(store.versions(f"{URI}/a.txt")) == 1
    sync.look()
    assert _contents(store) == {f"{URI}/a.txt": b"second, longer"}
    sync.look()
    assert len(store.versions(f"{URI}/a.txt")) == 2, "an unchanged file is not uploaded again"


def test_the_last_look_uploads_what_is_not_uploaded_as_it_is_and_keeps_what_was_deleted(
    store: ObjectStore, folder: Path
) -> None:
    sync = FolderSync(store, folder, URI)
    (folder / "kept.txt").write_bytes(b"uploaded, then deleted")
    sync.look()
    sync.look()
    (folder / "kept.txt").unlink()
    (folder / "nested").mkdir()
    (folder / "nested" / "late.txt").write_bytes(b"written just before the end")

    sync.finish()

    assert _contents(store) == {
        f"{URI}/kept.txt": b"uploaded, then deleted",
        f"{URI}/nested/late.txt": b"written just before the end",
    }


def test_restored_files_are_uploaded_again_only_once_they_change(store: ObjectStore, folder: Path) -> None:
    (folder / "restored").write_bytes(b"from S3")
    (folder / "rewritten").write_bytes(b"from S3")
    sync = FolderSync(store, folder, URI).restored()
    (folder / "rewritten").write_bytes(b"by the job")

    sync.finish()

    assert _contents(store) == {f"{URI}/rewritten": b"by the job"}


def test_the_last_look_refuses_a_missing_bucket_whatever_the_folder_holds(
    tmp_path: Path, folder: Path
) -> None:
    store = ObjectStore(tmp_path / "store")
    sync = FolderSync(store, folder, "s3://no-such-bucket/out")
    sync.look()  # a look while the job runs leaves the refusal to the last one
    with pytest.raises(NoSuchBucket):
        sync.finish()


def test_the_background_looks_upload_while_the_job_writes(
    store: ObjectStore, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(folder_sync, "SYNC_SECONDS", 0.01)
    uploaded = threading.Event()
    original = store.put_stream

    def noticed(*args: object, **kwargs: object) -> str:
        version = original(*args, **kwargs)  # type: ignore[arg-type]
        uploaded.set()
        return version

    monkeypatch.setattr(store, "put_stream", noticed)
    with FolderSync(store, folder, URI):
        (folder / "a.txt").write_bytes(b"written while running")
        assert uploaded.wait(10), "no look uploaded the file while the job ran"

    assert _contents(store) == {f"{URI}/a.txt": b"written while running"}


@pytest.mark.parametrize("swap", ["file-for-link", "folder-for-link", "file-for-fifo"])
def test_a_file_swapped_after_the_look_for_a_link_or_a_fifo_is_not_read(
    store: ObjectStore, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swap: str
) -> None:
    secret = tmp_path / "secrets"
    secret.mkdir()
    (secret / "a.txt").write_bytes(b"the server's credentials")
    (folder / "sub").mkdir()
    (folder / "sub" / "a.txt").write_bytes(b"the job's own")
    sync = FolderSync(store, folder, URI)
    sync.look()
    seen = folder_sync._signatures(folder)
    monkeypatch.setattr(folder_sync, "_signatures", lambda _folder: seen)  # the walk saw the file
    if swap == "file-for-link":
        (folder / "sub" / "a.txt").unlink()
        (folder / "sub" / "a.txt").symlink_to(secret / "a.txt")
    elif swap == "folder-for-link":
        (folder / "sub" / "a.txt").unlink()
        (folder / "sub").rmdir()
        (folder / "sub").symlink_to(secret)
    else:
        (folder / "sub" / "a.txt").unlink()
        os.mkfifo(folder / "sub" / "a.txt")

    looking = threading.Thread(target=sync.finish, daemon=True)
    looking.start()
    looking.join(10)

    assert not looking.is_alive(), "the look blocked on what was put in the file's place"
    assert _contents(store) == {}
