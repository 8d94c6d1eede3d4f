"""Reading processes: what runs, what each process is, and which processes are new since the last poll.

The only part of the watcher that lists and inspects processes; it never signals one. A process is
keyed by (pid, create time), so a recycled PID is a new process. On Linux an idle poll is one small
read: the list is read only when ``/proc/loadavg``'s last PID moved, and parsed only when ``/proc``
lists something new. Each inspection uses a fresh ``psutil.Process`` (its ``exe()`` is cached per
object, stale after an exec), and a young process is inspected again on the next polls, because a
launcher forks first and execs the app a moment later. The rescan (one read of ``/proc/PID/stat``
each) catches a process that exec'd into an app long after it started.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator

import psutil

from zerocontact.rules.apps import ProcInfo

YOUNG_SECONDS = 1.0  # re-inspect processes younger than this on every poll (fork, then exec)

Signature = tuple[str, str, tuple[str, ...]]  # what an exec changes: name, executable, command line


# --- one process -----------------------------------------------------------------------------------
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


def signature(info: ProcInfo) -> Signature:
    """What changes when a process execs another program."""
    return (info.name, info.exe, info.cmdline)


def same_process(pid: int, ctime: float) -> bool:
    """Whether ``pid`` is still the process that started at ``ctime``."""
    try:
        return float(psutil.Process(pid).create_time()) == ctime
    except psutil.Error:
        return False


def alive(p: psutil.Process) -> bool:
    """Running, and not a zombie."""
    try:
        return bool(p.is_running()) and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def name_of(p: psutil.Process) -> str:
    """The process name for a log line ("?" once it is gone)."""
    try:
        return str(p.name())
    except psutil.Error:
        return "?"


def cmdline_of(p: psutil.Process) -> tuple[str, ...]:
    """The command line, or () when it cannot be read."""
    try:
        return tuple(str(a) for a in p.cmdline())
    except psutil.Error:
        return ()


def user_name(uid: int) -> str:
    """The login name of ``uid`` for a log line, or "?"."""
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return "?"


# --- the process list --------------------------------------------------------------------------------
def last_pid() -> tuple[int, int] | None:
    """Linux: the PID most recently handed out in this PID namespace and the number of tasks
    (``/proc/loadavg``'s last two fields).

    Both unchanged between two polls means no process (or thread) was created and none ended, so
    the PID list need not be read: an idle poll costs one small read. (The last PID alone would
    miss an exit on a quiet machine until something else started.)
    """
    data = _read("/proc/loadavg")
    try:
        fields = data.split() if data else []
        return int(fields[4]), int(fields[3].split(b"/")[1])
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


class ProcessTable:
    """What the watcher knows of the running processes, and the scans that find what is new or changed.

    The scans yield the processes to judge, one at a time, so each is judged before the next is
    looked at (judging one can make the next part of a launch). ``gone(pid)`` is called when a PID's
    process ended or was replaced: the watcher forgets it everywhere, through ``forget`` here.
    Used by the watcher thread only; ``stats`` is the watcher's counters, ``stopping`` its stop flag.
    """

    def __init__(self, stats: dict[str, int], stopping: threading.Event, gone: Callable[[int], None]) -> None:
        self._stats = stats
        self._stopping = stopping
        self._gone = gone
        self._known: dict[int, tuple[float, str]] = {}  # pid → (create time, name)
        self._stamps: dict[int, bytes] = {}  # pid → stat_stamp() when last inspected (Linux)
        self._last_pid: tuple[int, int] | None = None
        self._listing: list[str] | None = None
        self._young: dict[int, tuple[float, Signature]] = {}

    def seen(self, pid: int) -> float | None:
        """The create time held for ``pid`` (-1.0: listed while nothing was judged), or None."""
        got = self._known.get(pid)
        return got[0] if got else None

    def poll(
        self,
        judging: bool,
        terminating: Callable[[], list[tuple[int, float]]],
        held: Callable[[int], bool],
    ) -> Iterator[ProcInfo]:
        """The processes started since the last poll (parents before their helpers), then the young
        ones that exec'd since.

        While nothing is ``judging``, new PIDs are only noted (the sweep at the next change inspects
        them). ``terminating()`` gives the (pid, create time) of processes being terminated: their
        PIDs may be reused between two polls, so the listing is then always parsed. ``held(pid)``:
        the PID is already part of a launch (no need to watch it exec).
        """
        self._stats["polls"] += 1
        marker = last_pid()
        if marker is not None and marker == self._last_pid:
            yield from self._recheck_young(time.time(), held)  # nothing was created: only an exec can matter
            return
        self._last_pid = marker
        self._stats["listings"] += 1
        dying = bool(terminating())
        # a terminated PID reused between two polls leaves the listing unchanged: then always parse
        self._listing, listed = list_pids(None if dying else self._listing)
        if listed is None:
            yield from self._recheck_young(time.time(), held)  # the same processes as last time
            return
        pids = listed
        current = set(pids)
        for pid in [p for p in self._known if p not in current]:
            self._gone(pid)
        for pid, started in terminating():
            if not same_process(pid, started):
                self._gone(pid)  # died (or its PID was reused) before this poll noticed
        new: list[ProcInfo] = []
        for pid in pids:
            if self._stopping.is_set():  # the daemon must stop within two seconds, even mid-scan
                return
            if pid in self._known:
                continue
            if not judging:  # nothing is in force: note it; the sweep at the next change inspects it
                self._known[pid] = (-1.0, "")
                continue
            ctime, info = inspect_process(pid)
            self._stats["inspected"] += 1
            if ctime is None:
                continue
            self._remember(pid, ctime, info)
            if info is not None:
                new.append(info)
        now = time.time()
        for info in sorted(new, key=lambda i: (i.create_time, i.pid)):  # parents before their helpers
            if now - info.create_time < YOUNG_SECONDS:
                self._young[info.pid] = (info.create_time, signature(info))
            yield info
        yield from self._recheck_young(now, held)

    def _recheck_young(self, now: float, held: Callable[[int], bool]) -> Iterator[ProcInfo]:
        for pid, (ctime, sig) in list(self._young.items()):
            if now - ctime >= YOUNG_SECONDS or held(pid):
                self._young.pop(pid, None)
                continue
            got_ctime, info = inspect_process(pid)
            if info is None or got_ctime != ctime:
                self._young.pop(pid, None)
                continue
            if signature(info) != sig:  # it exec'd: judge what it became
                self._young[pid] = (ctime, signature(info))
                self._remember(pid, ctime, info)
                yield info

    def rescan(self) -> Iterator[ProcInfo]:
        """Every known process that exec'd into something else after its young days, or whose PID was
        reused between two polls (Linux: one ``/proc/PID/stat`` read each; elsewhere psutil)."""
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
                self._gone(pid)  # a new process under a reused PID
            self._remember(pid, got_ctime, info)
            if info is not None:
                yield info

    def sweep(self, judging: bool) -> list[ProcInfo] | None:
        """Every running process, inspected afresh (oldest first); none while nothing is ``judging``.
        None when the watcher is stopping."""
        infos = []
        for pid in psutil.pids() if judging else ():
            if self._stopping.is_set():
                return None
            ctime, info = inspect_process(pid)
            if ctime is None:
                continue
            known = self._known.get(pid)
            if known is not None and known[0] != ctime:
                self._gone(pid)
            self._remember(pid, ctime, info)
            if info is not None:
                infos.append(info)
        return sorted(infos, key=lambda i: (i.create_time, i.pid))

    def _remember(self, pid: int, ctime: float, info: ProcInfo | None) -> None:
        self._known[pid] = (ctime, info.name if info else "")
        stamp = stat_stamp(pid)
        if stamp is not None:
            self._stamps[pid] = stamp

    def forget(self, pid: int) -> None:
        self._known.pop(pid, None)
        self._stamps.pop(pid, None)
        self._young.pop(pid, None)
