"""The process watcher: stops the apps the rules name and notices launches that bypass the proxy.

One thread polls the PID list every ``poll_interval`` (0.15 s) and inspects only processes it has
not seen, keyed by (pid, create time) so a recycled PID is a new process. On Linux an idle poll is
one small read: the list is read only when ``/proc/loadavg``'s last PID moved, and parsed only when
``/proc`` lists something new. Each inspection uses a fresh ``psutil.Process`` (its ``exe()`` is cached
per object, stale after an exec) and a young process is inspected again on the next polls, because
a launcher forks first and execs the app a moment later. Every 10 s a rescan (one read of
``/proc/PID/stat`` each) catches a process that exec'd into an app long after it started. Nothing is
inspected while no rule is in force and nobody is blocked. (The proc connector would give exec
events without polling, but needs root and the initial network namespace; polling meets the goals.)

The rules decide (``rules.apps.judge``, pure); this module only acts, off the event loop:
``terminate`` sends SIGTERM, then SIGKILL to what is left of the process tree after the rule's grace;
``suspend`` sends SIGSTOP and SIGCONT once the rule is no longer in force, on ``stop()``, and (as a
last resort) at interpreter exit, so nothing stays stopped for ever. Each stopped launch is one
``Attempt`` (channel ``app``), each bypass one ``Attempt`` (channel ``bypass``), handed to the loop with
``loop.call_soon_threadsafe(report, attempt)``; a launch's helper processes fold into it.

Never signalled, whatever a rule says: PID 0 and 1, kernel threads, this process, its ancestors (the
shell, terminal and session that started it), its session leader, any session leader with a
terminal (a login shell), the names in ``rules.apps.PROTECTED`` and, in user mode, another user's
processes. Bypasses are logged, never stopped (an ``[[app]]`` rule can stop Tor Browser or a
``cmdline:*--no-proxy-server*`` launch if the user wants that).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import datetime as dt
import heapq
import ipaddress
import itertools
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psutil

from zerocontact.rules.apps import (
    AppRule,
    BypassContext,
    ProcessVerdict,
    ProcInfo,
    active_rules,
    app_rules,
    describe,
    explain_process,
    judge,
    protected_reason,
)
from zerocontact.rules.schema import Ruleset

from .journal import Attempt

log = logging.getLogger("zerocontact.watcher")

DIRECT_PORTS = frozenset({80, 443})  # a direct connection to a target's IP on these is a bypass
YOUNG_SECONDS = 1.0  # re-inspect processes younger than this on every poll (fork, then exec)
RESCAN_SECONDS = 10.0  # re-read every process's name and start time (late exec, PID reuse)
NET_SECONDS = 2.0  # look for direct connections to target platforms this often
SUSPENDED_CHECK_SECONDS = 1.0  # re-stop a suspended app someone resumed by hand
RESOLVE_TTL = 600.0
RESOLVE_RETRY = 60.0

Resolver = Callable[[str], Iterable[str]]
Report = Callable[[Attempt], None]


def default_resolver(host: str) -> set[str]:
    """Every address ``host`` resolves to (blocking: the watcher calls it on a worker thread)."""
    return {str(info[4][0]) for info in socket.getaddrinfo(host, 443, proto=socket.IPPROTO_TCP)}


def signal_process(proc: psutil.Process, what: str) -> None:
    """Deliver ``terminate``/``kill``/``suspend``/``resume`` to one process.

    psutil refuses (NoSuchProcess) when the PID now belongs to another process. The one place the
    watcher touches other processes, so tests can wrap it.
    """
    getattr(proc, what)()


# --- pure-ish helpers ----------------------------------------------------------------------------------
def _cgroup(pid: int) -> str:
    """The process's cgroup path (Linux): Flatpak and Snap apps run in a scope named after the app."""
    if not sys.platform.startswith("linux"):
        return ""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    for prefix in ("0::", ""):
        for line in lines:
            if line.startswith(prefix) and (prefix or ":name=systemd:" in line):
                return line.split(":", 2)[2]
    return ""


def inspect_process(pid: int) -> tuple[float | None, ProcInfo | None]:
    """(create time, description) of a process; (None, None) if it is gone, (ctime, None) if a zombie."""
    try:
        p = psutil.Process(pid)
        with p.oneshot():
            ctime = float(p.create_time())
            try:
                name = str(p.name())
                ppid = int(p.ppid())
                uid = int(p.uids().real) if hasattr(p, "uids") else None
                try:
                    cmdline = tuple(str(a) for a in p.cmdline())
                except psutil.AccessDenied:
                    cmdline = ()
                try:
                    exe = str(p.exe() or "")
                except (psutil.AccessDenied, OSError):
                    exe = ""
            except psutil.ZombieProcess:
                return ctime, None
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError, PermissionError):
        return None, None
    return ctime, ProcInfo(pid, name, exe, cmdline, ppid, uid, ctime, _cgroup(pid))


def stat_stamp(pid: int) -> bytes | None:
    """Linux: a process's name and start time from one read of ``/proc/PID/stat``.

    It changes when the process execs another program or the PID is reused: the rescan compares it
    for every process (a few microseconds each, where psutil needs tens).
    """
    data = _read(f"/proc/{pid}/stat")
    if data is None:
        return None
    left, right = data.find(b"("), data.rfind(b")")
    fields = data[right + 2 :].split()
    if left < 0 or right < left or len(fields) < 20:
        return None
    return data[left + 1 : right] + b"\0" + fields[19]  # comm, starttime (field 22)


def last_pid() -> int | None:
    """Linux: the PID most recently handed out in this PID namespace (``/proc/loadavg``'s last field).

    Unchanged between two polls means no process (or thread) was created, so the PID list need not
    be read: an idle poll costs one small read.
    """
    data = _read("/proc/loadavg")
    try:
        return int(data.split()[4]) if data else None
    except (ValueError, IndexError):
        return None


def _read(path: str) -> bytes | None:
    """A small /proc file in one read (plain os calls: half the cost of ``open()``)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)


def list_pids(previous: list[str] | None) -> tuple[list[str], list[int] | None]:
    """(listing, pids): pids is None when the listing of ``/proc`` equals ``previous`` (Linux).

    Creating a thread moves the last PID too; comparing the raw listing avoids parsing it again.
    Elsewhere, psutil's list every time.
    """
    if not sys.platform.startswith("linux"):
        return [], [int(p) for p in psutil.pids()]
    names = os.listdir("/proc")
    if names == previous:
        return names, None
    return names, [int(n) for n in names if n.isdigit()]


def _hex_ip(text: str) -> str:
    raw = bytes.fromhex(text)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    v6 = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return _plain_ip(str(ipaddress.IPv6Address(v6)))


def _plain_ip(ip: str) -> str:
    """IPv4-mapped IPv6 (``::ffff:1.2.3.4``) as plain IPv4, so both socket kinds compare alike."""
    return ip[7:] if ip.startswith("::ffff:") and "." in ip else ip


def proc_net_remotes() -> set[tuple[str, int]] | None:
    """Linux: the remote (ip, port) of every connected TCP/UDP socket in this network namespace.

    Reads ``/proc/net/{tcp,tcp6,udp,udp6}`` only (well under a millisecond); None where that does not
    exist, and the caller falls back to ``psutil.net_connections``.
    """
    out: set[tuple[str, int]] = set()
    found = False
    for name, states in (("tcp", {"01", "02"}), ("tcp6", {"01", "02"}), ("udp", {"01"}), ("udp6", {"01"})):
        try:
            with open(f"/proc/net/{name}", encoding="ascii", errors="replace") as f:
                found = True
                next(f, None)
                for line in f:
                    parts = line.split()
                    if len(parts) < 4 or parts[3] not in states:
                        continue
                    ip, _, port = parts[2].partition(":")
                    if port and port != "0000":
                        out.add((_hex_ip(ip), int(port, 16)))
        except (OSError, ValueError):
            continue
    return out if found else None


# --- state ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Snapshot:
    """Everything the thread needs from one ``update()``; swapped whole, never mutated."""

    rules: Ruleset
    active_apps: frozenset[str]
    active_people: frozenset[str]
    target_hosts: tuple[str, ...]
    proxy_port: int
    pac_url: str
    compiled: tuple[AppRule, ...]
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
            and (self.rules is other.rules or self.rules == other.rules)
        )


@dataclass(eq=False)
class _Launch:
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
        self.system_mode = system_mode
        self.poll_interval = poll_interval
        self._resolver = resolver or default_resolver
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.direct_ports = DIRECT_PORTS
        self.rescan_interval = RESCAN_SECONDS
        self.net_interval = NET_SECONDS
        self._snapshot: _Snapshot | None = None
        self._applied: _Snapshot | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None
        # thread-owned state
        self._uid = os.getuid() if hasattr(os, "getuid") else -1
        self._self_pid = os.getpid()
        self._shielded: set[tuple[int, float]] = set()  # ancestors and our session leader
        self._known: dict[int, tuple[float, str]] = {}  # pid → (create time, name)
        self._stamps: dict[int, bytes] = {}  # pid → stat_stamp() when last inspected (Linux)
        self._last_pid: int | None = None
        self._listing: list[str] | None = None
        self._young: dict[int, tuple[float, tuple[str, str, tuple[str, ...]]]] = {}
        self._launch_of: dict[int, tuple[float, _Launch]] = {}
        self._suspended: list[_Launch] = []
        self._timers: list[tuple[float, int, _Launch]] = []
        self._seq = itertools.count()
        self._told: set[tuple[int, float]] = set()  # protected processes already logged
        self._net_reported: set[tuple[int, float]] = set()
        self._resolved: dict[str, tuple[frozenset[str], float]] = {}
        self._resolving: dict[str, Future[set[str]]] = {}
        self._suspend_lock = threading.Lock()
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

    # -- the loop thread's side ---------------------------------------------------------------------------
    def update(
        self,
        rules: Ruleset,
        active_apps: frozenset[str],
        active_people: frozenset[str],
        target_hosts: Sequence[str],
        proxy_port: int,
        pac_url: str,
    ) -> None:
        """Swap in the rules and what is in force now (cheap; the thread re-checks running processes)."""
        prev = self._snapshot
        compiled = prev.compiled if prev is not None and prev.rules is rules else app_rules(rules)
        apps, people = frozenset(active_apps), frozenset(active_people)
        snap = _Snapshot(
            rules=rules,
            active_apps=apps,
            active_people=people,
            target_hosts=tuple(target_hosts),
            proxy_port=proxy_port,
            pac_url=pac_url,
            compiled=compiled,
            active=active_rules(compiled, apps, people),
            bypass=(
                BypassContext(tuple(target_hosts), proxy_port, pac_url)
                if rules.settings.bypass_detection and people
                else None
            ),
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
                self._uid,
                _user_name(self._uid),
            )
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="zerocontact-resolve")
        self._thread = threading.Thread(target=self._run, name="zerocontact-watcher", daemon=True)
        atexit.register(self._resume_all, "zerocontact exited")
        self._thread.start()

    def stop(self) -> None:
        """End the thread and resume every process it suspended. Blocks briefly; safe to call twice."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._resume_all("the process watcher stopped")
        atexit.unregister(self._resume_all)

    def seen(self, pid: int) -> float | None:
        """The create time the watcher holds for ``pid`` (tests and debugging), or None."""
        got = self._known.get(pid)
        return got[0] if got else None

    @property
    def suspended(self) -> list[str]:
        """Labels of the launches held stopped right now."""
        return [launch.label for launch in list(self._suspended)]

    # -- the thread ------------------------------------------------------------------------------------
    def _run(self) -> None:
        self._shield()
        next_rescan = next_net = next_check = time.monotonic()
        while not self._stopping.is_set():
            try:
                now = time.monotonic()
                self._run_timers(now)
                snap = self._snapshot
                if snap is not self._applied and snap is not None:
                    self._apply(snap)
                self._poll(snap)
                if now >= next_check:
                    self._check_suspended(snap)
                    next_check = now + SUSPENDED_CHECK_SECONDS
                if now >= next_rescan:
                    if snap is not None:
                        self._rescan(snap)
                    next_rescan = now + self.rescan_interval
                if now >= next_net:
                    if snap is not None and snap.bypass is not None and snap.target_hosts:
                        self._net_scan(snap)
                    next_net = now + self.net_interval
            except Exception:  # the watcher must outlive any one bad process or psutil surprise
                log.exception("process watcher: error (continuing)")
            timeout = self.poll_interval
            if self._timers:
                timeout = max(0.0, min(timeout, self._timers[0][0] - time.monotonic()))
            self._wake.wait(timeout)
            self._wake.clear()

    def _shield(self) -> None:
        """Remember (pid, create time) of our ancestors and our session leader: never signalled."""
        try:
            me = psutil.Process(self._self_pid)
            for p in me.parents():
                with contextlib.suppress(psutil.Error):
                    self._shielded.add((p.pid, float(p.create_time())))
            if hasattr(os, "getsid"):
                leader = psutil.Process(os.getsid(0))
                self._shielded.add((leader.pid, float(leader.create_time())))
        except (psutil.Error, OSError):
            pass

    def _poll(self, snap: _Snapshot | None) -> None:
        self.stats["polls"] += 1
        marker = last_pid()
        if marker is not None and marker == self._last_pid:
            self._recheck_young(snap, time.time())  # nothing was created: only an exec can matter
            return
        self._last_pid = marker
        self.stats["listings"] += 1
        dying = any(launch.action == "terminate" for _, launch in self._launch_of.values())
        # a terminated PID reused between two polls leaves the listing unchanged: then always parse
        self._listing, listed = list_pids(None if dying else self._listing)
        if listed is None:
            self._recheck_young(snap, time.time())  # the same processes as last time
            return
        pids = listed
        current = set(pids)
        for pid in [p for p in self._known if p not in current]:
            self._forget(pid)
        for pid, (started, launch) in list(self._launch_of.items()):
            if launch.action == "terminate" and not _same_process(pid, started):
                self._forget(pid)  # died (or its PID was reused) before this poll noticed
        new: list[ProcInfo] = []
        judging = _judging(snap)
        for pid in pids:
            if self._stopping.is_set():  # the daemon must stop within two seconds, even mid-scan
                return
            if pid in self._known:
                continue
            if not judging:  # nothing is in force: note it; the sweep at the next change inspects it
                self._known[pid] = (-1.0, "")
                continue
            ctime, info = inspect_process(pid)
            self.stats["inspected"] += 1
            if ctime is None:
                continue
            self._remember(pid, ctime, info)
            if info is not None:
                new.append(info)
        now = time.time()
        for info in sorted(new, key=lambda i: (i.create_time, i.pid)):  # parents before their helpers
            if now - info.create_time < YOUNG_SECONDS:
                self._young[info.pid] = (info.create_time, _signature(info))
            if snap is not None:
                self._consider(info, snap, fresh=True)
        self._recheck_young(snap, now)

    def _recheck_young(self, snap: _Snapshot | None, now: float) -> None:
        for pid, (ctime, sig) in list(self._young.items()):
            if now - ctime >= YOUNG_SECONDS or pid in self._launch_of:
                self._young.pop(pid, None)
                continue
            got_ctime, info = inspect_process(pid)
            if info is None or got_ctime != ctime:
                self._young.pop(pid, None)
                continue
            if _signature(info) != sig:  # it exec'd: judge what it became
                self._young[pid] = (ctime, _signature(info))
                self._remember(pid, ctime, info)
                if snap is not None:
                    self._consider(info, snap, fresh=True)

    def _rescan(self, snap: _Snapshot) -> None:
        """Catch a process that exec'd into an app after its young days, or a PID reused between polls."""
        if not _judging(snap):
            return
        self.stats["rescans"] += 1
        for pid, (ctime, name) in list(self._known.items()):
            if self._stopping.is_set():
                return
            if self._stamps:
                stamp = stat_stamp(pid)
                if stamp is None or stamp == self._stamps.get(pid, stamp):
                    continue
            else:  # not Linux: ask psutil (slower)
                try:
                    p = psutil.Process(pid)
                    with p.oneshot():
                        if (float(p.create_time()), str(p.name())) == (ctime, name):
                            continue
                except (psutil.Error, OSError):
                    continue
            got_ctime, info = inspect_process(pid)
            if got_ctime is None:
                continue
            if got_ctime != ctime:
                self._forget(pid)  # a new process under a reused PID
            self._remember(pid, got_ctime, info)
            if info is not None:
                self._consider(info, snap, fresh=True)

    def _apply(self, snap: _Snapshot) -> None:
        """A new snapshot: lift suspensions no longer in force, then judge every running process."""
        self._applied = snap
        for launch in list(self._suspended):
            rule = next((r for r in snap.active if launch.rule and r.key == launch.rule.key), None)
            if rule is None:
                self._resume(launch, "its rule is no longer in force")
            elif rule.action == "terminate":
                with self._suspend_lock:
                    self._suspended.remove(launch)
                self._terminate(launch, rule.grace)
        infos = []
        for pid in psutil.pids() if _judging(snap) else ():
            if self._stopping.is_set():
                return
            ctime, info = inspect_process(pid)
            if ctime is None:
                continue
            known = self._known.get(pid)
            if known is not None and known[0] != ctime:
                self._forget(pid)
            self._remember(pid, ctime, info)
            if info is not None:
                infos.append(info)
        for info in sorted(infos, key=lambda i: (i.create_time, i.pid)):
            self._consider(info, snap, fresh=False)
        self.stats["sweeps"] += 1

    # -- judging and acting ------------------------------------------------------------------------------
    def _consider(self, info: ProcInfo, snap: _Snapshot, *, fresh: bool) -> None:
        if info.pid == self._self_pid or info.pid in (0, 1, 2) or info.ppid == 2:
            return
        if not self.system_mode and info.uid is not None and info.uid != self._uid:
            return  # user mode sees and stops only the user's own processes
        held = self._launch_of.get(info.pid)
        if held is not None and held[0] == info.create_time:
            return  # already part of a launch
        parent = self._launch_of.get(info.ppid)
        if parent is not None and parent[0] <= info.create_time:
            self._fold(parent[1], info)
            return
        v = judge(info, snap.active, snap.bypass)
        if v.stops and v.rule is not None:
            why = self._protected(info)
            if why:
                if (info.pid, info.create_time) not in self._told:
                    self._told.add((info.pid, info.create_time))
                    log.warning(
                        "process watcher: rule %r matches %s, not stopped: %s", v.rule.name, info.label, why
                    )
                return
            self._stop_launch(info, v, fresh)
        elif v.action == "bypass" and fresh:
            launch = _Launch(info, "bypass", None)
            self._launch_of[info.pid] = (info.create_time, launch)
            self.stats["bypasses"] += 1
            log.info("process watcher: bypass: %s: %s", info.label, v.bypass)
            self._report(
                Attempt(
                    time=self._clock(),
                    person=_people(snap),
                    platform=None,
                    surface=None,
                    channel="bypass",
                    process=info.label,
                    detail=f"{v.bypass}: {info.exe or info.name} (logged, not stopped)",
                )
            )

    def _stop_launch(self, info: ProcInfo, v: ProcessVerdict, fresh: bool) -> None:
        assert v.rule is not None
        try:
            proc = psutil.Process(info.pid)
            if float(proc.create_time()) != info.create_time:
                return
            tree = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            return
        launch = _Launch(info, v.action, v.rule)
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
        if not launch.procs:
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

    def _hold(self, launch: _Launch, p: psutil.Process) -> bool:
        """Add a process to a launch if it may be signalled at all (the last safety gate)."""
        why = self._guard(p)
        if why:
            log.warning("process watcher: not signalling %s (%d): %s", _name(p), p.pid, why)
            return False
        launch.procs.append(p)
        with contextlib.suppress(psutil.Error):
            self._launch_of.setdefault(p.pid, (float(p.create_time()), launch))
        return True

    def _suspend_one(self, launch: _Launch, p: psutil.Process) -> None:
        if self._hold(launch, p):
            self._send(p, "suspend")

    def _terminate(self, launch: _Launch, grace: float) -> None:
        launch.action = "terminate"
        for p in list(launch.procs):
            if p is launch.procs[0] or grace <= 0:
                self._send(p, "terminate")
                with contextlib.suppress(psutil.Error):
                    if p.status() == psutil.STATUS_STOPPED:
                        self._send(p, "resume")  # a stopped process acts on TERM only once continued
        launch.kill_at = time.monotonic() + max(grace, 0.0)
        heapq.heappush(self._timers, (launch.kill_at, next(self._seq), launch))

    def _fold(self, launch: _Launch, info: ProcInfo) -> None:
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

    def _run_timers(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            _, _, launch = heapq.heappop(self._timers)
            left = [p for p in launch.procs if _alive(p)]
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

    def _check_suspended(self, snap: _Snapshot | None) -> None:
        for launch in list(self._suspended):
            if time.monotonic() - launch.since < SUSPENDED_CHECK_SECONDS:
                continue  # a SIGSTOP just sent may not show in the status yet
            alive = [p for p in launch.procs if _alive(p)]
            if not alive:
                with self._suspend_lock, contextlib.suppress(ValueError):
                    self._suspended.remove(launch)
                self._drop(launch)
                continue
            for p in alive:
                with contextlib.suppress(psutil.Error):
                    if p.status() not in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP):
                        log.info("process watcher: %s was resumed by hand; suspending it again", launch.label)
                        self._send(p, "suspend")
                        launch.since = time.monotonic()

    def _resume(self, launch: _Launch, why: str) -> None:
        with self._suspend_lock:
            if launch not in self._suspended:
                return
            self._suspended.remove(launch)
        for p in reversed(launch.procs):
            if _alive(p):
                self._send(p, "resume")
        self._drop(launch)  # its processes are judged afresh from now on
        log.info("process watcher: resumed %s: %s", launch.label, why)

    def _drop(self, launch: _Launch) -> None:
        for p in launch.procs:
            got = self._launch_of.get(p.pid)
            if got is not None and got[1] is launch:
                del self._launch_of[p.pid]

    def _resume_all(self, why: str) -> None:
        for launch in list(self._suspended):
            self._resume(launch, why)

    def _send(self, p: psutil.Process, what: str) -> bool:
        if p.pid in (0, 1) or p.pid == self._self_pid:
            log.error("process watcher: refused to %s PID %d", what, p.pid)  # unreachable by design
            return False
        try:
            signal_process(p, what)
            return True
        except (psutil.NoSuchProcess, ProcessLookupError):
            return False
        except (psutil.AccessDenied, PermissionError):
            log.warning("process watcher: not allowed to %s %s (%d)", what, _name(p), p.pid)
            return False

    # -- safety ------------------------------------------------------------------------------------------
    def _protected(self, info: ProcInfo) -> str | None:
        why = protected_reason(info)
        if why:
            return why
        if info.pid == self._self_pid:
            return "zerocontact itself"
        if (info.pid, info.create_time) in self._shielded:
            return "zerocontact's parent, shell, terminal or session"
        if not self.system_mode and info.uid is not None and info.uid != self._uid:
            return "another user's process (user mode)"
        if hasattr(os, "getsid"):
            with contextlib.suppress(OSError, psutil.Error):
                if os.getsid(info.pid) == info.pid and psutil.Process(info.pid).terminal():
                    return "a session leader with a terminal (a login shell)"
        return None

    def _guard(self, p: psutil.Process) -> str | None:
        try:
            with p.oneshot():
                info = ProcInfo(
                    p.pid,
                    str(p.name()),
                    ppid=int(p.ppid()),
                    uid=int(p.uids().real) if hasattr(p, "uids") else None,
                    create_time=float(p.create_time()),
                    cmdline=_cmdline(p),
                )
        except psutil.Error:
            return "it is gone"
        return self._protected(info)

    # -- bypass by direct connection ---------------------------------------------------------------------
    def _target_ips(self, hosts: Sequence[str]) -> dict[str, str]:
        now = time.monotonic()
        for name, fut in list(self._resolving.items()):
            if fut.done():
                del self._resolving[name]
                try:
                    ips = frozenset(_plain_ip(ip) for ip in fut.result())
                    self._resolved[name] = (ips, now + RESOLVE_TTL)
                except Exception as e:  # resolution failed: keep what we had, retry later
                    old = self._resolved.get(name, (frozenset(), 0.0))[0]
                    self._resolved[name] = (old, now + RESOLVE_RETRY)
                    log.debug("process watcher: cannot resolve %s: %s", name, e)
        out: dict[str, str] = {}
        for host in hosts:
            for name in (host, "www." + host):
                got = self._resolved.get(name)
                if (got is None or got[1] < now) and name not in self._resolving and self._executor:
                    with contextlib.suppress(RuntimeError):
                        self._resolving[name] = self._executor.submit(_resolve, self._resolver, name)
                for ip in got[0] if got else ():
                    out.setdefault(ip, host)
        return out

    def _net_scan(self, snap: _Snapshot) -> None:
        ips = self._target_ips(snap.target_hosts)
        if not ips:
            return
        self.stats["net_scans"] += 1
        remotes = proc_net_remotes()
        if remotes is not None and not any(ip in ips and port in self.direct_ports for ip, port in remotes):
            return
        try:
            conns = psutil.net_connections(kind="inet")
        except (psutil.Error, OSError):
            return
        for c in conns:
            if not c.raddr or c.pid is None or c.pid == self._self_pid:
                continue
            ip, port = _plain_ip(str(c.raddr.ip)), int(c.raddr.port)
            if ip not in ips or port not in self.direct_ports:
                continue
            if c.type == socket.SOCK_STREAM and c.status not in (
                psutil.CONN_ESTABLISHED,
                psutil.CONN_SYN_SENT,
            ):
                continue
            ctime, info = inspect_process(int(c.pid))
            if info is None or ctime is None:
                continue
            if not self.system_mode and info.uid != self._uid:
                continue
            key = (info.pid, ctime)
            held = self._launch_of.get(info.pid)
            if key in self._net_reported or (held is not None and held[0] == ctime):
                continue
            self._net_reported.add(key)
            self.stats["bypasses"] += 1
            host = ips[ip]
            log.info(
                "process watcher: bypass: %s connects to %s:%d (%s) directly", info.label, ip, port, host
            )
            self._report(
                Attempt(
                    time=self._clock(),
                    person=_people(snap),
                    platform=None,
                    surface=None,
                    channel="bypass",
                    host=host,
                    process=info.label,
                    detail=(
                        f"direct connection to {ip}:{port} ({host}) from {info.exe or info.name}, "
                        "not through zerocontact's proxy (logged, not stopped)"
                    ),
                )
            )

    # -- bookkeeping ------------------------------------------------------------------------------------
    def _remember(self, pid: int, ctime: float, info: ProcInfo | None) -> None:
        self._known[pid] = (ctime, info.name if info else "")
        stamp = stat_stamp(pid)
        if stamp is not None:
            self._stamps[pid] = stamp

    def _forget(self, pid: int) -> None:
        self._known.pop(pid, None)
        self._stamps.pop(pid, None)
        self._young.pop(pid, None)
        self._launch_of.pop(pid, None)
        self._net_reported = {k for k in self._net_reported if k[0] != pid} if self._net_reported else set()

    def _report(self, attempt: Attempt) -> None:
        try:
            self._loop.call_soon_threadsafe(self._report_cb, attempt)
        except RuntimeError:  # the loop is closed: the daemon is gone
            log.warning(
                "process watcher: loop closed; not journalled: %s %s", attempt.channel, attempt.detail
            )


# --- small helpers -----------------------------------------------------------------------------------
def _judging(snap: _Snapshot | None) -> bool:
    """Whether anything is in force that a process could be judged against."""
    return snap is not None and (bool(snap.active) or snap.bypass is not None)


def _resolve(resolver: Resolver, name: str) -> set[str]:
    return {str(ip) for ip in resolver(name)}


def _signature(info: ProcInfo) -> tuple[str, str, tuple[str, ...]]:
    return (info.name, info.exe, info.cmdline)


def _same_process(pid: int, ctime: float) -> bool:
    try:
        return float(psutil.Process(pid).create_time()) == ctime
    except psutil.Error:
        return False


def _alive(p: psutil.Process) -> bool:
    try:
        return bool(p.is_running()) and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _name(p: psutil.Process) -> str:
    try:
        return str(p.name())
    except psutil.Error:
        return "?"


def _cmdline(p: psutil.Process) -> tuple[str, ...]:
    try:
        return tuple(str(a) for a in p.cmdline())
    except psutil.Error:
        return ()


def _people(snap: _Snapshot) -> str | None:
    """A bypass concerns whoever is blocked: the journal's person when exactly one is."""
    return next(iter(snap.active_people)) if len(snap.active_people) == 1 else None


def _user_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return "?"


# --- explain --process --------------------------------------------------------------------------------
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
