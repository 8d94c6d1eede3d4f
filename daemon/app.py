"""The daemon: one asyncio loop running the proxy, the PAC server, policy updates and signals.

Threads (the journal writer, process lookups) hand their results back; nothing here blocks the loop
for long. A second instance on the same state directory is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import ipaddress
import json
import logging
import os
import signal
import socket
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from zerocontact.rules import Matcher, Ruleset, evaluate

from . import sdnotify
from .addon import Blocker, Enforcement, RedirectUpstream
from .journal import Journal, count_since, learned_ids
from .pac import PacServer, pac
from .paths import Paths
from .proxy import Proxy, ensure_ca

log = logging.getLogger("zerocontact")
DEFAULT_PORT = 8341  # the proxy; the PAC server listens on the next port
RECONCILE_SECONDS = 30.0


class StartError(Exception):
    """The daemon cannot start; the message says why and what to do."""


def check_loopback(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise StartError(
            f"--host {host!r} is not an IP address; zerocontact listens on loopback only"
        ) from None
    if not ip.is_loopback:
        raise StartError(
            f"refusing to listen on {host}: the proxy would be open to other machines; use 127.0.0.1 (or ::1)"
        )
    return host


@dataclass
class Options:
    paths: Paths
    rules_path: Path | None  # None: the embedded sample
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    pac_port: int | None = None
    timezone: str = "UTC"
    redirect_upstream: dict[str, tuple[str, int]] | None = None  # tests and debugging only


class Daemon:
    def __init__(self, opts: Options, rules: Ruleset) -> None:
        self.opts = opts
        self.rules = rules
        self.paths = opts.paths
        self._lock_file: IO[str] | None = None
        self._stop = asyncio.Event()
        self.journal: Journal | None = None
        self.blocker: Blocker | None = None
        self.proxy: Proxy | None = None
        self.pac_server: PacServer | None = None
        self.proxy_addr: tuple[str, int] = (opts.host, opts.port)

    # -- start-up ---------------------------------------------------------------------------------
    def _lock(self) -> None:
        self.paths.ensure_state()
        f = open(self.paths.lock, "a+", encoding="utf-8")  # noqa: SIM115 - held for the daemon's life
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            pid = f.read().strip() or "?"
            f.close()
            raise StartError(
                f"zerocontact is already running (pid {pid}) with state directory {self.paths.state_dir}"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._lock_file = f

    def enforcement(self, rules: Ruleset, matcher: Matcher | None = None) -> Enforcement:
        if matcher is None:
            matcher = Matcher(rules)
            for platform, value, person in learned_ids(self.paths.journal):
                matcher.learn(platform, value, person)
        now = dt.datetime.now(dt.UTC)
        return Enforcement(rules, matcher, evaluate(rules, now))

    async def run(self) -> None:
        os.umask(0o077)  # everything the daemon writes is private to its owner
        host = check_loopback(self.opts.host)
        self._lock()
        loop = asyncio.get_running_loop()
        ca_cert = ensure_ca(self.paths.ca_dir, f"zerocontact local CA ({socket.gethostname()})")
        self.journal = Journal(self.paths.journal)
        self.journal.start()
        enf = self.enforcement(self.rules)
        tz = zoneinfo.ZoneInfo(self.rules.settings.timezone or "UTC")
        midnight = dt.datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0)
        self.blocker = Blocker(
            enforcement=enf, journal=self.journal, today_count=count_since(self.paths.journal, midnight)
        )
        extra = (RedirectUpstream(self.opts.redirect_upstream),) if self.opts.redirect_upstream else ()
        self.proxy = Proxy(
            host, self.opts.port, self.paths.ca_dir, self.blocker, enf.matcher.target_hosts(), extra
        )
        try:
            self.proxy_addr = await self.proxy.start()
        except OSError as e:
            raise StartError(f"cannot listen on {host}:{self.opts.port}: {e}") from None
        self.blocker.proxy_port = self.proxy_addr[1]
        pac_port = (
            self.opts.pac_port
            if self.opts.pac_port is not None
            else (self.proxy_addr[1] + 1 if self.opts.port else 0)
        )
        self.pac_server = PacServer(host, pac_port, self._pac_text, ca_cert)
        try:
            pac_port = await self.pac_server.start()
        except OSError as e:
            await self.proxy.stop()
            raise StartError(f"cannot serve the PAC file on {host}:{pac_port}: {e}") from None
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        runtime = {
            "pid": os.getpid(),
            "proxy": f"{self.proxy_addr[0]}:{self.proxy_addr[1]}",
            "pac": f"http://{host}:{pac_port}/proxy.pac",
            "ca": str(ca_cert),
            "rules": str(self.opts.rules_path) if self.opts.rules_path else "(embedded sample)",
            "started": dt.datetime.now(dt.UTC).isoformat(),
        }
        self.paths.runtime.write_text(json.dumps(runtime, indent=2), encoding="utf-8")
        self.journal.event("started", json.dumps(runtime))
        log.info("zerocontact is running: proxy %s, PAC %s", runtime["proxy"], runtime["pac"])
        log.info("rules: %s: %s", runtime["rules"], self.rules.summary())
        log.info("CA certificate (trust it for HTTPS): %s", ca_cert)
        sdnotify.notify(f"READY=1\nSTATUS=blocking {len(self.rules.people)} people; proxy {runtime['proxy']}")
        tasks = [asyncio.create_task(self._reconcile())]
        interval = sdnotify.watchdog_interval()
        if interval:
            tasks.append(asyncio.create_task(self._watchdog(interval)))
        try:
            await self._stop.wait()
        finally:
            sdnotify.notify("STOPPING=1")
            log.info("stopping")
            for t in tasks:
                t.cancel()
            await self.shutdown()

    async def shutdown(self) -> None:
        if self.pac_server:
            await self.pac_server.stop()
        if self.proxy:
            await self.proxy.stop()
        if self.blocker:
            await asyncio.to_thread(self.blocker.done)
        if self.journal:
            self.journal.event("stopped")
            await asyncio.to_thread(self.journal.close)
        with contextlib.suppress(FileNotFoundError):
            self.paths.runtime.unlink()
        if self._lock_file:
            self._lock_file.close()

    def stop(self) -> None:
        self._stop.set()

    def _pac_text(self) -> str:
        assert self.blocker is not None
        return pac(self.blocker.enforcement.matcher.target_hosts(), self.proxy_addr)

    # -- keeping enforcement current --------------------------------------------------------------
    def swap(self, enf: Enforcement) -> None:
        """Replace what the hooks see in one assignment; retarget decryption if the hosts changed."""
        assert self.blocker is not None and self.proxy is not None
        old = self.blocker.enforcement
        self.blocker.enforcement = enf
        if enf.matcher.target_hosts() != old.matcher.target_hosts():
            self.proxy.retarget(enf.matcher.target_hosts())
        if enf.active != old.active:
            log.info("now blocking: %s", ", ".join(sorted(enf.active)) or "nobody")

    async def _reconcile(self) -> None:
        while True:
            await asyncio.sleep(RECONCILE_SECONDS)
            assert self.blocker is not None
            cur = self.blocker.enforcement
            self.swap(Enforcement(cur.rules, cur.matcher, evaluate(cur.rules, dt.datetime.now(dt.UTC))))

    async def _watchdog(self, interval: float) -> None:
        while True:
            sdnotify.notify("WATCHDOG=1")
            await asyncio.sleep(interval)
