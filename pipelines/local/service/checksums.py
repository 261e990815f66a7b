"""The digests a PutObject may carry, read and checked as S3 checks them.

`Content-MD5` and at most one `x-amz-checksum-<algorithm>` header, each the base64 of a digest of the
body. Both are computed while the body streams to disk, and a mismatch refuses the object before it
is stored: `BadDigest`, in S3's words. botocore sends CRC32 by default (and any algorithm it has
without the CRT: SHA1, SHA256, SHA512); the AWS CLI v2 and SDKs with the CRT send CRC64NVME, and
may send CRC32C. The CRCs are computed with anycrc (C, about 8 GB/s here), the rest with the standard
library. The XXHASHes, which S3 has taken since 2025 and no SDK computes without the
CRT, are refused by name, never taken unchecked. A PutObject or CopyObject that declares no
checksum is summed with CRC64NVME (DEFAULT_ALGORITHM), as S3 sums every new object since 2025.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import anycrc

from pipelines.local.errors import ServiceError, not_implemented
from pipelines.local.storage.database import Body
from pipelines.local.storage.object_records import Readable

MEMBER = "Checksum"  # ChecksumCRC32, ChecksumSHA256...: one member per algorithm, in and out
ALGORITHM_MEMBER = "ChecksumAlgorithm"  # x-amz-sdk-checksum-algorithm
FULL_OBJECT = "FULL_OBJECT"  # the checksum type of an object stored in one part
# What S3 sums a new object (PutObject, CopyObject) with when the writer declares no checksum: its
# HeadObject and GetObject then answer it under ChecksumMode ENABLED.
DEFAULT_ALGORITHM = "CRC64NVME"


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


class Crc:
    """A CRC of anycrc's catalogue (CRC32, CRC32C, CRC-64/NVME), big-endian, as S3 and botocore
    encode them."""

    def __init__(self, model: str, size: int) -> None:
        self.model = anycrc.Model(model)
        self.size = size
        self.value = self.model.calc(b"")

    def update(self, data: bytes, /) -> None:
        self.value = self.model.calc(data, init=self.value)

    def digest(self) -> bytes:
        return int(self.value).to_bytes(self.size, "big")


ALGORITHMS: dict[str, Callable[[], Hasher]] = {
    "CRC32": lambda: Crc("CRC32", 4),
    "CRC32C": lambda: Crc("CRC32C", 4),
    "CRC64NVME": lambda: Crc("CRC64-NVME", 8),
    "SHA1": hashlib.sha1,
    "SHA256": hashlib.sha256,
    "SHA512": hashlib.sha512,
    "MD5": lambda: hashlib.md5(usedforsecurity=False),
}
SIZES = {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8, "SHA1": 20, "SHA256": 32, "SHA512": 64, "MD5": 16}


def invalid(message: str) -> ServiceError:
    return ServiceError("InvalidRequest", message, 400)


def _decoded(value: str, size: int) -> bytes | None:
    """The digest a base64 header value holds, or None if it holds no digest of `size` bytes."""
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return digest if len(digest) == size else None


@dataclass
class Expected:
    """The digests the client declared, and the same digests of what has been read so far."""

    content_md5: bytes | None
    algorithm: str | None
    checksum: bytes | None
    md5: Hasher = field(default_factory=ALGORITHMS["MD5"])
    computed: Hasher | None = None

    @classmethod
    def of(cls, request: Body, default: str | None = None) -> Expected:
        """What the request declares, or S3's refusal of a digest it cannot be (InvalidDigest,
        InvalidRequest) or of an algorithm this server cannot compute (NotImplemented); a request
        declaring no checksum is summed with `default`, when given (S3's DEFAULT_ALGORITHM for a
        new object)."""
        content_md5 = None
        if "ContentMD5" in request:
            content_md5 = _decoded(request["ContentMD5"], SIZES["MD5"])
            if content_md5 is None:  # S3 names it (versitygw issue 1526 records S3's answer)
                raise ServiceError("InvalidDigest", "The Content-MD5 you specified was invalid.", 400,
                                   {"Content-MD5": str(request["ContentMD5"])})
        sent = [name for name in request if name.startswith(MEMBER) and name != ALGORITHM_MEMBER]
        if len(sent) > 1:
            raise invalid(
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
            )
        named = str(request.get(ALGORITHM_MEMBER, "")).upper()
        if not sent:
            if named:
                raise invalid(
                    "x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or "
                    "x-amz-trailer headers were found."
                )
            return cls(content_md5, default, None, computed=ALGORITHMS[default]() if default else None)
        algorithm = sent[0][len(MEMBER):]
        header = f"x-amz-checksum-{algorithm.lower()}"
        if named and named != algorithm:
            raise invalid(f"Value for x-amz-sdk-checksum-algorithm header is invalid: {named} but {header}.")
        if algorithm not in ALGORITHMS:
            raise cannot_compute(algorithm, header, f"to verify {header}")
        checksum = _decoded(request[sent[0]], SIZES[algorithm])
        if checksum is None:
            raise invalid(f"Value for {header} header is invalid.")
        return cls(content_md5, algorithm, checksum, computed=ALGORITHMS[algorithm]())

    def reading(self, source: Readable) -> Readable:
        """`source`, digested as it is read."""
        md5 = [self.md5] if self.content_md5 is not None else []  # the store takes the ETag itself
        return Digesting(source, [*md5, *([self.computed] if self.computed else [])])

    def check(self, data: bytes) -> None:
        """A body that was read whole, verified as `verify` verifies a streamed one."""
        for hasher in (self.md5, *([self.computed] if self.computed else [])):
            hasher.update(data)
        self.verify()

    def declares_none(self) -> bool:
        return self.content_md5 is None and self.checksum is None

    def verify(self) -> None:
        """Once the whole body has been read: S3's BadDigest for a digest that does not match."""
        if self.content_md5 is not None and self.content_md5 != self.md5.digest():
            message = "The Content-MD5 you specified did not match what we received."
            digests = {"CalculatedDigest": base64.b64encode(self.md5.digest()).decode(),  # as S3 names them
                       "ExpectedDigest": base64.b64encode(self.content_md5).decode()}
            raise ServiceError("BadDigest", message, 400, digests)
        if self.computed is not None and self.checksum not in (None, self.computed.digest()):
            raise ServiceError(
                "BadDigest", f"The {self.algorithm} you specified did not match the calculated checksum.", 400
            )

    def members(self) -> Body:
        """The checksum as PutObject answers it, once the body is verified: the value sent (or
        summed, for one declaring none), and the checksum type."""
        if self.algorithm is None or self.computed is None:
            return {}
        return full_object(self.algorithm, self.checksum or self.computed.digest())


def full_object(algorithm: str, digest: bytes) -> Body:
    """The members an object's whole-object checksum is kept and answered as."""
    return {f"{MEMBER}{algorithm}": base64.b64encode(digest).decode(), "ChecksumType": FULL_OBJECT}


def cannot_compute(algorithm: str, header: str, purpose: str) -> ServiceError:
    """S3's NotImplemented for an algorithm this server has no code for (the CRT's)."""
    return not_implemented(
        header,
        f"the local SageMaker's S3 cannot compute {algorithm} {purpose}; send {', '.join(ALGORITHMS)} "
        "(boto3's default is CRC32)",
    )


class Digesting:
    """A body that feeds each chunk read to the hashers."""

    def __init__(self, source: Readable, hashers: list[Hasher]) -> None:
        self.source = source
        self.hashers = hashers

    def read(self, size: int, /) -> bytes:
        chunk = self.source.read(size)
        for hasher in self.hashers:
            hasher.update(chunk)
        return chunk
