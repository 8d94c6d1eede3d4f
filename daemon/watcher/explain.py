"""``explain --process``: what the watcher would do with a process that runs now, or with a bare name.

The verdict is ``rules.apps.explain_process`` (pure); this part only finds the running processes a
name or PID means, with the same inspection the watcher uses, so the answer matches what it does.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psutil

from zerocontact.rules.apps import ProcInfo, describe, explain_process
from zerocontact.rules.schema import Ruleset

from .procs import inspect_process


def lookup(name_or_pid: str) -> list[ProcInfo]:
    """Running processes for ``explain --process``: the PID given, or those with that name.

    A name compares case-insensitively with the process name and the executable's file name (with
    or without ``.exe``); nothing found means an empty list (explain then judges the bare name).
    """
    text = name_or_pid.strip()
    if text.isdigit():
        _, info = inspect_process(int(text))
        return [info] if info else []
    want = text.lower().removesuffix(".exe")
    out = []
    for pid in psutil.pids():
        try:
            p = psutil.Process(pid)
            name = str(p.name()).lower().removesuffix(".exe")
        except psutil.Error:
            continue
        if name == want:
            _, info = inspect_process(pid)
            if info:
                out.append(info)
    return out


def explain_running(
    rules: Ruleset, name_or_pid: str, now: dt.datetime, **context: Any
) -> list[dict[str, Any]]:
    """``explain_process`` for each running match of ``name_or_pid`` (or the bare name if none runs).

    ``context`` is passed on: ``started``, ``target_hosts``, ``proxy_port``, ``pac_url``. A PID that
    does not exist gives a ValueError with a message for the user.
    """
    found = lookup(name_or_pid)
    if not found and name_or_pid.strip().isdigit():
        raise ValueError(f"no process with PID {name_or_pid.strip()}")
    targets: list[ProcInfo | str] = list(found) or [describe(name_or_pid)]
    return [explain_process(rules, t, now, **context) for t in targets]
