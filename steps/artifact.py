"""Open a model.tar.gz safely and load it through the artifact's own inference code.

Shared by evaluate.py and monitor.py. A Processing job ships one script as its code, so the pipeline
ships this module in the `lib/` folder, a second input at `/opt/ml/processing/input/lib`; each entry
script puts that folder (in a job) and its own folder (everywhere else) on `sys.path`.
"""

from __future__ import annotations

import importlib.util
import sys
import tarfile
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any


class ArtifactError(Exception):
    """The model artifact cannot be opened or loaded; the message says why."""


def _inside(path: Path, root: Path) -> bool:
    """True when the resolved path is root or below it."""
    return path == root or root in path.parents


def check_member(member: tarfile.TarInfo, root: Path) -> tarfile.TarInfo:
    """Refuse members that could write outside root: absolute, '..', escaping links, devices."""
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        raise ArtifactError(f"model.tar.gz holds an unsafe path: {member.name!r}")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise ArtifactError(f"model.tar.gz holds a special file: {member.name!r}")
    if not _inside((root / name).resolve(), root):
        raise ArtifactError(f"model.tar.gz member {member.name!r} resolves outside the archive")
    if member.issym() or member.islnk():
        base = (root / name).parent if member.issym() else root
        if PurePosixPath(member.linkname).is_absolute() or not _inside(
            (base / member.linkname).resolve(), root
        ):
            raise ArtifactError(
                f"model.tar.gz link {member.name!r} points outside the archive: {member.linkname!r}"
            )
    return member


def extract_model(archive: Path, destination: Path) -> None:
    """Unpack model.tar.gz after checking every member."""
    if not archive.is_file():
        raise ArtifactError(f"model archive not found: {archive}")
    root = destination.resolve()
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = [check_member(member, root) for member in tar.getmembers()]
            if hasattr(tarfile, "data_filter"):
                tar.extractall(root, members=members, filter="data")
            else:
                tar.extractall(root, members=members)
    except tarfile.TarError as exc:
        raise ArtifactError(f"cannot read {archive}: {exc}") from None


def _load_siblings(code_dir: Path) -> None:
    """Import the modules beside inference.py (scorer.py) from this artifact and register them
    under their own names, so its `import scorer` gets this artifact's copy, not one that this
    process imported earlier from elsewhere (sys.path stays as it is)."""
    for sibling in sorted(code_dir.glob("*.py")):
        if sibling.name == "inference.py":
            continue
        spec = importlib.util.spec_from_file_location(sibling.stem, sibling)
        if spec is None or spec.loader is None:
            raise ArtifactError(f"cannot import {sibling}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[sibling.stem] = module  # before it runs: dataclasses look their module up
        spec.loader.exec_module(module)


def load_handlers(model_dir: Path) -> ModuleType:
    """Import the artifact's code/inference.py under a private name."""
    path = model_dir / "code" / "inference.py"
    if not path.is_file():
        raise ArtifactError("model.tar.gz has no code/inference.py")
    _load_siblings(path.parent)
    spec = importlib.util.spec_from_file_location("artifact_inference", path)
    if spec is None or spec.loader is None:
        raise ArtifactError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reader(handlers: ModuleType) -> Any:
    """The artifact's request reader: read_reviews, or input_fn in artifacts trained before the
    handlers served through transform_fn (a selective run or the monitor may meet one)."""
    return getattr(handlers, "read_reviews", None) or handlers.input_fn


def scorer_of(handlers: ModuleType) -> Any:
    """The artifact's batch scorer: score, or predict_fn in artifacts trained before transform_fn."""
    return getattr(handlers, "score", None) or handlers.predict_fn


def load_model(archive: Path, scratch: Path) -> tuple[ModuleType, Any]:
    """Extract into scratch, import the handlers and run model_fn (digest and version checks)."""
    extract_model(archive, scratch)
    handlers = load_handlers(scratch)
    try:
        return handlers, handlers.model_fn(str(scratch))
    except Exception as exc:  # the artifact's own loader refused it
        raise ArtifactError(f"the model artifact was refused by its model_fn: {exc}") from exc
