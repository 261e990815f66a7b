"""EventBridge Scheduler's schedule expressions, read as Scheduler reads them: `at()`, `rate()` and
`cron()` in a time zone, between a start and an end date, and the moments a schedule invokes its
target.

- `at(yyyy-mm-ddThh:mm:ss)`: once, at that wall time in the schedule's time zone (Scheduler ignores
  the start and end dates of a one-time schedule).
- `rate(value unit)`: every `value` minutes, hours or days (singular or plural above 1: Scheduler
  takes `rate(2 minute)`, as localstack's answers recorded from it show; singular for 1), of fixed
  length (a day is 24 hours across a daylight saving change), first at the schedule's start: its
  StartDate, else at once when it is created.
- `cron(minutes hours day-of-month month day-of-week year)`: the six fields and wildcards of
  EventBridge's cron, in the schedule's time zone. A wall time that a daylight saving change skips
  has no invocation; one it repeats has one, at its first occurrence (as Scheduler documents both).
  `L`, `W` and `#` are refused by name: the local scheduler does not compute them.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipelines.local.errors import invalid

AT = re.compile(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)")
RATE = re.compile(r"rate\((\d+) (minutes?|hours?|days?)\)")
CRON = re.compile(r"cron\(([^()]*)\)")
UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
MONTHS = {name.upper(): number for number, name in enumerate(calendar.month_abbr) if name}
WEEKDAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
UNSUPPORTED = re.compile(r"[LW#]")
LAST_YEAR = 2199  # the cron year field's range ends here


class Schedule(Protocol):
    """When a schedule invokes its target: `after(moment)` is its first invocation strictly after
    `moment` (a UTC datetime), or None when it invokes no more."""

    def after(self, moment: datetime) -> datetime | None: ...


@dataclass(frozen=True)
class Once:
    moment: datetime

    def after(self, moment: datetime) -> datetime | None:
        return self.moment if self.moment > moment else None


@dataclass(frozen=True)
class Rate:
    start: datetime
    interval: timedelta
    end: datetime | None

    def after(self, moment: datetime) -> datetime | None:
        if moment < self.start:
            found = self.start
        else:
            try:
                found = self.start + ((moment - self.start) // self.interval + 1) * self.interval
            except OverflowError:  # past the calendar's end: no more invocations
                return None
        return found if self.end is None or found < self.end else None


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int] | None  # None: `?`, any day of the month
    months: frozenset[int]
    weekdays: frozenset[int] | None  # 1 (Sunday) to 7; None: `?`
    years: frozenset[int]
    zone: ZoneInfo
    start: datetime | None
    end: datetime | None

    def after(self, moment: datetime) -> datetime | None:
        since = max(moment, self.start - timedelta(microseconds=1)) if self.start else moment
        for found in self._moments_from(since.astimezone(self.zone).replace(second=0, microsecond=0)):
            if found > since:
                return found if self.end is None or found < self.end else None
        return None

    def _moments_from(self, local: datetime) -> Iterator[datetime]:
        """Every matching wall time from the minute of `local` on, as UTC datetimes."""
        start = local.replace(tzinfo=None)
        for day in self._days_from(start.date()):
            for hour in sorted(self.hours):
                for minute in sorted(self.minutes):
                    wall = datetime(day.year, day.month, day.day, hour, minute)
                    if wall >= start and _exists(wall.replace(tzinfo=self.zone)):
                        yield wall.replace(tzinfo=self.zone).astimezone(UTC)

    def _days_from(self, first: date) -> Iterator[date]:
        """The days the day fields match, from `first` on, through the year field's last year."""
        for year in sorted(y for y in self.years if y >= first.year):
            for month in sorted(m for m in self.months if (year, m) >= (first.year, first.month)):
                for day in range(1, calendar.monthrange(year, month)[1] + 1):
                    found = date(year, month, day)
                    if found >= first and self._day(year, month, day):
                        yield found

    def _day(self, year: int, month: int, day: int) -> bool:
        weekday = (calendar.weekday(year, month, day) + 1) % 7 + 1  # Monday 0 -> 2; Sunday 6 -> 1
        return (self.days is None or day in self.days) and (self.weekdays is None or weekday in self.weekdays)


def _exists(wall: datetime) -> bool:
    """Whether a wall time happens in its zone (a daylight saving change skips some)."""
    return wall.astimezone(UTC).astimezone(wall.tzinfo).replace(tzinfo=None) == wall.replace(tzinfo=None)


def zone_of(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise invalid(f"Invalid time zone: {name}") from None


def parse(
    expression: str, zone_name: str | None, start: datetime | None, end: datetime | None, created: datetime
) -> Schedule:
    """The schedule an expression describes, refused with Scheduler's ValidationException when
    malformed. `start` and `end` are the schedule's StartDate and EndDate (UTC), `created` when it
    was created."""
    zone = zone_of(zone_name)
    if found := AT.fullmatch(expression):
        try:
            return Once(datetime.fromisoformat(found.group(1)).replace(tzinfo=zone).astimezone(UTC))
        except (ValueError, OverflowError):
            raise _invalid_expression(expression) from None
    if found := RATE.fullmatch(expression):
        value, unit = int(found.group(1)), found.group(2)
        if value < 1 or (value == 1 and unit.endswith("s")):
            raise _invalid_expression(expression)
        try:
            interval = timedelta(seconds=value * UNIT_SECONDS[unit.rstrip("s")])
        except OverflowError:
            raise _invalid_expression(expression) from None
        return Rate(start or created, interval, end)
    if found := CRON.fullmatch(expression):
        return _cron(expression, found.group(1).split(), zone, start, end)
    raise _invalid_expression(expression)


def _cron(
    expression: str, fields: list[str], zone: ZoneInfo, start: datetime | None, end: datetime | None
) -> Cron:
    if len(fields) != 6:
        raise _invalid_expression(expression)
    if any(UNSUPPORTED.search(field) for field in fields[2:5:2]):
        raise invalid(
            f"Schedule expression {expression} uses L, W or #, which the local scheduler does not "
            "compute; use ranges, lists and steps of days instead."
        )
    minute, hour, day, month, weekday, year = fields
    if (day == "?") == (weekday == "?"):
        raise _invalid_expression(expression)  # exactly one of the two day fields is `?`
    try:
        return Cron(
            minutes=_field(minute, 0, 59),
            hours=_field(hour, 0, 23),
            days=None if day == "?" else _field(day, 1, 31),
            months=_field(month, 1, 12, MONTHS),
            weekdays=None if weekday == "?" else _field(weekday, 1, 7, WEEKDAYS),
            years=_field(year, 1970, LAST_YEAR),
            zone=zone, start=start, end=end,
        )
    except ValueError:
        raise _invalid_expression(expression) from None


def _field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> frozenset[int]:
    """A cron field's values: `*`, or a comma-separated list of values, ranges `a-b` and steps
    `a/n`, `a-b/n` or `*/n`. ValueError when malformed or out of range."""
    values: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            first, last = low, high
        else:
            first_text, dash, last_text = span.partition("-")
            first = _value(first_text, names)
            last = _value(last_text, names) if dash else (high if step_text else first)
        if step < 1 or not low <= first <= last <= high:
            raise ValueError(part)
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _value(text: str, names: dict[str, int] | None) -> int:
    if names and text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise ValueError(text)
    return int(text)


def _invalid_expression(expression: str) -> Exception:
    return invalid(f"Invalid Schedule Expression {expression}.")
