"""Reading the journal back for the person it belongs to: filtered attempts, stats, the HTML report,
export and forget.

Everything here opens its own connection, so it works while the daemon writes (WAL readers never
wait) and when the daemon is stopped. Only ``forget`` writes, in short ``BEGIN IMMEDIATE`` batches
that wait for the daemon's writer rather than fail. Functions take ``now`` and a time zone instead
of reading the clock, so the numbers are reproducible in tests.

Days follow the user's local time zone, which SQLite cannot group by: the journal stores UTC. So
``stats`` splits the period into local clock hours (UTC boundaries computed here from the zone's own
offsets, which handles daylight-saving days of 23 or 25 hours and half- or quarter-hour zones) and
lets SQLite count each hour with one seek on the time index.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import re
import sqlite3
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from zerocontact.rules.errors import UserFacingError

from .journal import JournalError, iso, open_readonly

if TYPE_CHECKING:
    import jinja2

# The index that makes the per-person/platform/surface/channel totals a few index range counts rather
# than a sort of every row (1M attempts: ~0.08 s instead of ~1.2 s). The daemon may create it at start;
# ``stats`` uses it when it exists and is correct without it.
REVIEW_INDEX = "attempts_review"
REVIEW_INDEX_SQL = (
    f"CREATE INDEX IF NOT EXISTS {REVIEW_INDEX} ON attempts (person, platform, surface, channel, time)"
)
# meta key: attempts before this UTC instant were forgotten, so days before it are unknown, not empty
FORGOTTEN_KEY = "forgotten_before"
NONE_KEY = "(none)"  # how a missing person/platform/surface reads in totals (e.g. "service stopped")
LARGE = 20_000  # above this many attempts in a period, totals use the review index (when it exists)
NOTES_LIMIT = 500  # the report shows at most this many notes (the newest); export has them all

_HOUR_MS = 3_600_000
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_DAY_SPAN = re.compile(r"^\s*(\d+)\s*([dw])\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?\s*(w|d|h|m|min|s)\s*)+$", re.IGNORECASE)


class ReviewError(UserFacingError):
    """A problem the user can fix (a bad date, an unknown zone, an empty period); the message says how."""


# -- time ------------------------------------------------------------------------------------------
def zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone ``name``, or a ReviewError that says what to write instead."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ReviewError(
            f"unknown time zone {name!r}; use an IANA name like Europe/Berlin or America/New_York"
        ) from None


def day_start(day: dt.date, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """The first instant of a local day (midnight, or the end of a DST gap that swallows it), in UTC."""
    # in a gap at midnight, fold=0 takes the offset from before the change: the instant that is
    # the first moment of the day (01:00 local where clocks jump from 00:00 to 01:00)
    return dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(dt.UTC)


def local_date(t: dt.datetime, tz: zoneinfo.ZoneInfo) -> dt.date:
    return t.astimezone(tz).date()


def parse_when(
    text: str, tz: zoneinfo.ZoneInfo, now: dt.datetime, *, end: bool = False, what: str = "--since"
) -> dt.datetime:
    """A user's date to a UTC instant.

    ``2026-11-01`` is local midnight (with ``end=True``, the midnight after it, so an ``--until``
    date includes its whole day); ``2026-11-01T22:30`` is local unless it names an offset; ``today``
    and ``yesterday`` are local days; ``7d``/``2w`` are calendar days counted back with today as
    the first (``1d`` = since midnight), while ``12h``/``90m`` are exact spans back from ``now``.
    """
    s = text.strip()
    today = local_date(now, tz)
    low = s.lower()
    if low in ("today", "yesterday"):
        d = today - dt.timedelta(days=1 if low == "yesterday" else 0)
        return day_start(d + dt.timedelta(days=1) if end else d, tz)
    if m := _DAY_SPAN.match(s):
        n = int(m.group(1)) * (7 if m.group(2).lower() == "w" else 1)
        if n == 0:
            raise ReviewError(f"{what} {text!r}: a span must be at least 1d (today)")
        return day_start(today - dt.timedelta(days=n - 1), tz)
    if _DURATION.match(s):
        from zerocontact.rules.loader import parse_duration

        return now.astimezone(dt.UTC) - parse_duration(s)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", s):
        try:
            d = dt.date.fromisoformat(s)
        except ValueError:
            raise ReviewError(f"{what} {text!r} is not a real date") from None
        return day_start(d + dt.timedelta(days=1) if end else d, tz)
    try:
        t = dt.datetime.fromisoformat(s)
    except ValueError:
        raise ReviewError(
            f"{what} {text!r} is not a date: write 2026-11-01, 2026-11-01T22:30, today, "
            "or a span back from now like 7d, 2w or 12h"
        ) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=tz)
    return t.astimezone(dt.UTC)


def parse_stored(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _ms(t: dt.datetime) -> int:
    return (t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)


def _iso_bounds(bounds: Sequence[int]) -> list[str]:
    """UTC ms to the journal's ISO form (``iso``), fast: one date string per day, arithmetic for the rest."""
    out = []
    days: dict[int, str] = {}
    for ms in bounds:
        day, rest = divmod(ms, 86_400_000)
        d = days.get(day)
        if d is None:
            d = days[day] = dt.date.fromordinal(_EPOCH_ORDINAL + day).isoformat()
        h, rest = divmod(rest, _HOUR_MS)
        m, rest = divmod(rest, 60_000)
        sec, milli = divmod(rest, 1000)
        out.append(f"{d}T{h:02d}:{m:02d}:{sec:02d}.{milli:03d}Z")
    return out


# -- opening ---------------------------------------------------------------------------------------
DAMAGED_HINT = "zerocontact log and zerocontact export still give the attempts that can be read"


@contextlib.contextmanager
def reading(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection; an SQLite failure found mid-query (a damaged page) becomes a JournalError."""
    con = open_readonly(path)
    try:
        yield con
    except sqlite3.DatabaseError as e:
        raise JournalError(f"{path} is damaged ({e}); {DAMAGED_HINT}") from e
    finally:
        con.close()


def people(con: sqlite3.Connection) -> list[str]:
    """The people the journal names, sorted (a skip-scan: a few index seeks, not a scan)."""
    out: list[str] = []
    v = con.execute("SELECT min(person) FROM attempts").fetchone()[0]
    while v is not None:
        out.append(v)
        v = con.execute("SELECT min(person) FROM attempts WHERE person > ?", (v,)).fetchone()[0]
    return out


def resolve_people(con: sqlite3.Connection, names: Sequence[str]) -> tuple[tuple[str, ...], list[str]]:
    """The journal's spelling of each name given (matched ignoring case), and the names it lacks.

    Filtering on the exact stored names keeps the query on the (person, time) index.
    """
    if not names:
        return (), []
    known = people(con)
    found: list[str] = []
    missing: list[str] = []
    for name in names:
        hits = [p for p in known if p.casefold() == name.strip().casefold()]
        found.extend(h for h in hits if h not in found)
        if not hits:
            missing.append(name)
    return tuple(found), missing


# -- log -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Filters:
    """Which attempts: a time range [since, until) and, per column, any of the given values.

    ``person`` holds names as stored (see ``resolve_people``); the other columns are lowercase ids.
    """

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    person: tuple[str, ...] = ()
    platform: tuple[str, ...] = ()
    surface: tuple[str, ...] = ()
    channel: tuple[str, ...] = ()

    def _columns(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return (
            ("person", self.person),
            ("platform", tuple(v.lower() for v in self.platform)),
            ("surface", tuple(v.lower() for v in self.surface)),
            ("channel", tuple(v.lower() for v in self.channel)),
        )

    def where(self) -> tuple[str, list[Any]]:
        """A WHERE clause (or "") and its parameters; SQLite answers it from the time or person index."""
        parts: list[str] = []
        args: list[Any] = []
        if self.since:
            parts.append("time >= ?")
            args.append(iso(self.since))
        if self.until:
            parts.append("time < ?")
            args.append(iso(self.until))
        for col, values in self._columns():
            if values:
                parts.append(f"{col} IN ({', '.join('?' * len(values))})")
                args.extend(values)
        return (" WHERE " + " AND ".join(parts) if parts else ""), args

    def matches(self, row: dict[str, Any]) -> bool:
        """The same test in Python, for the rows salvaged from a damaged journal."""
        if self.since and row["time"] < iso(self.since):
            return False
        if self.until and row["time"] >= iso(self.until):
            return False
        return all(not values or row[col] in values for col, values in self._columns())

    @property
    def any(self) -> bool:
        return bool(self.since or self.until or self.person or self.platform or self.surface or self.channel)


def select_attempts(
    con: sqlite3.Connection, filters: Filters, limit: int | None = None, *, newest_first: bool = True
) -> Iterator[dict[str, Any]]:
    """Attempts matching ``filters`` (newest first, or oldest first), streamed from SQLite."""
    where, args = filters.where()
    order = "DESC" if newest_first else "ASC"
    sql = f"SELECT * FROM attempts{where} ORDER BY time {order}, id {order}"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    cur = con.execute(sql, args)
    cur.row_factory = sqlite3.Row
    for row in cur:
        yield dict(row)


def read_attempts(
    path: Path,
    filters: Filters,
    limit: int | None = None,
    *,
    newest_first: bool = True,
    on_damage: Callable[[str], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """``select_attempts`` on its own connection; if the file turns out damaged part-way, the rest
    comes from what can still be read (``journal.attempts`` salvages), with ``on_damage`` told once.
    """
    con = open_readonly(path)
    n = 0
    last: tuple[str, int] | None = None
    try:
        try:
            for d in select_attempts(con, filters, limit, newest_first=newest_first):
                yield d
                n += 1
                last = (d["time"], d["id"])
            return
        except sqlite3.DatabaseError as e:
            problem = e
    finally:
        con.close()
    if on_damage:
        on_damage(f"{path} is damaged ({problem}); what follows is what can still be read")

    def after(d: dict[str, Any]) -> bool:
        if last is None:
            return True
        k = (d["time"], d["id"])
        return k < last if newest_first else k > last

    from .journal import attempts as salvaging_reader

    rows = [d for d in salvaging_reader(path) if filters.matches(d) and after(d)]  # newest first
    if not newest_first:
        rows.reverse()
    for d in rows:
        if limit is not None and n >= limit:
            return
        yield d
        n += 1


def what(row: dict[str, Any]) -> str:
    """The request an attempt stopped ('GET host/path'), or its detail when there was none."""
    return f"{row['method'] or ''} {row['host'] or ''}{row['path'] or ''}".strip() or (row["detail"] or "")


def log_record(row: dict[str, Any]) -> dict[str, Any]:
    """The stable ``log --json`` object for one attempt (keys documented in the README)."""
    return {
        "time": row["time"],
        "person": row["person"],
        "platform": row["platform"],
        "surface": row["surface"],
        "channel": row["channel"],
        "detail": what(row),
        "note": row["note"],
        "requests": row["requests"],
        "process": row["process"],
    }


# -- stats -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Window:
    """A span of 7×24 hours and how many attempts fell in it; ``complete`` when the journal covers it all."""

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
    basis: str  # why the period starts where it does: see PERIOD_BASIS
    per_day: list[tuple[dt.date, int]]
    total: int
    per_person: dict[str, int]
    per_platform: dict[str, int]
    per_surface: dict[str, int]
    per_channel: dict[str, int]
    hour_weekday: list[list[int]]  # [weekday 0=Monday][local hour 0-23]
    current_streak_days: int
    longest_streak_days: int
    this_week: Window
    last_week: Window
    first: dt.datetime | None
    last: dt.datetime | None
    zero_days: int = field(init=False)

    def __post_init__(self) -> None:
        self.zero_days = sum(1 for _, c in self.per_day if c == 0)

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
        - ``hour_weekday``: 7 lists (Monday first) of 24 counts (local hour 0-23).
        - ``this_week``, ``last_week``: ``{"start", "end", "count", "complete"}`` for the 7×24 hours
          before the period's end and the 7×24 before those; ``complete`` is false when the
          journal does not reach back that far (then there is nothing fair to compare).
        - ``first``, ``last``: the first and last attempt in the period, or null.
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
            "hour_weekday": self.hour_weekday,
            "this_week": self.this_week.as_json(),
            "last_week": self.last_week.as_json(),
            "first": iso(self.first) if self.first else None,
            "last": iso(self.last) if self.last else None,
        }


PERIOD_BASIS = {
    "rules": "since the rules took effect",
    "first_attempt": "since the first recorded attempt",
    "forgotten": "since the oldest attempt still kept (older ones were forgotten)",
    "since": "from the date you asked for",
    "empty": "the journal has nothing yet",
}


def history_start(con: sqlite3.Connection) -> tuple[dt.datetime | None, str]:
    """Since when the journal knows every attempt, and why: the daemon's first start (else the first
    attempt), moved later by ``forget`` (days before that are unknown, not attempt-free)."""
    started = con.execute("SELECT min(time) FROM events WHERE kind = 'started'").fetchone()[0]
    first = con.execute("SELECT time FROM attempts ORDER BY time LIMIT 1").fetchone()
    first_t = first[0] if first else None
    row = con.execute("SELECT value FROM meta WHERE key = ?", (FORGOTTEN_KEY,)).fetchone()
    forgotten = row[0] if row else None
    candidates = [(t, b) for t, b in ((started, "rules"), (first_t, "first_attempt")) if t]
    if not candidates:
        return (parse_stored(forgotten), "forgotten") if forgotten else (None, "empty")
    t, basis = min(candidates)
    if forgotten and forgotten > t:
        t, basis = forgotten, "forgotten"
    return parse_stored(t), basis


def _offset_ms(tz: zoneinfo.ZoneInfo, ms: int) -> int:
    off = dt.datetime.fromtimestamp(ms // 1000, tz).utcoffset()
    assert off is not None
    return off // dt.timedelta(milliseconds=1)


def _segments(tz: zoneinfo.ZoneInfo, start: int, end: int) -> list[tuple[int, int, int]]:
    """[(from_ms, to_ms, utc_offset_ms)] covering [start, end) with the zone's offset constant in each.

    The offset is sampled every 6 hours and each change is bisected to the second (zones change
    offset at whole seconds, and never twice within 6 hours).
    """
    out: list[tuple[int, int, int]] = []
    a, off = start, _offset_ms(tz, start)
    t = start
    while t < end:
        probe = min(t + 6 * _HOUR_MS, end - 1)
        if _offset_ms(tz, probe) == off:
            t = probe + 1
            continue
        lo, hi = t // 1000, probe // 1000  # the offset is `off` at lo and differs at hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _offset_ms(tz, mid * 1000) == off:
                lo = mid
            else:
                hi = mid
        out.append((a, hi * 1000, off))
        a = t = hi * 1000
        off = _offset_ms(tz, a)
    out.append((a, end, off))
    return out


def local_hours(tz: zoneinfo.ZoneInfo, start: int, end: int) -> tuple[list[int], list[int]]:
    """Split [start, end) (UTC ms) at every local clock-hour change.

    Returns the bucket bounds (n+1 UTC ms) and, per bucket, its local hour as hours since
    1970-01-01T00 local wall time (date, hour and weekday follow by arithmetic). A repeated hour
    when clocks go back is two buckets with the same local hour; a skipped one has no bucket.
    """
    bounds: list[int] = []
    keys: list[int] = []
    for a, b, off in _segments(tz, start, end):
        bounds.append(a)
        keys.append((a + off) // _HOUR_MS)
        t = ((a + off) // _HOUR_MS + 1) * _HOUR_MS - off
        while t < b:
            bounds.append(t)
            keys.append((t + off) // _HOUR_MS)
            t += _HOUR_MS
    bounds.append(end)
    return bounds, keys


def _person_sql(who: tuple[str, ...]) -> str:
    return f" AND person IN ({', '.join('?' * len(who))})" if who else ""


def _count(con: sqlite3.Connection, lo: dt.datetime, hi: dt.datetime, who: tuple[str, ...]) -> int:
    sql = f"SELECT count(*) FROM attempts WHERE time >= ? AND time < ?{_person_sql(who)}"
    return int(con.execute(sql, (iso(lo), iso(hi), *who)).fetchone()[0])


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


_DIMENSIONS = ("person", "platform", "surface", "channel")


def _combinations(
    con: sqlite3.Connection, lo: str, hi: str, who: tuple[str, ...], *, large: bool
) -> Iterator[tuple[str | None, str | None, str | None, str | None, int]]:
    """Attempts in [lo, hi) per (person, platform, surface, channel).

    With the review index and many rows: walk the index's distinct prefixes (a few dozen seeks)
    and count each combination's time range on it, which reads only that period's index entries
    and sorts nothing. Otherwise a plain GROUP BY, which is quick for a few thousand rows.
    """
    has_index = con.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (REVIEW_INDEX,)
    ).fetchone()
    if not (large and has_index):
        yield from con.execute(
            "SELECT person, platform, surface, channel, count(*) FROM attempts "
            f"WHERE time >= ? AND time < ?{_person_sql(who)} GROUP BY 1, 2, 3, 4",
            (lo, hi, *who),
        )
        return

    def values(fixed: tuple[str | None, ...]) -> Iterator[str | None]:
        col = _DIMENSIONS[len(fixed)]
        where = "".join(f" AND {c} IS ?" for c in _DIMENSIONS[: len(fixed)])
        base = f"FROM attempts INDEXED BY {REVIEW_INDEX} WHERE 1{where}"
        if con.execute(f"SELECT 1 {base} AND {col} IS NULL LIMIT 1", fixed).fetchone():
            yield None
        v = con.execute(f"SELECT min({col}) {base}", fixed).fetchone()[0]
        while v is not None:
            yield v
            v = con.execute(f"SELECT min({col}) {base} AND {col} > ?", (*fixed, v)).fetchone()[0]

    count = (
        f"SELECT count(*) FROM attempts INDEXED BY {REVIEW_INDEX} WHERE person IS ? AND platform IS ? "
        "AND surface IS ? AND channel IS ? AND time >= ? AND time < ?"
    )
    for p in who or values(()):
        for pl in values((p,)):
            for su in values((p, pl)):
                for ch in values((p, pl, su)):
                    n = con.execute(count, (p, pl, su, ch, lo, hi)).fetchone()[0]
                    if n:
                        yield p, pl, su, ch, n


def compute_stats(
    con: sqlite3.Connection,
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
    known, basis = history_start(con)
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
    start_ms, end_ms = _ms(start), _ms(end)

    # attempts per local clock hour: one index seek and count per hour, no sorting
    bounds, keys = local_hours(tz, start_ms, end_ms)
    payload = json.dumps(_iso_bounds(bounds))
    count_buckets = (
        "WITH b AS (SELECT key AS i, value AS lo, lead(value) OVER (ORDER BY key) AS hi FROM json_each(?)) "
        "SELECT i, (SELECT count(*) FROM attempts WHERE time >= b.lo AND time < b.hi"
        f"{_person_sql(who)}) FROM b WHERE hi IS NOT NULL"
    )
    per_day_map: dict[int, int] = {}
    hour_weekday = [[0] * 24 for _ in range(7)]
    total = 0
    for i, n in con.execute(count_buckets, (payload, *who)):
        k = keys[i]
        day, hour = divmod(k, 24)
        per_day_map[day] = per_day_map.get(day, 0) + n
        hour_weekday[(day + 3) % 7][hour] += n  # 1970-01-01 was a Thursday (weekday 3)
        total += n
    first_day = (start_ms + _offset_ms(tz, start_ms)) // (24 * _HOUR_MS)
    last_day = (end_ms - 1 + _offset_ms(tz, end_ms - 1)) // (24 * _HOUR_MS)
    per_day = [
        (dt.date.fromordinal(_EPOCH_ORDINAL + d), per_day_map.get(d, 0))
        for d in range(first_day, last_day + 1)
    ]
    current, longest = _streaks(per_day)

    # totals per person/platform/surface/channel
    per: list[dict[str, int]] = [{}, {}, {}, {}]
    if total:
        for *cols, n in _combinations(con, iso(start), iso(end), who, large=total > LARGE):
            for d, v in zip(per, cols, strict=True):
                key = v if v is not None else NONE_KEY
                d[key] = d.get(key, 0) + n

    in_period = f"FROM attempts WHERE time >= ? AND time < ?{_person_sql(who)}"
    args = (iso(start), iso(end), *who)
    first = con.execute(f"SELECT time {in_period} ORDER BY time LIMIT 1", args).fetchone()
    last = con.execute(f"SELECT time {in_period} ORDER BY time DESC LIMIT 1", args).fetchone()

    week = dt.timedelta(days=7)
    history = known if known is not None else start
    this_week = Window(end - week, end, _count(con, end - week, end, who), end - week >= history)
    last_week = Window(
        end - 2 * week, end - week, _count(con, end - 2 * week, end - week, who), end - 2 * week >= history
    )
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
        first=parse_stored(first[0]) if first else None,
        last=parse_stored(last[0]) if last else None,
    )


def notes(
    con: sqlite3.Connection,
    start: dt.datetime,
    end: dt.datetime,
    who: tuple[str, ...] = (),
    limit: int = NOTES_LIMIT,
) -> tuple[list[dict[str, Any]], int]:
    """The newest ``limit`` notes typed on the block page in [start, end), and how many there are in all."""
    args = (iso(start), iso(end), *who)
    cond = f"WHERE time >= ? AND time < ?{_person_sql(who)} AND note IS NOT NULL AND note != ''"
    rows = con.execute(
        f"SELECT time, person, platform, surface, note FROM attempts {cond} "
        "ORDER BY time DESC, id DESC LIMIT ?",
        (*args, limit),
    ).fetchall()
    out = [dict(zip(("time", "person", "platform", "surface", "note"), r, strict=True)) for r in rows]
    if len(out) < limit:
        return out, len(out)
    n = con.execute(f"SELECT count(*) FROM attempts {cond}", args).fetchone()[0]
    return out, int(n)


# -- kind words ------------------------------------------------------------------------------------
def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def week_sentence(s: Stats) -> str:
    """This week against last, said gently; no comparison when the journal does not cover both."""
    a, b = s.this_week.count, s.last_week.count
    if not s.last_week.complete:
        return f"Last 7 days: {plural(a, 'attempt')}. There is not yet a full week before it to compare with."
    if a < b:
        return f"Fewer attempts in the last 7 days than in the 7 before: {a:,}, down from {b:,}."
    if a == b == 0:
        return "No attempts in the last 7 days, nor in the 7 before."
    if a == b:
        return f"As many attempts in the last 7 days as in the 7 before ({a:,})."
    if a - b <= b // 10:
        return f"About as many attempts in the last 7 days as in the 7 before ({a:,} and {b:,})."
    return (
        f"A harder week: {a:,} attempts in the last 7 days, {b:,} in the 7 before. "
        "Urges come in waves; noticing them is part of letting them pass."
    )


def streak_sentence(s: Stats, today: dt.date) -> str:
    """The current and longest runs of days without an attempt, in words."""
    cur, best = s.current_streak_days, s.longest_streak_days
    last = s.per_day[-1][0]
    is_today = last == today
    if cur == 0:
        text = (
            "Today has had an attempt; tomorrow is a new day."
            if is_today
            else f"The last day of this period, {last:%a %-d %b}, had an attempt."
        )
    elif cur == len(s.per_day):
        text = f"{plural(cur, 'day')} in a row without an attempt: every day of this period."
    else:
        end = "today included" if is_today else f"up to {last:%a %-d %b}"
        text = f"{plural(cur, 'day')} in a row without an attempt, {end}."
    if best > cur:
        text += f" Your longest stretch so far: {plural(best, 'day')}."
    return text


SURFACE_TITLES = {
    "profile": "Profiles",
    "stories": "Stories",
    "posts": "Posts",
    "presence": "Online status",
    "search": "Searches",
    "messages": "Messages",
    "client": "Web clients",
}
CHANNEL_TITLES = {"web": "In the browser", "app": "In an app", "bypass": "Around the block"}


def platform_title(name: str) -> str:
    from zerocontact.rules.platforms import presets

    p = presets().get(name)
    return p.title if p else name


# -- the HTML report ---------------------------------------------------------------------------------
def _template_env() -> jinja2.Environment:
    import jinja2  # only the report needs it: every other command starts faster

    root = resources.files("zerocontact.daemon").joinpath("templates")
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: root.joinpath(name).read_text(encoding="utf-8")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _day_chart(s: Stats) -> dict[str, Any]:
    """Geometry for the per-day bar chart (an SVG viewBox 720 wide)."""
    width, height, top = 720.0, 150.0, 8.0
    n = len(s.per_day)
    slot = width / n
    gap = min(slot * 0.2, 3.0) if slot > 2 else 0.0
    peak = max((c for _, c in s.per_day), default=0) or 1
    bars: list[dict[str, Any]] = []
    quiet: list[dict[str, Any]] = []
    for i, (d, c) in enumerate(s.per_day):
        x = i * slot
        label = f"{d:%a %-d %b %Y}: {plural(c, 'attempt') if c else 'no attempts'}"
        if c:
            h = max((height - top) * c / peak, 2.0)
            bars.append(
                {"x": x + gap / 2, "y": height - h, "w": max(slot - gap, 0.6), "h": h, "label": label}
            )
        else:
            quiet.append({"cx": x + slot / 2, "r": min(max(slot * 0.22, 1.0), 3.5), "label": label})
    # date labels: the first day, then the first of each month (or each year for long periods)
    labels: list[dict[str, Any]] = []
    step_months = 1 if n <= 200 else 3 if n <= 600 else 12
    for i, (d, _) in enumerate(s.per_day):
        if i == 0 or (d.day == 1 and (d.month - 1) % step_months == 0):
            x = i * slot
            if labels and x - labels[-1]["x"] < 70:
                if i == 0:
                    continue
                labels.pop()
            fmt = "%-d %b" if n <= 200 else "%b %Y"
            labels.append({"x": x, "text": d.strftime(fmt), "end": x > width - 60})
    return {"width": width, "height": height, "bars": bars, "quiet": quiet, "labels": labels, "peak": peak}


def _heat_chart(s: Stats) -> dict[str, Any]:
    """Geometry for the hour × weekday map (7 rows of 24 cells)."""
    peak = max((c for row in s.hour_weekday for c in row), default=0) or 1
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    long_days = ["Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays"]
    cells = []
    for w, row in enumerate(s.hour_weekday):
        for h, c in enumerate(row):
            cells.append(
                {
                    "x": 44 + h * 27,
                    "y": 4 + w * 27,
                    "level": round(0.12 + 0.88 * c / peak, 3) if c else 0,
                    "label": f"{long_days[w]} {h:02d}:00–{h:02d}:59: {plural(c, 'attempt') if c else 'none'}",
                }
            )
    return {"cells": cells, "days": days, "hours": list(range(0, 24, 3))}


def _bars(counts: dict[str, int], title: Any) -> list[dict[str, Any]]:
    peak = max(counts.values(), default=0) or 1
    total = sum(counts.values()) or 1
    return [
        {
            "label": title(k) if k != NONE_KEY else "Not recorded",
            "count": c,
            "w": max(260.0 * c / peak, 2.0),
            "pct": round(100 * c / total),
        }
        for k, c in counts.items()
    ]


def _best_hours(s: Stats) -> str | None:
    """'evenings (18:00–23:59)' and such: the part of the day that holds the most attempts."""
    if not s.total:
        return None
    parts = [
        ("nights (00:00–05:59)", range(0, 6)),
        ("mornings (06:00–11:59)", range(6, 12)),
        ("afternoons (12:00–17:59)", range(12, 18)),
        ("evenings (18:00–23:59)", range(18, 24)),
    ]
    sums = [(sum(row[h] for row in s.hour_weekday for h in hours), name) for name, hours in parts]
    n, name = max(sums)
    return f"Most attempts came in the {name}: {round(100 * n / s.total)}% of them."


def render_report(
    s: Stats, notes_: list[dict[str, Any]], notes_total: int, *, generated: dt.datetime, tz: zoneinfo.ZoneInfo
) -> str:
    """The self-contained HTML report: inline SVG, inline CSS, no scripts, nothing fetched."""
    from .blockpage import describe

    def local(t: dt.datetime) -> str:
        return f"{t.astimezone(tz):%a %-d %b %Y, %H:%M}"

    first_day, last_day = s.per_day[0][0], s.per_day[-1][0]
    today = local_date(generated, tz)
    return str(
        _template_env()
        .get_template("report.html")
        .render(
            s=s,
            period_text=(
                f"{first_day:%-d %B %Y} – "
                + ("today" if last_day == today else f"{last_day:%-d %B %Y}")
                + f" · {plural(len(s.per_day), 'day')} · {s.timezone}"
            ),
            basis=PERIOD_BASIS.get(s.basis, ""),
            generated=local(generated),
            week_sentence=week_sentence(s),
            streak_sentence=streak_sentence(s, today),
            hours_sentence=_best_hours(s),
            days_with=len(s.per_day) - s.zero_days,
            first=local(s.first) if s.first else None,
            last=local(s.last) if s.last else None,
            day_chart=_day_chart(s),
            heat=_heat_chart(s),
            groups=[
                ("What you tried to see", _bars(s.per_surface, lambda k: SURFACE_TITLES.get(k, k.title()))),
                ("Where", _bars(s.per_platform, platform_title)),
                ("Whom", _bars(s.per_person, str)),
                ("How", _bars(s.per_channel, lambda k: CHANNEL_TITLES.get(k, k))),
            ],
            notes=[
                {
                    "when": local(parse_stored(n["time"])),
                    "iso": n["time"],
                    "what": describe(n["platform"], n["surface"]) if n["platform"] else "",
                    "text": n["note"],
                }
                for n in notes_
            ],
            notes_total=notes_total,
            plural=plural,
        )
    )


# -- export ----------------------------------------------------------------------------------------
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def columns(con: sqlite3.Connection) -> list[str]:
    """The attempts table's columns, in order (whatever the schema version adds, export carries)."""
    return [r[1] for r in con.execute("PRAGMA table_info(attempts)")]


def export_csv(rows: Iterable[dict[str, Any]], cols: Sequence[str], out: TextIO) -> int:
    """Attempts as CSV with a header row; returns how many.

    For spreadsheets: a text cell starting with = + - @ (which a spreadsheet would run as a
    formula) gets a leading ' as OWASP advises. Use JSON for an exact copy.
    """
    w = csv.writer(out, lineterminator="\n")
    w.writerow(cols)
    n = 0
    for row in rows:
        w.writerow(
            [
                "'" + v if isinstance(v, str) and v.startswith(_FORMULA_START) else v
                for v in map(row.get, cols)
            ]
        )
        n += 1
    return n


def export_json(rows: Iterable[dict[str, Any]], cols: Sequence[str], out: TextIO, *, now: dt.datetime) -> int:
    """Attempts as ``{"exported_at", "attempts": [{column: value, …}, …]}``, exact; returns how many."""
    out.write(f'{{"exported_at": {json.dumps(iso(now))}, "attempts": [')
    n = 0
    for row in rows:
        item = json.dumps({c: row.get(c) for c in cols}, ensure_ascii=False)
        out.write(("," if n else "") + "\n  " + item)
        n += 1
    out.write("\n]}\n")
    return n


# -- forget ----------------------------------------------------------------------------------------
def count_before(path: Path, before: dt.datetime) -> tuple[int, str | None]:
    """How many attempts ``forget`` would delete, and the oldest one's time."""
    with reading(path) as con:
        n = con.execute("SELECT count(*) FROM attempts WHERE time < ?", (iso(before),)).fetchone()[0]
        oldest = con.execute("SELECT time FROM attempts ORDER BY time LIMIT 1").fetchone()
    return int(n), (oldest[0] if oldest and n else None)


def forget(path: Path, before: dt.datetime, *, batch: int = 5000, busy_timeout: float = 30.0) -> int:
    """Delete every attempt (and its note) from before ``before``, for good; returns how many.

    Safe while the daemon writes: its own connection, a busy timeout, and ``BEGIN IMMEDIATE``
    batches of ``batch`` rows (oldest first) so the writer never waits long. ``secure_delete``
    overwrites the freed pages, and the WAL is checkpointed when nobody is reading, so the deleted
    text does not linger in the file. Learned ids and daemon events are kept. The journal remembers
    the horizon (meta ``forgotten_before``) so ``stats`` never counts those days as attempt-free.
    """
    if not path.exists():
        raise JournalError(f"no journal at {path}: there is nothing to forget")
    cutoff = iso(before)
    try:
        con = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout)
    except sqlite3.Error as e:
        raise JournalError(f"cannot open {path} ({e})") from e
    total = 0
    try:
        con.execute("PRAGMA secure_delete = ON")
        con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        while True:
            con.execute("BEGIN IMMEDIATE")
            try:
                n = con.execute(
                    "DELETE FROM attempts WHERE id IN "
                    "(SELECT id FROM attempts WHERE time < ? ORDER BY time LIMIT ?)",
                    (cutoff, batch),
                ).rowcount
                if n:
                    con.execute(
                        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                        "SET value = max(value, excluded.value)",
                        (FORGOTTEN_KEY, cutoff),
                    )
                con.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
                raise
            total += n
            if n < batch:
                break
        if total:
            with contextlib.suppress(sqlite3.Error):
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.DatabaseError as e:
        raise JournalError(
            f"cannot forget in {path} ({e}); {total} attempts were deleted before this happened"
        ) from e
    finally:
        con.close()
    return total


def ensure_review_index(path: Path) -> None:
    """Create the index that keeps ``stats`` fast on large journals (for the daemon to call at start)."""
    con = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        con.execute(REVIEW_INDEX_SQL)
    finally:
        con.close()
