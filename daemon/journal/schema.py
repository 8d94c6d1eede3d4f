"""The journal's tables, indexes and time format, and the upgrade of older journals.

Everything that says what the SQLite file holds lives here, once: the schema a new journal gets,
the steps that bring an older one up to date (``MIGRATIONS``), each index's definition, the meta
keys, and how times are stored (UTC ISO 8601 text, ``iso``). The writer, the readers and ``forget``
all follow these definitions instead of spelling them again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from .errors import BadJournalFile

log = logging.getLogger("zerocontact.journal")

SCHEMA_VERSION = 6

# Each index is defined once: a new journal gets it from SCHEMA, an older one from the MIGRATIONS
# step that added it. A different index needs a new name and a new step.
PERSON_TIME_INDEX_SQL = "CREATE INDEX attempts_person_time ON attempts (person, time)"
# The index that makes the per-person/platform/surface/channel totals a few index range counts rather
# than a sort of every row (1M attempts: ~0.08 s instead of ~1.2 s). ``stats`` uses it when it
# exists and is correct without it.
REVIEW_INDEX = "attempts_review"
REVIEW_INDEX_SQL = (
    f"CREATE INDEX IF NOT EXISTS {REVIEW_INDEX} ON attempts (person, platform, surface, channel, time)"
)

# The commitment's own state (the rules in force, pending loosenings, when each block started),
# kept here as well as in the state directory's files: the journal is the durable, integrity-checked
# store, so a deleted or edited state file is restored from it at start (and noticed).
STATE_TABLE_SQL = "CREATE TABLE state (name TEXT PRIMARY KEY, value TEXT NOT NULL, time TEXT NOT NULL)"

# An attempt from one of the person's devices (a WireGuard peer) has "device NAME" in ``process``:
# no process is known on a phone, and device names cannot look like "name (pid)" (no parentheses).
DEVICE_PREFIX = "device "

# The person's devices (WireGuard peers), as the daemon knows them across restarts:
# - ``passthrough``: the apps on a device that refused zerocontact's certificate (pinning), by the
#   device, the host and the app's TLS greeting (``pinning.fingerprint``): passed through untouched
#   from then on, after a restart too, and re-checked now and then (``checked``: when last tried).
# - ``device_seen``: when each device's last connection came through the tunnel (``doctor``).
PASSTHROUGH_TABLE_SQL = """CREATE TABLE passthrough (
    device TEXT NOT NULL, host TEXT NOT NULL, fingerprint TEXT NOT NULL,
    since TEXT NOT NULL,               -- when the app first refused the certificate
    checked TEXT NOT NULL,             -- when it last refused it (a re-check that failed)
    PRIMARY KEY (device, host, fingerprint)
)"""
DEVICE_SEEN_TABLE_SQL = "CREATE TABLE device_seen (device TEXT PRIMARY KEY, time TEXT NOT NULL)"
# Attempts on a device (``process`` is "device NAME") for the per-device figures of ``stats``: a
# partial index holds only those rows, so it costs the computer's own attempts nothing.
DEVICE_INDEX = "attempts_device"
DEVICE_CONDITION = f"process LIKE '{DEVICE_PREFIX}%'"
DEVICE_INDEX_SQL = (
    f"CREATE INDEX IF NOT EXISTS {DEVICE_INDEX} ON attempts (process, person, time) WHERE {DEVICE_CONDITION}"
)

# Entries kept out of sight (removed from mixed lists: feeds, trays, suggestions), counted per local
# day (the rules' time zone when counted) and platform, never one row per entry: a scrolled feed
# removes hundreds, and these are exposure spared, not attempts. ``missed``: responses with their
# entries that could not be rewritten safely and were passed on unchanged.
HIDDEN_TABLE_SQL = """CREATE TABLE hidden (
    day TEXT NOT NULL,                 -- local date, YYYY-MM-DD
    platform TEXT NOT NULL,
    removed INTEGER NOT NULL DEFAULT 0,
    missed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, platform)
)"""

# The current schema, for a new journal. A change here needs a step in MIGRATIONS.
SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE attempts (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,          -- random, handed to the block page for its note
    time TEXT NOT NULL,                -- UTC, ISO 8601
    last_time TEXT NOT NULL,           -- the last request folded into this attempt
    person TEXT,
    platform TEXT,
    surface TEXT,
    channel TEXT NOT NULL,             -- web | app | bypass
    method TEXT,
    host TEXT,
    path TEXT,                         -- path only: no query, cookies or headers are ever stored
    rule TEXT,
    process TEXT,
    detail TEXT,
    note TEXT,
    requests INTEGER NOT NULL DEFAULT 1, -- the requests of this one look (page load, view)
    surfaces TEXT NOT NULL DEFAULT ''  -- every surface the look revealed, comma-separated, sorted
)""",
    "CREATE INDEX attempts_time ON attempts (time)",
    PERSON_TIME_INDEX_SQL,
    REVIEW_INDEX_SQL,
    """CREATE TABLE learned (
    platform TEXT NOT NULL, value TEXT NOT NULL, person TEXT NOT NULL, time TEXT NOT NULL,
    PRIMARY KEY (platform, value, person)
)""",
    """CREATE TABLE events (id INTEGER PRIMARY KEY, time TEXT NOT NULL, kind TEXT NOT NULL,
                     detail TEXT NOT NULL DEFAULT '')""",
    STATE_TABLE_SQL,
    PASSTHROUGH_TABLE_SQL,
    DEVICE_SEEN_TABLE_SQL,
    DEVICE_INDEX_SQL,
    HIDDEN_TABLE_SQL,
)
# MIGRATIONS[v] turns a version-v journal into version v+1; all steps run in one transaction.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 1 → 2: the review filters ask for one person over a period (`log --person Sam --since 7d`,
    # `stats --person`); without this index that is a scan of every attempt ever recorded.
    1: (PERSON_TIME_INDEX_SQL,),
    # 2 → 3: `stats` totals per person, platform, surface and channel come from this index alone,
    # so a year of attempts is summed in a fraction of a second.
    2: (REVIEW_INDEX_SQL,),
    # 3 → 4: one attempt is one look; the surfaces it revealed are kept together (a page load that
    # shows stories and the profile is one attempt with both), and the commitment state is kept too.
    3: (
        "ALTER TABLE attempts ADD COLUMN surfaces TEXT NOT NULL DEFAULT ''",
        "UPDATE attempts SET surfaces = COALESCE(surface, '')",
        STATE_TABLE_SQL,
    ),
    # 4 → 5: the person's devices: apps passed through (pinning) are remembered across restarts,
    # each device's last connection is kept for ``doctor``, and ``stats`` counts per device.
    4: (PASSTHROUGH_TABLE_SQL, DEVICE_SEEN_TABLE_SQL, DEVICE_INDEX_SQL),
    # 5 → 6: the daily "kept out of sight" counts (the feed surface); older days simply have none.
    5: (HIDDEN_TABLE_SQL,),
}

_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()

# meta key: attempts before this UTC instant were forgotten, so days before it are unknown, not empty
FORGOTTEN_KEY = "forgotten_before"


def iso(t: dt.datetime) -> str:
    """An instant as the journal stores it: UTC, milliseconds, ``Z`` (so text order is time order)."""
    return t.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_ms(instants: Sequence[int]) -> list[str]:
    """Instants in UTC ms as ``iso`` writes them, fast: one date string per day, arithmetic for the
    rest (``stats`` hands the journal one bound per local clock hour, tens of thousands a year)."""
    out = []
    days: dict[int, str] = {}
    for ms in instants:
        day, rest = divmod(ms, 86_400_000)
        d = days.get(day)
        if d is None:
            d = days[day] = dt.date.fromordinal(_EPOCH_ORDINAL + day).isoformat()
        h, rest = divmod(rest, 3_600_000)
        m, rest = divmod(rest, 60_000)
        sec, milli = divmod(rest, 1000)
        out.append(f"{d}T{h:02d}:{m:02d}:{sec:02d}.{milli:03d}Z")
    return out


def parse_stored(text: str) -> dt.datetime:
    """A time as the journal stores it (``iso``), back to an aware instant."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def version_of(con: sqlite3.Connection, path: Path) -> int:
    """The schema version of an open database: 0 if it is empty; BadJournalFile if it is not ours."""
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return 0
    if not {"meta", "attempts"} <= tables:
        shown = ", ".join(sorted(tables)[:5])
        raise BadJournalFile(
            f"{path} is an SQLite database of another application (tables: {shown}), not a "
            "zerocontact journal"
        )
    row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None or not str(row[0]).isdigit():
        raise BadJournalFile(f"{path} is not a zerocontact journal (it has no schema version)")
    return int(row[0])


def newer(path: Path, version: int) -> BadJournalFile:
    """The error for a journal written by a newer zerocontact (never changed by this one)."""
    return BadJournalFile(
        f"{path} was written by a newer zerocontact (journal schema {version}; this one knows "
        f"{SCHEMA_VERSION})",
        "upgrade zerocontact to write to it (it has not changed this file)",
    )


def migrate(con: sqlite3.Connection, path: Path) -> None:
    """Create the schema in an empty file or upgrade an older one: one transaction, all or nothing."""
    con.execute("BEGIN IMMEDIATE")
    try:
        version = version_of(con, path)  # again, under the write lock: another writer may have
        if version > SCHEMA_VERSION:  # created or upgraded it since it was inspected
            raise newer(path, version)
        if version == 0:
            for statement in SCHEMA:
                con.execute(statement)
            con.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif version < SCHEMA_VERSION:
            log.warning("journal: upgrading %s from schema %d to %d", path, version, SCHEMA_VERSION)
            for v in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[v]:
                    con.execute(statement)
            con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            con.execute("ROLLBACK")
        raise


def ensure_review_index(path: Path) -> None:
    """Create the index that keeps ``stats`` fast on large journals, where it is missing."""
    con = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        con.execute(REVIEW_INDEX_SQL)
    finally:
        con.close()
