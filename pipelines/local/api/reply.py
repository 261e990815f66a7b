"""An answer, as every wire protocol here hands it to the HTTP front."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    length: int | None = None  # a HEAD answer's Content-Length: that of the body it leaves out
