"""The journal's writer never loses an entry it said it kept, and holds nothing up when it cannot write.

Every test works on real SQLite files in tmp_path; crashes and concurrency use real processes
(``fixtures/journal_writer.py``); a full disk is SQLite's own SQLITE_FULL (``max_page_count``) and,
where the sandbox allows ``mount``, a real full tmpfs; a read-only state directory is a read-only
bind mount as root (root ignores permissions) or a 0500 directory otherwise.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import signal
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from zctest.journals import (
    FAST,
    T0,
    Disk,
    Writer,
    attempt,
    existing_journal,
    keys,
    mode,
    mounted,
    query,
    read_only,
    records,
)
from zctest.support import wait_for

from zerocontact.daemon.journal import Journal, learned_ids
from zerocontact.daemon.journal import writer as journal_writer


# -- real processes ------------------------------------------------------------------------------
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
        j.hidden(dt.date(2026, 11, 30), "instagram", 2)  # kept out of sight meanwhile: waits too
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
    assert query(path, "SELECT day, platform, removed, missed FROM hidden") == [
        ("2026-11-30", "instagram", 200, 0)
    ]
    assert len(records(journal_log, logging.ERROR)) == 1
    assert any("writing to" in m and "again" in m for m in records(journal_log, logging.WARNING))


def test_memory_is_bounded_while_the_disk_is_full(
    tmp_path: Path, journal_log: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_writer, "MEMORY_BOUND", 50)
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


def counting_commits(path: Path) -> tuple[Journal, list[str]]:
    """A started journal on ``path`` and the list its connections add a line to at each COMMIT."""
    commits: list[str] = []

    def trace(con: sqlite3.Connection) -> None:
        con.set_trace_callback(lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None)

    j = Journal(path, on_connect=trace)
    j.start()
    return j, commits


def test_a_burst_of_repeats_shares_commits_and_still_reaches_the_disk_unasked(tmp_path: Path) -> None:
    """Bumps alone gather for ``BUMP_GROUP_SECONDS``: repeats of two looks arriving at 200 a second
    for 1.5 s, alternating (so that none folds into the entry before it), take a handful of
    transactions, not one each; and they are on disk without anyone calling ``flush``."""
    path = tmp_path / "journal.sqlite3"
    j, commits = counting_commits(path)
    first, second = j.record(attempt(0)), j.record(attempt(1))
    assert j.flush()
    before = len(commits)
    pace = threading.Event()  # never set: its wait is the interval between two requests
    for i in range(150):
        j.bump(first, T0 + dt.timedelta(milliseconds=i))
        j.bump(second, T0 + dt.timedelta(seconds=1, milliseconds=i))
        pace.wait(0.01)
    wait_for(lambda: query(path, "SELECT requests FROM attempts ORDER BY id") == [(151,), (151,)], timeout=10)
    # 1.5 s of repeats: ~8 groups of 0.2 s; one commit per repeat would be 150 or more
    assert len(commits) - before <= 20, len(commits) - before
    j.close()


def test_a_burst_of_attempts_shares_commits_and_each_is_on_disk(tmp_path: Path) -> None:
    """Attempts arriving 2 ms apart for 0.4 s (a burst of reloads) are committed a few at a time,
    at most one transaction per ``COMMIT_GAP``, not one each; every one of them reaches the disk
    without anyone calling ``flush``."""
    path = tmp_path / "journal.sqlite3"
    j, commits = counting_commits(path)
    assert j.flush()
    before = len(commits)
    pace = threading.Event()  # never set: its wait is the interval between two attempts
    for i in range(200):
        j.record(attempt(i))
        pace.wait(0.002)
    wait_for(lambda: query(path, "SELECT count(*) FROM attempts") == [(200,)], timeout=10)
    # 0.4 s or more of attempts: at most one commit per 10 ms gap, so ~40-60; one each would be 200
    assert len(commits) - before <= 120, len(commits) - before
    j.close()


def test_a_lone_attempt_waits_for_no_gap_and_flush_waits_for_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gap only spaces commits out: the first attempt after a quiet spell is committed at once,
    the next one waits for the gap since that commit (seconds here), and ``flush`` does not."""
    monkeypatch.setattr(journal_writer, "COMMIT_GAP", 30.0)
    path = tmp_path / "journal.sqlite3"
    committed: list[int] = []
    j = Journal(path, on_commit=lambda n, last: committed.append(last))
    j.start()
    j.record(attempt(0))
    wait_for(lambda: committed == [1], timeout=10)  # not 30 s
    j.record(attempt(1))
    assert not wait_for_quietly(lambda: len(committed) > 1, 1.0)  # within the gap: it waits
    assert j.flush(timeout=10)
    assert committed == [1, 2]
    assert query(path, "SELECT count(*) FROM attempts") == [(2,)]
    j.close()


def wait_for_quietly(cond: Callable[[], bool], timeout: float) -> bool:
    """Whether ``cond`` came true within ``timeout`` (polled; False is not an error)."""
    try:
        wait_for(cond, timeout, "the condition")
    except AssertionError:
        return False
    return True


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


# -- bad entries ---------------------------------------------------------------------------------
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


@pytest.mark.parametrize("how", ["moved", "deleted", "replaced"])
def test_a_journal_moved_deleted_or_replaced_while_writing_loses_nothing(tmp_path: Path, how: str) -> None:
    path = tmp_path / "state" / "journal.sqlite3"
    j = Journal(path)
    j.start()
    try:
        for i in range(3):
            j.record(attempt(i, key=f"before-{i}"))
        assert j.flush()
        aside = tmp_path / "aside.sqlite3"
        if how == "moved":
            os.rename(path, aside)
        elif how == "deleted":
            path.unlink()
        else:  # another valid journal put in its place (a backup restored, say)
            other = Journal(aside)
            other.start()
            other.record(attempt(9, key="the-replacement"))
            assert other.flush()
            other.close()
            os.replace(aside, path)
        for i in range(3):
            j.record(attempt(10 + i, key=f"after-{i}"))
        assert j.flush()
    finally:
        j.close()
    assert j.error is None
    after = keys(path)
    assert after[-3:] == ["after-0", "after-1", "after-2"]  # nothing written to the file moved away
    assert ("journal replaced",) in query(path, "SELECT kind FROM events")
    if how == "moved":
        assert keys(aside) == ["before-0", "before-1", "before-2"]  # what was committed stays with it
        assert query(aside, "PRAGMA integrity_check") == [("ok",)]
    if how == "replaced":
        assert after == ["the-replacement", "after-0", "after-1", "after-2"]
    assert not list(tmp_path.glob("state/*-wal.*"))  # no write-ahead log was set aside as unreadable


def test_what_is_kept_about_devices_is_applied_in_the_order_it_came(tmp_path: Path) -> None:
    """A forget after a remember in one batch wins (and the reverse); a re-check only moves
    ``checked`` forward; a device's last connection never goes back in time."""
    from zerocontact.daemon.journal.reader import devices_seen, passed_through

    path = tmp_path / "journal.sqlite3"
    j = Journal(path)
    later = T0 + dt.timedelta(minutes=10)
    j.passed_through("phone", "a.example", "f1", T0, T0)
    j.passed_through("phone", "b.example", "f1", T0, T0)
    j.passed_through("ipad", "a.example", "f1", T0, T0)
    j.not_passed_through("phone", "a.example", "f1")
    j.passed_through("phone", "b.example", "f1", T0, later)
    j.passed_through("phone", "b.example", "f1", T0, T0)  # an older re-check arriving late
    j.passed_through("tablet", "a.example", "f1", T0, T0)
    j.not_passed_through("tablet")
    j.passed_through("tablet", "c.example", "f2", later, later)
    j.device_seen("phone", later)
    j.device_seen("phone", T0)
    j.start()  # all of it in one batch
    assert j.flush()
    j.close()
    assert sorted(passed_through(path)) == [
        ("ipad", "a.example", "f1", T0, T0),
        ("phone", "b.example", "f1", T0, later),
        ("tablet", "c.example", "f2", later, later),
    ]
    assert devices_seen(path) == {"phone": later}


def test_attempt_keys_are_distinct_random_hex_across_threads_and_a_fork() -> None:
    """Keys come from a pool of OS randomness: never repeated (across threads, past the pool's
    size), and a forked child makes its own rather than handing out its parent's."""
    from zerocontact.daemon.journal.writer import new_key

    got: list[str] = []
    lock = threading.Lock()

    def take() -> None:
        mine = [new_key() for _ in range(700)]
        with lock:
            got.extend(mine)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 2800 and len(set(got)) == 2800
    assert all(re.fullmatch(r"[0-9a-f]{16}", k) for k in got)
    new_key()  # the pool now holds keys the child must not reuse
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write its keys and leave at once
        os.close(r)
        os.write(w, " ".join(new_key() for _ in range(300)).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        child = f.read().decode().split()
    os.waitpid(pid, 0)
    parent = [new_key() for _ in range(300)]
    assert len(child) == 300 and not set(child) & set(parent)
