"""Reading processes: command lines and executables as the rules see them, and (pid, create time)
keys that make a recycled PID a new process (procs.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import psutil
import pytest
from zctest.support import wait_for
from zctest.watcher import Harness, rules_for

from zerocontact.daemon.watcher.procs import ProcessTable, inspect_process
from zerocontact.rules import load
from zerocontact.rules.apps import ProcInfo

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="real /proc processes")


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


# --- the table, driven directly ------------------------------------------------------------------------
class Table:
    """A ``ProcessTable`` polled by hand, recording the PIDs it reports gone."""

    def __init__(self) -> None:
        self.gone: list[int] = []
        self.stats = {"polls": 0, "listings": 0, "inspected": 0}
        self.t = ProcessTable(self.stats, threading.Event(), self._gone)

    def _gone(self, pid: int) -> None:
        self.gone.append(pid)
        self.t.forget(pid)

    def poll(self, judging: bool = True) -> list[ProcInfo]:
        return list(self.t.poll(judging, list, lambda pid: False))


@pytest.fixture
def sleeper(tmp_path: Path) -> Path:
    exe = tmp_path / "zc-sleeper"
    shutil.copy("/bin/sleep", exe)
    return exe


def _start(*argv: str | Path, **kw: object) -> subprocess.Popen[bytes]:
    """Start a process and wait until its exec is complete: right after exec the kernel shows the
    new name before the new command line, and a table that saw both would report it twice."""
    p: subprocess.Popen[bytes] = subprocess.Popen([str(a) for a in argv], **kw)  # type: ignore[call-overload]
    wait_for(lambda: _cmdline(p.pid), what="the exec to complete")
    return p


def _cmdline(pid: int) -> list[str]:
    try:
        return list(psutil.Process(pid).cmdline())
    except psutil.Error:
        return []


def test_inspect_process_describes_a_real_process(sleeper: Path) -> None:
    p = _start(sleeper, "300")
    try:
        ctime, info = inspect_process(p.pid)
        assert info is not None and ctime == psutil.Process(p.pid).create_time() == info.create_time
        assert (info.name, info.exe, info.cmdline, info.ppid) == (
            "zc-sleeper",
            str(sleeper),
            (str(sleeper), "300"),
            os.getpid(),
        )
    finally:
        p.kill()
        p.wait()
    assert inspect_process(p.pid) == (None, None)


def test_a_new_process_is_reported_once_and_its_end_noticed(sleeper: Path) -> None:
    table = Table()
    table.poll()  # everything already running
    p = _start(sleeper, "300")
    try:
        (info,) = wait_for(lambda: [i for i in table.poll() if i.pid == p.pid], what="the new process")
        assert info.name == "zc-sleeper" and table.t.seen(p.pid) == info.create_time
        for _ in range(3):
            assert p.pid not in {i.pid for i in table.poll()}  # known: not reported again
    finally:
        p.kill()
        p.wait()
    wait_for(lambda: (table.poll(), p.pid in table.gone)[1], what="the table to notice it ended")
    assert table.t.seen(p.pid) is None


def test_while_nothing_is_judged_new_processes_are_only_noted(sleeper: Path) -> None:
    table = Table()
    table.poll(judging=False)
    p = _start(sleeper, "300")
    try:
        wait_for(lambda: table.poll(judging=False) == [] and table.t.seen(p.pid), what="the PID to be noted")
        assert table.t.seen(p.pid) == -1.0  # not inspected: the next sweep does that
        inspected = table.stats["inspected"]
        table.poll(judging=False)
        assert table.stats["inspected"] == inspected
        (info,) = [i for i in table.t.sweep(judging=True) or [] if i.pid == p.pid]
        assert info.name == "zc-sleeper" and table.t.seen(p.pid) == info.create_time
    finally:
        p.kill()
        p.wait()


def test_the_rescan_finds_a_process_that_execd(sleeper: Path) -> None:
    """However old: ``read`` holds the shell until the test writes a line, then it execs the sleeper."""
    table = Table()
    table.poll()
    p = _start("bash", "-c", f"read -r line; exec {sleeper} 300", stdin=subprocess.PIPE)
    try:
        wait_for(lambda: [i for i in table.poll() if i.pid == p.pid], what="the shell")
        assert [i for i in table.t.rescan() if i.pid == p.pid] == []  # unchanged: nothing to judge
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        p.stdin.flush()
        got = wait_for(
            lambda: [i for i in table.t.rescan() if i.pid == p.pid], what="the rescan to see the exec"
        )
        assert got[0].name == "zc-sleeper" and got[0].exe == str(sleeper)
    finally:
        p.kill()
        p.wait()
        if p.stdin:
            p.stdin.close()
