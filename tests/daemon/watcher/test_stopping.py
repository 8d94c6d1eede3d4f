"""Acting on launches: SIGTERM then SIGKILL after the grace, helpers sharing a launch's fate,
suspend and resume (stopping.py)."""

from __future__ import annotations

import os
import signal
import sys

import psutil
import pytest
from zctest.support import wait_for
from zctest.watcher import Harness, rules_for, status

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="real /proc processes")


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
