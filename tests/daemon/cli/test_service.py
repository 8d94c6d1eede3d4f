"""The service commands (ca, status, reload) from the command line; run is tested end to end in
tests/e2e/, status and reload against a live daemon in tests/e2e/test_commitment.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from zctest.support import wait_for

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


def _demo(env_home: Path, *args: str) -> tuple[subprocess.Popen[str], Path]:
    """Start `run --sample` as `./dev run` does; return it and the state folder its banner names."""
    proc = subprocess.Popen(
        [ZC, "run", "--sample", "--port", "0", "--pac-port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line)
        if "zerocontact is running" in line:
            break
    else:
        raise AssertionError("the demo did not start:\n" + "".join(lines))
    banner = "".join(lines)
    assert "zerocontact demo" in banner and "no cooling-off" in banner
    state = Path(banner.split("--state-dir ", 1)[1].split()[0])
    return proc, state


def test_the_demo_runs_in_a_throwaway_folder_and_leaves_nothing(isolated_home: Path) -> None:
    import signal

    proc, state = _demo(isolated_home)
    try:
        assert state.is_dir() and state.name.startswith("zerocontact-demo-")
        assert not str(state).startswith(str(isolated_home))
        assert Runtime.read(state / "daemon.json") is not None
        st = wait_for(lambda: Status.read(state / "status.json"), 10, "the demo's status")
        assert st.cooling_off_seconds == 0  # no lock: nothing to wait for
        assert [p.name for p in st.people if p.active] == ["Sam"]
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C does
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "Traceback" not in out and f"deleted {state}" in out
    assert not state.exists()
    # the user's own state, config and data folders were never created
    for sub in (".local/state/zerocontact", ".config/zerocontact", ".local/share/zerocontact"):
        assert not (isolated_home / sub).exists(), sub


def test_stopping_the_demo_notes_no_bypass(tmp_path: Path, isolated_home: Path) -> None:
    import signal
    import sqlite3

    kept = tmp_path / "kept"
    proc, state = _demo(isolated_home, "--state-dir", str(kept))
    assert state == kept
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert kept.is_dir() and "deleted" not in out  # a folder the user named is theirs to keep
    con = sqlite3.connect(f"file:{kept / 'journal.sqlite3'}?mode=ro", uri=True)
    try:
        channels = [r[0] for r in con.execute("SELECT channel FROM attempts")]
        events = [r[0] for r in con.execute("SELECT kind FROM events")]
    finally:
        con.close()
    assert channels == [] and "stopped" in events


def test_status_says_spans_in_words_and_what_the_next_change_is(tmp_path: Path) -> None:
    import datetime as dt

    from zerocontact.daemon.status import PendingStatus, PersonStatus

    now = dt.datetime(2026, 12, 1, 20, 0, tzinfo=dt.UTC)
    Status(
        trusted_time=now.isoformat(),
        people=[PersonStatus("Sam", True, ["profile"], ["instagram"], None, [])],
        next_transition=(now + dt.timedelta(hours=3)).isoformat(),
        next_change="the block on Sam lifts",
        pending=[
            PendingStatus(
                "remove Ann", "person:Ann", now.isoformat(), (now + dt.timedelta(minutes=2)).isoformat()
            )
        ],
        cooling_off_seconds=120,
    ).write(tmp_path / "status.json")
    r = run("status", "--state-dir", str(tmp_path))
    assert "cooling-off 2 min;" in r.stdout and "0.0333" not in r.stdout
    assert "(in 3 h): the block on Sam lifts" in r.stdout
    assert "remove Ann: applies at " in r.stdout and "(in 2 min)" in r.stdout


def test_durations_read_as_people_say_them() -> None:
    import datetime as dt

    from zerocontact.daemon.cli.service import duration

    cases = {
        0: "now",
        40: "less than a minute",
        120: "2 min",
        3600 * 24: "1 day",
        3600 * 36: "1 day 12 h",
        86400 * 90 + 61: "90 days 1 min",
        3600 * 3 + 59 * 60 + 59: "3 h 59 min",
    }
    for seconds, words in cases.items():
        assert duration(dt.timedelta(seconds=seconds)) == words, seconds
