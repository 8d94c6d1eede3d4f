"""The schema: times stored in one format, and an older journal upgraded in place, in one transaction,
or left intact."""

from __future__ import annotations

import contextlib
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
from zctest.journals import FAST, T0, V1_JOURNAL, Disk, attempt, keys, mode, query, records
from zctest.support import wait_for

from zerocontact.daemon.journal import Journal
from zerocontact.daemon.journal.reader import attempts, devices_seen, passed_through, reading
from zerocontact.daemon.journal.schema import (
    DEVICE_CONDITION,
    MIGRATIONS,
    PASSTHROUGH_TABLE_SQL,
    SCHEMA_VERSION,
    iso,
    iso_ms,
    parse_stored,
)


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

    assert SCHEMA_VERSION == 6
    assert query(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("6",)]
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
    assert {"attempts_person_time", "attempts_review", "attempts_device"} <= indexes  # 1 → … → 6, in one go
    assert query(path, "SELECT count(*) FROM hidden") == [(0,)]  # v6: the daily out-of-sight counts
    assert any("from schema 1 to 6" in m for m in records(journal_log, logging.WARNING))


def test_a_version_5_journal_gains_the_out_of_sight_counts_and_keeps_everything(tmp_path: Path) -> None:
    path = v1_copy(tmp_path)
    con = sqlite3.connect(path, isolation_level=None)
    try:  # bring the v1 file to v5 with the steps before 6, as a v5 daemon left it
        con.execute("BEGIN")
        for v in range(1, 5):
            for statement in MIGRATIONS[v]:
                con.execute(statement)
        con.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
        con.execute("COMMIT")
    finally:
        con.close()
    before = all_rows(path)
    assert query(path, "SELECT name FROM sqlite_master WHERE name = 'hidden'") == []
    day = dt.date(2026, 11, 30)
    assert read_hidden(path, day) == []  # a reader on a v5 file: no figure, no error

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
    assert query(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("6",)]
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


def test_a_journal_from_before_the_devices_step_gains_its_tables_and_keeps_everything(tmp_path: Path) -> None:
    """4 → 5: what a device's pinned apps and last connection need, and the per-device index (found
    by its statements, so the test holds wherever the step sits among the migrations)."""
    step = next(v for v, statements in MIGRATIONS.items() if PASSTHROUGH_TABLE_SQL in statements)
    path = v1_copy(tmp_path)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as con:  # as that version left it
        for v in range(1, step):
            for statement in MIGRATIONS[v]:
                con.execute(statement)
        con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(step),))
        con.execute("UPDATE attempts SET process = 'device phone' WHERE id = 1")
    before = all_rows(path)
    assert passed_through(path) == [] and devices_seen(path) == {}  # readers work on version 4 too
    j = Journal(path)
    j.start()
    j.passed_through("phone", "i.instagram.com", "f1", T0, T0)
    j.device_seen("phone", T0)
    assert j.flush()
    j.close()
    assert j.error is None
    assert query(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    assert all_rows(path) == before
    assert passed_through(path) == [("phone", "i.instagram.com", "f1", T0, T0)]
    assert devices_seen(path) == {"phone": T0}
    plan = query(
        path,
        f"EXPLAIN QUERY PLAN SELECT count(*) FROM attempts INDEXED BY attempts_device WHERE "
        f"{DEVICE_CONDITION} AND process = ? AND person IS ? AND time >= ?",
        "device phone",
        "Sam",
        "2026",
    )
    assert any("attempts_device (process=? AND person=? AND time>?)" in str(r) for r in plan), plan
    in_index = f"SELECT count(*) FROM attempts INDEXED BY attempts_device WHERE {DEVICE_CONDITION}"
    assert query(path, in_index) == [(1,)]  # the partial index holds the devices' attempts only
