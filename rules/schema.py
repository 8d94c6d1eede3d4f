"""The rules file's schema: immutable dataclasses whose field metadata is the documentation.

Each field carries ``toml`` (its key in the file), ``doc`` (one line, shown by ``rules init`` and in
errors) and ``example`` (TOML text for the sample). The loader accepts exactly these keys, so the
documentation, the sample and the validation can never disagree.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from .errors import Problem

SURFACES: tuple[str, ...] = (
    "profile",
    "stories",
    "posts",
    "presence",
    "search",
    "messages",
    "feed",
    "client",
)
# "feed" removes their entries from mixed lists the platform shows you anyway (home feeds, story trays,
# suggestions, comments, "liked by"): what arrives unasked rather than what you go to look at.
# "client" blocks a platform's whole client (WhatsApp Web, Telegram Web) during the person's schedule:
# the honest fallback where the platform hides who is being looked at. It is drastic, so opt-in.
DEFAULT_SURFACES: frozenset[str] = frozenset(SURFACES) - {"client"}
APP_ACTIONS: tuple[str, ...] = ("terminate", "suspend")
# Bounds on every duration and date in the file. 100 years is more than any block, cooling-off or
# retention a person means; "forever" has its own spelling (leave until and for out). Dates run from
# the Unix epoch (an earlier one is a typo, and converting year 1 to UTC overflows) to the end of
# 2999: a later one also means "forever", and with durations bounded too, every instant the daemon
# computes (an end date plus a cooling-off, a start plus a duration) stays far inside the range of
# Python's datetime (year 9999), so no arithmetic on the rules can overflow.
MAX_DURATION = dt.timedelta(days=36525)
EARLIEST_DATE = dt.date(1970, 1, 1)
LATEST_DATE = dt.date(2999, 12, 31)


def doc(toml: str, text: str, example: str | None = None, **kw: Any) -> Any:
    """A dataclass field documented for the rules file (key, one-line description, sample value)."""
    return field(metadata={"toml": toml, "doc": text, "example": example}, **kw)


@dataclass(frozen=True, slots=True)
class Window:
    """A recurring local-time window, e.g. ``"22:00-07:00"`` or ``"mon-fri 09:00-17:30"``."""

    start: dt.time
    end: dt.time  # end <= start means the window runs past midnight
    days: frozenset[int]  # weekday() numbers on which the window *starts*; Monday is 0
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Schedule:
    """When an entry is enforced; with nothing set it is enforced always."""

    until: dt.datetime | None = None  # aware
    duration: dt.timedelta | None = None  # counted from when the entry first took effect
    windows: tuple[Window, ...] = ()
    timezone: str = "UTC"

    @property
    def always(self) -> bool:
        return self.until is None and self.duration is None and not self.windows


@dataclass(frozen=True, slots=True)
class Account:
    """One identifier of a person on one platform, already normalised (lower case, no ``@``)."""

    platform: str
    value: str
    kind: str  # which of the platform's identifier kinds it is: handle, id, secuid, …
    given: str = field(compare=False)  # as written in the rules file (not part of its identity)


@dataclass(frozen=True, slots=True)
class Person:
    name: str = doc(
        "name", "Who this is; shown only in your own log (and on the block page if you ask).", '"Sam"'
    )
    accounts: tuple[Account, ...] = doc(
        "accounts",
        "Platform → handle, id or a list of them: every place where you could look at them.",
        '{ instagram = "sam.example", x = "samexample", tiktok = ["sam.example", "6812345"] }',
        default=(),
    )
    block: frozenset[str] = doc(
        "block",
        "Which surfaces to block: " + ", ".join(SURFACES) + ". Default: all but client.",
        '["profile", "stories", "posts", "presence", "search", "messages", "feed"]',
        default=DEFAULT_SURFACES,
    )
    search_terms: tuple[str, ...] = doc(
        "search_terms",
        "Extra things you might search for (their real name); searches for these are blocked too.",
        '["Sam Example"]',
        default=(),
    )
    apps: tuple[str, ...] = doc(
        "apps",
        "App presets or process globs to stop while this person is blocked (process watcher).",
        "[]",
        default=(),
    )
    why: str = doc(
        "why",
        "Your own words about why you chose this; shown on the block page.",
        '"I want to heal, and looking keeps the wound open."',
        default="",
    )
    schedule: Schedule = field(default_factory=Schedule)

    def identifiers(self, platform: str) -> tuple[Account, ...]:
        return tuple(a for a in self.accounts if a.platform == platform)


@dataclass(frozen=True, slots=True)
class App:
    name: str = doc("name", "A name for this rule, used in the log.", '"WhatsApp at night"')
    match: tuple[str, ...] = doc(
        "match",
        "App presets (whatsapp, telegram, …) or globs on process name, executable or command line.",
        '["whatsapp"]',
        default=(),
    )
    action: str = doc(
        "action",
        "What to do with a matching process: terminate or suspend.",
        '"terminate"',
        default="terminate",
    )
    grace: float = doc("grace", "Seconds between the polite TERM and the final KILL.", "3", default=3.0)
    person: str | None = None  # set when the rule comes from a person's `apps`
    schedule: Schedule = field(default_factory=Schedule)


@dataclass(frozen=True, slots=True)
class SitePattern:
    surface: str
    path: str


@dataclass(frozen=True, slots=True)
class Site:
    name: str = doc(
        "name", "A platform key for a site without a preset; use it in a person's accounts.", '"myforum"'
    )
    hosts: tuple[str, ...] = doc(
        "hosts",
        "The site's host names (each also covers its subdomains).",
        '["forum.example.org"]',
        default=(),
    )
    pages: tuple[SitePattern, ...] = doc(
        "pages",
        "Surface → path templates with {handle}, e.g. /members/{handle} (one path segment, whole value).",
        '{ profile = ["/members/{handle}"], posts = ["/members/{handle}/posts"] }',
        default=(),
    )
    handle: str = doc(
        "handle",
        "A regular expression every handle on this site must match.",
        "'[A-Za-z0-9_.-]{1,64}'",
        default=r"[A-Za-z0-9_.-]{1,64}",
    )


@dataclass(frozen=True, slots=True)
class Lock:
    cooling_off: dt.timedelta = doc(
        "cooling_off",
        "How long a loosening edit waits before it applies; tightening applies at once.",
        '"24h"',
        default=dt.timedelta(hours=24),
    )


@dataclass(frozen=True, slots=True)
class Settings:
    timezone: str = doc(
        "timezone",
        "Time zone for dates, windows and daily counts; default: this computer's.",
        '"Europe/Berlin"',
        default="",
    )
    show_name: bool = doc(
        "show_name", "Show the person's name on the block page (default: no).", "false", default=False
    )
    instead: tuple[str, ...] = doc(
        "instead",
        "Things you would rather do with the moment; the block page shows one.",
        '["Text a friend", "Walk around the block", "Write it down instead of looking"]',
        default=(),
    )
    retention: dt.timedelta | None = doc(
        "retention",
        'How long the log keeps attempts, e.g. "365d"; default: forever.',
        '"365d"',
        default=None,
    )
    bypass_detection: bool = doc(
        "bypass_detection",
        "Notice attempts to route around the proxy (process watcher).",
        "true",
        default=True,
    )
    notifications: bool = doc(
        "notifications",
        "Desktop notifications when a block starts or ends or an app is stopped (Linux desktops).",
        "true",
        default=True,
    )


@dataclass(frozen=True, slots=True)
class Ruleset:
    """A validated rules file. Immutable: a reload builds a new one and swaps it whole."""

    source: str
    lock: Lock = field(default_factory=Lock)
    settings: Settings = field(default_factory=Settings)
    people: tuple[Person, ...] = ()
    apps: tuple[App, ...] = ()
    sites: tuple[Site, ...] = ()
    # what the loader did for the user and says so (a handle taken from a pasted profile link)
    notes: tuple[Problem, ...] = field(default=(), compare=False)

    def person(self, name: str) -> Person | None:
        return next((p for p in self.people if p.name == name), None)

    @property
    def platforms(self) -> frozenset[str]:
        return frozenset(a.platform for p in self.people for a in p.accounts)

    def summary(self) -> str:
        surfaces = sorted({s for p in self.people for s in p.block})
        n = len(self.people)
        return (
            f"{n} {'person' if n == 1 else 'people'}, {len(self.platforms)} platforms"
            f" ({', '.join(sorted(self.platforms)) or 'none'}), surfaces: {', '.join(surfaces) or 'none'},"
            f" {len(self.apps)} app rule{'s' if len(self.apps) != 1 else ''}"
        )


# Schedule keys are shared by [[person]] and [[app]]; documented here once.
SCHEDULE_DOCS: dict[str, tuple[str, str]] = {
    "until": ("Block until this date or date-time; a date means local midnight.", "2027-03-01"),
    "for": ('Block for this long from when the entry first took effect, e.g. "90d", "12h".', '"90d"'),
    "windows": (
        'Only block inside these local windows, e.g. "22:00-07:00" or "sat,sun 10:00-18:00".',
        '["22:00-07:00"]',
    ),
    "timezone": (
        "Time zone for this entry's dates and windows; default: [settings].timezone.",
        '"Europe/Berlin"',
    ),
}
