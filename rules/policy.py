"""What is in force at an instant: a pure function of the rules, the time and when entries began.

No clock is read here. ``started`` maps entry keys (``person:Sam``, ``app:WhatsApp at night``) to when
each first took effect, which the daemon remembers across restarts so ``for = "90d"`` counts from then.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass

from .schema import App, Person, Ruleset, Schedule, Window


def entry_key(entry: Person | App) -> str:
    return f"{'person' if isinstance(entry, Person) else 'app'}:{entry.name}"


def ends_at(s: Schedule, start: dt.datetime | None) -> dt.datetime | None:
    """When the entry stops for good (``until`` or start + ``for``), or None if it never does.

    All instants are UTC: Python compares and adds same-zone datetimes by wall clock, which is wrong
    across a DST change.
    """
    if s.until is not None:
        return s.until.astimezone(dt.UTC)
    if s.duration is not None and start is not None:
        return start.astimezone(dt.UTC) + s.duration
    return None


def _in_window(w: Window, t: dt.datetime, zone: zoneinfo.ZoneInfo) -> bool:
    local = t.astimezone(zone)
    now, day = local.time(), local.weekday()
    if w.start < w.end:
        return day in w.days and w.start <= now < w.end
    return (day in w.days and now >= w.start) or ((day - 1) % 7 in w.days and now < w.end)


def schedule_active(s: Schedule, t: dt.datetime, start: dt.datetime | None) -> bool:
    end = ends_at(s, start if start is not None else t)
    if end is not None and t >= end:
        return False
    if s.windows:
        zone = zoneinfo.ZoneInfo(s.timezone)
        return any(_in_window(w, t, zone) for w in s.windows)
    return True


def _boundaries(s: Schedule, t: dt.datetime, start: dt.datetime | None) -> list[dt.datetime]:
    out = []
    end = ends_at(s, start if start is not None else t)
    if end is not None:
        out.append(end)
    if s.windows:
        zone = zoneinfo.ZoneInfo(s.timezone)
        today = t.astimezone(zone).date()
        for offset in range(-1, 9):
            d = today + dt.timedelta(days=offset)
            for w in s.windows:
                out.append(dt.datetime.combine(d, w.start, zone).astimezone(dt.UTC))
                out.append(dt.datetime.combine(d, w.end, zone).astimezone(dt.UTC))
    return out


@dataclass(frozen=True, slots=True)
class State:
    """The result of the policy at one instant."""

    at: dt.datetime
    people: frozenset[str]
    apps: frozenset[str]
    next_change: dt.datetime | None
    ends: Mapping[str, dt.datetime | None]  # entry key → when it lifts for good


def evaluate(rules: Ruleset, t: dt.datetime, started: Mapping[str, dt.datetime] | None = None) -> State:
    """Which people and apps are blocked at ``t`` (aware), and when that next changes."""
    if t.tzinfo is None:
        raise ValueError("evaluate needs an aware datetime")
    t = t.astimezone(dt.UTC)
    started = started or {}
    entries: list[Person | App] = [*rules.people, *rules.apps]
    people: set[str] = set()
    apps: set[str] = set()
    ends: dict[str, dt.datetime | None] = {}
    cands: list[tuple[dt.datetime, Person | App, dt.datetime | None]] = []
    for e in entries:
        key = entry_key(e)
        start = started.get(key)
        ends[key] = ends_at(e.schedule, start if start is not None else t)
        if schedule_active(e.schedule, t, start):
            (people if isinstance(e, Person) else apps).add(e.name)
        cands.extend((c, e, start) for c in _boundaries(e.schedule, t, start) if c > t)
    nxt = None
    for c, e, start in sorted(cands, key=lambda x: x[0]):
        if schedule_active(e.schedule, c, start) != schedule_active(e.schedule, t, start):
            nxt = c
            break
    return State(t, frozenset(people), frozenset(apps), nxt, ends)
