"""Who is never signalled: the watcher itself, its parent, PID 1, protected names, and other users'
processes in user mode (safety.py)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from zctest.support import wait_for
from zctest.watcher import Harness, Spy, rules_for

from zerocontact.daemon.watcher.safety import Shield
from zerocontact.rules import Ruleset
from zerocontact.rules.apps import ProcInfo
from zerocontact.rules.schema import App

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="real /proc processes")


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


# --- the shield, asked directly --------------------------------------------------------------------------
def test_the_shield_names_why_a_process_is_never_signalled() -> None:
    me = ProcInfo(os.getpid(), "zc-neutral", uid=os.getuid(), create_time=psutil.Process().create_time())
    shield = Shield(system_mode=False)
    assert shield.reason(me) == "zerocontact itself"
    # as if the watcher ran in a child of this test (whose own parent may be PID 1): we are its parent
    child = subprocess.Popen(["sleep", "300"])
    try:
        shield.self_pid = child.pid
        ancestry = "zerocontact's parent, shell, terminal or session"
        assert shield.reason(me) != ancestry  # not until the thread has looked up its ancestors
        shield.shield_ancestors()
        assert shield.reason(me) == ancestry
    finally:
        child.kill()
        child.wait()
    stranger = ProcInfo(999_999_999, "zc-neutral", uid=os.getuid() + 1, create_time=1.0)
    assert shield.reason(stranger) == "another user's process (user mode)"
    assert Shield(system_mode=True).reason(stranger) is None
    assert shield.reason(ProcInfo(1, "zc-neutral")) == "PID 1 (init)"  # the rules' own list comes first


def test_the_shield_ignores_itself_kernel_threads_and_other_users_in_user_mode() -> None:
    user, system = Shield(system_mode=False), Shield(system_mode=True)
    for info in (ProcInfo(os.getpid(), "x"), ProcInfo(2, "kthreadd"), ProcInfo(77, "kworker/0:1", ppid=2)):
        assert user.ignores(info) and system.ignores(info)
    other = ProcInfo(999_999_998, "whatsapp", uid=os.getuid() + 1)
    assert user.ignores(other) and not system.ignores(other)
    assert not user.ignores(ProcInfo(999_999_998, "whatsapp", uid=os.getuid()))


def test_a_refused_match_is_logged_once_per_process(caplog: pytest.LogCaptureFixture) -> None:
    shield = Shield(system_mode=False)
    bash = ProcInfo(77, "bash", "/usr/bin/bash", create_time=5.0)
    with caplog.at_level(logging.WARNING, logger="zerocontact.watcher"):
        assert shield.refuses(bash, "reckless") and shield.refuses(bash, "reckless")
        assert not shield.refuses(ProcInfo(999_999_998, "zc-neutral", uid=os.getuid()), "reckless")
    (line,) = [r.getMessage() for r in caplog.records]
    assert "rule 'reckless' matches bash (77), not stopped" in line and "protected process" in line
