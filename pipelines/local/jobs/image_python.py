"""The Python a job or model server runs: this machine's interpreter, seeing only the packages the
SageMaker scikit-learn image has.

The environment that runs the local target also holds the SageMaker SDK, moto, pytest, matplotlib
and the rest of its tools. A step or inference script that imported one of them would run green
here and fail with ModuleNotFoundError in the image. So a job or model server runs in a virtual
environment of its own: the base interpreter, and a site-packages that links to the installed
distributions the image has (IMAGE_DISTRIBUTIONS and what they require, as pip installed them
there), and to those the code's requirements.txt names, which the training toolkit pip-installs
before the script runs (and the serving toolkit before the model server starts), with what they
require. A distribution the image has and this machine lacks stays missing: the local target
installs nothing. A model server also starts with the project on its PYTHONPATH, the serving
stack, which it hides from the handler once loaded (hosting/model_server.py).

An environment is a folder of links named by a digest of what it links to. It is made once, the
first time a process needs it, and every later one with the same packages shares it, read-only.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import Distribution, PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from pipelines.local.system.interpreters import installation

# What the image installs, read from aws/sagemaker-scikit-learn-container: its Dockerfiles (numpy,
# scipy, pandas, scikit-learn, pyarrow, mlio; pip, setuptools and wheel from get-pip.py), its
# requirements.txt, and what its own package and the training toolkit (sagemaker-training's
# setup.py) require. Whatever these require is there too (image_distributions).
IMAGE_DISTRIBUTIONS = (
    "numpy", "scipy", "pandas", "scikit-learn", "pyarrow", "mlio", "pip", "setuptools", "wheel",
    "boto3", "botocore", "cryptography", "Flask", "itsdangerous", "gunicorn", "model-archiver",
    "multi-model-server", "protobuf", "psutil", "python-dateutil", "sagemaker-inference", "retrying",
    "sagemaker-containers", "sagemaker-training", "six", "jinja2", "MarkupSafe", "Werkzeug",
    "gevent", "inotify_simple", "paramiko",
)
# Where environments are made when their caller is given no folder for them (tests): a folder in its
# work dir that no job or endpoint is named (their names start with a letter or digit).
ENVIRONMENTS = ".environments"
_VERSION = f"python{sys.version_info.major}.{sys.version_info.minor}"
_BASE = Path(sys._base_executable).resolve()  # type: ignore[attr-defined]  # a venv's own interpreter
_BASE_INSTALLATION = installation(_BASE)
_made = threading.Lock()
_SCRATCH = ".making-"  # an environment being made; renamed into place when done
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImagePython:
    """A job's environment: `folder` holds bin/python and lib/pythonX.Y/site-packages."""

    folder: Path

    @property
    def bin(self) -> Path:
        return self.folder / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    @property
    def trees(self) -> tuple[Path, ...]:
        """What a confined process running it must be shown: the environment and the interpreter's
        installation (often in the user's home folder, which confined processes do not see)."""
        return self.folder, _BASE_INSTALLATION


def image_python(environments: Path, requested: Iterable[str] = ()) -> ImagePython:
    """The environment under `environments` that imports the image's distributions and
    `requested` (as the job's requirements.txt names them, with extras: `pandas[timezone]`) with
    what they require; made if it is not there."""
    found = environment_for(environments, requested)
    with _made:
        if not found.folder.is_dir():
            _make(found, site_links(frozenset(requested)))
    return found


def sweep_unusable(environments: Path) -> None:
    """Remove what no process can run: the scratch folders a server killed while making an
    environment left behind, and environments a package upgrade left behind (a link of theirs
    leads nowhere: the distribution or interpreter it named is gone). Run as the server starts,
    when no other can be making one (the state's lock is held) and no model server of the last one
    still runs; an environment made since has every link whole."""
    with _made:
        for folder in environments.glob("*"):
            if folder.name.startswith(_SCRATCH) or _has_broken_link(folder):
                shutil.rmtree(folder, ignore_errors=True)


def _has_broken_link(folder: Path) -> bool:
    for directory, folders, files in os.walk(folder):  # links to folders are listed, not followed
        for name in (*folders, *files):
            path = Path(directory, name)
            if path.is_symlink() and not path.exists():
                return True
    return False


def environment_for(environments: Path, requested: Iterable[str] = ()) -> ImagePython:
    """Where image_python keeps that environment, whether it is made yet or not."""
    return ImagePython(environments / _identity(frozenset(requested))[:16])


def image_digest() -> str:
    """`sha256:<hex>` of the environment that stands in for the image itself (no requirements
    added): what a deployed image's tag resolves to here, as SageMaker resolves it to the image's
    digest. It changes exactly when that environment does."""
    return f"sha256:{_identity(frozenset())}"


@functools.cache
def _identity(requested: frozenset[str]) -> str:
    """The SHA-256 of what an environment is: the interpreter and every distribution it links."""
    links = site_links(requested)
    listing = "\n".join([str(_BASE), *(f"{name} {target}" for name, target in links)])
    return hashlib.sha256(listing.encode()).hexdigest()


def _make(environment: ImagePython, links: tuple[tuple[str, Path], ...]) -> None:
    """Made in a scratch folder beside it and renamed into place, so a crash leaves no half-made one."""
    environment.folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = ImagePython(Path(tempfile.mkdtemp(dir=environment.folder.parent, prefix=_SCRATCH)))
    try:
        site_packages = scratch.folder / "lib" / _VERSION / "site-packages"
        site_packages.mkdir(parents=True)
        scratch.bin.mkdir()
        (scratch.folder / "pyvenv.cfg").write_text(
            f"home = {_BASE.parent}\ninclude-system-site-packages = false\n"
            f"version = {'.'.join(map(str, sys.version_info[:3]))}\n",
            encoding="utf-8",
        )
        (scratch.bin / _VERSION).symlink_to(_BASE)
        for alias in ("python", "python3"):
            (scratch.bin / alias).symlink_to(_VERSION)
        for name, target in links:
            path = site_packages / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if not os.path.lexists(path):  # distributions may share a namespace package's folder
                path.symlink_to(target)
        os.rename(scratch.folder, environment.folder)
    finally:
        shutil.rmtree(scratch.folder, ignore_errors=True)


@functools.cache
def site_links(requested: frozenset[str] = frozenset()) -> tuple[tuple[str, Path], ...]:
    """(name in site-packages, what it links to) for every distribution a job sees, worked out
    once per server for each set of requested distributions."""
    return tuple(sorted(link for name in image_distributions(requested) for link in _links(name)))


def image_distributions(requested: Iterable[str] = ()) -> list[str]:
    """The installed distributions a job sees, by canonical name: the image's and `requested`, and,
    as pip installs them, every distribution these require, with the extras asked for (markers
    evaluated for this interpreter)."""
    extras_of: dict[str, set[str]] = {}
    pending = [_named(line) for line in (*IMAGE_DISTRIBUTIONS, *requested)]
    while pending:
        name, extras = pending.pop()
        if _installed(name) is None:
            continue
        new = {"", *extras} - extras_of.setdefault(name, set())
        extras_of[name] |= new
        for extra in new:
            pending += _requirements(name, extra)
    return sorted(extras_of)


def _named(line: str) -> tuple[str, frozenset[str]]:
    """(canonical name, extras) of a requirement line; requirements.py has checked it parses."""
    requirement = Requirement(line)
    return canonicalize_name(requirement.name), frozenset(requirement.extras)


@functools.cache
def _installed(name: str) -> Distribution | None:
    try:
        return distribution(name)
    except PackageNotFoundError:
        return None


@functools.cache
def _requirements(name: str, extra: str) -> list[tuple[str, frozenset[str]]]:
    """What a distribution requires with `extra` ("": with none), as (name, extras)."""
    found: list[tuple[str, frozenset[str]]] = []
    for line in _distribution(name).requires or ():
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
            found.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return found


@functools.cache
def _links(name: str) -> list[tuple[str, Path]]:
    """What to link of a distribution's files (its RECORD): each package folder whole, and each
    file outside one on its own, so a namespace folder (google/, shared by distributions) holds
    only the packages of the distributions linked. Files outside site-packages (scripts in bin/)
    are not linked: the image's PATH is not this machine's."""
    found = _distribution(name)
    record = found.read_text("RECORD")
    if record is None:  # installed by something other than pip (a system package): files unknown
        log.warning("%s has no RECORD of its files, so jobs cannot import it", name)
        return []
    files = [line.rsplit(",", 2)[0] for line in record.splitlines() if line]
    files = [file for file in files if not file.startswith(("..", "/"))]
    packages = {file.rpartition("/")[0] for file in files if file.endswith("/__init__.py")}
    entries = set()
    for file in files:
        parts = file.split("/")
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            if depth == len(parts) or prefix in packages or prefix.endswith(".dist-info"):
                entries.add(prefix)
                break
    return [(entry, Path(str(found.locate_file(entry)))) for entry in entries]


def _distribution(name: str) -> Distribution:
    found = _installed(name)
    if found is None:
        raise PackageNotFoundError(name)
    return found
