"""EventBridge Scheduler's schedule expressions: when at(), rate() and cron() invoke, in a time
zone, between a start and an end date; and what Scheduler refuses (or the local scheduler cannot
compute) refused by name."""

from __future__ import annotations

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
    "rate(1 hours)", "rate(2 hour)", "rate(0 minutes)", "rate(5 seconds)", "rate(5minutes)",
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
