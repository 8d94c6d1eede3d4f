"""The process watcher's thread: what is in force, the poll loop, and the hand-off to the event loop.

``ProcessWatcher`` owns the order of things and nothing else: the daemon's loop calls ``update`` with
compiled app rules (``rules.apps.compile_apps``) and what is in force; one thread polls every
``poll_interval`` (0.15 s), rescans every 10 s, looks for direct connections every 2 s, and judges
each process the table hands it (``rules.apps.judge``, pure) before the stopper acts or the bypass
watch reports. Each stopped launch and each bypass is one ``Attempt``, handed to the loop with
``loop.call_soon_threadsafe(report, attempt)``. Nothing is inspected while no rule is in force and
nobody is blocked. (The proc connector would give exec events without polling, but needs root and
the initial network namespace; polling meets the goals.)
"""

from __future__ import annotations

import asyncio
import atexit
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from zerocontact.rules.apps import AppRule, AppRules, BypassContext, ProcessVerdict, ProcInfo, judge

from ..journal import Attempt
from .bypass import DIRECT_PORTS, NET_SECONDS, BypassWatch, Resolver, default_resolver
from .procs import ProcessTable, user_name
from .safety import Shield
from .stopping import SUSPENDED_CHECK_SECONDS, Stopper

log = logging.getLogger("zerocontact.watcher")

RESCAN_SECONDS = 10.0  # re-read every process's name and start time (late exec, PID reuse)

Report = Callable[[Attempt], None]


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """Everything the thread needs from one ``update()``; swapped whole, never mutated."""

    apps: AppRules
    active_apps: frozenset[str]
    active_people: frozenset[str]
    target_hosts: tuple[str, ...]
    proxy_port: int
    pac_url: str
    active: tuple[AppRule, ...]
    bypass: BypassContext | None

    def same(self, other: _Snapshot | None) -> bool:
        return (
            other is not None
            and (
                self.active_apps,
                self.active_people,
                self.target_hosts,
                self.proxy_port,
                self.pac_url,
            )
            == (other.active_apps, other.active_people, other.target_hosts, other.proxy_port, other.pac_url)
            and (self.apps is other.apps or self.apps == other.apps)
        )

    @property
    def judging(self) -> bool:
        """Whether anything is in force that a process could be judged against."""
        return bool(self.active) or self.bypass is not None

    @property
    def person(self) -> str | None:
        """A bypass concerns whoever is blocked: the journal's person when exactly one is."""
        return next(iter(self.active_people)) if len(self.active_people) == 1 else None


class ProcessWatcher:
    """Stops the apps the active rules name and notices launches that route around the proxy.

    ``report`` is called on the event loop's thread (``loop.call_soon_threadsafe``) with one
    ``Attempt`` per stopped launch or bypass. ``update`` (from the loop thread) swaps the rules and
    what is in force; ``start``/``stop`` run and end the watcher thread (``stop`` blocks for up to a
    poll interval and resumes everything it suspended: call it through ``asyncio.to_thread``).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        report: Report,
        *,
        system_mode: bool,
        poll_interval: float = 0.15,
        resolver: Resolver | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self._loop = loop
        self._report_cb = report
        self.poll_interval = poll_interval
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.direct_ports = DIRECT_PORTS
        self.rescan_interval = RESCAN_SECONDS
        self.net_interval = NET_SECONDS
        self._snapshot: _Snapshot | None = None
        self._applied: _Snapshot | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats: dict[str, int] = {
            "polls": 0,
            "listings": 0,
            "inspected": 0,
            "sweeps": 0,
            "rescans": 0,
            "net_scans": 0,
            "stopped": 0,
            "bypasses": 0,
        }
        # the parts, used by the watcher thread (and resume_all by stop())
        self._shield = Shield(system_mode)
        self._table = ProcessTable(self.stats, self._stopping, self._forget)
        self._stopper = Stopper(self._shield)
        self._bypass = BypassWatch(
            self._shield, self._stopper, self._report, self._clock, self.stats, resolver or default_resolver
        )

    @property
    def system_mode(self) -> bool:
        """Whether every user's processes are watched (a system service), not only our user's."""
        return self._shield.system_mode

    # -- the loop thread's side ---------------------------------------------------------------------------
    def update(
        self,
        apps: AppRules,
        active_apps: frozenset[str],
        active_people: frozenset[str],
        target_hosts: Sequence[str],
        proxy_port: int,
        pac_url: str,
    ) -> None:
        """Swap in the rules and what is in force now (cheap; the thread re-checks running processes)."""
        prev = self._snapshot
        running, people = frozenset(active_apps), frozenset(active_people)
        snap = _Snapshot(
            apps=apps,
            active_apps=running,
            active_people=people,
            target_hosts=tuple(target_hosts),
            proxy_port=proxy_port,
            pac_url=pac_url,
            active=apps.active(running, people),
            bypass=apps.bypass_context(people, target_hosts, proxy_port, pac_url),
        )
        if snap.same(prev):
            return
        self._snapshot = snap
        self._wake.set()

    def start(self) -> None:
        """Start the watcher thread (idempotent)."""
        if self._thread is not None:
            return
        if self.system_mode:
            log.info("process watcher: system mode: watching and stopping the processes of every user")
        else:
            log.info(
                "process watcher: user mode: watching only the processes of uid %d (%s)",
                self._shield.uid,
                user_name(self._shield.uid),
            )
        self._bypass.start()
        self._thread = threading.Thread(target=self._run, name="zerocontact-watcher", daemon=True)
        atexit.register(self._stopper.resume_all, "zerocontact exited")
        self._thread.start()

    def stop(self) -> None:
        """End the thread and resume every process it suspended. Blocks briefly; safe to call twice."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._bypass.stop()
        self._stopper.resume_all("the process watcher stopped")
        atexit.unregister(self._stopper.resume_all)

    def seen(self, pid: int) -> float | None:
        """The create time the watcher holds for ``pid`` (tests and debugging), or None."""
        return self._table.seen(pid)

    @property
    def suspended(self) -> list[str]:
        """Labels of the launches held stopped right now."""
        return self._stopper.suspended

    # -- the thread ------------------------------------------------------------------------------------
    def _run(self) -> None:
        self._shield.shield_ancestors()
        next_rescan = next_net = next_check = time.monotonic()
        while not self._stopping.is_set():
            try:
                now = time.monotonic()
                self._stopper.run_timers(now)
                snap = self._snapshot
                if snap is not self._applied and snap is not None:
                    self._apply(snap)
                self._poll(snap)
                if now >= next_check:
                    self._stopper.check_suspended()
                    next_check = now + SUSPENDED_CHECK_SECONDS
                if now >= next_rescan:
                    if snap is not None:
                        self._rescan(snap)
                    next_rescan = now + self.rescan_interval
                if now >= next_net:
                    if snap is not None and snap.bypass is not None and snap.target_hosts:
                        self._bypass.scan_connections(snap.target_hosts, self.direct_ports, snap.person)
                    next_net = now + self.net_interval
            except Exception:  # the watcher must outlive any one bad process or psutil surprise
                log.exception("process watcher: error (continuing)")
            timeout = self.poll_interval
            kill_at = self._stopper.next_kill()
            if kill_at is not None:
                timeout = max(0.0, min(timeout, kill_at - time.monotonic()))
            self._wake.wait(timeout)
            self._wake.clear()

    def _poll(self, snap: _Snapshot | None) -> None:
        judging = snap is not None and snap.judging
        for info in self._table.poll(judging, self._stopper.terminating, self._stopper.holds):
            if snap is not None:
                self._consider(info, snap, fresh=True)

    def _rescan(self, snap: _Snapshot) -> None:
        """Catch a process that exec'd into an app after its young days, or a PID reused between polls."""
        if not snap.judging:
            return
        self.stats["rescans"] += 1
        for info in self._table.rescan():
            self._consider(info, snap, fresh=True)

    def _apply(self, snap: _Snapshot) -> None:
        """A new snapshot: lift suspensions no longer in force, then judge every running process."""
        self._applied = snap
        self._stopper.apply(snap.active)
        infos = self._table.sweep(snap.judging)
        if infos is None:
            return  # stopping
        for info in infos:
            self._consider(info, snap, fresh=False)
        self.stats["sweeps"] += 1

    # -- judging -------------------------------------------------------------------------------------------
    def _consider(self, info: ProcInfo, snap: _Snapshot, *, fresh: bool) -> None:
        if self._shield.ignores(info):
            return  # ourselves, kernel threads; in user mode, other users' processes
        held = self._stopper.held(info.pid)
        if held is not None and held[0] == info.create_time:
            return  # already part of a launch
        parent = self._stopper.held(info.ppid)
        if parent is not None and parent[0] <= info.create_time:
            self._stopper.fold(parent[1], info)
            return
        v = judge(info, snap.active, snap.bypass)
        if v.stops and v.rule is not None:
            if self._shield.refuses(info, v.rule.name):
                return
            self._stop_launch(info, v, fresh)
        elif v.action == "bypass" and fresh:
            self._bypass.flagged(info, v.bypass, snap.person)

    def _stop_launch(self, info: ProcInfo, v: ProcessVerdict, fresh: bool) -> None:
        assert v.rule is not None
        if self._stopper.stop(info, v) is None:
            return  # nothing could be signalled (it exited, or every process was protected)
        self.stats["stopped"] += 1
        past = "terminated" if v.action == "terminate" else "suspended"
        when = "" if fresh else " (it was already running when the rule took effect)"
        log.info("process watcher: %s %s: rule %r%s", past, info.label, v.rule.name, when)
        self._report(
            Attempt(
                time=self._clock(),
                person=v.rule.person,
                platform=v.preset,
                surface=None,
                channel="app",
                rule=v.rule.name,
                process=info.label,
                detail=f"{past} {info.exe or info.name}{when}; matched {v.pattern}"
                + (f"; also: {v.bypass}" if v.bypass else ""),
            )
        )

    # -- bookkeeping ------------------------------------------------------------------------------------
    def _forget(self, pid: int) -> None:
        """A PID whose process ended or was replaced: forgotten by every part."""
        self._table.forget(pid)
        self._stopper.forget(pid)
        self._bypass.forget(pid)

    def _report(self, attempt: Attempt) -> None:
        try:
            self._loop.call_soon_threadsafe(self._report_cb, attempt)
        except RuntimeError:  # the loop is closed: the daemon is gone
            log.warning(
                "process watcher: loop closed; not journalled: %s %s", attempt.channel, attempt.detail
            )
