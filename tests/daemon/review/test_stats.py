"""Stats in the user's days: per day (DST, half-hour zones), streaks, where the period starts, week
against week, totals with and without the review index, and the ``stats --json`` keys.

Journals are real SQLite files written through the real ``Journal`` writer, or filled directly
where hundreds of rows per example are needed. Times are fixed; ``compute_stats`` takes ``now``.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import sqlite3
import zoneinfo
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zctest.journals import BERLIN, ZONES, att, fill, stats, t, write

from zerocontact.daemon.journal import Journal, reader
from zerocontact.daemon.journal.reader import reading
from zerocontact.daemon.journal.schema import ensure_review_index
from zerocontact.daemon.review import periods, words
from zerocontact.daemon.review.stats import compute_stats


def reference(
    times: Sequence[dt.datetime], tz: zoneinfo.ZoneInfo, start: dt.datetime, end: dt.datetime
) -> tuple[list[tuple[dt.date, int]], list[list[int]]]:
    """Per-day counts and the hour × weekday map, one attempt at a time with zoneinfo."""
    days: collections.Counter[dt.date] = collections.Counter()
    grid = [[0] * 24 for _ in range(7)]
    for x in times:
        if start <= x < end:
            local = x.astimezone(tz)
            days[local.date()] += 1
            grid[local.weekday()][local.hour] += 1
    d0 = start.astimezone(tz).date()
    d1 = (end - dt.timedelta(milliseconds=1)).astimezone(tz).date()
    return [
        (d0 + dt.timedelta(days=i), days[d0 + dt.timedelta(days=i)]) for i in range((d1 - d0).days + 1)
    ], grid


WINDOW = (t("2026-03-20T00:00:00Z"), t("2026-04-12T00:00:00Z"))  # spans the March/April changes


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(ZONES),
    offsets=st.lists(st.integers(0, 23 * 86_400_000 - 1), max_size=150),
    cut=st.tuples(st.integers(0, 23 * 86_400_000 - 2), st.integers(1, 23 * 86_400_000)),
)
def test_stats_agree_with_a_per_attempt_reference(
    tmp_path_factory: pytest.TempPathFactory, name: str, offsets: list[int], cut: tuple[int, int]
) -> None:
    tz = zoneinfo.ZoneInfo(name)
    base = WINDOW[0]
    times = [base + dt.timedelta(milliseconds=o) for o in offsets]
    path = fill(tmp_path_factory.mktemp("j") / "journal.sqlite3", times, started=base)
    since = base + dt.timedelta(milliseconds=cut[0])
    until = min(since + dt.timedelta(milliseconds=cut[1]), WINDOW[1])
    with reading(path) as journal:
        s = compute_stats(journal, now=WINDOW[1] + dt.timedelta(days=1), tz=tz, since=since, until=until)
    days, grid = reference(times, tz, since, until)
    assert s.per_day == days
    assert s.hour_weekday == grid
    assert s.total == sum(c for _, c in days) == sum(s.per_person.values()) == sum(s.per_surface.values())
    inside = sorted(x for x in times if since <= x < until)
    assert (s.first, s.last) == ((inside[0], inside[-1]) if inside else (None, None))


def test_stats_across_daylight_saving_changes(tmp_path: Path) -> None:
    path = write(
        tmp_path / "j.sqlite3",
        [
            att("2026-03-29T00:30:00Z"),  # 01:30 CET, Sunday 29 March
            att("2026-03-29T01:30:00Z"),  # 03:30 CEST: 02:xx did not exist that night
            att("2026-10-25T00:30:00Z"),  # 02:30 CEST, Sunday 25 October
            att("2026-10-25T01:30:00Z"),  # 02:30 CET: the same hour, lived twice
            att("2026-10-25T22:59:59Z"),  # 23:59:59 CET: still the 25th
            att("2026-10-25T23:00:00Z"),  # midnight: the 26th
        ],
        started=["2026-03-28T00:00:00Z"],
    )
    s = stats(path, "2026-10-27T12:00:00Z")
    counts = dict(s.per_day)
    assert counts[dt.date(2026, 3, 29)] == 2 and counts[dt.date(2026, 10, 25)] == 3
    assert counts[dt.date(2026, 10, 26)] == 1
    sunday = s.hour_weekday[6]
    assert (sunday[1], sunday[2], sunday[3], sunday[23]) == (1, 2, 1, 1)
    assert s.hour_weekday[0][0] == 1


@pytest.mark.parametrize(
    ("zone", "late", "early"),
    [
        ("Asia/Kolkata", "2026-11-03T18:29:59Z", "2026-11-03T18:30:00Z"),  # +05:30
        ("Asia/Kathmandu", "2026-11-03T18:14:59Z", "2026-11-03T18:15:00Z"),  # +05:45
        ("America/St_Johns", "2026-11-04T03:29:59Z", "2026-11-04T03:30:00Z"),  # -03:30
    ],
)
def test_half_hour_zones_split_days_at_their_own_midnight(
    tmp_path: Path, zone: str, late: str, early: str
) -> None:
    path = write(tmp_path / "j.sqlite3", [att(late), att(early)], started=["2026-11-01T00:00:00Z"])
    s = stats(path, "2026-11-06T00:00:00Z", tz=zone)
    counts = dict(s.per_day)
    assert (counts[dt.date(2026, 11, 3)], counts[dt.date(2026, 11, 4)]) == (1, 1)
    assert s.hour_weekday[1][23] == 1 and s.hour_weekday[2][0] == 1  # Tuesday 23:xx, Wednesday 00:xx


@pytest.mark.parametrize(
    ("attempts", "now", "until", "current", "longest"),
    [
        # an attempt today: the current streak is 0 (today counts only while it has none)
        (["2026-11-05T09:00:00Z"], "2026-11-05T12:00:00Z", None, 0, 4),
        # none today so far: today counts
        (["2026-11-03T09:00:00Z"], "2026-11-05T12:00:00Z", None, 2, 2),
        # none at all since the rules took effect (1 Nov, 09:00): every day, the first included
        ([], "2026-11-05T12:00:00Z", None, 5, 5),
        # the longest run lies in the past
        (
            ["2026-11-01T10:00:00Z", "2026-11-08T10:00:00Z", "2026-11-10T10:00:00Z"],
            "2026-11-11T12:00:00Z",
            None,
            1,
            6,
        ),
        # with --until in the past, the current streak counts back from the period's last day
        (["2026-11-01T10:00:00Z", "2026-11-03T10:00:00Z"], "2026-11-20T12:00:00Z", "2026-11-06", 3, 3),
        # an attempt at 23:30 UTC is tomorrow in Berlin: yesterday (the 4th) had none
        (["2026-11-04T23:30:00Z"], "2026-11-05T12:00:00Z", None, 0, 4),
    ],
)
def test_streaks(
    tmp_path: Path, attempts: list[str], now: str, until: str | None, current: int, longest: int
) -> None:
    path = write(tmp_path / "j.sqlite3", [att(a) for a in attempts], started=["2026-11-01T09:00:00Z"])
    u = periods.parse_when(until, BERLIN, t(now), end=True) if until else None
    s = stats(path, now, until=u)
    assert (s.current_streak_days, s.longest_streak_days) == (current, longest)
    if not attempts:
        assert s.zero_days == len(s.per_day) == 5 and s.total == 0


def test_the_period_starts_when_the_rules_took_effect(tmp_path: Path) -> None:
    path = write(
        tmp_path / "j.sqlite3",
        [att("2026-11-03T10:00:00Z"), att("2026-11-04T10:00:00Z")],
        started=["2026-11-01T09:00:00Z", "2026-11-02T09:00:00Z"],
    )
    s = stats(path, "2026-11-05T12:00:00Z")
    assert (s.basis, s.start, s.per_day[0][0]) == ("rules", t("2026-11-01T09:00:00Z"), dt.date(2026, 11, 1))
    # an earlier --since cannot invent attempt-free days before the journal began
    s = stats(path, "2026-11-05T12:00:00Z", since=t("2026-10-01T00:00:00Z"))
    assert s.start == t("2026-11-01T09:00:00Z") and len(s.per_day) == 5
    s = stats(path, "2026-11-05T12:00:00Z", since=t("2026-11-04T00:00:00Z"))
    assert (s.basis, s.total, len(s.per_day)) == ("since", 1, 2)
    with pytest.raises(periods.ReviewError, match="in the future"):
        stats(path, "2026-11-05T12:00:00Z", since=t("2026-11-06T00:00:00Z"))
    with pytest.raises(periods.ReviewError, match="the journal begins 2026-11-01 10:00"):
        stats(path, "2026-11-05T12:00:00Z", until=t("2026-10-20T00:00:00Z"))
    # without a recorded start, the first attempt begins the period
    bare = write(tmp_path / "bare.sqlite3", [att("2026-11-03T10:00:00Z")])
    s = stats(bare, "2026-11-05T12:00:00Z")
    assert (s.basis, s.per_day[0]) == ("first_attempt", (dt.date(2026, 11, 3), 1))
    # an empty journal: today, with nothing in it
    empty = write(tmp_path / "empty.sqlite3", [])
    s = stats(empty, "2026-11-05T12:00:00Z")
    assert (s.basis, s.per_day, s.first, s.last) == ("empty", [(dt.date(2026, 11, 5), 0)], None, None)


def test_this_week_against_last_compares_equal_spans(tmp_path: Path) -> None:
    path = write(
        tmp_path / "j.sqlite3",
        [att(f"2026-11-{d:02d}T20:00:00Z") for d in (2, 3, 4, 5, 9, 10, 11, 15)],
        started=["2026-11-01T09:00:00Z"],
    )
    s = stats(path, "2026-11-16T12:00:00Z")
    assert (s.this_week.start, s.this_week.end) == (t("2026-11-09T12:00:00Z"), t("2026-11-16T12:00:00Z"))
    assert (s.this_week.count, s.last_week.count, s.last_week.complete) == (4, 4, True)
    assert words.week_sentence(s).startswith("As many attempts in the last 7 days as in the 7 before")
    s = stats(path, "2026-11-17T12:00:00Z")
    assert (s.this_week.count, s.last_week.count) == (3, 4)
    assert words.week_sentence(s) == "Fewer attempts in the last 7 days than in the 7 before: 3, down from 4."
    s = stats(path, "2026-11-12T12:00:00Z")  # the 7 days before began before the rules did
    assert s.this_week.complete and not s.last_week.complete
    assert "not yet a full week before it" in words.week_sentence(s)
    s = stats(path, "2026-11-10T12:00:00Z", until=t("2026-11-06T00:00:00Z"))
    assert s.this_week.end == t("2026-11-06T00:00:00Z")


def test_totals_and_the_review_index_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path / "j.sqlite3",
        [
            att("2026-11-02T10:00:00Z"),
            att("2026-11-02T11:00:00Z", person="Alex", platform="x", surface="profile"),
            att("2026-11-03T11:00:00Z", person="Alex", platform="x", surface="search"),
            att("2026-11-03T12:00:00Z", channel="bypass", person=None, platform=None, surface=None),
            att("2026-11-04T12:00:00Z", channel="app", surface=None),
        ],
        started=["2026-11-01T09:00:00Z"],
    )
    plain = stats(path, "2026-11-05T12:00:00Z")
    assert plain.per_person == {"Sam": 2, "Alex": 2, "(none)": 1}
    assert plain.per_platform == {"instagram": 2, "x": 2, "(none)": 1}
    assert plain.per_surface == {"(none)": 2, "stories": 1, "profile": 1, "search": 1}
    assert plain.per_channel == {"web": 3, "app": 1, "bypass": 1}
    ensure_review_index(path)
    monkeypatch.setattr(reader, "LARGE", 0)  # take the index path even for five attempts
    indexed = stats(path, "2026-11-05T12:00:00Z")
    assert indexed.as_json() == plain.as_json()
    one = stats(path, "2026-11-05T12:00:00Z", who=("Alex",))
    assert (one.total, one.per_person, one.per_surface) == (2, {"Alex": 2}, {"profile": 1, "search": 1})
    assert one.as_json()["period"]["people"] == ["Alex"]


def test_attempts_are_counted_per_device_with_or_without_the_device_index(tmp_path: Path) -> None:
    path = write(
        tmp_path / "j.sqlite3",
        [
            att("2026-11-02T10:00:00Z", process="device phone"),
            att("2026-11-02T11:00:00Z", process="device phone", person="Alex"),
            att("2026-11-02T12:00:00Z", process="device ipad"),
            att("2026-11-03T10:00:00Z", process="firefox (4242)"),
            att("2026-11-03T11:00:00Z", process="device manager (77)"),  # this computer's, not a device
            att("2026-11-03T12:00:00Z", channel="app", person=None, surface=None, process="device phone"),
            att("2026-10-30T12:00:00Z", process="device phone"),  # before the period
        ],
        started=["2026-11-01T09:00:00Z"],
    )
    s = stats(path, "2026-11-05T12:00:00Z", since=t("2026-11-01T00:00:00Z"))
    assert s.total == 6
    assert list(s.per_device.items()) == [("phone", 3), ("ipad", 1), ("(none)", 2)]  # the computer's last
    assert s.as_json()["per_device"] == {"phone": 3, "ipad": 1, "(none)": 2}
    alex = stats(path, "2026-11-05T12:00:00Z", who=("Alex",))
    assert alex.per_device == {"phone": 1}  # all of Alex's were on the phone
    con = sqlite3.connect(path)
    con.execute("DROP INDEX attempts_device")  # as a reader finds a journal from before schema 5
    con.commit()
    con.close()
    assert stats(path, "2026-11-05T12:00:00Z", since=t("2026-11-01T00:00:00Z")).as_json() == s.as_json()
    computer_only = write(
        tmp_path / "k.sqlite3", [att("2026-11-02T10:00:00Z")], started=["2026-11-01T09:00:00Z"]
    )
    assert stats(computer_only, "2026-11-05T12:00:00Z").per_device == {}  # no device: nothing to split


def test_stats_json_has_the_documented_keys(tmp_path: Path) -> None:
    path = write(tmp_path / "j.sqlite3", [att("2026-11-02T10:00:00Z")], started=["2026-11-01T09:00:00Z"])
    data = json.loads(json.dumps(stats(path, "2026-11-03T12:00:00Z").as_json()))
    assert set(data) == {
        "period", "total", "per_day", "days_with_attempts", "zero_days", "current_streak_days",
        "longest_streak_days", "per_person", "per_platform", "per_surface", "per_channel", "per_device",
        "hour_weekday", "this_week", "last_week", "first", "last", "kept_out_of_sight",
    }  # fmt: skip
    assert data["period"] == {
        "start": "2026-11-01T09:00:00.000Z",
        "end": "2026-11-03T12:00:00.000Z",
        "first_day": "2026-11-01",
        "last_day": "2026-11-03",
        "days": 3,
        "timezone": "Europe/Berlin",
        "basis": "rules",
        "people": None,
    }
    assert data["per_day"] == [
        {"date": "2026-11-01", "count": 0},
        {"date": "2026-11-02", "count": 1},
        {"date": "2026-11-03", "count": 0},
    ]
    assert len(data["hour_weekday"]) == 7 and {len(r) for r in data["hour_weekday"]} == {24}
    assert data["hour_weekday"][0][11] == 1  # Monday, 11:00 Berlin
    assert (data["total"], data["current_streak_days"], data["longest_streak_days"]) == (1, 1, 1)
    assert set(data["this_week"]) == {"start", "end", "count", "complete"}
    assert data["first"] == data["last"] == "2026-11-02T10:00:00.000Z"


def test_kept_out_of_sight_is_counted_per_day_and_platform_never_as_attempts(tmp_path: Path) -> None:
    path = write(tmp_path / "j.sqlite3", [att("2026-11-02T10:00:00Z")], started=["2026-11-01T09:00:00Z"])
    j = Journal(path)
    j.start()
    j.hidden(dt.date(2026, 10, 20), "instagram", 50)  # before the period: not in it
    j.hidden(dt.date(2026, 11, 2), "instagram", 12)
    j.hidden(dt.date(2026, 11, 2), "x", 3)
    j.hidden(dt.date(2026, 11, 3), "instagram", 5)
    j.hidden(dt.date(2026, 11, 3), "facebook", 0, missed=2)  # passed on unchanged: a miss, not a removal
    assert j.flush()
    j.close()
    s = stats(path, "2026-11-03T12:00:00Z")
    assert s.total == 1  # removals are not attempts
    assert s.as_json()["kept_out_of_sight"] == {
        "total": 20,
        "per_platform": {"instagram": 17, "x": 3},
        "per_day": [
            {"date": "2026-11-02", "count": 15, "per_platform": {"instagram": 12, "x": 3}},
            {"date": "2026-11-03", "count": 5, "per_platform": {"instagram": 5}},
        ],
        "missed": 2,
    }
    # counted for everyone, never per person: a --person view leaves the figure out rather than lie
    assert stats(path, "2026-11-03T12:00:00Z", who=("Sam",)).as_json()["kept_out_of_sight"] is None
    empty = write(tmp_path / "e.sqlite3", [att("2026-11-02T10:00:00Z")], started=["2026-11-01T09:00:00Z"])
    assert stats(empty, "2026-11-03T12:00:00Z").as_json()["kept_out_of_sight"] == {
        "total": 0,
        "per_platform": {},
        "per_day": [],
        "missed": 0,
    }
