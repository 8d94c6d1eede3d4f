"""The process watcher's test harness: real processes, real signals and a real asyncio loop.

Processes are copies of /bin/sleep (or tiny Python scripts) under app names in ``tmp_path``. Every
signal goes through ``stopping.signal_process``, which these tests wrap: it is delivered only to
processes that run something from this test's ``tmp_path`` (or that the test named), so a watcher bug
can never signal anything else on the machine; everything asked for is recorded. Nothing sleeps to
synchronise: tests poll with ``wait_for``; where a test shows that *nothing* happens, it waits for
the watcher to complete several more polls (its ``stats``) and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from zctest.support import wait_for
from zerocontact.daemon.journal import Attempt
from zerocontact.daemon.watcher import ProcessWatcher, stopping
from zerocontact.rules import Ruleset, load
from zerocontact.rules.apps import compile_apps

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
        """Compile the rules, call ``update`` from the loop thread as the daemon does, wait until applied."""
        sweeps = self.w.stats["sweeps"]
        pac = "http://127.0.0.1:8342/proxy.pac"
        args = (compile_apps(rules), frozenset(apps), frozenset(people), ["instagram.com"], 8341, pac)
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
    monkeypatch.setattr(stopping, "signal_process", s)
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
