"""The loader: real rules text in, a Ruleset or every problem (with file, line and key) out."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zerocontact.rules import RulesError, load
from zerocontact.rules.loader import from_document, parse_duration, parse_window
from zerocontact.rules.sample import sample


def problems(text: str | bytes) -> list[str]:
    with pytest.raises(RulesError) as e:
        load(text, "r.toml")
    return [str(p) for p in e.value.problems]


def test_sample_passes_check_as_written() -> None:
    rs = load(sample(), "sample.toml")
    assert rs.people[0].name == "Sam"
    assert {a.platform for a in rs.people[0].accounts} >= {"instagram", "x"}


def test_sample_documents_every_field() -> None:
    from dataclasses import fields

    from zerocontact.rules.schema import App, Lock, Person, Settings, Site

    text = sample()
    for cls in (Person, App, Lock, Settings, Site):
        for f in fields(cls):
            if "toml" in f.metadata:
                assert f.metadata["doc"] in text, f.name


def test_misspelt_platform_is_located_with_a_suggestion() -> None:
    text = (
        '[[person]]\nname = "Sam"\naccounts = { instagram = "sam.example" }\n\n'
        '[[person]]\nname = "Alex"\naccounts = { instgram = "alex" }\n'
    )
    (p,) = problems(text)
    assert p == "r.toml:7:14: person[2].accounts.instgram: unknown platform; did you mean 'instagram'?"


def test_every_problem_is_reported_at_once() -> None:
    text = """
[lock]
cooling_off = "soon"
[[person]]
name = "Sam"
accounts = { instagram = "https://instagram.com/sam.example/", x = "has space" }
block = ["profile", "storys"]
windows = ["25:00-07:00"]
colour = "red"
[[app]]
name = "everything"
match = ["*"]
action = "explode"
"""
    ps = problems(text)
    joined = "\n".join(ps)
    assert len(ps) == 8, joined
    assert "lock.cooling_off: 'soon' is not a duration" in joined
    assert "person[1].accounts.instagram: 'https://instagram.com/sam.example/' looks like a URL" in joined
    assert "write only the identifier, e.g. 'sam.example'" in joined
    assert "person[1].accounts.x: 'has space' is not a valid X" in joined
    assert "person[1].block[2]: unknown surface 'storys'; did you mean 'stories'?" in joined
    assert "person[1].windows[1]" in joined
    assert "person[1].colour: unknown key" in joined
    assert "app[1].match[1]: '*' would match every process" in joined
    assert "app[1].action: unknown action 'explode'" in joined
    assert ":9:1: person[1].colour" in joined  # line and column of the key itself


def test_syntax_error_has_line_and_column() -> None:
    (p,) = problems('[[person]]\nname = "Sam\n')
    assert p.startswith("r.toml:2:") and "not valid TOML" in p


def test_not_utf8() -> None:
    (p,) = problems(b'name = "\xff"')
    assert "not UTF-8" in p


def test_handle_with_slash_rejected() -> None:
    (p,) = problems('[[person]]\nname = "S"\naccounts = { instagram = "sam/example" }\n')
    assert "instagram" in p and "looks like a URL or path" in p


def test_duplicate_names_and_missing_accounts() -> None:
    ps = problems('[[person]]\nname = "Sam"\naccounts = { x = "a" }\n[[person]]\nname = "sam"\n')
    assert any("already used" in p for p in ps)
    assert any("needs accounts" in p for p in ps)


def test_ruleset_is_immutable() -> None:
    rs = load('[[person]]\nname = "Sam"\naccounts = { x = "a" }\n')
    with pytest.raises(AttributeError):
        rs.people = ()  # type: ignore[misc]


def test_account_forms() -> None:
    rs = load(
        '[[person]]\nname = "S"\naccounts = { x = ["@SamExample", "id:1234567"], instagram = "99887766" }\n'
    )
    accs = {(a.platform, a.value, a.kind) for a in rs.people[0].accounts}
    assert accs == {("x", "samexample", "handle"), ("x", "1234567", "id"), ("instagram", "99887766", "id")}


def test_schedules_parse_with_time_zones() -> None:
    rs = load(
        '[settings]\ntimezone = "Europe/Berlin"\n[[person]]\nname = "S"\naccounts = { x = "a" }\n'
        'until = 2027-03-01\nwindows = ["mon-fri 22:00-07:00", "sat,sun 10:00-18:00"]\n'
    )
    s = rs.people[0].schedule
    assert s.until == dt.datetime(2027, 3, 1, tzinfo=s.until.tzinfo if s.until else None)
    assert s.until is not None and s.until.utcoffset() == dt.timedelta(hours=1)
    assert [w.days for w in s.windows] == [frozenset(range(5)), frozenset({5, 6})]


def test_until_and_for_together_rejected() -> None:
    (p,) = problems('[[person]]\nname = "S"\naccounts = { x = "a" }\nuntil = 2027-01-01\nfor = "9d"\n')
    assert "either until or for" in p


def test_custom_site() -> None:
    rs = load(
        '[[site]]\nname = "forum"\nhosts = ["forum.example.org"]\n'
        'pages = { profile = ["/members/{handle}"] }\n'
        '[[person]]\nname = "S"\naccounts = { forum = "sam" }\n'
    )
    assert rs.sites[0].hosts == ("forum.example.org",)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90d", 90 * 86400), ("24h", 86400), ("1d12h", 129600), ("30m", 1800), ("1w", 604800)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("bad", ["", "soon", "10", "h", "-1d", "1d soon"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_window_across_midnight_and_days() -> None:
    w = parse_window("fri-mon 22:00-07:00")
    assert w.days == frozenset({4, 5, 6, 0}) and w.start > w.end


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_loader_only_raises_its_own_error_for_any_bytes(data: bytes) -> None:
    try:
        load(data, "fuzz.toml")
    except RulesError as e:
        assert e.problems and all(p.file == "fuzz.toml" for p in e.problems)
        assert not any("internal error" in p.message for p in e.problems), e


_keys = st.sampled_from(
    [
        "name",
        "accounts",
        "block",
        "until",
        "for",
        "windows",
        "match",
        "action",
        "x",
        "instagram",
        "cooling_off",
        "timezone",
        "hosts",
        "pages",
        "profile",
        "grace",
    ]
)
_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.dates()
    | st.datetimes(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["person", "app", "site", "lock", "settings", "other"]),
        st.lists(st.dictionaries(_keys, _values, max_size=5), max_size=3)
        | st.dictionaries(_keys, _values, max_size=4),
        max_size=4,
    )
)
def test_loader_only_raises_its_own_error_for_any_structure(doc: dict[str, Any]) -> None:
    try:
        from_document(doc, "fuzz.toml")
    except RulesError as e:
        assert e.problems and all(p.file == "fuzz.toml" for p in e.problems)
        assert not any("internal error" in p.message for p in e.problems), e


PERSON = '[[person]]\nname = "Sam"\naccounts = { x = "sam" }\n'
FOREVER = "to block with no end, leave out both until and for"
LONGEST = "is longer than 100 years, the longest duration zerocontact accepts"
YEARS = "is not between 1970 and 2999, the years zerocontact accepts"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            PERSON + 'for = "9999999d"\n',
            f"r.toml:4:1: person[1].for: '9999999d' {LONGEST}; {FOREVER}",
        ),
        (PERSON + 'for = "36526d"\n', "person[1].for: '36526d' is longer than 100 years"),
        (
            PERSON + f'for = "1{"0" * 400}d"\n',
            "person[1].for: '1" + "0" * 36 + "...' is longer than 100 years",
        ),
        (
            '[lock]\ncooling_off = "9999999d"\n' + PERSON,
            f"lock.cooling_off: '9999999d' {LONGEST}; a cooling-off is usually a day to a few weeks",
        ),
        (
            '[settings]\nretention = "5300w"\n' + PERSON,
            "settings.retention: '5300w' is longer than 100 years",
        ),
        (
            PERSON + "until = 9999-12-31\n",
            f"person[1].until: 9999-12-31 {YEARS}; {FOREVER}",
        ),
        (
            PERSON + "until = 3000-01-01T00:00:00Z\n",
            "person[1].until: 3000-01-01 is not between 1970 and 2999",
        ),
        (PERSON + "until = 0001-01-01\n", "person[1].until: 0001-01-01 is not between 1970 and 2999"),
        (PERSON + 'until = "1969-12-31"\n', "person[1].until: 1969-12-31 is not between 1970 and 2999"),
        (
            '[[app]]\nname = "w"\nmatch = ["whatsapp"]\nfor = "9999999d"\n',
            "app[1].for: '9999999d' is longer than 100 years",
        ),
    ],
)
def test_every_duration_and_date_is_bounded(text: str, expected: str) -> None:
    (p,) = problems(text)
    assert expected in p


def test_the_bounds_themselves_are_accepted() -> None:
    rs = load(
        '[lock]\ncooling_off = "36525d"\n[settings]\nretention = "36525d"\n' + PERSON + 'for = "36525d"\n'
    )
    assert rs.people[0].schedule.duration == rs.lock.cooling_off == dt.timedelta(days=36525)
    for until in ("1970-01-01", "2999-12-31", "2999-12-31T23:59:59-12:00"):
        s = load(PERSON + f"until = {until}\n").people[0].schedule
        assert s.until is not None and s.until.year in (1970, 2999)


def site(handle: str, page: str = "/members/{handle}") -> str:
    return (
        f'[[site]]\nname = "forum"\nhosts = ["forum.example.org"]\nhandle = {json.dumps(handle)}\n'
        f'pages = {{ profile = ["{page}"] }}\n'
    )


@pytest.mark.parametrize(
    ("handle", "why"),
    [
        ("(a+)+", "groups and alternation ( ) | are not allowed"),
        ("(a|aa)+$", "groups and alternation"),
        ("a|b", "groups and alternation"),
        ("(?i)[a-z]+", "groups and alternation"),
        ("[a-z]+[a-z0-9]*", "more than one variable count"),
        ("[a-z]?[a-z]{1,30}", "more than one variable count"),
        (r"([a-z])\1", "groups and alternation"),
        (r"[a-z]+\b", r"\b is not allowed"),
        ("x" * 201, "longer than 200 characters"),
    ],
)
def test_a_site_handle_that_could_backtrack_is_refused(handle: str, why: str) -> None:
    (p,) = problems(site(handle))
    assert "site[1].handle:" in p and why in p and "so that matching can never hang" in p


@pytest.mark.parametrize(
    "handle",
    [
        r"[A-Za-z0-9_.-]{1,64}",
        r"^[A-Za-z0-9_.-]{1,64}$",
        r"[a-z][a-z0-9_]{2,29}",
        r"\d+",
        r"u[0-9]{4}\.[a-z]+?",
        r"[]a-z]{3}x+",
        r"\w{1,30}",
    ],
)
def test_a_site_handle_in_the_safe_subset_is_accepted(handle: str) -> None:
    assert load(site(handle)).sites[0].handle == handle


def test_a_wildcard_next_to_the_handle_is_refused() -> None:
    (p,) = problems(site(r"[a-z]+", "/members/*{handle}"))
    assert "site[1].pages.profile[1]: '/members/*{handle}': put a * wildcard in its own segment" in p
    assert load(site(r"[a-z]+", "/*/members/{handle}")).sites[0].pages[0].path == "/*/members/{handle}"
