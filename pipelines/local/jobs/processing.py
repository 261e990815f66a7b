"""Processing jobs: a CreateProcessingJob request run as a local process."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from pipelines.local.contract.members import object_items, object_member
from pipelines.local.jobs.container import (
    HOST,
    JobDirs,
    base_env,
    download,
    local_path,
    max_runtime,
    prepare_job_dir,
    rebase,
    rebased_env,
    rebased_json,
    run_container,
    upload_errors,
    write_config_files,
)
from pipelines.local.jobs.folder_sync import FolderSync
from pipelines.local.jobs.image_python import ENVIRONMENTS, image_python
from pipelines.local.jobs.images import require_image
from pipelines.local.jobs.instances import job_instance
from pipelines.local.jobs.limits import network_isolated, processing_limits, require_reproducible
from pipelines.local.jobs.outcome import (
    JobError,
    JobResult,
    JobStatus,
    Progress,
    job_arn,
    job_result,
    processing_status,
    refused,
)
from pipelines.local.jobs.stopping import JobStop
from pipelines.local.storage.objects import ObjectStore
from pipelines.local.system.clock import now_timestamp
from pipelines.local.system.isolation import Confinement

_PYTHONS = {"python", "python3"}
PROCESSING_DIR = PurePosixPath("/opt/ml/processing")
DEFAULT_MAX_RUNTIME = 86_400  # seconds: what SageMaker holds a job that sets no StoppingCondition to
LOCAL_PATH_RULE = (
    "for both ProcessingInput and ProcessingOutput, the path in the processing container must begin "
    "with /opt/ml/processing/"
)


def run_processing_job(
    job_name: str,
    request: dict[str, Any],
    store: ObjectStore,
    work_dir: Path,
    log: IO[str],
    *,
    cancel: JobStop | None = None,
    progress: Progress | None = None,
    confinement: Confinement | None = None,
    environments: Path | None = None,
) -> JobResult:
    """Run a CreateProcessingJob request: stage inputs, run the entrypoint (confined and held to its
    instance's memory, see run_container) in the image's Python (made under `environments`, by
    default in `work_dir`; image_python.py), upload the outputs; `progress` gets the job's
    description as it starts. A job that sets no StoppingCondition is held to one day, and
    described with that limit, as SageMaker holds and describes it."""
    request = {"StoppingCondition": {"MaxRuntimeInSeconds": DEFAULT_MAX_RUNTIME}, **request}
    start = now_timestamp()

    def describe() -> dict[str, Any]:
        return _processing_description(job_name, request, start, cancel)

    if cancel is not None:
        cancel.describe = describe
    if progress is not None:
        progress(describe())
    try:
        require_image(request.get("AppSpecification", {}).get("ImageUri"))
        require_reproducible(processing_limits(request))
        require_reproducible(local_path_problems(request))
        cluster = object_member(object_member(request, "ProcessingResources"), "ClusterConfig")
        instance = job_instance("ProcessingResources.ClusterConfig.InstanceType", cluster.get("InstanceType"))
        job = prepare_job_dir(work_dir, job_name, confinement)
        _write_config(job, request)
        outputs = _processing_outputs(request, job.base)
        python = image_python(environments or work_dir / ENVIRONMENTS)
        argv = _container_command(request.get("AppSpecification", {}), job.seen, python.python)
        for uri, local in _processing_inputs(request, job.base):
            download(store, uri, local)
    except (JobError, KeyError) as exc:
        return _processing_outcome(job_name, request, start, refused(exc))
    env = {**base_env(job, python), **rebased_env(request.get("Environment"), job.seen)}
    timeout = max_runtime(request)
    syncs = {output: FolderSync(store, output.local, output.uri) for output in outputs if output.continuous}
    with ExitStack() as running:
        for sync in syncs.values():
            running.enter_context(sync)
        finish = run_container(
            argv, env, job.base, job, python, log, timeout, cancel, network_isolated(request),
            confinement=confinement, instance=instance,
        )
    ending = processing_status(finish, job.base / "output" / "message", timeout)
    return _processing_outcome(job_name, request, start, _upload_outputs(store, outputs, syncs, ending))


def _upload_outputs(
    store: ObjectStore, outputs: list[ProcessingOutput], syncs: Mapping[ProcessingOutput, FolderSync],
    ending: JobStatus,
) -> JobStatus:
    """An `EndOfJob` output is uploaded once the job completes. A `Continuous` one is uploaded as
    the job runs (folder_sync.py), so what a failed or stopped job wrote is in S3, and what is left
    of it once the job ends, whatever the ending. An upload refused fails a completed job; a job
    that already failed or stopped keeps its own reason."""
    completed = ending.status == "Completed"
    for output in outputs:
        if not (completed or output.continuous):
            continue
        try:
            with upload_errors():
                if output in syncs:
                    syncs[output].finish()
                else:
                    store.upload_dir(output.local, output.uri)
        except JobError as exc:
            if completed:
                return JobStatus("Failed", "Failed", str(exc))
    return ending


def _write_config(job: JobDirs, request: Mapping[str, Any]) -> None:
    """The two files SageMaker Processing configures a container with, in /opt/ml/config: the
    job's request as DescribeProcessingJob echoes it, and the hosts of its cluster."""
    job_config = {
        "ProcessingJobArn": job_arn("processing-job", job.name),
        "ProcessingJobName": job.name,
        **rebased_json(dict(request), job.seen),
    }
    write_config_files(
        job.base / "config",
        {
            "processingjobconfig.json": job_config,
            "resourceconfig.json": {"current_host": HOST, "hosts": [HOST]},
        },
    )


def local_path_problems(request: Mapping[str, Any]) -> list[str]:
    """Each input or output LocalPath that CreateProcessingJob refuses; one that is still an
    expression is checked once resolved."""
    paths = [
        (f"input {item.get('InputName')!r}", object_member(item, "S3Input"))
        for item in object_items(request.get("ProcessingInputs"))
    ]
    paths += [
        (f"output {item.get('OutputName')!r}", object_member(item, "S3Output"))
        for item in object_items(object_member(request, "ProcessingOutputConfig").get("Outputs"))
    ]
    problems = []
    for where, s3 in paths:
        path = s3.get("LocalPath")
        if s3 and path is None:
            problems.append(f"{where} has no LocalPath: {LOCAL_PATH_RULE}")
        elif isinstance(path, str) and not _in_processing_dir(PurePosixPath(path)):
            problems.append(f"{where} LocalPath {path!r}: {LOCAL_PATH_RULE}")
    return problems


def _in_processing_dir(path: PurePosixPath) -> bool:
    return ".." not in path.parts and PROCESSING_DIR in path.parents


def _processing_inputs(request: Mapping[str, Any], base: Path) -> list[tuple[str, Path]]:
    """(S3 URI, local dir) of every input (S3Input: limits.py refuses the other kinds before); the
    code arrives as one of them."""
    return [
        (item["S3Input"]["S3Uri"], local_path(item["S3Input"]["LocalPath"], base))
        for item in request.get("ProcessingInputs", [])
    ]


@dataclass(frozen=True)
class ProcessingOutput:
    """Where an output's files are written, where they go, and whether they go as the job runs."""

    local: Path
    uri: str
    continuous: bool


def _processing_outputs(request: Mapping[str, Any], base: Path) -> list[ProcessingOutput]:
    """Every output, its dir created empty as the container would see it."""
    outputs = []
    for item in request.get("ProcessingOutputConfig", {}).get("Outputs", []):
        s3 = item["S3Output"]
        local = local_path(s3["LocalPath"], base)
        local.mkdir(parents=True, exist_ok=True)
        outputs.append(ProcessingOutput(local, s3["S3Uri"], s3.get("S3UploadMode") == "Continuous"))
    return outputs


def _container_command(app: Mapping[str, Any], base: Path, python: Path) -> list[str]:
    """The entrypoint plus arguments, rebased, with `python3` meaning the job's `python`."""
    entrypoint = [str(part) for part in app.get("ContainerEntrypoint") or []]
    if not entrypoint:
        raise JobError(
            "ValidationException: AppSpecification.ContainerEntrypoint is required "
            "locally, as there is no image entrypoint to fall back on"
        )
    arguments = [str(part) for part in app.get("ContainerArguments") or []]
    argv = [rebase(part, base) for part in entrypoint + arguments]
    if PurePosixPath(argv[0]).name in _PYTHONS:
        argv[0] = str(python)
    return argv


def _processing_outcome(
    job_name: str, request: Mapping[str, Any], start: str, ending: JobStatus
) -> JobResult:
    """DescribeProcessingJob's shape once the job ended: its description with status and reason."""
    properties = {
        **_processing_description(job_name, request, start, None),
        "ProcessingJobStatus": ending.status,
        "ExitMessage": ending.exit_message,
        "FailureReason": ending.reason,
        "ProcessingEndTime": now_timestamp(),
    }
    return job_result(ending, properties, {"ProcessingJob": {"Arn": properties["ProcessingJobArn"]}})


def _processing_description(
    job_name: str, request: Mapping[str, Any], start: str, stop: JobStop | None
) -> dict[str, Any]:
    """DescribeProcessingJob's shape while the job runs: the request echoed back plus identity,
    InProgress, or Stopping once its stop was asked. Each input and output is described with
    `AppManaged` False where the request left it out, the default live descriptions show."""
    stopping = stop is not None and stop.requested_at is not None
    described = copy.deepcopy(dict(request))
    described.setdefault("ProcessingInputs", [])
    outputs = described.get("ProcessingOutputConfig", {}).get("Outputs", [])
    for item in [*described["ProcessingInputs"], *outputs]:
        item.setdefault("AppManaged", False)
    return {
        **described,
        "ProcessingJobName": job_name,
        "ProcessingJobArn": job_arn("processing-job", job_name),
        "ProcessingJobStatus": "Stopping" if stopping else "InProgress",
        "Environment": described.get("Environment") or {},
        "ProcessingStartTime": start,
    }
