"""The container contract every job shares: `/opt/ml` is a private job directory.

A step script cannot tell it is not in a container: inputs, config files and environment are where
SageMaker would put them. Confined (system/isolation.py), a job finds its directory's
`<work_dir>/<job>/opt/ml` at /opt/ml itself, and every path it is given reads as SageMaker writes
it; where it cannot be shown one, the paths are rebased onto that folder (announced through
SAGEMAKER_BASE_DIR). Either way one pipeline definition runs on SageMaker and here unchanged.
Everything a job reads is copied out of the store and everything it writes stays in its job dir
until the job succeeds and its outputs are uploaded.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import IO, Any

from pipelines.local.jobs.image_python import ImagePython
from pipelines.local.jobs.images import container_environment
from pipelines.local.jobs.log_events import StreamWriter, open_stream
from pipelines.local.jobs.outcome import JobError
from pipelines.local.storage.objects import NoSuchBucket, NoSuchKey, ObjectStore
from pipelines.local.system.instance_types import Instance
from pipelines.local.system.isolation import (
    Confinement,
    PrivateTmp,
    as_started_directly,
    confined,
    hidden_among,
    in_own_processes,
    shows_opt_ml,
)
from pipelines.local.system.supervision import KILL_GRACE_SECONDS, ProcessExit, run_to_end

CONTAINER_BASE = PurePosixPath("/opt/ml")
HOST = "algo-1"  # the one instance's host name, as SageMaker names the first
_JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_CONTAINER_PATH = re.compile(r"(?<![\w./-])/opt/ml(?=/|$|[^\w.-])")
# How Python (and pandas, which raises the same error) says a literal /opt/ml path is not there.
_MISSING_CONTAINER_PATH = re.compile(r"No such file or directory: '/opt/ml[/']")


@dataclass(frozen=True)
class JobDirs:
    """The job's private tree: `root` holds logs and scratch, `base` stands in for /opt/ml, and
    `seen` is where the job finds `base`: /opt/ml itself where it is confined with one of its own,
    else `base`. The runner stages files at `base`; what the job is told (arguments, environment,
    config files, its working directory) names `seen`."""

    name: str
    root: Path
    base: Path
    seen: Path

    def as_seen(self, path: Path) -> Path:
        """A path in the job's base directory as the job finds it."""
        return self.seen / path.relative_to(self.base)


def container_base_in(folder: Path) -> Path:
    """Where /opt/ml is inside the folder of a job or a model server instance: rebased onto it."""
    return folder.joinpath(*CONTAINER_BASE.parts[1:])


def seen_base(base: Path, confinement: Confinement | None) -> Path:
    """Where a child run with `confinement` finds `base`, its folder's stand-in for /opt/ml: at
    /opt/ml itself where `confined` shows it there, else where it is."""
    return Path(CONTAINER_BASE) if shows_opt_ml(confinement) else base


def prepare_job_dir(work_dir: Path, job_name: str, confinement: Confinement | None) -> JobDirs:
    """A fresh `<work_dir>/<job_name>`, for a job run with `confinement`; the name is checked first
    since it becomes a path."""
    if not _JOB_NAME.fullmatch(job_name):
        raise JobError(
            f"ValidationException: invalid job name {job_name!r}: 1 to 63 letters, digits or "
            "hyphens, starting and ending with a letter or digit"
        )
    root = Path(work_dir) / job_name
    if root.exists():
        shutil.rmtree(root)
    base = container_base_in(root)
    (base / "output").mkdir(parents=True)
    return JobDirs(job_name, root, base, seen_base(base, confinement))


def local_path(container_path: str, base: Path) -> Path:
    """Map a container path into the job dir; anything not under /opt/ml would escape it."""
    path = PurePosixPath(container_path)
    if ".." in path.parts or not (path == CONTAINER_BASE or CONTAINER_BASE in path.parents):
        raise JobError(f"ValidationException: LocalPath {container_path!r} must be under /opt/ml")
    return base.joinpath(*path.relative_to(CONTAINER_BASE).parts)


def rebase(value: str, base: Path) -> str:
    """Point every `/opt/ml` path inside an argument or variable at `base`, where the job finds its
    base dir (unchanged where that is /opt/ml)."""
    return _CONTAINER_PATH.sub(lambda _match: str(base), value)


def rebased_json(value: Any, base: Path) -> Any:
    """A JSON value with every `/opt/ml` path in its strings pointed at `base`, so a script that
    opens a path read from a config file finds it."""
    if isinstance(value, str):
        return rebase(value, base)
    if isinstance(value, Mapping):
        return {key: rebased_json(item, base) for key, item in value.items()}
    if isinstance(value, list):
        return [rebased_json(item, base) for item in value]
    return value


def write_config_files(directory: Path, files: Mapping[str, Any]) -> None:
    """The JSON files SageMaker puts in a config directory before the container starts."""
    directory.mkdir(parents=True, exist_ok=True)
    for file_name, content in files.items():
        (directory / file_name).write_text(json.dumps(content, indent=2), encoding="utf-8")


def base_env(job: JobDirs, python: ImagePython) -> dict[str, str]:
    """The image's environment with its home in the job dir and the job's `python` first on PATH.
    Confined, the job has a /tmp of its own and /opt/ml, as a container has, and nothing more is
    set (SageMaker sets neither TMPDIR nor SAGEMAKER_BASE_DIR); otherwise TMPDIR and
    SAGEMAKER_BASE_DIR name its scratch and base folders in the job dir."""
    confined_view = job.seen == Path(CONTAINER_BASE)
    env = container_environment(job.root / "home", None if confined_view else job.root / "tmp", python.bin)
    if not confined_view:
        env["SAGEMAKER_BASE_DIR"] = str(job.seen)
    return env


def rebased_env(environment: Mapping[str, Any] | None, base: Path) -> dict[str, str]:
    return {str(k): rebase(str(v), base) for k, v in (environment or {}).items()}


def download(store: ObjectStore, uri: str, local: Path) -> None:
    """Stage one input (an S3Prefix: limits.py refuses the other kinds before)."""
    local.mkdir(parents=True, exist_ok=True)
    with store_errors():
        store.download(uri, local)


@contextmanager
def store_errors() -> Iterator[None]:
    """Turn refusals of staging an input into the ClientError / ValidationException reasons
    SageMaker gives; a missing bucket is named as SageMaker names it, which asks that the bucket
    exist and objects be under the prefix."""
    try:
        yield
    except NoSuchBucket as exc:
        raise JobError(
            f'ClientError: No S3 objects found under S3 URL "{exc.uri}" given in input data source. '
            f'Please ensure that the bucket exists in the selected region: the bucket "{exc.bucket}" '
            "does not exist in the local store."
        ) from None
    except NoSuchKey as exc:
        raise JobError(
            f'ClientError: No S3 objects found under S3 URL "{exc.uri}" given in input data '
            "source. Please ensure that the object or prefix exists in the local store."
        ) from None
    except ValueError as exc:
        raise JobError(f"ValidationException: {exc}") from None


@contextmanager
def upload_errors() -> Iterator[None]:
    """Turn refusals of uploading an output into the reason SageMaker gives when an upload fails."""
    try:
        yield
    except NoSuchBucket as exc:
        raise JobError(
            f"ClientError: Artifact upload failed:Unable to upload file to {exc.uri} (NoSuchBucket: The "
            f'specified bucket does not exist: "{exc.bucket}")'
        ) from None
    except ValueError as exc:
        raise JobError(f"ValidationException: {exc}") from None


def max_runtime(request: Mapping[str, Any]) -> float | None:
    limit = request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
    return None if limit is None else float(limit)


def run_container(
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    job: JobDirs,
    python: ImagePython,
    log: IO[str],
    timeout: float | None,
    cancel: threading.Event | None,
    isolated: bool = False,
    grace: float = KILL_GRACE_SECONDS,
    confinement: Confinement | None = None,
    instance: Instance | None = None,
) -> ProcessExit:
    """Run the container command; its output goes to the execution log, the job's logs.txt and its
    log stream, each line with the time it was written (log_events.py). It sees its job directory,
    its `python` (read-only) and what `confinement` leaves of the machine, and a network-isolated
    job no network at all (system/isolation.py); a stopped one gets `grace` seconds between
    SIGTERM and SIGKILL. On its `instance` it runs on that many vCPUs of this machine
    (system/cpus.py), and processes that outgrow the instance's memory are killed as SageMaker's
    OOM killer kills them. Confined, it finds its job directory's base at /opt/ml too, so a path
    written as /opt/ml/... works as in a container, and starts in `cwd` (a folder of its base
    directory) there; unconfined, a job that fails on one gets a line in its log saying where
    /opt/ml is here."""
    command = confined(
        argv, job.root, confinement, network=not isolated, shown=python.trees,
        tmp=PrivateTmp.under(job.root), opt_ml=job.base, workdir=job.as_seen(cwd), own_processes=True,
    )
    logs_txt = job.root / "logs.txt"
    with open(logs_txt, "w", encoding="utf-8") as logs_file, open_stream(job.root, HOST) as events:
        sinks = (log, logs_file, StreamWriter(events))
        memory, vcpus = (instance.memory_limit(), instance.vcpus) if instance is not None else (None, None)
        record = job.root / "pgid"
        finish = run_to_end(command, env, cwd, sinks, record, timeout, cancel, grace, memory, vcpus)
        # As the toolkit, which starts the script itself, sees it: minus N for a script signal N ended.
        finish = replace(finish, returncode=as_started_directly(finish.returncode, in_own_processes(command)))
        if finish.returncode != 0:
            for hint in _missing_path_hints(finish.output_tail, job, python, confinement):
                for sink in sinks:
                    sink.write(hint)
                    sink.flush()
        return finish


def _missing_path_hints(
    output_tail: list[str], job: JobDirs, python: ImagePython, confinement: Confinement | None
) -> list[str]:
    """Log lines for a job that failed on a path it cannot have: one it wrote as /opt/ml/... where
    it has no /opt/ml, or one that confinement hides from it (in the user's home folder or the
    local state, and not in what the job is shown there: its own folder, the project, its
    interpreter)."""
    hints = []
    missing_container_path = any(_MISSING_CONTAINER_PATH.search(line) for line in output_tail)
    if missing_container_path and not shows_opt_ml(confinement):
        hints.append(_rebased_path_hint(job))
    if confinement is not None:
        hidden = hidden_among("\n".join(output_tail), confinement, (job.root, *python.trees))
        hints += [_hidden_path_hint(tree) for tree in hidden]
    return hints


def _hidden_path_hint(hidden: Path) -> str:
    return (
        f"[local-sagemaker] a path under {hidden} was not found: a local job does not see it, as a "
        "SageMaker container sees nothing of the machine it runs on; a file the job needs reaches it "
        "as an input (ProcessingInput, a training channel) or in its code\n"
    )


def _rebased_path_hint(job: JobDirs) -> str:
    """The log line for a job that failed on a path it wrote as /opt/ml/...: where /opt/ml is here."""
    return (
        f"[local-sagemaker] a path under /opt/ml was not found: a local job's /opt/ml is {job.base}, which "
        "SAGEMAKER_BASE_DIR names (the training toolkit reads it too); a script that takes its base "
        "directory from SAGEMAKER_BASE_DIR, /opt/ml when unset, runs on SageMaker and here alike\n"
    )
