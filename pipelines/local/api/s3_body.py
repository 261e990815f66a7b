"""The body of an S3 PUT, read as it arrives rather than whole: an object may be up to S3's 5 GB.

The door checks the signature on the headers alone (S3 signs the payload hash the client declares in
`x-amz-content-sha256`, not the body); this stream checks the body against that hash when its last
byte is read, before the operation can store it. A client that sent `Expect: 100-continue` is told
to go on only when the operation starts reading, so a PUT refused for its headers costs it no upload.
Framing S3 has and this server does not (aws-chunked, chunked transfer) is refused by name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from botocore.auth import UNSIGNED_PAYLOAD

from pipelines.local.api.auth import CONTENT_SHA256, CONTENT_SHA256_MISMATCH
from pipelines.local.api.rest import Headers
from pipelines.local.errors import ServiceError, not_implemented
from pipelines.local.storage.object_records import Readable

MAX_PUT_BYTES = 5 * 1024**3  # S3's largest object in a single PUT


class RequestBody:
    """Exactly Content-Length bytes of the request stream, hashed as they pass."""

    def __init__(self, source: Readable, length: int, sha256: str | None, go_on: Callable[[], None]) -> None:
        self.source = source
        self.remaining = length
        self.declared = sha256  # None: UNSIGNED-PAYLOAD, or a presigned URL's
        self.digest = hashlib.sha256()
        self.go_on = go_on
        self.started = False
        self.broken = False

    @classmethod
    def of(cls, headers: Headers, source: Readable, go_on: Callable[[], None]) -> RequestBody:
        """The body a PUT's headers announce, or S3's refusal of framing it does not take."""
        if headers.get("Transfer-Encoding") is not None:
            raise not_implemented("Transfer-Encoding", "a body without Content-Length")
        declared = headers.get(CONTENT_SHA256, "")
        if "aws-chunked" in headers.get("Content-Encoding", "") or declared.startswith("STREAMING-"):
            raise not_implemented(
                "Content-Encoding", "aws-chunked uploads are not taken by the local SageMaker's S3; sign "
                "the whole payload or send UNSIGNED-PAYLOAD (boto3 does over http)",
            )
        length = headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            message = "You must provide the Content-Length HTTP header."
            raise ServiceError("MissingContentLength", message, 411)
        if int(length) > MAX_PUT_BYTES:
            raise ServiceError(
                "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", 400,
                {"ProposedSize": length.strip(), "MaxSizeAllowed": str(MAX_PUT_BYTES)},
            )
        # No declared hash: a presigned URL's PUT, which signs no payload (the door requires the
        # header of every other S3 request).
        return cls(source, int(length), None if declared in ("", UNSIGNED_PAYLOAD) else declared, go_on)

    @property
    def complete(self) -> bool:
        """Whether the whole body has been read: only then may the connection serve another request."""
        return self.remaining == 0 and not self.broken

    def read(self, size: int, /) -> bytes:
        if not self.started:
            self.started = True
            self.go_on()
        wanted = min(size, self.remaining)
        try:
            chunk = self.source.read(wanted) if wanted else b""
        except TimeoutError:
            self.broken = True
            raise ServiceError(
                "RequestTimeout", "Your socket connection to the server was not read from or written to "
                "within the timeout period. Idle connections will be closed.", 400,
            ) from None
        except OSError:
            chunk = b""
        if len(chunk) < wanted:
            self.broken = True
            raise ServiceError(
                "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length "
                "HTTP header.", 400,
            )
        self.remaining -= len(chunk)
        self.digest.update(chunk)
        if self.remaining == 0:
            self._check()
        return chunk

    def _check(self) -> None:
        computed = self.digest.hexdigest()
        if self.declared is not None and self.declared != computed:
            raise ServiceError(
                "XAmzContentSHA256Mismatch", CONTENT_SHA256_MISMATCH, 400,
                {"ClientComputedContentSHA256": self.declared, "S3ComputedContentSHA256": computed},
            )
