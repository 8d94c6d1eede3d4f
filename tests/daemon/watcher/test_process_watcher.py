"""The watcher as a whole: ``update`` from the loop, judging what runs, one ``Attempt`` per launch
on the loop's thread (process_watcher.py)."""

from __future__ import annotations

import signal
import sys

import pytest
from zctest.support import wait_for
from zctest.watcher import PERSON, Harness, rules_for

from zerocontact.rules import load

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="real /proc processes")


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


def test_a_non_matching_process_is_never_touched(h: Harness) -> None:
    h.update(rules_for("whatsapp"), apps={"r"})
    p = h.run(h.binary("whatsapp-notes"), "300")
    wait_for(lambda: h.w.seen(p.pid), what="the watcher to see it")
    h.settle()  # several polls and its young re-inspections: nothing may happen
    assert p.poll() is None and h.spy.asked(p.pid) == [] and h.about(p.pid) == []


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


def test_relaunching_after_a_stop_is_another_attempt(h: Harness) -> None:
    """One launch is one attempt; opening the app again after it was stopped is a new one."""
    h.update(rules_for("whatsapp"), apps={"r"})
    exe = h.binary("whatsapp")
    first = h.run(exe, "300")
    wait_for(lambda: first.poll() is not None, what="the first launch to be stopped")
    wait_for(lambda: h.about(first.pid), what="the first attempt")
    second = h.run(exe, "300")
    wait_for(lambda: second.poll() is not None, what="the relaunch to be stopped")
    wait_for(lambda: h.about(second.pid), what="the second attempt")
    h.settle()
    launches = [a for a in h.attempts if a.channel == "app"]
    assert len(launches) == 2 and [len(h.about(p.pid)) for p in (first, second)] == [1, 1]
