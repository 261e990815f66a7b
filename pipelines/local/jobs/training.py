"""Training jobs: a CreateTrainingJob request run as the scikit-learn image's training toolkit would."""

from __future__ import annotations

import copy
import tarfile
import threading
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

from pipelines.local.contract.members import object_member
from pipelines.local.jobs.container import (
    JobDirs,
    base_env,
    download,
    local_path,
    max_runtime,
    prepare_job_dir,
    rebase,
    rebased_env,
    run_container,
    store_errors,
    upload_errors,
    write_config_files,
)
from pipelines.local.jobs.folder_sync import FolderSync
from pipelines.local.jobs.image_python import ENVIRONMENTS, image_python
from pipelines.local.jobs.images import require_image
from pipelines.local.jobs.instances import job_instance
from pipelines.local.jobs.limits import network_isolated, require_reproducible, training_limits
from pipelines.local.jobs.metrics import final_metrics
from pipelines.local.jobs.outcome import (
    JobError,
    JobResult,
    JobStatus,
    Progress,
    job_arn,
    job_result,
    job_status,
    refused,
    training_failure,
)
from pipelines.local.jobs.requirements import REQUIREMENTS_FILE, check_code_dir, installed_line
from pipelines.local.jobs.stopping import JobStop
from pipelines.local.jobs.toolkit import (
    TRAINING_TOOLKIT,
    check_entry_point,
    decode_hyperparameter,
    resources,
    stored_hyperparameters,
    to_cmd_args,
    toolkit_env,
)
from pipelines.local.storage.archives import UnsafeArchive, extract_tar
from pipelines.local.storage.objects import NoSuchKey, ObjectStore, iter_files
from pipelines.local.system.clock import format_timestamp, now_timestamp
from pipelines.local.system.isolation import Confinement

# SecondaryStatusTransitions' StatusMessage for each phase a local training job goes through, as
# SageMaker words them (the SDK's log of a real stopped job shows "Stopping - Stopping the training
# job" and "Stopped - Training job stopped").
PHASE_MESSAGES = {
    "Starting": "Preparing the instances for training",
    "Downloading": "Downloading input data",
    "Training": "Training image download completed. Training in progress.",
    "Uploading": "Uploading generated training model",
    "Stopping": "Stopping the training job",
    "Completed": "Training job completed",
    "Failed": "Training job failed",
    "Stopped": "Training job stopped",
    "MaxRuntimeExceeded": "Training job stopped: it ran longer than MaxRuntimeInSeconds",
}
CHECKPOINTS = "/opt/ml/checkpoints"  # CheckpointConfig.LocalPath when the request names none
TENSORBOARD = "/opt/ml/output/tensorboard"  # TensorBoardOutputConfig.LocalPath when the request names none
# A stopped training job gets SIGTERM, then 120 s to save its model before SIGKILL, as on SageMaker.
STOP_GRACE_SECONDS = 120.0


def run_training_job(
    job_name: str,
    request: dict[str, Any],
    store: ObjectStore,
    work_dir: Path,
    log: IO[str],
    *,
    cancel: JobStop | None = None,
    stop_grace: float = STOP_GRACE_SECONDS,
    progress: Progress | None = None,
    confinement: Confinement | None = None,
    environments: Path | None = None,
) -> JobResult:
    """Run a CreateTrainingJob request as the scikit-learn image's training toolkit would, in the
    image's Python with what its requirements.txt names (made under `environments`, by default in
    `work_dir`; image_python.py); `progress` gets the job's description as it starts and at each
    phase after."""
    stored = stored_hyperparameters(request.get("HyperParameters") or {})
    hyperparameters = {name: decode_hyperparameter(value) for name, value in stored.items()}
    output_path = request.get("OutputDataConfig", {}).get("S3OutputPath", "")
    output_uri = f"{output_path.rstrip('/')}/{job_name}/output"
    described = TrainingJobDescription(job_name, request, stored, output_uri)

    def report(phases: Phases) -> None:
        if progress is not None:
            progress(described.running(phases))

    phases = Phases(report, cancel)
    if cancel is not None:
        cancel.describe = lambda: described.running(phases)
    try:
        require_image(object_member(request, "AlgorithmSpecification").get("TrainingImage"))
        require_reproducible(training_limits(request))
        instance = job_instance(
            "ResourceConfig.InstanceType", object_member(request, "ResourceConfig").get("InstanceType")
        )
        job = prepare_job_dir(work_dir, job_name, confinement)
        if not output_path:
            raise KeyError("OutputDataConfig.S3OutputPath")
        phases.enter("Downloading")
        channels = _stage_channels(request, job.base, store)
        resource_config = resources(instance.name)
        _write_config(job.base, stored, channels, resource_config)
        program, submit_uri = _stage_code(hyperparameters, job.base, store)
        satisfied = check_code_dir(job.base / "code", TRAINING_TOOLKIT)
        python = image_python(environments or work_dir / ENVIRONMENTS, satisfied)
        checkpoints = _restore_checkpoints(request, job, store)
        tensorboard = _tensorboard_dir(request, job_name, job)
    except (JobError, KeyError) as exc:
        return described.ended(phases, refused(exc))
    if satisfied:
        log.write(f"{REQUIREMENTS_FILE}: satisfied by the local environment: {installed_line(satisfied)}\n")
    user = {k: v for k, v in hyperparameters.items() if not k.startswith("sagemaker_")}
    args = to_cmd_args(user)
    env = {
        **base_env(job, python),
        **rebased_env(request.get("Environment"), job.seen),
        "TRAINING_JOB_NAME": job_name,
        "TRAINING_JOB_ARN": job_arn("training-job", job_name),
        **toolkit_env(
            job, user, args, channels, program, submit_uri, hyperparameters, resource_config, instance.vcpus
        ),
    }
    timeout = max_runtime(request)
    argv = [str(python.python), program, *args]
    phases.enter("Training")
    syncs = [FolderSync(store, *checkpoints).restored()] if checkpoints is not None else []
    syncs += [FolderSync(store, *tensorboard)] if tensorboard is not None else []
    with ExitStack() as running:  # SageMaker syncs both while the job runs, whatever its ending
        for sync in syncs:
            running.enter_context(sync)
        finish = run_container(
            argv, env, job.base / "code", job, python, log, timeout, cancel, network_isolated(request),
            stop_grace, confinement, instance,
        )
    failure_file = job.base / "output" / "failure"
    ending = job_status(finish, timeout, lambda: training_failure(finish, failure_file, argv))
    metrics = final_metrics(request, job.root / "logs.txt", now_timestamp())
    phases.enter("Uploading")
    try:
        for sync in syncs:
            with upload_errors():
                sync.finish()
        if ending.status != "Failed":  # a stopped job's model is uploaded too, as SageMaker does
            _upload_artifacts(job, store, output_uri)
    except JobError as exc:
        ending = JobStatus("Failed", "Failed", str(exc)) if ending.status == "Completed" else ending
    return described.ended(phases, ending, metrics)


@dataclass
class Phases:
    """The secondary statuses a job went through, timed, as SecondaryStatusTransitions lists them;
    `on_change` hears of each phase the running job enters. Once its stop is asked the job enters
    no other phase: it is Stopping, from the request, until its final status. The job's thread
    and the stop's caller both read it, so every change happens under its lock."""

    on_change: Callable[[Phases], None]
    stop: JobStop | None = None
    start: datetime = field(default_factory=lambda: datetime.now(UTC))
    transitions: list[dict[str, Any]] = field(default_factory=list)
    _since: datetime = field(init=False)  # when the current phase started
    _ended: bool = field(default=False, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self._since = self.start
        self.transitions.append(self.transition("Starting", self.start))
        self.on_change(self)

    def enter(self, status: str) -> None:
        """End the current phase and start `status`, unless the job is stopping."""
        with self._lock:
            if not self._stopping():
                self._begin(status, datetime.now(UTC))
        self.on_change(self)

    def finish(self, status: str) -> datetime:
        """The final status, which starts and ends when the job does; returns when."""
        with self._lock:
            self._stopping()
            end = datetime.now(UTC)
            self.transitions[:] = ended_transitions(self.transitions, status, end)
            self._ended = True
        return end

    def current(self) -> list[dict[str, Any]]:
        """The transitions so far, Stopping among them once the stop is asked."""
        with self._lock:
            self._stopping()
            return copy.deepcopy(self.transitions)

    def _stopping(self) -> bool:
        """Whether the job is stopping; the first time it is seen, Stopping begins when the stop
        was asked (or when the current phase began, if that was later)."""
        asked = None if self.stop is None else self.stop.requested_at
        if asked is None or self._ended:
            return False
        if self.transitions[-1]["Status"] != "Stopping":
            self._begin("Stopping", max(asked, self._since))
        return True

    def _begin(self, status: str, moment: datetime) -> None:
        self.transitions[-1]["EndTime"] = format_timestamp(moment)
        self.transitions.append(self.transition(status, moment))
        self._since = moment

    @staticmethod
    def transition(status: str, moment: datetime) -> dict[str, Any]:
        return {
            "Status": status,
            "StartTime": format_timestamp(moment),
            "StatusMessage": PHASE_MESSAGES[status],
        }


def ended_transitions(transitions: list[dict[str, Any]], status: str, end: datetime) -> list[dict[str, Any]]:
    """The transitions of a job that ended at `end` with `status`, a final phase that starts and
    ends then (also for a job whose server stopped while it ran, which no Phases saw end)."""
    moment = format_timestamp(end)
    ended = copy.deepcopy(transitions)
    if ended:
        ended[-1]["EndTime"] = moment
    return [*ended, {**Phases.transition(status, end), "EndTime": moment}]


def _restore_checkpoints(
    request: Mapping[str, Any], job: JobDirs, store: ObjectStore
) -> tuple[Path, str] | None:
    """CheckpointConfig: its S3 objects copied into LocalPath before the job starts, as SageMaker
    restores them (a resumed job finds what an earlier one saved), and the folder named in
    input/config/checkpointconfig.json, where smdebug's state store looks for it, as SageMaker
    names it; returns (dir, S3 URI)."""
    config = request.get("CheckpointConfig")
    if not config:
        return None
    seen = config.get("LocalPath") or CHECKPOINTS
    local = local_path(seen, job.base)
    local.mkdir(parents=True, exist_ok=True)
    if store.list(config["S3Uri"].rstrip("/") + "/"):
        with store_errors():
            store.download(config["S3Uri"], local)
    write_config_files(job.base / "input" / "config", {
        "checkpointconfig.json": {"LocalPath": rebase(seen, job.seen)}
    })
    return local, config["S3Uri"]


def _tensorboard_dir(request: Mapping[str, Any], job_name: str, job: JobDirs) -> tuple[Path, str] | None:
    """TensorBoardOutputConfig: LocalPath created before the job starts, for the script to write to,
    and named with where its files go in input/config/tensorboardoutputconfig.json, as SageMaker
    writes it; returns (dir, S3 URI), the URI being where SageMaker puts its files, <S3OutputPath>/
    <job name>/tensorboard-output/, where they are synced while the job runs (folder_sync.py)."""
    config = request.get("TensorBoardOutputConfig")
    if not config:
        return None
    seen = config.get("LocalPath") or TENSORBOARD
    local = local_path(seen, job.base)
    local.mkdir(parents=True, exist_ok=True)
    uri = f"{config['S3OutputPath'].rstrip('/')}/{job_name}/tensorboard-output"
    write_config_files(job.base / "input" / "config", {
        "tensorboardoutputconfig.json": {"S3OutputPath": uri, "LocalPath": rebase(seen, job.seen)}
    })
    return local, uri


def _stage_channels(
    request: Mapping[str, Any], base: Path, store: ObjectStore
) -> dict[str, dict[str, str]]:
    """Download each channel to input/data/<channel>; returns inputdataconfig.json's content."""
    mode = object_member(request, "AlgorithmSpecification").get("TrainingInputMode", "File")
    config: dict[str, dict[str, str]] = {}
    for channel in request.get("InputDataConfig", []):
        name = channel["ChannelName"]
        source = channel["DataSource"]["S3DataSource"]
        local = base / "input" / "data" / name
        download(store, source["S3Uri"], local)
        config[name] = {
            "TrainingInputMode": channel.get("InputMode") or mode,
            "S3DistributionType": source.get("S3DataDistributionType", "FullyReplicated"),
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
        }
        if "ContentType" in channel:
            config[name]["ContentType"] = channel["ContentType"]
    return config


def _write_config(
    base: Path,
    hyperparameters: Mapping[str, str],
    channels: Mapping[str, Any],
    resource_config: Mapping[str, Any],
) -> None:
    """The files SageMaker writes to input/config, and the folders the toolkit expects."""
    write_config_files(
        base / "input" / "config",
        {
            "hyperparameters.json": hyperparameters,
            "resourceconfig.json": resource_config,
            "inputdataconfig.json": channels,
        },
    )
    for folder in ("model", "output/data", "code"):
        (base / folder).mkdir(parents=True, exist_ok=True)


def _stage_code(
    hyperparameters: Mapping[str, Any], base: Path, store: ObjectStore
) -> tuple[str, str]:
    """Unpack sagemaker_submit_directory into code/; returns (sagemaker_program, its URI)."""
    # both present: limits.py refuses a request without them before this runs
    program = str(hyperparameters["sagemaker_program"])
    submit_uri = str(hyperparameters["sagemaker_submit_directory"])
    with store_errors():
        if not store.exists(submit_uri):
            raise NoSuchKey(submit_uri)
        extract_safely(store.path_for(submit_uri), base / "code", submit_uri)
    check_entry_point(program)
    script = PurePosixPath(program)
    if script.is_absolute() or ".." in script.parts or not (base / "code" / script).is_file():
        raise JobError(f"ClientError: sagemaker_program {program!r} is not a file in {submit_uri}")
    return program, submit_uri


def extract_safely(archive: Path, dest: Path, uri: str) -> None:
    try:
        extract_tar(archive, dest)
    except UnsafeArchive as exc:
        raise JobError(f"ClientError: {exc} ({uri})") from None


def _upload_artifacts(job: JobDirs, store: ObjectStore, output_uri: str) -> None:
    """model/ always becomes model.tar.gz; output/data/ becomes output.tar.gz when not empty."""
    uploads = [("model", "model.tar.gz")]
    if iter_files(job.base / "output" / "data"):
        uploads.append(("output/data", "output.tar.gz"))
    with upload_errors():
        for folder, archive_name in uploads:
            archive = job.root / archive_name
            pack_directory(job.base / folder, archive)
            store.put_file(f"{output_uri}/{archive_name}", archive)


def pack_directory(directory: Path, archive: Path) -> None:
    """tar.gz of the regular files under `directory`, named relative to it (no `./`), at gzip's
    fastest level: this project's model packs in 5 ms at level 1 against 14 ms at `tar -czf`'s 6,
    for 22% more bytes, and the packing is on a pipeline's critical path (level 9 took three
    times as long as 6 for 0.3% less). Any level reads back the same."""
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        for path in iter_files(directory):
            tar.add(path, arcname=path.relative_to(directory).as_posix(), recursive=False)


# Members SageMaker's DescribeTrainingJob answers for a request that left them out.
DESCRIBED_FLAGS = (
    "EnableNetworkIsolation", "EnableInterContainerTrafficEncryption", "EnableManagedSpotTraining"
)
DESCRIBED_CHANNEL = {"CompressionType": "None", "RecordWrapperType": "None"}
DESCRIBED_IN: dict[str, dict[str, Any]] = {
    "AlgorithmSpecification": {"EnableSageMakerMetricsTimeSeries": False},
    "ResourceConfig": {"KeepAlivePeriodInSeconds": 0},  # no warm pool (jobs/limits.py refuses one)
    "OutputDataConfig": {"KmsKeyId": "", "CompressionType": "GZIP"},  # NONE is refused (jobs/limits.py)
}
# A job that asks to be profiled is refused (jobs/limits.py), so every local job is unprofiled.
PROFILING_STATUS = "Disabled"


def described_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """The request as DescribeTrainingJob (and so a Training step's properties) echoes it, with the
    defaults SageMaker fills in: the three flags False, each channel uncompressed and unwrapped,
    no metrics time series, no warm pool, the output gzipped with an empty KmsKeyId, profiling
    Disabled."""
    described = copy.deepcopy(dict(request))
    for flag in DESCRIBED_FLAGS:
        described.setdefault(flag, False)
    for channel in described.get("InputDataConfig") or []:
        for member, value in DESCRIBED_CHANNEL.items():
            channel.setdefault(member, value)
    for parent, defaults in DESCRIBED_IN.items():
        if isinstance(described.get(parent), dict):
            for member, value in defaults.items():
                described[parent].setdefault(member, value)
    described["ProfilingStatus"] = PROFILING_STATUS
    return described


@dataclass(frozen=True)
class TrainingJobDescription:
    """DescribeTrainingJob's answer for one job: the request echoed back plus identity, where its
    model goes and the phases it went through, while it runs and once it ended."""

    name: str
    request: Mapping[str, Any]
    hyperparameters: Mapping[str, str]  # as SageMaker stores them
    output_uri: str

    def running(self, phases: Phases) -> dict[str, Any]:
        """InProgress, or Stopping (its SecondaryStatus too) once the stop was asked."""
        transitions = phases.current()
        secondary = transitions[-1]["Status"]
        return {
            **described_request(self.request),
            "TrainingJobName": self.name,
            "TrainingJobArn": job_arn("training-job", self.name),
            "TrainingJobStatus": "Stopping" if secondary == "Stopping" else "InProgress",
            "SecondaryStatus": secondary,
            "HyperParameters": dict(self.hyperparameters),
            "ModelArtifacts": {"S3ModelArtifacts": f"{self.output_uri}/model.tar.gz"},
            "TrainingStartTime": format_timestamp(phases.start),
            "SecondaryStatusTransitions": transitions,
        }

    def ended(
        self, phases: Phases, ending: JobStatus, metrics: list[dict[str, Any]] | None = None
    ) -> JobResult:
        """With its status, how long it took and the final value of each metric its definitions
        read from the log."""
        end = phases.finish(ending.secondary)
        seconds = max(1, int((end - phases.start).total_seconds()))  # whole seconds, as billed
        properties = {
            **self.running(phases),
            "TrainingJobStatus": ending.status,
            "FailureReason": ending.reason,
            "TrainingEndTime": format_timestamp(end),
            "TrainingTimeInSeconds": seconds,
            "BillableTimeInSeconds": seconds,
        }
        if metrics:
            properties["FinalMetricDataList"] = metrics
        return job_result(ending, properties, {"TrainingJob": {"Arn": properties["TrainingJobArn"]}})
