"""Write a Ruleset back as TOML that ``load`` reads into an equal Ruleset.

The daemon persists the rules *in force* this way, so a restart cannot skip a pending cooling-off
by loosening the file while the service was stopped.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from json.encoder import encode_basestring

from .schema import App, Person, Ruleset, Schedule


def _s(value: str) -> str:
    # JSON escapes every control character TOML forbids in a basic string except DEL (U+007F).
    # encode_basestring is what json.dumps(value, ensure_ascii=False) returns for a string, without
    # its per-call encoder set-up: the daemon dumps the file's rules at every start (commitment).
    return encode_basestring(value).replace("\x7f", "\\u007f")


def _list(values: Iterable[str]) -> str:
    return "[" + ", ".join(map(_s, values)) + "]"


@functools.lru_cache(maxsize=256)  # rules repeat their durations ("90d" for every person)
def _dur(d: dt.timedelta) -> str:
    """Exact seconds as a decimal (never ``1e-05s``): the loader reads it back to the microsecond."""
    us = (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds
    whole, frac = divmod(us, 1_000_000)
    return _s(f"{whole}.{frac:06d}".rstrip("0").rstrip(".") + "s")


def _instant(t: dt.datetime) -> str:
    """An aware instant as TOML: in UTC, because TOML offsets are whole minutes and a historical
    zone's may not be (Amsterdam's LMT was +00:19:32); the instant, which is what counts, is kept."""
    return t.astimezone(dt.UTC).isoformat()


def _schedule(s: Schedule) -> list[str]:
    out = [f"timezone = {_s(s.timezone)}"]
    if s.until is not None:
        out.append(f"until = {_instant(s.until)}")
    if s.duration is not None:
        out.append(f"for = {_dur(s.duration)}")
    if s.windows:
        out.append(f"windows = {_list(w.text for w in s.windows)}")
    return out


def _person(p: Person) -> list[str]:
    accounts: dict[str, list[str]] = {}
    for a in p.accounts:
        accounts.setdefault(a.platform, []).append(f"{a.kind}:{a.value}")
    acc = ", ".join(f"{_s(k)} = {_list(v)}" for k, v in accounts.items())
    return [
        "[[person]]",
        f"name = {_s(p.name)}",
        f"accounts = {{ {acc} }}",
        f"block = {_list(sorted(p.block))}",
        f"search_terms = {_list(p.search_terms)}",
        f"apps = {_list(p.apps)}",
        f"why = {_s(p.why)}",
        *_schedule(p.schedule),
        "",
    ]


def _app(a: App) -> list[str]:
    return [
        "[[app]]",
        f"name = {_s(a.name)}",
        f"match = {_list(a.match)}",
        f"action = {_s(a.action)}",
        f"grace = {a.grace}",
        *_schedule(a.schedule),
        "",
    ]


def dump(rules: Ruleset) -> str:
    st = rules.settings
    lines = [
        "# zerocontact: the rules in force (written by the daemon; edit your own rules file instead)",
        "",
        "[lock]",
        f"cooling_off = {_dur(rules.lock.cooling_off)}",
        "",
        "[settings]",
    ]
    if st.timezone:
        lines.append(f"timezone = {_s(st.timezone)}")
    lines += [
        f"show_name = {'true' if st.show_name else 'false'}",
        f"instead = {_list(st.instead)}",
        f"bypass_detection = {'true' if st.bypass_detection else 'false'}",
        f"notifications = {'true' if st.notifications else 'false'}",
    ]
    if st.retention is not None:
        lines.append(f"retention = {_dur(st.retention)}")
    lines.append("")
    for site in rules.sites:
        pages: dict[str, list[str]] = {}
        for pg in site.pages:
            pages.setdefault(pg.surface, []).append(pg.path)
        lines += [
            "[[site]]",
            f"name = {_s(site.name)}",
            f"hosts = {_list(site.hosts)}",
            "pages = { " + ", ".join(f"{k} = {_list(v)}" for k, v in pages.items()) + " }",
            f"handle = {_s(site.handle)}",
            "",
        ]
    for p in rules.people:
        lines += _person(p)
    for a in rules.apps:
        lines += _app(a)
    return "\n".join(lines)
