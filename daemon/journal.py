"""The blocked-attempts journal: one SQLite file (WAL), written by one thread fed by a queue.

Proxy hooks and the process watcher call ``record``/``note``/``learned`` and return at once; the
writer thread batches what is queued into transactions. Readers (``zerocontact log``) open the file
read-only and work whether or not the daemon is running.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("zerocontact.journal")

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (
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
    requests INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS attempts_time ON attempts (time);
CREATE TABLE IF NOT EXISTS learned (
    platform TEXT NOT NULL, value TEXT NOT NULL, person TEXT NOT NULL, time TEXT NOT NULL,
    PRIMARY KEY (platform, value, person)
);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, time TEXT NOT NULL, kind TEXT NOT NULL,
                                   detail TEXT NOT NULL DEFAULT '');
"""
_COLUMNS = (
    "key",
    "time",
    "last_time",
    "person",
    "platform",
    "surface",
    "channel",
    "method",
    "host",
    "path",
    "rule",
    "process",
    "detail",
    "note",
)
_INSERT = (
    f"INSERT OR IGNORE INTO attempts ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)})"
)
MEMORY_BOUND = 100_000  # attempts kept in memory while the disk refuses writes; documented in README


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_key() -> str:
    return secrets.token_hex(8)


@dataclass(slots=True)
class Attempt:
    """One urge acted on: what was stopped, when, and how (never cookies, query strings or bodies)."""

    time: dt.datetime
    person: str | None
    platform: str | None
    surface: str | None
    channel: str = "web"
    method: str | None = None
    host: str | None = None
    path: str | None = None
    rule: str | None = None
    process: str | None = None
    detail: str | None = None
    note: str | None = None
    key: str = field(default_factory=new_key)


class JournalError(Exception):
    """The journal file cannot be used; the message names the file and what to do."""


def _create_private(path: Path) -> None:
    """Create the database file 0600 before SQLite touches it (its WAL and SHM inherit the mode)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating or upgrading) the journal for writing."""
    _create_private(path)
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")  # a committed attempt survives a crash or power loss
        _migrate(con, path)
    except sqlite3.DatabaseError as e:
        con.close()
        raise JournalError(
            f"{path} is not a zerocontact journal or is damaged ({e}); move it aside "
            "to start a new one (nothing was changed)"
        ) from e
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", 0o600)
    return con


def _migrate(con: sqlite3.Connection, path: Path) -> None:
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if tables and "meta" not in tables:
        raise JournalError(f"{path} is an SQLite file but not a zerocontact journal; refusing to touch it")
    con.executescript(SCHEMA)
    row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    version = int(row[0]) if row else 0
    if version > SCHEMA_VERSION:
        raise JournalError(f"{path} was written by a newer zerocontact (schema {version}); upgrade first")
    if version < SCHEMA_VERSION:
        con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))


class Journal:
    """Owns the writer thread. All public methods are cheap and never touch the disk themselves."""

    def __init__(self, path: Path, on_commit: Callable[[int, int], None] | None = None) -> None:
        self.path = path
        self._q: queue.Queue[tuple[str, Any] | None] = queue.Queue()
        self._con = connect(path)
        self._on_commit = on_commit
        self._thread = threading.Thread(target=self._run, name="zerocontact-journal", daemon=True)
        self._pending: list[tuple[str, Any]] = []
        self.error: str | None = None
        self.written = 0

    def start(self) -> None:
        self._thread.start()

    def record(self, a: Attempt) -> str:
        self._q.put(("attempt", a))
        return a.key

    def bump(self, key: str, t: dt.datetime) -> None:
        """Fold one more request (of the same page load or burst) into an attempt."""
        self._q.put(("bump", (key, iso(t))))

    def set_process(self, key: str, process: str) -> None:
        self._q.put(("process", (key, process[:200])))

    def note(self, key: str, text: str) -> None:
        self._q.put(("note", (key, text[:500])))

    def learned(self, platform: str, value: str, person: str) -> None:
        self._q.put(("learned", (platform, value, person, iso(utcnow()))))

    def event(self, kind: str, detail: str = "") -> None:
        self._q.put(("event", (iso(utcnow()), kind, detail)))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is committed (for shutdown and tests)."""
        done = threading.Event()
        self._q.put(("flush", done))
        return done.wait(timeout)

    def close(self) -> None:
        self._q.put(None)
        self._thread.join(timeout=15)
        self._con.close()

    # -- the writer thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                self._write_pending()
                return
            batch = [item]
            while len(batch) < 2000:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._q.put(None)
                    break
                batch.append(nxt)
            flushes = [b[1] for b in batch if b[0] == "flush"]
            self._pending.extend(b for b in batch if b[0] != "flush")
            if len(self._pending) > MEMORY_BOUND:
                dropped = len(self._pending) - MEMORY_BOUND
                del self._pending[:dropped]
                log.error("journal: %d attempts dropped: the disk has refused writes for too long", dropped)
            self._write_pending()
            for f in flushes:
                f.set()

    def _write_pending(self) -> None:
        if not self._pending:
            return
        try:
            attempts = self._apply(self._pending)
        except sqlite3.Error as e:
            if self.error is None:
                log.error(
                    "journal: cannot write %s (%s); attempts are kept in memory (up to %d) and "
                    "written when it works again",
                    self.path,
                    e,
                    MEMORY_BOUND,
                )
            self.error = f"cannot write {self.path}: {e}"
            time.sleep(0.5)  # this thread only: back off before the next try
            return
        if self.error:
            log.warning("journal: writing again; %d queued entries saved", len(self._pending))
            self.error = None
        self._pending.clear()
        if attempts:
            self.written += attempts
            last = self._con.execute("SELECT max(id) FROM attempts").fetchone()[0] or 0
            log.info("journal: committed %d attempt(s), %d in all, up to #%d", attempts, self.written, last)
            if self._on_commit:
                self._on_commit(attempts, last)

    def _apply(self, items: list[tuple[str, Any]]) -> int:
        con = self._con
        n = 0
        con.execute("BEGIN IMMEDIATE")
        try:
            for kind, v in items:
                if kind == "attempt":
                    d = asdict(v)
                    d["time"] = d["last_time"] = iso(v.time)
                    con.execute(_INSERT, d)
                    n += 1
                elif kind == "bump":
                    con.execute(
                        "UPDATE attempts SET requests = requests + 1, last_time = ? WHERE key = ?",
                        (v[1], v[0]),
                    )
                elif kind == "process":
                    con.execute("UPDATE attempts SET process = ? WHERE key = ?", (v[1], v[0]))
                elif kind == "note":
                    con.execute("UPDATE attempts SET note = ? WHERE key = ?", (v[1], v[0]))
                elif kind == "learned":
                    con.execute("INSERT OR IGNORE INTO learned VALUES (?, ?, ?, ?)", v)
                elif kind == "event":
                    con.execute("INSERT INTO events (time, kind, detail) VALUES (?, ?, ?)", v)
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                con.execute("ROLLBACK")
            raise
        return n


# -- reading -------------------------------------------------------------------------------------
def open_readonly(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise JournalError(
            f"no journal at {path} yet: nothing has been blocked (is the daemon running "
            "with this state directory?)"
        )
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        con.row_factory = sqlite3.Row
        con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    except sqlite3.DatabaseError as e:
        raise JournalError(f"{path} cannot be read as a zerocontact journal ({e})") from e
    return con


def attempts(
    path: Path, limit: int | None = None, since: dt.datetime | None = None
) -> Iterator[dict[str, Any]]:
    """Attempts, newest first."""
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
        for row in con.execute(sql, args):
            yield dict(row)
    finally:
        con.close()


def count_since(path: Path, since: dt.datetime) -> int:
    try:
        con = open_readonly(path)
    except JournalError:
        return 0
    try:
        return int(con.execute("SELECT count(*) FROM attempts WHERE time >= ?", (iso(since),)).fetchone()[0])
    finally:
        con.close()


def learned_ids(path: Path) -> list[tuple[str, str, str]]:
    try:
        con = open_readonly(path)
    except JournalError:
        return []
    try:
        return [(r[0], r[1], r[2]) for r in con.execute("SELECT platform, value, person FROM learned")]
    finally:
        con.close()
