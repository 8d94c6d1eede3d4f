"""The built-in presets are compiled as they are asked for: a start compiles the platforms its rules
target (and those sharing their accounts), and every name, lookup and answer stays what it was."""

from __future__ import annotations

import pytest

from zerocontact.rules import Matcher, Request, load
from zerocontact.rules.platforms import Presets, compile_platform, presets


def fresh() -> Presets:
    """A Presets of its own (``presets()`` is cached for the process, and other tests compile it)."""
    return presets.__wrapped__()


def test_names_membership_and_shared_accounts_compile_nothing() -> None:
    p = fresh()
    assert {"instagram", "threads", "x", "reddit"} <= set(p) and len(p) == len(list(p))
    assert "threads" in p and "myspace" not in p
    assert p.accounts_from("threads") == ("instagram",) and p.accounts_from("x") == ()
    assert p._compiled == {}


def test_a_lookup_compiles_that_preset_once_and_as_before() -> None:
    p = fresh()
    ig = p["instagram"]
    assert p["instagram"] is ig and set(p._compiled) == {"instagram"}
    raw, origin = p._raw["instagram"]
    assert ig == compile_platform(raw, origin)
    with pytest.raises(KeyError):
        p["myspace"]
    assert p.get("myspace") is None


def test_a_matcher_compiles_the_targeted_platforms_and_judges_as_with_all_of_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sam on Instagram only: Instagram and Threads (which uses Instagram's accounts) are compiled,
    the other presets are not, and Threads still blocks Sam's profile there."""
    rules = load('[[person]]\nname = "Sam"\naccounts = { instagram = "sam.example" }\n')
    reference = Matcher(rules)  # on the process-wide presets, which other tests compiled whole
    p = fresh()
    monkeypatch.setattr("zerocontact.rules.matcher.presets", lambda: p)
    m = Matcher(rules)
    assert set(p._compiled) == {"instagram", "threads"}
    assert set(m.platforms) == {"instagram", "threads"}
    for url in ("https://www.instagram.com/sam.example/", "https://www.threads.com/@sam.example"):
        v = m.judge(Request("GET", url), frozenset({"Sam"}))
        assert v.block and v.person == "Sam", url
    assert m.platforms == reference.platforms
    assert all(m.identifiers(n) == reference.identifiers(n) for n in ("instagram", "threads"))
