"""The service commands (ca, status, reload) from the command line; run is tested end to end in
tests/e2e/, status and reload against a live daemon in tests/e2e/test_commitment.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from zerocontact.daemon.status import Runtime, Status

ZC = str(Path(sys.executable).with_name("zerocontact"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ZC, *args], capture_output=True, text=True, timeout=60)


def test_commands_share_state_via_xdg_and_state_dir(tmp_path: Path, isolated_home: Path) -> None:
    r = run("ca", "--path")
    assert r.returncode == 0
    assert Path(r.stdout.strip()) == isolated_home / ".local/state/zerocontact/ca/mitmproxy-ca-cert.pem"
    assert "BEGIN CERTIFICATE" in run("ca", "--pem").stdout
    other = tmp_path / "elsewhere"
    r = run("ca", "--path", "--state-dir", str(other))
    assert r.stdout.strip() == str(other / "ca" / "mitmproxy-ca-cert.pem")
    assert oct(os.stat(other / "ca" / "mitmproxy-ca.pem").st_mode & 0o777) == "0o600"
    r = run("log", "--state-dir", str(tmp_path / "empty"))
    assert r.returncode == 1 and "no journal" in r.stderr


def test_status_of_a_stopped_daemon_shows_the_last_published_status(tmp_path: Path) -> None:
    state = tmp_path / "state"
    r = run("status", "--state-dir", str(state))
    assert r.returncode == 3 and "not running" in r.stdout
    assert json.loads(run("status", "--json", "--state-dir", str(state)).stdout) == {"running": False}
    state.mkdir()
    from zerocontact.daemon.status import PersonStatus

    Status(people=[PersonStatus("Sam", True, ["profile"], ["instagram"], None, ["22:00-07:00"])]).write(
        state / "status.json"
    )
    Runtime(pid=2**22 + 12345, proxy="127.0.0.1:1", pac="-", ca="-", rules="-", started="-").write(
        state / "daemon.json"
    )  # a PID no live process has: the daemon is gone
    r = run("status", "--state-dir", str(state))
    assert r.returncode == 3
    assert "Last known status:" in r.stdout and "Sam (instagram; no end date, in 22:00-07:00)" in r.stdout
    assert json.loads(run("status", "--json", "--state-dir", str(state)).stdout)["people"][0]["name"] == "Sam"
    r = run("reload", "--state-dir", str(state))
    assert r.returncode == 1 and "not running" in r.stderr


def test_status_reads_an_older_or_partial_status_file(tmp_path: Path) -> None:
    # written before the clock and journal reports existed, with a key from a newer version
    (tmp_path / "status.json").write_text(json.dumps({"pid": 7, "people": [], "future_key": 1}))
    st = Status.read(tmp_path / "status.json")
    assert st is not None and st.pid == 7 and st.last_reload.ok and st.clock.trusted
    assert st.journal.error is None
    for damaged in ("[1, 2]", '{"people": [{"name": "Sam"}]}', "{"):
        (tmp_path / "status.json").write_text(damaged)
        assert Status.read(tmp_path / "status.json") is None, damaged
    assert os.path.exists(tmp_path / "status.json")  # read, never removed


def running_here(state: Path, status: Status | None) -> None:
    """A status directory whose daemon.json names a live process (this test's)."""
    state.mkdir(exist_ok=True)
    Runtime(pid=os.getpid(), proxy="127.0.0.1:1", pac="-", ca="-", rules="-", started="-").write(
        state / "daemon.json"
    )
    if status is not None:
        status.write(state / "status.json")


def test_status_of_a_running_daemon_that_cannot_write_its_state_tells_the_truth(tmp_path: Path) -> None:
    import dataclasses
    import datetime as dt

    state = tmp_path / "state"
    now = dt.datetime.now(dt.UTC)
    fresh = Status(updated=now.isoformat())
    running_here(state, fresh)
    r = run("status", "--state-dir", str(state))
    assert r.returncode == 0 and "Journal:      ok" in r.stdout and "NOT current" not in r.stdout
    # the journal cannot write: said, and the exit status says the daemon is not doing all its job
    from zerocontact.daemon.status import JournalReport

    running_here(state, dataclasses.replace(fresh, journal=JournalReport("cannot write …: disk is full")))
    r = run("status", "--state-dir", str(state))
    assert r.returncode == 1 and "Journal:      cannot write …: disk is full" in r.stdout
    # a problem the daemon reports
    running_here(state, dataclasses.replace(fresh, problems=["cannot save its state in …"]))
    r = run("status", "--state-dir", str(state))
    assert r.returncode == 1 and "Problem:      cannot save its state in …" in r.stdout
    # an old status (the daemon rewrites it every 30 s): never "Journal: ok"
    running_here(state, Status(updated=(now - dt.timedelta(minutes=10)).isoformat()))
    r = run("status", "--state-dir", str(state))
    assert r.returncode == 1 and "This status is NOT current: the daemon last wrote it 10 min ago" in r.stdout
    assert "Journal:      unknown (the status is not current)" in r.stdout
    # no status at all while it runs: it could not write one
    (state / "status.json").unlink()
    r = run("status", "--state-dir", str(state))
    assert r.returncode == 1 and f"is running (pid {os.getpid()}) but cannot publish its status" in r.stdout
