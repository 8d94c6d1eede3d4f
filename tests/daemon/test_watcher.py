"""The process watcher with real processes, real signals and a real asyncio loop.

Processes are copies of /bin/sleep (or tiny Python scripts) under app names in ``tmp_path``. Every
signal goes through ``signal_process``, which these tests wrap: it is delivered only to processes
that run something from this test's ``tmp_path`` (or that the test named), so a watcher bug can
never signal anything else on the machine; everything asked for is recorded. Nothing sleeps to
synchronise: tests poll with ``wait_for``; where a test shows that *nothing* happens, it waits for
the watcher to complete several more polls (its ``stats``) and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from tests.support import wait_for
from zerocontact.daemon import watcher as watcher_mod
from zerocontact.daemon.journal import Attempt
from zerocontact.daemon.watcher import ProcessWatcher, explain_running, proc_net_remotes
from zerocontact.rules import Ruleset, load
from zerocontact.rules.schema import App

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="real /proc processes")
POLL = 0.05
PERSON = '[[person]]\nname = "Sam"\naccounts = { instagram = "sam.example" }\n'


@dataclass
class Spy:
    """Records every signal the watcher asks for; delivers only to this test's own processes."""

    root: Path
    allowed: set[int] = field(default_factory=set)
    calls: list[tuple[int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ours(self, p: psutil.Process) -> bool:
        if p.pid in self.allowed:
            return True
        try:
            return any(str(self.root) in part for part in [p.exe(), *p.cmdline()])
        except psutil.Error:
            return False

    def __call__(self, p: psutil.Process, what: str) -> None:
        with self.lock:
            self.calls.append((p.pid, what))
        if p.pid not in (0, 1, os.getpid()) and self.ours(p):
            getattr(p, what)()

    def asked(self, pid: int) -> list[str]:
        with self.lock:
            return [w for p, w in self.calls if p == pid]


class Harness:
    """A started watcher on a loop thread, the attempts it reported, and the processes a test runs."""

    def __init__(self, tmp: Path, spy: Spy, *, system_mode: bool = False) -> None:
        self.tmp, self.spy = tmp, spy
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.attempts: list[Attempt] = []
        self.report_threads: set[int] = set()
        self.w = ProcessWatcher(
            self.loop, self._report, system_mode=system_mode, poll_interval=POLL, resolver=self._resolve
        )
        self.hosts: dict[str, set[str]] = {}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.w.start()

    def _report(self, a: Attempt) -> None:
        self.report_threads.add(threading.get_ident())
        self.attempts.append(a)

    def _resolve(self, host: str) -> set[str]:
        if host not in self.hosts:
            raise OSError(f"no DNS for {host} in tests")
        return self.hosts[host]

    def update(self, rules: Ruleset, apps: Iterable[str] = (), people: Iterable[str] = ()) -> None:
        """Call ``update`` from the loop thread, as the daemon does, and wait until it is applied."""
        sweeps = self.w.stats["sweeps"]
        pac = "http://127.0.0.1:8342/proxy.pac"
        args = (rules, frozenset(apps), frozenset(people), ["instagram.com"], 8341, pac)
        self.loop.call_soon_threadsafe(self.w.update, *args)
        wait_for(lambda: self.w.stats["sweeps"] > sweeps, what="the watcher to apply the update")

    def settle(self, polls: int = 4) -> None:
        """Let the watcher complete ``polls`` more polls (for asserting that nothing happened)."""
        start = self.w.stats["polls"]
        wait_for(lambda: self.w.stats["polls"] >= start + polls, what=f"{polls} more polls")

    def binary(self, name: str, source: str = "/bin/sleep") -> Path:
        path = self.tmp / "bin" / name
        path.parent.mkdir(exist_ok=True)
        shutil.copy(source, path)
        path.chmod(0o755)
        return path

    def script(self, name: str, body: str) -> Path:
        path = self.tmp / "bin" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"#!{sys.executable}\nimport os, signal, subprocess, sys, time\n{body}\n")
        path.chmod(0o755)
        return path

    def run(self, *argv: str | Path, **kw: object) -> subprocess.Popen[bytes]:
        p = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, **kw)  # type: ignore[call-overload]
        self.procs.append(p)
        self.spy.allowed.add(p.pid)
        return p

    def about(self, pid: int) -> list[Attempt]:
        return [a for a in self.attempts if a.process and a.process.endswith(f"({pid})")]

    def close(self) -> None:
        self.w.stop()
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(OSError):
                    os.kill(p.pid, signal.SIGCONT)
                    p.kill()
            p.wait(timeout=10)
            if p.stdout:
                p.stdout.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


@pytest.fixture
def spy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Spy:
    s = Spy(tmp_path)
    monkeypatch.setattr(watcher_mod, "signal_process", s)
    return s


@pytest.fixture
def h(tmp_path: Path, spy: Spy) -> Iterator[Harness]:
    harness = Harness(tmp_path, spy)
    yield harness
    harness.close()


def status(pid: int) -> str:
    try:
        return str(psutil.Process(pid).status())
    except psutil.Error:
        return "gone"


def rules_for(app: str, action: str = "terminate", grace: float = 0.3, extra: str = "") -> Ruleset:
    return load(f'{extra}[[app]]\nname = "r"\nmatch = ["{app}"]\naction = "{action}"\ngrace = {grace}\n')


# --- terminate ----------------------------------------------------------------------------------------
def test_terminates_a_preset_app_and_reports_one_attempt(h: Harness) -> None:
    h.update(rules_for("whatsapp"), apps={"r"})
    exe = h.binary("whatsapp")
    p = h.run(exe, "300")
    wait_for(lambda: p.poll() is not None, what="whatsapp to be terminated")
    assert p.returncode == -signal.SIGTERM
    (a,) = wait_for(lambda: h.about(p.pid), what="the attempt")
    assert (a.channel, a.rule, a.platform, a.person, a.process) == (
        "app",
        "r",
        "whatsapp",
        None,
        f"whatsapp ({p.pid})",
    )
    assert (
        a.detail is not None and a.detail.startswith(f"terminated {exe};") and "preset whatsapp" in a.detail
    )
    assert h.report_threads == {h.thread.ident}  # delivered on the loop's thread
    h.settle()
    assert len(h.about(p.pid)) == 1  # one launch, one attempt: not one per poll
    assert h.spy.asked(p.pid)[0] == "terminate"


def test_kills_after_the_grace_when_term_is_ignored_exec_a(h: Harness) -> None:
    """``exec -a Telegram`` a TERM-ignoring sleep: name "sleep", argv[0] "Telegram"; a young process
    that execs is inspected again."""
    h.update(rules_for("telegram", grace=0.4), apps={"r"})
    sleep = h.binary("sleeper")
    p = h.run("bash", "-c", f"trap '' TERM; exec -a Telegram {sleep} 300")
    wait_for(lambda: p.poll() is not None, what="Telegram to be killed")
    assert p.returncode == -signal.SIGKILL
    assert h.spy.asked(p.pid) == ["terminate", "suspend", "kill"]  # frozen, so it spawns nothing more
    (a,) = wait_for(lambda: h.about(p.pid), what="the attempt")
    assert a.platform == "telegram" and a.process == f"sleeper ({p.pid})"


def test_globs_on_command_line_and_executable(h: Harness) -> None:
    token = f"zc-{uuid.uuid4().hex[:8]}"
    rules = load(
        f'[[app]]\nname = "cmd"\nmatch = ["cmdline:*--profile={token}*"]\n'
        f'[[app]]\nname = "path"\nmatch = ["exe:{h.tmp}/bin/notes-*"]\n'
    )
    h.update(rules, apps={"cmd", "path"})
    by_cmd = h.run(h.script("reader", "time.sleep(300)"), f"--profile={token}")
    by_exe = h.run(h.binary("notes-app"), "300")
    for p, rule in ((by_cmd, "cmd"), (by_exe, "path")):
        wait_for(lambda p=p: p.poll() is not None, what=f"{rule} to stop its process")  # type: ignore[misc]
        (a,) = wait_for(lambda p=p: h.about(p.pid), what="the attempt")  # type: ignore[misc]
        assert a.rule == rule and a.platform is None


def test_a_non_matching_process_is_never_touched(h: Harness) -> None:
    h.update(rules_for("whatsapp"), apps={"r"})
    p = h.run(h.binary("whatsapp-notes"), "300")
    wait_for(lambda: h.w.seen(p.pid), what="the watcher to see it")
    h.settle()  # several polls and its young re-inspections: nothing may happen
    assert p.poll() is None and h.spy.asked(p.pid) == [] and h.about(p.pid) == []


def test_helpers_of_a_launch_fold_into_it(h: Harness) -> None:
    """An app that spawns helpers (Electron-style): one attempt; the helpers share its fate."""
    helper = h.binary("discord-helper")
    main = h.script(
        "Discord",
        "for _ in range(6):\n"
        f"    c = subprocess.Popen([{str(helper)!r}, '300'], stdout=subprocess.DEVNULL)\n"
        "    print(c.pid, flush=True)\n"
        "    time.sleep(0.1)\n"
        "time.sleep(300)",
    )
    h.update(rules_for("discord", grace=0.5), apps={"r"})
    p = h.run("bash", "-c", f"trap '' TERM; exec {main}")  # TERM ignored from the start, helpers too
    wait_for(lambda: p.poll() is not None, what="Discord to be killed")
    assert p.returncode == -signal.SIGKILL
    assert p.stdout is not None
    helpers = [int(line) for line in p.stdout.read().split()]
    assert helpers
    for pid in helpers:
        wait_for(lambda pid=pid: status(pid) in ("gone", "zombie"), what=f"helper {pid} to stop")  # type: ignore[misc]
    h.settle()
    assert len(h.about(p.pid)) == 1
    assert [a for a in h.attempts if a.channel == "app"] == h.about(p.pid)  # no attempt for a helper


# --- suspend and the window ---------------------------------------------------------------------------
def test_suspends_then_resumes_when_the_window_ends(h: Harness) -> None:
    rules = rules_for("signal", action="suspend")
    h.update(rules, apps={"r"})
    p = h.run(h.binary("signal-desktop"), "300")
    wait_for(lambda: status(p.pid) == psutil.STATUS_STOPPED, what="signal-desktop to be suspended")
    (a,) = wait_for(lambda: h.about(p.pid), what="the attempt")
    assert a.detail is not None and a.detail.startswith("suspended ")
    assert h.w.suspended == [f"signal-desktop ({p.pid})"]
    h.update(rules, apps=set())  # the window ends
    wait_for(lambda: status(p.pid) in (psutil.STATUS_SLEEPING, psutil.STATUS_RUNNING), what="it to resume")
    assert h.w.suspended == [] and len(h.about(p.pid)) == 1
    h.update(rules, apps={"r"})  # the next window: it is still running, so it is stopped again
    wait_for(lambda: status(p.pid) == psutil.STATUS_STOPPED, what="it to be suspended again")
    second = wait_for(lambda: h.about(p.pid)[1:], what="a second attempt")[0]
    assert second.detail is not None and "already running when the rule took effect" in second.detail
    assert h.spy.asked(p.pid) == ["suspend", "resume", "suspend"]


def test_stop_resumes_everything_it_suspended(h: Harness) -> None:
    h.update(rules_for("spotify", action="suspend"), apps={"r"})
    p = h.run(h.binary("spotify"), "300")
    wait_for(lambda: status(p.pid) == psutil.STATUS_STOPPED, what="spotify to be suspended")
    h.w.stop()
    assert status(p.pid) in (psutil.STATUS_SLEEPING, psutil.STATUS_RUNNING)


def test_resumed_by_hand_is_suspended_again(h: Harness) -> None:
    h.update(rules_for("spotify", action="suspend"), apps={"r"})
    p = h.run(h.binary("spotify"), "300")
    wait_for(lambda: status(p.pid) == psutil.STATUS_STOPPED, what="spotify to be suspended")
    os.kill(p.pid, signal.SIGCONT)
    wait_for(lambda: h.spy.asked(p.pid) == ["suspend", "suspend"], what="it to be suspended again")
    wait_for(lambda: status(p.pid) == psutil.STATUS_STOPPED, what="it to be stopped")
    assert len(h.about(p.pid)) == 1


def test_an_app_already_running_is_stopped_when_its_rule_starts(h: Harness) -> None:
    rules = rules_for("spotify")
    h.update(rules, apps=set())
    p = h.run(h.binary("spotify"), "300")
    wait_for(lambda: h.w.seen(p.pid), what="the watcher to see it")
    h.settle()
    assert p.poll() is None and h.about(p.pid) == []
    h.update(rules, apps={"r"})  # the window starts
    wait_for(lambda: p.poll() is not None, what="spotify to be terminated")
    (a,) = wait_for(lambda: h.about(p.pid), what="the attempt")
    assert a.detail is not None and "already running" in a.detail


def test_a_persons_apps_name_the_person(h: Harness) -> None:
    rules = load(PERSON + 'apps = ["whatsapp"]\n')
    h.update(rules, people={"Sam"})
    p = h.run(h.binary("WhatsApp"), "300")
    wait_for(lambda: p.poll() is not None, what="WhatsApp to be terminated")
    (a,) = wait_for(lambda: h.about(p.pid), what="the attempt")
    assert (a.person, a.rule, a.channel) == ("Sam", "Sam: apps", "app")


# --- PIDs -------------------------------------------------------------------------------------------------
def _spawn_at(h: Harness, pid: int, argv: list[str]) -> subprocess.Popen[bytes] | None:
    """Start ``argv`` as PID ``pid`` (by setting the kernel's last PID), or None if it cannot."""
    for _ in range(20):
        try:
            Path("/proc/sys/kernel/ns_last_pid").write_text(str(pid - 1))
        except OSError:
            return None
        p = h.run(*argv)
        if p.pid == pid:
            return p
        p.kill()
        p.wait()
    return None


def test_a_recycled_pid_is_a_new_launch(h: Harness) -> None:
    h.update(rules_for("whatsapp"), apps={"r"})
    exe = h.binary("whatsapp")
    first = h.run(exe, "300")
    wait_for(lambda: first.poll() is not None, what="the first whatsapp to be terminated")
    wait_for(lambda: h.about(first.pid), what="the first attempt")
    again = _spawn_at(h, first.pid, [str(exe), "300"])  # at once: the watcher may still hold the old pid
    if again is None:
        pytest.skip("cannot choose the next PID here (/proc/sys/kernel/ns_last_pid needs root)")
    wait_for(lambda: again.poll() is not None, what="the second whatsapp (same PID) to be terminated")
    attempts = wait_for(lambda: h.about(first.pid)[1:] and h.about(first.pid), what="a second attempt")
    assert len(attempts) == 2 and again.returncode == -signal.SIGTERM


# --- safety -------------------------------------------------------------------------------------------
@pytest.fixture
def own_comm() -> Iterator[str]:
    """Give this test process a unique name (its comm), and restore it afterwards."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    old = Path("/proc/self/comm").read_text().strip()
    new = f"zc{uuid.uuid4().hex[:10]}"
    if libc.prctl(15, new.encode(), 0, 0, 0) != 0:  # PR_SET_NAME
        pytest.skip("cannot rename this process")
    yield new
    libc.prctl(15, old.encode()[:15], 0, 0, 0)


def test_never_signals_itself_its_parent_pid_1_or_a_protected_process(h: Harness, own_comm: str) -> None:
    me = psutil.Process()
    assert me.name() == own_comm
    parent = me.parent()
    assert parent is not None
    fake_shell = h.run(h.binary("bash"), "300")  # a protected name, even though it is really sleep
    names = [own_comm, psutil.Process(1).name(), parent.name(), "bash"]
    # built directly: rules check would refuse these patterns
    rules = Ruleset(
        source="t", apps=(App(name="reckless", match=tuple(f"name:{n}" for n in names), grace=0.1),)
    )
    h.update(rules, apps={"reckless"})
    h.settle(6)
    for pid in (os.getpid(), 1, parent.pid, fake_shell.pid):
        assert h.spy.asked(pid) == [], pid
        assert h.about(pid) == []
    assert fake_shell.poll() is None


@pytest.mark.parametrize("system_mode", [False, True], ids=["user-mode", "system-mode"])
def test_other_users_processes_only_in_system_mode(tmp_path: Path, spy: Spy, system_mode: bool) -> None:
    if os.getuid() != 0:
        pytest.skip("starting another user's process needs root")
    h = Harness(tmp_path, spy, system_mode=system_mode)
    try:
        h.update(rules_for("whatsapp"), apps={"r"})
        p = h.run("whatsapp", "300", executable="/bin/sleep", user=65534, cwd="/")  # argv[0] names it
        if system_mode:
            wait_for(lambda: p.poll() is not None, what="system mode to stop it")
            assert len(wait_for(lambda: h.about(p.pid), what="the attempt")) == 1
        else:
            wait_for(lambda: h.w.seen(p.pid), what="the watcher to see it")
            h.settle()
            assert p.poll() is None and spy.asked(p.pid) == [] and h.about(p.pid) == []
    finally:
        h.close()


# --- bypass -------------------------------------------------------------------------------------------
def test_browser_started_without_the_proxy_is_logged_not_stopped(h: Harness) -> None:
    h.update(load(PERSON), people={"Sam"})
    p = h.run(h.script("chromium", "time.sleep(300)"), "--no-proxy-server")
    (a,) = wait_for(lambda: h.about(p.pid), what="the bypass attempt")
    assert (a.channel, a.person) == ("bypass", "Sam")
    assert a.detail is not None and "Chromium started with --no-proxy-server" in a.detail
    h.settle()
    assert p.poll() is None and h.spy.asked(p.pid) == [] and len(h.about(p.pid)) == 1


def test_no_bypass_detection_while_nobody_is_blocked(h: Harness) -> None:
    h.update(load(PERSON), people=set())
    p = h.run(h.script("chromium", "time.sleep(300)"), "--no-proxy-server")
    wait_for(lambda: h.w.seen(p.pid), what="the watcher to see it")
    h.settle()
    assert h.about(p.pid) == []


def test_direct_connection_to_a_target_is_a_bypass(h: Harness) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    h.hosts = {"instagram.com": {"127.0.0.1"}}
    h.w.direct_ports = frozenset({port})  # the platform's 443, on a port a test may open
    h.w.net_interval = 0.1
    h.update(load(PERSON), people={"Sam"})
    p = h.run(
        h.script(
            "fetcher", f"s = __import__('socket').create_connection(('127.0.0.1', {port}))\ntime.sleep(300)"
        )
    )
    conn, _ = server.accept()
    try:
        (a,) = wait_for(lambda: h.about(p.pid), what="the direct-connection attempt")
        assert (a.channel, a.host) == ("bypass", "instagram.com")
        assert a.detail is not None and f"127.0.0.1:{port}" in a.detail and "not through" in a.detail
        h.settle()
        assert len(h.about(p.pid)) == 1 and p.poll() is None
    finally:
        conn.close()
        server.close()


def test_proc_net_remotes_sees_a_connection() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    try:
        remotes = proc_net_remotes()
        assert remotes is not None and ("127.0.0.1", server.getsockname()[1]) in remotes
    finally:
        client.close()
        server.close()


# --- explain --process ---------------------------------------------------------------------------------
def test_explain_running_by_pid_and_name(h: Harness) -> None:
    import datetime as dt

    p = h.run(h.binary("telegram-desktop"), "300")
    rules = rules_for("telegram")
    (by_pid,) = explain_running(rules, str(p.pid), dt.datetime.now(dt.UTC))
    assert by_pid["pid"] == p.pid and by_pid["verdict"] == "terminate" and by_pid["rule"] == "r"
    by_name = explain_running(rules, "telegram-desktop", dt.datetime.now(dt.UTC))
    assert p.pid in {e["pid"] for e in by_name}
    (bare,) = explain_running(rules, "Telegram", dt.datetime.now(dt.UTC))
    assert bare["pid"] is None and bare["verdict"] == "terminate"
    with pytest.raises(ValueError, match="no process with PID"):
        explain_running(rules, "999999999", dt.datetime.now(dt.UTC))
