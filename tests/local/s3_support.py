"""What the S3 tests read S3's answers with."""

from __future__ import annotations

import base64
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError


def error_of(call: Any) -> tuple[int, dict[str, str]]:
    """The status and `<Error>` members of the ClientError `call` raises."""
    status, error, _headers = refusal_of(call)
    return status, error


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def refusal_of(call: Any) -> tuple[int, dict[str, str], dict[str, str]]:
    """The status, `<Error>` members and response headers of the ClientError `call` raises."""
    with pytest.raises(ClientError) as raised:
        call()
    response = raised.value.response
    metadata = response["ResponseMetadata"]
    return metadata["HTTPStatusCode"], response["Error"], metadata["HTTPHeaders"]


class HeldBody:
    """A request body whose bytes come only once `release` is set: an upload still arriving, so a
    test can act while it is under way."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.reading = threading.Event()
        self.release = threading.Event()

    def read(self, size: int = -1) -> bytes:
        self.reading.set()
        assert self.release.wait(10), "the held body was never released"
        chunk, self.data = self.data, b""
        return chunk
