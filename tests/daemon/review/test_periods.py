"""Periods in the user's days: dates as people write them, zones, and local clock hours (DST days of
23 and 25 hours, half- and quarter-hour zones)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zctest.journals import BERLIN, NOW, ZONES, t

from zerocontact.daemon.review import periods


# -- parsing dates ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "end", "expected"),
    [
        ("2026-11-01", False, "2026-10-31T23:00:00Z"),  # local midnight
        ("2026-11-01", True, "2026-11-01T23:00:00Z"),  # an --until date includes its day
        ("2026-03-29", True, "2026-03-29T22:00:00Z"),  # the 23-hour day ends at CEST midnight
        ("2026-11-01T22:30", False, "2026-11-01T21:30:00Z"),
        ("2026-11-01 22:30", False, "2026-11-01T21:30:00Z"),
        ("2026-11-01T22:30:00Z", False, "2026-11-01T22:30:00Z"),
        ("2026-11-01T22:30+05:30", False, "2026-11-01T17:00:00Z"),
        ("today", False, "2026-11-09T23:00:00Z"),
        ("today", True, "2026-11-10T23:00:00Z"),
        ("yesterday", False, "2026-11-08T23:00:00Z"),
        ("1d", False, "2026-11-09T23:00:00Z"),  # today
        ("7d", False, "2026-11-03T23:00:00Z"),  # the last 7 days, today included
        ("2w", False, "2026-10-27T23:00:00Z"),
        ("12h", False, "2026-11-10T03:20:00Z"),  # exact
        ("1d12h", False, "2026-11-09T03:20:00Z"),
        ("90m", False, "2026-11-10T13:50:00Z"),
    ],
)
def test_parse_when(text: str, end: bool, expected: str) -> None:
    assert periods.parse_when(text, BERLIN, NOW, end=end) == t(expected)


@pytest.mark.parametrize("text", ["last week", "2026-13-01", "2026-02-30", "0d", "7x", "", "01/11/2026"])
def test_parse_when_refuses_with_a_hint(text: str) -> None:
    with pytest.raises(periods.ReviewError) as e:
        periods.parse_when(text, BERLIN, NOW, what="--since")
    assert "--since" in str(e.value)


def test_a_day_that_starts_at_one_in_the_morning() -> None:
    santiago = zoneinfo.ZoneInfo("America/Santiago")  # 2026-09-06: 00:00 does not exist
    start = periods.day_start(dt.date(2026, 9, 6), santiago)
    assert start.astimezone(santiago).isoformat() == "2026-09-06T01:00:00-03:00"
    assert (start - dt.timedelta(milliseconds=1)).astimezone(santiago).date() == dt.date(2026, 9, 5)


def test_unknown_zone() -> None:
    with pytest.raises(periods.ReviewError, match="unknown time zone 'Mars/Olympus'"):
        periods.zone("Mars/Olympus")
    with pytest.raises(periods.ReviewError):
        periods.zone("../../etc/passwd")


# -- local hours -----------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(ZONES),
    start=st.integers(
        t("2025-01-01T00:00:00Z").timestamp() * 1000, t("2027-12-01T00:00:00Z").timestamp() * 1000
    ),
    length=st.integers(1, 40 * 86_400_000),
)
def test_local_hours_split_exactly_at_local_clock_hours(name: str, start: int, length: int) -> None:
    tz = zoneinfo.ZoneInfo(name)
    bounds, keys = periods.local_hours(tz, start, start + length)
    assert bounds[0] == start and bounds[-1] == start + length and len(keys) == len(bounds) - 1
    for i, key in enumerate(keys):
        lo, hi = bounds[i], bounds[i + 1]
        assert lo < hi <= lo + 3_600_000
        for edge in (lo, hi - 1):  # the whole bucket lies in one local clock hour: the key's
            local = dt.datetime.fromtimestamp(edge / 1000, tz)
            assert (local.date().toordinal() - dt.date(1970, 1, 1).toordinal()) * 24 + local.hour == key
        if i:  # and a new bucket begins only where the local hour (or the offset) changes
            before = dt.datetime.fromtimestamp((lo - 1) / 1000, tz)
            after = dt.datetime.fromtimestamp(lo / 1000, tz)
            assert before.hour != after.hour or before.utcoffset() != after.utcoffset()


def test_daylight_saving_days_have_23_and_25_hours() -> None:
    for day, hours in (("2026-03-29", 23), ("2026-10-25", 25), ("2026-07-01", 24)):
        d = dt.date.fromisoformat(day)
        lo, hi = periods.day_start(d, BERLIN), periods.day_start(d + dt.timedelta(days=1), BERLIN)
        _, keys = periods.local_hours(BERLIN, periods.utc_ms(lo), periods.utc_ms(hi))
        assert len(keys) == hours
    # the repeated 02:00 hour on 25 October is two buckets with the same local hour
    lo = t("2026-10-24T22:00:00Z")
    _, keys = periods.local_hours(BERLIN, periods.utc_ms(lo), periods.utc_ms(lo + dt.timedelta(hours=25)))
    assert [k % 24 for k in keys] == [0, 1, 2, 2, *range(3, 24)]
