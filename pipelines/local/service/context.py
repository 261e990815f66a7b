"""What every group of operations shares: the database, the object store, one lock, the region."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from pipelines.local.errors import invalid, not_found
from pipelines.local.layout import StateLayout
from pipelines.local.storage.database import Body, Database
from pipelines.local.storage.objects import ObjectStore
from pipelines.local.system.identity import ACCOUNT, arn

# Who created what (DescribeModelPackageGroup's CreatedBy...): locally, always the account itself.
# "SageMaker AI resources have a 50 tag limit. If the number of tags added to a resource exceeds 50,
# SageMaker AI returns an error" (the developer guide's custom tags page): what a resource already has
# counts with what a request adds.
MAX_TAGS = 50
CREATED_BY = {"IamIdentity": {"Arn": f"arn:aws:iam::{ACCOUNT}:root", "PrincipalId": ACCOUNT}}


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

    def resource_arn(self, kind: str, name: str) -> str:
        """A resource's ARN: SageMaker's holds the lowercased name, so names differing only in case
        are one resource."""
        return self.arn(kind.replace("_", "-"), name.lower())

    def find(self, kind: str, name: str) -> Body | None:
        """The resource of `kind` named `name` in any case, or by its ARN."""
        if name.startswith("arn:"):
            resource_kind, _, name = name.split(":", 5)[-1].partition("/")
            if resource_kind != kind.replace("_", "-"):
                return None
        return self.database.find(kind, name)

    def create(self, kind: str, name: str, body: Body, label: str, tags: list[Body] | None = None) -> Body:
        """Store a new resource with its tags, refusing a name taken in any case, as SageMaker does."""
        resource = self.resource_arn(kind, name)
        with self.lock:
            if self.find(kind, name):
                raise invalid(f'Cannot create already existing {label} "{resource}".')
            self.database.put(kind, name, body, body["CreationTime"])
            self.add_tags(resource, tags or [])
        return body

    def add_tags(self, arn: str, tags: list[Body]) -> None:
        """Set tags on a resource (a key given again takes its new value), refusing any that would
        take it over MAX_TAGS."""
        if not tags:
            return
        with self.lock:
            stored = self.database.get("tags", arn) or {"Tags": {}}
            stored["Tags"].update({tag["Key"]: tag.get("Value", "") for tag in tags})
            if len(stored["Tags"]) > MAX_TAGS:
                raise invalid(f"Tags could not be added: {arn} would have {len(stored['Tags'])} tags, "
                              f"and a resource can have at most {MAX_TAGS}.")
            self.database.put("tags", arn, stored, 0)

    def tags(self, arn: str) -> list[Body]:
        stored = self.database.get("tags", arn) or {"Tags": {}}
        return [{"Key": key, "Value": value} for key, value in stored["Tags"].items()]

    def delete_tags(self, arn: str, keys: list[str] | None = None) -> None:
        """Remove some keys, or (None) every tag: what deleting the resource does."""
        with self.lock:
            stored = self.database.get("tags", arn)
            if stored is None:
                return
            if keys is None:
                self.database.delete("tags", arn)
                return
            for key in keys:
                stored["Tags"].pop(key, None)
            self.database.put("tags", arn, stored, 0)

    def get(self, kind: str, name: str, label: str) -> Body:
        """As `find`, or SageMaker's not-found error, which names the resource's ARN."""
        body = self.find(kind, name)
        if body is None:
            raise not_found(label, name if name.startswith("arn:") else self.resource_arn(kind, name))
        return body
