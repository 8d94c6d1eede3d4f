"""Commitment: each tightening applies at once, each loosening waits out the cooling-off."""

from __future__ import annotations

import datetime as dt

import pytest

from zerocontact.rules import Ruleset, load
from zerocontact.rules.commit import covers, decide, loosenings
from zerocontact.rules.dump import dump

T0 = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
BASE = """
[lock]
cooling_off = "24h"
[[person]]
name = "Sam"
accounts = { instagram = ["sam.example", "123456"], x = "samx" }
search_terms = ["Sam Example"]
windows = ["22:00-07:00"]
[[app]]
name = "night"
match = ["whatsapp", "telegram"]
windows = ["22:00-07:00"]
"""


def r(text: str) -> Ruleset:
    return load(text, "r.toml")


def keys(old: str, new: str) -> list[str]:
    return [c.key for c in loosenings(r(old), r(new), {}, T0)]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        # tightening or neutral: nothing waits
        (lambda s: s + '[[person]]\nname = "Ann"\naccounts = { x = "ann" }\n', []),
        (lambda s: s.replace('x = "samx"', 'x = ["samx", "samx2"]'), []),
        (lambda s: s.replace('windows = ["22:00-07:00"]\n[[app]]', 'windows = ["21:00-08:00"]\n[[app]]'), []),
        (lambda s: s.replace('windows = ["22:00-07:00"]\n[[app]]', "[[app]]"), []),  # always: wider
        (lambda s: s.replace('cooling_off = "24h"', 'cooling_off = "48h"'), []),
        (
            lambda s: s.replace(
                'match = ["whatsapp", "telegram"]', 'match = ["whatsapp", "telegram", "signal"]'
            ),
            [],
        ),
        # loosening: each change is its own pending item
        (lambda s: s.replace('[[person]]\nname = "Sam"', '[[person]]\nname = "Sammy"'), ["person:Sam"]),
        (lambda s: s.replace('x = "samx"', "x = []").replace("x = []", ""), ["person:Sam/account:x:samx"]),
        (lambda s: s.replace('search_terms = ["Sam Example"]', ""), ["person:Sam/search:Sam Example"]),
        (
            lambda s: s.replace('windows = ["22:00-07:00"]\n[[app]]', 'windows = ["23:00-06:00"]\n[[app]]'),
            ["person:Sam/schedule"],
        ),
        (
            lambda s: s.replace('windows = ["22:00-07:00"]\n[[app]]', "until = 2020-01-01\n[[app]]"),
            ["person:Sam/schedule"],
        ),
        (lambda s: s.replace('cooling_off = "24h"', 'cooling_off = "1h"'), ["lock:cooling_off"]),
        (
            lambda s: s.replace('match = ["whatsapp", "telegram"]', 'match = ["whatsapp"]'),
            ["app:night/match:telegram"],
        ),
        (lambda s: s.split("[[app]]")[0], ["app:night"]),
        # a full list without the feed: their posts would reach the home feed again, so it waits
        (
            lambda s: s.replace(
                'name = "Sam"\n',
                'name = "Sam"\nblock = ["profile", "stories", "posts", "presence", "search", "messages"]\n',
            ),
            ["person:Sam/surface:feed"],
        ),
        (
            lambda s: s.replace('name = "Sam"\n', 'name = "Sam"\nblock = ["profile", "stories"]\n'),
            [
                "person:Sam/surface:feed",
                "person:Sam/surface:messages",
                "person:Sam/surface:posts",
                "person:Sam/surface:presence",
                "person:Sam/surface:search",
            ],
        ),
    ],
)
def test_classification(edit: object, expected: list[str]) -> None:
    assert keys(BASE, edit(BASE)) == expected  # type: ignore[operator]


def test_untils_compare_by_end() -> None:
    a = r('[[person]]\nname = "S"\naccounts = { x = "s" }\nuntil = 2027-03-01\n')
    longer = r('[[person]]\nname = "S"\naccounts = { x = "s" }\nuntil = 2027-06-01\n')
    assert not loosenings(a, longer, {}, T0)
    assert [c.key for c in loosenings(longer, a, {}, T0)] == ["person:S/schedule"]
    forever = r('[[person]]\nname = "S"\naccounts = { x = "s" }\n')
    assert not loosenings(a, forever, {}, T0)


def test_loosening_waits_and_applies_only_if_still_asked() -> None:
    old, new = r(BASE), r(BASE.split("[[app]]")[0])
    d1 = decide(old, new, {}, {}, T0)
    assert [a.name for a in d1.effective.apps] == ["night"]  # still enforced
    assert d1.pending[0].due == T0 + dt.timedelta(hours=24)
    pending = {p.change.key: p.since for p in d1.pending}
    d2 = decide(d1.effective, new, pending, {}, T0 + dt.timedelta(hours=23, minutes=59))
    assert [a.name for a in d2.effective.apps] == ["night"] and d2.pending[0].since == T0
    d3 = decide(d2.effective, new, pending, {}, T0 + dt.timedelta(hours=24))
    assert not d3.effective.apps and [c.key for c in d3.released] == ["app:night"] and not d3.pending
    # the file went back before the delay passed: nothing to apply, nothing pending
    d4 = decide(d1.effective, old, pending, {}, T0 + dt.timedelta(hours=30))
    assert not d4.pending and not d4.released and [a.name for a in d4.effective.apps] == ["night"]


def test_tightening_and_loosening_in_one_edit() -> None:
    new = (
        BASE.replace('x = "samx"', 'tiktok = "samt"') + '[[person]]\nname = "Ann"\naccounts = { x = "ann" }\n'
    )
    d = decide(r(BASE), r(new), {}, {}, T0)
    sam = next(p for p in d.effective.people if p.name == "Sam")
    assert {(a.platform, a.value) for a in sam.accounts} == {
        ("instagram", "sam.example"),
        ("instagram", "123456"),
        ("x", "samx"),
        ("tiktok", "samt"),
    }
    assert {p.name for p in d.effective.people} == {"Sam", "Ann"}
    assert [p.change.key for p in d.pending] == ["person:Sam/account:x:samx"]


def test_shortening_cooling_off_itself_waits_the_old_delay() -> None:
    d = decide(r(BASE), r(BASE.replace('"24h"', '"1m"')), {}, {}, T0)
    assert d.effective.lock.cooling_off == dt.timedelta(hours=24)
    assert d.pending[0].due == T0 + dt.timedelta(hours=24)


def test_first_start_applies_the_file() -> None:
    d = decide(None, r(BASE), {}, {}, T0)
    assert d.effective == r(BASE) and not d.pending


def test_effective_rules_survive_a_round_trip_through_dump() -> None:
    d = decide(r(BASE), r(BASE.split("[[app]]")[0].replace('x = "samx"', "")), {}, {}, T0)
    again = load(dump(d.effective), "in-force.toml")
    assert again.people == d.effective.people and again.apps == d.effective.apps


def test_window_coverage_across_midnight() -> None:
    def s(*w: str) -> object:
        return (
            r(f'[[person]]\nname = "S"\naccounts = {{ x = "s" }}\nwindows = {list(w)!r}\n'.replace("'", '"'))
            .people[0]
            .schedule
        )

    assert covers(s("21:00-08:00"), s("22:00-07:00"), None, T0)  # type: ignore[arg-type]
    assert not covers(s("22:00-06:00"), s("22:00-07:00"), None, T0)  # type: ignore[arg-type]
    assert covers(s("mon-sun 00:00-23:59", "23:59-00:00"), s("22:00-07:00"), None, T0)  # type: ignore[arg-type]
    assert not covers(s("mon-fri 22:00-07:00"), s("22:00-07:00"), None, T0)  # type: ignore[arg-type]


def test_a_corrupt_pending_time_near_the_end_of_time_keeps_the_change_waiting() -> None:
    """``pending`` and ``started`` come from state files: a time in the year 9999 plus the
    cooling-off (or a ``for``) would overflow. The change waits for good instead of raising."""
    old = r(BASE + '[[person]]\nname = "Ann"\naccounts = { x = "annx" }\nfor = "90d"\n')
    new = r(BASE.split("[[app]]")[0])
    late = dt.datetime(9999, 12, 31, 12, tzinfo=dt.UTC)
    d = decide(old, new, {"app:night": late}, {"person:Ann": late}, T0)
    assert {p.change.key: p.due for p in d.pending}["app:night"] == dt.datetime.max.replace(tzinfo=dt.UTC)
    assert [a.name for a in d.effective.apps] == ["night"] and d.effective.person("Ann") is not None
