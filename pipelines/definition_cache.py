"""Built pipeline definitions, kept under a digest of everything they are built from.

Building a definition imports the SageMaker SDK, which costs seconds, yet a definition is a pure
function of a few inputs: this package's own source (the modules beside this one; the local target
under `local/` plays no part), the step code (the code bundle's digest, which the definition refers
to), the settings, the installed SDK and boto distributions, the Python version, and what the SDK
reads from its surroundings (`SAGEMAKER_*` and `AWS_*` variables, its config files). The cache key
is a SHA-256 over all of them, so a change to any one builds afresh and a hit can only return what
a build would return: a definition is never served stale. Credentials are left out of the key
(they rotate and never reach a definition).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from pipelines import REPO_ROOT
from pipelines.code_bundle import CodeBundle
from pipelines.sdk_env import sdk_environment
from pipelines.settings import Settings

PACKAGE_DIR = Path(__file__).resolve().parent
CACHE_DIR = REPO_ROOT / "out" / "cache" / "definitions"
KEPT = 8  # entries kept; older ones are pruned when a new one is written
DISTRIBUTIONS = (
    "sagemaker", "sagemaker-core", "sagemaker-mlops", "sagemaker-train", "sagemaker-serve",
    "boto3", "botocore", "pydantic",
)
SECRET_MARKERS = ("SECRET", "SESSION_TOKEN", "ACCESS_KEY", "SECURITY_TOKEN")
# Settings of where the local server keeps its state and listens: no part of a definition, so a
# fresh state directory (a test's, a benchmark's) finds the definitions another one built.
SERVER_ONLY_SETTINGS = ("state_dir", "local_port")


@dataclass(frozen=True)
class Definitions:
    """The two pipelines' definition JSON documents, as the SDK renders them."""

    training: str
    monitoring: str


def _distribution_fingerprint(name: str) -> str:
    """A digest of the installed distribution's METADATA (its name and version among them):
    reading it is cheap where `metadata.version` would parse it as an e-mail, a tenth of a second
    for these eight."""
    try:
        text = metadata.distribution(name).read_text("METADATA") or ""
    except metadata.PackageNotFoundError:
        return "absent"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _sdk_config_files() -> list[Path]:
    """The config files the SDK merges into what it builds (admin, user, local mode; each may be
    moved by an environment variable)."""
    from platformdirs import site_config_dir, user_config_dir

    admin = os.environ.get("SAGEMAKER_ADMIN_CONFIG_OVERRIDE", f"{site_config_dir('sagemaker')}/config.yaml")
    user = os.environ.get("SAGEMAKER_USER_CONFIG_OVERRIDE", f"{user_config_dir('sagemaker')}/config.yaml")
    return [Path(admin), Path(user), Path.home() / ".sagemaker" / "config.yaml"]


def _file_digest(path: Path) -> str:
    if path.is_dir():
        return "directory:" + ",".join(
            f"{item.name}={_file_digest(item)}" for item in sorted(path.iterdir()) if item.is_file()
        )
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "absent"


def cache_key(settings: Settings, bundle: CodeBundle) -> str:
    """A digest of every input of the build (see the module docstring)."""
    environment = {
        name: value
        for name, value in sdk_environment().items()
        if name.startswith(("SAGEMAKER_", "AWS_")) and not any(m in name for m in SECRET_MARKERS)
    }
    inputs = {
        "sources": {path.name: _file_digest(path) for path in sorted(PACKAGE_DIR.glob("*.py"))},
        "code": bundle.digest,
        "settings": {k: v for k, v in asdict(settings).items() if k not in SERVER_ONLY_SETTINGS},
        "distributions": {name: _distribution_fingerprint(name) for name in DISTRIBUTIONS},
        "python": sys.version,
        "environment": dict(sorted(environment.items())),
        "sdk_config": {str(path): _file_digest(path) for path in _sdk_config_files()},
    }
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _entry(settings: Settings, bundle: CodeBundle, cache_dir: Path) -> Path:
    return cache_dir / f"{cache_key(settings, bundle)}.json"


# Builds started by `build_in_background`, by the cache entry each will write.
_BUILDING: dict[Path, subprocess.Popen[bytes]] = {}


def build_in_background(settings: Settings, bundle: CodeBundle, cache_dir: Path = CACHE_DIR) -> None:
    """When these definitions are not cached, build them in a child process that writes the cache
    entry, so that the SDK's seconds overlap whatever the caller does first (`run` uploads the data
    and starts the local server), and the caller never loads the SDK: `run` then follows the
    execution for as long as it runs without the SDK's few hundred MB, freed before the jobs start."""
    entry = _entry(settings, bundle, cache_dir)
    if entry.is_file() or entry in _BUILDING:
        return
    argv = [sys.executable, "-m", "pipelines.definition_cache", str(entry),
            json.dumps(asdict(settings)), str(bundle.steps_dir)]
    _BUILDING[entry] = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def build(settings: Settings, bundle: CodeBundle) -> Definitions:
    """Both definitions through the SageMaker SDK (imported here, only when needed)."""
    from pipelines.definition import definition_json
    from pipelines.monitoring_definition import monitoring_definition_json

    return Definitions(definition_json(settings, bundle), monitoring_definition_json(settings, bundle))


def _prune(directory: Path) -> None:
    entries = sorted(directory.glob("*.json"), key=lambda path: path.stat().st_mtime, reverse=True)
    for stale in entries[KEPT:]:
        stale.unlink(missing_ok=True)


BUILDING_MESSAGE = (
    "building the pipeline definitions with the SageMaker SDK (a few seconds: none is kept for "
    "this code and these settings yet)"
)


def definitions(
    settings: Settings, bundle: CodeBundle, cache_dir: Path = CACHE_DIR,
    say: Callable[[str], None] | None = None,
) -> Definitions:
    """The definitions for these settings and code: from the cache when every input is unchanged,
    built (and kept) otherwise, `say`ing so first: a build takes seconds. A damaged entry is
    rebuilt, never trusted."""
    path = _entry(settings, bundle, cache_dir)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return Definitions(str(document["training"]), str(document["monitoring"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if say is not None:
        say(BUILDING_MESSAGE)
    building = _BUILDING.pop(path, None)
    if building is not None and building.wait() == 0:
        return definitions(settings, bundle, cache_dir)
    # Not built in the background, or that build failed: here, so that its error is this process's.
    built = build(settings, bundle)
    _keep(path, built)
    return built


def _keep(path: Path, built: Definitions) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(asdict(built)), encoding="utf-8")
    os.replace(partial, path)
    _prune(path.parent)


if __name__ == "__main__":  # build_in_background's child: ENTRY SETTINGS_JSON STEPS_DIR
    _keep(Path(sys.argv[1]), build(Settings(**json.loads(sys.argv[2])), CodeBundle(Path(sys.argv[3]))))
