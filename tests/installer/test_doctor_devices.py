"""doctor's word on each device: its latest connection through the tunnel, from the journal."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from zerocontact.daemon.journal import Journal
from zerocontact.installer.doctor import OK, WARN, check_device_connections

NOW = dt.datetime(2026, 12, 2, 1, 0, tzinfo=dt.UTC)


def test_each_device_shows_its_latest_connection_or_that_it_never_connected(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.sqlite3")
    j.start()
    j.device_seen("phone", NOW - dt.timedelta(minutes=3))
    assert j.flush()
    j.close()
    phone, ipad = check_device_connections(tmp_path, ["phone", "ipad"], NOW)
    assert (phone.name, phone.status) == ("device phone", OK)
    assert "last connection through the tunnel 3 minutes ago" in phone.detail
    assert (ipad.name, ipad.status) == ("device ipad", WARN)
    assert "has not connected" in ipad.detail and "ipad.conf" in ipad.fix


def test_without_a_journal_no_device_has_connected(tmp_path: Path) -> None:
    (only,) = check_device_connections(tmp_path, ["phone"], NOW)
    assert only.status == WARN
