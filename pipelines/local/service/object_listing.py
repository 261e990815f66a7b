"""One page of ListObjectsV2, as S3 makes it: keys in order, rolled up at the delimiter.

Keys after `StartAfter` whose remainder past the prefix holds the delimiter count once, as the
common prefix up to and including it; keys and common prefixes together fill at most `MaxKeys`
entries. The continuation token is the last entry returned, opaque to the client (base64), so the
next page starts after it, whatever was written in between.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field

from pipelines.local.errors import ServiceError


@dataclass
class Page:
    keys: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    last: str = ""  # the last key or common prefix on the page: where the next one starts

    @property
    def count(self) -> int:
        return len(self.keys) + len(self.prefixes)


def entry(key: str, prefix: str, delimiter: str) -> tuple[str, bool]:
    """(what the key lists as, whether that is a common prefix)."""
    at = key.find(delimiter, len(prefix)) if delimiter else -1
    return (key, False) if at < 0 else (key[: at + len(delimiter)], True)


def page(
    keys: Iterable[str], prefix: str, delimiter: str, start_after: str, after: str, limit: int
) -> Page:
    """The entries of sorted `keys` (all starting with `prefix`) past `start_after` (a key) and
    `after` (the last entry of the previous page), `limit` of them at most."""
    found = Page()
    if limit == 0:  # S3 answers MaxKeys=0 with an empty page that is not truncated
        return found
    for key in keys:
        name, rolled_up = entry(key, prefix, delimiter)
        if key <= start_after or name <= after or name == found.last:
            continue
        if found.count == limit:
            found.truncated = True
            break
        (found.prefixes if rolled_up else found.keys).append(name)
        found.last = name
    return found


def token(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode()).decode()


def position(continuation: str) -> str:
    """The entry a continuation token continues after; S3's refusal for one it did not issue."""
    try:
        return base64.b64decode(continuation.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise ServiceError(
            "InvalidArgument", "The continuation token provided is incorrect", 400,
            {"ArgumentName": "continuation-token"},
        ) from None
