"""The policy over time: which blocks are in force at an instant, and when that next changes."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from zerocontact.rules import evaluate, load
from zerocontact.rules.schema import Person, Ruleset, Schedule, Window

BERLIN = ZoneInfo("Europe/Berlin")


def rules(extra: str, tz: str = "Europe/Berlin") -> object:
    return load(
        f'[settings]\ntimezone = "{tz}"\n[[person]]\nname = "Sam"\naccounts = {{ x = "sam" }}\n{extra}'
    )


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


def test_always_by_default() -> None:
    st = evaluate(rules(""), at(2026, 1, 1, 12))  # type: ignore[arg-type]
    assert st.people == {"Sam"} and st.next_change is None


def test_until_a_date_means_local_midnight() -> None:
    rs = rules("until = 2027-03-01")
    assert evaluate(rs, at(2027, 2, 28, 23, 59), {}).people == {"Sam"}  # type: ignore[arg-type]
    assert evaluate(rs, at(2027, 3, 1, 0, 0), {}).people == frozenset()  # type: ignore[arg-type]
    assert evaluate(rs, at(2027, 2, 28, 12), {}).next_change == at(2027, 3, 1).astimezone(dt.UTC)  # type: ignore[arg-type]


def test_for_counts_from_first_effect() -> None:
    rs = rules('for = "10d"')
    start = at(2026, 5, 1, 9)
    started = {"person:Sam": start}
    assert evaluate(rs, start + dt.timedelta(days=9), started).people == {"Sam"}  # type: ignore[arg-type]
    assert not evaluate(rs, start + dt.timedelta(days=10), started).people  # type: ignore[arg-type]


def test_window_across_midnight() -> None:
    rs = rules('windows = ["22:00-07:00"]')
    assert evaluate(rs, at(2026, 6, 1, 23, 30)).people == {"Sam"}  # type: ignore[arg-type]
    assert evaluate(rs, at(2026, 6, 2, 6, 59)).people == {"Sam"}  # type: ignore[arg-type]
    st = evaluate(rs, at(2026, 6, 2, 7, 0))  # type: ignore[arg-type]
    assert not st.people and st.next_change == at(2026, 6, 2, 22, 0).astimezone(dt.UTC)


def test_weekday_window_ends_on_next_morning() -> None:
    rs = rules('windows = ["fri 22:00-07:00"]')
    assert evaluate(rs, at(2026, 6, 6, 6, 0)).people == {"Sam"}  # Saturday morning  # type: ignore[arg-type]
    assert not evaluate(rs, at(2026, 6, 7, 6, 0)).people  # Sunday morning  # type: ignore[arg-type]


def test_window_across_dst_change() -> None:
    # 2026-03-29 02:00 in Berlin does not exist; a 01:00-04:00 window still ends at 04:00 local (CEST).
    rs = rules('windows = ["01:00-04:00"]')
    st = evaluate(rs, at(2026, 3, 29, 1, 30))  # type: ignore[arg-type]
    assert st.people == {"Sam"}
    assert st.next_change is not None
    assert st.next_change.astimezone(BERLIN).hour == 4
    assert st.next_change.astimezone(dt.UTC) - at(2026, 3, 29, 1, 30).astimezone(dt.UTC) == dt.timedelta(
        hours=1, minutes=30
    )


def test_naive_time_rejected() -> None:
    import pytest

    with pytest.raises(ValueError):
        evaluate(rules(""), dt.datetime(2026, 1, 1))  # type: ignore[arg-type]


# -- the obvious definition: every window checked, at every minute (slow, and plainly right) ---------
def _ref_in_window(w: Window, t: dt.datetime, zone: ZoneInfo) -> bool:
    local = t.astimezone(zone)
    now, day = local.time(), local.weekday()
    if w.start < w.end:
        return day in w.days and w.start <= now < w.end
    return (day in w.days and now >= w.start) or ((day - 1) % 7 in w.days and now < w.end)


def _ref_active(s: Schedule, t: dt.datetime) -> bool:
    return any(_ref_in_window(w, t, ZoneInfo(s.timezone)) for w in s.windows)


def _first_change(s: Schedule, t: dt.datetime) -> dt.datetime | None:
    """The first whole minute after ``t`` (itself on a minute) where the state differs, looking at
    every minute of the next week: slow, and obviously right."""
    now, minute = _ref_active(s, t), dt.timedelta(minutes=1)
    return next((t + k * minute for k in range(1, 7 * 1440) if _ref_active(s, t + k * minute) != now), None)


def _agrees(s: Schedule, t: dt.datetime) -> None:
    state = evaluate(Ruleset(source="t", people=(Person(name="Sam", schedule=s),)), t)
    assert (state.people == {"Sam"}) == _ref_active(s, t)
    first = _first_change(s, t)
    if first is not None:
        assert state.next_change == first
    else:  # nothing changes within a week (the horizon looks a little further)
        assert state.next_change is None or state.next_change > t + dt.timedelta(days=7)


_times = st.times().map(lambda t: t.replace(second=0, microsecond=0))
_window = st.tuples(st.frozensets(st.integers(0, 6), min_size=1), _times, _times).filter(
    lambda w: w[1] != w[2]
)


@settings(max_examples=200, deadline=None)
@given(
    windows=st.lists(_window, min_size=1, max_size=6),
    tz=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]),
    t=st.datetimes(
        min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2028, 1, 1), timezones=st.just(dt.UTC)
    ).map(lambda t: t.replace(second=0, microsecond=0)),
)
def test_windows_agree_with_a_minute_by_minute_look(
    windows: list[tuple[frozenset[int], dt.time, dt.time]], tz: str, t: dt.datetime
) -> None:
    """The compiled windows (merged intervals, one bisection per check) decide what checking every
    window at every minute decides: in force now, and the first minute that changes it."""
    _agrees(Schedule(windows=tuple(Window(a, b, days, f"{a}-{b}") for days, a, b in windows), timezone=tz), t)


_TRANSITIONS = [  # daylight-saving changes of the zones above, in UTC
    dt.datetime(2026, 3, 29, 1, 0, tzinfo=dt.UTC),  # Europe/Berlin forward
    dt.datetime(2026, 10, 25, 1, 0, tzinfo=dt.UTC),  # Europe/Berlin back
    dt.datetime(2026, 3, 8, 7, 0, tzinfo=dt.UTC),  # America/New_York forward
    dt.datetime(2026, 11, 1, 6, 0, tzinfo=dt.UTC),  # America/New_York back
    dt.datetime(2026, 4, 4, 15, 0, tzinfo=dt.UTC),  # Australia/Lord_Howe back (30 minutes)
    dt.datetime(2026, 10, 3, 15, 30, tzinfo=dt.UTC),  # Australia/Lord_Howe forward
]


@settings(max_examples=300, deadline=None)
@given(
    windows=st.lists(_window, min_size=1, max_size=6),
    tz=st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]),
    at=st.sampled_from(_TRANSITIONS),
    shift=st.integers(-2 * 1440, 2 * 1440),
)
def test_windows_agree_with_the_reference_around_daylight_saving_changes(
    windows: list[tuple[frozenset[int], dt.time, dt.time]], tz: str, at: dt.datetime, shift: int
) -> None:
    """Around a clock change a window's ends are not the only instants to check (a time that does
    not exist, or exists twice, and the change itself)."""
    s = Schedule(windows=tuple(Window(a, b, days, f"{a}-{b}") for days, a, b in windows), timezone=tz)
    _agrees(s, at + dt.timedelta(minutes=shift))


def _many_windows(n: int) -> str:
    # n one-minute windows on Wednesdays only: most boundaries in the horizon change nothing, which
    # made the old evaluation check every window at every one of them (1,000 windows: 8 s)
    return ", ".join(
        f'"wed {m // 60:02d}:{m % 60:02d}-{(m + 1) // 60:02d}:{(m + 1) % 60:02d}"'
        for m in ((i * 7) % 1380 for i in range(n))
    )


def test_a_thousand_windows_give_the_right_next_change() -> None:
    rs = rules(f"windows = [{_many_windows(1000)}]", tz="UTC")
    saturday = dt.datetime(2026, 3, 28, 12, 0, tzinfo=dt.UTC)
    st_ = evaluate(rs, saturday)  # type: ignore[arg-type]
    assert st_.people == frozenset() and st_.next_change == dt.datetime(2026, 4, 1, 0, 0, tzinfo=dt.UTC)


def test_a_start_time_near_the_end_of_time_neither_raises_nor_lifts_the_block() -> None:
    """``started`` comes from a state file: a corrupt one (year 9999) plus ``for`` would overflow.
    That entry stays enforced with no end; another person's window still starts on time."""
    rs = load(
        '[[person]]\nname = "Sam"\naccounts = { x = "sam" }\nfor = "90d"\n'
        '[[person]]\nname = "Ann"\naccounts = { x = "ann" }\nwindows = ["22:00-07:00"]\ntimezone = "UTC"\n'
    )
    t = dt.datetime(2026, 3, 28, 12, 0, tzinfo=dt.UTC)
    state = evaluate(rs, t, {"person:Sam": dt.datetime(9999, 12, 30, tzinfo=dt.UTC)})
    assert state.people == {"Sam"} and state.ends["person:Sam"] is None
    assert state.next_change == dt.datetime(2026, 3, 28, 22, 0, tzinfo=dt.UTC)
    assert evaluate(rs, state.next_change, {"person:Sam": t}).people == {"Sam", "Ann"}
