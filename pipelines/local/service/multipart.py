"""S3's multipart uploads: CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
AbortMultipartUpload, ListParts and ListMultipartUploads, over the uploads the store keeps in progress
(storage/uploads.py).

boto3's `upload_file` (and so the SageMaker SDK's uploads, and `aws s3 cp`) sends anything over 8 MB
this way. S3's rules are kept: part numbers 1 to 10,000; every part but the last at least 5 MiB; the
parts a completion lists in ascending order, each one uploaded with the ETag (and, for a composite
checksum, the checksum) given; the object's ETag the MD5 of the parts' MD5s with their count. Each
part's digests are checked as PutObject's are (checksums.py). An upload created with a checksum
algorithm sums every part with it: a COMPOSITE checksum (the default, but for CRC64NVME) is the
checksum of the parts' checksums with their count, a FULL_OBJECT one (the CRCs only; CRC64NVME's only
type) the checksum of the whole object, checked against the one a completion sends; a completion
naming a checksum type names the upload's.
Headers the store does not keep are refused as PutObject refuses them. A completion may be
conditional as a PUT may (If-None-Match, If-Match: write_conditions.py); with If-Match, a version
stored after the upload began is S3's 409 conflict.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from pipelines.local.contract.models import operation_model
from pipelines.local.errors import ServiceError, not_implemented
from pipelines.local.service.checksums import (
    ALGORITHM_MEMBER,
    ALGORITHMS,
    FULL_OBJECT,
    MEMBER,
    Digesting,
    Expected,
    full_object,
    invalid,
)
from pipelines.local.service.context import ServiceContext
from pipelines.local.service.object_listing import completed, past_markers, truncated
from pipelines.local.service.object_writes import admit, kept_members, storing
from pipelines.local.service.objects import HEADERS, OWNER, max_items, url_encoder
from pipelines.local.service.write_conditions import MEMBERS as CONDITIONS
from pipelines.local.service.write_conditions import WriteCondition
from pipelines.local.storage.database import Body
from pipelines.local.storage.objects import SCHEME, split_uri
from pipelines.local.storage.uploads import Completion, Part, PartReplaced, Upload, UploadGone

MAX_PART_NUMBER = 10_000
MIN_PART_BYTES = 5 * 1024**2  # every part but the last
COMPOSITE = "COMPOSITE"
# The algorithms an upload can sum its parts with, as S3's; the others (the XXHASHes, SHA512, MD5)
# are refused by name.
PART_ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
FULL_OBJECT_ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME")  # those S3 also sums over the whole object
COMPOSITE_ALGORITHMS = ("CRC32", "CRC32C", "SHA1", "SHA256")  # those S3 sums over the parts' sums
_COMMON = frozenset({"Bucket", "Key", "UploadId", "ExpectedBucketOwner"})
HONOURED = {
    "CreateMultipartUpload": frozenset({*_COMMON, "ACL", "Metadata", *HEADERS}),
    "UploadPart": frozenset({*_COMMON, "Body", "ContentLength", "ContentMD5", "PartNumber"}),
    "CompleteMultipartUpload": frozenset({*_COMMON, "MultipartUpload", "MpuObjectSize", *CONDITIONS}),
    "AbortMultipartUpload": _COMMON,
    "ListParts": frozenset({*_COMMON, "MaxParts", "PartNumberMarker"}),
    "ListMultipartUploads": frozenset(
        {"Bucket", "ExpectedBucketOwner", "Delimiter", "EncodingType", "KeyMarker", "MaxUploads", "Prefix",
         "UploadIdMarker"}
    ),
}


class MultipartUploads:
    def __init__(self, context: ServiceContext) -> None:
        self.store = context.store
        self.uploads = context.store.uploads
        self.models = {name: operation_model("s3", name) for name in HONOURED}

    def create_multipart_upload(self, request: Body) -> Body:
        self._admit("CreateMultipartUpload", request)
        with storing(request["Bucket"]):  # a key the store cannot keep is refused before any part
            split_uri(f"{SCHEME}{request['Bucket']}/{request['Key']}")
        algorithm, checksum_type = _checksum_of_upload(request)
        upload = self.uploads.create(
            request["Bucket"], request["Key"], kept_members(request), algorithm, checksum_type
        )
        answer: Body = {"Bucket": upload.bucket, "Key": upload.key, "UploadId": upload.upload_id}
        if algorithm is not None:
            answer.update({ALGORITHM_MEMBER: algorithm, "ChecksumType": checksum_type})
        return answer

    def upload_part(self, request: Body) -> Body:
        self._admit("UploadPart", request)
        upload, number = self.target_part(request)
        expected = Expected.of(request)
        # A FULL_OBJECT upload's part may come without a checksum: S3 sums the whole object itself.
        summed = expected.algorithm is not None or upload.checksum_type == COMPOSITE
        if upload.algorithm is not None and expected.algorithm != upload.algorithm and summed:
            raise _checksum_type_mismatch(upload.algorithm, expected.algorithm)

        def verified() -> str | None:
            expected.verify()
            return expected.members().get(f"{MEMBER}{expected.algorithm}")

        with in_progress(upload):
            part = self.uploads.put_part(upload, number, expected.reading(request["Body"]), verified)
        checksum = {f"{MEMBER}{expected.algorithm}": part.checksum} if part.checksum else {}
        return {"ETag": part.etag, **checksum}

    def complete_multipart_upload(self, request: Body) -> Body:
        """The parts joined into the object; a completion sent again with the same parts, once the
        first has stored it, gets the first one's answer and stores nothing (S3 answers it so)."""
        self._admit("CompleteMultipartUpload", request)
        listed = (request.get("MultipartUpload") or {}).get("Parts") or []
        with self.uploads.completing(request["UploadId"]):
            completion = self.uploads.completion(request["UploadId"])
            if completion is not None and _same_completion(completion, request, listed):
                return completion.answer
            upload = self._named_upload(request)
            answer = self._complete(upload, request, listed)
            self.uploads.finish(upload, _listed_parts(listed), answer)
            return answer

    def _complete(self, upload: Upload, request: Body, listed: list[Body]) -> Body:
        condition = WriteCondition.of_write(request, since=upload.initiated)
        if "ChecksumType" in request and request["ChecksumType"] != upload.checksum_type:
            raise invalid(
                f"The upload was created using the {upload.checksum_type or 'null'} checksum mode. The "
                "complete request must use the same checksum mode."
            )
        if not listed:
            raise _malformed()
        with in_progress(upload):
            parts = _chosen(upload, self.uploads.parts(upload), listed)
        size = sum(part.size for part in parts)
        if "MpuObjectSize" in request and str(request["MpuObjectSize"]) != str(size):
            raise invalid(
                f"The provided 'x-amz-mp-object-size' header value {request['MpuObjectSize']} does not "
                f"match what was computed: {size}"
            )
        md5s = b"".join(bytes.fromhex(part.etag.strip('"')) for part in parts)
        etag = f'"{hashlib.md5(md5s, usedforsecurity=False).hexdigest()}-{len(parts)}"'
        uri = f"{SCHEME}{upload.bucket}/{upload.key}"
        version = self.store.completed_from(uri, upload.upload_id, upload.initiated)
        if version is not None:  # stored before a crash kept its completion from being recorded
            if self.store.describe(uri, version).etag != etag:
                raise _no_such_upload(upload.upload_id)  # completed, with other parts
            return self._answer(upload, uri, version)
        whole = _WholeObjectChecksum(upload, request)
        # The store records the members once `verify` has passed: a whole-object checksum, known
        # only when the last byte has been read, is added to them then.
        members = {**upload.members, **_composite(upload, parts)}
        joined_parts = self.uploads.joined(upload, parts)
        with storing(upload.bucket), in_progress(upload, listed), joined_parts as joined:
            version = self.store.put_stream(
                uri, Digesting(joined, [whole.hasher] if whole.hasher else []),
                lambda: members.update(whole.verified()), members, tuple(part.size for part in parts),
                etag, upload.upload_id, condition.checking(self.store, uri),
            )
        return self._answer(upload, uri, version)

    def _answer(self, upload: Upload, uri: str, version: str) -> Body:
        """CompleteMultipartUpload's answer for the version the upload was completed into."""
        stored = self.store.describe(uri, version)
        return {
            "Bucket": upload.bucket, "Key": upload.key, "ETag": stored.etag, "VersionId": version,
            **{name: value for name, value in stored.members.items() if name.startswith(MEMBER)},
        }

    def abort_multipart_upload(self, request: Body) -> Body:
        self.uploads.discard(self._upload("AbortMultipartUpload", request))
        return {}

    def list_parts(self, request: Body) -> Body:
        upload = self._upload("ListParts", request)
        limit = max_items(request.get("MaxParts", 1000), "max-parts")
        marker = _marker(request.get("PartNumberMarker", 0))
        with in_progress(upload):
            uploaded = self.uploads.parts(upload).values()
        following = sorted((part for part in uploaded if part.number > marker), key=lambda part: part.number)
        shown = following[:limit]
        answer: Body = {
            "Bucket": upload.bucket, "Key": upload.key, "UploadId": upload.upload_id,
            "PartNumberMarker": marker, "MaxParts": limit, "IsTruncated": truncated(shown, following),
            "StorageClass": "STANDARD", "Owner": OWNER, "Initiator": OWNER,
            "Parts": [_listed_part(upload, part) for part in shown],
        }
        if shown:
            answer["NextPartNumberMarker"] = shown[-1].number
        if upload.algorithm is not None:
            answer.update({ALGORITHM_MEMBER: upload.algorithm, "ChecksumType": upload.checksum_type})
        return {name: value for name, value in answer.items() if value != []}

    def list_multipart_uploads(self, request: Body) -> Body:
        """Uploads in progress by key, then in the order they were initiated, keys past the prefix
        rolled up at the delimiter; a page holds `MaxUploads` entries and the next goes on from
        (KeyMarker, UploadIdMarker)."""
        self._admit("ListMultipartUploads", request)
        bucket, prefix, delimiter = request["Bucket"], request.get("Prefix", ""), request.get("Delimiter", "")
        key_marker, upload_id_marker = request.get("KeyMarker", ""), request.get("UploadIdMarker", "")
        limit = max_items(request.get("MaxUploads", 1000), "max-uploads")
        encode = url_encoder(request.get("EncodingType"))
        entries = past_markers(
            self.uploads.in_bucket(bucket), lambda upload: upload.key, lambda upload: upload.upload_id,
            prefix, delimiter, key_marker, upload_id_marker,
        )
        shown = entries[:limit]
        answer: Body = {
            "Bucket": bucket, "KeyMarker": encode(key_marker), "UploadIdMarker": upload_id_marker,
            "Prefix": encode(prefix), "MaxUploads": limit, "IsTruncated": truncated(shown, entries),
            "Uploads": [_listed_upload(upload, encode) for _, upload in shown if upload is not None],
            "CommonPrefixes": [{"Prefix": encode(name)} for name, upload in shown if upload is None],
        }
        return completed(
            answer, shown, request, encode, "NextUploadIdMarker", lambda upload: upload.upload_id
        )

    def _admit(self, operation: str, request: Body) -> None:
        admit(self.store, self.models[operation], request, HONOURED[operation])

    def target_part(self, request: Body) -> tuple[Upload, int]:
        """The upload in progress and the part number an UploadPart (or UploadPartCopy) names."""
        number = _part_number(request["PartNumber"])
        return self._named_upload(request), number

    def _upload(self, operation: str, request: Body) -> Upload:
        self._admit(operation, request)
        return self._named_upload(request)

    def _named_upload(self, request: Body) -> Upload:
        """The upload in progress the request names: S3's NoSuchUpload for any other id, or for
        this id under another bucket or key."""
        upload = self.uploads.get(request["UploadId"])
        if upload is None or (upload.bucket, upload.key) != (request["Bucket"], request["Key"]):
            raise _no_such_upload(request["UploadId"])
        return upload


@contextmanager
def in_progress(upload: Upload, listed: list[Body] | None = None) -> Iterator[None]:
    """S3's answers for an upload that changed under a request: NoSuchUpload once it was completed
    or aborted; for a completion (`listed`, its parts), InvalidPart when a part it checked was sent
    again before it was read."""
    try:
        yield
    except UploadGone:
        raise _no_such_upload(upload.upload_id) from None
    except PartReplaced as replaced:
        item = next((item for item in listed or [] if item.get("PartNumber") == replaced.number), {})
        raise _invalid_part(upload, item) from None


def _listed_parts(listed: list[Body]) -> list[list[Any]]:
    """A completion's part list as it is compared with a later one's: numbers and ETags."""
    return [[item.get("PartNumber"), str(item.get("ETag", "")).strip('"')] for item in listed]


def _same_completion(completion: Completion, request: Body, listed: list[Body]) -> bool:
    named = (completion.bucket, completion.key) == (request["Bucket"], request["Key"])
    return named and completion.parts == _listed_parts(listed)


def _no_such_upload(upload_id: str) -> ServiceError:
    return ServiceError(
        "NoSuchUpload",
        "The specified upload does not exist. The upload ID may be invalid, or the upload may "
        "have been aborted or completed.", 404, {"UploadId": upload_id},
    )


class _WholeObjectChecksum:
    """A FULL_OBJECT upload's checksum, computed as the parts are joined and checked against the one
    the completion sends (if it sends one)."""

    def __init__(self, upload: Upload, request: Body) -> None:
        self.algorithm = upload.algorithm if upload.checksum_type == FULL_OBJECT else None
        self.hasher = ALGORITHMS[self.algorithm]() if self.algorithm else None
        self.declared = request.get(f"{MEMBER}{self.algorithm}") if self.algorithm else None

    def verified(self) -> Body:
        """Once every byte has been read: the checksum's members, or BadDigest when the one the
        completion sent differs."""
        if self.hasher is None:
            return {}
        checksum = full_object(str(self.algorithm), self.hasher.digest())
        if self.declared is not None and self.declared != checksum[f"{MEMBER}{self.algorithm}"]:
            raise ServiceError(
                "BadDigest", f"The {self.algorithm} you specified did not match the calculated checksum.", 400
            )
        return checksum


def _checksum_of_upload(request: Body) -> tuple[str | None, str | None]:
    """The algorithm and checksum type an upload sums its parts with, as S3 takes them."""
    algorithm = str(request.get(ALGORITHM_MEMBER, "")).upper() or None
    checksum_type = request.get("ChecksumType")
    if algorithm is None:
        if checksum_type is not None:
            raise invalid(
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header."
            )
        return None, None
    if algorithm not in PART_ALGORITHMS:
        raise not_implemented(
            "x-amz-checksum-algorithm",
            f"the local SageMaker's S3 sums the parts of an upload with {', '.join(PART_ALGORITHMS)}, "
            f"not {algorithm}",
        )
    checksum_type = checksum_type or (COMPOSITE if algorithm in COMPOSITE_ALGORITHMS else FULL_OBJECT)
    if checksum_type not in (COMPOSITE, FULL_OBJECT):
        raise invalid("Value for x-amz-checksum-type header is invalid.")
    if (checksum_type == FULL_OBJECT and algorithm not in FULL_OBJECT_ALGORITHMS) or (
        checksum_type == COMPOSITE and algorithm not in COMPOSITE_ALGORITHMS
    ):
        raise invalid(
            f"The {checksum_type} checksum type cannot be used with the {algorithm.lower()} checksum "
            "algorithm."
        )
    return algorithm, checksum_type


def _part_number(value: Any) -> int:
    if isinstance(value, int) and 1 <= value <= MAX_PART_NUMBER:
        return value
    raise ServiceError(
        "InvalidArgument", f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive", 400,
        {"ArgumentName": "partNumber", "ArgumentValue": str(value)},
    )


def _checksum_type_mismatch(expected: str, actual: str | None) -> ServiceError:
    return invalid(
        f"Checksum Type mismatch occurred, expected checksum Type: {expected.lower()}, actual checksum "
        f"Type: {actual.lower() if actual else 'null'}"
    )


def _chosen(upload: Upload, uploaded: Mapping[int, Part], listed: list[Body]) -> list[Part]:
    """The parts a completion lists, checked as S3 checks them, in order: a part without its
    PartNumber or ETag is no part S3's schema allows (versitygw issue 2111 records S3's MalformedXML)."""
    numbers = [number for item in listed if isinstance(number := item.get("PartNumber"), int)]
    if len(numbers) < len(listed) or any("ETag" not in item for item in listed):
        raise _malformed()
    if numbers != sorted(set(numbers)):
        raise _invalid_part_order()
    chosen = []
    for item in listed:
        part = uploaded.get(item["PartNumber"])
        if part is None or part.etag.strip('"') != str(item.get("ETag", "")).strip('"'):
            raise _invalid_part(upload, item)
        if upload.checksum_type == COMPOSITE and upload.algorithm is not None:
            sent = item.get(f"{MEMBER}{upload.algorithm}")
            if sent is None:
                raise invalid(
                    f"The upload was created using a {upload.algorithm.lower()} checksum. The complete "
                    f"request must include the checksum for each part. It was missing for part "
                    f"{part.number} in the request."
                )
            if sent != part.checksum:
                raise _invalid_part(upload, item)
        chosen.append(part)
    for part in chosen[:-1]:
        if part.size < MIN_PART_BYTES:
            raise ServiceError(
                "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed object size.",
                400,
                {"ProposedSize": str(part.size), "MinSizeAllowed": str(MIN_PART_BYTES),
                 "PartNumber": str(part.number), "ETag": part.etag.strip('"')},
            )
    return chosen


def _malformed() -> ServiceError:
    message = "The XML you provided was not well-formed or did not validate against our published schema"
    return ServiceError("MalformedXML", message)


def _invalid_part_order() -> ServiceError:
    return ServiceError(
        "InvalidPartOrder",
        "The list of parts was not in ascending order. Parts must be ordered by part number.", 400,
    )


def _invalid_part(upload: Upload, item: Body) -> ServiceError:
    return ServiceError(
        "InvalidPart",
        "One or more of the specified parts could not be found.  The part may not have been uploaded, or "
        "the specified entity tag may not match the part's entity tag.", 400,
        {"UploadId": upload.upload_id, "PartNumber": str(item.get("PartNumber")),
         "ETag": str(item.get("ETag", ""))},
    )


def _composite(upload: Upload, parts: list[Part]) -> Body:
    """A COMPOSITE upload's checksum: its algorithm over the parts' checksums, with their count."""
    if upload.algorithm is None or upload.checksum_type != COMPOSITE:
        return {}
    hasher = ALGORITHMS[upload.algorithm]()
    for part in parts:
        hasher.update(base64.b64decode(part.checksum or ""))
    value = f"{base64.b64encode(hasher.digest()).decode()}-{len(parts)}"
    return {f"{MEMBER}{upload.algorithm}": value, "ChecksumType": COMPOSITE}


def _marker(value: Any) -> int:
    if isinstance(value, int) and value >= 0:
        return value
    raise ServiceError(
        "InvalidArgument", "Provided part-number-marker not an integer or within integer range", 400,
        {"ArgumentName": "part-number-marker", "ArgumentValue": str(value)},
    )


def _listed_part(upload: Upload, part: Part) -> Body:
    listed: Body = {
        "PartNumber": part.number, "LastModified": part.modified, "ETag": part.etag, "Size": part.size
    }
    if part.checksum and upload.algorithm:
        listed[f"{MEMBER}{upload.algorithm}"] = part.checksum
    return listed


def _listed_upload(upload: Upload, encode: Any) -> Body:
    listed: Body = {
        "UploadId": upload.upload_id, "Key": encode(upload.key), "Initiated": upload.initiated,
        "StorageClass": "STANDARD", "Owner": OWNER, "Initiator": OWNER,
    }
    if upload.algorithm is not None:
        listed.update({ALGORITHM_MEMBER: upload.algorithm, "ChecksumType": upload.checksum_type})
    return listed
