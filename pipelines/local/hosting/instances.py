"""The instances of one production variant: which one answers an invocation, and its data capture.

A variant with InitialInstanceCount N runs N model server processes. Invocations are spread over
them as the variant's ``RoutingConfig.RoutingStrategy`` asks SageMaker to: ``RANDOM`` (SageMaker's
default) picks any instance with equal chance; ``LEAST_OUTSTANDING_REQUESTS`` picks one with the
fewest invocations in flight, ties broken in turn (round-robin), so a slow instance is given less
and idle instances are used alike. Both strategies are served, rather than one of them for every
variant, because a model that behaves well under one and not the other must show it here.

An instance whose process ended is left out of the choice while another lives, so the others keep
serving until hosting replaces it (endpoints.py) with a new instance: a new id, directory and log
stream, swapped in once it answers /ping. With no live instance left, invocations still go to one,
and fail as a dead server's do until the replacement is in.

Instance ids: a lone instance is the deployment's id, in the variant's directory; several are
``<deployment id>_<n>`` (n from 1) in directories of those names, and replacements go on counting
from the variant's instance count (an endpoint config name has no "_", so no other deployment's
instance can share its log stream).

Data capture belongs to the variant, not to an instance: SageMaker captures at the endpoint's
front, so the variant's instances share one capture writer.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import uuid
from datetime import datetime
from pathlib import Path

from pipelines.local.hosting.capture import CaptureWriter
from pipelines.local.hosting.model_process import InvokeResult, ModelServerProcess, VariantSpec

log = logging.getLogger(__name__)

LEAST_OUTSTANDING_REQUESTS = "LEAST_OUTSTANDING_REQUESTS"


class VariantInstances:
    """The model server processes of one variant of one deployment, and its capture writer."""

    def __init__(
        self, variant: VariantSpec, capture: CaptureWriter | None, directory: Path, deployment_id: str
    ) -> None:
        self.variant = variant
        self.instances: list[ModelServerProcess] = []  # replaced whole, never changed in place
        self._capture = capture
        self._directory = directory
        self._deployment_id = deployment_id
        self._numbers = itertools.count(variant.instance_count + 1)  # replacements' ids
        self._lock = threading.Lock()
        self._outstanding: dict[ModelServerProcess, int] = {}
        self._claimed: set[ModelServerProcess] = set()  # dead ones whose replacement has begun
        self._turn = 0

    def places(self) -> list[tuple[str, Path]]:
        """The id and directory of each instance the variant starts with."""
        if self.variant.instance_count == 1:
            return [(self._deployment_id, self._directory)]
        return [self._place(number) for number in range(1, self.variant.instance_count + 1)]

    def next_place(self) -> tuple[str, Path]:
        """The id and directory of a replacement instance, never used before in this deployment."""
        return self._place(next(self._numbers))

    def _place(self, number: int) -> tuple[str, Path]:
        instance_id = f"{self._deployment_id}_{number}"
        return instance_id, self._directory / instance_id

    def add(self, instance: ModelServerProcess) -> None:
        with self._lock:
            self.instances = [*self.instances, instance]
            self._outstanding[instance] = 0

    def claim_dead(self) -> list[ModelServerProcess]:
        """The instances whose process ended since the last call: each is to be replaced once."""
        with self._lock:
            dead = [instance for instance in self.instances
                    if instance not in self._claimed and not instance.alive()]
            self._claimed.update(dead)
            return dead

    def replace(self, dead: ModelServerProcess, new: ModelServerProcess) -> None:
        """From now on invocations may reach `new` and no longer `dead`."""
        with self._lock:
            self.instances = [new if instance is dead else instance for instance in self.instances]
            self._claimed.discard(dead)
            self._outstanding[new] = 0
            self._forget_if_idle(dead)

    def live(self) -> int:
        """How many instances still run."""
        return sum(instance.alive() for instance in self.instances)

    def invoke(
        self, body: bytes, content_type: str, accept: str, custom_attributes: str = ""
    ) -> InvokeResult:
        """Forward to the instance the routing strategy picks; its answer names its log stream."""
        instance = self._pick()
        try:
            return instance.invoke(body, content_type, accept, custom_attributes)
        finally:
            with self._lock:
                self._outstanding[instance] -= 1
                if instance not in self.instances:
                    self._forget_if_idle(instance)

    def _forget_if_idle(self, instance: ModelServerProcess) -> None:
        """A replaced instance's count goes once its last invocation has returned (under the lock)."""
        if self._outstanding[instance] == 0:
            del self._outstanding[instance]

    def error(self, status: int, message: str) -> InvokeResult:
        """An answer made here, not by a model: the variant's, from its first instance."""
        return self.instances[0].error(status, message)

    def _pick(self) -> ModelServerProcess:
        with self._lock:  # the instances and their counts as one
            live = self.instances
            if len(live) > 1:  # one instance is the answer whether it lives or not
                live = [instance for instance in live if instance.alive()] or live
            if self.variant.routing == LEAST_OUTSTANDING_REQUESTS:
                start = self._turn % len(live)
                self._turn += 1
                chosen = min(live[start:] + live[:start], key=self._outstanding.__getitem__)
            else:
                chosen = random.choice(live)
            self._outstanding[chosen] += 1
            return chosen

    def capture(
        self,
        body: bytes,
        content_type: str,
        result: InvokeResult,
        when: datetime,
        inference_id: str | None = None,
        custom_attributes: str = "",
    ) -> None:
        """Data capture must never fail an invocation that succeeded, so errors are only logged."""
        if self._capture is None:
            return
        try:
            self._capture.record(
                body,
                content_type,
                result.body,
                result.content_type,
                str(uuid.uuid4()),
                when,
                inference_id,
                custom_attributes,
            )
        except (OSError, ValueError, KeyError):
            log.exception("data capture failed for variant %s", self.variant.variant_name)

    def close_capture(self) -> None:
        """Once its instances have stopped: no invocation can reach the writer any more."""
        if self._capture is not None:
            self._capture.close()
