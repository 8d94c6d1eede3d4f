"""The journal never loses an entry it said it kept, and never harms the user's file.

Every test works on real SQLite files in tmp_path; crashes and concurrency use real processes
(``fixtures/journal_writer.py``); a full disk is SQLite's own SQLITE_FULL (``max_page_count``) and,
where the sandbox allows ``mount``, a real full tmpfs; a read-only state directory is a read-only
bind mount as root (root ignores permissions) or a 0500 directory otherwise.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import wait_for
from zerocontact.daemon import journal as journal_mod
from zerocontact.daemon.journal import (
    SCHEMA_VERSION,
    Attempt,
    Journal,
    JournalError,
    attempts,
    count_since,
    learned_ids,
    open_readonly,
)

FIXTURES = Path(__file__).with_name("fixtures")
WRITER = FIXTURES / "journal_writer.py"
V1_JOURNAL = FIXTURES / "journal-v1.sqlite3"
T0 = dt.datetime(2026, 3, 1, 21, 0, tzinfo=dt.UTC)
FAST = 0.05  # retry interval for tests: the writer retries on its own timer


def attempt(i: int, **kw: Any) -> Attempt:
    fields: dict[str, Any] = {
        "time": T0 + dt.timedelta(seconds=i),
        "person": "Sam",
        "platform": "instagram",
        "surface": "profile",
        "method": "GET",
        "host": "www.instagram.com",
        "path": f"/sam.example/{i}/",
        "key": f"t{i:06d}",
    }
    fields.update(kw)
    return Attempt(**fields)


def query(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Read with a plain read-write connection of its own (as another tool would)."""
    con = sqlite3.connect(path, timeout=30)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def keys(path: Path) -> list[str]:
    return [r[0] for r in query(path, "SELECT key FROM attempts ORDER BY id")]


def snapshot(path: Path) -> tuple[str, int, int]:
    """What 'untouched' means: the same bytes, mode and modification time."""
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mode, st.st_mtime_ns


def mode(path: Path | str) -> int:
    return os.stat(path).st_mode & 0o777


@pytest.fixture
def journal_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="zerocontact.journal")
    return caplog


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "zerocontact.journal" and r.levelno == level]


# -- real processes ------------------------------------------------------------------------------
class Writer:
    """``fixtures/journal_writer.py`` in its own process, its stdout read line by line as it comes."""

    def __init__(self, path: Path, count: int, prefix: str, chunk: int = 0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WRITER), str(path), str(count), prefix, str(chunk)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def reported(self) -> int:
        """The highest attempt id the child was told is committed."""
        ids = [int(m[1]) for line in list(self.lines) if (m := re.match(r"committed \d+ up to #(\d+)", line))]
        return max(ids, default=0)

    def finish(self, timeout: float = 120) -> None:
        self.proc.wait(timeout)
        self._reader.join(10)

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read()


def test_sigkill_in_a_burst_keeps_every_reported_attempt_and_the_next_journal_appends(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state" / "journal.sqlite3"
    w = Writer(path, 10_000, "k")
    wait_for(lambda: "ready" in w.lines, 30, "the writer to open its journal")
    w.go()
    wait_for(lambda: w.reported() >= 1000, 60, "a first thousand attempts to be reported committed")
    w.proc.send_signal(signal.SIGKILL)
    w.finish()
    assert w.proc.returncode == -signal.SIGKILL
    assert not any(line.startswith("flushed") for line in w.lines), "killed after the burst, not in it"
    reported = w.reported()  # every report it printed before dying
    assert 1000 <= reported < 10_000

    assert query(path, "PRAGMA integrity_check") == [("ok",)]
    stored = keys(path)
    # ids are handed out in order by the one writer: #1..#N are the first N attempts recorded
    assert stored[:reported] == [f"k{i:06d}" for i in range(reported)]
    assert stored == [f"k{i:06d}" for i in range(len(stored))]  # nothing after a gap, no duplicates

    j = Journal(path)
    j.start()
    j.record(attempt(0, key="after-the-crash"))
    assert j.flush()
    j.close()
    assert j.error is None
    assert query(path, "SELECT id FROM attempts WHERE key = 'after-the-crash'") == [(len(stored) + 1,)]
    assert query(path, "PRAGMA integrity_check") == [("ok",)]


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    # a fresh directory: both also race to create the file and its schema
    path = tmp_path / "state" / "journal.sqlite3"
    writers = [Writer(path, 5000, "a", chunk=100), Writer(path, 5000, "b", chunk=100)]
    for w in writers:
        wait_for(lambda w=w: "ready" in w.lines, 30, "both writers to open the journal")  # type: ignore[misc]
    for w in writers:
        w.go()
    for w in writers:
        w.finish()
        assert w.proc.returncode == 0, w.stderr()
        assert "closed None" in w.lines, w.lines
    started, flushed = (
        [float(line.split()[-1]) for w in writers for line in w.lines if line.startswith(word)]
        for word in ("started ", "flushed True ")
    )
    assert len(flushed) == 2
    # both were writing at the same time (each began before the other had all committed), so one
    # had to wait for the other's write lock
    assert started[0] < flushed[1] and started[1] < flushed[0]
    stored = keys(path)
    assert len(stored) == 10_000
    assert set(stored) == {f"{p}{i:06d}" for p in "ab" for i in range(5000)}
    for p in "ab":  # each process's attempts in its own order
        assert [k for k in stored if k[0] == p] == [f"{p}{i:06d}" for i in range(5000)]
    assert query(path, "PRAGMA integrity_check") == [("ok",)]


# -- a full disk ---------------------------------------------------------------------------------
class Disk:
    """A real SQLITE_FULL: every connection the journal opens may use no more pages than it has."""

    def __init__(self) -> None:
        self.full = True

    def on_connect(self, con: sqlite3.Connection) -> None:
        con.execute(f"PRAGMA max_page_count = {1 if self.full else 1_073_741_823}")  # 1: its current size


def existing_journal(path: Path, n: int = 1) -> None:
    j = Journal(path)
    j.start()
    for i in range(n):
        j.record(attempt(i, key=f"old{i:06d}"))
    assert j.flush()
    j.close()


def test_a_full_disk_keeps_attempts_in_memory_and_writes_them_when_it_has_room(
    tmp_path: Path, journal_log: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state" / "journal.sqlite3"
    existing_journal(path)
    disk = Disk()
    j = Journal(path, on_connect=disk.on_connect, retry_seconds=FAST)
    j.start()
    for i in range(3000):
        key = j.record(attempt(i))
        j.bump(key, T0 + dt.timedelta(seconds=i, milliseconds=500))
    j.note("t000007", "I wanted to see if they were happy")
    j.learned("instagram", "6812345", "Sam")
    wait_for(lambda: j.error, 10, "the journal to report the full disk")
    assert j.error is not None
    assert str(path) in j.error and "full" in j.error
    # enforcement goes on: recording still returns at once and nothing is lost, while the writer
    # retries on its own timer (no new entries needed)
    for i in range(3000, 3100):
        j.record(attempt(i))
    failures = j.failures
    wait_for(lambda: j.failures >= failures + 3, 10, "the writer to retry on its timer")
    assert j.error is not None and j.buffered > 0
    assert len(records(journal_log, logging.ERROR)) == 1, "said once, not per attempt or retry"
    assert str(path) in records(journal_log, logging.ERROR)[0]

    disk.full = False  # room again: nothing new is recorded, the retry timer alone must write it
    wait_for(lambda: j.error is None, 10, "the journal to write again")
    assert j.flush()
    j.close()
    assert keys(path) == ["old000000", *(f"t{i:06d}" for i in range(3100))]
    assert query(path, "SELECT requests FROM attempts WHERE key = 't000001'") == [(2,)]
    assert query(path, "SELECT note FROM attempts WHERE key = 't000007'") == [
        ("I wanted to see if they were happy",)
    ]
    assert learned_ids(path) == [("instagram", "6812345", "Sam")]
    assert len(records(journal_log, logging.ERROR)) == 1
    assert any("writing to" in m and "again" in m for m in records(journal_log, logging.WARNING))


def test_memory_is_bounded_while_the_disk_is_full(
    tmp_path: Path, journal_log: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_mod, "MEMORY_BOUND", 50)
    path = tmp_path / "state" / "journal.sqlite3"
    existing_journal(path)
    disk = Disk()
    j = Journal(path, on_connect=disk.on_connect, retry_seconds=FAST)
    j.start()
    j.record(attempt(0, detail="x" * 5000))  # needs new pages: cannot be written
    wait_for(lambda: j.error, 10, "the journal to report the full disk")
    for i in range(1, 80):
        j.record(attempt(i))
    assert j.buffered == 50 and j.dropped == 30
    wait_for(lambda: j.error and "30 entries dropped" in j.error, 10, "the error to count the dropped")
    disk.full = False
    wait_for(lambda: j.error is None, 10, "the journal to write again")
    j.close()
    assert keys(path) == ["old000000", *(f"t{i:06d}" for i in range(30, 80))]  # the oldest were dropped
    errors = records(journal_log, logging.ERROR)
    assert len(errors) == 2 and "dropped" in errors[1], errors


def test_the_requests_of_one_page_load_fold_into_one_waiting_entry(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    j = Journal(path)  # not started: everything waits in memory
    key = j.record(attempt(0))
    for ms in range(49):
        j.bump(key, T0 + dt.timedelta(milliseconds=ms))
    j.note(key, "just once more")
    assert j.buffered == 3
    j.start()
    assert j.flush()
    j.close()
    assert query(path, "SELECT requests, last_time, note FROM attempts") == [
        (50, "2026-03-01T21:00:00.048Z", "just once more")
    ]


@contextlib.contextmanager
def mounted(*args: str) -> Iterator[Callable[..., None]]:
    """``mount ARGS`` (skipped where the sandbox forbids it); yields ``again(OPTIONS…)`` to remount
    the same target; unmounts at the end, whatever happens.
    """
    target = args[-1]
    r = subprocess.run(["mount", *args], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"mount is not permitted here: {r.stderr.strip()}")

    def again(*options: str) -> None:
        subprocess.run(["mount", *options, target], check=True, capture_output=True)

    try:
        yield again
    finally:
        subprocess.run(["umount", target], capture_output=True)


def test_a_really_full_filesystem_is_survived_too(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    state = tmp_path / "tiny"
    state.mkdir(mode=0o700)
    with mounted("-t", "tmpfs", "-o", "size=160k,mode=0700", "tmpfs", str(state)) as remount:
        path = state / "journal.sqlite3"
        j = Journal(path, retry_seconds=FAST)
        j.start()
        for i in range(3000):
            j.record(attempt(i, detail="x" * 200))
        wait_for(lambda: j.error, 20, "ENOSPC to be reported")
        assert j.error is not None and str(path) in j.error and "full" in j.error
        remount("-o", "remount,size=16m")
        wait_for(lambda: j.error is None, 20, "the journal to write again")
        assert j.flush()
        j.close()
        assert keys(path) == [f"t{i:06d}" for i in range(3000)]
        assert query(path, "PRAGMA integrity_check") == [("ok",)]


# -- a read-only state directory ----------------------------------------------------------------
@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[Callable[[], None]]:
    """Make a directory read-only for real; yield the function that makes it writable again.

    Root ignores permissions, so as root this is a read-only bind mount of the directory on itself
    (skipped where the sandbox forbids mount); otherwise a 0500 directory.
    """
    if os.geteuid() != 0:
        os.chmod(directory, 0o500)
        try:
            yield lambda: os.chmod(directory, 0o700)
        finally:
            os.chmod(directory, 0o700)
        return
    with mounted("--bind", str(directory), str(directory)) as again:
        again("-o", "remount,bind,ro")
        yield lambda: again("-o", "remount,bind,rw")


@pytest.mark.parametrize("existing", [False, True], ids=["new-journal", "existing-journal"])
def test_a_read_only_state_directory_blocks_nothing_and_is_written_when_writable(
    tmp_path: Path, journal_log: pytest.LogCaptureFixture, existing: bool
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    path = state / "journal.sqlite3"
    if existing:
        existing_journal(path, 3)
    with read_only(state) as writable:
        j = Journal(path, retry_seconds=FAST)
        j.start()
        for i in range(200):
            j.record(attempt(i))
        wait_for(lambda: j.error, 10, "the read-only directory to be reported")
        assert j.error is not None and str(path) in j.error
        assert re.search(r"read-only file system|permission denied", j.error), j.error
        wait_for(lambda: j.failures >= 3, 10, "the writer to retry on its timer")
        assert j.buffered == 200
        writable()
        wait_for(lambda: j.error is None, 10, "the journal to write again")
        assert j.flush()
        j.close()
    old = [f"old{i:06d}" for i in range(3)] if existing else []
    assert keys(path) == [*old, *(f"t{i:06d}" for i in range(200))]
    assert mode(path) == 0o600
    assert len(records(journal_log, logging.ERROR)) == 1


# -- files that are not (or no longer) a journal we may write --------------------------------------
def random_bytes(path: Path) -> None:
    path.write_bytes(random.Random(4).randbytes(20_000))


def foreign_sqlite(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
    con.execute("INSERT INTO moz_places (url) VALUES ('https://example.org/')")
    con.commit()
    con.close()


def big_journal(path: Path, n: int = 3000) -> None:
    existing_journal(path, n)
    assert not Path(f"{path}-wal").exists()  # checkpointed: the main file holds everything


def truncated_journal(path: Path) -> None:
    big_journal(path)
    os.truncate(path, path.stat().st_size * 9 // 10)


def damaged_journal(path: Path) -> None:
    """A journal with one page of attempts in the middle overwritten (a bad sector, a bad copy)."""
    big_journal(path)
    pages = query(path, "SELECT pageno FROM dbstat WHERE name = 'attempts' AND pagetype = 'leaf'")
    page_size = query(path, "PRAGMA page_size")[0][0]
    with open(path, "r+b") as f:
        f.seek((sorted(pages)[len(pages) // 2][0] - 1) * page_size)
        f.write(b"\xa5" * page_size)


def newer_journal(path: Path) -> None:
    existing_journal(path, 3)
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    con.execute("ALTER TABLE attempts ADD COLUMN mood TEXT")
    con.commit()
    con.close()


BAD_FILES = {
    "random-bytes": (random_bytes, "not an SQLite database"),
    "foreign-sqlite": (foreign_sqlite, "another application (tables: moz_places)"),
    "truncated": (truncated_journal, "damaged (database disk image is malformed)"),
    "damaged-page": (damaged_journal, "damaged"),
    "newer-version": (newer_journal, f"newer zerocontact (journal schema {SCHEMA_VERSION + 1}"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_a_bad_journal_file_is_reported_never_touched_and_blocking_goes_on(
    tmp_path: Path, journal_log: pytest.LogCaptureFixture, kind: str
) -> None:
    make, problem = BAD_FILES[kind]
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    path = state / "journal.sqlite3"
    make(path)
    os.chmod(path, 0o644)  # even its mode stays as it is
    before = snapshot(path)

    j = Journal(path, retry_seconds=FAST)  # constructs: the daemon must keep enforcing
    j.start()
    # what the daemon reads at start does not raise either
    assert isinstance(learned_ids(path), list)
    assert isinstance(count_since(path, T0), int)
    for i in range(20):
        j.record(attempt(i, key=f"new{i:06d}"))
    wait_for(lambda: j.error, 10, "the bad file to be reported")
    assert j.error is not None and str(path) in j.error and problem in j.error, j.error
    hint = "upgrade zerocontact" if kind == "newer-version" else "move it aside"
    assert hint in j.error and "has not changed this file" in j.error
    wait_for(lambda: j.failures >= 3, 10, "the writer to retry")
    assert snapshot(path) == before
    assert j.buffered == 20
    errors = records(journal_log, logging.ERROR)
    assert len(errors) == 1 and str(path) in errors[0]

    # the user moves it aside (as the message says): a new journal is made and what waited is written
    aside = state / "journal.sqlite3.bad"
    path.rename(aside)
    wait_for(lambda: j.error is None, 10, "a new journal to be started")
    assert j.flush()
    j.close()
    assert keys(path) == [f"new{i:06d}" for i in range(20)]
    assert snapshot(aside) == before
    assert mode(path) == 0o600


def test_a_journal_moved_aside_without_its_wal_keeps_its_last_attempts(
    tmp_path: Path, journal_log: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state" / "journal.sqlite3"
    w = Writer(path, 10_000, "k")  # a crashed daemon leaves committed attempts in the -wal only
    wait_for(lambda: "ready" in w.lines, 30, "the writer to open its journal")
    w.go()
    wait_for(lambda: w.reported() >= 500, 60, "some attempts to be committed")
    w.proc.send_signal(signal.SIGKILL)
    w.finish()
    reported = w.reported()
    wal = Path(f"{path}-wal")
    assert wal.stat().st_size > 0
    moved = tmp_path / "state" / "journal.sqlite3.old"
    path.rename(moved)  # the user moves the journal, not its -wal

    j = Journal(path)
    j.start()
    j.record(attempt(0, key="fresh"))
    assert j.flush()
    j.close()
    assert keys(path) == ["fresh"]  # the old -wal was not replayed into the new journal
    assert query(path, "PRAGMA integrity_check") == [("ok",)]
    # SQLite itself would delete a -wal found beside a new, empty database: it is kept instead
    kept = list(path.parent.glob("journal.sqlite3-wal.orphaned-*"))
    assert len(kept) == 1
    assert any(str(kept[0]) in m for m in records(journal_log, logging.WARNING))
    # put beside the moved journal, as the warning says, it gives back every reported attempt
    kept[0].rename(f"{moved}-wal")
    assert keys(moved)[:reported] == [f"k{i:06d}" for i in range(reported)]


def test_reading_a_damaged_journal_returns_every_attempt_that_can_be_read(
    tmp_path: Path, journal_log: pytest.LogCaptureFixture
) -> None:
    good = tmp_path / "good" / "journal.sqlite3"
    big_journal(good)
    want = {r["key"]: r for r in attempts(good)}
    for make in (damaged_journal, truncated_journal):
        path = tmp_path / make.__name__ / "journal.sqlite3"
        make(path)
        before = snapshot(path)
        journal_log.clear()
        got = list(attempts(path))
        assert 0 < len(got) < len(want)
        assert all(r == want[r["key"]] for r in got)
        times = [(r["time"], r["id"]) for r in got]
        assert times == sorted(times, reverse=True)  # still newest first
        assert len(list(attempts(path, limit=10))) == 10
        warnings = records(journal_log, logging.WARNING)
        assert any(str(path) in m and "damaged" in m for m in warnings), warnings
        assert snapshot(path) == before
    # the damaged page holds a few dozen attempts; the salvage loses no more than that
    assert len(list(attempts(tmp_path / "damaged_journal" / "journal.sqlite3"))) > len(want) - 100


@pytest.mark.parametrize("kind", ["random-bytes", "foreign-sqlite"])
def test_reading_what_is_not_a_journal_raises_naming_the_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "journal.sqlite3"
    BAD_FILES[kind][0](path)
    before = snapshot(path)
    with pytest.raises(JournalError, match=re.escape(str(path))):
        list(attempts(path))
    with pytest.raises(JournalError, match=re.escape(str(path))):
        open_readonly(path)
    assert count_since(path, T0) == 0 and learned_ids(path) == []
    assert snapshot(path) == before


def test_a_newer_journal_can_still_be_read(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    newer_journal(path)
    assert [r["key"] for r in attempts(path)] == ["old000002", "old000001", "old000000"]


def test_a_bad_entry_is_skipped_and_holds_nothing_up(
    tmp_path: Path, journal_log: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "journal.sqlite3"
    j = Journal(path)
    j.record(attempt(0))
    j.record(attempt(1, channel=None))  # NOT NULL: a bug somewhere, never a reason to lose the rest
    j.record(attempt(2))
    j.start()
    assert j.flush()
    j.close()
    assert keys(path) == ["t000000", "t000002"]
    assert j.error is None
    assert len(records(journal_log, logging.ERROR)) == 1


# -- schema migrations ---------------------------------------------------------------------------
def v1_copy(tmp_path: Path) -> Path:
    path = tmp_path / "state" / "journal.sqlite3"
    path.parent.mkdir(mode=0o700)
    shutil.copyfile(V1_JOURNAL, path)
    os.chmod(path, 0o600)
    return path


def all_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    return {
        t: query(path, f"SELECT * FROM {t} ORDER BY rowid")  # fixed table names
        for t in ("attempts", "learned", "events")
    }


def test_a_version_1_journal_is_upgraded_in_place(
    tmp_path: Path, journal_log: pytest.LogCaptureFixture
) -> None:
    path = v1_copy(tmp_path)
    reference = tmp_path / "reference.sqlite3"
    shutil.copyfile(V1_JOURNAL, reference)
    before = all_rows(reference)
    assert len(before["attempts"]) == 4 and any(r[14] for r in before["attempts"])  # with notes
    assert query(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("1",)]
    assert len(list(attempts(path))) == 4  # readers work on the old version too

    j = Journal(path)
    j.start()
    j.record(attempt(0, key="after-the-upgrade"))
    assert j.flush()
    j.close()
    assert j.error is None

    assert SCHEMA_VERSION == 3
    assert query(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("3",)]
    after = all_rows(path)
    assert after["attempts"][:4] == before["attempts"]
    assert after["learned"] == before["learned"] and after["events"][:2] == before["events"]
    assert after["attempts"][4][:2] == (5, "after-the-upgrade")
    plan = query(
        path, "EXPLAIN QUERY PLAN SELECT * FROM attempts WHERE person = ? AND time >= ?", "Sam", "2026"
    )
    assert any("attempts_person_time" in str(r) for r in plan), plan
    assert query(path, "PRAGMA integrity_check") == [("ok",)]
    assert mode(path) == 0o600
    indexes = {r[0] for r in query(path, "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"attempts_person_time", "attempts_review"} <= indexes  # 1 → 2 → 3, in one go
    assert any("from schema 1 to 3" in m for m in records(journal_log, logging.WARNING))


def test_an_upgrade_that_fails_leaves_version_1_intact_and_is_retried(tmp_path: Path) -> None:
    path = v1_copy(tmp_path)
    disk = Disk()  # no room for the new index: the upgrade fails half-way
    j = Journal(path, on_connect=disk.on_connect, retry_seconds=FAST)
    j.start()
    j.record(attempt(0, key="waiting"))
    wait_for(lambda: j.error, 10, "the failed upgrade to be reported")
    assert j.error is not None and str(path) in j.error
    assert query(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("1",)]
    assert query(path, "SELECT name FROM sqlite_master WHERE name = 'attempts_person_time'") == []
    assert query(path, "PRAGMA integrity_check") == [("ok",)]
    disk.full = False
    wait_for(lambda: j.error is None, 10, "the upgrade to be retried")
    assert j.flush()
    j.close()
    assert query(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    assert keys(path)[-1] == "waiting" and len(keys(path)) == 5


# -- file modes ----------------------------------------------------------------------------------
@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_journal_wal_and_shm_are_0600_and_the_directory_0700_whatever_the_umask(
    tmp_path: Path, permissive_umask: None
) -> None:
    state = tmp_path / "home" / "state"
    path = state / "journal.sqlite3"
    j = Journal(path)
    j.start()
    j.record(attempt(0))
    assert j.flush()
    assert Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists()
    assert (mode(path), mode(f"{path}-wal"), mode(f"{path}-shm")) == (0o600, 0o600, 0o600)
    assert mode(state) == 0o700
    j.close()
    # a reader while the daemon is stopped (it recreates -wal/-shm), and a journal restored 0644
    rows = list(attempts(path))
    assert len(rows) == 1
    for side in ("-wal", "-shm"):
        if Path(f"{path}{side}").exists():
            assert mode(f"{path}{side}") == 0o600
    os.chmod(path, 0o644)
    j = Journal(path)
    j.start()
    j.record(attempt(1))
    assert j.flush()
    assert (mode(path), mode(f"{path}-wal"), mode(f"{path}-shm")) == (0o600, 0o600, 0o600)
    j.close()
