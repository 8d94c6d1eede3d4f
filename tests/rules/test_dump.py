"""dump → load is an identity for every Ruleset the loader accepts: the daemon persists the rules in
force this way, and a value that did not survive the trip would let a restart undo a cooling-off."""

from __future__ import annotations

import dataclasses
import datetime as dt

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from zerocontact.rules import RulesError, Ruleset, load
from zerocontact.rules.dump import dump
from zerocontact.rules.schema import SURFACES

ZONES = [
    "UTC",
    "Europe/Amsterdam",
    "Pacific/Auckland",
    "America/St_Johns",
    "Asia/Kathmandu",
    "Africa/Monrovia",
]


def toml_str(s: str) -> str:
    """A TOML basic string for any text (every control character and DEL escaped)."""
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


text = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=30)
handle = st.from_regex(r"[a-z][a-z0-9_]{3,14}", fullmatch=True)


@st.composite
def durations(draw: st.DrawFn) -> str:
    """Durations as people write them and as odd as the grammar allows: "90d", "1d12h", "0.00001s"."""
    kind = draw(st.sampled_from(["whole", "parts", "fraction"]))
    if kind == "whole":
        return f"{draw(st.integers(0, 36500))}{draw(st.sampled_from(['w', 'd', 'h', 'm', 'min', 's']))}"
    if kind == "parts":
        return f"{draw(st.integers(0, 400))}d{draw(st.integers(0, 23))}h{draw(st.integers(0, 59))}m"
    whole = draw(st.integers(0, 10**6))
    frac = draw(st.from_regex(r"[0-9]{1,9}", fullmatch=True))
    return f"{whole}.{frac}{draw(st.sampled_from(['s', 'h', 'd']))}"


@st.composite
def schedules(draw: st.DrawFn) -> list[str]:
    lines = [f"timezone = {toml_str(draw(st.sampled_from(ZONES)))}"]
    when = draw(st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2200, 12, 31)))
    form = draw(st.sampled_from(["none", "date", "local", "offset", "string"]))
    if form == "date":
        lines.append(f"until = {when.date().isoformat()}")
    elif form == "local":
        lines.append(f"until = {when.replace(microsecond=0).isoformat()}")
    elif form == "offset":
        minutes = draw(st.integers(-12 * 60, 14 * 60))
        lines.append(f"until = {when.replace(tzinfo=dt.timezone(dt.timedelta(minutes=minutes))).isoformat()}")
    elif form == "string":
        lines.append(f"until = {toml_str(when.date().isoformat())}")
    if form == "none" and draw(st.booleans()):  # until and for exclude each other
        lines.append(f"for = {toml_str(draw(durations()))}")
    if draw(st.booleans()):
        days = draw(st.sampled_from(["", "mon-fri ", "sat,sun ", "tue "]))
        a, b = draw(st.integers(0, 23)), draw(st.integers(0, 23))
        lines.append(f'windows = ["{days}{a:02d}:{draw(st.integers(0, 59)):02d}-{b:02d}:00"]')
    return lines


@st.composite
def rules_files(draw: st.DrawFn) -> str:
    lines = ["[lock]", f"cooling_off = {toml_str(draw(durations()))}", "[settings]"]
    if draw(st.booleans()):
        lines.append(f"timezone = {toml_str(draw(st.sampled_from(ZONES)))}")
    lines.append(f"show_name = {'true' if draw(st.booleans()) else 'false'}")
    lines.append(f"notifications = {'true' if draw(st.booleans()) else 'false'}")
    lines.append("instead = [" + ", ".join(toml_str(t) for t in draw(st.lists(text, max_size=3))) + "]")
    if draw(st.booleans()):
        lines.append(f"retention = {toml_str(draw(durations()))}")
    for i in range(draw(st.integers(1, 3))):
        lines += [
            "[[person]]",
            f"name = {toml_str(draw(text) + str(i))}",
            f'accounts = {{ instagram = "{draw(handle)}", x = ["{draw(handle)}"] }}',
            "block = ["
            + ", ".join(f'"{s}"' for s in draw(st.sets(st.sampled_from(SURFACES), min_size=1)))
            + "]",
            "search_terms = [" + ", ".join(toml_str(t) for t in draw(st.lists(text, max_size=2))) + "]",
            f"why = {toml_str(draw(text))}",
            *draw(schedules()),
        ]
    if draw(st.booleans()):
        lines += [
            "[[app]]",
            f"name = {toml_str(draw(text))}",
            f'match = ["{draw(st.sampled_from(["whatsapp", "telegram", "signal"]))}"]',
            f'action = "{draw(st.sampled_from(["terminate", "suspend"]))}"',
            f"grace = {draw(st.integers(0, 60))}",
            *draw(schedules()),
        ]
    return "\n".join(lines) + "\n"


def same(a: Ruleset, b: Ruleset) -> bool:
    return dataclasses.replace(a, source="") == dataclasses.replace(b, source="")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules_files())
def test_dump_then_load_is_an_identity(text_: str) -> None:
    try:
        rules = load(text_, "rules.toml")
    except RulesError:
        assume(False)  # only what the loader accepts must survive the trip
        raise
    again = load(dump(rules), "in-force.toml")
    assert same(again, rules), dump(rules)


def test_the_values_an_adversarial_run_found() -> None:
    """DEL in a string, a duration of microseconds, an until in a zone whose offset has seconds
    (Liberia kept -00:44:30 until 1972; Amsterdam's LMT is before 1970, which the loader refuses)."""
    text_ = (
        '[lock]\ncooling_off = "0.00001s"\n'
        '[[person]]\nname = "Sam"\naccounts = { instagram = "sam.example" }\n'
        'why = "a\u007fb"\ntimezone = "Africa/Monrovia"\nuntil = 1971-06-01\n'
        '[[person]]\nname = "Ann"\naccounts = { x = "ann" }\nfor = "0.00001s"\n'
    ).replace("\u007f", "\\u007f")
    rules = load(text_, "rules.toml")
    assert rules.lock.cooling_off == dt.timedelta(microseconds=10)
    assert rules.people[0].why == "a\x7fb"
    assert same(load(dump(rules), "in-force.toml"), rules)
