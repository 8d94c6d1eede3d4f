"""Reviewing the journal: log filters, stats in the user's days (DST, half-hour zones), streaks,
the HTML report (rendered in headless Chromium), export, forget while the daemon writes, and the
commands' messages and exit codes.

Journals are real SQLite files written through the real ``Journal`` writer, or filled directly in
a file created by ``journal.connect`` where hundreds of rows per example are needed. Times are
fixed; ``compute_stats`` takes ``now``.
"""

from __future__ import annotations

import collections
import csv
import datetime as dt
import io
import json
import os
import sqlite3
import subprocess
import sys
import threading
import zoneinfo
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import need_tool, wait_for
from zerocontact.daemon import review
from zerocontact.daemon.journal import Attempt, Journal, JournalError, connect, iso, open_readonly

ZC = str(Path(sys.executable).with_name("zerocontact"))
UTC = dt.UTC
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",  # clocks jump at midnight: a day that starts at 01:00
    "Asia/Kolkata",  # +05:30
    "Asia/Kathmandu",  # +05:45
    "America/St_Johns",  # -03:30 with DST
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "Pacific/Chatham",  # +12:45 / +13:45
    "Pacific/Kiritimati",  # +14
]


def t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def att(when: str | dt.datetime, **kw: Any) -> Attempt:
    fields: dict[str, Any] = {
        "person": "Sam",
        "platform": "instagram",
        "surface": "stories",
        "channel": "web",
        "method": "GET",
        "host": "www.instagram.com",
        "path": "/stories/sam.example/",
        "rule": "/stories/{handle}/",
        "detail": "Instagram stories of Sam",
    }
    fields.update(kw)
    return Attempt(time=t(when) if isinstance(when, str) else when, **fields)


def write(
    path: Path,
    attempts: Sequence[Attempt],
    notes: dict[int, str] | None = None,
    started: Sequence[str] = (),
) -> Path:
    """A journal written by the real writer thread; ``started`` daemon starts at fixed times."""
    j = Journal(path)
    j.start()
    for i, a in enumerate(attempts):
        key = j.record(a)
        if notes and i in notes:
            j.note(key, notes[i])
    assert j.flush(), j.error
    j.close()
    if not attempts:  # an empty journal still needs its file
        connect(path).close()
    if started:
        con = sqlite3.connect(path, isolation_level=None)
        con.executemany(
            "INSERT INTO events (time, kind, detail) VALUES (?, 'started', '{}')",
            [(iso(t(s)),) for s in started],
        )
        con.close()
    return path


def fill(path: Path, times: Sequence[dt.datetime], started: dt.datetime | None = None) -> Path:
    """Many attempts at once, straight into a file that ``journal.connect`` created."""
    con = connect(path)
    con.execute("BEGIN")
    con.executemany(
        "INSERT INTO attempts (key, time, last_time, person, platform, surface, channel) "
        "VALUES (?, ?, ?, ?, ?, ?, 'web')",
        [
            (f"k{i}", iso(x), iso(x), ("Sam", "Alex")[i % 2], ("x", "instagram")[i % 3 == 0], "profile")
            for i, x in enumerate(times)
        ],
    )
    if started:
        con.execute("INSERT INTO events (time, kind) VALUES (?, 'started')", (iso(started),))
    con.execute("COMMIT")
    con.close()
    return path


def stats(path: Path, now: str, tz: str = "Europe/Berlin", **kw: Any) -> review.Stats:
    con = open_readonly(path)
    try:
        return review.compute_stats(con, now=t(now), tz=zoneinfo.ZoneInfo(tz), **kw)
    finally:
        con.close()


def zc(
    *args: str, input: str | None = None, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ZC, *args],
        capture_output=True,
        text=True,
        input=input,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "TZ": "Europe/Berlin", **env},
    )


@pytest.fixture
def state(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    return d


@pytest.fixture
def sample(state: Path) -> Path:
    """Two weeks with a story: the rules took effect on 1 Nov, notes on some attempts."""
    write(
        state / "journal.sqlite3",
        [
            att("2026-11-01T21:30:00Z"),
            att("2026-11-01T22:10:00Z", surface="profile", path="/sam.example/"),
            att("2026-11-02T20:05:00Z", platform="x", surface="profile", host="x.com", path="/samexample"),
            att("2026-11-04T07:45:00Z", person="Alex", surface="presence"),
            att(
                "2026-11-08T23:30:00Z", channel="app", method=None, host=None, path=None, process="Instagram"
            ),
            att(
                "2026-11-09T12:00:00Z",
                channel="bypass",
                person=None,
                platform=None,
                surface=None,
                method=None,
                host=None,
                path=None,
                detail="the service was stopped while blocking Sam",
            ),
        ],
        notes={0: "our song came on", 3: 'saw <b>them</b> & "him" =1+1', 4: "couldn't\x1b[2J sleep"},
        started=["2026-11-01T08:00:00Z"],
    )
    return state


# -- parsing dates ---------------------------------------------------------------------------------
NOW = t("2026-11-10T15:20:00Z")  # 16:20 in Berlin


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
    assert review.parse_when(text, BERLIN, NOW, end=end) == t(expected)


@pytest.mark.parametrize("text", ["last week", "2026-13-01", "2026-02-30", "0d", "7x", "", "01/11/2026"])
def test_parse_when_refuses_with_a_hint(text: str) -> None:
    with pytest.raises(review.ReviewError) as e:
        review.parse_when(text, BERLIN, NOW, what="--since")
    assert "--since" in str(e.value)


def test_a_day_that_starts_at_one_in_the_morning() -> None:
    santiago = zoneinfo.ZoneInfo("America/Santiago")  # 2026-09-06: 00:00 does not exist
    start = review.day_start(dt.date(2026, 9, 6), santiago)
    assert start.astimezone(santiago).isoformat() == "2026-09-06T01:00:00-03:00"
    assert (start - dt.timedelta(milliseconds=1)).astimezone(santiago).date() == dt.date(2026, 9, 5)


def test_unknown_zone() -> None:
    with pytest.raises(review.ReviewError, match="unknown time zone 'Mars/Olympus'"):
        review.zone("Mars/Olympus")
    with pytest.raises(review.ReviewError):
        review.zone("../../etc/passwd")


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
    bounds, keys = review.local_hours(tz, start, start + length)
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
        lo, hi = review.day_start(d, BERLIN), review.day_start(d + dt.timedelta(days=1), BERLIN)
        _, keys = review.local_hours(BERLIN, review._ms(lo), review._ms(hi))
        assert len(keys) == hours
    # the repeated 02:00 hour on 25 October is two buckets with the same local hour
    lo = t("2026-10-24T22:00:00Z")
    _, keys = review.local_hours(BERLIN, review._ms(lo), review._ms(lo + dt.timedelta(hours=25)))
    assert [k % 24 for k in keys] == [0, 1, 2, 2, *range(3, 24)]


# -- stats -----------------------------------------------------------------------------------------
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
    con = open_readonly(path)
    try:
        s = review.compute_stats(con, now=WINDOW[1] + dt.timedelta(days=1), tz=tz, since=since, until=until)
    finally:
        con.close()
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
    u = review.parse_when(until, BERLIN, t(now), end=True) if until else None
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
    with pytest.raises(review.ReviewError, match="in the future"):
        stats(path, "2026-11-05T12:00:00Z", since=t("2026-11-06T00:00:00Z"))
    with pytest.raises(review.ReviewError, match="the journal begins 2026-11-01 10:00"):
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
    assert review.week_sentence(s).startswith("As many attempts in the last 7 days as in the 7 before")
    s = stats(path, "2026-11-17T12:00:00Z")
    assert (s.this_week.count, s.last_week.count) == (3, 4)
    assert (
        review.week_sentence(s) == "Fewer attempts in the last 7 days than in the 7 before: 3, down from 4."
    )
    s = stats(path, "2026-11-12T12:00:00Z")  # the 7 days before began before the rules did
    assert s.this_week.complete and not s.last_week.complete
    assert "not yet a full week before it" in review.week_sentence(s)
    s = stats(path, "2026-11-10T12:00:00Z", until=t("2026-11-06T00:00:00Z"))
    assert s.this_week.end == t("2026-11-06T00:00:00Z")


def test_a_harder_week_is_said_kindly(tmp_path: Path) -> None:
    path = write(
        tmp_path / "j.sqlite3",
        [att("2026-11-03T20:00:00Z")] + [att(f"2026-11-{d:02d}T20:00:00Z") for d in (10, 11, 12)],
        started=["2026-10-20T09:00:00Z"],
    )
    text = review.week_sentence(stats(path, "2026-11-14T12:00:00Z"))
    assert text.startswith("A harder week: 3 attempts in the last 7 days, 1 in the 7 before.")
    assert "waves" in text


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
    review.ensure_review_index(path)
    monkeypatch.setattr(review, "LARGE", 0)  # take the index path even for five attempts
    indexed = stats(path, "2026-11-05T12:00:00Z")
    assert indexed.as_json() == plain.as_json()
    one = stats(path, "2026-11-05T12:00:00Z", who=("Alex",))
    assert (one.total, one.per_person, one.per_surface) == (2, {"Alex": 2}, {"profile": 1, "search": 1})
    assert one.as_json()["period"]["people"] == ["Alex"]


def test_stats_json_has_the_documented_keys(tmp_path: Path) -> None:
    path = write(tmp_path / "j.sqlite3", [att("2026-11-02T10:00:00Z")], started=["2026-11-01T09:00:00Z"])
    data = json.loads(json.dumps(stats(path, "2026-11-03T12:00:00Z").as_json()))
    assert set(data) == {
        "period", "total", "per_day", "days_with_attempts", "zero_days", "current_streak_days",
        "longest_streak_days", "per_person", "per_platform", "per_surface", "per_channel", "hour_weekday",
        "this_week", "last_week", "first", "last",
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


# -- log -------------------------------------------------------------------------------------------
def test_log_filters_run_in_sql_on_an_index(sample: Path) -> None:
    con = open_readonly(sample / "journal.sqlite3")
    try:

        def times(**kw: Any) -> list[str]:
            return [
                r["time"][:16] for r in review.select_attempts(con, review.Filters(**kw), kw.pop("_", None))
            ]

        assert times()[0] == "2026-11-09T12:00" and times()[-1] == "2026-11-01T21:30"  # newest first
        assert times(since=t("2026-11-04T00:00:00Z"), until=t("2026-11-09T00:00:00Z")) == [
            "2026-11-08T23:30",
            "2026-11-04T07:45",
        ]
        assert times(person=("Alex",)) == ["2026-11-04T07:45"]
        assert times(platform=("X",)) == ["2026-11-02T20:05"]
        assert times(surface=("profile", "presence")) == [
            "2026-11-04T07:45",
            "2026-11-02T20:05",
            "2026-11-01T22:10",
        ]
        assert times(channel=("bypass", "app")) == ["2026-11-09T12:00", "2026-11-08T23:30"]
        assert [r["time"][:10] for r in review.select_attempts(con, review.Filters(), 2)] == [
            "2026-11-09",
            "2026-11-08",
        ]
        for f in (review.Filters(since=NOW), review.Filters(person=("Sam",), since=NOW)):
            where, args = f.where()
            plan = " ".join(
                r[3]
                for r in con.execute(
                    f"EXPLAIN QUERY PLAN SELECT * FROM attempts{where} ORDER BY time DESC", args
                )
            )
            assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
        assert review.resolve_people(con, ["sam", "ALEX", "Robin"]) == (("Sam", "Alex"), ["Robin"])
    finally:
        con.close()


def test_log_command_table_and_json(sample: Path) -> None:
    r = zc("log", "--state-dir", str(sample))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["When", "Person", "Platform", "Surface", "Channel", "What"]
    assert lines[1].startswith("2026-11-09 13:00  -")  # Berlin time; the stopped service has no person
    first = lines.index(next(x for x in lines if x.startswith("2026-11-01 22:30")))
    assert "GET www.instagram.com/stories/sam.example/" in lines[first]
    assert lines[first + 1].strip() == "note: “our song came on”"  # the note, under its attempt
    assert "\x1b" not in r.stdout and "couldn't [2J sleep" in r.stdout  # no terminal control from a note
    r = zc(
        "log",
        "--state-dir",
        str(sample),
        "--json",
        "--person",
        "sam",
        "--since",
        "2026-11-02",
        "--limit",
        "2",
    )
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["time"] for x in rows] == ["2026-11-08T23:30:00.000Z", "2026-11-02T20:05:00.000Z"]
    assert list(rows[0]) == [
        "time",
        "person",
        "platform",
        "surface",
        "channel",
        "detail",
        "note",
        "requests",
        "process",
    ]
    assert rows[0]["process"] == "Instagram" and rows[0]["note"] == "couldn't\x1b[2J sleep"  # JSON is exact
    assert rows[1]["detail"] == "GET x.com/samexample"
    r = zc("log", "--state-dir", str(sample), "--until", "2026-11-01", "--json")
    assert len(r.stdout.splitlines()) == 2  # an --until date includes its whole day
    r = zc("log", "--state-dir", str(sample), "--person", "Robin")
    assert r.returncode == 0 and r.stdout == "No attempts match.\n"
    assert "no attempts name 'Robin'; the journal names Alex, Sam" in r.stderr


def test_log_into_a_closed_pipe_ends_quietly(sample: Path) -> None:
    r = subprocess.run(
        f"{ZC} log --state-dir {sample} | head -n 1", shell=True, capture_output=True, text=True, timeout=60
    )
    assert r.stdout.startswith("When") and "Traceback" not in r.stderr and "Broken pipe" not in r.stderr


# -- user errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["log", "stats", "report", "export", "forget"])
def test_every_review_command_explains_a_missing_or_foreign_journal(tmp_path: Path, command: str) -> None:
    extra = ["--before", "2026-11-01", "--yes"] if command == "forget" else []
    r = zc(command, "--state-dir", str(tmp_path / "nothing"), *extra, cwd=tmp_path)
    assert r.returncode == 1 and "no journal at" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "journal.sqlite3").write_bytes(b"this is a shopping list, not a database\n" * 200)
    r = zc(command, "--state-dir", str(bad), *extra, cwd=tmp_path)
    assert r.returncode == 1 and str(bad / "journal.sqlite3") in r.stderr and "Traceback" not in r.stderr
    assert (bad / "journal.sqlite3").read_bytes().startswith(b"this is a shopping list")  # untouched


def test_a_damaged_journal_still_gives_what_can_be_read(state: Path) -> None:
    path = state / "journal.sqlite3"
    base = dt.datetime(2026, 1, 1, tzinfo=UTC)
    write(path, [att(base + dt.timedelta(minutes=i), detail="x" * 200) for i in range(3000)])
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 65536] = b"Z" * 65536  # sixteen pages of the middle are gone
    path.write_bytes(bytes(data))
    r = zc("export", "--state-dir", str(state), "--format", "json")
    assert r.returncode == 0 and "Traceback" not in r.stderr
    assert f"{path} is damaged" in r.stderr and "what can still be read" in r.stderr
    assert 0 < len(json.loads(r.stdout)["attempts"]) <= 3000
    r = zc("stats", "--state-dir", str(state))
    assert r.returncode == 1 and f"{path} is damaged" in r.stderr and "zerocontact export" in r.stderr
    r = zc("log", "--state-dir", str(state), "--json")
    assert r.returncode == 0 and "Traceback" not in r.stderr and r.stdout.count("\n") > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stats", "--since", "last tuesday"], "--since 'last tuesday' is not a date"),
        (["log", "--until", "2026-02-30"], "--until '2026-02-30' is not a real date"),
        (["stats", "--timezone", "Europe/Atlantis"], "unknown time zone 'Europe/Atlantis'"),
        (["report", "--since", "2026-11-05", "--until", "2026-11-01"], "--until is not after --since"),
        (["stats", "--until", "2026-10-01"], "the journal begins 2026-11-01 09:00"),
        (["stats", "--person", "Robin"], "none of the people asked for is in the journal"),
        (["forget", "--before", "soon"], "--before 'soon' is not a date"),
        (["export", "--format", "xml"], "Invalid value for '--format'"),
    ],
)
def test_user_errors_are_one_clear_line(sample: Path, args: list[str], message: str) -> None:
    r = zc(*args, "--state-dir", str(sample), cwd=sample)
    assert r.returncode in (1, 2) and message in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_stats_command(sample: Path) -> None:
    r = zc("stats", "--state-dir", str(sample), "--until", "2026-11-14")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith(
        "Sun 1 Nov 2026 – Sat 14 Nov 2026: 14 days (Europe/Berlin), since the rules took effect."
    )
    assert "6 attempts in all, on 4 days; 10 days with none." in out
    assert "5 days in a row without an attempt, up to Sat 14 Nov." in out
    assert "not yet a full week before it" in out  # the 7 days before began 10 hours before the rules
    assert "  2026-10-26        █ ▄·▄···· █·····\n" in out  # weeks from Monday; · is a quiet day
    assert "By person    Sam 4 · Alex 1 · (none) 1" in out
    data = json.loads(zc("stats", "--state-dir", str(sample), "--json", "--timezone", "Asia/Kolkata").stdout)
    assert data["period"]["timezone"] == "Asia/Kolkata" and data["total"] == 6
    assert data["per_day"][0] == {"date": "2026-11-01", "count": 0}  # 21:30Z is 03:00 on the 2nd there
    assert data["per_day"][1] == {"date": "2026-11-02", "count": 2}


def test_review_commands_read_while_the_writer_runs_and_after_it_stops(state: Path) -> None:
    path = state / "journal.sqlite3"
    j = Journal(path)
    j.start()
    j.record(att("2026-11-02T10:00:00Z"))
    assert j.flush()
    r = zc("log", "--state-dir", str(state), "--json")  # the writer's connection is open (WAL)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1
    j.record(att("2026-11-02T11:00:00Z"))
    assert j.flush()
    assert json.loads(zc("stats", "--state-dir", str(state), "--json").stdout)["total"] == 2
    j.close()
    assert json.loads(zc("stats", "--state-dir", str(state), "--json").stdout)["total"] == 2
    assert zc("export", "--state-dir", str(state)).stdout.count("\n") == 3


# -- export ----------------------------------------------------------------------------------------
def test_export_csv_round_trip(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine.csv"
    r = zc("export", "--state-dir", str(sample), "--out", str(out))
    assert r.returncode == 0 and "wrote 6 attempts" in r.stderr
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    with out.open(newline="", encoding="utf-8") as f:
        got = list(csv.DictReader(f))
    con = open_readonly(sample / "journal.sqlite3")
    try:
        rows = [dict(r) for r in con.execute("SELECT * FROM attempts ORDER BY time, id")]
    finally:
        con.close()
    assert list(got[0]) == list(rows[0])  # every column, in the table's order
    assert len(got) == len(rows)
    for g, row in zip(got, rows, strict=True):
        for k, v in row.items():
            text = "" if v is None else str(v)
            if text.startswith(("=", "+", "-", "@")):
                text = "'" + text  # a formula is defused for spreadsheets
            assert g[k] == text, k
    assert got[3]["note"] == 'saw <b>them</b> & "him" =1+1'


def test_export_json_is_exact(sample: Path) -> None:
    r = zc("export", "--state-dir", str(sample), "--format", "json")
    data = json.loads(r.stdout)
    con = open_readonly(sample / "journal.sqlite3")
    try:
        rows = [dict(r) for r in con.execute("SELECT * FROM attempts ORDER BY time, id")]
    finally:
        con.close()
    assert data["attempts"] == rows and data["exported_at"].endswith("Z")
    assert review.export_json([], ["id"], io.StringIO(), now=NOW) == 0


# -- forget ----------------------------------------------------------------------------------------
def test_forget_while_the_writer_keeps_writing(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    old = [att(dt.datetime(2026, 1, 1, tzinfo=UTC) + dt.timedelta(minutes=i)) for i in range(3000)]
    write(path, old, notes={5: "the old secret note"})
    j = Journal(path)
    j.start()
    reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM attempts").fetchone()[0] == 3000  # a read held open
    new = [att(dt.datetime(2026, 11, 1, tzinfo=UTC) + dt.timedelta(seconds=i)) for i in range(2000)]
    feeder = threading.Thread(target=lambda: [j.record(a) for a in new])
    feeder.start()
    deleted = review.forget(path, t("2026-06-01T00:00:00Z"), batch=500)  # six transactions
    feeder.join()
    assert j.flush(), j.error
    assert deleted == 3000
    reader.execute("COMMIT")
    reader.close()
    j.close()
    con = open_readonly(path)
    try:
        assert con.execute("SELECT count(*), min(time) FROM attempts").fetchone()[:] == (
            2000,
            iso(new[0].time),
        )
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("SELECT value FROM meta WHERE key = 'forgotten_before'").fetchone()[0] == (
            "2026-06-01T00:00:00.000Z"
        )
    finally:
        con.close()
    assert review.forget(path, t("2026-06-01T00:00:00Z")) == 0
    # secure_delete and a checkpoint: the forgotten note is gone from the bytes on disk
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("journal.sqlite3*"))
    assert b"the old secret note" not in blob


def test_forget_waits_for_the_writer_lock_then_says_so(tmp_path: Path) -> None:
    path = write(tmp_path / "journal.sqlite3", [att("2026-01-02T00:00:00Z")])
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    with pytest.raises(JournalError, match="database is locked"):
        review.forget(path, t("2026-06-01T00:00:00Z"), busy_timeout=0.1)
    done: list[int] = []
    waiter = threading.Thread(target=lambda: done.append(review.forget(path, t("2026-06-01T00:00:00Z"))))
    waiter.start()
    other.execute("COMMIT")  # forget was waiting (30 s busy timeout) and now goes ahead
    waiter.join(30)
    other.close()
    assert done == [1]


def test_forgotten_days_are_not_counted_as_quiet_days(tmp_path: Path) -> None:
    path = write(
        tmp_path / "journal.sqlite3",
        [att("2026-11-01T10:00:00Z"), att("2026-11-05T10:00:00Z")],
        started=["2026-10-01T09:00:00Z"],
    )
    assert review.forget(path, t("2026-11-03T00:00:00Z")) == 1
    s = stats(path, "2026-11-06T12:00:00Z")
    assert (s.basis, s.per_day[0][0], s.longest_streak_days) == ("forgotten", dt.date(2026, 11, 3), 2)


def test_forget_command_asks_first(sample: Path) -> None:
    args = ("forget", "--state-dir", str(sample), "--before", "2026-11-03")
    r = zc(*args, input="")  # no terminal: it will not delete without --yes
    assert r.returncode == 1 and "would delete 3 attempts from before Tue 2026-11-03 00:00" in r.stderr
    assert "add --yes" in r.stderr
    assert len(zc("log", "--state-dir", str(sample), "--json").stdout.splitlines()) == 6
    r = zc(*args, "--yes")
    assert r.returncode == 0 and r.stdout == "Forgot 3 attempts from before Tue 2026-11-03 00:00.\n"
    assert len(zc("log", "--state-dir", str(sample), "--json").stdout.splitlines()) == 3
    r = zc(*args, "--yes")
    assert r.returncode == 0 and r.stdout.startswith("Nothing to forget")


# -- the report ------------------------------------------------------------------------------------
def render(sample: Path, tmp_path: Path, *args: str) -> tuple[Path, str]:
    r = zc("report", "--state-dir", str(sample), *args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    path = Path(r.stdout.removeprefix("wrote ").strip())
    return path, path.read_text(encoding="utf-8")


def test_report_is_self_contained_private_and_has_the_notes(sample: Path, tmp_path: Path) -> None:
    path, html = render(sample, tmp_path, "--until", "2026-11-14")
    assert path.parent == tmp_path and path.name.startswith("report-") and path.suffix == ".html"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    low = html.lower()
    assert "<script" not in low and "http://" not in low and "https://" not in low and "src=" not in low
    assert "url(" not in low and "@import" not in low
    assert "default-src 'none'" in html  # even a browser that found a reference would fetch nothing
    assert "saw &lt;b&gt;them&lt;/b&gt; &amp; &#34;him&#34; =1+1" in html  # the note, escaped
    assert "our song came on" in html and "<b>them</b>" not in html
    assert "prefers-color-scheme:dark" in html
    assert "Looking back" in html and "5 days in a row without an attempt" in html
    assert html.count("<svg") >= 6 and 'class="bar"' in html and 'class="cell"' in html
    for unkind in ("fail", "relapse", "weak", "shame", "bad"):
        assert unkind not in low


def test_report_of_an_empty_journal(state: Path, tmp_path: Path) -> None:
    write(state / "journal.sqlite3", [])
    _, html = render(state, tmp_path, "--out", str(tmp_path / "empty.html"))
    assert "Not a single attempt in this period." in html and "No notes in this period." in html


def test_report_open_without_a_browser_is_fine(sample: Path, tmp_path: Path) -> None:
    r = zc("report", "--state-dir", str(sample), "--open", cwd=tmp_path, BROWSER="true")
    assert r.returncode == 0 and "Traceback" not in r.stderr


@pytest.fixture
def screenshots(sample: Path, tmp_path: Path) -> Iterator[dict[str, bytes]]:
    chromium = need_tool("chromium")
    path, _ = render(sample, tmp_path, "--out", str(tmp_path / "report.html"))
    shots: dict[str, bytes] = {}
    for scheme, extra in (
        ("light", []),
        ("dark", ["--force-dark-mode", "--blink-settings=preferredColorScheme=0"]),
    ):
        png = tmp_path / f"report-{scheme}.png"
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--hide-scrollbars",
                f"--user-data-dir={tmp_path / ('profile-' + scheme)}",
                *extra,
                f"--screenshot={png}",
                "--window-size=1000,2400",
                path.as_uri(),
            ],
            capture_output=True,
            timeout=120,
        )
        shots[scheme] = wait_for(
            lambda png=png: png.exists() and png.read_bytes(), 30, f"{scheme} screenshot"
        )
    yield shots


def test_report_renders_in_chromium_in_light_and_dark(screenshots: dict[str, bytes]) -> None:
    for png in screenshots.values():
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 30_000  # charts and text, not a blank page
    assert screenshots["light"] != screenshots["dark"]  # the page follows the colour scheme


# -- the benchmark still runs ----------------------------------------------------------------------
def test_benchmark_runs_on_a_small_journal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import journal as bench

    result = bench.main(["--attempts", "300", "--keep", str(tmp_path)])
    printed = json.loads(capsys.readouterr().out)
    assert printed == result and result["attempts"] == 300
    assert {"ingest_per_second", "stats_seconds", "log_limit_50_seconds"} <= set(result)
