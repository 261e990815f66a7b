"""The local S3: layout, versions, prefix semantics, and refusals that keep keys inside the root."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from buckets import with_buckets

from pipelines.local.storage.buckets import Bucket
from pipelines.local.storage.objects import NoSuchBucket, NoSuchKey, ObjectStore

from .s3_support import HeldBody


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return with_buckets(ObjectStore(tmp_path / "store"), "my-bucket")


def test_put_and_get_use_the_bucket_key_layout(store: ObjectStore) -> None:
    version = store.put_bytes("s3://my-bucket/p/data/train.csv", b"a,b\n")

    path = store.root / "my-bucket" / "p" / "data" / "train.csv"
    assert store.path_for("s3://my-bucket/p/data/train.csv") == path
    assert path.read_bytes() == b"a,b\n"
    assert store.get_bytes("s3://my-bucket/p/data/train.csv") == b"a,b\n"
    assert (store.root / ".versions" / "my-bucket" / "p/data/train.csv" / version).is_file()
    assert store.exists("s3://my-bucket/p/data/train.csv")
    assert not store.exists("s3://my-bucket/p/data")


def test_missing_object_raises_no_such_key_naming_the_uri(store: ObjectStore) -> None:
    with pytest.raises(NoSuchKey) as caught:
        store.get_bytes("s3://my-bucket/nothing/here.csv")

    assert isinstance(caught.value, KeyError)
    assert "s3://my-bucket/nothing/here.csv" in str(caught.value)


def test_earlier_versions_survive_an_overwrite(store: ObjectStore) -> None:
    uri = "s3://my-bucket/model/model.tar.gz"
    first = store.put_bytes(uri, b"one")
    second = store.put_bytes(uri, b"two")

    assert store.versions(uri) == [first, second]
    assert store.get_bytes(uri) == b"two"
    assert store.get_bytes(uri, version_id=first) == b"one"
    assert store.versions("s3://my-bucket/model/other") == []


def test_put_file_stores_a_copy_not_a_link(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "local.txt"
    source.write_text("original")
    store.put_file("s3://my-bucket/copy.txt", source)
    source.write_text("changed later")

    assert store.get_bytes("s3://my-bucket/copy.txt") == b"original"
    assert not store.path_for("s3://my-bucket/copy.txt").is_symlink()


def test_list_matches_key_prefixes_as_strings_and_sorts(store: ObjectStore) -> None:
    for key in ("p/data/b.csv", "p/data/a.csv", "p/data/sub/c.csv", "p/data2/d.csv", "q/e.csv"):
        store.put_bytes(f"s3://my-bucket/{key}", b"x")

    assert store.list("s3://my-bucket/p/data") == [
        "s3://my-bucket/p/data/a.csv",
        "s3://my-bucket/p/data/b.csv",
        "s3://my-bucket/p/data/sub/c.csv",
        "s3://my-bucket/p/data2/d.csv",
    ]
    assert store.list("s3://my-bucket/p/data/") == [
        "s3://my-bucket/p/data/a.csv",
        "s3://my-bucket/p/data/b.csv",
        "s3://my-bucket/p/data/sub/c.csv",
    ]
    assert store.list("s3://my-bucket/") == [
        "s3://my-bucket/p/data/a.csv",
        "s3://my-bucket/p/data/b.csv",
        "s3://my-bucket/p/data/sub/c.csv",
        "s3://my-bucket/p/data2/d.csv",
        "s3://my-bucket/q/e.csv",
    ]
    assert store.list("s3://other-bucket/p") == []


def test_download_of_a_prefix_lays_objects_out_relative_to_it(
    store: ObjectStore, tmp_path: Path
) -> None:
    store.put_bytes("s3://my-bucket/p/data/train.csv", b"train")
    store.put_bytes("s3://my-bucket/p/data/sub/test.csv", b"test")
    store.put_bytes("s3://my-bucket/p/other/elsewhere.csv", b"not matched by the prefix")
    dest = tmp_path / "dest"

    written = store.download("s3://my-bucket/p/data", dest)

    assert sorted(written) == [dest / "sub" / "test.csv", dest / "train.csv"]
    assert (dest / "train.csv").read_bytes() == b"train"
    assert (dest / "sub" / "test.csv").read_bytes() == b"test"
    assert sorted(p.name for p in dest.rglob("*") if p.is_file()) == ["test.csv", "train.csv"]


def test_download_of_a_prefix_takes_every_key_it_starts_and_names_partial_matches_in_full(
    store: ObjectStore, tmp_path: Path
) -> None:
    """S3Prefix is a key prefix, not a folder: `p/train` takes `p/train-data.csv` and `p/train2/x`
    too, named from the prefix's folder (`train-data.csv`), as SageMaker's own staging names them;
    a folder-style prefix (`p/train/`) takes only what is below it."""
    store.put_bytes("s3://my-bucket/p/train/a.csv", b"a")
    store.put_bytes("s3://my-bucket/p/train-data.csv", b"data")
    store.put_bytes("s3://my-bucket/p/train2/x.csv", b"x")
    store.put_bytes("s3://my-bucket/p/raw.txt", b"not matched")

    written = store.download("s3://my-bucket/p/train", tmp_path / "prefix")
    as_folder = store.download("s3://my-bucket/p/train/", tmp_path / "folder")

    relative = sorted(path.relative_to(tmp_path / "prefix").as_posix() for path in written)
    assert relative == ["a.csv", "train-data.csv", "train2/x.csv"]
    assert (tmp_path / "prefix" / "train-data.csv").read_bytes() == b"data"
    assert as_folder == [tmp_path / "folder" / "a.csv"]


def test_download_of_an_exact_key_gives_that_one_file(store: ObjectStore, tmp_path: Path) -> None:
    store.put_bytes("s3://my-bucket/m/job/output/model.tar.gz", b"model")
    store.put_bytes("s3://my-bucket/m/job/output/other.txt", b"other")
    dest = tmp_path / "dest"

    written = store.download("s3://my-bucket/m/job/output/model.tar.gz", dest)

    assert written == [dest / "model.tar.gz"]
    assert [p.name for p in dest.iterdir()] == ["model.tar.gz"]
    assert (dest / "model.tar.gz").read_bytes() == b"model"


def test_download_of_nothing_raises_no_such_key(store: ObjectStore, tmp_path: Path) -> None:
    store.put_bytes("s3://my-bucket/p/dat/x.csv", b"x")  # "p/dat/..." does not start with "p/data"

    with pytest.raises(NoSuchKey, match="s3://my-bucket/p/data"):
        store.download("s3://my-bucket/p/data", tmp_path / "dest")


@pytest.mark.parametrize("uri", ["s3://my-bucket/", "s3://.versions/a", "s3://Bad_Bucket/a", "/etc/passwd"])
def test_malformed_uris_are_refused(store: ObjectStore, uri: str) -> None:
    with pytest.raises(ValueError):
        store.put_bytes(uri, b"x")


UNUSUAL_KEYS = ["a/../../escape.txt", "../other-bucket/x", "a/./b", "a//b", "/leading", "b/..", "a/../", "//"]


def test_keys_with_empty_dot_or_dot_dot_parts_are_kept_inside_their_bucket_as_s3_keeps_them(
    store: ObjectStore,
) -> None:
    for number, key in enumerate(UNUSUAL_KEYS):
        store.put_bytes(f"s3://my-bucket/{key}", str(number).encode())

    assert store.list("s3://my-bucket/") == sorted(f"s3://my-bucket/{key}" for key in UNUSUAL_KEYS)
    for number, key in enumerate(UNUSUAL_KEYS):
        assert store.get_bytes(f"s3://my-bucket/{key}") == str(number).encode()
        assert store.path_for(f"s3://my-bucket/{key}").is_relative_to(store.root / "my-bucket")
    assert not store.exists("s3://my-bucket/a/b")  # "a//b" and "a/./b" are keys of their own
    written = [path for path in store.root.parent.rglob("*") if path.is_file()]
    assert all(path.is_relative_to(store.root) for path in written)
    assert store.list("s3://my-bucket/a/..") == ["s3://my-bucket/a/../", "s3://my-bucket/a/../../escape.txt"]


def test_a_key_whose_path_below_the_prefix_has_an_empty_dot_or_dot_dot_part_is_not_staged(
    store: ObjectStore, tmp_path: Path
) -> None:
    store.put_bytes("s3://my-bucket/p/ok.csv", b"1")
    store.put_bytes("s3://my-bucket/p/../escape.txt", b"2")

    with pytest.raises(ValueError, match=r"p/\.\./escape.txt cannot be staged as a file"):
        store.download("s3://my-bucket/p/", tmp_path / "dest")
    assert not (tmp_path / "escape.txt").exists()
    with pytest.raises(NoSuchKey):
        store.download("s3://my-bucket/q/..", tmp_path / "dest")


def test_upload_dir_puts_nested_files_and_skips_symlinks(
    store: ObjectStore, tmp_path: Path
) -> None:
    src = tmp_path / "out"
    (src / "nested").mkdir(parents=True)
    (src / "a.json").write_text("{}")
    (src / "nested" / "b.txt").write_text("b")
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    (src / "link.txt").symlink_to(secret)

    uris = store.upload_dir(src, "s3://my-bucket/runs/x/evaluation/")

    assert uris == [
        "s3://my-bucket/runs/x/evaluation/a.json",
        "s3://my-bucket/runs/x/evaluation/nested/b.txt",
    ]
    assert store.get_bytes("s3://my-bucket/runs/x/evaluation/nested/b.txt") == b"b"
    assert not store.exists("s3://my-bucket/runs/x/evaluation/link.txt")


def test_a_key_and_the_keys_below_it_are_kept_side_by_side_in_either_order(
    store: ObjectStore, tmp_path: Path
) -> None:
    store.put_bytes("s3://my-bucket/a", b"object")
    store.put_bytes("s3://my-bucket/a/b", b"under it")  # a moves into its folder
    store.put_bytes("s3://my-bucket/c/d", b"under c")
    store.put_bytes("s3://my-bucket/c", b"over d")  # c goes into its folder

    assert store.list("s3://my-bucket/") == [
        "s3://my-bucket/a", "s3://my-bucket/a/b", "s3://my-bucket/c", "s3://my-bucket/c/d"]
    for key, body in (("a", b"object"), ("a/b", b"under it"), ("c", b"over d"), ("c/d", b"under c")):
        assert _serves_one_version(store, f"s3://my-bucket/{key}") == body
    assert store.path_for("s3://my-bucket/a") == store.root / "my-bucket" / "a" / ".key-named-as-this-folder"
    assert ObjectStore(store.root).repair_live_files() == 0  # a moved live file is its current version
    store.put_bytes("s3://my-bucket/a", b"again")
    kept = [store.get_bytes("s3://my-bucket/a", version) for version in store.versions("s3://my-bucket/a")]
    assert kept == [b"object", b"again"]

    store.delete("s3://my-bucket/a/b")
    assert store.get_bytes("s3://my-bucket/a") == b"again"  # the folder keeps it
    with pytest.raises(ValueError, match="c/d cannot be staged as a file"):
        store.download("s3://my-bucket/", tmp_path / "dest")  # files cannot hold c beside c/d


@pytest.mark.parametrize("below_deleted", [False, True])
def test_deleting_every_version_of_a_key_keeps_the_versions_of_the_keys_below_it(
    store: ObjectStore, below_deleted: bool
) -> None:
    first = store.put_bytes("s3://my-bucket/a", b"object")
    marker = store.delete("s3://my-bucket/a")
    below = [store.put_bytes("s3://my-bucket/a/b", b"under it")]  # its versions' folder is inside a's
    if below_deleted:
        below.append(store.delete("s3://my-bucket/a/b"))

    store.delete_version("s3://my-bucket/a", first)
    store.delete_version("s3://my-bucket/a", marker)  # the last: its folder of versions goes

    assert store.versions("s3://my-bucket/a") == [] and not store.exists("s3://my-bucket/a")
    assert store.versions("s3://my-bucket/a/b") == below
    assert store.get_bytes("s3://my-bucket/a/b", below[0]) == b"under it"


def test_a_key_ending_in_a_slash_is_an_object_beside_the_keys_below_it(
    store: ObjectStore, tmp_path: Path
) -> None:
    folder, below = "s3://my-bucket/data/", "s3://my-bucket/data/train.csv"
    store.put_bytes(folder, b"")
    store.put_bytes(below, b"x,1\n")
    store.put_bytes("s3://my-bucket/data/empty/", b"")

    assert store.list("s3://my-bucket/data") == [folder, "s3://my-bucket/data/empty/", below]
    assert store.get_bytes(folder) == b"" and store.describe(folder).size == 0
    assert not store.exists("s3://my-bucket/data")  # the key without its slash is another key
    store.download("s3://my-bucket/data", tmp_path / "staged")
    assert sorted(path.name for path in (tmp_path / "staged").iterdir()) == ["empty", "train.csv"]
    assert (tmp_path / "staged" / "empty").is_dir() and not any((tmp_path / "staged" / "empty").iterdir())

    store.delete(folder)
    assert store.list("s3://my-bucket/data") == ["s3://my-bucket/data/empty/", below]
    assert len(store.versions(folder)) == 2  # the put and the delete marker
    assert len(store.versions("s3://my-bucket/data/empty/")) == 1
    listed = [(entry.key, entry.delete_marker) for entry in store.version_entries("my-bucket", "data/")]
    assert listed == [("data/", True), ("data/", False), ("data/empty/", False), ("data/train.csv", False)]


LONG = "p" * 300  # a key's part over a file name's 255 bytes, as S3 keeps it (a key holds 1024)
LONG_KEYS = [
    f"a/{LONG}", f"a/{LONG}/below", f"a/{LONG[:200]}", f"a/{LONG[:252]}", f"a/{LONG}q", f"a/{LONG}/",
    "é" * 512, "b/" + "€" * 86 + "x" * 2 + "€" * 86,  # every piece ends on a character
    "c/" + "a" * 255 + "..", "c/" + "a" * 256 + ".key-part-dot",  # no piece is a name the store gives
]


def test_a_key_with_a_part_longer_than_a_file_name_is_kept_as_s3_keeps_it(
    store: ObjectStore, tmp_path: Path
) -> None:
    for number, key in enumerate(LONG_KEYS):
        store.put_bytes(f"s3://my-bucket/{key}", str(number).encode())

    assert store.list("s3://my-bucket/") == sorted(f"s3://my-bucket/{key}" for key in LONG_KEYS)
    assert store.list(f"s3://my-bucket/a/{LONG[:260]}") == [
        f"s3://my-bucket/a/{LONG}", f"s3://my-bucket/a/{LONG}/", f"s3://my-bucket/a/{LONG}/below",
        f"s3://my-bucket/a/{LONG}q"]
    for number, key in enumerate(LONG_KEYS):
        uri = f"s3://my-bucket/{key}"
        assert _serves_one_version(store, uri) == str(number).encode()
        assert all(len(name.encode()) <= 255 for name in store.path_for(uri).relative_to(store.root).parts)
    assert ".key-part-continued" in store.path_for(f"s3://my-bucket/a/{LONG}q").parts
    assert ObjectStore(store.root).repair_live_files() == 0

    store.delete(f"s3://my-bucket/a/{LONG}/below")
    store.delete(f"s3://my-bucket/a/{LONG}")
    assert not store.exists(f"s3://my-bucket/a/{LONG}")
    assert store.get_bytes(f"s3://my-bucket/a/{LONG}/") == b"5"
    entries = [(entry.key, entry.delete_marker) for entry in store.version_entries("my-bucket", f"a/{LONG}")]
    assert entries == [
        (f"a/{LONG}", True), (f"a/{LONG}", False), (f"a/{LONG}/", False),
        (f"a/{LONG}/below", True), (f"a/{LONG}/below", False), (f"a/{LONG}q", False)]
    staged = f"a/{LONG}/ cannot be staged as a file: a part of its path below the prefix is over .* 255 bytes"
    with pytest.raises(ValueError, match=staged):
        store.download("s3://my-bucket/a/", tmp_path / "dest")


@pytest.mark.parametrize(
    "key",
    ["a/.key-ending-in-slash", ".key-ending-in-slash/b", "a/.key-part-dot-dot/b", ".key-part-empty",
     "a/.key-part-continued/b"],
)
def test_a_key_with_a_part_named_as_the_store_keeps_unusual_keys_is_refused(
    store: ObjectStore, key: str
) -> None:
    with pytest.raises(ValueError, match="invalid key"):
        store.put_bytes(f"s3://my-bucket/{key}", b"x")


def test_a_restart_makes_a_slash_ended_keys_live_file_its_current_version_again(store: ObjectStore) -> None:
    folder = "s3://my-bucket/data/"
    store.put_bytes(folder, b"")
    store.put_bytes(folder, b"second")
    live = store.path_for(folder)
    live.unlink()
    live.write_bytes(b"")  # one version behind, as a crash between a write's two renames leaves it

    assert ObjectStore(store.root).repair_live_files() == 1
    assert store.path_for(folder).read_bytes() == b"second"
    assert ObjectStore(store.root).repair_live_files() == 0


def _put_while(store: ObjectStore, uri: str, data: bytes, meanwhile: Callable[[], object]) -> str:
    """Put `data` at `uri`, running `meanwhile` while its body is still streaming; its version id."""
    body = HeldBody(data)
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(store.put_stream, uri, body, lambda: None, {})
        assert body.reading.wait(10)
        meanwhile()
        body.release.set()
        return slow.result(10)


def _serves_one_version(store: ObjectStore, uri: str) -> bytes:
    """What GetObject reads (the newest version) and what jobs read (the live file) agree."""
    current = store.describe(uri)
    assert store.path_for(uri).read_bytes() == current.path.read_bytes()
    assert current.version_id == store.versions(uri)[-1]
    return current.path.read_bytes()


def test_a_put_that_finishes_last_is_the_current_version_everywhere(store: ObjectStore) -> None:
    uri = "s3://my-bucket/data/train.csv"
    fast: list[str] = []

    slow = _put_while(store, uri, b"slow upload", lambda: fast.append(store.put_bytes(uri, b"fast upload")))

    assert store.versions(uri) == [*fast, slow]
    assert _serves_one_version(store, uri) == b"slow upload"


def test_a_put_that_finishes_after_a_delete_brings_the_object_back_everywhere(store: ObjectStore) -> None:
    uri = "s3://my-bucket/data/train.csv"
    store.put_bytes(uri, b"old")
    markers: list[str] = []

    put = _put_while(store, uri, b"new", lambda: markers.append(store.delete(uri)))

    assert store.versions(uri)[-2:] == [*markers, put]
    assert store.list("s3://my-bucket/data/") == [uri]
    assert _serves_one_version(store, uri) == b"new"


def test_a_put_that_finishes_after_its_bucket_is_deleted_stores_nothing(store: ObjectStore) -> None:
    uri = "s3://my-bucket/data/train.csv"

    with pytest.raises(NoSuchBucket):
        _put_while(store, uri, b"late", lambda: store.delete_bucket("my-bucket"))

    assert not (store.root / "my-bucket").exists()
    assert not (store.root / ".versions" / "my-bucket").exists()
    store.create_bucket(Bucket("my-bucket", "us-east-1", 0.0))
    assert store.list("s3://my-bucket/") == []


def test_the_live_file_is_the_current_versions_file_not_a_copy(store: ObjectStore) -> None:
    uri = "s3://my-bucket/model/model.tar.gz"
    store.put_bytes(uri, b"one")
    current = store.put_bytes(uri, b"two")

    live = store.path_for(uri)
    assert os.path.samefile(live, store.root / ".versions" / "my-bucket" / "model/model.tar.gz" / current)
    assert live.stat().st_nlink == 2  # one file under two names: nothing was copied


def test_a_restart_makes_each_live_file_its_current_version_again(store: ObjectStore) -> None:
    behind, marked = "s3://my-bucket/data/train.csv", "s3://my-bucket/data/test.csv"
    store.put_bytes(behind, b"old")
    store.put_bytes(behind, b"new")
    store.put_bytes(marked, b"kept")
    store.delete(marked)
    # As a crash between a write's two renames leaves them: the live file one version behind, and
    # a live file still there behind a delete marker.
    live = store.path_for(behind)
    live.unlink()
    live.write_bytes(b"old")
    store.path_for(marked).write_bytes(b"kept")

    assert ObjectStore(store.root).repair_live_files() == 2

    assert store.path_for(behind).read_bytes() == b"new"
    assert store.list("s3://my-bucket/data/") == [behind]
    assert ObjectStore(store.root).repair_live_files() == 0


def test_a_file_system_without_hard_links_gets_a_live_copy(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(source: object, target: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", refused)
    store.put_bytes("s3://my-bucket/data/train.csv", b"rows")

    assert store.path_for("s3://my-bucket/data/train.csv").read_bytes() == b"rows"
    assert store.get_bytes("s3://my-bucket/data/train.csv") == b"rows"
