"""Fixtures for the journal and review tests: a private state directory, a sample journal, the
journal's log records."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from zctest.journals import att, write


@pytest.fixture
def journal_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="zerocontact.journal")
    return caplog


@pytest.fixture
def state(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    return d


@pytest.fixture
def sample(state: Path) -> Path:
    """Two weeks with a story: the rules took effect on 1 Nov, notes on some attempts."""
    write(
        state / "journal.sqlite3",
        [
            att("2026-11-01T21:30:00Z"),
            att("2026-11-01T22:10:00Z", surface="profile", path="/sam.example/"),
            att("2026-11-02T20:05:00Z", platform="x", surface="profile", host="x.com", path="/samexample"),
            att("2026-11-04T07:45:00Z", person="Alex", surface="presence"),
            att(
                "2026-11-08T23:30:00Z", channel="app", method=None, host=None, path=None, process="Instagram"
            ),
            att(
                "2026-11-09T12:00:00Z",
                channel="bypass",
                person=None,
                platform=None,
                surface=None,
                method=None,
                host=None,
                path=None,
                detail="the service was stopped while blocking Sam",
            ),
        ],
        notes={0: "our song came on", 3: 'saw <b>them</b> & "him" =1+1', 4: "couldn't\x1b[2J sleep"},
        started=["2026-11-01T08:00:00Z"],
    )
    return state
