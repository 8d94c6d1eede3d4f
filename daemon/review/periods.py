"""Periods in the user's own days: dates as people write them, time zones, and local clock hours.

The journal stores UTC, but days follow the user's local time zone, so everything that turns one
into the other is here, pure (``now`` and the zone are passed in, never read): a user's
``--since``/``--until`` to an instant, the first instant of a local day (DST gaps included), and a
period split at every local clock-hour change (UTC boundaries computed from the zone's own offsets,
which handles daylight-saving days of 23 or 25 hours and half- or quarter-hour zones), so that
``stats`` can have the journal count each hour with one seek on the time index.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

from zerocontact.rules.errors import UserFacingError

HOUR_MS = 3_600_000
EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_DAY_SPAN = re.compile(r"^\s*(\d+)\s*([dw])\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?\s*(w|d|h|m|min|s)\s*)+$", re.IGNORECASE)


class ReviewError(UserFacingError):
    """A problem the user can fix (a bad date, an unknown zone, an empty period); the message says how."""


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


def utc_ms(t: dt.datetime) -> int:
    """An instant as milliseconds since 1970 (UTC), the unit local hours are computed in."""
    return (t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)


def offset_ms(tz: zoneinfo.ZoneInfo, ms: int) -> int:
    """The zone's UTC offset at an instant (UTC ms), in ms."""
    off = dt.datetime.fromtimestamp(ms // 1000, tz).utcoffset()
    assert off is not None
    return off // dt.timedelta(milliseconds=1)


def _segments(tz: zoneinfo.ZoneInfo, start: int, end: int) -> list[tuple[int, int, int]]:
    """[(from_ms, to_ms, utc_offset_ms)] covering [start, end) with the zone's offset constant in each.

    The offset is sampled every 6 hours and each change is bisected to the second (zones change
    offset at whole seconds, and never twice within 6 hours).
    """
    out: list[tuple[int, int, int]] = []
    a, off = start, offset_ms(tz, start)
    t = start
    while t < end:
        probe = min(t + 6 * HOUR_MS, end - 1)
        if offset_ms(tz, probe) == off:
            t = probe + 1
            continue
        lo, hi = t // 1000, probe // 1000  # the offset is `off` at lo and differs at hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if offset_ms(tz, mid * 1000) == off:
                lo = mid
            else:
                hi = mid
        out.append((a, hi * 1000, off))
        a = t = hi * 1000
        off = offset_ms(tz, a)
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
        keys.append((a + off) // HOUR_MS)
        t = ((a + off) // HOUR_MS + 1) * HOUR_MS - off
        while t < b:
            bounds.append(t)
            keys.append((t + off) // HOUR_MS)
            t += HOUR_MS
    bounds.append(end)
    return bounds, keys
