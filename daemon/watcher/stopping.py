"""Acting on processes: the one place the watcher signals anything.

A stopped launch is a ``Launch``: the process a rule matched and the helpers it spawned, which share
its fate. ``terminate`` sends SIGTERM, then (after the rule's grace) freezes and SIGKILLs what is left
of the process tree, helpers born meanwhile included; ``suspend`` sends SIGSTOP, stops the app again
if someone resumes it by hand, and sends SIGCONT once the rule is no longer in force, on ``stop()``
and (as a last resort) at interpreter exit, so nothing stays stopped for ever. Every process passes
``safety.Shield`` before it joins a launch; every signal goes through ``signal_process``.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import psutil

from zerocontact.rules.apps import AppRule, ProcessVerdict, ProcInfo

from .procs import alive, name_of
from .safety import Shield

log = logging.getLogger("zerocontact.watcher")

SUSPENDED_CHECK_SECONDS = 1.0  # re-stop a suspended app someone resumed by hand


def signal_process(proc: psutil.Process, what: str) -> None:
    """Deliver ``terminate``/``kill``/``suspend``/``resume`` to one process.

    psutil refuses (NoSuchProcess) when the PID now belongs to another process. The one place the
    watcher touches other processes, so tests can wrap it.
    """
    getattr(proc, what)()


@dataclass(eq=False)
class Launch:
    """One stopped (or bypassing) launch: the process and the helpers it spawned."""

    info: ProcInfo
    action: str  # terminate | suspend | bypass
    rule: AppRule | None
    procs: list[psutil.Process] = field(default_factory=list)
    kill_at: float | None = None  # monotonic time of the final SIGKILL (terminate)
    since: float = field(default_factory=time.monotonic)  # when it was stopped

    @property
    def label(self) -> str:
        return self.info.label


class Stopper:
    """The launches being stopped or held stopped, their grace timers, and every signal sent.

    Driven by the watcher thread; ``resume_all`` may also run from ``stop()`` or at exit, so the list
    of suspended launches is guarded by a lock.
    """

    def __init__(self, shield: Shield) -> None:
        self._shield = shield
        self._launch_of: dict[int, tuple[float, Launch]] = {}  # pid → (create time, its launch)
        self._suspended: list[Launch] = []
        self._timers: list[tuple[float, int, Launch]] = []
        self._seq = itertools.count()
        self._suspend_lock = threading.Lock()

    # -- what is held ------------------------------------------------------------------------------------
    def held(self, pid: int) -> tuple[float, Launch] | None:
        """(create time, launch) of the process under ``pid`` that is part of a launch, or None."""
        return self._launch_of.get(pid)

    def holds(self, pid: int) -> bool:
        return pid in self._launch_of

    def terminating(self) -> list[tuple[int, float]]:
        """(pid, create time) of every process of a launch being terminated."""
        return [
            (pid, started)
            for pid, (started, launch) in self._launch_of.items()
            if launch.action == "terminate"
        ]

    @property
    def suspended(self) -> list[str]:
        """Labels of the launches held stopped right now."""
        return [launch.label for launch in list(self._suspended)]

    def next_kill(self) -> float | None:
        """The monotonic time of the next SIGKILL due after a grace, if any."""
        return self._timers[0][0] if self._timers else None

    def note_bypass(self, info: ProcInfo) -> None:
        """A launch that is logged, not stopped: its helpers fold into it, so they are not reported."""
        self._launch_of[info.pid] = (info.create_time, Launch(info, "bypass", None))

    def forget(self, pid: int) -> None:
        self._launch_of.pop(pid, None)

    # -- stopping ----------------------------------------------------------------------------------------
    def stop(self, info: ProcInfo, v: ProcessVerdict) -> Launch | None:
        """Terminate or suspend the process ``v`` stops and its process tree; the launch, or None if
        nothing could be signalled (it exited, or every process was protected)."""
        assert v.rule is not None
        try:
            proc = psutil.Process(info.pid)
            if float(proc.create_time()) != info.create_time:
                return None
            tree = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            return None
        launch = Launch(info, v.action, v.rule)
        self._launch_of[info.pid] = (info.create_time, launch)
        if v.action == "suspend":
            for p in tree:
                self._suspend_one(launch, p)
            with self._suspend_lock:
                self._suspended.append(launch)
        else:
            for p in tree:
                self._hold(launch, p)
            self._terminate(launch, v.rule.grace)
        return launch if launch.procs else None

    def fold(self, launch: Launch, info: ProcInfo) -> None:
        """A helper process of a launch already handled: same fate, no second attempt."""
        try:
            p = psutil.Process(info.pid)
        except psutil.Error:
            return
        if launch.action == "bypass":
            self._launch_of[info.pid] = (info.create_time, launch)
        elif launch.action == "suspend":
            self._suspend_one(launch, p)
        elif self._hold(launch, p):
            late = launch.kill_at is not None and time.monotonic() >= launch.kill_at
            self._send(p, "kill" if late else "terminate")

    def _hold(self, launch: Launch, p: psutil.Process) -> bool:
        """Add a process to a launch if it may be signalled at all (the last safety gate)."""
        why = self._shield.reason_for(p)
        if why:
            log.warning("process watcher: not signalling %s (%d): %s", name_of(p), p.pid, why)
            return False
        launch.procs.append(p)
        with contextlib.suppress(psutil.Error):
            self._launch_of.setdefault(p.pid, (float(p.create_time()), launch))
        return True

    def _suspend_one(self, launch: Launch, p: psutil.Process) -> None:
        if self._hold(launch, p):
            self._send(p, "suspend")

    def _terminate(self, launch: Launch, grace: float) -> None:
        launch.action = "terminate"
        for p in list(launch.procs):
            if p is launch.procs[0] or grace <= 0:
                self._send(p, "terminate")
                with contextlib.suppress(psutil.Error):
                    if p.status() == psutil.STATUS_STOPPED:
                        self._send(p, "resume")  # a stopped process acts on TERM only once continued
        launch.kill_at = time.monotonic() + max(grace, 0.0)
        heapq.heappush(self._timers, (launch.kill_at, next(self._seq), launch))

    def run_timers(self, now: float) -> None:
        """SIGKILL what is left of each launch whose grace ended by ``now``."""
        while self._timers and self._timers[0][0] <= now:
            _, _, launch = heapq.heappop(self._timers)
            left = [p for p in launch.procs if alive(p)]
            if not left:
                continue
            for p in left:  # freeze first: a process that is stopped cannot start another helper
                self._send(p, "suspend")
            for p in list(left):  # helpers born since the TERM that no poll has seen yet
                with contextlib.suppress(psutil.Error):
                    for child in p.children(recursive=True):
                        if all(child.pid != q.pid for q in launch.procs) and self._hold(launch, child):
                            left.append(child)
            for p in left:
                self._send(p, "kill")
            if left[0] is launch.procs[0]:
                grace = launch.rule.grace if launch.rule else 0.0
                log.info("process watcher: %s ignored SIGTERM for %.1f s; killed it", launch.label, grace)

    # -- suspensions -------------------------------------------------------------------------------------
    def apply(self, active: Sequence[AppRule]) -> None:
        """New rules in force: resume what no rule holds any more; terminate what a rule now terminates."""
        for launch in list(self._suspended):
            rule = next((r for r in active if launch.rule and r.key == launch.rule.key), None)
            if rule is None:
                self._resume(launch, "its rule is no longer in force")
            elif rule.action == "terminate":
                with self._suspend_lock:
                    self._suspended.remove(launch)
                self._terminate(launch, rule.grace)

    def check_suspended(self) -> None:
        """Let go of suspended launches that ended; stop again those someone resumed by hand."""
        for launch in list(self._suspended):
            if time.monotonic() - launch.since < SUSPENDED_CHECK_SECONDS:
                continue  # a SIGSTOP just sent may not show in the status yet
            alive_procs = [p for p in launch.procs if alive(p)]
            if not alive_procs:
                with self._suspend_lock, contextlib.suppress(ValueError):
                    self._suspended.remove(launch)
                self._drop(launch)
                continue
            for p in alive_procs:
                with contextlib.suppress(psutil.Error):
                    if p.status() not in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP):
                        log.info("process watcher: %s was resumed by hand; suspending it again", launch.label)
                        self._send(p, "suspend")
                        launch.since = time.monotonic()

    def _resume(self, launch: Launch, why: str) -> None:
        with self._suspend_lock:
            if launch not in self._suspended:
                return
            self._suspended.remove(launch)
        for p in reversed(launch.procs):
            if alive(p):
                self._send(p, "resume")
        self._drop(launch)  # its processes are judged afresh from now on
        log.info("process watcher: resumed %s: %s", launch.label, why)

    def _drop(self, launch: Launch) -> None:
        for p in launch.procs:
            got = self._launch_of.get(p.pid)
            if got is not None and got[1] is launch:
                del self._launch_of[p.pid]

    def resume_all(self, why: str) -> None:
        """Resume every suspended launch (the watcher stopped, or the interpreter is exiting)."""
        for launch in list(self._suspended):
            self._resume(launch, why)

    # -- the signal --------------------------------------------------------------------------------------
    def _send(self, p: psutil.Process, what: str) -> bool:
        if p.pid in (0, 1) or p.pid == self._shield.self_pid:
            log.error("process watcher: refused to %s PID %d", what, p.pid)  # unreachable by design
            return False
        try:
            signal_process(p, what)
            return True
        except (psutil.NoSuchProcess, ProcessLookupError):
            return False
        except (psutil.AccessDenied, PermissionError):
            log.warning("process watcher: not allowed to %s %s (%d)", what, name_of(p), p.pid)
            return False
