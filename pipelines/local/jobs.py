"""Processing and Training jobs as local processes, following SageMaker's container contract.

A step script cannot tell it is not in a container: inputs, config files and environment are where
SageMaker would put them, only rebased from `/opt/ml` onto `<work_dir>/<job>/opt/ml` (announced
through SAGEMAKER_BASE_DIR), so one pipeline definition runs on SageMaker and here unchanged.
Everything a job reads is copied out of the store and everything it writes stays in its job dir
until the job succeeds and its outputs are uploaded.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

from pipelines.local.archives import UnsafeArchive, extract_tar
from pipelines.local.executor import StepOutcome
from pipelines.local.expressions import format_timestamp
from pipelines.local.processes import die_with_parent
from pipelines.local.store import NoSuchKey, ObjectStore, iter_files

CONTAINER_BASE = PurePosixPath("/opt/ml")
ACCOUNT = "000000000000"
HOST = "algo-1"
MESSAGE_LIMIT = 1024  # SageMaker keeps the first 1 KB of a failure file
STDERR_TAIL_LINES = 20
KILL_GRACE_SECONDS = 5.0
POLL_SECONDS = 0.1
_JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_CONTAINER_PATH = re.compile(r"(?<![\w./-])/opt/ml(?=/|$|[^\w.-])")
_PYTHONS = {"python", "python3"}
_RESOURCES = {"current_host": HOST, "hosts": [HOST], "network_interface_name": "eth0"}


class _JobError(Exception):
    """The job cannot run as requested; the message is its FailureReason."""


@dataclass(frozen=True)
class _Finish:
    """How the container process ended."""

    returncode: int
    stopped_by: str  # "", "timeout" or "cancel"
    stderr_tail: list[str]


@dataclass(frozen=True)
class _Ending:
    """The job's final status as DescribeProcessingJob / DescribeTrainingJob report it."""

    status: str  # Completed | Failed | Stopped
    secondary: str  # Completed | Failed | Stopped | MaxRuntimeExceeded
    reason: str = ""
    exit_message: str = ""


@dataclass(frozen=True)
class _JobDirs:
    """The job's private tree: `root` holds logs and scratch, `base` stands in for /opt/ml."""

    name: str
    root: Path
    base: Path


# ----------------------------------------------------------------------------- processing


def run_processing_job(
    job_name: str,
    request: dict[str, Any],
    store: ObjectStore,
    work_dir: Path,
    log: IO[str],
    *,
    cancel: threading.Event | None = None,
) -> StepOutcome:
    """Run a CreateProcessingJob request: stage inputs, run the entrypoint, upload the outputs."""
    start = _now()
    try:
        job = _prepare_job_dir(work_dir, job_name)
        outputs = _processing_outputs(request, job.base)
        argv = _container_command(request.get("AppSpecification", {}), job.base)
        for name, uri, local, data_type in _processing_inputs(request, job.base):
            _download(store, uri, local, data_type, name)
    except (_JobError, KeyError) as exc:
        return _processing_outcome(job_name, request, start, _refused(exc))
    env = {**_base_env(job), **_rebased_env(request.get("Environment"), job.base)}
    timeout = _max_runtime(request)
    finish = _run_container(argv, env, job.base, job.root, log, timeout, cancel)
    ending = _ending(finish, job.base / "output" / "message", timeout)
    if ending.status == "Completed":
        try:
            with _store_errors():
                for local, uri in outputs:
                    store.upload_dir(local, uri)
        except _JobError as exc:
            ending = _Ending("Failed", "Failed", str(exc))
    return _processing_outcome(job_name, request, start, ending)


def _processing_inputs(request: Mapping[str, Any], base: Path) -> list[tuple[str, str, Path, str]]:
    """(name, S3 URI, local dir, S3DataType) of every input; the code arrives as one of them."""
    inputs = []
    for item in request.get("ProcessingInputs", []):
        name = item.get("InputName", "")
        s3 = item.get("S3Input")
        if s3 is None:
            raise _JobError(
                f"ValidationException: input {name!r} has no S3Input; only S3 inputs "
                "are supported locally"
            )
        local = _local_path(s3["LocalPath"], base)
        inputs.append((name, s3["S3Uri"], local, s3.get("S3DataType", "S3Prefix")))
    return inputs


def _processing_outputs(request: Mapping[str, Any], base: Path) -> list[tuple[Path, str]]:
    """(local dir, S3 URI) of every output, the dirs created empty as the container would see."""
    outputs = []
    for item in request.get("ProcessingOutputConfig", {}).get("Outputs", []):
        s3 = item.get("S3Output")
        if s3 is None:
            raise _JobError(
                f"ValidationException: output {item.get('OutputName')!r} has no "
                "S3Output; only S3 outputs are supported locally"
            )
        local = _local_path(s3["LocalPath"], base)
        local.mkdir(parents=True, exist_ok=True)
        outputs.append((local, s3["S3Uri"]))
    return outputs


def _container_command(app: Mapping[str, Any], base: Path) -> list[str]:
    """The entrypoint plus arguments, rebased, with `python3` meaning this interpreter."""
    entrypoint = [str(part) for part in app.get("ContainerEntrypoint") or []]
    if not entrypoint:
        raise _JobError(
            "ValidationException: AppSpecification.ContainerEntrypoint is required "
            "locally, as there is no image entrypoint to fall back on"
        )
    arguments = [str(part) for part in app.get("ContainerArguments") or []]
    argv = [_rebase(part, base) for part in entrypoint + arguments]
    if PurePosixPath(argv[0]).name in _PYTHONS:
        argv[0] = sys.executable
    return argv


def _processing_outcome(
    job_name: str, request: Mapping[str, Any], start: str, ending: _Ending
) -> StepOutcome:
    """DescribeProcessingJob's shape: the request echoed back plus identity and status."""
    arn = _arn("processing-job", job_name)
    properties = {
        **copy.deepcopy(dict(request)),
        "ProcessingJobName": job_name,
        "ProcessingJobArn": arn,
        "ProcessingJobStatus": ending.status,
        "ExitMessage": ending.exit_message,
        "FailureReason": ending.reason,
        "ProcessingInputs": copy.deepcopy(request.get("ProcessingInputs", [])),
        "Environment": copy.deepcopy(request.get("Environment") or {}),
        "ProcessingStartTime": start,
        "ProcessingEndTime": _now(),
    }
    return _outcome(ending, properties, {"ProcessingJob": {"Arn": arn}})


# ----------------------------------------------------------------------------- training


def run_training_job(
    job_name: str,
    request: dict[str, Any],
    store: ObjectStore,
    work_dir: Path,
    log: IO[str],
    *,
    cancel: threading.Event | None = None,
) -> StepOutcome:
    """Run a CreateTrainingJob request as the scikit-learn image's training toolkit would."""
    start = _now()
    stored = stored_hyperparameters(request.get("HyperParameters") or {})
    hyperparameters = {name: _decode(value) for name, value in stored.items()}
    output_path = request.get("OutputDataConfig", {}).get("S3OutputPath", "")
    output_uri = f"{output_path.rstrip('/')}/{job_name}/output"
    try:
        job = _prepare_job_dir(work_dir, job_name)
        if not output_path:
            raise KeyError("OutputDataConfig.S3OutputPath")
        channels = _stage_channels(request, job.base, store)
        _write_config(job.base, stored, channels)
        program, submit_uri = _stage_code(hyperparameters, job.base, store)
    except (_JobError, KeyError) as exc:
        return _training_outcome(job_name, request, stored, start, _refused(exc), output_uri)
    user = {k: v for k, v in hyperparameters.items() if not k.startswith("sagemaker_")}
    args = to_cmd_args(user)
    env = {
        **_base_env(job),
        **_rebased_env(request.get("Environment"), job.base),
        "TRAINING_JOB_NAME": job_name,
        "TRAINING_JOB_ARN": _arn("training-job", job_name),
        **_toolkit_env(job, user, args, channels, program, submit_uri, hyperparameters),
    }
    timeout = _max_runtime(request)
    argv = [sys.executable, program, *args]
    finish = _run_container(argv, env, job.base / "code", job.root, log, timeout, cancel)
    ending = _ending(finish, job.base / "output" / "failure", timeout)
    if ending.status == "Completed":
        try:
            _upload_artifacts(job, store, output_uri)
        except _JobError as exc:
            ending = _Ending("Failed", "Failed", str(exc))
    return _training_outcome(job_name, request, stored, start, ending, output_uri)


def stored_hyperparameters(hyperparameters: Mapping[str, Any]) -> dict[str, str]:
    """HyperParameters as SageMaker stores them: strings, with non-strings JSON-encoded."""
    return {
        str(name): value if isinstance(value, str) else json.dumps(value)
        for name, value in hyperparameters.items()
    }


def to_cmd_args(hyperparameters: Mapping[str, Any]) -> list[str]:
    """The toolkit's argument list: sorted names, `--name` (`-n` for one-letter names), mappings
    as `k=v,...`, everything else through str(); values are already JSON-decoded."""
    args: list[str] = []
    for name in sorted(hyperparameters):
        value = hyperparameters[name]
        if isinstance(value, Mapping):
            text = ",".join(f"{k}={v}" for k, v in sorted(value.items()))
        else:
            text = "" if value is None else str(value)
        args += [f"--{name}" if len(name) > 1 else f"-{name}", text]
    return args


def _decode(value: str) -> Any:
    """The toolkit JSON-decodes each stored value and keeps the raw string when that fails."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def _stage_channels(
    request: Mapping[str, Any], base: Path, store: ObjectStore
) -> dict[str, dict[str, str]]:
    """Download each channel to input/data/<channel>; returns inputdataconfig.json's content."""
    mode = request.get("AlgorithmSpecification", {}).get("TrainingInputMode", "File")
    config: dict[str, dict[str, str]] = {}
    for channel in request.get("InputDataConfig", []):
        name = channel["ChannelName"]
        source = channel.get("DataSource", {}).get("S3DataSource")
        if source is None:
            raise _JobError(
                f"ValidationException: channel {name!r} has no S3DataSource; only S3 "
                "channels are supported locally"
            )
        local = base / "input" / "data" / name
        _download(store, source["S3Uri"], local, source.get("S3DataType", "S3Prefix"), name)
        config[name] = {
            "TrainingInputMode": channel.get("InputMode") or mode,
            "S3DistributionType": source.get("S3DataDistributionType", "FullyReplicated"),
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
        }
        if "ContentType" in channel:
            config[name]["ContentType"] = channel["ContentType"]
    return config


def _write_config(
    base: Path, hyperparameters: Mapping[str, str], channels: Mapping[str, Any]
) -> None:
    """The files SageMaker writes to input/config, and the folders the toolkit expects."""
    config = base / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    for file_name, content in (
        ("hyperparameters.json", hyperparameters),
        ("resourceconfig.json", _RESOURCES),
        ("inputdataconfig.json", channels),
    ):
        (config / file_name).write_text(json.dumps(content, indent=2), encoding="utf-8")
    for folder in ("model", "output/data", "code"):
        (base / folder).mkdir(parents=True, exist_ok=True)


def _stage_code(
    hyperparameters: Mapping[str, Any], base: Path, store: ObjectStore
) -> tuple[str, str]:
    """Unpack sagemaker_submit_directory into code/; returns (sagemaker_program, its URI)."""
    program = hyperparameters.get("sagemaker_program")
    submit_uri = hyperparameters.get("sagemaker_submit_directory")
    if not isinstance(program, str) or not isinstance(submit_uri, str):
        raise _JobError(
            "ClientError: hyperparameters sagemaker_program and "
            "sagemaker_submit_directory are required (there is no image code to run)"
        )
    with _store_errors():
        if not store.exists(submit_uri):
            raise NoSuchKey(submit_uri)
        _extract_safely(store.path_for(submit_uri), base / "code", submit_uri)
    script = PurePosixPath(program)
    if script.is_absolute() or ".." in script.parts or not (base / "code" / script).is_file():
        raise _JobError(f"ClientError: sagemaker_program {program!r} is not a file in {submit_uri}")
    return program, submit_uri


def _extract_safely(archive: Path, dest: Path, uri: str) -> None:
    try:
        extract_tar(archive, dest)
    except UnsafeArchive as exc:
        raise _JobError(f"ClientError: {exc} ({uri})") from None


def _toolkit_env(
    job: _JobDirs,
    user: Mapping[str, Any],
    args: list[str],
    channels: Mapping[str, Any],
    program: str,
    submit_uri: str,
    hyperparameters: Mapping[str, Any],
) -> dict[str, str]:
    """The SM_* variables the training toolkit sets, with paths rebased into the job dir."""
    base = job.base
    channel_dirs = {name: str(base / "input" / "data" / name) for name in channels}
    values: dict[str, Any] = {
        "hosts": [HOST],
        "current_host": HOST,
        "network_interface_name": "eth0",
        "hps": dict(user),
        "user_entry_point": program,
        "module_name": program.removesuffix(".py"),
        "module_dir": submit_uri,
        "resource_config": _RESOURCES,
        "input_data_config": dict(channels),
        "channels": sorted(channels),
        "log_level": hyperparameters.get("sagemaker_container_log_level", 20),
        "num_cpus": os.cpu_count() or 1,
        "num_gpus": 0,
        "model_dir": str(base / "model"),
        "input_dir": str(base / "input"),
        "input_config_dir": str(base / "input" / "config"),
        "output_dir": str(base / "output"),
        "output_data_dir": str(base / "output" / "data"),
        "output_intermediate_dir": str(base / "output" / "intermediate"),
        "user_args": args,
    }
    values["training_env"] = {
        **{k: v for k, v in values.items() if k not in ("hps", "channels", "user_args")},
        "hyperparameters": dict(user),
        "channel_input_dirs": channel_dirs,
        "job_name": job.name,
        "is_master": True,
        "master_hostname": HOST,
    }
    values.update({f"channel_{name}": path for name, path in channel_dirs.items()})
    values.update({f"hp_{name}": value for name, value in user.items()})
    return {f"SM_{key.upper()}": _env_value(value) for key, value in values.items()}


def _env_value(value: Any) -> str:
    """As the toolkit formats env values: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _upload_artifacts(job: _JobDirs, store: ObjectStore, output_uri: str) -> None:
    """model/ always becomes model.tar.gz; output/data/ becomes output.tar.gz when not empty."""
    uploads = [("model", "model.tar.gz")]
    if iter_files(job.base / "output" / "data"):
        uploads.append(("output/data", "output.tar.gz"))
    with _store_errors():
        for folder, archive_name in uploads:
            archive = job.root / archive_name
            _pack(job.base / folder, archive)
            store.put_file(f"{output_uri}/{archive_name}", archive)


def _pack(directory: Path, archive: Path) -> None:
    """tar.gz of the regular files under `directory`, named relative to it (no `./`)."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in iter_files(directory):
            tar.add(path, arcname=path.relative_to(directory).as_posix(), recursive=False)


def _training_outcome(
    job_name: str,
    request: Mapping[str, Any],
    hyperparameters: Mapping[str, str],
    start: str,
    ending: _Ending,
    output_uri: str,
) -> StepOutcome:
    """DescribeTrainingJob's shape: the request echoed back plus identity, status and artifacts."""
    arn = _arn("training-job", job_name)
    properties = {
        **copy.deepcopy(dict(request)),
        "TrainingJobName": job_name,
        "TrainingJobArn": arn,
        "TrainingJobStatus": ending.status,
        "SecondaryStatus": ending.secondary,
        "FailureReason": ending.reason,
        "HyperParameters": dict(hyperparameters),
        "ModelArtifacts": {"S3ModelArtifacts": f"{output_uri}/model.tar.gz"},
        "TrainingStartTime": start,
        "TrainingEndTime": _now(),
    }
    return _outcome(ending, properties, {"TrainingJob": {"Arn": arn}})


# ----------------------------------------------------------------------------- shared


def _prepare_job_dir(work_dir: Path, job_name: str) -> _JobDirs:
    """A fresh `<work_dir>/<job_name>`; the name is checked first since it becomes a path."""
    if not _JOB_NAME.fullmatch(job_name):
        raise _JobError(
            f"ValidationException: invalid job name {job_name!r}: 1 to 63 letters, digits or "
            "hyphens, starting and ending with a letter or digit"
        )
    root = Path(work_dir) / job_name
    if root.exists():
        shutil.rmtree(root)
    base = root.joinpath(*CONTAINER_BASE.parts[1:])
    (base / "output").mkdir(parents=True)
    (root / "tmp").mkdir()
    return _JobDirs(job_name, root, base)


def _local_path(container_path: str, base: Path) -> Path:
    """Map a container path into the job dir; anything not under /opt/ml would escape it."""
    path = PurePosixPath(container_path)
    if ".." in path.parts or not (path == CONTAINER_BASE or CONTAINER_BASE in path.parents):
        raise _JobError(f"ValidationException: LocalPath {container_path!r} must be under /opt/ml")
    return base.joinpath(*path.relative_to(CONTAINER_BASE).parts)


def _rebase(value: str, base: Path) -> str:
    """Point every `/opt/ml` path inside an argument or variable at the job's base dir."""
    return _CONTAINER_PATH.sub(lambda _match: str(base), value)


def _base_env(job: _JobDirs) -> dict[str, str]:
    """This process's environment without its SM_* (a container starts without them), plus the
    local contract: the base dir, unbuffered output for live logs, a scratch dir in the job dir."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SM_")}
    env.update(SAGEMAKER_BASE_DIR=str(job.base), PYTHONUNBUFFERED="1", TMPDIR=str(job.root / "tmp"))
    return env


def _rebased_env(environment: Mapping[str, Any] | None, base: Path) -> dict[str, str]:
    return {str(k): _rebase(str(v), base) for k, v in (environment or {}).items()}


def _download(store: ObjectStore, uri: str, local: Path, data_type: str, name: str) -> None:
    """Stage one input; only S3Prefix (the SDK's default) has a local meaning."""
    if data_type != "S3Prefix":
        raise _JobError(
            f"ValidationException: input {name!r}: S3DataType {data_type!r} is not "
            "supported locally (only S3Prefix)"
        )
    local.mkdir(parents=True, exist_ok=True)
    with _store_errors():
        store.download(uri, local)


@contextmanager
def _store_errors() -> Iterator[None]:
    """Turn store refusals into the ClientError / ValidationException reasons SageMaker gives."""
    try:
        yield
    except NoSuchKey as exc:
        raise _JobError(
            f'ClientError: No S3 objects found under S3 URL "{exc.uri}" given in input data '
            "source. Please ensure that the object or prefix exists in the local store."
        ) from None
    except ValueError as exc:
        raise _JobError(f"ValidationException: {exc}") from None


def _max_runtime(request: Mapping[str, Any]) -> float | None:
    limit = request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
    return None if limit is None else float(limit)


def _run_container(
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    job_root: Path,
    log: IO[str],
    timeout: float | None,
    cancel: threading.Event | None,
) -> _Finish:
    """Run the command in its own process group, streaming its output line by line."""
    with open(job_root / "logs.txt", "w", encoding="utf-8") as logs_file:
        sink = _LogSink(log, logs_file)
        try:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGKILL),
            )
        except OSError as exc:
            sink.write(f"cannot start {argv[0]}: {exc}\n")
            return _Finish(127, "", [f"cannot start {argv[0]}: {exc}"])
        # Its children do not get the parent-death signal: the group is recorded so that a
        # restarted server can kill what a crash left running (models.recover).
        (job_root / "pgid").write_text(str(process.pid))
        tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        readers = [
            threading.Thread(target=sink.pump, args=(process.stdout, None), daemon=True),
            threading.Thread(target=sink.pump, args=(process.stderr, tail), daemon=True),
        ]
        for reader in readers:
            reader.start()
        stopped_by = _wait(process, timeout, cancel, sink)
        for reader in readers:  # bounded: a process that left the group may hold the pipes
            reader.join(timeout=KILL_GRACE_SECONDS)
        sink.close()
    (job_root / "pgid").unlink(missing_ok=True)
    return _Finish(process.returncode, stopped_by, list(tail))


def _wait(
    process: subprocess.Popen[str],
    timeout: float | None,
    cancel: threading.Event | None,
    sink: _LogSink,
) -> str:
    """Wait for the process; stop its group on timeout or cancel. Returns what stopped it."""
    deadline = None if timeout is None else time.monotonic() + timeout
    stopped_by = ""
    while not stopped_by:
        try:
            process.wait(timeout=POLL_SECONDS)
            break
        except subprocess.TimeoutExpired:
            if cancel is not None and cancel.is_set():
                stopped_by = "cancel"
            elif deadline is not None and time.monotonic() >= deadline:
                stopped_by = "timeout"
    if stopped_by:
        sink.write(f"[local-sagemaker] stopping the job ({stopped_by})\n")
        _signal_group(process.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=KILL_GRACE_SECONDS)
    _signal_group(process.pid, signal.SIGKILL)  # a container's leftovers die with it
    process.wait()
    return stopped_by


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, signum)


class _LogSink:
    """Copies lines to every stream as they come, one whole line at a time, until closed."""

    def __init__(self, *streams: IO[str]) -> None:
        self._streams = streams
        self._lock = threading.Lock()
        self._closed = False

    def write(self, line: str) -> None:
        with self._lock:
            for stream in () if self._closed else self._streams:
                stream.write(line)
                stream.flush()

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def pump(self, source: IO[str], tail: deque[str] | None) -> None:
        for line in source:
            self.write(line if line.endswith("\n") else line + "\n")
            if tail is not None:
                tail.append(line.rstrip("\n"))


def _ending(finish: _Finish, failure_file: Path, timeout: float | None) -> _Ending:
    """Status and reason: the container's failure file wins, else exit code and stderr tail."""
    if finish.stopped_by == "cancel":
        return _Ending("Stopped", "Stopped", "Stopped: the job was stopped on request.")
    if finish.stopped_by == "timeout":
        reason = f"MaxRuntimeExceeded: the job ran longer than MaxRuntimeInSeconds ({timeout:g})."
        return _Ending("Stopped", "MaxRuntimeExceeded", reason)
    if finish.returncode == 0:
        return _Ending("Completed", "Completed")
    message = _read_message(failure_file)
    if message:
        return _Ending("Failed", "Failed", message, message)
    return _Ending("Failed", "Failed", _crash_reason(finish))


def _read_message(path: Path) -> str:
    """The first 1 KB of a failure file, as SageMaker reports it."""
    if not path.is_file():
        return ""
    with open(path, "rb") as file:
        return file.read(MESSAGE_LIMIT).decode("utf-8", errors="ignore").strip()


def _crash_reason(finish: _Finish) -> str:
    """Exit code and the end of stderr, cut from the front to fit SageMaker's 1 KB."""
    code = finish.returncode
    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
    head = f"AlgorithmError: the container {how}. Last lines of stderr:\n"
    tail = "\n".join(finish.stderr_tail) or "(none)"
    room = MESSAGE_LIMIT - len(head)
    return head + (tail if len(tail) <= room else "..." + tail[-(room - 3) :])


def _refused(exc: Exception) -> _Ending:
    """A job that never started: a _JobError says why, a KeyError names a missing field."""
    if isinstance(exc, _JobError):
        return _Ending("Failed", "Failed", str(exc))
    return _Ending("Failed", "Failed", f"ValidationException: required field {exc} is missing")


def _outcome(ending: _Ending, properties: dict[str, Any], metadata: dict[str, Any]) -> StepOutcome:
    succeeded = ending.status == "Completed"
    return StepOutcome("Succeeded" if succeeded else "Failed", properties, metadata, ending.reason)


def _arn(kind: str, job_name: str) -> str:
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    return f"arn:aws:sagemaker:{region}:{ACCOUNT}:{kind}/{job_name}"


def _now() -> str:
    return format_timestamp(datetime.now(UTC))
