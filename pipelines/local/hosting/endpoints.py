"""The endpoint registry: which deployment serves each endpoint, and blue/green switches between them.

``Endpoints`` owns every model server process (``model_process``) of every endpoint: it starts a
deployment's servers (one per instance of each variant), health-checks them, routes invocations to a
variant (``instances`` picks its instance and writes its data capture), replaces an instance that
died (``recovery``), and stops servers.

Guarantees, and how they are kept:
- No request is lost during an update. The new deployment is started and must answer ``/ping``
  before traffic moves; the move is a reference swap under ``Endpoints._lock``; every invocation
  pins the deployment it started on (a reference count taken under the same lock), and the old
  deployment is stopped only once that count drops to zero.
- A failed update changes nothing for clients: the old deployment keeps serving and the status
  callback reports ``InService`` with an "Update failed" reason.
- Model servers never outlive their owner. Each is started with PR_SET_PDEATHSIG=SIGKILL. Linux
  delivers that signal when the *thread* that forked the child exits, not the process, so all
  processes are forked from one long-lived spawner thread rather than from short-lived deploy
  threads (which would kill their servers when they finish).
- An instance is held to its instance type's memory and replaced when it dies, as SageMaker
  replaces an instance that fails its health checks. One watchdog thread (``recovery``) kills a
  server over its memory and finds the serving instances that died; each is replaced on a thread of
  its own (the process itself is still forked by the spawner thread), with a new id and log stream,
  started and /ping-checked as at deployment, then swapped in under ``Endpoints._lock``. A
  deployment is marked retired under the same lock before it is drained and stopped, so no
  replacement is swapped into a deployment that is being stopped; its replacements are joined
  before its servers stop, and one still starting stops its own server.
- One deployment at a time per endpoint (``EndpointBusy`` otherwise), as SageMaker refuses to
  update an endpoint that is already updating; this keeps status callbacks in order.
- ``on_status`` is only ever called from the deployment thread, never from inside ``deploy()``,
  so a caller may hold its own lock while calling ``deploy()``.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from pipelines.local.hosting.capture import CaptureWriter, PathStore
from pipelines.local.hosting.instances import VariantInstances
from pipelines.local.hosting.model_process import (
    DeploymentError,
    InvokeResult,
    ModelServerProcess,
    VariantSpec,
    endpoint_log_group,
    launch,
)
from pipelines.local.hosting.model_server import MAX_PAYLOAD_BYTES
from pipelines.local.hosting.recovery import Watchdog, first_delay, next_delay
from pipelines.local.jobs.image_python import ENVIRONMENTS
from pipelines.local.jobs.log_groups import LogGroups
from pipelines.local.system.identity import ACCOUNT
from pipelines.local.system.isolation import Confinement

log = logging.getLogger(__name__)

DRAIN_SECONDS = 70.0  # an in-flight invocation may take up to the invoke timeout
SHUTDOWN_DRAIN_SECONDS = 10.0
REASON_LIMIT = 1024  # SageMaker's FailureReason length limit
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # safe as one path component

StatusCallback = Callable[[str, str, str, "str | None"], None]


class EndpointNotReady(Exception):
    """The endpoint does not exist or has no deployment in service."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class VariantNotFound(Exception):
    """An invocation's TargetVariant names no variant of the serving deployment."""


class EndpointBusy(Exception):
    """A deployment of this endpoint is already in progress."""


@dataclass(frozen=True)
class CaptureSpec:
    destination_s3_uri: str
    sampling_percentage: float = 100.0
    capture_input: bool = True
    capture_output: bool = True
    csv_types: tuple[str, ...] = ()
    json_types: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> CaptureSpec | None:
        """From a CreateEndpointConfig ``DataCaptureConfig``; None when capture is off. Content
        types the header does not list (all, without a header) are captured base64, as SageMaker's."""
        if not config or not config.get("EnableCapture", True):
            return None
        modes = {option.get("CaptureMode") for option in config.get("CaptureOptions") or []}
        header = config.get("CaptureContentTypeHeader") or {}
        return cls(
            destination_s3_uri=config["DestinationS3Uri"],
            sampling_percentage=float(config.get("InitialSamplingPercentage", 100)),
            capture_input=bool(modes & {"Input", "InputAndOutput"}) or not modes,
            capture_output=bool(modes & {"Output", "InputAndOutput"}) or not modes,
            csv_types=tuple(header.get("CsvContentTypes") or ()),
            json_types=tuple(header.get("JsonContentTypes") or ()),
        )


class _Deployment:
    """The variants of one deployment plus a count of invocations currently using them."""

    def __init__(self, deployment_id: str, variants: list[VariantInstances]) -> None:
        self.deployment_id = deployment_id
        self.variants = variants
        self.retired = threading.Event()  # set under Endpoints._lock: nothing is replaced any more
        self.replacements: list[threading.Thread] = []  # under Endpoints._lock
        self._users = 0
        self._idle = threading.Condition()

    def acquire(self) -> None:
        with self._idle:
            self._users += 1

    def release(self) -> None:
        with self._idle:
            self._users -= 1
            if self._users == 0:
                self._idle.notify_all()

    def drain(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._users == 0, timeout)

    def pick(self, target_variant: str | None) -> VariantInstances:
        """The target variant, else a weighted random one (SageMaker's traffic split)."""
        if target_variant is not None:
            for variant in self.variants:
                if variant.variant.variant_name == target_variant:
                    return variant
            names = ", ".join(variant.variant.variant_name for variant in self.variants)
            raise VariantNotFound(f"variant {target_variant} not found (the endpoint serves {names})")
        if len(self.variants) == 1:
            return self.variants[0]
        weights = [max(variant.variant.initial_weight, 0.0) for variant in self.variants]
        if sum(weights) <= 0:
            return random.choice(self.variants)
        return random.choices(self.variants, weights)[0]

    def servers(self) -> list[ModelServerProcess]:
        return [server for variant in self.variants for server in variant.instances]


@dataclass(eq=False)
class _Endpoint:
    name: str
    serving: _Deployment | None = None
    busy: bool = False


Outcome = tuple[str, str, "str | None"]  # (status, failure_reason, serving_deployment_id)


# --- the public facade -----------------------------------------------------------------------


class Endpoints:
    """All model server processes of all endpoints. Thread-safe."""

    def __init__(
        self, root: Path, store: PathStore, confinement: Confinement | None = None,
        logs: LogGroups | None = None, environments: Path | None = None,
    ) -> None:
        self._root = root
        self._environments = environments or root / ENVIRONMENTS  # model servers' Python (image_python.py)
        self._store = store
        self._confinement = confinement  # what model servers must not see (system/isolation.py)
        self._logs = logs  # where each server's output is a log stream, as CloudWatch keeps it
        self._lock = threading.Lock()
        self._endpoints: dict[str, _Endpoint] = {}
        self._live: set[ModelServerProcess] = set()
        self._closed = False
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-server-spawner")
        self._watchdog = Watchdog(self._watch, "model-server-watchdog")
        self._watchdog.start()

    # public API

    def deploy(
        self,
        endpoint_name: str,
        deployment_id: str,
        variants: list[VariantSpec],
        capture: CaptureSpec | None,
        on_status: StatusCallback,
    ) -> None:
        """Create or update an endpoint in the background; results arrive through on_status."""
        endpoint = self._claim(endpoint_name, deployment_id, variants)
        threading.Thread(
            target=self._deploy_worker,
            args=(endpoint, deployment_id, list(variants), capture, on_status),
            name=f"deploy-{endpoint_name}-{deployment_id}",
            daemon=True,
        ).start()

    def restore(
        self,
        endpoint_name: str,
        deployment_id: str,
        variants: list[VariantSpec],
        capture: CaptureSpec | None,
    ) -> tuple[str, str]:
        """Bring a deployment back (after a server restart), synchronously: (status, reason)."""
        with self._lock:
            current = self._endpoints.get(endpoint_name)
            if current and current.serving and current.serving.deployment_id == deployment_id:
                return "InService", ""
        endpoint = self._claim(endpoint_name, deployment_id, variants)
        outcome = self._finish(
            endpoint, self._guarded_roll_out(endpoint, deployment_id, variants, capture, None)
        )
        return (outcome[0], outcome[1]) if outcome else ("Failed", "endpoint was deleted")

    def invoke(
        self,
        endpoint_name: str,
        body: bytes,
        content_type: str,
        accept: str,
        target_variant: str | None = None,
        inference_id: str | None = None,
        custom_attributes: str = "",
    ) -> InvokeResult:
        """Forward one invocation to the serving deployment; capture it if it succeeded."""
        when = datetime.now(UTC)
        deployment = self._acquire(endpoint_name)
        try:
            variant = deployment.pick(target_variant)
            if len(body) > MAX_PAYLOAD_BYTES:
                message = f"request body of {len(body)} bytes exceeds {MAX_PAYLOAD_BYTES} bytes"
                return variant.error(413, message)
            result = variant.invoke(body, content_type, accept, custom_attributes)
            if 200 <= result.status < 300:
                variant.capture(body, content_type, result, when, inference_id, custom_attributes)
            return result
        finally:
            deployment.release()

    def delete(self, endpoint_name: str, on_gone: Callable[[str], None]) -> None:
        """Stop serving at once and return: in-flight invocations finish and the servers stop in the
        background, as SageMaker deletes an endpoint, then ``on_gone(endpoint_name)`` is called;
        not if hosting shuts down first (its owner finishes the deletion when it starts again).
        A deployment still in progress is cancelled by its own thread."""
        with self._lock:
            endpoint = self._endpoints.pop(endpoint_name, None)
            deployment = endpoint.serving if endpoint else None
            if endpoint:
                endpoint.serving = None
        threading.Thread(
            target=self._retire_deleted,
            args=(endpoint_name, deployment, on_gone),
            name=f"delete-{endpoint_name}",
            daemon=True,
        ).start()

    def shutdown(self) -> None:
        """Stop every model server (including ones still starting) and the spawner thread."""
        with self._lock:
            self._closed = True
            deployments = [e.serving for e in self._endpoints.values() if e.serving]
            self._endpoints.clear()
        self._watchdog.stop()
        for deployment in deployments:
            self._retire(deployment, SHUTDOWN_DRAIN_SECONDS)
        with self._lock:
            starting = list(self._live)
        for server in starting:
            self._stop(server)
        self._spawner.shutdown(wait=True)

    def server_pids(self, endpoint_name: str) -> dict[str, int]:
        """Variant name -> pid of its first serving instance (for operators and tests; every
        instance's is in ``instance_pids``)."""
        return {
            variant.variant.variant_name: variant.instances[0].process.pid
            for variant in self._serving_variants(endpoint_name)
        }

    def instance_pids(self, endpoint_name: str) -> dict[str, int]:
        """Each serving instance's log stream (``<variant>/<instance id>``) -> its pid."""
        return {
            server.log_stream: server.process.pid
            for variant in self._serving_variants(endpoint_name)
            for server in variant.instances
        }

    def live_instances(self, endpoint_name: str, deployment_id: str) -> dict[str, int]:
        """Variant name -> how many of its instances still run, while ``deployment_id`` serves
        the endpoint (nothing otherwise)."""
        with self._lock:
            endpoint = self._endpoints.get(endpoint_name)
            deployment = endpoint.serving if endpoint else None
        if deployment is None or deployment.deployment_id != deployment_id:
            return {}
        return {variant.variant.variant_name: variant.live() for variant in deployment.variants}

    def _serving_variants(self, endpoint_name: str) -> list[VariantInstances]:
        with self._lock:
            endpoint = self._endpoints.get(endpoint_name)
            return endpoint.serving.variants if endpoint and endpoint.serving else []

    # registry and locking

    def _claim(self, name: str, deployment_id: str, variants: list[VariantSpec]) -> _Endpoint:
        """Validate, then mark the endpoint busy so only one deployment runs at a time."""
        _validate(name, deployment_id, variants)
        with self._lock:
            if self._closed:
                raise RuntimeError("hosting is shut down")
            endpoint = self._endpoints.setdefault(name, _Endpoint(name))
            if endpoint.busy:
                raise EndpointBusy(f"endpoint {name} is already being deployed")
            if endpoint.serving and endpoint.serving.deployment_id == deployment_id:
                raise ValueError(f"deployment {deployment_id} is already serving {name}")
            endpoint.busy = True
            return endpoint

    def _finish(self, endpoint: _Endpoint, outcome: Outcome | None) -> Outcome | None:
        """Clear busy; the outcome only matters if the endpoint was not deleted meanwhile."""
        with self._lock:
            endpoint.busy = False
            registered = self._endpoints.get(endpoint.name) is endpoint
        return outcome if registered else None

    def _acquire(self, name: str) -> _Deployment:
        """Pin the serving deployment; under the lock so a swap cannot slip in between."""
        with self._lock:
            endpoint = self._endpoints.get(name)
            deployment = endpoint.serving if endpoint else None
            if endpoint is None:  # SageMaker's words, which callers and alert rules match
                raise EndpointNotReady(f"Endpoint {name} of account {ACCOUNT} not found.")
            if deployment is None:
                raise EndpointNotReady(f"endpoint {name} is not in service")
            deployment.acquire()
            return deployment

    def _activate(self, endpoint: _Endpoint, deployment: _Deployment) -> bool:
        """The atomic switch: from here on new invocations go to ``deployment``."""
        with self._lock:
            if self._closed or self._endpoints.get(endpoint.name) is not endpoint:
                return False
            endpoint.serving = deployment
            return True

    def _serving(self, endpoint: _Endpoint) -> _Deployment | None:
        with self._lock:
            return endpoint.serving

    def _cancelled(self, endpoint: _Endpoint) -> bool:
        with self._lock:
            return self._closed or self._endpoints.get(endpoint.name) is not endpoint

    # deployment flow

    def _deploy_worker(
        self,
        endpoint: _Endpoint,
        deployment_id: str,
        variants: list[VariantSpec],
        capture: CaptureSpec | None,
        on_status: StatusCallback,
    ) -> None:
        outcome = self._guarded_roll_out(endpoint, deployment_id, variants, capture, on_status)
        outcome = self._finish(endpoint, outcome)
        if outcome is not None:
            _notify(on_status, endpoint.name, *outcome)

    def _guarded_roll_out(
        self,
        endpoint: _Endpoint,
        deployment_id: str,
        variants: list[VariantSpec],
        capture: CaptureSpec | None,
        on_status: StatusCallback | None,
    ) -> Outcome | None:
        """_roll_out, with a bug turned into a reported failure instead of a stuck endpoint."""
        try:
            return self._roll_out(endpoint, deployment_id, variants, capture, on_status)
        except Exception as exc:
            log.exception("deployment %s of %s failed unexpectedly", deployment_id, endpoint.name)
            return _failure(self._serving(endpoint), f"internal error: {exc}")

    def _roll_out(
        self,
        endpoint: _Endpoint,
        deployment_id: str,
        variants: list[VariantSpec],
        capture: CaptureSpec | None,
        on_status: StatusCallback | None,
    ) -> Outcome | None:
        """Blue/green: start and health-check the new deployment, swap, drain and stop the old."""
        old = self._serving(endpoint)
        if old is not None and on_status is not None:
            _notify(on_status, endpoint.name, "Updating", "", old.deployment_id)
        try:
            new = self._start_deployment(endpoint, deployment_id, variants, capture)
        except DeploymentError as exc:
            return _failure(old, str(exc))
        if not self._activate(endpoint, new):
            self._retire(new, 0)
            return None
        if old is not None:
            self._retire(old, DRAIN_SECONDS)
        return "InService", "", deployment_id

    def _stream(self, endpoint: str, stream: str) -> IO[str] | None:
        """The instance's log stream in the endpoint's group, named as SageMaker names it."""
        return None if self._logs is None else self._logs.open(endpoint_log_group(endpoint), stream)

    def _start_deployment(
        self,
        endpoint: _Endpoint,
        deployment_id: str,
        variants: list[VariantSpec],
        capture: CaptureSpec | None,
    ) -> _Deployment:
        """Start a server for every instance of every variant, then wait for all of them to
        pass /ping."""
        deployment_dir = self._root / endpoint.name / deployment_id
        started: list[VariantInstances] = []
        try:
            for variant in variants:
                variant_dir = (
                    deployment_dir / variant.variant_name if len(variants) > 1 else deployment_dir
                )
                instances = VariantInstances(
                    variant, self._capture_writer(endpoint.name, variant.variant_name, capture),
                    variant_dir, deployment_id,
                )
                started.append(instances)
                for instance_id, instance_dir in instances.places():
                    instances.add(self._launch(endpoint.name, variant, instance_id, instance_dir))
            deployment = _Deployment(deployment_id, started)
            begun = time.monotonic()
            for server in deployment.servers():
                deadline = begun + server.variant.health_timeout
                server.wait_ready(deadline, lambda: self._cancelled(endpoint))
        except BaseException:
            for instances in started:
                self._stop_variant(instances)
            raise
        return deployment

    def _launch(
        self, endpoint_name: str, variant: VariantSpec, instance_id: str, instance_dir: Path
    ) -> ModelServerProcess:
        """Start one instance's server (not yet healthy), tracked so that shutdown() finds it."""
        server = launch(
            variant, instance_dir, instance_id, self._store, self._spawner, self._environments,
            self._confinement, self._stream(endpoint_name, f"{variant.variant_name}/{instance_id}"),
        )
        self._track(server)
        return server

    def _capture_writer(
        self, endpoint_name: str, variant_name: str, capture: CaptureSpec | None
    ) -> CaptureWriter | None:
        if capture is None:
            return None
        return CaptureWriter(
            self._store,
            capture.destination_s3_uri,
            endpoint_name,
            variant_name,
            capture.sampling_percentage,
            capture.capture_input,
            capture.capture_output,
            capture.csv_types,
            capture.json_types,
        )

    # watching and replacing instances

    def _watch(self) -> bool:
        """The watchdog's check: every server is held to its memory; a serving one that died is
        replaced. Whether there is anything to watch."""
        with self._lock:
            servers = list(self._live)
            serving = [(e.name, e.serving) for e in self._endpoints.values() if e.serving]
        for server in servers:
            server.hold_to_memory()
        for endpoint_name, deployment in serving:
            for variant in deployment.variants:
                for dead in variant.claim_dead():
                    self._begin_replacement(endpoint_name, deployment, variant, dead)
        return bool(servers or serving)

    def _begin_replacement(
        self, endpoint_name: str, deployment: _Deployment, variant: VariantInstances, dead: ModelServerProcess
    ) -> None:
        thread = threading.Thread(
            target=self._replace,
            args=(endpoint_name, deployment, variant, dead),
            name=f"replace-{endpoint_name}-{dead.log_stream}",
            daemon=True,
        )
        with self._lock:
            if deployment.retired.is_set():
                return
            deployment.replacements.append(thread)
            thread.start()

    def _replace(
        self, endpoint_name: str, deployment: _Deployment, variant: VariantInstances, dead: ModelServerProcess
    ) -> None:
        """Start instances until one passes /ping and is swapped in for `dead`, waiting longer
        after each that fails (recovery.py), until the deployment is retired."""
        delay = first_delay(dead, time.monotonic())
        log.warning(
            "endpoint %s: instance %s ended with code %s; replacing it%s", endpoint_name, dead.log_stream,
            dead.process.returncode, f" in {delay:g} s" if delay else "",
        )
        while not deployment.retired.wait(delay):
            try:
                replacement = self._start_replacement(endpoint_name, deployment, variant)
            except (DeploymentError, OSError) as exc:
                if deployment.retired.is_set():
                    return
                delay = next_delay(delay)
                log.warning(
                    "endpoint %s: a replacement for instance %s failed, next attempt in %g s: %s",
                    endpoint_name, dead.log_stream, delay, exc,
                )
                continue
            replacement.started_after = delay
            with self._lock:
                swapped = not deployment.retired.is_set()
                if swapped:
                    variant.replace(dead, replacement)
            self._stop(dead if swapped else replacement)
            if swapped:
                log.warning("endpoint %s: instance %s replaced by %s", endpoint_name, dead.log_stream,
                            replacement.log_stream)
            return

    def _start_replacement(
        self, endpoint_name: str, deployment: _Deployment, variant: VariantInstances
    ) -> ModelServerProcess:
        """A new instance of the variant, healthy; stopped again if it is not."""
        instance_id, instance_dir = variant.next_place()
        server = self._launch(endpoint_name, variant.variant, instance_id, instance_dir)
        try:
            deadline = time.monotonic() + variant.variant.health_timeout
            server.wait_ready(deadline, deployment.retired.is_set)
        except BaseException:
            self._stop(server)
            raise
        return server

    # process bookkeeping

    def _track(self, server: ModelServerProcess) -> None:
        """Register a started server so shutdown() can find it even mid-deployment."""
        with self._lock:
            closed = self._closed
            if not closed:
                self._live.add(server)
        if closed:
            server.stop()
            raise DeploymentError("hosting is shutting down")
        self._watchdog.wake()

    def _stop(self, server: ModelServerProcess) -> None:
        server.stop()
        with self._lock:
            self._live.discard(server)

    def _stop_variant(self, instances: VariantInstances) -> None:
        for server in instances.instances:
            self._stop(server)
        instances.close_capture()

    def _retire_deleted(
        self, name: str, deployment: _Deployment | None, on_gone: Callable[[str], None]
    ) -> None:
        if deployment:
            self._retire(deployment, DRAIN_SECONDS)
        with self._lock:
            if self._closed:
                return
        try:
            on_gone(name)
        except Exception:
            log.exception("deletion callback failed for endpoint %s", name)

    def _retire(self, deployment: _Deployment, drain_seconds: float) -> None:
        """No more replacements; wait for the deployment's in-flight invocations (bounded), then
        stop its servers."""
        with self._lock:
            deployment.retired.set()
            replacements = list(deployment.replacements)
        for replacement in replacements:
            replacement.join()
        if not deployment.drain(drain_seconds):
            log.warning(
                "deployment %s still busy after %.0f s; stopping it anyway",
                deployment.deployment_id,
                drain_seconds,
            )
        for instances in deployment.variants:
            self._stop_variant(instances)


# --- small pure helpers ----------------------------------------------------------------------


def _validate(name: str, deployment_id: str, variants: list[VariantSpec]) -> None:
    """Names become path components, so they must be plain; variants must be usable."""
    for label, value in (("endpoint name", name), ("deployment id", deployment_id)):
        if not NAME.fullmatch(value):
            raise ValueError(f"invalid {label} {value!r}")
    if not variants:
        raise ValueError("a deployment needs at least one production variant")
    names = [variant.variant_name for variant in variants]
    for variant_name in names:
        if not NAME.fullmatch(variant_name):
            raise ValueError(f"invalid variant name {variant_name!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate variant names in {names}")


def _failure(old: _Deployment | None, reason: str) -> Outcome:
    """A new endpoint fails; an update that fails leaves the old deployment in service."""
    if old is None:
        return "Failed", reason[:REASON_LIMIT], None
    suffix = f"; still serving {old.deployment_id}"
    room = REASON_LIMIT - len("Update failed: ") - len(suffix)
    return "InService", f"Update failed: {reason[:room]}{suffix}", old.deployment_id


def _notify(
    on_status: StatusCallback, name: str, status: str, reason: str, serving_id: str | None
) -> None:
    """A failing callback must not kill the deployment thread (or leave the endpoint busy)."""
    try:
        on_status(name, status, reason, serving_id)
    except Exception:
        log.exception("status callback failed for endpoint %s (%s)", name, status)
