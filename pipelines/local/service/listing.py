"""One paging model for every List* operation: filter, sort, then cut a page after a cursor.

Each operation declares a `Listing` (its result member, what SortBy may name, its filters) and
hands it the records. NextToken is the sort key of the last record returned, so a page starts
strictly after it: records created between two calls never shift a page, and a paginator sees
each record exactly once. A token only continues the listing (and the sort) that issued it.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipelines.local.errors import ServiceError, invalid
from pipelines.local.storage.database import Body

Filter = Callable[[Body, Any], bool]
DEFAULT_PAGE_SIZE = 10  # SageMaker's documented default (ListEndpoints), and what it does elsewhere


def seconds(moment: float | int | str) -> float:
    """A request timestamp (epoch seconds, or ISO 8601 as some SDKs send it) as epoch seconds."""
    if isinstance(moment, str):
        return datetime.fromisoformat(moment).timestamp()
    return float(moment)


def contains(record_field: str) -> Filter:
    """NameContains: a case-insensitive substring of the name."""
    return lambda record, text: str(text).lower() in str(record.get(record_field, "")).lower()


def prefix(record_field: str) -> Filter:
    return lambda record, text: str(record.get(record_field, "")).startswith(text)


def equals(*path: str) -> Filter:
    """The field at `path` (a member, or a member's member: WarmPoolStatus, Status) is the value."""
    return lambda record, value: _field(record, path) == value


def _field(record: Body, path: tuple[str, ...]) -> Any:
    found: Any = record
    for member in path:
        found = found.get(member) if isinstance(found, dict) else None
    return found


def after(record_field: str) -> Filter:
    return lambda record, moment: float(record[record_field]) > seconds(moment)


def before(record_field: str) -> Filter:
    return lambda record, moment: float(record[record_field]) < seconds(moment)


def between(after_member: str, before_member: str, record_field: str = "CreationTime") -> dict[str, Filter]:
    """A pair of time filters, e.g. between("CreatedAfter", "CreatedBefore")."""
    return {after_member: after(record_field), before_member: before(record_field)}


def only(value: str) -> Filter:
    """A filter every local record passes for `value` and none for another: e.g. ManagedBy, where
    every local pipeline is the customer's."""
    return lambda record, wanted: wanted == value


@dataclass(frozen=True)
class Listing:
    operation: str  # e.g. "ListPipelines"
    result_key: str  # e.g. "PipelineSummaries"
    sort_fields: Mapping[str, str]  # what SortBy may name -> the record field it sorts on
    identity: str  # a field unique per record: breaks ties, so the cursor is exact
    default_sort: str = "CreationTime"
    default_order: str = "Descending"  # newest first, unless the operation says otherwise
    filters: Mapping[str, Filter] = field(default_factory=dict)  # request member -> test
    scope: tuple[str, ...] = ()  # request members the operation applies itself (whose records)
    limit_member: str = "MaxResults"
    default_limit: int = DEFAULT_PAGE_SIZE
    most: int | None = None  # the largest page, whatever a request asks for (ListFunctions' 50)
    # Filters that test the page once it is cut, when the request names its size: ListTrainingJobs'
    # StatusEquals, as its API reference documents (a page may then hold fewer records, or none).
    page_filters: frozenset[str] = frozenset()
    # The token's request and answer members, and the refusal of one this listing did not give:
    # SageMaker's NextToken and ValidationException unless the API has its own (Lambda's Marker).
    token_member: str = "NextToken"
    next_member: str = "NextToken"
    refuse: Callable[[str], ServiceError] = invalid

    @classmethod
    def as_recorded(cls, operation: str, result_key: str, identity: str, **more: Any) -> Listing:
        """A listing in the order the records were given (see `numbered`), e.g. parameters."""
        return cls(operation, result_key, {"Position": "_Position"}, identity,
                   default_sort="Position", default_order="Ascending", **more)

    def page(
        self, records: Iterable[Body], request: Body, summary: Callable[[Body], Body] = dict
    ) -> Body:
        """The page the request asks for: `{result_key: [...], next_member: token}`."""
        given = {member: test for member, test in self.filters.items() if request.get(member) is not None}
        later = {member: given.pop(member) for member in self.page_filters & set(given)
                 if request.get(self.limit_member) is not None}
        chosen = [record for record in records if _passes(record, request, given)]
        sort = request.get("SortBy", self.default_sort)
        order = request.get("SortOrder", self.default_order)
        sort_field = self.sort_fields[sort]

        def key(record: Body) -> list[Any]:
            return [record[sort_field], record[self.identity]]

        chosen.sort(key=key, reverse=order == "Descending")
        if request.get(self.token_member):
            cursor = self._cursor(request[self.token_member], sort, order)
            try:
                if order == "Descending":
                    chosen = [record for record in chosen if key(record) < cursor]
                else:
                    chosen = [record for record in chosen if key(record) > cursor]
            except TypeError:  # a token whose cursor is not of this listing's kind
                raise self.refuse(f"The {self.token_member} is not valid.") from None
        limit = min(int(request.get(self.limit_member) or self.default_limit), self.most or sys.maxsize)
        page = [record for record in chosen[:limit] if _passes(record, request, later)]
        body: Body = {self.result_key: [summary(record) for record in page]}
        if len(chosen) > limit:
            body[self.next_member] = _token({"by": sort, "order": order, "after": key(chosen[limit - 1])})
        return body

    def _cursor(self, token: str, sort: str, order: str) -> list[Any]:
        try:
            state = json.loads(base64.urlsafe_b64decode(token.encode()))
            cursor = state["after"]
            issued_for = (state["by"], state["order"])
        except (ValueError, TypeError, KeyError, binascii.Error):
            raise self.refuse(f"The {self.token_member} is not valid.") from None
        if issued_for != (sort, order) or not isinstance(cursor, list) or len(cursor) != 2:
            raise self.refuse(f"The {self.token_member} was issued for a different listing.")
        return cursor


def _passes(record: Body, request: Body, tests: Mapping[str, Filter]) -> bool:
    return all(test(record, request[member]) for member, test in tests.items())


def numbered(records: Iterable[Body]) -> list[Body]:
    """Records with their position, for an `as_recorded` listing (a summary drops it: `public`)."""
    return [{**record, "_Position": position} for position, record in enumerate(records)]


def _token(state: Body) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
