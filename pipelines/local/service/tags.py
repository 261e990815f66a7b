"""AddTags, ListTags, DeleteTags: tags of any local resource, by its ARN (what `Pipeline.upsert(tags=...)`
calls on a pipeline that exists), and the tag keys SageMaker keeps for itself."""

from __future__ import annotations

from collections.abc import Callable

from pipelines.local.errors import ServiceError, invalid
from pipelines.local.service.context import ServiceContext
from pipelines.local.service.listing import Listing
from pipelines.local.storage.database import Body

TAGS = Listing(
    "ListTags", "Tags", {"Key": "Key"}, identity="Key", default_sort="Key", default_order="Ascending",
    scope=("ResourceArn",), default_limit=50,  # ListTags' MaxResults is at least 50
)


# Keys in this prefix, in any case, are AWS's own (CloudFormation's aws:cloudformation:stack-name...):
# SageMaker refuses a request that sets or removes one, whichever operation carries the tags.
RESERVED_PREFIX = "aws:"


def refusing_reserved_keys(operation: Callable[[Body], Body]) -> Callable[[Body], Body]:
    """`operation`, refusing first a request whose Tags or TagKeys name a key of AWS's own, with
    SageMaker's message, before anything is created or changed."""

    def checked(request: Body) -> Body:
        keys = [tag["Key"] for tag in request.get("Tags") or []] + list(request.get("TagKeys") or [])
        for key in keys:
            if key.lower().startswith(RESERVED_PREFIX):
                raise invalid(f"System prefix '{RESERVED_PREFIX}' reserved for AWS usage in tag key: {key}")
        return operation(request)

    return checked


class TagOperations:
    def __init__(self, context: ServiceContext) -> None:
        self.context = context

    def _require(self, arn: str) -> None:
        """Only a resource that exists can be tagged."""
        database = self.context.database
        resource = arn.split(":", 5)[-1]  # e.g. pipeline/name, model-package/group/1
        kind = resource.split("/", 1)[0]
        if "/execution/" in resource:
            found = database.execution(arn) is not None
        elif kind == "model-package":
            found = database.package(arn) is not None
        else:
            found = any(arn in body.values() for body in database.all(kind.replace("-", "_")))
        if not found:
            raise ServiceError("ResourceNotFound", f"Resource {arn} does not exist.")

    def add_tags(self, request: Body) -> Body:
        self._require(request["ResourceArn"])
        self.context.add_tags(request["ResourceArn"], request["Tags"])
        return {"Tags": request["Tags"]}

    def list_tags(self, request: Body) -> Body:
        self._require(request["ResourceArn"])
        return TAGS.page(self.context.tags(request["ResourceArn"]), request)

    def delete_tags(self, request: Body) -> Body:
        self._require(request["ResourceArn"])
        self.context.delete_tags(request["ResourceArn"], request["TagKeys"])
        return {}
