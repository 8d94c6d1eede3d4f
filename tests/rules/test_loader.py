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
    assert p == "r.toml:7:14: person \"Alex\", accounts.instgram: unknown platform; did you mean 'instagram'?"


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
    assert len(ps) == 7, joined  # the profile link is not one: its handle is taken (see below)
    assert "lock.cooling_off: 'soon' is not a duration" in joined
    assert "person \"Sam\", accounts.x: 'has space' is not a valid X" in joined
    assert "person \"Sam\", block[2]: unknown surface 'storys'; did you mean 'stories'?" in joined
    assert 'person "Sam", windows[1]' in joined
    assert 'person "Sam", colour: not a setting zerocontact knows' in joined
    assert "app \"everything\", match[1]: '*' would match every process" in joined
    assert "app \"everything\", action: unknown action 'explode'" in joined
    assert ':9:1: person "Sam", colour' in joined  # line and column of the key itself
    assert ps == sorted(ps, key=lambda p: int(p.split(":")[1]))  # in the order of the file


def test_syntax_error_has_line_and_column() -> None:
    (p,) = problems('[[person]]\nname = "Sam\n')
    assert p.startswith("r.toml:2:") and "a quoted text is not closed" in p


def test_not_utf8() -> None:
    (p,) = problems(b'[[person]]\nname = "J\xf6rg"\n')
    assert p.startswith("r.toml:2:10: ") and "not UTF-8 text" in p and "save the file as UTF-8" in p


def test_handle_with_slash_rejected() -> None:
    (p,) = problems('[[person]]\nname = "S"\naccounts = { instagram = "sam/example" }\n')
    assert "'sam/example' is not an Instagram handle or id (those have no /)" in p


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
            f"r.toml:4:1: person \"Sam\", for: '9999999d' {LONGEST}; {FOREVER}",
        ),
        (PERSON + 'for = "36526d"\n', "person \"Sam\", for: '36526d' is longer than 100 years"),
        (
            PERSON + f'for = "1{"0" * 400}d"\n',
            'person "Sam", for: \'1' + "0" * 36 + "...' is longer than 100 years",
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
            f'person "Sam", until: 9999-12-31 {YEARS}; {FOREVER}',
        ),
        (
            PERSON + "until = 3000-01-01T00:00:00Z\n",
            'person "Sam", until: 3000-01-01 is not between 1970 and 2999',
        ),
        (PERSON + "until = 0001-01-01\n", 'person "Sam", until: 0001-01-01 is not between 1970 and 2999'),
        (PERSON + 'until = "1969-12-31"\n', 'person "Sam", until: 1969-12-31 is not between 1970 and 2999'),
        (
            '[[app]]\nname = "w"\nmatch = ["whatsapp"]\nfor = "9999999d"\n',
            "app \"w\", for: '9999999d' is longer than 100 years",
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
    assert 'site "forum", handle:' in p and why in p and "so that matching can never hang" in p


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
    assert "site \"forum\", pages.profile[1]: '/members/*{handle}': put a * wildcard in its own segment" in p
    assert load(site(r"[a-z]+", "/*/members/{handle}")).sites[0].pages[0].path == "/*/members/{handle}"


@pytest.mark.parametrize(
    ("platform", "link", "kind", "value"),
    [
        ("instagram", "https://www.instagram.com/jordan.rivers/?igsh=abc123", "handle", "jordan.rivers"),
        ("tiktok", "https://www.tiktok.com/@jordan.rivers?_t=8abc&_r=1", "handle", "jordan.rivers"),
        ("x", "https://x.com/JordanRivers?s=21", "handle", "jordanrivers"),
        ("x", "twitter.com/jordanrivers", "handle", "jordanrivers"),
        (
            "facebook",
            "https://www.facebook.com/profile.php?id=100012345678&mibextid=ZbWKwL",
            "id",
            "100012345678",
        ),
        ("youtube", "https://youtube.com/@jordanrivers?si=xyz", "handle", "jordanrivers"),
        (
            "linkedin",
            "https://www.linkedin.com/in/jordan-rivers-123/?originalSubdomain=uk",
            "handle",
            "jordan-rivers-123",
        ),
        ("reddit", "https://www.reddit.com/user/jordan_r/", "handle", "jordan_r"),
        ("snapchat", "https://www.snapchat.com/add/jordan.r?share_id=x", "handle", "jordan.r"),
        ("threads", "https://www.threads.net/@jordan.rivers", "handle", "jordan.rivers"),
        ("telegram", "https://t.me/jordan_r", "handle", "jordan_r"),
        ("whatsapp", "https://wa.me/15551234567", "phone", "15551234567"),
    ],
)
def test_a_pasted_profile_link_gives_its_identifier(platform: str, link: str, kind: str, value: str) -> None:
    rs = load(f'[[person]]\nname = "Jordan"\naccounts = {{ {platform} = "{link}" }}\n', "r.toml")
    (acc,) = rs.people[0].accounts
    assert (acc.platform, acc.kind, acc.value) == (platform, kind, value)
    (note,) = rs.notes
    said = f"took the {kind} {value!r} from the link {link!r}"
    assert str(note).lower() == f'r.toml:3:14: person "jordan", accounts.{platform}: {said}'.lower()


@pytest.mark.parametrize(
    "link",
    [
        "https://www.instagram.com/p/ABC123/",
        "https://www.instagram.com/explore/",
        "https://example.org/jordan",
    ],
)
def test_a_link_that_names_no_profile_is_refused(link: str) -> None:
    (p,) = problems(f'[[person]]\nname = "Jordan"\naccounts = {{ instagram = "{link}" }}\n')
    assert "not to someone's Instagram profile" in p and "open their profile and copy its link" in p
