"""The figures ``stats`` and ``report`` show: per day, streaks, totals, hour × weekday, week on week.

Pure computation over the counts the journal's reader hands back (``JournalReader``): the period
and its local hours come from ``periods``, every number from the journal, and nothing here writes
SQL or opens the file. ``Stats.as_json`` is the stable ``stats --json`` shape.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..journal.reader import JournalReader
from ..journal.schema import iso
from .periods import (
    EPOCH_ORDINAL,
    HOUR_MS,
    ReviewError,
    day_start,
    local_date,
    local_hours,
    offset_ms,
    utc_ms,
)

NONE_KEY = "(none)"  # how a missing person/platform/surface reads in totals (e.g. "service stopped")


@dataclass(frozen=True, slots=True)
class WeekCount:
    """The attempts in one span of 7×24 hours; ``complete`` when the journal covers all of it."""

    start: dt.datetime
    end: dt.datetime
    count: int
    complete: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "start": iso(self.start),
            "end": iso(self.end),
            "count": self.count,
            "complete": self.complete,
        }


@dataclass(slots=True)
class Stats:
    """Every figure ``stats`` and ``report`` show, for one period in one time zone."""

    timezone: str
    who: tuple[str, ...]  # the people the figures are about; () is everyone
    start: dt.datetime
    end: dt.datetime
    basis: str  # why the period starts where it does: see words.PERIOD_BASIS
    per_day: list[tuple[dt.date, int]]
    total: int
    per_person: dict[str, int]
    per_platform: dict[str, int]
    per_surface: dict[str, int]
    per_channel: dict[str, int]
    hour_weekday: list[list[int]]  # [weekday 0=Monday][local hour 0-23]
    current_streak_days: int
    longest_streak_days: int
    this_week: WeekCount
    last_week: WeekCount
    first: dt.datetime | None
    last: dt.datetime | None
    # the person's devices (``devices add``): name → attempts on it, "(none)" for the computer's own;
    # {} when no attempt in the period came from a device
    per_device: dict[str, int] = field(default_factory=dict)
    # entries kept out of sight (the feed surface) per local day and platform, and the responses
    # with theirs that could not be rewritten; None under a --person filter (counted for everyone)
    hidden: list[tuple[dt.date, dict[str, int]]] | None = None
    hidden_missed: int = 0
    zero_days: int = field(init=False)

    def __post_init__(self) -> None:
        self.zero_days = sum(1 for _, c in self.per_day if c == 0)

    @property
    def hidden_total(self) -> int:
        return sum(n for _, per in self.hidden or () for n in per.values())

    @property
    def hidden_per_platform(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, per in self.hidden or ():
            for p, n in per.items():
                out[p] = out.get(p, 0) + n
        return _sorted_counts(out)

    def as_json(self) -> dict[str, Any]:
        """The stable ``stats --json`` object. Instants are UTC ISO strings with ``Z`` (as ``log``),
        dates are local ``YYYY-MM-DD``:

        - ``period``: ``start``, ``end`` (the instants counted, end excluded), ``first_day``,
          ``last_day``, ``days``, ``timezone``, ``basis`` (why it starts there: ``rules`` = when the
          daemon first started, ``first_attempt``, ``forgotten`` = older attempts were forgotten,
          ``since`` = as asked, ``empty``), ``people`` (the ``--person`` filter, or null).
        - ``total``; ``per_day``: a list of ``{"date", "count"}``, every day of the period in order,
          days without attempts included; ``days_with_attempts``, ``zero_days``.
        - ``current_streak_days``: days without an attempt counted back from the period's last day
          (today by default, which counts if it has had none so far); ``longest_streak_days``.
        - ``per_person``, ``per_platform``, ``per_surface``, ``per_channel``: name → count, most
          first; ``"(none)"`` (last) for attempts without one, e.g. the service being stopped.
        - ``per_device``: device name (``devices add``) → attempts on it, most first, with
          ``"(none)"`` (last) for those on this computer; ``{}`` when none came from a device.
        - ``hour_weekday``: 7 lists (Monday first) of 24 counts (local hour 0-23).
        - ``this_week``, ``last_week``: ``{"start", "end", "count", "complete"}`` for the 7×24 hours
          before the period's end and the 7×24 before those; ``complete`` is false when the
          journal does not reach back that far (then there is nothing fair to compare).
        - ``first``, ``last``: the first and last attempt in the period, or null.
        - ``kept_out_of_sight``: their entries removed from mixed lists (feeds, trays, suggestions;
          not attempts): ``total``, ``per_platform``, ``per_day`` (the days with any: ``{"date",
          "count", "per_platform"}``), ``missed`` (responses with theirs passed on unchanged because
          they could not be rewritten safely); null under ``--person`` (they are counted for everyone).
        """
        return {
            "period": {
                "start": iso(self.start),
                "end": iso(self.end),
                "first_day": self.per_day[0][0].isoformat(),
                "last_day": self.per_day[-1][0].isoformat(),
                "days": len(self.per_day),
                "timezone": self.timezone,
                "basis": self.basis,
                "people": list(self.who) or None,
            },
            "total": self.total,
            "per_day": [{"date": d.isoformat(), "count": c} for d, c in self.per_day],
            "days_with_attempts": len(self.per_day) - self.zero_days,
            "zero_days": self.zero_days,
            "current_streak_days": self.current_streak_days,
            "longest_streak_days": self.longest_streak_days,
            "per_person": self.per_person,
            "per_platform": self.per_platform,
            "per_surface": self.per_surface,
            "per_channel": self.per_channel,
            "per_device": self.per_device,
            "hour_weekday": self.hour_weekday,
            "this_week": self.this_week.as_json(),
            "last_week": self.last_week.as_json(),
            "first": iso(self.first) if self.first else None,
            "last": iso(self.last) if self.last else None,
            "kept_out_of_sight": None
            if self.hidden is None
            else {
                "total": self.hidden_total,
                "per_platform": self.hidden_per_platform,
                "per_day": [
                    {"date": d.isoformat(), "count": sum(per.values()), "per_platform": per}
                    for d, per in self.hidden
                ],
                "missed": self.hidden_missed,
            },
        }


def _streaks(per_day: Sequence[tuple[dt.date, int]]) -> tuple[int, int]:
    """(current, longest) runs of days with no attempt; the current run ends on the period's last day."""
    longest = run = 0
    for _, c in per_day:
        run = run + 1 if c == 0 else 0
        longest = max(longest, run)
    return run, longest


def _sorted_counts(d: dict[str, int]) -> dict[str, int]:
    """Most first; "(none)" (no person, e.g. the service stopped) always last."""
    return dict(sorted(d.items(), key=lambda kv: (kv[0] == NONE_KEY, -kv[1], kv[0])))


def compute_stats(
    journal: JournalReader,
    *,
    now: dt.datetime,
    tz: zoneinfo.ZoneInfo,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    who: tuple[str, ...] = (),
) -> Stats:
    """The figures for [since, until) in zone ``tz``, at time ``now`` (a pure function of the file),
    for the people ``who`` (names as stored; everyone when empty).

    The period starts at ``since`` but never before the journal's history (``history_start``):
    earlier days are unknown, and counting them as attempt-free would make streaks untrue. It ends at
    ``until`` or ``now``, whichever is first. The current streak counts back from the period's last
    day (today by default), which counts if it has had no attempt so far.
    """
    now = now.astimezone(dt.UTC)
    known, basis = journal.history_start()
    if since is not None and (known is None or since >= known):
        start, basis = since, "since"
    elif known is not None:
        start = known
    else:
        start = day_start(local_date(now, tz), tz)
    if since is not None and until is not None and until <= since:
        raise ReviewError("the period is empty: --until is not after --since")
    if since is not None and since >= now:
        raise ReviewError(f"--since {since.astimezone(tz):%Y-%m-%d %H:%M} is in the future")
    end = min(until, now) if until is not None else now
    if until is not None and known is not None and until <= known:
        raise ReviewError(
            f"the journal begins {known.astimezone(tz):%Y-%m-%d %H:%M}; there is nothing before that"
        )
    end = max(end, start + dt.timedelta(milliseconds=1))  # a history starting "after now": clock skew
    start_ms, end_ms = utc_ms(start), utc_ms(end)

    # attempts per local clock hour: the journal counts each hour, days and weekdays follow here
    bounds, keys = local_hours(tz, start_ms, end_ms)
    per_day_map: dict[int, int] = {}
    hour_weekday = [[0] * 24 for _ in range(7)]
    total = 0
    for i, n in journal.count_per_bucket(bounds, who):
        k = keys[i]
        day, hour = divmod(k, 24)
        per_day_map[day] = per_day_map.get(day, 0) + n
        hour_weekday[(day + 3) % 7][hour] += n  # 1970-01-01 was a Thursday (weekday 3)
        total += n
    first_day = (start_ms + offset_ms(tz, start_ms)) // (24 * HOUR_MS)
    last_day = (end_ms - 1 + offset_ms(tz, end_ms - 1)) // (24 * HOUR_MS)
    per_day = [
        (dt.date.fromordinal(EPOCH_ORDINAL + d), per_day_map.get(d, 0))
        for d in range(first_day, last_day + 1)
    ]
    current, longest = _streaks(per_day)

    # totals per person/platform/surface/channel
    per: list[dict[str, int]] = [{}, {}, {}, {}]
    if total:
        for *cols, n in journal.totals(start, end, who, expected=total):
            for d, v in zip(per, cols, strict=True):
                key = v if v is not None else NONE_KEY
                d[key] = d.get(key, 0) + n

    on_devices = journal.per_device(start, end, who) if total else {}
    here = total - sum(on_devices.values())  # the attempts on this computer
    per_device = _sorted_counts({**on_devices, **({NONE_KEY: here} if here else {})}) if on_devices else {}

    first, last = journal.first_and_last(start, end, who)

    week = dt.timedelta(days=7)
    history = known if known is not None else start
    this_week = WeekCount(end - week, end, journal.count(end - week, end, who), end - week >= history)
    last_week = WeekCount(
        end - 2 * week, end - week, journal.count(end - 2 * week, end - week, who), end - 2 * week >= history
    )
    hidden: list[tuple[dt.date, dict[str, int]]] | None = None
    missed = 0
    if not who:
        by_day: dict[dt.date, dict[str, int]] = {}
        for hday, platform, removed, miss in journal.hidden(per_day[0][0], per_day[-1][0]):
            if removed:
                by_day.setdefault(hday, {})[platform] = removed
            missed += miss
        hidden = [(d, _sorted_counts(per)) for d, per in sorted(by_day.items())]
    return Stats(
        timezone=str(tz.key),
        who=who,
        start=start,
        end=end,
        basis=basis,
        per_day=per_day,
        total=total,
        per_person=_sorted_counts(per[0]),
        per_platform=_sorted_counts(per[1]),
        per_surface=_sorted_counts(per[2]),
        per_channel=_sorted_counts(per[3]),
        hour_weekday=hour_weekday,
        current_streak_days=current,
        longest_streak_days=longest,
        this_week=this_week,
        last_week=last_week,
        first=first,
        last=last,
        per_device=per_device,
        hidden=hidden,
        hidden_missed=missed,
    )
