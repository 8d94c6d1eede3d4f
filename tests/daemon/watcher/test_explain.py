"""``explain --process`` on running processes, by PID and by name (explain.py)."""

from __future__ import annotations

import sys

import pytest
from zctest.watcher import Harness, rules_for

from zerocontact.daemon.watcher import explain_running

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="real /proc processes")


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
