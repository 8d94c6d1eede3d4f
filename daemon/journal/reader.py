"""Reading the journal back: attempts with filters, counts, learned ids, and every figure ``stats`` needs.

Every query on the journal that is not the writer's or ``forget``'s is here, so the review code
(``daemon/review/``) gets plain rows and counts and never sees SQL. Readers open the file read-only
on their own connection, so they work while the daemon writes (WAL readers never wait) and when it
is stopped. A damaged journal still gives the attempts that can be read (``attempts`` salvages);
an SQLite failure found mid-query becomes a ``JournalError`` that names the file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import JournalError
from .files import open_readonly
from .schema import (
    DEVICE_CONDITION,
    DEVICE_INDEX,
    DEVICE_PREFIX,
    FORGOTTEN_KEY,
    REVIEW_INDEX,
    iso,
    iso_ms,
    parse_stored,
)

log = logging.getLogger("zerocontact.journal")

_MAX_ROWID = 2**63 - 1
_PID_SUFFIX = re.compile(r" \(\d+\)$")
LARGE = 20_000  # above this many attempts in a period, totals use the review index (when it exists)
DAMAGED_HINT = "zerocontact log and zerocontact export still give the attempts that can be read"


# -- attempts, from whatever can still be read ------------------------------------------------------
def _sane(d: dict[str, Any]) -> bool:
    """Whether a row read from a damaged journal can be a real attempt.

    SQLite reads the missing part of a truncated file as zeros: whole pages of them give rows of
    NULLs, and a row cut in the middle keeps its first columns but has NULs for the rest. A real
    attempt has its NOT NULL columns, no NUL in any text, a parseable time and ``requests`` >= 1.
    """
    if not (isinstance(d.get("id"), int) and isinstance(d.get("requests"), int) and d["requests"] >= 1):
        return False
    if not all(isinstance(d.get(c), str) for c in ("key", "time", "last_time", "channel")):
        return False
    if any(isinstance(v, bytes) or (isinstance(v, str) and "\x00" in v) for v in d.values()):
        return False
    try:
        dt.datetime.fromisoformat(d["time"].replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _salvage(con: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every attempt that can still be read from a damaged journal, walking the table by id and
    skipping over the ranges SQLite cannot read (doubling the jump, then narrowing it down).
    """
    rows: list[dict[str, Any]] = []

    def readable(after: int) -> bool:
        try:
            con.execute("SELECT id FROM attempts WHERE id > ? ORDER BY id LIMIT 1", (after,)).fetchall()
        except sqlite3.DatabaseError:
            return False
        return True

    after = 0
    while after < _MAX_ROWID:
        try:
            for r in con.execute("SELECT * FROM attempts WHERE id > ? ORDER BY id", (after,)):
                d = dict(r)
                if _sane(d) and d["id"] > after:  # ids only grow: the walk always moves on
                    rows.append(d)
                    after = d["id"]
            break
        except sqlite3.DatabaseError:
            pass
        step = 1
        while after + step < _MAX_ROWID and not readable(after + step):
            step *= 2
        if after + step >= _MAX_ROWID:
            break
        lo, hi = step // 2, step  # readable(after + hi); narrow down to lose as few rows as possible
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if readable(after + mid):
                hi = mid
            else:
                lo = mid
        after += hi
    return rows


def attempts(
    path: Path, limit: int | None = None, since: dt.datetime | None = None
) -> Iterator[dict[str, Any]]:
    """Attempts, newest first. From a damaged journal: those that can be read, with a warning that
    names the file; JournalError if none can.
    """
    con = open_readonly(path)
    try:
        sql = "SELECT * FROM attempts"
        args: list[Any] = []
        if since:
            sql += " WHERE time >= ?"
            args.append(iso(since))
        sql += " ORDER BY time DESC, id DESC"
        if limit:
            sql += " LIMIT ?"
            args.append(limit)
        n = 0
        last: tuple[str, int] | None = None
        problem: sqlite3.DatabaseError | str
        try:
            cur = con.execute(sql, args)
            for row in iter(cur.fetchone, None):
                d = dict(row)
                if not _sane(d):
                    problem = "it holds rows that are not attempts"
                    break
                yield d
                n += 1
                last = (d["time"], d["id"])
            else:
                return
        except sqlite3.DatabaseError as e:
            problem = e
        rows = [
            d
            for d in _salvage(con)
            if (since is None or d["time"] >= iso(since)) and (last is None or (d["time"], d["id"]) < last)
        ]
        if not rows and n == 0:
            raise JournalError(f"{path} is damaged ({problem}): no attempt in it can be read")
        log.warning(
            "journal: %s is damaged (%s); showing only the attempts that can still be read", path, problem
        )
        rows.sort(key=lambda d: (d["time"], d["id"]), reverse=True)
        for d in rows:
            if limit and n >= limit:
                return
            yield d
            n += 1
    finally:
        con.close()


def count_since(path: Path, since: dt.datetime) -> int:
    """Attempts since a time (0 if the journal is missing or cannot be read: enforcement comes first)."""
    try:
        con = open_readonly(path)
    except JournalError:
        return 0
    try:
        return int(con.execute("SELECT count(*) FROM attempts WHERE time >= ?", (iso(since),)).fetchone()[0])
    except sqlite3.DatabaseError as e:
        log.warning("journal: cannot count the attempts in %s (%s)", path, e)
        return 0
    finally:
        con.close()


def learned_ids(path: Path) -> list[tuple[str, str, str]]:
    """The identifiers learned so far, (platform, value, person); those readable if it is damaged."""
    try:
        con = open_readonly(path)
    except JournalError:
        return []
    got: list[tuple[str, str, str]] = []
    try:
        for r in con.execute("SELECT platform, value, person FROM learned"):
            got.append((r[0], r[1], r[2]))
    except sqlite3.DatabaseError as e:
        log.warning("journal: some learned ids in %s cannot be read (%s)", path, e)
    finally:
        con.close()
    return got


def kept_state(path: Path) -> dict[str, str]:
    """The commitment state the daemon kept in the journal (name → text), {} when there is none
    (no journal yet, a journal from before schema 4, or one that cannot be read)."""
    try:
        con = open_readonly(path)
    except JournalError:
        return {}
    try:
        return {str(r[0]): str(r[1]) for r in con.execute("SELECT name, value FROM state")}
    except sqlite3.DatabaseError:
        return {}
    finally:
        con.close()


def passed_through(path: Path) -> list[tuple[str, str, str, dt.datetime, dt.datetime]]:
    """The apps passed through untouched on the person's devices (``pinning``): (device, host,
    fingerprint, since, last checked); [] when there are none or none can be read (before schema 5,
    a missing or damaged journal: each app is then found again by its first refused connection)."""
    try:
        con = open_readonly(path)
    except JournalError:
        return []
    try:
        return [
            (str(r[0]), str(r[1]), str(r[2]), parse_stored(r[3]), parse_stored(r[4]))
            for r in con.execute("SELECT device, host, fingerprint, since, checked FROM passthrough")
        ]
    except (sqlite3.DatabaseError, ValueError) as e:
        log.warning("journal: the passed-through apps in %s cannot be read (%s)", path, e)
        return []
    finally:
        con.close()


def devices_seen(path: Path) -> dict[str, dt.datetime]:
    """When each device's latest connection came through the tunnel; {} when none is known."""
    try:
        con = open_readonly(path)
    except JournalError:
        return {}
    try:
        return {str(r[0]): parse_stored(r[1]) for r in con.execute("SELECT device, time FROM device_seen")}
    except (sqlite3.DatabaseError, ValueError):
        return {}
    finally:
        con.close()


# -- filters ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Filters:
    """Which attempts: a time range [since, until) and, per column, any of the given values.

    ``person`` holds names as stored (see ``JournalReader.resolve_people``); the other columns are
    lowercase ids.
    """

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    person: tuple[str, ...] = ()
    platform: tuple[str, ...] = ()
    surface: tuple[str, ...] = ()
    channel: tuple[str, ...] = ()
    device: tuple[str, ...] = ()  # device names (``devices add``); their attempts name them in process

    def _columns(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return (
            ("person", self.person),
            ("platform", tuple(v.lower() for v in self.platform)),
            ("surface", tuple(v.lower() for v in self.surface)),
            ("channel", tuple(v.lower() for v in self.channel)),
            ("process", tuple(DEVICE_PREFIX + v.lower() for v in self.device)),
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
        return bool(
            self.since
            or self.until
            or self.person
            or self.platform
            or self.surface
            or self.channel
            or self.device
        )


def _select(
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
    """Filtered attempts on their own connection; if the file turns out damaged part-way, the rest
    comes from what can still be read (``attempts`` salvages), with ``on_damage`` told once.
    """
    con = open_readonly(path)
    n = 0
    last: tuple[str, int] | None = None
    try:
        try:
            for d in _select(con, filters, limit, newest_first=newest_first):
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

    rows = [d for d in attempts(path) if filters.matches(d) and after(d)]  # newest first
    if not newest_first:
        rows.reverse()
    for d in rows:
        if limit is not None and n >= limit:
            return
        yield d
        n += 1


# -- one open journal, for the review commands -------------------------------------------------------
@contextlib.contextmanager
def reading(path: Path) -> Iterator[JournalReader]:
    """The journal opened read-only; an SQLite failure found mid-query (a damaged page) becomes a
    JournalError that names the file."""
    con = open_readonly(path)
    try:
        yield JournalReader(con)
    except sqlite3.DatabaseError as e:
        raise JournalError(f"{path} is damaged ({e}); {DAMAGED_HINT}") from e
    finally:
        con.close()


def _person_sql(who: tuple[str, ...]) -> str:
    return f" AND person IN ({', '.join('?' * len(who))})" if who else ""


_DIMENSIONS = ("person", "platform", "surface", "channel")


class JournalReader:
    """Plain rows and counts from one read-only connection (see ``reading``).

    Periods are [start, end) instants and ``who`` the people as stored (everyone when empty); the
    review code computes with what comes back and never writes SQL itself. ``con`` is for the
    journal's own modules.
    """

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    # -- rows ------------------------------------------------------------------------------------
    def select_attempts(
        self, filters: Filters, limit: int | None = None, *, newest_first: bool = True
    ) -> Iterator[dict[str, Any]]:
        """Attempts matching ``filters`` (newest first, or oldest first), streamed from SQLite."""
        return _select(self.con, filters, limit, newest_first=newest_first)

    def columns(self) -> list[str]:
        """The attempts table's columns, in order (whatever the schema version adds, export carries)."""
        return [r[1] for r in self.con.execute("PRAGMA table_info(attempts)")]

    def people(self) -> list[str]:
        """The people the journal names, sorted (a skip-scan: a few index seeks, not a scan)."""
        con = self.con
        out: list[str] = []
        v = con.execute("SELECT min(person) FROM attempts").fetchone()[0]
        while v is not None:
            out.append(v)
            v = con.execute("SELECT min(person) FROM attempts WHERE person > ?", (v,)).fetchone()[0]
        return out

    def resolve_people(self, names: Sequence[str]) -> tuple[tuple[str, ...], list[str]]:
        """The journal's spelling of each name given (matched ignoring case), and the names it lacks.

        Filtering on the exact stored names keeps the query on the (person, time) index.
        """
        if not names:
            return (), []
        known = self.people()
        found: list[str] = []
        missing: list[str] = []
        for name in names:
            hits = [p for p in known if p.casefold() == name.strip().casefold()]
            found.extend(h for h in hits if h not in found)
            if not hits:
                missing.append(name)
        return tuple(found), missing

    def notes(
        self, start: dt.datetime, end: dt.datetime, who: tuple[str, ...], *, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """The newest ``limit`` notes typed on the block page in [start, end), and how many in all."""
        con = self.con
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

    # -- what stats needs --------------------------------------------------------------------------
    def hidden(self, first_day: dt.date, last_day: dt.date) -> list[tuple[dt.date, str, int, int]]:
        """(day, platform, entries kept out of sight, responses missed) for each local day in
        [first_day, last_day] that has any; none from a journal older than schema 6 (no such table)."""
        con = self.con
        if con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='hidden'").fetchone() is None:
            return []
        rows = con.execute(
            "SELECT day, platform, removed, missed FROM hidden WHERE day >= ? AND day <= ? "
            "ORDER BY day, platform",
            (first_day.isoformat(), last_day.isoformat()),
        ).fetchall()
        out = []
        for day, platform, removed, missed in rows:
            with contextlib.suppress(ValueError, TypeError):
                out.append((dt.date.fromisoformat(day), str(platform), int(removed), int(missed)))
        return out

    def history_start(self) -> tuple[dt.datetime | None, str]:
        """Since when the journal knows every attempt, and why: the daemon's first start (``rules``),
        else the first attempt (``first_attempt``), moved later by ``forget`` (``forgotten``: days
        before that are unknown, not attempt-free); ``(None, "empty")`` for an empty journal."""
        con = self.con
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

    def count(self, start: dt.datetime, end: dt.datetime, who: tuple[str, ...]) -> int:
        """Attempts in [start, end)."""
        sql = f"SELECT count(*) FROM attempts WHERE time >= ? AND time < ?{_person_sql(who)}"
        return int(self.con.execute(sql, (iso(start), iso(end), *who)).fetchone()[0])

    def count_per_bucket(self, bounds: Sequence[int], who: tuple[str, ...]) -> Iterator[tuple[int, int]]:
        """(i, attempts in [bounds[i], bounds[i+1])) for consecutive UTC ms bounds: one index seek and
        count per bucket, no sorting (``stats`` asks for one bucket per local clock hour)."""
        payload = json.dumps(iso_ms(bounds))
        count_buckets = (
            "WITH b AS (SELECT key AS i, value AS lo, lead(value) OVER (ORDER BY key) AS hi "
            "FROM json_each(?)) "
            "SELECT i, (SELECT count(*) FROM attempts WHERE time >= b.lo AND time < b.hi"
            f"{_person_sql(who)}) FROM b WHERE hi IS NOT NULL"
        )
        for i, n in self.con.execute(count_buckets, (payload, *who)):
            yield int(i), int(n)

    def first_and_last(
        self, start: dt.datetime, end: dt.datetime, who: tuple[str, ...]
    ) -> tuple[dt.datetime | None, dt.datetime | None]:
        """The times of the first and the last attempt in [start, end), or None."""
        in_period = f"FROM attempts WHERE time >= ? AND time < ?{_person_sql(who)}"
        args = (iso(start), iso(end), *who)
        first = self.con.execute(f"SELECT time {in_period} ORDER BY time LIMIT 1", args).fetchone()
        last = self.con.execute(f"SELECT time {in_period} ORDER BY time DESC LIMIT 1", args).fetchone()
        return (parse_stored(first[0]) if first else None), (parse_stored(last[0]) if last else None)

    def per_device(self, start: dt.datetime, end: dt.datetime, who: tuple[str, ...]) -> dict[str, int]:
        """Attempts in [start, end) on each of the person's devices (device name → count; the
        computer's own are not counted here). With the device index (schema 5): a few seeks per
        device and person on an index of only the devices' rows; on an older journal, a scan of the
        period."""
        con = self.con
        lo, hi = iso(start), iso(end)
        people = _person_sql(who)
        has_index = con.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (DEVICE_INDEX,)
        ).fetchone()
        counts: dict[str, int] = {}
        if not has_index:
            rows = con.execute(
                f"SELECT process, count(*) FROM attempts WHERE {DEVICE_CONDITION} AND time >= ? AND "
                f"time < ?{people} GROUP BY process",
                (lo, hi, *who),
            ).fetchall()
        else:
            base = f"FROM attempts INDEXED BY {DEVICE_INDEX} WHERE {DEVICE_CONDITION}"
            count = f"SELECT count(*) {base} AND process = ? AND person IS ? AND time >= ? AND time < ?"
            rows = []
            v = con.execute(f"SELECT min(process) {base}").fetchone()[0]
            while v is not None:
                n = 0
                for person in who or self._people_on(base, v):
                    n += con.execute(count, (v, person, lo, hi)).fetchone()[0]
                rows.append((v, n))
                v = con.execute(f"SELECT min(process) {base} AND process > ?", (v,)).fetchone()[0]
        for process, n in rows:
            name = str(process).removeprefix(DEVICE_PREFIX)
            # a process of this computer named "device…" reads "device x (1234)": not a device
            if n and not _PID_SUFFIX.search(name):
                counts[name] = counts.get(name, 0) + int(n)
        return counts

    def _people_on(self, base: str, process: str) -> Iterator[str | None]:
        """The people (and None) of one device's attempts: a skip-scan of the device index."""
        con = self.con
        if con.execute(f"SELECT 1 {base} AND process = ? AND person IS NULL LIMIT 1", (process,)).fetchone():
            yield None
        v = con.execute(f"SELECT min(person) {base} AND process = ?", (process,)).fetchone()[0]
        while v is not None:
            yield v
            v = con.execute(
                f"SELECT min(person) {base} AND process = ? AND person > ?", (process, v)
            ).fetchone()[0]

    def totals(
        self, start: dt.datetime, end: dt.datetime, who: tuple[str, ...], *, expected: int
    ) -> Iterator[tuple[str | None, str | None, str | None, str | None, int]]:
        """Attempts in [start, end) per (person, platform, surface, channel); ``expected`` is how many
        the period holds in all, which decides how they are counted.

        With the review index and many rows (more than ``LARGE``): walk the index's distinct
        prefixes (a few dozen seeks) and count each combination's time range on it, which reads only
        that period's index entries and sorts nothing. Otherwise a plain GROUP BY, which is quick for
        a few thousand rows.
        """
        con = self.con
        lo, hi = iso(start), iso(end)
        has_index = con.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (REVIEW_INDEX,)
        ).fetchone()
        if not (expected > LARGE and has_index):
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
