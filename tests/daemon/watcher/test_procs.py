"""Reading processes: command lines and executables as the rules see them, and (pid, create time)
keys that make a recycled PID a new process (procs.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.daemon.watcher.conftest import Harness, rules_for
from tests.support import wait_for
from zerocontact.rules import load

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
