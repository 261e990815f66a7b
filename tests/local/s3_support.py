"""What the S3 tests read S3's answers with."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from botocore.exceptions import ClientError


def error_of(call: Any) -> tuple[int, dict[str, str]]:
    """The status and `<Error>` members of the ClientError `call` raises."""
    with pytest.raises(ClientError) as raised:
        call()
    response = raised.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()
