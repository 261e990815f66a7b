"""S3's deletes in a versioned bucket, and the listing that shows what they keep: DeleteObject,
DeleteObjects and ListObjectVersions.

Every bucket here keeps every version (GetBucketVersioning answers Enabled), so a delete is what S3
does in such a bucket: without a version id it puts a delete marker on top (the object is gone from
GetObject and ListObjectsV2, every version stays readable by its id), with one it removes that version
for good, and when that was the current one the version before it is current again. A key that never
existed gets a marker too, as S3 gives it one. A delete may be conditional (DeleteObject's If-Match,
a DeleteObjects entry's ETag: write_conditions.py); a failed condition in DeleteObjects is that
entry's error. What S3 would ask of the delete beyond that (MFA, object lock's governance bypass,
the conditions of directory buckets) is refused by name, as PutObject refuses what the store does
not keep.
"""

from __future__ import annotations

from collections.abc import Callable

from pipelines.local.contract.models import operation_model
from pipelines.local.errors import ServiceError, not_implemented
from pipelines.local.service.context import ServiceContext
from pipelines.local.service.object_listing import completed, past_markers, truncated
from pipelines.local.service.object_writes import admit
from pipelines.local.service.objects import MAX_KEYS, OWNER, listed_checksum, max_items, url_encoder
from pipelines.local.service.write_conditions import WriteCondition
from pipelines.local.storage.database import Body
from pipelines.local.storage.objects import SCHEME, VersionEntry, is_version_id

MAX_DELETES = 1000  # keys a DeleteObjects request may name
HONOURED = {
    "DeleteObject": frozenset({"Bucket", "Key", "VersionId", "ExpectedBucketOwner", "IfMatch"}),
    "DeleteObjects": frozenset({"Bucket", "Delete", "ExpectedBucketOwner"}),
    "ListObjectVersions": frozenset(
        {"Bucket", "Delimiter", "EncodingType", "KeyMarker", "MaxKeys", "Prefix", "VersionIdMarker",
         "ExpectedBucketOwner"}
    ),
}


class ObjectDeletes:
    def __init__(self, context: ServiceContext) -> None:
        self.store = context.store
        self.models = {name: operation_model("s3", name) for name in HONOURED}

    def delete_object(self, request: Body) -> Body:
        self._admit("DeleteObject", request)
        condition = WriteCondition.of_delete(request.get("IfMatch"), request.get("VersionId"))
        return _deleted(self._delete(request["Bucket"], request["Key"], request.get("VersionId"), condition))

    def delete_objects(self, request: Body) -> Body:
        """Each key of the list deleted as DeleteObject deletes it; a key that cannot be is an entry
        of Errors, not a failure of the request. Quiet mode answers the errors only."""
        self._admit("DeleteObjects", request)
        listed = (request.get("Delete") or {}).get("Objects") or []
        if not listed or len(listed) > MAX_DELETES or any("Key" not in item for item in listed):
            raise ServiceError(
                "MalformedXML",
                "The XML you provided was not well-formed or did not validate against our published schema",
            )
        for item in listed:
            _refuse_directory_bucket_conditions(item)
        deleted, errors = [], []
        for item in listed:
            version = item.get("VersionId")
            if version is not None and not is_version_id(version):  # S3's answer to one in no form it gives
                errors.append({"Key": item["Key"], "VersionId": version, "Code": "NoSuchVersion",
                               "Message": "The specified version does not exist."})
                continue
            try:
                condition = WriteCondition.of_delete(item.get("ETag"), version)
                outcome = self._delete(request["Bucket"], item["Key"], version, condition)
            except ServiceError as error:
                errors.append({"Key": item["Key"], **({"VersionId": version} if version else {}),
                               "Code": error.code, "Message": error.message})
                continue
            deleted.append({"Key": item["Key"], **_deleted_entry(outcome, version)})
        quiet = (request.get("Delete") or {}).get("Quiet", False)
        return {name: value for name, value in {"Deleted": [] if quiet else deleted, "Errors": errors}.items()
                if value}

    def list_object_versions(self, request: Body) -> Body:
        """Versions and delete markers by key, newest first, keys past the prefix rolled up at the
        delimiter; a page holds MaxKeys entries and the next goes on from (KeyMarker, VersionIdMarker)."""
        self._admit("ListObjectVersions", request)
        bucket, prefix, delimiter = request["Bucket"], request.get("Prefix", ""), request.get("Delimiter", "")
        key_marker, version_marker = request.get("KeyMarker", ""), request.get("VersionIdMarker", "")
        if version_marker and not key_marker:
            raise ServiceError(
                "InvalidArgument", "A version-id marker cannot be specified without a key marker.", 400,
                {"ArgumentName": "version-id-marker", "ArgumentValue": version_marker},
            )
        limit = max_items(request.get("MaxKeys", MAX_KEYS), "max-keys")
        encode = url_encoder(request.get("EncodingType"))
        listed = past_markers(
            self.store.version_entries(bucket, prefix), lambda version: version.key,
            lambda version: version.version_id, prefix, delimiter, key_marker, version_marker,
        )
        shown = listed[:limit]
        versions = [version for _, version in shown if version is not None]
        answer: Body = {
            "Name": bucket, "Prefix": encode(prefix), "KeyMarker": encode(key_marker),
            "VersionIdMarker": version_marker, "MaxKeys": limit, "IsTruncated": truncated(shown, listed),
            "Versions": [_version(version, encode) for version in versions if not version.delete_marker],
            "DeleteMarkers": [_marker(version, encode) for version in versions if version.delete_marker],
            "CommonPrefixes": [{"Prefix": encode(name)} for name, version in shown if version is None],
        }
        return completed(
            answer, shown, request, encode, "NextVersionIdMarker", lambda version: version.version_id
        )

    def _admit(self, operation: str, request: Body) -> None:
        admit(self.store, self.models[operation], request, HONOURED[operation])

    def _delete(
        self, bucket: str, key: str, version_id: str | None, condition: WriteCondition
    ) -> tuple[str, bool]:
        """(the version id the answer names, whether it is a delete marker)."""
        uri = f"{SCHEME}{bucket}/{key}"
        if version_id is not None and not is_version_id(version_id):
            raise ServiceError("InvalidArgument", "Invalid version id specified", 400,
                               {"ArgumentName": "versionId", "ArgumentValue": version_id})
        try:
            if version_id is None:
                return self.store.delete(uri, condition.checking(self.store, uri)), True
            was_marker = self.store.delete_version(uri, version_id)
        except ValueError as error:  # a key the store cannot hold, or a clash of names
            raise ServiceError(
                "InvalidArgument",
                f"The local SageMaker's S3 keeps objects as files and cannot delete this one: {error}", 400,
                {"ArgumentName": "key", "ArgumentValue": key},
            ) from None
        return version_id, bool(was_marker)


def _refuse_directory_bucket_conditions(item: Body) -> None:
    """An entry's LastModifiedTime and Size are conditions S3 keeps for directory buckets, which
    the local S3 does not have: refused by name rather than ignored."""
    for name in ("LastModifiedTime", "Size"):
        if name in item:
            raise not_implemented(
                name,
                f"the local SageMaker's S3 has general purpose buckets only, and {name} is a condition of "
                "directory buckets",
            )


def _deleted(outcome: tuple[str, bool]) -> Body:
    version_id, marker = outcome
    return {"VersionId": version_id, **({"DeleteMarker": True} if marker else {})}


def _deleted_entry(outcome: tuple[str, bool], asked: str | None) -> Body:
    """DeleteObjects' entry: a marker put is named as DeleteMarkerVersionId, a version removed as
    VersionId (with DeleteMarker when it was one)."""
    version_id, marker = outcome
    if asked is None:
        return {"DeleteMarker": True, "DeleteMarkerVersionId": version_id}
    removed_marker = {"DeleteMarker": True, "DeleteMarkerVersionId": version_id} if marker else {}
    return {"VersionId": version_id, **removed_marker}


def _version(version: VersionEntry, encode: Callable[[str], str]) -> Body:
    return {
        "Key": encode(version.key), "VersionId": version.version_id, "IsLatest": version.is_latest,
        "LastModified": version.modified, "ETag": version.etag, "Size": version.size,
        "StorageClass": "STANDARD", "Owner": OWNER, **listed_checksum(version.members),
    }


def _marker(version: VersionEntry, encode: Callable[[str], str]) -> Body:
    return {
        "Key": encode(version.key), "VersionId": version.version_id, "IsLatest": version.is_latest,
        "LastModified": version.modified, "Owner": OWNER,
    }

