"""Forgetting old attempts while the daemon writes: nothing else is lost, the deleted text leaves the
file, and the forgotten days are never counted as days without an attempt.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from pathlib import Path

import pytest
from zctest.journals import UTC, att, stats, t, write

from zerocontact.daemon.journal import Journal, JournalError
from zerocontact.daemon.journal.files import open_readonly
from zerocontact.daemon.journal.forget import forget
from zerocontact.daemon.journal.schema import iso


def test_forget_while_the_writer_keeps_writing(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    old = [att(dt.datetime(2026, 1, 1, tzinfo=UTC) + dt.timedelta(minutes=i)) for i in range(3000)]
    write(path, old, notes={5: "the old secret note"})
    j = Journal(path)
    j.start()
    reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM attempts").fetchone()[0] == 3000  # a read held open
    new = [att(dt.datetime(2026, 11, 1, tzinfo=UTC) + dt.timedelta(seconds=i)) for i in range(2000)]
    feeder = threading.Thread(target=lambda: [j.record(a) for a in new])
    feeder.start()
    deleted = forget(path, t("2026-06-01T00:00:00Z"), batch=500)  # six transactions
    feeder.join()
    assert j.flush(), j.error
    assert deleted == 3000
    reader.execute("COMMIT")
    reader.close()
    j.close()
    con = open_readonly(path)
    try:
        assert con.execute("SELECT count(*), min(time) FROM attempts").fetchone()[:] == (
            2000,
            iso(new[0].time),
        )
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("SELECT value FROM meta WHERE key = 'forgotten_before'").fetchone()[0] == (
            "2026-06-01T00:00:00.000Z"
        )
    finally:
        con.close()
    assert forget(path, t("2026-06-01T00:00:00Z")) == 0
    # secure_delete and a checkpoint: the forgotten note is gone from the bytes on disk
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("journal.sqlite3*"))
    assert b"the old secret note" not in blob


def test_forget_waits_for_the_writer_lock_then_says_so(tmp_path: Path) -> None:
    path = write(tmp_path / "journal.sqlite3", [att("2026-01-02T00:00:00Z")])
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    with pytest.raises(JournalError, match="database is locked"):
        forget(path, t("2026-06-01T00:00:00Z"), busy_timeout=0.1)
    done: list[int] = []
    waiter = threading.Thread(target=lambda: done.append(forget(path, t("2026-06-01T00:00:00Z"))))
    waiter.start()
    other.execute("COMMIT")  # forget was waiting (30 s busy timeout) and now goes ahead
    waiter.join(30)
    other.close()
    assert done == [1]


def test_forgotten_days_are_not_counted_as_quiet_days(tmp_path: Path) -> None:
    path = write(
        tmp_path / "journal.sqlite3",
        [att("2026-11-01T10:00:00Z"), att("2026-11-05T10:00:00Z")],
        started=["2026-10-01T09:00:00Z"],
    )
    assert forget(path, t("2026-11-03T00:00:00Z")) == 1
    s = stats(path, "2026-11-06T12:00:00Z")
    assert (s.basis, s.per_day[0][0], s.longest_streak_days) == ("forgotten", dt.date(2026, 11, 3), 2)
