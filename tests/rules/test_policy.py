"""The policy over time: which blocks are in force at an instant, and when that next changes."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from zerocontact.rules import evaluate, load

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
