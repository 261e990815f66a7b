"""S3's conditional writes and deletes, checked against the current version as the write commits.

`If-None-Match: *` writes only where no object is (a delete marker on top counts as none);
`If-Match: <ETag>` writes or deletes only while the current version has that ETag, and a delete's
`If-Match: *` only while an object is there. A failed condition is S3's 412 PreconditionFailed
naming it, an object that is not there S3's 404 NoSuchKey, and a multipart upload completed with
If-Match over a version stored after the upload began S3's 409 ConditionalRequestConflict: the
object changed under it. The store runs the check under its commit lock (storage/objects.py), so of
two writers racing for one key only one passes. Values S3 does not accept (If-None-Match other
than `*`, If-Match `*` on a write, both headers at once, a condition on a delete by version id) are
its 501 NotImplemented, in its words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipelines.local.errors import ServiceError, not_implemented
from pipelines.local.service.objects import matches, no_such_key, precondition_failed
from pipelines.local.storage.database import Body
from pipelines.local.storage.objects import NoSuchKey, ObjectStore, StoredObject, split_uri

MEMBERS = frozenset({"IfMatch", "IfNoneMatch"})  # the request members of a conditional write
BOTH = "Multiple conditional request headers present in the request"
NOT_STAR = "We don't accept the provided value of If-None-Match header for this API"
CONFLICT = "The conditional request cannot succeed due to a conflicting operation against this resource."


@dataclass(frozen=True)
class WriteCondition:
    if_match: str | None = None
    if_none_match: str | None = None
    since: float | None = None  # a completion's: when its upload began (seconds since the epoch)

    @classmethod
    def of_write(cls, request: Body, since: float | None = None) -> WriteCondition:
        """PutObject's, CopyObject's or CompleteMultipartUpload's condition (none at all without
        either header)."""
        if_match, if_none_match = request.get("IfMatch"), request.get("IfNoneMatch")
        if if_match is not None and if_none_match is not None:
            raise _unsupported("If-Match,If-None-Match", BOTH)
        if (if_none_match is not None and if_none_match != "*") or if_match == "*":
            raise _unsupported("If-None-Match", NOT_STAR)
        return cls(if_match, if_none_match, since)

    @classmethod
    def of_delete(cls, if_match: str | None, version_id: str | None) -> WriteCondition:
        """DeleteObject's condition, or a DeleteObjects entry's (its ETag)."""
        if if_match is not None and version_id is not None:
            raise _unsupported(
                "If-Match",
                "Conditional delete operations are not allowed when a version ID is included in the "
                "request parameters.",
            )
        return cls(if_match=if_match)

    def checking(self, store: ObjectStore, uri: str) -> Callable[[], None]:
        """The check the store runs under its commit lock, just before the write lands."""
        if self.if_match is None and self.if_none_match is None:
            return lambda: None
        return lambda: self.check(_current(store, uri), split_uri(uri)[1])

    def check(self, current: StoredObject | None, key: str) -> None:
        """Refuse the write, in S3's words, unless `current` (the key's current version, None for
        none) is what the condition asks for."""
        if self.if_none_match is not None:
            if current is not None:
                raise precondition_failed("If-None-Match")
            return
        if current is None:
            raise no_such_key(key)
        if not matches(self.if_match or "", current.etag):
            raise precondition_failed("If-Match")
        if self.since is not None and current.committed > self.since:
            conflict = {"Condition": "If-Match", "Key": key}
            raise ServiceError("ConditionalRequestConflict", CONFLICT, 409, conflict)


def _current(store: ObjectStore, uri: str) -> StoredObject | None:
    try:
        return store.describe(uri)
    except (NoSuchKey, ValueError):
        return None


def _unsupported(header: str, detail: str) -> ServiceError:
    """S3's 501 with no word of its own but its additionalMessage."""
    return not_implemented(header, fields={"additionalMessage": detail})
