"""The instances of one production variant: which one answers an invocation, and its data capture.

A variant with InitialInstanceCount N runs N model server processes. Invocations are spread over
them as the variant's ``RoutingConfig.RoutingStrategy`` asks SageMaker to: ``RANDOM`` (SageMaker's
default) picks any instance with equal chance; ``LEAST_OUTSTANDING_REQUESTS`` picks one with the
fewest invocations in flight, ties broken in turn (round-robin), so a slow instance is given less
and idle instances are used alike. Both strategies are served, rather than one of them for every
variant, because a model that behaves well under one and not the other must show it here.

An instance whose process ended is left out of the choice while another lives, so the others keep
serving; nothing restarts it (a lone model server that dies is not restarted either: its
invocations fail until the endpoint is updated). With no live instance left, invocations still go
to one, and fail as a dead server's do.

Data capture belongs to the variant, not to an instance: SageMaker captures at the endpoint's
front, so the variant's instances share one capture writer.
"""

from __future__ import annotations

import logging
import random
import threading
import uuid
from datetime import datetime

from pipelines.local.hosting.capture import CaptureWriter
from pipelines.local.hosting.model_process import InvokeResult, ModelServerProcess, VariantSpec

log = logging.getLogger(__name__)

LEAST_OUTSTANDING_REQUESTS = "LEAST_OUTSTANDING_REQUESTS"


class VariantInstances:
    """The model server processes of one variant of one deployment, and its capture writer."""

    def __init__(self, variant: VariantSpec, capture: CaptureWriter | None) -> None:
        self.variant = variant
        self.instances: list[ModelServerProcess] = []
        self._capture = capture
        self._lock = threading.Lock()
        self._outstanding: dict[ModelServerProcess, int] = {}
        self._turn = 0

    def add(self, instance: ModelServerProcess) -> None:
        with self._lock:
            self.instances.append(instance)
            self._outstanding[instance] = 0

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

    def error(self, status: int, message: str) -> InvokeResult:
        """An answer made here, not by a model: the variant's, from its first instance."""
        return self.instances[0].error(status, message)

    def _pick(self) -> ModelServerProcess:
        live = self.instances
        if len(live) > 1:  # one instance is the answer whether it lives or not
            live = [instance for instance in live if instance.alive()] or live
        with self._lock:
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
