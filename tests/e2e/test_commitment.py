"""Time and commitment with the real daemon: hot reload, cooling-off, restarts, schedules, clock jumps."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from zctest.e2e import ZC, Daemon, Origin, start_daemon
from zctest.support import need_tool, wait_for

pytestmark = pytest.mark.e2e
SAM = "http://www.instagram.com/sam.example/"
ANN = "http://www.instagram.com/ann.example/"


def rules(cooling: str = "1h", people: str = "Sam", extra: str = "") -> str:
    out = f'[lock]\ncooling_off = "{cooling}"\n'
    for name in people.split(","):
        if name:
            out += (
                f'[[person]]\nname = "{name}"\naccounts = {{ instagram = "{name.lower()}.example" }}\n{extra}'
            )
    return out


def status_of(d: Daemon) -> dict[str, object]:
    r = subprocess.run([ZC, "status", "--json", "--state-dir", str(d.state)], capture_output=True, text=True)
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def code(d: Daemon, url: str) -> str:
    r = subprocess.run(
        [need_tool("curl"), "-s", "-o", "/dev/null", "-w", "%{http_code}", "-x", f"http://{d.proxy}", url],
        capture_output=True,
        text=True,
        timeout=20,
    )
    return r.stdout


def save(path: Path, text: str) -> None:
    """Save like an editor that writes a temp file and renames it."""
    tmp = path.with_name(path.name + ".swp")
    tmp.write_text(text)
    os.replace(tmp, path)


def start(
    tmp_path: Path, origin: Origin, text: str, name: str = "d", env: dict[str, str] | None = None
) -> Daemon:
    return start_daemon(
        tmp_path,
        rules=text,
        name=name,
        env=env,
        extra=("--redirect-upstream", f"www.instagram.com=127.0.0.1:{origin.port}"),
    )


def test_tightening_applies_at_once_on_save(tmp_path: Path, origin: Origin) -> None:
    d = start(tmp_path, origin, rules())
    try:
        assert code(d, ANN) == "200"
        save(d.rules, rules(people="Sam,Ann"))
        wait_for(lambda: code(d, ANN) == "403", 5, "Ann's block to apply")
        assert code(d, SAM) == "403"
    finally:
        d.stop()


def test_loosening_waits_survives_restart_and_applies_after_cooling_off(
    tmp_path: Path, origin: Origin
) -> None:
    d = start(tmp_path, origin, rules(cooling="1h"))
    try:
        save(d.rules, rules(cooling="1h", people=""))
        wait_for(lambda: status_of(d).get("pending"), 5, "the loosening to be pending")
        pending = status_of(d)["pending"]
        assert [p["change"] for p in pending] == ["stop blocking Sam"]  # type: ignore[index, union-attr]
        assert code(d, SAM) == "403"  # still enforced
    finally:
        d.stop()
    # stopping the service, editing and restarting does not skip the cooling-off
    d2 = start(tmp_path, origin, rules(cooling="1h", people=""), name="d")
    try:
        assert code(d2, SAM) == "403"
        again = status_of(d2)["pending"]
        assert again == pending
    finally:
        d2.stop()


def test_cooling_off_passes_then_the_loosening_applies(tmp_path: Path, origin: Origin) -> None:
    d = start(tmp_path, origin, rules(cooling="3s"))
    try:
        save(d.rules, rules(cooling="3s", people=""))
        wait_for(lambda: status_of(d).get("pending"), 5, "the loosening to be pending")
        assert code(d, SAM) == "403"
        wait_for(lambda: code(d, SAM) == "200", 15, "the loosening to apply after its cooling-off")
        assert not status_of(d).get("pending")
    finally:
        d.stop()


def test_bad_edit_keeps_the_last_good_rules_and_reports_where(tmp_path: Path, origin: Origin) -> None:
    d = start(tmp_path, origin, rules())
    try:
        save(d.rules, '[lock]\ncooling_off = "1h"\n[[person]]\nname = "Sam"\naccounts = { instgram = "x" }\n')
        wait_for(lambda: not (status_of(d).get("last_reload") or {}).get("ok", True), 5, "the failed reload")
        detail = status_of(d)["last_reload"]["detail"]  # type: ignore[index]
        assert f'{d.rules}:5:14: person "Sam", accounts.instgram: unknown platform' in detail
        assert code(d, SAM) == "403"
        r = subprocess.run([ZC, "reload", "--state-dir", str(d.state)], capture_output=True, text=True)
        assert r.returncode == 1 and "instgram" in r.stdout
        r = subprocess.run([ZC, "status", "--state-dir", str(d.state)], capture_output=True, text=True)
        assert "Last reload:  FAILED" in r.stdout and "blocking now  Sam" in r.stdout
    finally:
        d.stop()


def test_block_lifts_exactly_at_until_and_stopping_during_a_block_is_noted(
    tmp_path: Path, origin: Origin
) -> None:
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=4)).replace(microsecond=0).isoformat()
    d = start(tmp_path, origin, rules(extra=f"until = {until}\n"))
    try:
        assert code(d, SAM) == "403"
        wait_for(lambda: code(d, SAM) == "200", 15, "the block to lift at its until")
        assert "block lifted: Sam" in d.output()
    finally:
        d.stop()
    d2 = start(tmp_path, origin, rules(), name="again")
    d2.stop()
    con = sqlite3.connect(d2.state / "journal.sqlite3")
    try:
        rows = con.execute("SELECT channel, detail FROM attempts WHERE channel = 'bypass'").fetchall()
    finally:
        con.close()
    assert rows == [("bypass", "the service was stopped while blocking Sam")]


def restarted_under_faketime(tmp_path: Path, origin: Origin, faketime: dict[str, str]) -> dict[str, object]:
    """Block Sam until tomorrow, stop, restart the same daemon under libfaketime with ``faketime``;
    check the block holds and return the restarted daemon's status."""
    need_tool("faketime")  # the package that ships libfaketime
    import glob

    (lib,) = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).replace(microsecond=0).isoformat()
    text = rules(extra=f"until = {until}\n")
    start(tmp_path, origin, text).stop()
    d2 = start_daemon(
        tmp_path,
        rules=text,
        name="d",
        env={"LD_PRELOAD": lib, **faketime},
        extra=("--redirect-upstream", f"www.instagram.com=127.0.0.1:{origin.port}"),
    )
    try:
        assert code(d2, SAM) == "403"
        st = status_of(d2)
        assert st["clock"]["trusted"] is False  # type: ignore[index]
        assert st["people"][0]["active"] is True  # type: ignore[index]
        return st
    finally:
        d2.stop()


def test_libfaketime_faking_every_clock_does_not_lift_the_block(tmp_path: Path, origin: Origin) -> None:
    """libfaketime also fakes CLOCK_BOOTTIME and CLOCK_MONOTONIC (its default): the daemon's boot
    clock would say 57 years passed. The kernel's /proc/uptime, read as a file, is not faked."""
    st = restarted_under_faketime(tmp_path, origin, {"FAKETIME": "+20870d"})
    assert "faked" in st["clock"]["detail"]  # type: ignore[index]


def test_a_year_jump_of_the_system_clock_does_not_lift_the_block(tmp_path: Path, origin: Origin) -> None:
    # the system clock a year ahead; monotonic and boot time stay real, as when someone sets the clock
    env = {"FAKETIME": "+365d", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    st = restarted_under_faketime(tmp_path, origin, env)
    assert "moved forward" in st["clock"]["detail"]  # type: ignore[index]


def test_sigkill_during_a_block_is_journalled_at_the_next_start(tmp_path: Path, origin: Origin) -> None:
    import signal

    d = start(tmp_path, origin, rules())
    assert code(d, SAM) == "403"
    # the status naming who is blocked follows daemon.json by a moment: kill it once it is there
    wait_for(lambda: (d.state / "status.json").exists(), 10, "the published status")
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(5)
    d2 = start(tmp_path, origin, rules(), name="d")
    d2.stop()
    con = sqlite3.connect(d2.state / "journal.sqlite3")
    try:
        bypass = con.execute("SELECT detail FROM attempts WHERE channel = 'bypass'").fetchall()
        events = [k for (k,) in con.execute("SELECT kind FROM events")]
    finally:
        con.close()
    assert ("the service was killed or lost power while blocking Sam",) in bypass
    assert events.count("unclean stop") == 1
    # a clean stop and start leaves no such trace
    d3 = start(tmp_path, origin, rules(), name="d")
    d3.stop()
    con = sqlite3.connect(d3.state / "journal.sqlite3")
    try:
        assert [k for (k,) in con.execute("SELECT kind FROM events")].count("unclean stop") == 1
    finally:
        con.close()


@pytest.mark.parametrize("how", ["deleted", "edited", "older"])
def test_state_files_changed_while_stopped_are_restored_from_the_journal(
    tmp_path: Path, origin: Origin, how: str
) -> None:
    d = start(tmp_path, origin, rules(cooling="1h"))
    names = ("in-force.toml", "pending.json", "started.json")
    wait_for(lambda: all((d.state / n).exists() for n in names), 10, "the state files")
    older = {n: (d.state / n).read_text() for n in names}
    try:
        save(d.rules, rules(cooling="1h", people=""))  # a loosening: pending for an hour
        wait_for(lambda: status_of(d).get("pending"), 5, "the loosening to be pending")
    finally:
        d.stop()
    for name in ("in-force.toml", "pending.json", "started.json"):
        f = d.state / name
        if how == "deleted":
            f.unlink()
        elif how == "edited":  # as if the user had written what they wish were in force
            f.write_text(rules(cooling="0s", people="") if name == "in-force.toml" else "{}")
        else:  # put back as it was before the loosening was asked for
            f.write_text(older[name])
    d2 = start(tmp_path, origin, rules(cooling="1h", people=""), name="d")
    try:
        assert code(d2, SAM) == "403"  # the block is still in force
        st = status_of(d2)
        assert [p["change"] for p in st["pending"]] == ["stop blocking Sam"]  # type: ignore[index, union-attr]
        # (older: in-force.toml was still the same, since the loosening had not applied; pending was not)
        assert any("pending.json was" in t for t in st["tampering"])  # type: ignore[union-attr]
        r = subprocess.run([ZC, "status", "--state-dir", str(d2.state)], capture_output=True, text=True)
        assert "Tampering:" in r.stdout
    finally:
        d2.stop()
    r = subprocess.run([ZC, "log", "--state-dir", str(d2.state)], capture_output=True, text=True)
    assert "commitment: pending.json was" in r.stdout  # a bypass attempt in the user's own log
    if how == "deleted":
        assert (d2.state / "in-force.toml").exists()  # written back


def test_a_removed_journal_is_noticed(tmp_path: Path, origin: Origin) -> None:
    d = start(tmp_path, origin, rules())
    d.stop()
    for f in d.state.glob("journal.sqlite3*"):
        f.unlink()
    d2 = start(tmp_path, origin, rules(), name="d")
    try:
        assert code(d2, SAM) == "403"
        assert any("journal was removed" in t for t in status_of(d2)["tampering"])  # type: ignore[union-attr]
    finally:
        d2.stop()


def test_the_copy_in_force_names_the_file_bytes_it_was_taken_from(tmp_path: Path, origin: Origin) -> None:
    """A real start writes the digest of the rules file's bytes into the copy in force; a restart
    on the same file rewrites nothing; a reload (tightening) names the new bytes."""
    from zerocontact.daemon.cli.common import local_timezone
    from zerocontact.daemon.commitment import source_digest

    def expected(d: Daemon) -> str:  # the daemon reads the file in the zone this process sees too
        digest = source_digest(d.rules.read_bytes(), local_timezone())
        return f"# dumped from the rules file with digest {digest}"

    def digest_line(d: Daemon) -> str:
        f = d.state / "in-force.toml"
        lines = f.read_text().splitlines() if f.exists() else []  # written just after the start
        return lines[1] if len(lines) > 1 else ""

    d = start(tmp_path, origin, rules())
    try:
        wait_for(lambda: digest_line(d) == expected(d), 10, "the copy to name the file's bytes")
        first = digest_line(d)
    finally:
        d.stop()
    before = (d.state / "in-force.toml").stat()
    d2 = start(tmp_path, origin, rules(), name="d")
    try:
        assert code(d2, SAM) == "403"
        after = (d2.state / "in-force.toml").stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        save(d2.rules, rules(people="Sam,Ann"))
        wait_for(lambda: code(d2, ANN) == "403", 5, "Ann's block to apply")
        wait_for(lambda: digest_line(d2) == expected(d2) != first, 10, "the copy to name the new bytes")
        assert "ann.example" in (d2.state / "in-force.toml").read_text()
    finally:
        d2.stop()
