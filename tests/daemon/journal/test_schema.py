"""The schema: times stored in one format, and an older journal upgraded in place, in one transaction,
or left intact."""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from zctest.journals import FAST, V1_JOURNAL, Disk, attempt, keys, mode, query, records
from zctest.support import wait_for

from zerocontact.daemon.journal import Journal
from zerocontact.daemon.journal.reader import attempts, reading
from zerocontact.daemon.journal.schema import MIGRATIONS, SCHEMA_VERSION, iso, iso_ms, parse_stored


@given(st.lists(st.integers(0, 4_102_444_800_000), max_size=50))  # 1970 to 2100
def test_the_fast_time_format_is_the_stored_one(instants: list[int]) -> None:
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    times = [epoch + dt.timedelta(milliseconds=ms) for ms in instants]
    assert iso_ms(instants) == [iso(x) for x in times]
    assert [parse_stored(text) for text in iso_ms(instants)] == times


# -- migrations ----------------------------------------------------------------------------------
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

    assert SCHEMA_VERSION == 5
    assert query(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("5",)]
    after = all_rows(path)
    # every old column kept as it was; v4 adds `surfaces`, filled from each attempt's surface
    assert [r[: len(before["attempts"][0])] for r in after["attempts"][:4]] == before["attempts"]
    assert [r[-1] for r in after["attempts"][:4]] == [r[6] or "" for r in before["attempts"]]
    assert after["learned"] == before["learned"] and after["events"][:2] == before["events"]
    assert after["attempts"][4][:2] == (5, "after-the-upgrade")
    plan = query(
        path, "EXPLAIN QUERY PLAN SELECT * FROM attempts WHERE person = ? AND time >= ?", "Sam", "2026"
    )
    assert any("attempts_person_time" in str(r) for r in plan), plan
    assert query(path, "PRAGMA integrity_check") == [("ok",)]
    assert mode(path) == 0o600
    indexes = {r[0] for r in query(path, "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"attempts_person_time", "attempts_review"} <= indexes  # 1 → 2 → 3 → 4 → 5, in one go
    assert query(path, "SELECT count(*) FROM hidden") == [(0,)]  # v5: the daily out-of-sight counts
    assert any("from schema 1 to 5" in m for m in records(journal_log, logging.WARNING))


def test_a_version_4_journal_gains_the_out_of_sight_counts_and_keeps_everything(tmp_path: Path) -> None:
    path = v1_copy(tmp_path)
    con = sqlite3.connect(path, isolation_level=None)
    try:  # bring the v1 file to v4 with the steps before 5, as a v4 daemon left it
        con.execute("BEGIN")
        for v in range(1, 4):
            for statement in MIGRATIONS[v]:
                con.execute(statement)
        con.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
        con.execute("COMMIT")
    finally:
        con.close()
    before = all_rows(path)
    assert query(path, "SELECT name FROM sqlite_master WHERE name = 'hidden'") == []
    day = dt.date(2026, 11, 30)
    assert read_hidden(path, day) == []  # a reader on a v4 file: no figure, no error

    j = Journal(path)
    j.start()
    j.hidden(day, "instagram", 3)
    j.hidden(day, "instagram", 2)  # folded into the waiting entry
    j.hidden(day, "x", 0, missed=1)
    assert j.flush()
    j.hidden(day, "instagram", 4)  # a later batch adds to the stored figure
    assert j.flush()
    j.close()
    assert j.error is None
    assert query(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("5",)]
    assert all_rows(path) == before  # attempts, learned ids and events untouched
    assert read_hidden(path, day) == [(day, "instagram", 9, 0), (day, "x", 0, 1)]
    assert query(path, "PRAGMA integrity_check") == [("ok",)]


def read_hidden(path: Path, day: dt.date) -> list[tuple[dt.date, str, int, int]]:
    with reading(path) as r:
        return r.hidden(day, day)


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
