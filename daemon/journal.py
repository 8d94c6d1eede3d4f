"""The blocked-attempts journal: one SQLite file (WAL), written by one thread fed by a bounded buffer.

Proxy hooks and the process watcher call ``record``/``bump``/``note``/``learned``/``event`` and return
at once: they only append to an in-memory buffer. The writer thread takes what is buffered in
batches, one transaction each (``BEGIN IMMEDIATE``, ``synchronous=FULL``), and reports each commit.
Readers (``zerocontact log``) open the file read-only and work whether or not the daemon is running.

What the journal promises, because a log that loses entries is a real harm:

- An attempt reported committed (``on_commit``, or the ``committed … up to #N`` log line) is on disk:
  it survives SIGKILL or power loss.
- Several processes may write the same file (the proxy and the process watcher): each transaction
  takes the write lock up front and waits for it (``BUSY_TIMEOUT``); a write that still fails is
  kept and retried, never dropped.
- When the file cannot be written (disk full, read-only state directory, a damaged, foreign or newer
  file) enforcement goes on: nothing raises or waits, ``Journal.error`` says what is wrong and names
  the file (``zerocontact status`` shows it), the log says it once at ERROR, and up to
  ``MEMORY_BOUND`` entries wait in memory. The writer retries every ``RETRY_SECONDS``, even when
  nothing new arrives, and writes them as soon as it can.
- A file that is not a zerocontact journal of this or an older version is never changed: not
  truncated, not overwritten, not converted. The user moves it aside (the error says so); the next
  retry then starts a new journal and writes what waited.
- Older journals are upgraded in place, in one transaction (``MIGRATIONS``).
- The journal and its ``-wal``/``-shm`` files are 0600, a directory the journal creates is 0700.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import itertools
import logging
import os
import secrets
import sqlite3
import stat
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zerocontact.rules.errors import UserFacingError

log = logging.getLogger("zerocontact.journal")

SCHEMA_VERSION = 3
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
    requests INTEGER NOT NULL DEFAULT 1
)""",
    "CREATE INDEX attempts_time ON attempts (time)",
    "CREATE INDEX attempts_person_time ON attempts (person, time)",
    "CREATE INDEX attempts_review ON attempts (person, platform, surface, channel, time)",
    """CREATE TABLE learned (
    platform TEXT NOT NULL, value TEXT NOT NULL, person TEXT NOT NULL, time TEXT NOT NULL,
    PRIMARY KEY (platform, value, person)
)""",
    """CREATE TABLE events (id INTEGER PRIMARY KEY, time TEXT NOT NULL, kind TEXT NOT NULL,
                     detail TEXT NOT NULL DEFAULT '')""",
)
# MIGRATIONS[v] turns a version-v journal into version v+1; all steps run in one transaction.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 1 → 2: the review filters ask for one person over a period (`log --person Sam --since 7d`,
    # `stats --person`); without this index that is a scan of every attempt ever recorded.
    1: ("CREATE INDEX attempts_person_time ON attempts (person, time)",),
    # 2 → 3: `stats` totals per person, platform, surface and channel come from this index alone,
    # so a year of attempts is summed in a fraction of a second.
    2: ("CREATE INDEX IF NOT EXISTS attempts_review ON attempts (person, platform, surface, channel, time)",),
}

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
# A key already stored (a batch retried after a commit that did go through) is skipped; anything
# else wrong with a row (a NOT NULL column left empty) is an error, never silently ignored.
_INSERT = (
    f"INSERT INTO attempts ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)}) "
    "ON CONFLICT (key) DO NOTHING"
)

# At most this many entries wait in memory (README: "up to 100,000 attempts"): while the disk refuses
# writes, or in a burst that outruns the writer (which takes 100,000+ attempts/s for a second; the
# writer commits ~50,000/s). An entry is one attempt, note, process name, learned id or event; the
# further requests of one page load fold into a single entry. Past the bound the oldest entries are
# dropped: the log says so once, ``Journal.dropped`` counts them, and ``Journal.error`` shows the
# count while the disk refuses.
MEMORY_BOUND = 100_000
BATCH = 2000  # entries per transaction: big enough for 20,000+ attempts/s with an fsync per commit
RETRY_SECONDS = 2.0  # how often the writer retries a journal it cannot write, even with nothing new
BUSY_TIMEOUT = 5.0  # seconds a transaction waits for another writer's lock before it is retried
_MAX_ROWID = 2**63 - 1
_SQLITE_MAGIC = b"SQLite format 3\x00"
_MOVE_ASIDE = "move it aside and zerocontact starts a new journal (it has not changed this file)"


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


class JournalError(UserFacingError):
    """The journal file cannot be used; the message names the file and what to do."""


class _BadFile(JournalError):
    """The file itself is the problem (damaged, foreign, newer): retrying helps only once it changes.

    ``what`` is the problem alone; the message adds what the daemon's user can do about it.
    """

    def __init__(self, what: str, hint: str = _MOVE_ASIDE) -> None:
        super().__init__(f"{what}; {hint}")
        self.what = what


# -- opening ---------------------------------------------------------------------------------------
def _make_dir(directory: Path) -> None:
    """Create the journal's directory 0700 (whatever the umask); an existing one is left as it is."""
    if directory.is_dir():
        return
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)


def _create_private(path: Path) -> None:
    """Create the database file 0600 before SQLite touches it (its WAL and SHM inherit the mode).

    Never truncates: an existing file is only tightened to 0600 (callers have checked it is ours).
    """
    _make_dir(path.parent)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _tighten_sidecars(path: Path) -> None:
    """SQLite gives ``-wal``/``-shm`` the database's mode; fix ones left looser by anything else."""
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(OSError):
            side = Path(f"{path}{suffix}")
            if stat.S_IMODE(side.stat().st_mode) != 0o600:
                os.chmod(side, 0o600)


def _set_orphans_aside(path: Path) -> None:
    """Before creating a new journal, move away a ``-wal`` left without its database.

    That happens when a user moves a journal aside but not its ``-wal`` (after a crash it holds the
    last committed attempts). SQLite deletes a ``-wal`` it finds beside a new, empty database, so
    it is renamed first, and the log says where; the ``-shm`` is only an index SQLite rebuilds.
    """
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    try:
        size = wal.stat().st_size
    except FileNotFoundError:
        size = None
    if path.exists():  # checked after the -wal: a writer creates the database before its -wal
        return
    if size:
        kept = Path(f"{wal}.orphaned-{dt.datetime.now():%Y%m%d-%H%M%S}")
        os.rename(wal, kept)
        log.warning(
            "journal: %s had no database beside it (was the journal moved without it?); kept as %s: "
            "put it beside the moved journal as <name>-wal to read its last entries",
            wal,
            kept,
        )
    elif size == 0:
        wal.unlink(missing_ok=True)
    shm.unlink(missing_ok=True)


def _why_not(path: Path) -> str:
    """Why a directory refuses writes, for messages where SQLite says only "unable to open"."""
    d = path.parent
    with contextlib.suppress(OSError):
        if os.statvfs(d).f_flag & os.ST_RDONLY:
            return f" ({d} is on a read-only file system)"
        if not os.access(d, os.W_OK | os.X_OK):
            return f" ({d} is not writable: permission denied)"
    return ""


def _uri(path: Path, **params: str) -> str:
    query = urllib.parse.urlencode({"mode": "ro", **params})
    return f"file:{urllib.parse.quote(str(path))}?{query}"


def _journal_version(con: sqlite3.Connection, path: Path) -> int:
    """The schema version of an open database: 0 if it is empty; JournalError if it is not ours."""
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return 0
    if not {"meta", "attempts"} <= tables:
        shown = ", ".join(sorted(tables)[:5])
        raise _BadFile(
            f"{path} is an SQLite database of another application (tables: {shown}), not a "
            "zerocontact journal"
        )
    row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None or not str(row[0]).isdigit():
        raise _BadFile(f"{path} is not a zerocontact journal (it has no schema version)")
    return int(row[0])


def _newer(path: Path, version: int) -> _BadFile:
    return _BadFile(
        f"{path} was written by a newer zerocontact (journal schema {version}; this one knows "
        f"{SCHEMA_VERSION})",
        "upgrade zerocontact to write to it (it has not changed this file)",
    )


def _inspect(path: Path, check: bool) -> int | None:
    """Check an existing file without changing it: its schema version, or None if it is new/empty.

    Raises ``_BadFile`` for anything the writer must not touch: not SQLite, another application's
    database, a newer journal, or one SQLite finds damaged or truncated: at once, or (``check``) by
    ``quick_check`` (about 0.3 s for a million attempts, so the writer runs it once per file).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise _BadFile(f"{path} is not a regular file")
    if st.st_size == 0:
        return None
    with open(path, "rb") as f:
        head = f.read(16)
    if head != _SQLITE_MAGIC:  # never hand SQLite a file that is not SQLite's
        raise _BadFile(f"{path} is not a zerocontact journal (not an SQLite database)")
    # Truncation and damage are SQLite's to judge: a main file shorter than its header says is normal
    # while its -wal still holds pages (a checkpoint cut short by a full disk or a crash); SQLite
    # reads those from the -wal, and reports "malformed" only for pages that are really missing.
    try:
        con = sqlite3.connect(_uri(path), uri=True, timeout=BUSY_TIMEOUT)
    except sqlite3.Error as e:
        raise JournalError(f"cannot open {path}: {e}{_why_not(path)}") from e
    try:
        version = _journal_version(con, path)
        if version > SCHEMA_VERSION:
            raise _newer(path, version)
        problems = [r[0] for r in con.execute("PRAGMA quick_check(3)")] if check else ["ok"]
        if problems != ["ok"]:
            raise _BadFile(f"{path} is damaged ({'; '.join(problems)})")
        return version
    except sqlite3.OperationalError as e:  # locked, I/O error, no -shm: the file may be fine
        raise JournalError(f"cannot read {path}: {e}{_why_not(path)}") from e
    except sqlite3.DatabaseError as e:
        raise _BadFile(f"{path} is damaged ({e})") from e
    finally:
        con.close()


def connect(
    path: Path, on_connect: Callable[[sqlite3.Connection], None] | None = None, *, check: bool = True
) -> sqlite3.Connection:
    """Open the journal for writing: create it, or check an existing one and upgrade it in place.

    Raises ``JournalError`` naming the file for anything that stops it, and leaves a file that is not
    a zerocontact journal of this or an older version exactly as it was (its content and mode).
    ``check`` runs SQLite's ``quick_check`` on an existing file first. ``on_connect`` is called on
    the new connection before anything is written (tests use it to make a disk "full" with
    ``PRAGMA max_page_count``).
    """
    try:
        _make_dir(path.parent)
        if why := _why_not(path):
            raise JournalError(f"cannot write {path}{why}")
        if _inspect(path, check) is None:
            _set_orphans_aside(path)
        _create_private(path)
    except OSError as e:
        raise JournalError(f"cannot open {path}: {e.strerror or e}") from e
    try:
        con = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT)
    except sqlite3.Error as e:
        raise JournalError(f"cannot open {path}: {e}{_why_not(path)}") from e
    try:
        if on_connect:
            on_connect(con)
        mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise JournalError(f"cannot open {path}: SQLite cannot use WAL there (journal_mode={mode})")
        con.execute("PRAGMA synchronous=FULL")  # a committed attempt survives a crash or power loss
        _migrate(con, path)
    except sqlite3.Error as e:
        con.close()
        raise JournalError(f"cannot open {path}: {e}{_why_not(path)}") from e
    except BaseException:
        con.close()
        raise
    _tighten_sidecars(path)
    return con


def _migrate(con: sqlite3.Connection, path: Path) -> None:
    """Create the schema in an empty file or upgrade an older one: one transaction, all or nothing."""
    con.execute("BEGIN IMMEDIATE")
    try:
        version = _journal_version(con, path)  # again, under the write lock: another writer may have
        if version > SCHEMA_VERSION:  # created or upgraded it since _inspect looked
            raise _newer(path, version)
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


# -- writing ---------------------------------------------------------------------------------------
# An entry is [kind, value]; a "bump" value is [key, count, last_time] so that the requests of one
# page load fold into the entry while it still waits.
_Entry = list[Any]

# A batch failing with these is a bad entry (a bug), not a disk problem: written one by one, the bad
# ones are logged and skipped so that they never hold up the rest.
_BAD_ENTRY = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    TypeError,
    ValueError,
    OverflowError,
    AttributeError,
)


class Journal:
    """Owns the writer thread. All public methods are cheap and never touch the disk themselves.

    ``Journal(path)`` never raises and does no I/O; ``start()`` opens (creates, checks, upgrades) the
    file in the writer thread. If that fails (a damaged, foreign or newer file, a read-only or full
    disk) the journal does not raise either: ``error`` says why, naming the file, entries wait in
    memory (``MEMORY_BOUND``), and the writer tries again every ``retry_seconds``, so that once the
    user moves a bad file aside a new journal is created and everything that waited is written.

    ``on_commit(attempts, last_id)`` is called in the writer thread after each transaction that
    committed attempts. ``written`` counts the attempts committed, ``dropped`` the entries lost to
    the memory bound, ``buffered`` is what waits.
    """

    def __init__(
        self,
        path: Path,
        on_commit: Callable[[int, int], None] | None = None,
        *,
        on_connect: Callable[[sqlite3.Connection], None] | None = None,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self.path = path
        self.error: str | None = None
        self.written = 0
        self.dropped = 0
        self.failures = 0  # failed tries since the last success (opening or writing)
        self._on_commit = on_commit
        self._on_connect = on_connect
        self._retry = retry_seconds
        self._con: sqlite3.Connection | None = None
        self._cv = threading.Condition(threading.Lock())
        self._buf: collections.deque[_Entry] = collections.deque()
        self._head = 0  # sequence number of _buf[0]
        self._taken = 0  # entries before this sequence number are being written
        self._written_upto = 0  # every entry before this one is committed (or was dropped)
        self._closing = False
        self._started = False
        self._next_try = 0.0
        self._logged_drop = False
        self._drops_seen = 0
        self._problem: str | None = None  # what stops writing; ``error`` adds what it has cost
        self._bad_file: tuple[int, int, int, int] | None = None  # stat of a file known to be bad
        self._checked: tuple[int, int] | None = None  # (device, inode) of the file quick_check passed
        self._thread = threading.Thread(target=self._run, name="zerocontact-journal", daemon=True)

    # -- the producer side: called from proxy hooks and other threads; never blocks on disk -------
    def start(self) -> None:
        self._started = True
        self._thread.start()

    def record(self, a: Attempt) -> str:
        self._put(["attempt", a])
        return a.key

    def bump(self, key: str, t: dt.datetime) -> None:
        """Fold one more request (of the same page load or burst) into an attempt."""
        when = iso(t)
        with self._cv:
            buf = self._buf
            if buf and self._head + len(buf) - 1 >= self._taken:
                last = buf[-1]
                if last[0] == "bump" and last[1][0] == key:
                    last[1][1] += 1
                    last[1][2] = when
                    return
        self._put(["bump", [key, 1, when]])

    def set_process(self, key: str, process: str) -> None:
        self._put(["process", (process[:200], key)])

    def note(self, key: str, text: str) -> None:
        self._put(["note", (text[:500], key)])

    def learned(self, platform: str, value: str, person: str) -> None:
        self._put(["learned", (platform, value, person, iso(utcnow()))])

    def event(self, kind: str, detail: str = "") -> None:
        self._put(["event", (iso(utcnow()), kind, detail)])

    def _put(self, entry: _Entry) -> None:
        with self._cv:
            if len(self._buf) >= MEMORY_BOUND:
                self._buf.popleft()
                self._head += 1
                self.dropped += 1
            self._buf.append(entry)
            self._cv.notify()

    @property
    def buffered(self) -> int:
        """Entries waiting to be written."""
        return len(self._buf)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is committed (for shutdown and tests); False on timeout."""
        with self._cv:
            target = self._head + len(self._buf)
            return self._cv.wait_for(lambda: self._written_upto >= target, timeout)

    def close(self) -> None:
        """Write what waits (one last try, even while failing), then stop the writer."""
        if not self._started:
            self.start()
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join(timeout=BUSY_TIMEOUT * 3)

    # -- the writer thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException:  # a bug: say so loudly, enforcement is not affected
            log.exception("journal: the writer stopped; attempts are no longer written to %s", self.path)
            self.error = f"the journal writer stopped (a bug); attempts are not written to {self.path}"
        finally:
            if self._con is not None:
                self._con.close()
                self._con = None

    def _loop(self) -> None:
        self._open()
        while True:
            with self._cv:
                while not self._closing:
                    if self._con is None or self._problem is not None:
                        wait = self._next_try - time.monotonic()
                        if wait <= 0:
                            break
                        self._cv.wait(wait)
                    elif self._buf:
                        break
                    else:
                        self._cv.wait()
                closing = self._closing
            if self.dropped > self._drops_seen:
                self._drops_seen = self.dropped
                if not self._logged_drop:
                    self._logged_drop = True
                    log.error(
                        "journal: more than %d entries waited for %s: the oldest are being dropped",
                        MEMORY_BOUND,
                        self.path,
                    )
                self._show_error()
            if self._con is None and not self._open():
                if closing:
                    break
                continue
            ok = self._write_some()
            if closing and (not ok or not self._buf):
                break
        if self._buf:
            log.error(
                "journal: %d entries could not be written to %s and are lost (%s)",
                len(self._buf),
                self.path,
                self.error,
            )

    def _open(self) -> bool:
        """Open the file (after checking it, unless it is a bad file that has not changed)."""
        try:
            st = os.stat(self.path)
            ident: tuple[int, int, int, int] | None = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            ident = None
        if ident is not None and ident == self._bad_file:
            self._failed(None)  # still the same bad file: nothing new to say
            return False
        try:
            check = ident is None or ident[:2] != self._checked
            self._con = connect(self.path, self._on_connect, check=check)
        except _BadFile as e:
            self._bad_file = ident
            self._failed(str(e))
            return False
        except JournalError as e:
            self._failed(str(e))
            return False
        self._bad_file = None
        with contextlib.suppress(OSError):
            st = os.stat(self.path)
            self._checked = (st.st_dev, st.st_ino)
        if not self._buf:
            self._recovered()
        return True

    def _take(self) -> tuple[int, list[_Entry]]:
        with self._cv:
            batch = list(itertools.islice(self._buf, BATCH))
            start = self._head
            self._taken = start + len(batch)
        return start, batch

    def _write_some(self) -> bool:
        """Write one batch. False (and the connection dropped, to reopen next time) if it failed."""
        start, batch = self._take()
        if not batch:
            return True
        try:
            attempts, last = self._apply(batch)
        except _BAD_ENTRY:
            return self._write_one_by_one(start, batch)
        except sqlite3.Error as e:
            self._write_failed(e)
            return False
        self._committed(start, len(batch), attempts, last)
        return True

    def _write_one_by_one(self, start: int, batch: list[_Entry]) -> bool:
        for i, entry in enumerate(batch):
            try:
                attempts, last = self._apply([entry])
            except _BAD_ENTRY as e:
                log.error("journal: an entry could not be written and is skipped (%s): %r", e, entry)
                attempts, last = 0, 0
            except sqlite3.Error as e:
                self._write_failed(e)
                return False
            self._committed(start + i, 1, attempts, last)
        return True

    def _write_failed(self, e: sqlite3.Error) -> None:
        self._failed(f"cannot write {self.path}: {e}")
        with self._cv:
            self._taken = self._head
        if self._con is not None:
            with contextlib.suppress(sqlite3.Error):
                self._con.close()
            self._con = None  # reopen next time: the file may have been moved, remounted or fixed

    def _failed(self, problem: str | None) -> None:
        """Note a failed try (``problem`` None: the same as last time) and when to try again."""
        self.failures += 1
        self._next_try = time.monotonic() + self._retry
        if problem is None:
            return
        if self._problem is None:  # once per episode, not per attempt or per retry
            log.error(
                "journal: %s; blocking goes on, and up to %d entries wait in memory and are written "
                "as soon as the journal can be written again (retrying every %gs)",
                problem,
                MEMORY_BOUND,
                self._retry,
            )
        self._problem = problem
        self._show_error()

    def _show_error(self) -> None:
        if self._problem is None:
            self.error = None
        elif self.dropped:
            self.error = f"{self._problem} ({self.dropped} entries dropped: more than {MEMORY_BOUND} waited)"
        else:
            self.error = self._problem

    def _recovered(self) -> None:
        if self._problem is not None:
            log.warning("journal: writing to %s again; the entries that waited are saved", self.path)
        self._problem = None
        self._show_error()
        self.failures = 0
        self._logged_drop = False

    def _committed(self, start: int, n: int, attempts: int, last: int) -> None:
        with self._cv:
            gone = start + n - self._head  # entries dropped meanwhile have already left the buffer
            for _ in range(max(0, gone)):
                self._buf.popleft()
            self._head = max(self._head, start + n)
            self._taken = self._head
            self._written_upto = max(self._written_upto, start + n)
            self._cv.notify_all()
        if self._problem is not None:
            self._recovered()
        if attempts:
            self.written += attempts
            log.info("journal: committed %d attempt(s), %d in all, up to #%d", attempts, self.written, last)
            if self._on_commit:
                try:
                    self._on_commit(attempts, last)
                except Exception:
                    log.exception("journal: on_commit failed")

    def _apply(self, entries: list[_Entry]) -> tuple[int, int]:
        """Write entries in one transaction: attempts first, then what refers to them. Returns
        (attempts, highest attempt id), read inside the transaction so other writers cannot skew it.
        """
        rows: list[tuple[Any, ...]] = []
        bumps: dict[str, list[Any]] = {}
        process: list[tuple[str, str]] = []
        notes: list[tuple[str, str]] = []
        learned: list[tuple[str, str, str, str]] = []
        events: list[tuple[str, str, str]] = []
        for kind, v in entries:
            if kind == "attempt":
                t = iso(v.time)
                rows.append(
                    (
                        *(v.key, t, t, v.person, v.platform, v.surface, v.channel),
                        *(v.method, v.host, v.path, v.rule, v.process, v.detail, v.note),
                    )
                )
            elif kind == "bump":
                b = bumps.setdefault(v[0], [0, v[2]])
                b[0] += v[1]
                b[1] = max(b[1], v[2])
            elif kind == "process":
                process.append(v)
            elif kind == "note":
                notes.append(v)
            elif kind == "learned":
                learned.append(v)
            elif kind == "event":
                events.append(v)
        con = self._con
        assert con is not None
        con.execute("BEGIN IMMEDIATE")
        try:
            last = 0
            if rows:
                con.executemany(_INSERT, rows)
                last = con.execute("SELECT max(id) FROM attempts").fetchone()[0] or 0
            if bumps:
                con.executemany(
                    "UPDATE attempts SET requests = requests + ?, last_time = max(last_time, ?) "
                    "WHERE key = ?",
                    [(n, t, key) for key, (n, t) in bumps.items()],
                )
            if process:
                con.executemany("UPDATE attempts SET process = ? WHERE key = ?", process)
            if notes:
                con.executemany("UPDATE attempts SET note = ? WHERE key = ?", notes)
            if learned:
                con.executemany("INSERT OR IGNORE INTO learned VALUES (?, ?, ?, ?)", learned)
            if events:
                con.executemany("INSERT INTO events (time, kind, detail) VALUES (?, ?, ?)", events)
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                con.execute("ROLLBACK")
            raise
        return len(rows), last


# -- reading -------------------------------------------------------------------------------------
def open_readonly(path: Path) -> sqlite3.Connection:
    """Open the journal read-only (never changes it). JournalError, naming the file, if it cannot be
    read as a journal at all. A damaged or truncated journal opens if its schema can be read; the
    readers below then return the attempts that can still be read.
    """
    if not path.exists():
        raise JournalError(
            f"no journal at {path} yet: nothing has been blocked (is the daemon running "
            "with this state directory?)"
        )
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise JournalError(f"cannot read {path}: {e.strerror or e}") from e
    if head and head != _SQLITE_MAGIC:
        raise JournalError(f"{path} is not a zerocontact journal (not an SQLite database)")
    try:
        con = sqlite3.connect(_uri(path), uri=True, timeout=30)
    except sqlite3.Error as e:
        raise JournalError(f"cannot read {path}: {e}") from e
    con.row_factory = sqlite3.Row
    try:
        try:
            version = _journal_version(con, path)
        except sqlite3.DatabaseError:
            # SQLite refuses a file shorter than its header says as a whole; with writable_schema
            # (harmless on a read-only connection) it reads the pages that are there.
            con.execute("PRAGMA writable_schema=ON")
            version = _journal_version(con, path)
    except _BadFile as e:
        con.close()
        raise JournalError(e.what) from e
    except sqlite3.DatabaseError as e:
        con.close()
        raise JournalError(f"{path} is damaged and cannot be read ({e})") from e
    if version == 0:
        con.close()
        raise JournalError(f"the journal {path} is empty: nothing has been recorded yet")
    return con


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
