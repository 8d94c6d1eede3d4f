"""The daemon: one asyncio loop running the proxy, the PAC server, the schedule and reloads.

Threads (journal writer, file watcher, process lookups) hand results back to the loop; nothing here
blocks it for long. A second instance on the same state directory is refused. Every decision uses
trusted time (``clock.TrustedClock``) and the commitment rules (``rules.commit``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
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
from typing import IO, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from zerocontact.rules import Matcher, RulesError, Ruleset, evaluate, load
from zerocontact.rules.apps import compile_apps
from zerocontact.rules.errors import UserFacingError

from . import sdnotify
from .addon import Blocker, Enforcement, RedirectUpstream
from .clock import TrustedClock
from .commitment import Commitment, write_private
from .journal import Attempt, Journal, count_since, learned_ids
from .pac import PacServer, pac
from .paths import Paths
from .proxy import Proxy, ensure_ca

log = logging.getLogger("zerocontact")
DEFAULT_PORT = 8341  # the proxy; the PAC server listens on the next port
RECONCILE_SECONDS = 30.0


class StartError(UserFacingError):
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
    rules_bytes: bytes | None = None  # what the rules were loaded from: the watcher starts there


def _same_rules(a: Ruleset, b: Ruleset) -> bool:
    return dataclasses.replace(a, source="") == dataclasses.replace(b, source="")


class Daemon:
    def __init__(self, opts: Options, rules: Ruleset) -> None:
        self.opts = opts
        self.requested = rules  # what the rules file asks for
        self.paths = opts.paths
        self._lock_file: IO[str] | None = None
        self._stop = asyncio.Event()
        self.journal: Journal | None = None
        self.blocker: Blocker | None = None
        self.proxy: Proxy | None = None
        self.pac_server: PacServer | None = None
        self.clock: TrustedClock | None = None
        self.commitment: Commitment | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.watcher: Any = None  # the rules file
        self.processes: Any = None  # the process watcher
        self.proxy_addr: tuple[str, int] = (opts.host, opts.port)
        self.last_reload: dict[str, Any] = {"ok": True, "time": None, "detail": "loaded at start"}
        self.runtime: dict[str, Any] = {}

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

    def _record(self, attempt: Attempt) -> None:
        """An attempt from the process watcher (already on the loop): into the journal's queue."""
        if self.journal:
            self.journal.record(attempt)

    def _record_bypass(self, detail: str) -> None:
        """A way around the block was tried (clock moved, service stopped): one attempt, channel bypass."""
        if self.journal:
            self.journal.record(
                Attempt(
                    time=dt.datetime.now(dt.UTC),
                    person=None,
                    platform=None,
                    surface=None,
                    channel="bypass",
                    detail=detail,
                )
            )

    def _on_tamper(self, detail: str) -> None:
        if self.journal:
            self.journal.event("tamper", detail)
        self._record_bypass(f"clock: {detail}")

    def _enforcement(self, old: Enforcement | None) -> Enforcement:
        """Decide what is in force now (commitment, then the schedule) and build what hooks need."""
        assert self.clock is not None and self.commitment is not None
        now = self.clock.now()
        decision = self.commitment.decide(self.requested, now)
        rules = decision.effective
        if old is not None and _same_rules(old.rules, rules):
            matcher = old.matcher
        else:
            matcher = Matcher(rules)
            learned = old.matcher.learned() if old else learned_ids(self.paths.journal)
            for platform, value, person in learned:
                matcher.learn(platform, value, person)
        return Enforcement(rules, matcher, evaluate(rules, now, self.commitment.started))

    async def run(self) -> None:
        os.umask(0o077)  # everything the daemon writes is private to its owner
        host = check_loopback(self.opts.host)
        self._lock()
        loop = asyncio.get_running_loop()
        self.journal = Journal(self.paths.journal)
        self.journal.start()
        self.clock = TrustedClock(self.paths.state_dir / "clock.json", on_tamper=self._on_tamper)
        self.commitment = Commitment(self.paths.state_dir, self.opts.timezone)
        enf = self._enforcement(None)
        ca_cert = ensure_ca(
            self.paths.ca_dir, f"zerocontact local CA ({socket.gethostname()})", enf.matcher.target_hosts()
        )
        tz = zoneinfo.ZoneInfo(enf.rules.settings.timezone or "UTC")
        midnight = dt.datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0)
        self.blocker = Blocker(
            enforcement=enf,
            journal=self.journal,
            today_count=count_since(self.paths.journal, midnight),
            clock=self.clock.now,
            on_date=self.clock.observe_date,
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
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload_from_disk("SIGHUP")))
        self.scheduler = AsyncIOScheduler(
            event_loop=loop, job_defaults={"coalesce": True, "misfire_grace_time": None}
        )
        self.scheduler.add_job(self.reconcile, "interval", seconds=RECONCILE_SECONDS, id="reconcile")
        self.scheduler.add_job(
            self.apply_retention,
            "interval",
            hours=6,
            id="retention",
            next_run_time=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1),
        )
        self.scheduler.start()
        self._start_watcher(loop)
        from .paths import system_mode
        from .watcher import ProcessWatcher

        self.processes = ProcessWatcher(loop, self._record, system_mode=system_mode(), clock=self.clock.now)
        self.runtime = {
            "pid": os.getpid(),
            "proxy": f"{self.proxy_addr[0]}:{self.proxy_addr[1]}",
            "pac": f"http://{host}:{pac_port}/proxy.pac",
            "ca": str(ca_cert),
            "rules": str(self.opts.rules_path) if self.opts.rules_path else "(embedded sample)",
            "started": dt.datetime.now(dt.UTC).isoformat(),
        }
        self.paths.runtime.write_text(json.dumps(self.runtime, indent=2), encoding="utf-8")
        self.journal.event("started", json.dumps(self.runtime))
        log.info("zerocontact is running: proxy %s, PAC %s", self.runtime["proxy"], self.runtime["pac"])
        log.info("rules: %s: %s", self.runtime["rules"], self.requested.summary())
        log.info("CA certificate (trust it for HTTPS): %s", ca_cert)
        await self._after_change(None, enf)
        self.processes.start()
        sdnotify.notify(f"READY=1\nSTATUS=blocking {len(enf.active)} people; proxy {self.runtime['proxy']}")
        tasks = []
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

    def _start_watcher(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.opts.rules_path is None:
            return
        from .reloader import RulesWatcher

        self.watcher = RulesWatcher(
            self.opts.rules_path, loop, self.apply_rules_text, initial=self.opts.rules_bytes
        )
        self.watcher.start()

    async def shutdown(self) -> None:
        if self.watcher is not None:
            await asyncio.to_thread(self.watcher.stop)
        if self.processes is not None:
            # resumes anything it suspended; a scan in progress gets 1.5 s (an exit hook resumes too)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.to_thread(self.processes.stop), 1.5)
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        marker = self.paths.state_dir / "restart-requested"  # written by `install --refresh`
        by_installer = marker.exists()
        with contextlib.suppress(OSError):
            marker.unlink()
        if self.blocker and self.journal and self.blocker.enforcement.active and not by_installer:
            # the user may stop the service, but stopping it during a block is noted, gently
            who = ", ".join(sorted(self.blocker.enforcement.active))
            self._record_bypass(f"the service was stopped while blocking {who}")
        if self.pac_server:
            await self.pac_server.stop()
        if self.proxy:
            await self.proxy.stop()
        if self.blocker:
            await asyncio.to_thread(self.blocker.done)
        if self.clock:
            await asyncio.to_thread(self.clock.save)
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
    async def reconcile(self) -> None:
        """Re-decide from the rules and trusted time: catches transitions, due loosenings, clock jumps."""
        assert self.blocker is not None and self.clock is not None
        self.clock.check()
        old = self.blocker.enforcement
        new = self._enforcement(old)
        self._swap(old, new)
        await self._after_change(old, new)

    def _swap(self, old: Enforcement, new: Enforcement) -> None:
        assert self.blocker is not None and self.proxy is not None
        self.blocker.enforcement = new  # one assignment: hooks see the old or the new, never a mix
        if new.matcher.target_hosts() != old.matcher.target_hosts():
            self.proxy.retarget(new.matcher.target_hosts())
            from zerocontact.installer.ca import missing_hosts

            missing = missing_hosts(
                Path(self.runtime.get("ca", self.paths.ca_cert)), new.matcher.target_hosts()
            )
            if missing:
                log.warning(
                    "the CA cannot vouch for %s: run `zerocontact install --refresh` to renew and "
                    "re-trust it (until then browsers refuse those pages)",
                    ", ".join(missing),
                )
        for name in sorted(new.active - old.active):
            log.info("block started: %s", name)
            if self.journal:
                self.journal.event("block started", name)
        for name in sorted(old.active - new.active):
            log.info("block lifted: %s", name)
            if self.journal:
                self.journal.event("block lifted", name)

    async def _after_change(self, old: Enforcement | None, new: Enforcement) -> None:
        """Wake at the next transition, persist state, and publish status (disk work off the loop)."""
        assert self.clock is not None and self.commitment is not None and self.scheduler is not None
        wake = [
            t
            for t in (
                new.state.next_change,
                *(p.due for p in (self.commitment.decision.pending if self.commitment.decision else ())),
            )
            if t is not None
        ]
        if wake:
            # APScheduler runs on the system clock; translate the trusted instant into it
            at = dt.datetime.now(dt.UTC) + (min(wake) - self.clock.now()) + dt.timedelta(milliseconds=50)
            self.scheduler.add_job(
                self.reconcile, "date", run_date=at, id="transition", replace_existing=True
            )
        if self.processes is not None:
            self.processes.update(
                compile_apps(new.rules),
                new.state.apps,
                new.state.people,
                new.matcher.target_hosts(),
                self.proxy_addr[1],
                str(self.runtime.get("pac", "")),
            )
        status = self.status()
        await asyncio.to_thread(self._persist, status)

    def _persist(self, status: dict[str, Any]) -> None:
        assert self.commitment is not None and self.clock is not None
        self.commitment.save()
        self.clock.save()
        write_private(self.paths.state_dir / "status.json", json.dumps(status, indent=2))

    def status(self) -> dict[str, Any]:
        assert self.blocker is not None and self.clock is not None and self.commitment is not None
        enf = self.blocker.enforcement
        clock = self.clock.status()
        people = []
        for p in enf.rules.people:
            end = enf.state.ends.get(f"person:{p.name}")
            people.append(
                {
                    "name": p.name,
                    "active": p.name in enf.active,
                    "surfaces": sorted(p.block),
                    "platforms": sorted({a.platform for a in p.accounts}),
                    "until": end.isoformat() if end else None,
                    "windows": [w.text for w in p.schedule.windows],
                }
            )
        apps = [
            {"name": a.name, "active": a.name in enf.state.apps, "match": list(a.match), "action": a.action}
            for a in enf.rules.apps
        ]
        return {
            "running": True,
            "pid": os.getpid(),
            "proxy": self.runtime.get("proxy"),
            "pac": self.runtime.get("pac"),
            "rules": self.runtime.get("rules"),
            "trusted_time": self.clock.now().isoformat(),
            "people": people,
            "apps": apps,
            "next_transition": enf.state.next_change.isoformat() if enf.state.next_change else None,
            "pending": self.commitment.pending_view(),
            "cooling_off_seconds": enf.rules.lock.cooling_off.total_seconds(),
            "last_reload": self.last_reload,
            "clock": {
                "trusted": clock.trusted,
                "skew_seconds": round(clock.skew_seconds, 1),
                "detail": clock.detail,
            },
            "journal": {"error": self.journal.error if self.journal else None},
        }

    def apply_rules_text(self, data: bytes) -> None:
        """A new rules file (from the watcher or SIGHUP): validate, then commit; runs on the loop."""
        path = self.opts.rules_path
        now = dt.datetime.now(dt.UTC).isoformat()
        try:
            rules = load(data, str(path), default_timezone=self.opts.timezone)
        except RulesError as e:
            self.last_reload = {"ok": False, "time": now, "detail": f"kept the last good rules:\n{e}"}
            log.error("the rules file has problems; the last good rules stay in force:\n%s", e)
            if self.blocker is not None:
                asyncio.get_running_loop().create_task(self._after_change(None, self.blocker.enforcement))
            return
        self.requested = rules
        self.last_reload = {"ok": True, "time": now, "detail": f"reloaded: {rules.summary()}"}
        log.info("reloaded %s: %s", path, rules.summary())
        asyncio.get_running_loop().create_task(self.reconcile())

    async def reload_from_disk(self, why: str) -> None:
        if self.opts.rules_path is None:
            return
        try:
            data = await asyncio.to_thread(self.opts.rules_path.read_bytes)
        except OSError as e:
            self.last_reload = {
                "ok": False,
                "time": dt.datetime.now(dt.UTC).isoformat(),
                "detail": f"{why}: cannot read {self.opts.rules_path}: {e.strerror}",
            }
            log.error("%s", self.last_reload["detail"])
            return
        log.info("%s: reloading %s", why, self.opts.rules_path)
        self.apply_rules_text(data)

    async def apply_retention(self) -> None:
        """Forget attempts older than ``[settings] retention`` (the user decides how long the log keeps)."""
        assert self.blocker is not None and self.clock is not None
        keep = self.blocker.enforcement.rules.settings.retention
        if keep is None:
            return
        from .journal import JournalError
        from .review import forget

        try:
            n = await asyncio.to_thread(forget, self.paths.journal, self.clock.now() - keep)
        except JournalError as e:
            log.warning("retention: %s", e)
            return
        if n:
            log.info("retention: forgot %d attempt(s) older than %s", n, keep)

    async def _watchdog(self, interval: float) -> None:
        while True:
            sdnotify.notify("WATCHDOG=1")
            await asyncio.sleep(interval)
