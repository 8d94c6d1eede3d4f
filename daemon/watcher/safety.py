"""Who the watcher never signals, whatever a rule says: the checks every signal passes first.

Never signalled: PID 0 and 1, kernel threads, this process, its ancestors (the shell, terminal and
session that started it), its session leader, any session leader with a terminal (a login shell),
the names in ``rules.apps.PROTECTED`` and, in user mode, another user's processes. The rules say
what a process alone shows (``rules.apps.protected_reason``, pure); this adds what only the running
daemon knows (its own PID, its ancestry, the terminal, the user it runs as). ``stopping`` asks again
right before each process joins a launch, and refuses PID 0, 1 and itself once more at the signal.
"""

from __future__ import annotations

import contextlib
import logging
import os

import psutil

from zerocontact.rules.apps import ProcInfo, protected_reason

from .procs import cmdline_of

log = logging.getLogger("zerocontact.watcher")


class Shield:
    """The protected processes, for one watcher: built with the mode it runs in, on its thread."""

    def __init__(self, system_mode: bool) -> None:
        self.system_mode = system_mode
        self.uid = os.getuid() if hasattr(os, "getuid") else -1
        self.self_pid = os.getpid()
        self._shielded: set[tuple[int, float]] = set()  # ancestors and our session leader
        self._told: set[tuple[int, float]] = set()  # protected processes already logged

    def shield_ancestors(self) -> None:
        """Remember (pid, create time) of our ancestors and our session leader: never signalled."""
        try:
            me = psutil.Process(self.self_pid)
            for p in me.parents():
                with contextlib.suppress(psutil.Error):
                    self._shielded.add((p.pid, float(p.create_time())))
            if hasattr(os, "getsid"):
                leader = psutil.Process(os.getsid(0))
                self._shielded.add((leader.pid, float(leader.create_time())))
        except (psutil.Error, OSError):
            pass

    def ignores(self, info: ProcInfo) -> bool:
        """Not even judged: ourselves, PIDs 0-2, kernel threads and (user mode) other users' processes."""
        if info.pid == self.self_pid or info.pid in (0, 1, 2) or info.ppid == 2:
            return True
        return not self.system_mode and info.uid is not None and info.uid != self.uid

    def reason(self, info: ProcInfo) -> str | None:
        """Why this process must never be signalled, or None."""
        why = protected_reason(info)
        if why:
            return why
        if info.pid == self.self_pid:
            return "zerocontact itself"
        if (info.pid, info.create_time) in self._shielded:
            return "zerocontact's parent, shell, terminal or session"
        if not self.system_mode and info.uid is not None and info.uid != self.uid:
            return "another user's process (user mode)"
        if hasattr(os, "getsid"):
            with contextlib.suppress(OSError, psutil.Error):
                if os.getsid(info.pid) == info.pid and psutil.Process(info.pid).terminal():
                    return "a session leader with a terminal (a login shell)"
        return None

    def reason_for(self, p: psutil.Process) -> str | None:
        """``reason`` for a live process, read afresh (the last gate before it joins a launch)."""
        try:
            with p.oneshot():
                info = ProcInfo(
                    p.pid,
                    str(p.name()),
                    ppid=int(p.ppid()),
                    uid=int(p.uids().real) if hasattr(p, "uids") else None,
                    create_time=float(p.create_time()),
                    cmdline=cmdline_of(p),
                )
        except psutil.Error:
            return "it is gone"
        return self.reason(info)

    def refuses(self, info: ProcInfo, rule: str) -> bool:
        """Whether a process that ``rule`` matches is protected (a warning the first time, per process)."""
        why = self.reason(info)
        if not why:
            return False
        if (info.pid, info.create_time) not in self._told:
            self._told.add((info.pid, info.create_time))
            log.warning("process watcher: rule %r matches %s, not stopped: %s", rule, info.label, why)
        return True
