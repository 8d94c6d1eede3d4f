"""The rules file's retention setting: the daemon forgets attempts older than the user chose."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from zctest.e2e import start_daemon
from zctest.support import wait_for

from zerocontact.daemon.journal import Attempt, Journal

pytestmark = pytest.mark.e2e


def test_retention_forgets_old_attempts_and_keeps_recent_ones(tmp_path: Path) -> None:
    state = tmp_path / "state-d"
    state.mkdir(mode=0o700)
    j = Journal(state / "journal.sqlite3")
    j.start()
    now = dt.datetime.now(dt.UTC)
    for days in (400, 10):
        j.record(
            Attempt(
                time=now - dt.timedelta(days=days),
                person="Sam",
                platform="x",
                surface="profile",
                note=f"{days} days ago",
            )
        )
    assert j.flush()
    j.close()
    text = '[settings]\nretention = "365d"\n[[person]]\nname = "Sam"\naccounts = { x = "samx" }\n'
    d = start_daemon(tmp_path, rules=text)

    def notes() -> list[str]:
        con = sqlite3.connect(f"file:{state / 'journal.sqlite3'}?mode=ro", uri=True)
        try:
            return [r[0] for r in con.execute("SELECT note FROM attempts WHERE note IS NOT NULL")]
        finally:
            con.close()

    try:
        wait_for(lambda: notes() == ["10 days ago"], 20, "the 400-day-old attempt to be forgotten")
    finally:
        d.stop()
