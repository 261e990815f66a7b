"""The digest S3 asks of a request whose XML document it must act on unaltered.

An operation the model marks `requestChecksumRequired` (DeleteObjects, PutBucketVersioning) carries
`Content-MD5` or an `x-amz-checksum-<algorithm>` header of its body. S3 refuses one with neither
before it deletes or changes anything (InvalidRequest, "Missing required header for this request:
Content-MD5"), and one whose digest does not match the body it received (BadDigest). Neither
DeleteObjects' input shape nor PutBucketVersioning's names every such header as a member, so they
are read off the request's headers here, where the document's bytes are still whole.
"""

from __future__ import annotations

from botocore.model import OperationModel

from pipelines.local.api.rest import Headers
from pipelines.local.service.checksums import ALGORITHM_MEMBER, MEMBER, Expected, invalid
from pipelines.local.storage.database import Body


def check_document_digest(model: OperationModel, headers: Headers, document: bytes) -> None:
    """Refuse `document` as S3 does when its operation requires a digest it lacks or it does not
    match; nothing for an operation that asks none."""
    checksum = model.http_checksum
    if not checksum.get("requestChecksumRequired"):
        return
    expected = Expected.of(_declared(model, headers, checksum.get("requestAlgorithmMember")))
    if expected.declares_none():
        raise invalid("Missing required header for this request: Content-MD5")
    expected.check(document)


def _declared(model: OperationModel, headers: Headers, algorithm_member: str | None) -> Body:
    """The digest headers, as the members Expected reads (ContentMD5, ChecksumCRC32...): one
    `x-amz-checksum-` header for each algorithm the model lets the request name."""
    members = model.input_shape.members
    algorithms = members[algorithm_member].enum if algorithm_member in members else []
    declared: Body = {
        f"{MEMBER}{algorithm}": value
        for algorithm in algorithms
        if (value := headers.get(f"x-amz-checksum-{algorithm.lower()}")) is not None
    }
    if (md5 := headers.get("Content-MD5")) is not None:
        declared["ContentMD5"] = md5
    if (named := headers.get("x-amz-sdk-checksum-algorithm")) is not None:
        declared[ALGORITHM_MEMBER] = named
    return declared
