"""An answer, as every wire protocol here hands it to the HTTP front."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Reply:
    status: int
    body: bytes | Iterable[bytes]  # chunks: sent as they are read (S3's GetObject)
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    # The Content-Length of a body not given as bytes: the chunks', or the one a HEAD answer leaves out.
    length: int | None = None
