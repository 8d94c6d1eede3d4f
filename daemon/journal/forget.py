"""Forgetting: deleting attempts older than a date, for the user (``zerocontact forget``) and for
``[settings] retention`` (the daemon, daily).

The only writer besides the writer thread, so it is careful with it: its own connection, a busy
timeout, and short ``BEGIN IMMEDIATE`` batches that wait for the daemon's writer rather than fail.
It records the horizon (meta ``forgotten_before``, ``schema.FORGOTTEN_KEY``) so that ``stats``
never counts the forgotten days as days without an attempt.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from pathlib import Path

from .errors import JournalError
from .reader import reading
from .schema import FORGOTTEN_KEY, iso


def count_before(path: Path, before: dt.datetime) -> tuple[int, str | None]:
    """How many attempts ``forget`` would delete, and the oldest one's time."""
    with reading(path) as r:
        con = r.con
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
            # the log keeps a trace that it was shortened, and by whom: never a silent gap
            con.execute(
                "INSERT INTO events (time, kind, detail) VALUES (?, 'forgot', ?)",
                (iso(dt.datetime.now(dt.UTC)), f"{total} attempt(s) from before {cutoff}"),
            )
            with contextlib.suppress(sqlite3.Error):
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error as e:
        raise JournalError(
            f"cannot forget in {path} ({e}); {total} attempts were deleted before this happened"
        ) from e
    finally:
        con.close()
    return total
