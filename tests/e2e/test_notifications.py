"""Desktop notifications from the running daemon: an app stopped, a block started and ended, and
the setting that turns them off, read as the rules change (a stand-in notify-send records them)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from zctest.e2e import start_daemon
from zctest.support import wait_for

from tests.daemon.test_notify import calls, recorder

pytestmark = pytest.mark.e2e


def person(name: str, extra: str = "") -> str:
    return f'[[person]]\nname = "{name}"\naccounts = {{ x = "{name.lower()}example" }}\n{extra}'


def test_the_daemon_notifies_app_stops_and_block_changes(tmp_path: Path) -> None:
    log = recorder(tmp_path / "notify-bin", "notify-send")
    fake_app = tmp_path / "bin" / "whatsapp"
    fake_app.parent.mkdir()
    shutil.copy(shutil.which("sleep") or "/bin/sleep", fake_app)
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=6)).isoformat(timespec="seconds")
    app = '[[app]]\nname = "WhatsApp at night"\nmatch = ["whatsapp"]\ngrace = 1\n'
    base = person("Sam") + person("Ann", f"until = {soon}\n") + app
    env = {
        "PATH": f"{tmp_path / 'notify-bin'}{os.pathsep}{os.environ['PATH']}",
        "DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent-test-bus",
    }
    d = start_daemon(tmp_path, rules=base, env=env)

    def titles() -> list[tuple[str, str]]:
        return [(c[-2], c[-1]) for c in calls(log)]

    def shown(title: str, body_has: str) -> bool:
        return any(t == title and body_has in b for t, b in titles())

    def status() -> dict[str, object]:
        return json.loads((d.state / "status.json").read_text())  # type: ignore[no-any-return]

    proc = subprocess.Popen([str(fake_app), "300"])
    try:
        wait_for(lambda: shown("whatsapp was closed", "'WhatsApp at night'"), 15, "the app notification")
        wait_for(lambda: shown("A block has ended", "The block on Ann has ended"), 20, "Ann's block ending")
        d.rules.write_text(base + person("Bob"))  # tightening: at once
        wait_for(lambda: shown("A block has started", "not to look at Bob"), 15, "Bob's block starting")
        d.rules.write_text("[settings]\nnotifications = false\n" + base + person("Bob") + person("Cara"))
        wait_for(
            lambda: any(p["name"] == "Cara" and p["active"] for p in status()["people"]),  # type: ignore[attr-defined, index]
            15,
            "Cara's block",
        )
        d.rules.write_text(base + person("Bob") + person("Cara") + person("Dan"))
        wait_for(lambda: shown("A block has started", "Dan"), 15, "Dan's block starting")
        # one worker shows them in order: Cara's, had it been queued, would have come before Dan's
        assert not any("Cara" in b for _, b in titles())
    finally:
        if proc.poll() is None:
            proc.kill()
        d.stop()
    assert "desktop notifications: with notify-send" in d.output()
