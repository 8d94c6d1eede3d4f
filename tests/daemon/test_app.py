"""The daemon built and driven in-process, with an injected clock and paths in tmp_path: a reload, a
commitment decision and a schedule transition, each observed on the live ``Daemon`` and in its journal.

The proxy, PAC server, journal and scheduler are the real ones on loopback (ports chosen by the OS);
only the trusted clock is a hand-moved stand-in, so hours of cooling-off pass in a test."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest

from zerocontact.daemon.app import Daemon, Options
from zerocontact.daemon.clock import ClockStatus
from zerocontact.daemon.paths import Paths
from zerocontact.daemon.status import Status
from zerocontact.rules import Request, load

T0 = dt.datetime(2026, 12, 1, 20, 0, tzinfo=dt.UTC)
SAM = Request("GET", "https://www.instagram.com/sam.example/")
ANN = Request("GET", "https://www.instagram.com/ann.example/")


class HandClock:
    """Trusted time that moves only when the test says so."""

    def __init__(self, now: dt.datetime) -> None:
        self.t = now
        self.saved = 0

    def now(self) -> dt.datetime:
        return self.t

    def check(self) -> ClockStatus:
        return self.status()

    def status(self) -> ClockStatus:
        return ClockStatus(trusted=True, skew_seconds=0.0, detail="moved by the test")

    def observe_date(self, date: dt.datetime) -> None:
        pass

    def save(self) -> None:
        self.saved += 1


def rules_text(people: dict[str, str]) -> str:
    """``people``: name → extra lines of that person's entry (e.g. an until)."""
    out = '[lock]\ncooling_off = "2h"\n'
    for name, extra in people.items():
        out += (
            f'[[person]]\nname = "{name}"\naccounts = {{ instagram = "{name.lower()}.example" }}\n{extra}\n'
        )
    return out


def make(tmp_path: Path, text: str, clock: HandClock, *, state: str = "state", port: int = 0) -> Daemon:
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(text)
    opts = Options(
        paths=Paths(config_dir=tmp_path / "config", state_dir=tmp_path / state),
        rules_path=rules_file,
        port=port,
        pac_port=0,
        timezone="UTC",
        rules_bytes=text.encode(),
        watch_processes=False,
    )
    return Daemon(opts, load(text, str(rules_file)), clock=clock)


def blocked(d: Daemon, req: Request) -> bool:
    enf = d.enforcement
    return enf.matcher.judge(req, enf.active).block


def events(state: Path) -> list[tuple[str, str]]:
    con = sqlite3.connect(state / "journal.sqlite3")
    try:
        return [(k, v) for k, v in con.execute("SELECT kind, detail FROM events ORDER BY id")]
    finally:
        con.close()


def test_reload_commitment_and_transition_in_process(tmp_path: Path) -> None:
    clock = HandClock(T0)
    until = (T0 + dt.timedelta(hours=5)).isoformat()
    d = make(tmp_path, rules_text({"Sam": ""}), clock)

    async def scenario() -> None:
        await d.start()
        try:
            assert blocked(d, SAM) and not blocked(d, ANN)

            # a reload that tightens (a new person, blocked until T0+5h) applies at once
            d.apply_rules_text(rules_text({"Sam": "", "Ann": f"until = {until}"}).encode())
            await d.settled()
            assert d.last_reload.ok and blocked(d, ANN)

            # a reload that loosens (Sam removed) is a commitment decision: pending for the cooling-off
            d.apply_rules_text(rules_text({"Ann": f"until = {until}"}).encode())
            await d.settled()
            assert blocked(d, SAM), "a loosening must wait out the cooling-off"
            st = Status.read(d.paths.status)
            assert st is not None and [p.change for p in st.pending] != []
            applies = dt.datetime.fromisoformat(st.pending[0].applies_at)
            assert applies == T0 + dt.timedelta(hours=2)

            clock.t = applies + dt.timedelta(seconds=1)
            await d.reconcile()
            assert not blocked(d, SAM) and blocked(d, ANN)
            assert Status.read(d.paths.status).pending == []  # type: ignore[union-attr]

            # a schedule transition: Ann's block lifts at her until
            assert d.enforcement.state.next_change == dt.datetime.fromisoformat(until)
            st = Status.read(d.paths.status)
            assert st is not None and st.next_change == "the block on Ann lifts"
            clock.t = dt.datetime.fromisoformat(until) + dt.timedelta(seconds=1)
            await d.reconcile()
            assert not blocked(d, ANN) and d.enforcement.active == frozenset()
        finally:
            await d.stop()

    asyncio.run(scenario())
    kinds = events(tmp_path / "state")
    assert ("block started", "Ann") in kinds
    assert ("block lifted", "Sam") in kinds and ("block lifted", "Ann") in kinds
    assert kinds[0][0] == "started" and kinds[-1][0] == "stopped"
    assert clock.saved > 0
    assert not (tmp_path / "state" / "daemon.json").exists()  # the runtime record goes with the daemon


def test_a_bad_reload_keeps_the_last_good_rules_in_process(tmp_path: Path) -> None:
    clock = HandClock(T0)
    d = make(tmp_path, rules_text({"Sam": ""}), clock)

    async def scenario() -> None:
        await d.start()
        try:
            d.apply_rules_text(b'[[person]]\nname = "Sam"\naccounts = { instgram = "x" }\n')
            await d.settled()
            assert not d.last_reload.ok and "instgram" in d.last_reload.detail
            assert blocked(d, SAM)
            st = Status.read(d.paths.status)
            assert st is not None and not st.last_reload.ok
        finally:
            await d.stop()

    asyncio.run(scenario())


def test_a_failed_start_stops_what_started(tmp_path: Path) -> None:
    clock = HandClock(T0)
    first = make(tmp_path, rules_text({"Sam": ""}), clock)

    async def scenario() -> str:
        await first.start()
        try:
            # a second daemon on its own state dir but the first one's port: the lock, journal and
            # blocker start, then the proxy cannot listen; everything that started must stop again
            busy = make(tmp_path, rules_text({"Sam": ""}), clock, state="other", port=first.proxy_addr[1])
            try:
                await busy.start()
            except Exception as e:
                message = str(e)
            else:
                await busy.stop()
                return "started on a busy port"
            again = make(tmp_path, rules_text({"Sam": ""}), clock, state="other")
            await again.start()  # the lock was released and the journal closed
            await again.stop()
            return message
        finally:
            await first.stop()

    message = asyncio.run(scenario())
    assert message.startswith("cannot listen on 127.0.0.1:")
    assert ("stopped", "") in events(tmp_path / "other")
    assert not (tmp_path / "other" / "daemon.json").exists()


def test_far_future_times_in_the_state_files_neither_stop_the_daemon_nor_other_windows(
    tmp_path: Path,
) -> None:
    """A corrupt started.json (times in the year 9999) would overflow ``start + for``: the daemon
    still starts, keeps Sam blocked (no end), and Ann's window starts on time at the next reconcile."""
    clock = HandClock(T0)
    text = rules_text({"Sam": 'for = "90d"', "Ann": 'windows = ["22:00-07:00"]\ntimezone = "UTC"'})
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    late = "9999-12-31T12:00:00+00:00"
    (state / "started.json").write_text(json.dumps({"person:Sam": late, "person:Ann": late}))
    d = make(tmp_path, text, clock)

    async def scenario() -> None:
        await d.start()
        try:
            assert blocked(d, SAM) and not blocked(d, ANN)
            assert d.enforcement.state.next_change == T0.replace(hour=22)
            clock.t = T0.replace(hour=22, minute=1)
            await d.reconcile()
            assert blocked(d, ANN) and blocked(d, SAM)
            st = Status.read(d.paths.status)
            assert st is not None and st.problems == []
            assert {p.name: p.until for p in st.people} == {"Sam": None, "Ann": None}
        finally:
            await d.stop()

    asyncio.run(scenario())


def test_a_failing_decision_keeps_what_is_in_force_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever goes wrong while re-deciding (here a stand-in bug), the 30 s reconcile must not raise
    (APScheduler would log it every 30 s and nothing would change): the last decision stays, and the
    problem is published once in the status until deciding works again."""
    clock = HandClock(T0)
    d = make(tmp_path, rules_text({"Sam": ""}), clock)

    async def scenario() -> None:
        await d.start()
        try:
            assert d.commitment is not None
            real = d.commitment.decide

            def broken(*args: object) -> object:
                raise OverflowError("date value out of range")

            monkeypatch.setattr(d.commitment, "decide", broken)
            await d.reconcile()
            await d.reconcile()
            st = Status.read(d.paths.status)
            assert st is not None and st.problems == [
                "cannot re-decide what is in force (OverflowError: date value out of range); "
                "the last decision stays"
            ]
            assert blocked(d, SAM)
            monkeypatch.setattr(d.commitment, "decide", real)
            await d.reconcile()
            assert Status.read(d.paths.status).problems == []  # type: ignore[union-attr]
        finally:
            await d.stop()

    asyncio.run(scenario())


def test_reconcile_on_a_read_only_state_directory_reports_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The 30 s reconcile must not raise when nothing can be written (it did, every 30 s): the
    problem is logged once, and the status is current again as soon as the directory is writable."""
    import logging

    from zctest.support import mounted

    clock = HandClock(T0)
    d = make(tmp_path, rules_text({"Sam": ""}), clock)
    state = tmp_path / "state"

    async def scenario() -> None:
        await d.start()
        try:
            with mounted("--bind", str(state), str(state)) as again:
                again("-o", "remount,bind,ro")
                clock.t += dt.timedelta(minutes=1)
                # a loosening edit: the commitment files must be rewritten, and cannot be
                d.apply_rules_text(rules_text({"Sam": "", "Ann": ""}).encode())
                await d.settled()
                await d.reconcile()
                await d.reconcile()
                assert list(d.problems) == ["state"]
                assert "Read-only file system" in d.problems["state"] and blocked(d, SAM)
                again("-o", "remount,bind,rw")
                await d.reconcile()
            assert d.problems == {}
            errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
            assert len([e for e in errors if "cannot save its state" in e]) == 1, errors
            assert len([e for e in errors if "cannot publish the status" in e]) == 1, errors
            st = Status.read(d.paths.status)
            assert st is not None and st.problems == [] and st.trusted_time == clock.t.isoformat()
        finally:
            await d.stop()

    asyncio.run(scenario())


WITHOUT_POSIX = """
import asyncio, asyncio.unix_events, signal, sys
# as on Windows: no fcntl module, no SIGHUP, and event loops that take no signal handlers
sys.modules["fcntl"] = None
del signal.SIGHUP
def no_handlers(self, *args, **kwargs):
    raise NotImplementedError
asyncio.unix_events._UnixSelectorEventLoop.add_signal_handler = no_handlers
from zerocontact.daemon.cli import main
sys.argv = ["zerocontact", *sys.argv[1:]]
main()
"""


def test_run_starts_and_stops_without_fcntl_sighup_or_loop_signal_handlers(tmp_path: Path) -> None:
    """Windows has neither fcntl nor SIGHUP, and its event loops refuse add_signal_handler: the
    daemon still starts, keeps one instance per state folder, and Ctrl-C still stops it cleanly."""
    import json
    import signal
    import subprocess
    import sys

    from zctest.support import wait_for

    rules = tmp_path / "rules.toml"
    rules.write_text(rules_text({"Sam": ""}))
    state = tmp_path / "state"
    argv = [sys.executable, "-c", WITHOUT_POSIX, "run", "--rules", str(rules), "--port", "0"]
    argv += ["--pac-port", "0", "--state-dir", str(state)]
    log = (tmp_path / "daemon.log").open("w")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:

        def started() -> dict[str, object] | None:
            assert proc.poll() is None, (tmp_path / "daemon.log").read_text()
            try:
                info = json.loads((state / "daemon.json").read_text())
            except (OSError, ValueError):
                return None
            return info if info.get("pid") == proc.pid else None

        wait_for(started, 30, "the daemon without fcntl to start")
        second = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and f"already running (pid {proc.pid})" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: asyncio.run cancels the daemon's coroutine
        code = proc.wait(30)
    out = (tmp_path / "daemon.log").read_text()
    assert code == 0 and "Traceback" not in out, out
    assert "stopping" in out and not (state / "daemon.json").exists()  # stopped in order, unpublished
    con = sqlite3.connect(f"file:{state / 'journal.sqlite3'}?mode=ro", uri=True)
    try:
        assert ("stopped",) in con.execute("SELECT kind FROM events").fetchall()
    finally:
        con.close()
