"""One page of ListObjectsV2, as S3 makes it: keys in order, rolled up at the delimiter; and the
entries of S3's listings of several items per key (versions, multipart uploads) past their markers.

Keys after `StartAfter` whose remainder past the prefix holds the delimiter count once, as the
common prefix up to and including it; keys and common prefixes together fill at most `MaxKeys`
entries. The continuation token is the last entry returned, opaque to the client (base64), so the
next page starts after it, whatever was written in between.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass, field
from typing import TypeVar

from pipelines.local.errors import ServiceError
from pipelines.local.storage.database import Body


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


Item = TypeVar("Item")


def past_markers(
    items: list[Item], key: Callable[[Item], str], item_id: Callable[[Item], str], prefix: str,
    delimiter: str, key_marker: str, id_marker: str,
) -> list[tuple[str, Item | None]]:
    """The entries of a listing of several items per key (ListObjectVersions' versions,
    ListMultipartUploads' uploads), sorted by key, past (KeyMarker, its id marker): each item under
    the prefix, or the common prefix its key rolls up into (None for the item), once. With an id
    marker, the marker key's items after that one come first; without, the marker key is past."""
    ids = [(key(item), item_id(item)) for item in items]
    marker_at = ids.index((key_marker, id_marker)) if (key_marker, id_marker) in ids else len(ids)
    listed: list[tuple[str, Item | None]] = []
    for index, item in enumerate(items):
        if not key(item).startswith(prefix):
            continue
        name, rolled_up = entry(key(item), prefix, delimiter)
        if rolled_up:
            if name > key_marker and (not listed or listed[-1][0] != name):
                listed.append((name, None))
        elif name > key_marker or (name == key_marker and id_marker and index > marker_at):
            listed.append((name, item))
    return listed


def truncated(shown: Sized, entries: Sized) -> bool:
    """Whether a page leaves entries out; one that shows none (a limit of 0) never is, as S3
    answers MaxKeys=0."""
    return len(shown) > 0 and len(entries) > len(shown)


def completed(
    answer: Body, shown: list[tuple[str, Item | None]], request: Body,
    encode: Callable[[str], str], next_id_member: str, item_id: Callable[[Item], str],
) -> Body:
    """A marked listing's answer, completed: the Delimiter and EncodingType asked for, the markers
    of the next page when it is truncated (`next_id_member` names the id's), no empty lists."""
    optional = asked_for(request, encode)
    if answer["IsTruncated"]:
        name, last = shown[-1]
        optional.update({"NextKeyMarker": encode(name), next_id_member: item_id(last) if last else ""})
    return with_present(answer, optional)


def with_present(answer: Body, optional: Body) -> Body:
    """A listing's answer with the optional members that have a value, and no empty lists: S3 leaves
    out what a page does not have."""
    present = {name: value for name, value in optional.items() if value}
    return {name: value for name, value in {**answer, **present}.items() if value != []}


def asked_for(request: Body, encode: Callable[[str], str]) -> Body:
    """The Delimiter and EncodingType a listing answers when they were asked for."""
    delimiter, encoding = request.get("Delimiter", ""), request.get("EncodingType", "")
    return {"Delimiter": encode(delimiter), "EncodingType": encoding}


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
