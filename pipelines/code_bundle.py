"""The step code as content-addressed artifacts.

SageMaker caches a step only when its definition is unchanged, so code must live at paths that change
exactly when the code does: `<prefix>/code/<sha256 of the artifact>/<artifact>`. Each artifact has a
folder of its own (the library's files share one: a job gets it as one S3 prefix), so a change to
evaluate.py changes Evaluate's code path and no other, and Preprocess and Train still hit the cache.
Archives are written byte-for-byte reproducibly (sorted members, fixed times and owners) for the same
reason.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

STEPS_DIR = Path(__file__).resolve().parent.parent / "steps"
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)

TRAINING_SOURCES = ("train.py", "inference.py", "scorer.py", "requirements.txt")
PROCESSING_SCRIPTS = ("preprocess.py", "evaluate.py", "monitor.py")
# The folder evaluate.py and monitor.py get at /opt/ml/processing/input/lib: one S3 prefix (hence
# the trailing slash) whose objects are the library's files, at their paths inside steps/.
PROCESSING_LIBRARY = "lib/"
LIBRARY_SOURCES = ("artifact.py", "integrity.py", "job_failure.py", "splits.py", "monitoring")
# The environment every Processing and Training job of the step code runs with, on both targets.
# OpenBLAS's idle threads spin for about 2**28 cycles before they sleep: loading numpy alone then
# costs 0.1 s of a second core, which jobs running side by side take from each other. A timeout
# of 2**4 cycles lets them sleep at once; the thread count and the numerics stay the same.
STEP_ENVIRONMENT = {"PYTHONUNBUFFERED": "1", "OPENBLAS_THREAD_TIMEOUT": "4"}
DEPLOY_HANDLER = "deploy.py"
DEPLOY_LIBRARY = "integrity.py"  # imported by the deploy handler, zipped beside it


def _targz(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    return raw.getvalue()


def _zip(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=FIXED_ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name])
    return raw.getvalue()


@dataclass(frozen=True)
class CodeBundle:
    """The artifacts built from steps/, keyed by their name under the content-hash folder."""

    steps_dir: Path = STEPS_DIR

    def _read(self, *names: str) -> dict[str, bytes]:
        return {name: (self.steps_dir / name).read_bytes() for name in names}

    @cached_property
    def library(self) -> dict[str, bytes]:
        """The library folder's files by their path inside it: artifact.py and monitoring/*.py."""
        files: dict[str, bytes] = {}
        for source in LIBRARY_SOURCES:
            path = self.steps_dir / source
            for found in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
                files[found.relative_to(self.steps_dir).as_posix()] = found.read_bytes()
        return files

    @cached_property
    def artifacts(self) -> dict[str, bytes]:
        """Artifact name -> bytes: the processing scripts, the library folder's files, the training
        source and the deploy handler package."""
        built = self._read(*PROCESSING_SCRIPTS)
        built.update({PROCESSING_LIBRARY + name: data for name, data in self.library.items()})
        built["sourcedir.tar.gz"] = _targz(self._read(*TRAINING_SOURCES))
        built["deploy.zip"] = _zip(self._read(DEPLOY_HANDLER, DEPLOY_LIBRARY))
        return built

    @cached_property
    def digests(self) -> dict[str, str]:
        """A short hash of each folder's artifacts (names and bytes), by the artifact's folder
        group: the library folder for its files, the artifact's own name for any other."""
        groups: dict[str, list[str]] = {}
        for name in sorted(self.artifacts):
            groups.setdefault(_group(name), []).append(name)
        return {group: _short_hash(b"".join(name.encode() + b"\0" + self.artifacts[name] + b"\0"
                                            for name in names))
                for group, names in groups.items()}

    @cached_property
    def digest(self) -> str:
        """A short hash of every artifact: what names this version of the code as a whole."""
        return _short_hash("".join(f"{group}\0{digest}\0" for group, digest in sorted(self.digests.items()))
                           .encode())

    def folder(self, prefix: str, name: str) -> str:
        """The key of the folder below a bucket prefix that holds an artifact (or the library)."""
        return f"{prefix.strip('/')}/code/{self.digests[_group(name)]}"

    def key(self, prefix: str, name: str) -> str:
        """The object key of an artifact below a bucket prefix (for the library folder, `lib/`)."""
        return f"{self.folder(prefix, name)}/{name}"


def _group(name: str) -> str:
    """Which folder an artifact is stored in: the library's files share one."""
    return PROCESSING_LIBRARY if name.startswith(PROCESSING_LIBRARY) else name


def _short_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]
