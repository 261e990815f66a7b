"""EventBridge Scheduler's schedule expressions: when at(), rate() and cron() invoke, in a time
zone, between a start and an end date; and what Scheduler refuses (or the local scheduler cannot
compute) refused by name."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from pipelines.local.errors import ServiceError
from pipelines.local.service.schedule_expressions import Schedule, parse

CREATED = datetime(2026, 12, 6, 17, 40, 12, tzinfo=UTC)


def moments(
    schedule: Schedule, count: int, since: datetime = CREATED - timedelta(microseconds=1)
) -> list[str]:
    """The schedule's first `count` invocations after `since` (fewer if it ends)."""
    found: list[str] = []
    while len(found) < count:
        nxt = schedule.after(since)
        if nxt is None:
            break
        found.append(nxt.strftime("%Y-%m-%d %H:%M:%S"))
        since = nxt
    return found


def test_a_rate_invokes_at_its_start_then_every_interval() -> None:
    schedule = parse("rate(5 minutes)", None, None, None, CREATED)
    assert moments(schedule, 3) == ["2026-12-06 17:40:12", "2026-12-06 17:45:12", "2026-12-06 17:50:12"]
    start = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    daily = parse("rate(1 day)", None, start, None, CREATED)
    assert moments(daily, 2) == ["2026-12-07 00:00:00", "2026-12-08 00:00:00"], "aligned to its StartDate"
    # Scheduler takes a singular unit above 1 too (localstack's answers recorded from it)
    singular = parse("rate(2 minute)", None, None, None, CREATED)
    assert moments(singular, 2) == ["2026-12-06 17:40:12", "2026-12-06 17:42:12"]


def test_an_end_date_stops_a_recurring_schedule_before_it() -> None:
    end = datetime(2026, 12, 6, 19, 40, 12, tzinfo=UTC)
    schedule = parse("rate(1 hour)", None, None, end, CREATED)
    assert moments(schedule, 5) == ["2026-12-06 17:40:12", "2026-12-06 18:40:12"]


def test_cron_fields_lists_ranges_steps_and_names() -> None:
    weekdays = parse("cron(15 12 ? * MON-FRI *)", None, None, None, CREATED)  # CREATED is a Sunday
    assert moments(weekdays, 2) == ["2026-12-07 12:15:00", "2026-12-08 12:15:00"]
    quarter_hours = parse("cron(0/15 * * * ? *)", None, None, None, CREATED)
    assert moments(quarter_hours, 3) == ["2026-12-06 17:45:00", "2026-12-06 18:00:00", "2026-12-06 18:15:00"]
    leap_days = parse("cron(0 2 29 FEB ? 2027-2032)", None, None, None, CREATED)
    assert moments(leap_days, 3) == ["2028-02-29 02:00:00", "2032-02-29 02:00:00"]
    listed = parse("cron(5,10 8 1 JAN,JUL ? *)", None, None, None, CREATED)
    assert moments(listed, 3) == ["2027-01-01 08:05:00", "2027-01-01 08:10:00", "2027-07-01 08:05:00"]


def test_cron_and_at_read_wall_times_in_the_schedules_time_zone() -> None:
    berlin = parse("cron(0 9 * * ? *)", "Europe/Berlin", None, None, CREATED)
    assert moments(berlin, 1) == ["2026-12-07 08:00:00"]  # CET is UTC+1
    new_york = parse("at(2026-12-06T18:00:00)", "America/New_York", None, None, CREATED)
    assert moments(new_york, 3) == ["2026-12-06 23:00:00"], "once, at that wall time"


def test_a_wall_time_daylight_saving_skips_has_no_invocation_and_one_it_repeats_has_one() -> None:
    spring = parse("cron(30 2 * * ? *)", "Europe/Berlin", None, None, CREATED)
    since = datetime(2027, 3, 27, 12, 0, tzinfo=UTC)
    assert moments(spring, 2, since) == ["2027-03-29 00:30:00", "2027-03-30 00:30:00"]  # none on the 28th
    autumn = parse("cron(30 2 * * ? *)", "Europe/Berlin", None, None, CREATED)
    since = datetime(2027, 10, 30, 12, 0, tzinfo=UTC)
    assert moments(autumn, 2, since) == ["2027-10-31 00:30:00", "2027-11-01 01:30:00"]  # first 02:30 only


def test_a_start_date_delays_a_cron_schedule() -> None:
    start = datetime(2027, 1, 1, tzinfo=UTC)
    schedule = parse("cron(0 0 * * ? *)", None, start, None, CREATED)
    assert moments(schedule, 2) == ["2027-01-01 00:00:00", "2027-01-02 00:00:00"]


@pytest.mark.parametrize("expression", [
    "rate(1 hours)", "rate(0 minutes)", "rate(5 seconds)", "rate(5minutes)",
    "cron(0 10 * * * *)", "cron(0 10 ? * ? *)", "cron(0 24 * * ? *)", "cron(60 1 * * ? *)",
    "cron(0 1 * 13 ? *)", "cron(0 1 * * ? 2200)", "cron(0 1 * *)", "cron(0 1 */0 * ? *)",
    "at(2026-13-01T00:00:00)", "at(2026-12-01 10:00:00)", "at(2026-12-01T10:00)", "every hour", "",
])
def test_malformed_expressions_are_refused_as_scheduler_refuses_them(expression: str) -> None:
    with pytest.raises(ServiceError) as refused:
        parse(expression, None, None, None, CREATED)
    assert (refused.value.code, refused.value.message) == (
        "ValidationException", f"Invalid Schedule Expression {expression}.")


@pytest.mark.parametrize("expression", ["cron(0 10 L * ? *)", "cron(0 10 15W * ? *)", "cron(0 10 ? * 3#2 *)",
                                        "cron(0 10 ? * 6L *)"])
def test_wildcards_the_local_scheduler_does_not_compute_are_refused_by_name(expression: str) -> None:
    with pytest.raises(ServiceError) as refused:
        parse(expression, None, None, None, CREATED)
    assert "uses L, W or #, which the local scheduler does not compute" in refused.value.message


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ServiceError, match="Invalid time zone: Mars/Olympus"):
        parse("rate(1 hour)", "Mars/Olympus", None, None, CREATED)


@dataclass(frozen=True)
class CronFields:
    """What each field of a cron expression stands for; None: `?`."""

    minutes: set[int]
    hours: set[int]
    days: set[int] | None
    months: set[int]
    weekdays: set[int] | None
    years: set[int]

    def first_after(self, since: datetime, days: int = 800) -> str | None:
        """The first matching minute after `since` (UTC), found day by day, then minute by minute."""
        day = since.replace(hour=0, minute=0, second=0, microsecond=0)
        for _ in range(days):
            weekday = day.isoweekday() % 7 + 1  # Sunday 1 .. Saturday 7, as cron counts
            if (day.year in self.years and day.month in self.months
                    and (self.days is None or day.day in self.days)
                    and (self.weekdays is None or weekday in self.weekdays)):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        moment = day.replace(hour=hour, minute=minute)
                        if moment > since:
                            return moment.strftime("%Y-%m-%d %H:%M:%S")
            day += timedelta(days=1)
        return None


def _random_field(rng: random.Random, low: int, high: int) -> tuple[str, set[int]]:
    """A cron field as text, and the values it stands for (computed without the parser)."""
    kind = rng.choice(["*", "value", "range", "step", "list"])
    if kind == "*":
        return "*", set(range(low, high + 1))
    first = rng.randint(low, high)
    if kind == "value":
        return str(first), {first}
    last = rng.randint(first, high)
    if kind == "range":
        return f"{first}-{last}", set(range(first, last + 1))
    if kind == "step":
        step = rng.randint(1, max(1, high - low))
        return f"{first}/{step}", set(range(first, high + 1, step))
    values = sorted(rng.sample(range(low, high + 1), rng.randint(2, min(4, high - low + 1))))
    return ",".join(map(str, values)), set(values)


def test_random_cron_expressions_invoke_when_a_plain_search_finds_their_next_minute() -> None:
    """150 expressions drawn with a fixed seed, each field in one of its forms: after a random
    moment, the next invocation is the first minute a day-by-day search finds (one more than 800
    days away need only be that far away)."""
    rng = random.Random(49)
    for _ in range(150):
        minute, minutes = _random_field(rng, 0, 59)
        hour, hours = _random_field(rng, 0, 23)
        month, months = _random_field(rng, 1, 12)
        year, years = ("*", set(range(1970, 2200))) if rng.random() < 0.8 else ("2027-2028", {2027, 2028})
        day_text, day_values = _random_field(rng, 1, 31)
        weekday_text, weekday_values = _random_field(rng, 1, 7)
        by_day = rng.random() < 0.5
        expression = (f"cron({minute} {hour} {day_text if by_day else '?'} {month} "
                      f"{'?' if by_day else weekday_text} {year})")
        fields = CronFields(minutes, hours, day_values if by_day else None, months,
                            None if by_day else weekday_values, years)
        since = CREATED + timedelta(minutes=rng.randint(0, 600_000))
        found = parse(expression, None, None, None, CREATED).after(since)
        shown = None if found is None else found.strftime("%Y-%m-%d %H:%M:%S")
        expected = fields.first_after(since)
        if expected is not None or found is None or found - since < timedelta(days=800):
            assert shown == expected, (expression, since)
