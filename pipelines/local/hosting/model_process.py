"""One model server process (one instance of a variant): unpacked from its model.tar.gz, started,
health-checked, stopped.

The process is pipelines/local/hosting/model_server.py with SageMaker's inference container
contract; `endpoints` decides when to start and stop these, and `instances` which one an
invocation reaches.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pipelines import REPO_ROOT
from pipelines.local.hosting.capture import PathStore
from pipelines.local.hosting.model_server import code_dir
from pipelines.local.hosting.upstream import BadResponse, ConnectionPool, ServerSocket, ping
from pipelines.local.jobs.container import container_base_in, seen_base
from pipelines.local.jobs.image_python import ImagePython, image_python
from pipelines.local.jobs.images import container_environment
from pipelines.local.jobs.log_events import StreamWriter
from pipelines.local.jobs.outcome import JobError
from pipelines.local.jobs.requirements import check_code_dir, installed_line
from pipelines.local.storage.archives import UnsafeArchive, extract_tar
from pipelines.local.system.isolation import Confinement, PrivateTmp, confined, hidden_among
from pipelines.local.system.memory import GroupMemory, MemoryLimit
from pipelines.local.system.supervision import (
    LineStream,
    LogSink,
    dying_with_parent,
    signal_group,
    start_in_own_group,
    stop_group,
)
from steps.integrity import ModelDataMismatch, check_digest, registered_digest, sha256_file

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 60.0  # unless the variant sets ContainerStartupHealthCheckTimeoutInSeconds
INVOKE_TIMEOUT_SECONDS = 60.0  # SageMaker's model response timeout
# How SageMaker reports a model that did not answer within that time: status 0, and these words.
TIMED_OUT_STATUS = 0
TIMED_OUT_MESSAGE = (
    "Your invocation timed out while waiting for a response from container primary. Review the "
    "latency metrics for each container in Amazon CloudWatch, resolve the issue, and try again."
)
STOP_SECONDS = 10.0
POLL_SECONDS = 0.05
LOG_TAIL_CHARS = 700
SERVING_TOOLKIT = "the serving toolkit"  # who installs the inference code's packages, in messages
RANDOM = "RANDOM"  # SageMaker's routing strategy when a variant's RoutingConfig sets none
INSTANCE_PROCESSES = "the instance's model server processes"  # whose memory a limit's log line names


class DeploymentError(Exception):
    """A deployment could not be brought up; the message is the failure reason."""


@dataclass(frozen=True)
class VariantSpec:
    variant_name: str
    model_data_url: str | None  # s3:// URI of model.tar.gz; None: the model directory is empty
    environment: dict[str, str] = field(default_factory=dict)
    initial_weight: float = 1.0
    # The SHA-256 its model package registered ("" when it registered none); None: no package.
    model_data_sha256: str | None = None
    health_timeout: float = HEALTH_TIMEOUT_SECONDS  # seconds to answer /ping after it starts
    network_isolation: bool = False  # the model's EnableNetworkIsolation: no network at all
    instance_count: int = 1  # InitialInstanceCount: one model server process per instance
    routing: str = RANDOM  # RoutingConfig.RoutingStrategy: how invocations pick an instance
    memory: MemoryLimit | None = None  # its instance type's memory, which each instance is held to
    vcpus: int | None = None  # its instance type's vCPUs, which each instance runs on (system/cpus.py)


@dataclass(frozen=True)
class InvokeResult:
    status: int
    body: bytes
    content_type: str
    variant_name: str = ""
    custom_attributes: str = ""  # what the model set in its CustomAttributes header
    # The answering model server's log, as CloudWatch names its stream: <variant>/<instance id>.
    log_stream: str = ""


def endpoint_log_group(endpoint: str) -> str:
    """Where SageMaker writes an endpoint's model servers' output."""
    return f"/aws/sagemaker/Endpoints/{endpoint}"


# --- model artifacts -------------------------------------------------------------------------


def extract_archive(archive: Path, dest: Path) -> None:
    """Unpack a model.tar.gz into a fresh ``dest``."""
    if dest.exists():
        shutil.rmtree(dest)
    try:
        extract_tar(archive, dest)
    except UnsafeArchive as exc:
        raise DeploymentError(str(exc)) from None


def _locate(store: PathStore, uri: str) -> Path:
    try:
        path = store.path_for(uri)
    except (KeyError, ValueError) as exc:
        raise DeploymentError(f"cannot locate {uri}: {exc}") from exc
    if not path.is_file():
        raise DeploymentError(f"{uri} not found")
    return path


# --- process helpers -------------------------------------------------------------------------


def log_tail(path: Path, offset: int = 0, limit: int = LOG_TAIL_CHARS) -> str:
    """The end of a server log written since ``offset``, for failure reasons."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(offset, path.stat().st_size - 8 * limit))
            text = handle.read().decode("utf-8", "replace").strip()
    except OSError as exc:
        return f"(log unavailable: {exc})"
    return text if len(text) <= limit else "..." + text[-limit:]


class ModelServerProcess:
    """One model server process: one instance of one variant of one deployment."""

    def __init__(
        self,
        variant: VariantSpec,
        process: subprocess.Popen[str],
        server_socket: ServerSocket,
        log_path: Path,
        log_offset: int,
        instance_id: str,
        output: LogSink,
        sight: tuple[Confinement, tuple[Path, ...]] | None = None,
    ) -> None:
        self.variant = variant
        self._sight = sight  # its confinement and what it was shown: why a path was not found
        self.log_stream = f"{variant.variant_name}/{instance_id}"
        self.process = process
        self._socket = server_socket
        self.log_path = log_path
        self._log_offset = log_offset
        self._pool: ConnectionPool | None = None
        self._output = output
        self._group = GroupMemory(process.pid)  # the server and its pre-forked workers
        self.ready_at: float | None = None  # when it first answered /ping (time.monotonic())
        self.started_after = 0.0  # the back-off delay it was started after, when it replaced one

    def alive(self) -> bool:
        """Whether the process still runs (one that ended is replaced: endpoints.py)."""
        return self.process.poll() is None

    def hold_to_memory(self) -> None:
        """Over its instance type's memory, the group is killed with SIGKILL as the OOM killer
        kills a container, after a line in its log saying so."""
        limit = self.variant.memory
        if limit is None or not self.alive() or not self._group.exceeds(limit.limit_bytes):
            return
        self._output.write(limit.exceeded_line(self._group.peak_bytes))
        signal_group(self.process.pid, signal.SIGKILL)

    def wait_ready(self, deadline: float, cancelled: Callable[[], bool]) -> None:
        """Return once /ping answers 200; raise DeploymentError on exit, timeout or cancel."""
        while True:
            code = self.process.poll()
            if code is not None:
                raise DeploymentError(self._reason(f"exited with code {code}"))
            if cancelled():
                raise DeploymentError("deployment cancelled")
            if ping(self._socket):  # False until the server listens
                self._pool = ConnectionPool(self._socket, INVOKE_TIMEOUT_SECONDS)
                self.ready_at = time.monotonic()
                return
            if time.monotonic() > deadline:
                raise DeploymentError(self._reason(f"not healthy within {self.variant.health_timeout:g} s"))
            time.sleep(POLL_SECONDS)

    def _reason(self, what: str) -> str:
        tail = log_tail(self.log_path, self._log_offset)
        hidden = hidden_among(tail, *self._sight) if self._sight is not None else []
        hints = "".join(
            f" (a path under {tree} was not found: a model server does not see it, as a SageMaker "
            "container sees nothing of its machine; what the inference code reads ships in model.tar.gz)"
            for tree in hidden
        )  # after the log's tail, which a reason cut to SageMaker's length keeps first
        return f"model server for variant {self.variant.variant_name} {what}: {tail}{hints}"

    def invoke(
        self, body: bytes, content_type: str, accept: str, custom_attributes: str = ""
    ) -> InvokeResult:
        name = self.variant.variant_name
        if self._pool is None:
            return self.error(503, f"model server for variant {name} is not ready")
        if not self.alive():  # its workers may outlive it for a moment; the instance is gone
            code = self.process.returncode
            message = f"model server for variant {name} is not running (it ended with code {code})"
            return self.error(502, message)
        try:
            response = self._pool.post(body, content_type, accept, custom_attributes)
        except TimeoutError:  # no answer within INVOKE_TIMEOUT_SECONDS; the connection is closed
            return self._result(TIMED_OUT_STATUS, TIMED_OUT_MESSAGE.encode(), "text/plain")
        except (OSError, BadResponse) as exc:
            return self.error(502, f"model server for variant {name} unreachable: {exc}")
        return self._result(
            response.status, response.body, response.content_type or accept, response.custom_attributes
        )

    def error(self, status: int, message: str) -> InvokeResult:
        """An answer of this server's variant made here, not by the model, in its error form."""
        return self._result(status, json.dumps({"error": message}).encode("utf-8"), "application/json")

    def _result(
        self, status: int, body: bytes, content_type: str, custom_attributes: str = ""
    ) -> InvokeResult:
        return InvokeResult(
            status, body, content_type, self.variant.variant_name, custom_attributes, self.log_stream
        )

    def stop(self) -> None:
        """SIGTERM (the server finishes in-flight work), SIGKILL if it hangs; what is left of its
        group (workers of a server that was killed) dies with it. Idempotent."""
        if self._pool is not None:
            self._pool.close()
        stop_group(self.process, STOP_SECONDS)
        self._socket.close()


def verify_model_data(archive: Path, uri: str, expected: str) -> None:
    """At every start and restart: the object must be the one its model package registered,
    whatever the artifact says about itself (whoever replaces it can replace that too)."""
    try:
        check_digest(sha256_file(archive), registered_digest(expected, f"the model package of {uri}"), uri)
    except ModelDataMismatch as error:
        raise DeploymentError(str(error)) from None


def launch(
    variant: VariantSpec,
    variant_dir: Path,
    instance_id: str,
    store: PathStore,
    spawner: ThreadPoolExecutor,
    environments: Path,
    confinement: Confinement | None = None,
    log_stream: IO[str] | None = None,
) -> ModelServerProcess:
    """Unpack the model and start its server (not yet healthy) on the `spawner` thread, confined
    to its instance's directory `variant_dir` (system/isolation.py), whose `tmp` folder is its /tmp,
    as a container has one of its own, and whose `opt/ml` folder, with the model unpacked in
    `model`, it also finds at /opt/ml, as a container does; `instance_id` names it in log
    streams, as an instance's id does on SageMaker. Its output goes to its server.log and, a line
    at a time with the millisecond it was read, to `log_stream` (which it closes when the server's
    output ends)."""
    try:
        model_dir = container_base_in(variant_dir) / "model"
        if variant.model_data_url is None:  # the image alone: /opt/ml/model is empty
            model_dir.mkdir(parents=True, exist_ok=True)
        else:
            archive = _locate(store, variant.model_data_url)
            if variant.model_data_sha256 is not None:
                verify_model_data(archive, variant.model_data_url, variant.model_data_sha256)
            extract_archive(archive, model_dir)
        seen_model_dir = seen_base(model_dir.parent, confinement) / "model"
        env, python = _environment(variant, model_dir, seen_model_dir, variant_dir, store, environments)
    except BaseException:
        if log_stream is not None:
            log_stream.close()
        raise
    log_path = variant_dir / "server.log"
    server_socket = ServerSocket(variant_dir)
    argv = [str(python.python), "-m", "pipelines.local.hosting.model_server", "--model-dir",
            str(seen_model_dir), "--socket", server_socket.name]
    argv = confined(
        argv, variant_dir, confinement, network=not variant.network_isolation, shown=python.trees,
        tmp=PrivateTmp.under(variant_dir), opt_ml=model_dir.parent, own_processes=True,
    )
    try:
        process, offset, output = _spawn(argv, env, log_path, log_stream, spawner, variant_dir, variant.vcpus)
    except BaseException:
        server_socket.close()
        raise
    sight = (confinement, (variant_dir, *python.trees)) if confinement is not None else None
    return ModelServerProcess(variant, process, server_socket, log_path, offset, instance_id, output, sight)


def _environment(
    variant: VariantSpec, model_dir: Path, seen_model_dir: Path, variant_dir: Path, store: PathStore,
    environments: Path,
) -> tuple[dict[str, str], ImagePython]:
    """The serving image's Python (made under `environments`: the image's packages and what the
    inference code's requirements.txt names, image_python.py) and environment (none of this
    server's: see container_environment), the model server's own code on PYTHONPATH, and the
    variant's variables, with the container paths SageMaker would use mapped onto where the server
    finds them: the model unpacked at `model_dir` is `seen_model_dir` to it (/opt/ml/model when it
    is confined with an /opt/ml of its own), and inference code from S3 is unpacked beside it in
    `code`, as the serving toolkit puts it in /opt/ml/code (the variable naming it keeps its S3 URI,
    as in a container: model_server.code_dir finds it there, for the server and here alike)."""
    env = {key: str(value) for key, value in variant.environment.items()}
    submit = env.get("SAGEMAKER_SUBMIT_DIRECTORY", "")
    if submit.startswith("s3://") and variant.network_isolation:
        raise DeploymentError(
            f"SAGEMAKER_SUBMIT_DIRECTORY is {submit}, which the serving toolkit downloads inside the "
            "container, and a model with EnableNetworkIsolation has no network to download it with: "
            "ship the inference code inside model.tar.gz (code/) instead"
        )
    if submit == "/opt/ml/model" or submit.startswith("/opt/ml/model/"):
        inside_model = submit[len("/opt/ml/model/") :]
        inference_code = model_dir / inside_model
        env["SAGEMAKER_SUBMIT_DIRECTORY"] = str(seen_model_dir / inside_model)
    else:  # where the server will look for it; from S3, the variable keeps the URI
        inference_code = code_dir(model_dir, submit)
    if submit.startswith("s3://"):  # the toolkit downloads it to /opt/ml/code, beside the model
        extract_archive(_locate(store, submit), inference_code)
    python = image_python(environments, _check_installs(inference_code))
    scratch = None if seen_model_dir != model_dir else variant_dir / "tmp"  # confined: /tmp is its own
    env = {**container_environment(variant_dir / "home", scratch, python.bin), **env}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env, python


def _check_installs(code_dir: Path) -> dict[str, str]:
    """What the serving toolkit would pip-install from the inference code's directory before the
    server starts, checked against this environment (requirements.py): the satisfied ones."""
    try:
        satisfied = check_code_dir(code_dir, SERVING_TOOLKIT)
    except JobError as error:
        raise DeploymentError(str(error).removeprefix("ClientError: ")) from None
    if satisfied:
        log.info("%s: satisfied by the local environment: %s", code_dir, installed_line(satisfied))
    return satisfied


def _spawn(
    argv: list[str], env: dict[str, str], log_path: Path, log_stream: IO[str] | None,
    spawner: ThreadPoolExecutor, cwd: Path, vcpus: int | None,
) -> tuple[subprocess.Popen[str], int, LogSink]:
    """Start in `cwd`, where it makes its socket, on `vcpus` of this machine's CPUs, from the
    spawner thread: the parent-death signal fires when the thread that started the process ends,
    and that one lives as long as hosting.
    A thread copies its output to its log and its stream until the output ends; returns the
    process, where its output starts in its log, and the sink that takes hosting's own lines."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = log_path.open("a", encoding="utf-8")
    streams: list[LineStream] = [log_file] + ([StreamWriter(log_stream)] if log_stream is not None else [])
    sink = LogSink(*streams)
    try:
        offset = log_path.stat().st_size
        process = _start(argv, env, spawner, cwd, vcpus)
    except BaseException:
        _close(log_file, log_stream)
        raise
    assert process.stdout is not None
    threading.Thread(
        target=_copy_output, args=(process.stdout, sink, log_file, log_stream),
        name=f"model-server-output-{process.pid}", daemon=True,
    ).start()
    return process, offset, sink


def _start(
    argv: list[str], env: dict[str, str], spawner: ThreadPoolExecutor, cwd: Path, vcpus: int | None
) -> subprocess.Popen[str]:
    try:
        # SIGKILL: confined, the process is `unshare`, which ignores SIGTERM while it waits for the
        # PID namespace it made (system/isolation.py), and whose end is what ends the namespace.
        launch = dying_with_parent(argv, env, cwd, signal.SIGKILL)
        return spawner.submit(start_in_own_group, launch, env, cwd, subprocess.STDOUT, vcpus).result()
    except RuntimeError as exc:  # the executor was shut down
        raise DeploymentError("hosting is shutting down") from exc
    except OSError as exc:
        raise DeploymentError(f"cannot start the model server: {exc}") from exc


def _copy_output(output: IO[str], sink: LogSink, log_file: IO[str], log_stream: IO[str] | None) -> None:
    try:
        sink.pump(output, None)
    finally:
        sink.close()  # a line hosting writes after the output ended is dropped, not written to a closed file
        output.close()
        _close(log_file, log_stream)


def _close(*files: IO[str] | None) -> None:
    for file in files:
        if file is not None:
            file.close()
