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


# The CRCs S3 takes that the standard library lacks, by their catalogue parameters (reflected
# polynomial, width): computed here a byte at a time from a table, not by the library the server
# uses, and pinned to their published check values (test_s3.py).
CRC_MODELS = {"CRC32C": (0x82F63B78, 32), "CRC64NVME": (0x9A6C9329AC4BC9B5, 64)}


def _crc_table(polynomial: int) -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ polynomial if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLES = {name: _crc_table(polynomial) for name, (polynomial, _width) in CRC_MODELS.items()}


def crc(algorithm: str, data: bytes) -> bytes:
    """CRC32C or CRC-64/NVME of `data` (all-ones start and final xor), big-endian as S3 sends it."""
    width = CRC_MODELS[algorithm][1]
    table, mask = _TABLES[algorithm], (1 << width) - 1
    value = mask
    for byte in data:
        value = table[(value ^ byte) & 0xFF] ^ (value >> 8)
    return (value ^ mask).to_bytes(width // 8, "big")


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
