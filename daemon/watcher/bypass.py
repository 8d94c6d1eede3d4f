"""Bypass scans: launches and connections that route around zerocontact's proxy, logged, never stopped.

Two kinds, both only while someone is blocked and ``bypass_detection`` is on: a launch whose flags
say so (a browser started with ``--no-proxy-server`` or another proxy, or Tor Browser), judged by
``rules.apps.judge`` (pure) as the process is inspected; and a direct connection to a target
platform's address on port 80 or 443, found every ``NET_SECONDS`` by reading ``/proc/net`` (psutil
names the process only when something matches). Target names resolve on a worker thread and are
cached. Each bypass is one ``Attempt`` (channel ``bypass``); an ``[[app]]`` rule can stop Tor Browser
or a ``cmdline:*--no-proxy-server*`` launch if the user wants that.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import psutil

from zerocontact.rules.apps import ProcInfo

from ..journal import Attempt
from .procs import inspect_process
from .safety import Shield
from .stopping import Stopper

log = logging.getLogger("zerocontact.watcher")

DIRECT_PORTS = frozenset({80, 443})  # a direct connection to a target's IP on these is a bypass
NET_SECONDS = 2.0  # look for direct connections to target platforms this often
RESOLVE_TTL = 600.0
RESOLVE_RETRY = 60.0

Resolver = Callable[[str], Iterable[str]]


def default_resolver(host: str) -> set[str]:
    """Every address ``host`` resolves to (blocking: the watcher calls it on a worker thread)."""
    return {str(info[4][0]) for info in socket.getaddrinfo(host, 443, proto=socket.IPPROTO_TCP)}


def _resolve(resolver: Resolver, name: str) -> set[str]:
    return {str(ip) for ip in resolver(name)}


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


class BypassWatch:
    """Reports bypasses: launches ``judge`` flags, and direct connections to the targets' addresses.

    ``report`` hands an ``Attempt`` to the event loop; ``stats`` is the watcher's counters. A
    bypassing launch is noted in the ``Stopper`` (so its helpers fold into it, unreported) and a
    connection is reported once per process.
    """

    def __init__(
        self,
        shield: Shield,
        stopper: Stopper,
        report: Callable[[Attempt], None],
        clock: Callable[[], dt.datetime],
        stats: dict[str, int],
        resolver: Resolver,
    ) -> None:
        self._shield = shield
        self._stopper = stopper
        self._report = report
        self._clock = clock
        self._stats = stats
        self._resolver = resolver
        self._executor: ThreadPoolExecutor | None = None
        self._net_reported: set[tuple[int, float]] = set()
        self._resolved: dict[str, tuple[frozenset[str], float]] = {}
        self._resolving: dict[str, Future[set[str]]] = {}

    def start(self) -> None:
        """Start the resolver threads (names resolve off the watcher thread)."""
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="zerocontact-resolve")

    def stop(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def forget(self, pid: int) -> None:
        self._net_reported = {k for k in self._net_reported if k[0] != pid} if self._net_reported else set()

    # -- by launch flags ---------------------------------------------------------------------------------
    def flagged(self, info: ProcInfo, why: str | None, person: str | None) -> None:
        """A new launch that ``judge`` says routes around the proxy: one attempt, the launch noted."""
        self._stopper.note_bypass(info)
        self._stats["bypasses"] += 1
        log.info("process watcher: bypass: %s: %s", info.label, why)
        self._report(
            Attempt(
                time=self._clock(),
                person=person,
                platform=None,
                surface=None,
                channel="bypass",
                process=info.label,
                detail=f"{why}: {info.exe or info.name} (logged, not stopped)",
            )
        )

    # -- by direct connection ----------------------------------------------------------------------------
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

    def scan_connections(self, hosts: Sequence[str], ports: frozenset[int], person: str | None) -> None:
        """Report each process with a connection to one of ``hosts``' addresses on ``ports``."""
        ips = self._target_ips(hosts)
        if not ips:
            return
        self._stats["net_scans"] += 1
        remotes = proc_net_remotes()
        if remotes is not None and not any(ip in ips and port in ports for ip, port in remotes):
            return
        try:
            conns = psutil.net_connections(kind="inet")
        except (psutil.Error, OSError):
            return
        for c in conns:
            if not c.raddr or c.pid is None or c.pid == self._shield.self_pid:
                continue
            ip, port = _plain_ip(str(c.raddr.ip)), int(c.raddr.port)
            if ip not in ips or port not in ports:
                continue
            if c.type == socket.SOCK_STREAM and c.status not in (
                psutil.CONN_ESTABLISHED,
                psutil.CONN_SYN_SENT,
            ):
                continue
            ctime, info = inspect_process(int(c.pid))
            if info is None or ctime is None:
                continue
            if not self._shield.system_mode and info.uid != self._shield.uid:
                continue
            key = (info.pid, ctime)
            held = self._stopper.held(info.pid)
            if key in self._net_reported or (held is not None and held[0] == ctime):
                continue
            self._net_reported.add(key)
            self._stats["bypasses"] += 1
            host = ips[ip]
            log.info(
                "process watcher: bypass: %s connects to %s:%d (%s) directly", info.label, ip, port, host
            )
            self._report(
                Attempt(
                    time=self._clock(),
                    person=person,
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
