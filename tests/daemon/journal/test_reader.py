"""Reading the journal back: filters answered in SQL on an index, and a damaged, foreign or newer
file read for what it holds without ever being changed.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from zctest.journals import (
    BAD_FILES,
    NOW,
    T0,
    big_journal,
    damaged_journal,
    newer_journal,
    records,
    snapshot,
    t,
    truncated_journal,
)

from zerocontact.daemon.journal import JournalError, count_since, learned_ids
from zerocontact.daemon.journal.files import open_readonly
from zerocontact.daemon.journal.reader import Filters, attempts, reading


def test_log_filters_run_in_sql_on_an_index(sample: Path) -> None:
    with reading(sample / "journal.sqlite3") as journal:

        def times(**kw: Any) -> list[str]:
            return [r["time"][:16] for r in journal.select_attempts(Filters(**kw), kw.pop("_", None))]

        assert times()[0] == "2026-11-09T12:00" and times()[-1] == "2026-11-01T21:30"  # newest first
        assert times(since=t("2026-11-04T00:00:00Z"), until=t("2026-11-09T00:00:00Z")) == [
            "2026-11-08T23:30",
            "2026-11-04T07:45",
        ]
        assert times(person=("Alex",)) == ["2026-11-04T07:45"]
        assert times(platform=("X",)) == ["2026-11-02T20:05"]
        assert times(surface=("profile", "presence")) == [
            "2026-11-04T07:45",
            "2026-11-02T20:05",
            "2026-11-01T22:10",
        ]
        assert times(channel=("bypass", "app")) == ["2026-11-09T12:00", "2026-11-08T23:30"]
        assert [r["time"][:10] for r in journal.select_attempts(Filters(), 2)] == [
            "2026-11-09",
            "2026-11-08",
        ]
        for f in (Filters(since=NOW), Filters(person=("Sam",), since=NOW)):
            where, args = f.where()
            plan = " ".join(
                r[3]
                for r in journal.con.execute(
                    f"EXPLAIN QUERY PLAN SELECT * FROM attempts{where} ORDER BY time DESC", args
                )
            )
            assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
        assert journal.resolve_people(["sam", "ALEX", "Robin"]) == (("Sam", "Alex"), ["Robin"])


# -- damaged and foreign files -------------------------------------------------------------------
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
