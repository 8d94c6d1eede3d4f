"""What is in force at an instant: a pure function of the rules, the time and when entries began.

No clock is read here. ``started`` maps entry keys (``person:Sam``, ``app:WhatsApp at night``) to when
each first took effect, which the daemon remembers across restarts so ``for = "90d"`` counts from then.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass

from .schema import App, Person, Ruleset, Schedule, Window


def entry_key(entry: Person | App) -> str:
    return f"{'person' if isinstance(entry, Person) else 'app'}:{entry.name}"


def _plus(t: dt.datetime, d: dt.timedelta) -> dt.datetime | None:
    """``t + d``, or None ("never") past the end of datetime's range (year 9999)."""
    try:
        return t + d
    except OverflowError:
        return None


def ends_at(s: Schedule, start: dt.datetime | None) -> dt.datetime | None:
    """When the entry stops for good (``until`` or start + ``for``), or None if it never does.

    All instants are UTC: Python compares and adds same-zone datetimes by wall clock, which is wrong
    across a DST change. An end beyond datetime's range (only a corrupt start time can get there:
    the loader bounds durations and dates) counts as never, which keeps the block.
    """
    if s.until is not None:
        return s.until.astimezone(dt.UTC)
    if s.duration is not None and start is not None:
        return _plus(start.astimezone(dt.UTC), s.duration)
    return None


DAY_MINUTES = 1440


class _Windows:
    """A schedule's windows as merged local-time intervals per weekday, so that "inside a window at
    t?" is one bisection and the instants where that can change are the intervals' ends.

    Matches ``Window`` semantics exactly: a window belongs to the weekday it starts on, and one that
    runs past midnight (end <= start) covers the rest of its day and the next day until its end.
    """

    def __init__(self, windows: tuple[Window, ...], zone: zoneinfo.ZoneInfo) -> None:
        self.zone = zone
        raw: list[list[tuple[int, int]]] = [[] for _ in range(7)]
        for w in windows:
            a, b = w.start.hour * 60 + w.start.minute, w.end.hour * 60 + w.end.minute
            for d in w.days:
                if a < b:
                    raw[d].append((a, b))
                else:
                    raw[d].append((a, DAY_MINUTES))
                    if b:
                        raw[(d + 1) % 7].append((0, b))
        self.days: list[list[tuple[int, int]]] = []
        for spans in raw:
            merged: list[tuple[int, int]] = []
            for a, b in sorted(spans):
                if merged and a <= merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], b))
                else:
                    merged.append((a, b))
            self.days.append(merged)
        self.starts = [[a for a, _ in day] for day in self.days]

    def inside(self, t: dt.datetime) -> bool:
        local = t.astimezone(self.zone)
        minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
        day = self.days[local.weekday()]
        i = bisect.bisect_right(self.starts[local.weekday()], minute) - 1
        return i >= 0 and minute < day[i][1]

    def boundaries(self, t: dt.datetime) -> list[dt.datetime]:
        """Every instant from a day before ``t`` to eight days after where being inside a window
        can change (a week and a day: the next change of any weekly schedule is in there): where a
        merged interval begins or ends, and, on a day the clocks change, the change itself and
        both readings of an interval's end that the change makes occur twice (or not at all)."""
        out: list[dt.datetime] = []
        today = t.astimezone(self.zone).date()
        for offset in range(-1, 9):
            d = today + dt.timedelta(days=offset)
            spans = self.days[d.weekday()]
            if not spans:
                continue
            midnight, changes = _day(self.zone, d)
            out.extend(changes)
            for a, b in spans:
                for m in (a, b):
                    if midnight is not None:  # no clock change that day: minutes after midnight
                        out.append(midnight + dt.timedelta(minutes=m))
                        continue
                    local = dt.datetime.combine(
                        d + dt.timedelta(days=m // DAY_MINUTES),
                        dt.time((m % DAY_MINUTES) // 60, m % 60),
                        self.zone,
                    )
                    out.append(local.astimezone(dt.UTC))
                    out.append(local.replace(fold=1).astimezone(dt.UTC))
        return out


@functools.lru_cache(maxsize=4096)
def _day(zone: zoneinfo.ZoneInfo, day: dt.date) -> tuple[dt.datetime | None, tuple[dt.datetime, ...]]:
    """``day``'s local midnight in UTC and no clock changes; or, on a day the zone's offset
    changes, None and the instant (UTC, to the second) where it does. Cached: a rules file's
    entries mostly share a zone, and every entry asks for the same ten days."""
    start = dt.datetime.combine(day, dt.time(0), zone).astimezone(dt.UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), zone).astimezone(dt.UTC)
    if start.astimezone(zone).utcoffset() == end.astimezone(zone).utcoffset():
        return start, ()
    old = start.astimezone(zone).utcoffset()
    lo, hi = int(start.timestamp()), int(end.timestamp())  # old offset at lo, the new one at hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if dt.datetime.fromtimestamp(mid, zone).utcoffset() == old:
            lo = mid
        else:
            hi = mid
    return None, (dt.datetime.fromtimestamp(hi, dt.UTC),)


class _Entry:
    """One entry's schedule, compiled for a single ``evaluate``: its end and its windows."""

    def __init__(self, s: Schedule, t: dt.datetime, start: dt.datetime | None) -> None:
        self.end = ends_at(s, start if start is not None else t)
        self.windows = _Windows(s.windows, zoneinfo.ZoneInfo(s.timezone)) if s.windows else None

    def active(self, t: dt.datetime) -> bool:
        if self.end is not None and t >= self.end:
            return False
        return self.windows is None or self.windows.inside(t)

    def next_change(self, t: dt.datetime) -> dt.datetime | None:
        """The first instant after ``t`` where ``active`` differs from now (within the horizon)."""
        if self.windows is None:
            # no windows: active until the end, so the one change is the end, if it is still ahead
            # (the general path below gives the same: active(end) is False, active(t) is t < end)
            return self.end if self.end is not None and self.end > t else None
        now = self.active(t)
        cands = set(self.windows.boundaries(t)) if self.windows else set()
        if self.end is not None:
            cands.add(self.end)
        for c in sorted(c for c in cands if c > t):
            if self.active(c) != now:
                return c
        return None


def schedule_active(s: Schedule, t: dt.datetime, start: dt.datetime | None) -> bool:
    """Whether a schedule is in force at ``t`` (aware), for an entry that took effect at ``start``."""
    return _Entry(s, t, start).active(t)


@dataclass(frozen=True, slots=True)
class State:
    """The result of the policy at one instant."""

    at: dt.datetime
    people: frozenset[str]
    apps: frozenset[str]
    next_change: dt.datetime | None
    ends: Mapping[str, dt.datetime | None]  # entry key → when it lifts for good


def evaluate(rules: Ruleset, t: dt.datetime, started: Mapping[str, dt.datetime] | None = None) -> State:
    """Which people and apps are blocked at ``t`` (aware), and when that next changes.

    Each entry is computed on its own: one whose times cannot be computed at all (a corrupt start
    time past the year 9999) is enforced with no next change, so an odd value can neither lift a
    block nor stop the other entries' windows from starting.
    """
    if t.tzinfo is None:
        raise ValueError("evaluate needs an aware datetime")
    t = t.astimezone(dt.UTC)
    started = started or {}
    entries: list[Person | App] = [*rules.people, *rules.apps]
    people: set[str] = set()
    apps: set[str] = set()
    ends: dict[str, dt.datetime | None] = {}
    changes: list[dt.datetime] = []
    for e in entries:
        key = entry_key(e)
        try:
            entry = _Entry(e.schedule, t, started.get(key))
            active, change = entry.active(t), entry.next_change(t)
        except (OverflowError, ValueError, zoneinfo.ZoneInfoNotFoundError):
            ends[key], active, change = None, True, None
        else:
            ends[key] = entry.end
        if active:
            (people if isinstance(e, Person) else apps).add(e.name)
        if change is not None:
            changes.append(change)
    return State(t, frozenset(people), frozenset(apps), min(changes, default=None), ends)
