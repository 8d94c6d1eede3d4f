"""Read a rules file into a validated, immutable ``Ruleset``, collecting every problem at once.

Pure: takes the file's text (bytes) and its name; the caller does the reading. Never raises anything
but ``RulesError``, whatever the input bytes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import fractions
import functools
import gc
import json
import re
import zoneinfo
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any, TypeVar

import tomli

from .errors import Problem, RulesError
from .platforms import Platform, compile_template, presets, site_platform
from .schema import (
    APP_ACTIONS,
    DEFAULT_SURFACES,
    EARLIEST_DATE,
    LATEST_DATE,
    MAX_DURATION,
    SCHEDULE_DOCS,
    SURFACES,
    Account,
    App,
    Lock,
    Person,
    Ruleset,
    Schedule,
    Settings,
    Site,
    SitePattern,
    Window,
)

T = TypeVar("T")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|min|s)", re.IGNORECASE)
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "min": 60, "s": 1}
_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WINDOW = re.compile(r"^(?:(?P<days>[a-z,\- ]+?)\s+)?(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})$")
TOP_KEYS = {"lock": "table", "settings": "table", "person": "array", "app": "array", "site": "array"}


@functools.cache  # asked once per person: 10,000 people must not mean 10,000 field scans
def toml_keys(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.metadata["toml"]: f for f in dataclasses.fields(cls) if "toml" in f.metadata}


@functools.cache
def _entry_keys(cls: type) -> frozenset[str]:
    """The keys a [[person]] or [[app]] table may hold: its own and a schedule's (asked per entry)."""
    return frozenset(toml_keys(cls)) | frozenset(SCHEDULE_DOCS)


@functools.lru_cache(maxsize=1024)  # exact Fraction arithmetic is slow, and rules repeat "90d" per person
def parse_duration(text: str) -> dt.timedelta:
    """``"90d"``, ``"24h"``, ``"1d12h"``, ``"30m"`` → timedelta; ValueError with a hint otherwise."""
    s = text.strip().replace(" ", "")
    pos, total = 0, fractions.Fraction(0)
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            break
        # exact decimal arithmetic: "0.00001s" is 10 microseconds, never a float's neighbour
        total += fractions.Fraction(m.group(1)) * _UNITS[m.group(2).lower()]
        pos = m.end()
    if not s or pos != len(s):
        raise ValueError(f'{text!r} is not a duration; write e.g. "90d", "24h", "1d12h" or "30m"')
    if not total <= MAX_DURATION.total_seconds():  # also catches inf ("1" and 400 zeros, "d")
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise ValueError(f"{shown!r} is longer than 100 years, the longest duration zerocontact accepts")
    return dt.timedelta(microseconds=round(total * 1_000_000))


def _duration(ctx: _Ctx, key: str, value: Any, example: str, forever: str) -> dt.timedelta | None:
    """A bounded duration at ``key``; ``forever`` says how to write "no end" for this key."""
    if type(value) is not str and not _typed(ctx, key, value, str, f'a duration like "{example}"'):
        return None
    try:
        return parse_duration(value)
    except ValueError as e:
        ctx.error(key, f"{e}{'; ' + forever if 'longer than' in str(e) else ''}")
        return None


def parse_window(text: str) -> Window:
    m = _WINDOW.match(text.strip().lower())
    if not m:
        raise ValueError(f'{text!r} is not a window; write e.g. "22:00-07:00" or "mon-fri 09:00-17:00"')
    days: set[int] = set()
    for part in (m.group("days") or "mon-sun").replace(" ", "").split(","):
        if "-" in part:
            a, _, b = part.partition("-")
            if a not in _DAYS or b not in _DAYS:
                raise ValueError(f"{text!r}: unknown day in {part!r}; use mon, tue, wed, thu, fri, sat, sun")
            i, j = _DAYS.index(a), _DAYS.index(b)
            days.update(_DAYS.index(d) % 7 for d in (_DAYS * 2)[i : i + ((j - i) % 7) + 1])
        elif part in _DAYS:
            days.add(_DAYS.index(part))
        else:
            raise ValueError(f"{text!r}: unknown day {part!r}; use mon, tue, wed, thu, fri, sat, sun")
    times = []
    for t in (m.group("start"), m.group("end")):
        h, mi = (int(x) for x in t.split(":"))
        if h == 24 and mi == 0:
            h = 0
        if h > 23 or mi > 59:
            raise ValueError(f"{text!r}: {t} is not a time of day")
        times.append(dt.time(h, mi))
    if times[0] == times[1]:
        raise ValueError(f"{text!r}: a window needs different start and end times")
    return Window(times[0], times[1], frozenset(days), text.strip())


_ESCAPE_CLASSES = set("dDwWsS")
_QUANTIFIER = re.compile(r"\*|\+|\?|\{(\d*)(,?)(\d*)\}")
MAX_HANDLE_PATTERN = 200


def handle_pattern_problem(pattern: str) -> str | None:
    """Why a ``[[site]] handle`` regex is refused, or None if it is in the safe subset.

    Python's regex engine backtracks, so ``(a+)+`` takes exponential time on ``aaaa…!`` — in
    ``rules check`` and, worse, on the proxy's loop for a crafted URL. A handle is one run of
    characters, so the subset is: a sequence of single-character atoms (a literal, an escape like
    ``\\.``, ``\\d``, ``\\w``, ``.``, or a class ``[...]``), each with an optional count, at most one of
    them variable (``+``, ``*``, ``?``, ``{1,64}``), optionally between ``^`` and ``$``. With no
    groups, alternation, backreferences or lookarounds, and one variable count, a full match of a
    path segment takes linear time."""
    if len(pattern) > MAX_HANDLE_PATTERN:
        return f"longer than {MAX_HANDLE_PATTERN} characters"
    body = pattern[1:] if pattern.startswith("^") else pattern
    if body.endswith("$") and not body.endswith("\\$"):
        body = body[:-1]
    i, variable = 0, 0
    while i < len(body):
        c = body[i]
        if c == "[":
            j = i + 1
            if body[j : j + 1] == "^":
                j += 1
            if body[j : j + 1] == "]":
                j += 1  # a leading ] is a literal
            while j < len(body) and body[j] != "]":
                j += 2 if body[j] == "\\" else 1
            if j >= len(body):
                return "an unclosed character class"
            i = j + 1
        elif c == "\\":
            nxt = body[i + 1 : i + 2]
            if nxt.isalnum() and nxt not in _ESCAPE_CLASSES:
                return f"\\{nxt} is not allowed (use \\d, \\w, \\s or a class like [A-Za-z0-9_.])"
            i += 2
        elif c in "()|":
            return "groups and alternation ( ) | are not allowed"
        elif c in "*+?{^$":
            return f"{c!r} has nothing to repeat or is misplaced"
        else:
            i += 1
        m = _QUANTIFIER.match(body, i)
        if m:
            low, comma, high = m.groups() if m.group(0).startswith("{") else ("", "", "")
            fixed = m.group(0).startswith("{") and (not comma or low == high)
            variable += not fixed
            i = m.end()
            if body[i : i + 1] in ("?", "+"):
                i += 1  # lazy or possessive: the count is what matters
    if variable > 1:
        return "more than one variable count (+, *, ? or {m,n}); use one, like [A-Za-z0-9_.-]{1,64}"
    return None


class _Ctx:
    """Collects problems with their positions while walking the parsed document."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.notes: list[Problem] = []
        # the document's [[person]], [[app]] and [[site]] entries: a problem's label names its entry
        # by the entry's own name, looked up only when there is something to say
        self.entries: dict[str, Any] = {}
        self._pos: dict[str, tuple[int, int]] | None = None
        self._text = text
        self.schedules: dict[tuple[Any, ...], Schedule] = {}  # equal schedules share one object
        self.blocks: dict[tuple[str, ...], frozenset[str]] = {}  # and so do equal block lists

    def label(self, key: str) -> str:
        """``person[2].accounts.x`` as a person reads it: ``person "Jordan", accounts.x``."""
        m = re.match(r"(person|app|site)\[(\d+)\]\.?(.*)", key)
        if not m:
            return key
        name = self.name_of(m[1], int(m[2]))
        entry = f"{m[1]} {json.dumps(name, ensure_ascii=False)}" if name else f"{m[1]} {m[2]}"
        return f"{entry}, {m[3]}" if m[3] else entry

    def name_of(self, kind: str, n: int) -> str | None:
        """The name the ``n``-th (from 1) entry of ``kind`` gives itself, if it gives a usable one."""
        entries = self.entries.get(kind)
        item = entries[n - 1] if isinstance(entries, list) and 0 < n <= len(entries) else None
        name = item.get("name") if isinstance(item, dict) else None
        return name.strip() if isinstance(name, str) and name.strip() else None

    def where(self, key: str) -> tuple[int | None, int | None]:
        if self._pos is None:
            from .locate import locate

            self._pos = locate(self._text)
        k = key
        while k:
            if k in self._pos:
                return self._pos[k]
            shorter = re.sub(r"(\.[^.\[\]]+|\[\d+\])$", "", k)
            if shorter == k:
                break
            k = shorter  # fall back to the nearest enclosing key that the text shows
        return None, None

    def error(self, key: str, message: str) -> None:
        line, col = self.where(key)
        self.problems.append(Problem(self.file, key, message, line, col, self.label(key)))

    def note(self, key: str, message: str) -> None:
        """Something done for the user that they should know about (not a problem)."""
        line, col = self.where(key)
        self.notes.append(Problem(self.file, key, message, line, col, self.label(key)))

    def check(self, key: str, fn: Callable[[], T]) -> T | None:
        try:
            return fn()
        except ValueError as e:
            self.error(key, str(e))
            return None


# Names people use that are not (or no longer) the file's own, with the name to write instead.
OLD_PLATFORM_NAMES = {
    "twitter": ("x", "Twitter is called X now"),
    "fb": ("facebook", "write the whole name"),
    "ig": ("instagram", "write the whole name"),
    "insta": ("instagram", "write the whole name"),
    "yt": ("youtube", "write the whole name"),
    "snap": ("snapchat", "write the whole name"),
    "wa": ("whatsapp", "write the whole name"),
    "tg": ("telegram", "write the whole name"),
    "thread": ("threads", "the platform is Threads"),
}
OLD_SURFACE_NAMES = {
    "online": ("presence", "online status is called presence"),
    "last_seen": ("presence", "last seen is part of presence"),
    "status": ("presence", "online status is called presence"),
    "active": ("presence", "'active now' is part of presence"),
    "activity": ("presence", "activity status is part of presence"),
    "dm": ("messages", "direct messages are called messages"),
    "dms": ("messages", "direct messages are called messages"),
    "chat": ("messages", "chats are called messages"),
    "message": ("messages", ""),
    "story": ("stories", ""),
    "post": ("posts", ""),
    "reels": ("posts", "reels, videos and other tabs of their posts are posts"),
    "videos": ("posts", "reels, videos and other tabs of their posts are posts"),
    "feeds": ("feed", ""),
    "timeline": ("feed", "their entries in your timelines, trays and suggestions are the feed"),
    "home": ("feed", "their entries in your home feed, trays and suggestions are the feed"),
    "mute": ("feed", "keeping them out of your feeds (what mute does) is the feed surface"),
    "suggestions": ("feed", "their entries in your feeds, trays and suggestions are the feed"),
}


def _suggest(word: str, choices: list[str], old: dict[str, tuple[str, str]] | None = None) -> str:
    if old and word.lower() in old and old[word.lower()][0] in choices:
        new, why = old[word.lower()]
        return f"; {why + ': ' if why else ''}write {new!r}"
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(choices))}"


def _unknown_keys(ctx: _Ctx, where: str, table: dict[str, Any], allowed: Collection[str]) -> None:
    known = allowed if isinstance(allowed, frozenset) else frozenset(allowed)
    if known.issuperset(table):
        return  # every key known: the common case, once per entry
    for k in table:
        if k not in known:
            ctx.error(
                f"{where}.{k}" if where else k,
                "not a setting zerocontact knows" + _suggest(k, sorted(known)),
            )


_PLAIN_WHAT = {
    "a string": 'text in quotes, like "this"',
    "a table": "a table: a [section] of its own, or { key = value }",
    "a list of strings": 'a list of texts in quotes, like ["this", "that"]',
}


def plain_value(value: Any) -> str:
    """A TOML value as a person would name it: 'the text "yes"', 'the number 3', 'a list'."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the text {json.dumps(value, ensure_ascii=False)}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return f"the date or time {value.isoformat()}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return "something else"


def _typed(ctx: _Ctx, key: str, value: Any, types: type | tuple[type, ...], what: str) -> bool:
    if type(value) is types:  # the common case, asked ~40 times per person: no tuple, no bool check
        return True
    # bool is an int in Python; a TOML boolean is never a number here.
    wanted = types if isinstance(types, tuple) else (types,)
    if (isinstance(value, bool) and bool not in wanted) or not isinstance(value, types):
        what = _PLAIN_WHAT.get(what, what)
        if bool in wanted and isinstance(value, str):
            # show_name = "yes": the words TOML takes are true and false, and without quotes
            yes = value.strip().lower() in ("yes", "y", "on", "true", "1")
            ctx.error(key, f"write {'true' if yes else 'false'} (no quotes), not {plain_value(value)}")
        else:
            ctx.error(key, f"should be {what}, not {plain_value(value)}")
        return False
    return True


_ONLY_STR = frozenset((str,))


def _str_list(ctx: _Ctx, key: str, value: Any, what: str = "a list of strings") -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if type(value) is list and _ONLY_STR.issuperset(map(type, value)):
        return tuple(value)  # the common case, several times per person: no key per item
    if not _typed(ctx, key, value, list, what):
        return ()
    out = []
    for i, v in enumerate(value):
        if _typed(ctx, f"{key}[{i + 1}]", v, str, "a string"):
            out.append(v)
    return tuple(out)


def _timezone(ctx: _Ctx, key: str, value: Any, default: str) -> str:
    if value is None:
        return default
    if not _typed(ctx, key, value, str, 'a time zone name like "Europe/Berlin"'):
        return default
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        ctx.error(key, f'unknown time zone {value!r}; use a name like "Europe/Berlin" or "UTC"')
        return default
    return str(value)


def _until(ctx: _Ctx, key: str, value: Any, tz: str) -> dt.datetime | None:
    zone = zoneinfo.ZoneInfo(tz)
    if isinstance(value, str):
        try:
            value = (
                dt.datetime.fromisoformat(value)
                if "T" in value or " " in value.strip()
                else (dt.date.fromisoformat(value))
            )
        except ValueError:
            ctx.error(key, f"{value!r} is not a date; write 2027-03-01 or 2027-03-01T18:00")
            return None
    day = value.date() if isinstance(value, dt.datetime) else value
    if isinstance(day, dt.date) and not EARLIEST_DATE <= day <= LATEST_DATE:
        ctx.error(
            key,
            f"{day.isoformat()} is not between {EARLIEST_DATE.year} and {LATEST_DATE.year}, the years "
            "zerocontact accepts; to block with no end, leave out both until and for",
        )
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=zone)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(0), zone)
    ctx.error(key, f"expected a date or date-time like 2027-03-01, got {value!r}")
    return None


def _schedule(ctx: _Ctx, where: str, table: dict[str, Any], default_tz: str) -> Schedule:
    tz = (
        _timezone(ctx, f"{where}.timezone", table["timezone"], default_tz)
        if "timezone" in table
        else default_tz
    )
    until = _until(ctx, f"{where}.until", table["until"], tz) if "until" in table else None
    duration = None
    if "for" in table:
        duration = _duration(
            ctx, f"{where}.for", table["for"], "90d", "to block with no end, leave out both until and for"
        )
        if duration is not None and duration <= dt.timedelta(0):
            ctx.error(f"{where}.for", "must be longer than zero")
    if "until" in table and "for" in table:
        ctx.error(f"{where}.for", "use either until or for, not both")
    windows: list[Window] = []
    if "windows" in table:
        for i, w in enumerate(_str_list(ctx, f"{where}.windows", table["windows"])):
            win = ctx.check(f"{where}.windows[{i + 1}]", lambda w=w: parse_window(w))  # type: ignore[misc]
            if win:
                windows.append(win)
    # Schedules are immutable and rules repeat them ("90d" for everyone): one object for each
    key = (until, duration, tuple(windows), tz)
    sched = ctx.schedules.get(key)
    if sched is None:
        sched = ctx.schedules[key] = Schedule(until=until, duration=duration, windows=key[2], timezone=tz)
    return sched


def _accounts(ctx: _Ctx, where: str, value: Any, platforms: _Platforms) -> tuple[Account, ...]:
    if type(value) is not dict and not _typed(
        ctx, where, value, dict, "a table of platform = handle or id (or a list of them)"
    ):
        return ()
    if not value:
        ctx.error(where, 'list at least one account, e.g. { instagram = "sam.example" }')
    out: list[Account] = []
    for plat, given in value.items():
        platform = platforms.named(plat)
        if platform is None:
            known = _suggest(plat, list(platforms), OLD_PLATFORM_NAMES)
            ctx.error(f"{where}.{plat}", "unknown platform" + known)
            continue
        if type(given) is str:  # the common case: one handle or id, its key the platform's
            acc = _account(ctx, f"{where}.{plat}", platform, given)
            if acc:
                out.append(acc)
            continue
        key = f"{where}.{plat}"
        for i, v in enumerate(_str_list(ctx, key, given, "a handle or id, or a list of them")):
            acc = _account(ctx, f"{key}[{i + 1}]" if isinstance(given, list) else key, platform, v)
            if acc:
                out.append(acc)
    return tuple(out)


_PHONE = re.compile(r"\+?[0-9][0-9 ().-]{5,}")


def _account(ctx: _Ctx, key: str, platform: Platform, given: str) -> Account | None:
    v = given.strip()
    forced = None
    kinds = platform.kinds
    if ":" in v and v.split(":", 1)[0] in kinds:
        forced, v = v.split(":", 1)
    if v[:1] == "@":
        v, forced = v[1:], forced or ("handle" if "handle" in kinds else None)
    if "phone" in kinds and forced in (None, "phone") and _PHONE.fullmatch(v):
        v, forced = re.sub(r"[^0-9]", "", v), "phone"  # "+1 (555) 123-4567" as links carry it: digits
    if "/" in v:  # a link ("://" too)
        return _account_from_link(ctx, key, platform, given, v)
    if forced:
        rx = dict(platform.ids)[forced]
        if not rx.fullmatch(v):
            ctx.error(key, f"{given!r} is not a valid {platform.title} {forced}")
            return None
        return Account(platform.name, v.lower(), forced, given)
    kind = platform.classify(v)
    if kind is None:
        ctx.error(key, f"{given!r} is not a valid {platform.title} {' or '.join(k for k, _ in platform.ids)}")
        return None
    return Account(platform.name, v.lower(), kind, given)


def profile_identifier(platform: Platform, link: str) -> str | None:
    """The identifier in a link to someone's profile on ``platform`` (what a share button copies,
    tracking query and all: ``https://www.instagram.com/jordan.rivers/?igsh=abc123`` →
    ``jordan.rivers``), read with the preset's own profile-page patterns; None for any other link."""
    from .request import Request

    url = link if "://" in link else f"https://{link}"
    try:
        req = Request("GET", url)
        host, segs, query = req.host, req.segments, req.query
    except ValueError:
        return None
    if not platform.covers(host):
        return None
    ids = dict(platform.ids)

    def names_them(surface: str, kind: str | None) -> bool:
        # a profile page's identifier, or a chat link's (wa.me/<number>, m.me/<handle>) when it is one
        # of the person's own kinds (a conversation's thread id is not)
        if kind is None or kind in ("any", "url", "query"):
            return False
        return surface == "profile" or kind in ids

    for pat in platform.patterns:
        if pat.surface not in ("profile", "messages") or pat.kind != "page":
            continue
        if pat.path is None or len(pat.path) != len(segs):
            continue
        if pat.form or pat.json or pat.variables or pat.operation or pat.require:
            continue
        found: str | None = None
        for i, (t, seg) in enumerate(zip(pat.path, segs, strict=True)):
            got = t.capture(seg)
            if got is None or (i == 0 and t.kind and seg.lower() in platform.reserved):
                break
            if names_them(pat.surface, t.kind):
                found = got
        else:
            for name, t in pat.query:
                for raw in query.get(name, []):
                    got = t.capture(raw)
                    if got and names_them(pat.surface, t.kind):
                        found = got
            if found:
                return found
    return None


def _account_from_link(ctx: _Ctx, key: str, platform: Platform, given: str, v: str) -> Account | None:
    """A pasted link: a profile link gives its identifier (said in a note); anything else is refused
    with what to write instead."""
    ident = profile_identifier(platform, v)
    if ident is not None:
        acc = _account(ctx, key, platform, ident)
        if acc is not None:
            ctx.note(key, f"took the {acc.kind} {ident!r} from the link {given!r}")
        return acc
    example = platform.examples.get("handle") or next(iter(platform.examples.values()), "")
    how = (
        f"open their profile and copy its link, or write just the {' or '.join(k for k, _ in platform.ids)}"
        + (f", e.g. {example!r}" if example else "")
    )
    host = v.split("://", 1)[-1].split("/", 1)[0].lower()
    if "." in host and not platform.covers(host):
        owner = next((p for p in presets().values() if p.covers(host)), None)
        if owner is not None:
            ctx.error(
                key,
                f"{given!r} is a link to {owner.title}, not {platform.title}: put it under "
                f"{owner.name} = … instead",
            )
            return None
    if "://" in v or "." in host:
        ctx.error(key, f"{given!r} is a link, but not to someone's {platform.title} profile; {how}")
    else:
        ctx.error(key, f"{given!r} is not {_a(platform.title)} handle or id (those have no /); {how}")
    return None


def _a(title: str) -> str:
    return ("an " if title[:1].lower() in "aeiou" or title == "X" else "a ") + title


def _table(ctx: _Ctx, where: str, value: Any) -> dict[str, Any] | None:
    return value if _typed(ctx, where, value, dict, "a table") else None


_SURFACE_SET = frozenset(SURFACES)


def _person(ctx: _Ctx, where: str, raw: dict[str, Any], plats: _Platforms, tz: str) -> Person | None:
    # Asked for each of (maybe) 10,000 people: each check's common case is tried first, cheaply.
    if not _entry_keys(Person).issuperset(raw):
        _unknown_keys(ctx, where, raw, _entry_keys(Person))
    name = raw.get("name")
    if name is None:
        ctx.error(where, "every person needs a name")
    elif _typed(ctx, f"{where}.name", name, str, "a string") and not name.strip():
        ctx.error(f"{where}.name", "must not be empty")
    if "accounts" in raw:
        accounts = _accounts(ctx, f"{where}.accounts", raw["accounts"], plats)
    else:
        ctx.error(where, 'needs accounts, e.g. accounts = { instagram = "sam.example" }')
        accounts = ()
    block = DEFAULT_SURFACES
    if "block" in raw:
        items = _str_list(ctx, f"{where}.block", raw["block"])
        known = ctx.blocks.get(items)
        if known is not None:
            block = known  # a list already read and found good: the same surfaces, one object
        else:
            block = frozenset(items)
            if not block <= _SURFACE_SET:
                for i, s in enumerate(items):
                    if s not in _SURFACE_SET:
                        ctx.error(
                            f"{where}.block[{i + 1}]",
                            f"unknown surface {s!r}" + _suggest(s, list(SURFACES), OLD_SURFACE_NAMES),
                        )
                block &= _SURFACE_SET
            elif items:
                ctx.blocks[items] = block
            if not block and not items:
                ctx.error(
                    f"{where}.block",
                    "an empty list blocks nothing; leave block out to block every surface",
                )
    terms: tuple[str, ...] = ()
    if "search_terms" in raw:
        terms = tuple(t.strip() for t in _str_list(ctx, f"{where}.search_terms", raw["search_terms"]))
        for i, t in enumerate(terms):
            if len(t) < 3:
                ctx.error(
                    f"{where}.search_terms[{i + 1}]",
                    f"{t!r} is too short: blocking searches for it would also stop searches for many "
                    "other people and things; write at least 3 letters",
                )
    apps: tuple[str, ...] = ()
    if "apps" in raw:
        apps = _str_list(ctx, f"{where}.apps", raw["apps"])
        if apps:
            _app_entries(ctx, f"{where}.apps", apps)
    why = raw.get("why", "")
    if type(why) is not str:
        _typed(ctx, f"{where}.why", why, str, "a string")
    sched = _schedule(ctx, where, raw, tz)
    if not isinstance(name, str):
        return None
    return Person(
        name=name.strip(),
        accounts=accounts,
        block=block,
        search_terms=terms,
        apps=apps,
        why=why if isinstance(why, str) else "",
        schedule=sched,
    )


def _app_entries(ctx: _Ctx, key: str, entries: tuple[str, ...]) -> None:
    """Validate ``[[app]].match`` / ``[[person]].apps``: known presets, globs that name an app.

    Refused: unknown preset names, globs that match (nearly) every process, and globs that match a
    protected process (init, the session, shells, terminals, Python, zerocontact itself); the list
    and the rules are ``rules.apps.PROTECTED`` and ``rules.apps.check_entry``.
    """
    from .apps import check_entry

    for i, m in enumerate(entries):
        if not m.strip("*? ") or m.strip() in {"*", "**"}:
            ctx.error(f"{key}[{i + 1}]", f"{m!r} would match every process; name the app")
            continue
        problem = check_entry(m)
        if problem:
            ctx.error(f"{key}[{i + 1}]", problem)


def _app(ctx: _Ctx, where: str, raw: dict[str, Any], tz: str) -> App | None:
    _unknown_keys(ctx, where, raw, _entry_keys(App))
    name = raw.get("name")
    if name is None:
        ctx.error(where, "every app rule needs a name")
    else:
        _typed(ctx, f"{where}.name", name, str, "a string")
    match = _str_list(ctx, f"{where}.match", raw.get("match", []))
    if "match" not in raw:
        ctx.error(where, 'needs match, e.g. match = ["whatsapp"]')
    _app_entries(ctx, f"{where}.match", match)
    action = raw.get("action", "terminate")
    if _typed(ctx, f"{where}.action", action, str, "a string") and action not in APP_ACTIONS:
        ctx.error(f"{where}.action", f"unknown action {action!r}" + _suggest(action, list(APP_ACTIONS)))
    grace = raw.get("grace", 3.0)
    if _typed(ctx, f"{where}.grace", grace, (int, float), "a number of seconds") and not 0 <= grace <= 60:
        ctx.error(f"{where}.grace", "must be between 0 and 60 seconds")
    sched = _schedule(ctx, where, raw, tz)
    if not isinstance(name, str):
        return None
    return App(
        name=name,
        match=match,
        action=str(action),
        grace=float(grace) if not isinstance(grace, bool) and isinstance(grace, (int, float)) else 3.0,
        schedule=sched,
    )


def _site(ctx: _Ctx, where: str, raw: dict[str, Any]) -> tuple[Site, Platform] | None:
    from .platforms import PresetError

    _unknown_keys(ctx, where, raw, list(toml_keys(Site)))
    name = raw.get("name")
    ok = _typed(ctx, f"{where}.name", name, str, 'a name like "myforum"') if name is not None else False
    if name is None:
        ctx.error(where, "every site needs a name")
    elif ok and (not re.fullmatch(r"[a-z][a-z0-9_-]*", name) or name in presets()):
        ctx.error(f"{where}.name", f"{name!r}: use lower-case letters and digits, not a preset's name")
        ok = False
    hosts = _str_list(ctx, f"{where}.hosts", raw.get("hosts", []))
    for i, h in enumerate(hosts):
        if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", h.lower()):
            ctx.error(f"{where}.hosts[{i + 1}]", f"{h!r} is not a host name like forum.example.org")
    if not hosts:
        ctx.error(where, 'needs hosts, e.g. hosts = ["forum.example.org"]')
    handle = raw.get("handle", r"[A-Za-z0-9_.-]{1,64}")
    if _typed(ctx, f"{where}.handle", handle, str, "a regular expression"):
        try:
            re.compile(handle)
        except re.error as e:
            ctx.error(f"{where}.handle", f"not a valid regular expression: {e}")
            handle = r"[A-Za-z0-9_.-]{1,64}"
        else:
            problem = handle_pattern_problem(handle)
            if problem:
                ctx.error(
                    f"{where}.handle",
                    f"{handle!r}: {problem}. A handle pattern is a run of characters, like "
                    "'[A-Za-z0-9_.-]{1,64}', so that matching can never hang",
                )
                handle = r"[A-Za-z0-9_.-]{1,64}"
    pages: list[SitePattern] = []
    raw_pages = _table(ctx, f"{where}.pages", raw.get("pages", {})) or {}
    if not raw_pages:
        ctx.error(where, 'needs pages, e.g. pages = { profile = ["/members/{handle}"] }')
    for surface, paths in raw_pages.items():
        key = f"{where}.pages.{surface}"
        if surface not in SURFACES:
            ctx.error(
                key, f"unknown surface {surface!r}" + _suggest(surface, list(SURFACES), OLD_SURFACE_NAMES)
            )
            continue
        for i, p in enumerate(_str_list(ctx, key, paths)):
            if "{handle}" not in p or not p.startswith("/"):
                ctx.error(f"{key}[{i + 1}]", f"{p!r}: a path starting with / that holds {{handle}}")
                continue
            if any("{handle}" in seg and "*" in seg for seg in p.split("/")):
                # ".*" and the handle's own count in one segment would backtrack quadratically
                ctx.error(
                    f"{key}[{i + 1}]", f"{p!r}: put a * wildcard in its own segment, not next to {{handle}}"
                )
                continue
            try:
                compile_template(p, {"handle": handle}, key)
            except ValueError as e:
                ctx.error(f"{key}[{i + 1}]", str(e))
                continue
            pages.append(SitePattern(surface, p))
    if not ok or not isinstance(name, str):
        return None
    site = Site(name=name, hosts=tuple(h.lower() for h in hosts), pages=tuple(pages), handle=handle)
    try:
        return site, site_platform(site)
    except PresetError as e:
        ctx.error(where, str(e))
        return None


def load(
    data: bytes | str,
    file: str = "rules.toml",
    default_timezone: str = "UTC",
    *,
    document: dict[str, Any] | None = None,
) -> Ruleset:
    """Validate a rules file's text and build its ``Ruleset``; raise ``RulesError`` listing every problem.

    ``document`` is ``data`` already parsed as TOML (the daemon parses a big file in a child process
    while it starts); then only the validation runs here, with ``data`` to locate problems."""
    # The cyclic GC would walk the whole heap several times while 10,000 people's objects are made
    # (none of them garbage): paused, loading stays linear in the size of the file.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _load(data, file, default_timezone, document)
    except RulesError:
        raise
    except Exception as e:  # a bug must still surface as a clean, located message, never a traceback
        raise RulesError([Problem(file, "", f"internal error while reading the rules: {e!r}")]) from e
    finally:
        if paused:
            gc.enable()


def _load(data: bytes | str, file: str, default_timezone: str, document: dict[str, Any] | None) -> Ruleset:
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            before = data[: e.start]
            line = before.count(b"\n") + 1
            col = len(before.rpartition(b"\n")[2].decode("utf-8", "replace")) + 1
            raise RulesError(
                [
                    Problem(
                        file,
                        "",
                        "a character here is not UTF-8 text (the file may have been saved in another "
                        "encoding); save the file as UTF-8, or retype the character",
                        line,
                        col,
                    )
                ]
            ) from e
    else:
        text = data
    if document is not None:
        return from_document(document, file, text, default_timezone)
    try:
        doc = tomli.loads(text)
    except tomli.TOMLDecodeError as e:
        at_line, at_col = getattr(e, "lineno", None), getattr(e, "colno", None)
        msg = getattr(e, "msg", str(e))
        raise RulesError([Problem(file, "", toml_words(msg), at_line, at_col)]) from e
    return from_document(doc, file, text, default_timezone)


def toml_words(msg: str) -> str:
    """tomli's message about the file's layout, in words a person can act on."""
    if msg.startswith(("Illegal character", "Unterminated string")):
        return 'a quoted text is not closed: add the closing quote (") before the end of the line'
    m = re.fullmatch(r"Cannot declare \((.*)\) twice", msg)
    if m:
        name = ".".join(part.strip(" '\"") for part in m[1].split(",") if part.strip())
        if name in ("person", "app", "site"):
            return f"[{name}] appears twice; for more than one, write [[{name}]] (two brackets) above each"
        return f"[{name}] appears twice; each [section] may appear only once (join the two)"
    if msg == "Cannot overwrite a value":
        return "this is set twice (or written over); keep one of them"
    m = re.fullmatch(r"Duplicate inline table key '(.*)'", msg)
    if m:
        return f"{m[1]!r} appears twice inside the same {{ … }}; keep one"
    words = {
        "Expected '=' after a key in a key/value pair": 'a setting needs = and a value, like name = "Sam"',
        "Invalid value": (
            'the value after = is not one the file can hold: text needs quotes ("like this"); '
            "true, false, numbers and dates do not"
        ),
        "Invalid statement": "this line is not a setting: write key = value, a [section], or # a comment",
        "Unclosed array": "a list is not closed: add the ] that ends it",
        "Unclosed inline table": "a { … } is not closed on its line: add the } before the line ends",
        "Invalid initial character for a key part": (
            "a setting's name may use letters, digits, - and _ only (put anything else in quotes)"
        ),
        "Unescaped '\\' in a string": (
            "a backslash in double quotes starts an escape: write \\\\ or use single quotes ('…')"
        ),
        "Invalid date or datetime": "not a real date or time; write e.g. 2027-03-01 or 2027-03-01T18:00",
        "Invalid hex value": "a \\u escape needs four hexadecimal digits",
    }
    if msg in words:
        return words[msg]
    if msg.startswith(("Cannot mutate immutable namespace", "Cannot redefine namespace")):
        return "this table was already written in full (with { … } or as its own [section]); add to it there"
    m = re.fullmatch(r"Expected '(.*)'", msg)
    if m:
        return f"a {m[1]!r} is missing here"
    if msg.startswith("Found invalid character"):
        return "an unexpected character here; check the quotes and brackets around it"
    return f"the file cannot be read from here ({msg})"


def from_document(doc: dict[str, Any], file: str, text: str = "", default_timezone: str = "UTC") -> Ruleset:
    """Validate an already parsed document (``text`` only serves to locate problems)."""
    ctx = _Ctx(file, text)
    ctx.entries = doc
    _unknown_keys(ctx, "", doc, list(TOP_KEYS))

    settings_raw = _table(ctx, "settings", doc.get("settings", {})) or {}
    _unknown_keys(ctx, "settings", settings_raw, list(toml_keys(Settings)))
    tz = _timezone(ctx, "settings.timezone", settings_raw.get("timezone"), default_timezone)
    retention = None
    if "retention" in settings_raw:
        retention = _duration(
            ctx,
            "settings.retention",
            settings_raw["retention"],
            "365d",
            "to keep attempts for as long as the log exists, leave retention out",
        )
    show_name = settings_raw.get("show_name", False)
    _typed(ctx, "settings.show_name", show_name, bool, "true or false")
    bypass = settings_raw.get("bypass_detection", True)
    _typed(ctx, "settings.bypass_detection", bypass, bool, "true or false")
    notifications = settings_raw.get("notifications", True)
    _typed(ctx, "settings.notifications", notifications, bool, "true or false")
    settings = Settings(
        timezone=tz,
        show_name=show_name is True,
        instead=_str_list(ctx, "settings.instead", settings_raw.get("instead", [])),
        retention=retention,
        bypass_detection=bypass is not False,
        notifications=notifications is not False,
    )

    lock_raw = _table(ctx, "lock", doc.get("lock", {})) or {}
    _unknown_keys(ctx, "lock", lock_raw, list(toml_keys(Lock)))
    lock = Lock()
    if "cooling_off" in lock_raw:
        c = _duration(
            ctx,
            "lock.cooling_off",
            lock_raw["cooling_off"],
            "24h",
            "a cooling-off is usually a day to a few weeks",
        )
        if c is not None:
            lock = Lock(cooling_off=c)

    plats = _Platforms(presets())
    sites: list[Site] = []
    for i, raw in enumerate(_array(ctx, doc, "site")):
        got = _site(ctx, f"site[{i + 1}]", raw)
        if got:
            if got[0].name in plats:
                ctx.error(f"site[{i + 1}].name", f"{got[0].name!r} is defined twice")
            sites.append(got[0])
            plats.sites[got[0].name] = got[1]

    people: list[Person] = []
    names: set[str] = set()  # lower-cased: a set, so 10,000 people are checked in linear time
    for i, raw in enumerate(_array(ctx, doc, "person")):
        p = _person(ctx, f"person[{i + 1}]", raw, plats, tz)
        if p:
            if p.name.lower() in names:
                ctx.error(f"person[{i + 1}].name", f"{p.name!r} is already used by another person")
            names.add(p.name.lower())
            people.append(p)
    apps: list[App] = []
    for i, raw in enumerate(_array(ctx, doc, "app")):
        a = _app(ctx, f"app[{i + 1}]", raw, tz)
        if a:
            apps.append(a)
    if ctx.problems:
        raise RulesError(ctx.problems)
    return Ruleset(
        source=file,
        lock=lock,
        settings=settings,
        people=tuple(people),
        apps=tuple(apps),
        sites=tuple(sites),
        notes=tuple(ctx.notes),
    )


class _Platforms(Mapping[str, Platform]):
    """The platforms a rules file may name: its own sites, then the built-in presets (which compile
    as accounts name them: ``presets()`` is lazy). ``get`` is asked twice per person."""

    def __init__(self, built: Mapping[str, Platform]) -> None:
        self.sites: dict[str, Platform] = {}
        self.built = built
        self._named: dict[str, Platform | None] = {}

    def named(self, name: str) -> Platform | None:
        """The platform an ``accounts`` key names, as written or in lower case (asked per account;
        remembered, as the sites are all known before the first person is read)."""
        try:
            return self._named[name]
        except KeyError:
            p = self._named[name] = self.get(name) or self.get(name.lower())
            return p

    def __getitem__(self, name: str) -> Platform:
        site = self.sites.get(name)
        return site if site is not None else self.built[name]

    def get(self, name: str, default: Platform | None = None) -> Platform | None:  # type: ignore[override]
        site = self.sites.get(name)
        if site is not None:
            return site
        return self.built.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self.sites or name in self.built

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(self.built), **self.sites})

    def __len__(self) -> int:
        return len({**dict.fromkeys(self.built), **self.sites})


def _array(ctx: _Ctx, doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = doc.get(key, [])
    if isinstance(value, dict):
        ctx.error(key, f"write [[{key}]] (double brackets): there can be several")
        return []
    if not _typed(ctx, key, value, list, f"[[{key}]] tables"):
        return []
    out = []
    for i, item in enumerate(value):
        if _typed(ctx, f"{key}[{i + 1}]", item, dict, "a table"):
            out.append(item)
    return out
