"""The daemon's process watcher, wired in: a chosen app is stopped and the launch is journalled."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import psutil
import pytest
from zctest.e2e import start_daemon
from zctest.support import wait_for

pytestmark = pytest.mark.e2e


def test_daemon_stops_a_chosen_app_and_logs_one_attempt(tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "whatsapp"
    fake.parent.mkdir()
    shutil.copy(shutil.which("sleep") or "/bin/sleep", fake)
    rules = (
        '[[person]]\nname = "Sam"\naccounts = { x = "samx" }\n'
        '[[app]]\nname = "WhatsApp"\nmatch = ["whatsapp"]\naction = "terminate"\ngrace = 1\n'
    )
    d = start_daemon(tmp_path, rules=rules)
    proc = subprocess.Popen([str(fake), "300"])
    try:
        wait_for(lambda: proc.poll() is not None, 10, "the app to be stopped")

        def rows() -> list[tuple[str, str]]:
            con = sqlite3.connect(f"file:{d.state / 'journal.sqlite3'}?mode=ro", uri=True)
            try:
                return con.execute("SELECT channel, rule FROM attempts WHERE channel = 'app'").fetchall()
            finally:
                con.close()

        assert wait_for(rows, 10, "the attempt in the journal") == [("app", "WhatsApp")]
        assert psutil.Process(d.proc.pid).is_running()  # the daemon itself is never touched
    finally:
        if proc.poll() is None:
            proc.kill()
        d.stop()
