"""The journal's writer: one thread, fed by a bounded buffer, the only code that records attempts.

Proxy hooks and the process watcher call ``record``/``bump``/``note``/``learned``/``event`` and return
at once: they only append to an in-memory buffer. The writer thread takes what is buffered in
batches, one transaction each (``BEGIN IMMEDIATE``, ``synchronous=FULL``), and reports each commit.
Opening the file (and refusing one that is not ours) is ``files``'; reading it back is ``reader``'s.

What the journal promises, because a log that loses entries is a real harm:

- Attempts, notes, events and everything else are committed at once, or, while they keep coming,
  at most ``COMMIT_GAP`` (10 ms) after the last commit: the attempts of a burst share transactions,
  and a crash in one can lose its last 10 ms, never an attempt reported committed. *Bumps* (one more
  request of a look already recorded) wait up to ``BUMP_GROUP_SECONDS`` for company, so that a page
  or client repeating a blocked request 1,000 times a second costs a few transactions a second, not
  1,000 fsyncs: a crash can lose that fraction of a second of repeat counts, never an attempt.
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
- A file that is not a zerocontact journal of this or an older version is never changed (``files``
  refuses it). The user moves it aside (the error says so); the next retry then starts a new
  journal and writes what waited.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import itertools
import logging
import math
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BadJournalFile, JournalError
from .files import BUSY_TIMEOUT, connect
from .schema import iso

log = logging.getLogger("zerocontact.journal")

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
    "surfaces",
)
# A key already stored (a batch retried after a commit that did go through) is skipped; anything
# else wrong with a row (a NOT NULL column left empty) is an error, never silently ignored.
_INSERT = (
    f"INSERT INTO attempts ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)}) "
    "ON CONFLICT (key) DO NOTHING"
)

# What the daemon keeps about the person's devices (schema.PASSTHROUGH_TABLE_SQL, DEVICE_SEEN_TABLE_SQL).
_DEVICE_SQL = {
    "pass": "INSERT INTO passthrough (device, host, fingerprint, since, checked) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (device, host, fingerprint) DO UPDATE SET checked = max(checked, excluded.checked)",
    # a NULL host or fingerprint: every one of them (the device was removed, or took the certificate)
    "unpass": "DELETE FROM passthrough WHERE device = ?1 AND (?2 IS NULL OR host = ?2) "
    "AND (?3 IS NULL OR fingerprint = ?3)",
    "seen": "INSERT INTO device_seen (device, time) VALUES (?, ?) "
    "ON CONFLICT (device) DO UPDATE SET time = max(time, excluded.time)",
}

# At most this many entries wait in memory (README: "up to 100,000 attempts"): while the disk refuses
# writes, or in a burst that outruns the writer (which takes 100,000+ attempts/s for a second; the
# writer commits ~50,000/s). An entry is one attempt, note, process name, learned id or event; the
# further requests of one page load fold into a single entry. Past the bound the oldest entries are
# dropped: the log says so once, ``Journal.dropped`` counts them, and ``Journal.error`` shows the
# count while the disk refuses.
MEMORY_BOUND = 100_000
BATCH = 2000  # entries per transaction: big enough for 20,000+ attempts/s with an fsync per commit
# While attempts come faster than this apart (a burst of reloads, a script), the ones that arrive
# within it of the last commit share the next one: one transaction, one fsync, and the writer woken
# once, for several attempts (its CPU per attempt in a burst of 250/s: 350-440 -> 220-270 us, and
# less of the GIL taken from the proxy's loop). A lone attempt is committed at once.
COMMIT_GAP = 0.01
BUMP_GROUP_SECONDS = 0.2  # how long bumps alone wait, so that the repeats of a burst share a commit
RETRY_SECONDS = 2.0  # how often the writer retries a journal it cannot write, even with nothing new


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


_KEYS_AT_ONCE = 256
_keys: list[str] = []
_keys_lock = threading.Lock()


def new_key() -> str:
    """A random attempt key (16 hex digits, from the OS's CSPRNG), taken from a pool made 256 at a
    time: ``os.urandom`` lets go of the GIL, and each call for one key handed it to another thread
    in the middle of a blocked request (the journal's writer, woken by the previous attempt)."""
    with _keys_lock:
        if not _keys:
            raw = secrets.token_bytes(8 * _KEYS_AT_ONCE)
            _keys.extend(raw[i : i + 8].hex() for i in range(0, len(raw), 8))
        return _keys.pop()


if hasattr(os, "register_at_fork"):  # a forked child must never hand out its parent's keys
    os.register_at_fork(after_in_child=_keys.clear)


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
        self._urgent = False  # an entry other than a bump waits: write it now, or COMMIT_GAP after the last
        self._bumps_until: float | None = None  # bumps alone wait until then (monotonic)
        self._hurry = False  # someone waits in flush: no gap between commits
        self._last_commit = -math.inf  # when the last transaction ended (monotonic)
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

    def bump(self, key: str, t: dt.datetime, surface: str | None = None) -> None:
        """Fold one more request (of the same look) into an attempt; ``surface``: one it revealed."""
        when = iso(t)
        with self._cv:
            buf = self._buf
            if buf and self._head + len(buf) - 1 >= self._taken:
                last = buf[-1]
                if last[0] == "bump" and last[1][0] == key:
                    last[1][1] += 1
                    last[1][2] = when
                    if surface:
                        last[1][3].add(surface)
                    return
        self._put(["bump", [key, 1, when, {surface} if surface else set()]])

    def set_process(self, key: str, process: str) -> None:
        self._put(["process", (process[:200], key)])

    def note(self, key: str, text: str) -> None:
        self._put(["note", (text[:500], key)])

    def learned(self, platform: str, value: str, person: str) -> None:
        self._put(["learned", (platform, value, person, iso(utcnow()))])

    def keep_state(self, name: str, text: str) -> None:
        """Keep one commitment state file's content (in-force rules, pending, started) in the journal."""
        self._put(["state", (name, text, iso(utcnow()))])

    def hidden(self, day: dt.date, platform: str, removed: int, missed: int = 0) -> None:
        """Count entries kept out of sight today (and responses that could not be rewritten): added
        to the day's figure, folded into the entry still waiting for the same day and platform."""
        when = day.isoformat()
        with self._cv:
            buf = self._buf
            if buf and self._head + len(buf) - 1 >= self._taken:
                last = buf[-1]
                if last[0] == "hidden" and last[1][0] == when and last[1][1] == platform:
                    last[1][2] += removed
                    last[1][3] += missed
                    return
        self._put(["hidden", [when, platform, removed, missed]])

    def event(self, kind: str, detail: str = "") -> None:
        self._put(["event", (iso(utcnow()), kind, detail)])

    def passed_through(
        self, device: str, host: str, fingerprint: str, since: dt.datetime, checked: dt.datetime
    ) -> None:
        """Remember that an app on ``device`` refused the certificate for ``host`` (``pinning``)."""
        self._put(["devices", ("pass", (device, host, fingerprint, iso(since), iso(checked)))])

    def not_passed_through(
        self, device: str, host: str | None = None, fingerprint: str | None = None
    ) -> None:
        """Forget passed-through apps: one (device, host, fingerprint), or every one of ``device``."""
        self._put(["devices", ("unpass", (device, host, fingerprint))])

    def device_seen(self, device: str, t: dt.datetime) -> None:
        """The time of a device's latest connection through the tunnel."""
        self._put(["devices", ("seen", (device, iso(t)))])

    def _put(self, entry: _Entry) -> None:
        with self._cv:
            if len(self._buf) >= MEMORY_BOUND:
                self._buf.popleft()
                self._head += 1
                self.dropped += 1
            self._buf.append(entry)
            was = self._urgent, self._bumps_until
            if entry[0] != "bump":
                self._urgent = True
            elif self._bumps_until is None:
                self._bumps_until = time.monotonic() + BUMP_GROUP_SECONDS
            # the writer already waits for a deadline that covers this entry unless it was idle or
            # this entry brings the deadline forward: waking it for nothing takes the GIL from the loop
            if was != (self._urgent, self._bumps_until) or len(self._buf) == 1:
                self._cv.notify_all()

    @property
    def buffered(self) -> int:
        """Entries waiting to be written."""
        return len(self._buf)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is committed (for shutdown and tests); False on timeout."""
        with self._cv:
            target = self._head + len(self._buf)
            self._urgent = self._hurry = True  # whoever waits does not wait for bumps to gather
            self._cv.notify_all()
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
                        now = time.monotonic()
                        if self._urgent:
                            # a full batch, or someone in flush, has nothing to gather for
                            soon = self._hurry or len(self._buf) >= BATCH
                            wait = 0.0 if soon else self._last_commit + COMMIT_GAP - now
                        else:
                            wait = (self._bumps_until or 0.0) - now
                        if wait <= 0:
                            break
                        self._cv.wait(wait)  # gather: bumps for a while, attempts for the gap
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
            if self._con is not None and self._replaced():
                self._reopen_after_move()
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
        except BadJournalFile as e:
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

    def _replaced(self) -> bool:
        """Whether the file at ``path`` is no longer the one the connection writes to (moved away,
        deleted or replaced): writing on would put every later attempt in a file nobody will read."""
        try:
            st = os.stat(self.path)
        except OSError:
            return True
        return (st.st_dev, st.st_ino) != self._checked

    def _reopen_after_move(self) -> None:
        """Close the connection to the moved file (SQLite checkpoints its WAL into it, so what was
        committed stays with it) and open whatever is at ``path`` now: a new journal if nothing is."""
        assert self._con is not None
        with contextlib.suppress(sqlite3.Error):
            # the write-ahead log still goes by the old name: fold it into the moved file now, or
            # the next file at this name would find it (and SQLite would set it aside as orphaned)
            self._con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with contextlib.suppress(sqlite3.Error):
            self._con.close()
        self._con = None
        self._checked = None
        with contextlib.suppress(OSError):  # the moved file's log, emptied by the checkpoint
            wal = self.path.with_name(self.path.name + "-wal")
            if wal.stat().st_size == 0:
                wal.unlink()
        log.warning("journal: %s was moved or replaced; writing to the file now at that name", self.path)
        self.event("journal replaced", f"{self.path} was moved, deleted or replaced while the daemon ran")

    def _take(self) -> tuple[int, list[_Entry]]:
        with self._cv:
            batch = list(itertools.islice(self._buf, BATCH))
            start = self._head
            self._taken = start + len(batch)
            # what is left over (a backlog past BATCH) is written next: at once while a full batch waits
            self._urgent = len(batch) < len(self._buf)
            self._bumps_until = None
            self._hurry = False
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
        self._last_commit = time.monotonic()
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
        kept: dict[str, tuple[str, str, str]] = {}
        device_ops: list[tuple[str, tuple[Any, ...]]] = []  # in order: a forget undoes what came before
        hidden: dict[tuple[str, str], list[int]] = {}
        for kind, v in entries:
            if kind == "attempt":
                t = iso(v.time)
                rows.append(
                    (
                        *(v.key, t, t, v.person, v.platform, v.surface, v.channel),
                        *(v.method, v.host, v.path, v.rule, v.process, v.detail, v.note),
                        v.surface or "",
                    )
                )
            elif kind == "bump":
                b = bumps.setdefault(v[0], [0, v[2], set()])
                b[0] += v[1]
                b[1] = max(b[1], v[2])
                b[2] |= v[3]
            elif kind == "process":
                process.append(v)
            elif kind == "note":
                notes.append(v)
            elif kind == "learned":
                learned.append(v)
            elif kind == "event":
                events.append(v)
            elif kind == "state":
                kept[v[0]] = v  # the last of a batch wins
            elif kind == "devices":
                device_ops.append(v)
            elif kind == "hidden":
                h = hidden.setdefault((v[0], v[1]), [0, 0])
                h[0] += v[2]
                h[1] += v[3]
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
                    [(n, t, key) for key, (n, t, _) in bumps.items()],
                )
                widened = [(key, sorted(s)) for key, (_, _, s) in bumps.items() if s]
                for key, more in widened:  # rare: a look that revealed a second surface
                    row = con.execute("SELECT surfaces FROM attempts WHERE key = ?", (key,)).fetchone()
                    if row is not None:
                        known = {x for x in str(row[0]).split(",") if x}
                        con.execute(
                            "UPDATE attempts SET surfaces = ? WHERE key = ?",
                            (",".join(sorted(known | set(more))), key),
                        )
            if process:
                con.executemany("UPDATE attempts SET process = ? WHERE key = ?", process)
            if notes:
                con.executemany("UPDATE attempts SET note = ? WHERE key = ?", notes)
            if learned:
                con.executemany("INSERT OR IGNORE INTO learned VALUES (?, ?, ?, ?)", learned)
            if events:
                con.executemany("INSERT INTO events (time, kind, detail) VALUES (?, ?, ?)", events)
            if kept:
                con.executemany(
                    "INSERT INTO state (name, value, time) VALUES (?, ?, ?) ON CONFLICT (name) "
                    "DO UPDATE SET value = excluded.value, time = excluded.time",
                    list(kept.values()),
                )
            for op, args in device_ops:
                con.execute(_DEVICE_SQL[op], args)
            if hidden:
                con.executemany(
                    "INSERT INTO hidden (day, platform, removed, missed) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (day, platform) DO UPDATE SET removed = removed + excluded.removed, "
                    "missed = missed + excluded.missed",
                    [(d, p, r, m) for (d, p), (r, m) in hidden.items()],
                )
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                con.execute("ROLLBACK")
            raise
        return len(rows), last
