"""What every group of operations shares: the database, the object store, one lock, the region."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from pipelines.local.errors import ServiceError, not_found
from pipelines.local.layout import StateLayout
from pipelines.local.storage.database import Body, Database
from pipelines.local.storage.objects import ObjectStore
from pipelines.local.system.identity import arn


@dataclass
class ServiceContext:
    layout: StateLayout
    region: str
    database: Database
    store: ObjectStore
    # One lock for every read-modify-write of service state, whichever thread makes it.
    lock: threading.RLock = field(default_factory=threading.RLock)

    def arn(self, kind: str, name: str) -> str:
        return arn("sagemaker", self.region, f"{kind}/{name}")

    def create(self, kind: str, name: str, body: Body, label: str) -> Body:
        """Store a new resource, refusing a name that is taken as SageMaker does."""
        with self.lock:
            if self.database.get(kind, name):
                raise ServiceError(
                    "ValidationException",
                    f'Cannot create already existing {label} "{self.arn(kind.replace("_", "-"), name)}".',
                )
            self.database.put(kind, name, body, body["CreationTime"])
        return body

    def get(self, kind: str, name: str, label: str) -> Body:
        body = self.database.get(kind, name)
        if body is None:
            raise not_found(label, name)
        return body
