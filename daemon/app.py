"""The daemon's lifecycle: start its parts in order on one asyncio loop, stop them in reverse.

Modelled on mitmproxy's ``Master``: each part (the state-dir lock, the journal, the proxy, the PAC
server, the schedule, the rules-file watcher, the process watcher) has a start and a stop, and
``Lifecycle`` stops whatever started, last first, even when a later start fails. Deciding what is in
force lives in ``enforcement.build``; keeping it current (reloads, schedule transitions, due
loosenings) is ``Daemon.reconcile``. Threads (journal writer, file watcher, process scans) hand
results back to the loop; nothing here blocks it for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import gc
import ipaddress
import json
import logging
import os
import re
import signal
import socket
import sys
import time
import zoneinfo
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

try:
    import fcntl

    HAVE_FLOCK = True
except ImportError:  # Windows: InstanceLock uses msvcrt there
    HAVE_FLOCK = False

from zerocontact.rules import RulesError, Ruleset, load
from zerocontact.rules.errors import UserFacingError

from . import ca, memory, notify, sdnotify
from . import devices as devmod
from .attempts import DayCount
from .blocker import Blocker, RedirectUpstream
from .clock import ClockStatus, TrustedClock
from .commitment import Commitment, UninstallRequest, source_digest
from .devicepage import DevicePage
from .enforcement import Enforcement, build
from .journal import Attempt, Journal, count_since, learned_ids
from .journal.reader import kept_state, passed_through
from .notify import Notifier
from .pac import PacServer, pac, proxy_address
from .paths import Paths, os_problem, system_mode, write_private
from .pinning import PinnedApps
from .proxy import Proxy, WireGuard
from .rulesfile import RulesFileError, read_rules_file
from .schedule import RECONCILE_SECONDS, Timers
from .status import (
    AppStatus,
    ClockReport,
    JournalReport,
    PendingStatus,
    PersonStatus,
    ReloadStatus,
    Runtime,
    Status,
    change_words,
)

if TYPE_CHECKING:
    from .reloader import RulesFileWatcher
    from .watcher import ProcessWatcher

log = logging.getLogger("zerocontact")
DEFAULT_PORT = 8341  # the proxy; the PAC server listens on the next port
JOURNAL_WATCH_SECONDS = 1.0


class StartError(UserFacingError):
    """The daemon cannot start; the message says why and what to do."""


class Clock(Protocol):
    """Trusted time (``clock.TrustedClock``); tests inject one they move by hand."""

    def now(self) -> dt.datetime: ...
    def check(self) -> ClockStatus: ...
    def status(self) -> ClockStatus: ...
    def observe_date(self, date: dt.datetime) -> None: ...
    def save(self) -> None: ...


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
    watch_processes: bool = True
    demo: bool = False  # `run --sample`: a throwaway run that commits to nothing and notes no bypass


class Lifecycle:
    """Parts started in order and stopped in reverse; a failing stop is logged, the rest still run."""

    def __init__(self) -> None:
        self._stops: list[tuple[str, Callable[[], Awaitable[None]]]] = []

    async def enter(
        self, name: str, start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]
    ) -> None:
        await start()
        self._stops.append((name, stop))

    async def close(self) -> None:
        while self._stops:
            name, stop = self._stops.pop()
            t0 = time.monotonic()
            try:
                await stop()
            except OSError as e:  # a full disk or a read-only state directory: said, not dumped
                log.error("stopping %s: %s", name, os_problem(e))
            except Exception:  # one part failing to stop must not keep the others running
                log.exception("stopping %s failed", name)
            log.debug("stopped %s in %.3f s", name, time.monotonic() - t0)


class InstanceLock:
    """One daemon per state directory: an flock held for the daemon's life, the PID written inside.

    Plain file descriptors rather than a buffered file: a write that fails (a full disk) fails
    here, once, instead of again when a buffered file is flushed at exit."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self._fd: int | None = None

    async def start(self) -> None:
        self.paths.ensure_state()
        fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            _lock(fd)
        except BlockingIOError:
            pid = _read_head(fd) or "?"
            os.close(fd)
            raise StartError(
                f"zerocontact is already running (pid {pid}) with state directory {self.paths.state_dir}"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, str(os.getpid()).encode())
            self.paths.check_room()
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    async def stop(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_head(fd: int) -> str:
    """The PID a lock file holds (its first bytes); empty when it cannot be read (on Windows the
    holder's lock covers what it wrote)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 32).decode("ascii", "replace").strip()
    except OSError:
        return ""


def _lock(fd: int) -> None:
    """Lock ``fd`` for this process, or raise BlockingIOError when another process holds it.

    flock (Linux, macOS) and msvcrt's byte lock (Windows) are dropped by the OS however the process
    ends. Where neither exists, the PID written inside decides: held while that process lives."""
    if HAVE_FLOCK:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    elif sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            raise BlockingIOError("locked") from None
    else:
        import psutil

        pid = _read_head(fd)
        if pid.isdigit() and int(pid) != os.getpid() and psutil.pid_exists(int(pid)):
            raise BlockingIOError("locked")


async def _nothing() -> None:
    return None


class Daemon:
    """The service: built without side effects, then ``start``/``stop`` (or ``run`` until a signal)."""

    def __init__(self, opts: Options, rules: Ruleset, *, clock: Clock | None = None) -> None:
        self.opts = opts
        self.paths = opts.paths
        self.requested = rules  # what the rules file asks for
        # and the digest of the bytes it was read from (never for the embedded sample, whose rules
        # are not read from ``rules_bytes``): lets a restart skip comparing 10,000 people's dump
        self.requested_digest = (
            source_digest(opts.rules_bytes, opts.timezone)
            if opts.rules_bytes is not None and opts.rules_path is not None and not opts.demo
            else None
        )
        self._injected_clock = clock
        self._life = Lifecycle()
        self._stopped = asyncio.Event()
        self.journal = Journal(self.paths.journal)
        self.clock: Clock | None = None
        self.commitment: Commitment | None = None
        self.blocker: Blocker | None = None
        self.proxy: Proxy | None = None
        self.pac_server: PacServer | None = None
        self.schedule: Timers | None = None
        self.rules_file_watcher: RulesFileWatcher | None = None
        self.process_watcher: ProcessWatcher | None = None
        self.runtime: Runtime | None = None
        self.today: DayCount | None = None
        self.uninstall: UninstallRequest | None = None
        self.notifier: Notifier | None = None
        self.proxy_addr: tuple[str, int] = (opts.host, opts.port)
        self.last_reload = ReloadStatus()
        self.problems: dict[str, str] = {}  # what keeps the daemon from its whole job, by kind
        self._status_failure: str | None = None  # why status.json could not be written, if so
        self._publishing = asyncio.Lock()
        self._journal_watch: asyncio.Task[None] | None = None
        self._started = False  # every part started (a failed start is not a stop to note)
        self._device_removals: list[tuple[str, dt.datetime]] = []  # `devices remove` asked in a block
        self.pinned: PinnedApps | None = None
        self._served_devices: list[str] | None = None  # the devices served so far (None: not yet)
        self._tasks: set[asyncio.Task[None]] = set()  # referenced until done, so none is collected early

    @property
    def enforcement(self) -> Enforcement:
        assert self.blocker is not None, "the daemon has not started"
        return self.blocker.enforcement

    # -- start and stop ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Start every part in order; on a failure, stop what started and raise ``StartError``.

        A file the daemon cannot write at start (a full disk, a read-only state directory: the
        lock, the CA, ``daemon.json``) is one clear line, not a traceback. Under systemd the service
        comes back every 5 s and starts once the disk has room; until then the PAC and browser
        policy keep sending the targets to the (absent) proxy, so they fail closed."""
        # No cyclic collections while the start builds its long-lived objects (the rules twice, the
        # matcher, mitmproxy's modules): at 10,000 people they were a fifth of the start. Once
        # started those objects are frozen, so the collections that traffic triggers skip them.
        gc.disable()
        try:
            await self._start()
            gc.freeze()
        except OSError as e:
            await self._life.close()
            raise StartError(
                f"cannot start with state directory {self.paths.state_dir}: {os_problem(e)}"
            ) from None
        except BaseException:
            await self._life.close()
            raise
        finally:
            gc.enable()  # the daemon runs with the collector on, whoever turned it off first

    async def _start(self) -> None:
        host = check_loopback(self.opts.host)
        loop = asyncio.get_running_loop()
        life = self._life
        # everything the daemon writes is private to its owner; the old mask comes back at stop
        # (a daemon run in-process, as the tests do, leaves its host process as it found it)
        previous_umask = os.umask(0o077)

        async def restore_umask() -> None:
            os.umask(previous_umask)

        await life.enter("umask", _nothing, restore_umask)
        lock = InstanceLock(self.paths)
        await life.enter("lock", lock.start, lock.stop)

        # what the journal kept of the commitment, read before the writer may upgrade the file
        journal_is_new = not self.paths.journal.exists()
        kept = await asyncio.to_thread(kept_state, self.paths.journal)

        async def start_journal() -> None:
            self.journal.start()

        async def stop_journal() -> None:
            self.journal.event("stopped")
            await asyncio.to_thread(self.journal.close)

        await life.enter("journal", start_journal, stop_journal)
        self._note_unclean_stop()
        self.clock = self._injected_clock or TrustedClock(self.paths.clock, on_tamper=self._on_tamper)
        clock = self.clock
        await life.enter("clock", _nothing, lambda: asyncio.to_thread(clock.save))
        self.commitment = Commitment(
            self.paths,
            self.opts.timezone,
            kept=kept,
            journal_is_new=journal_is_new,
            requested=self.requested,
            requested_digest=self.requested_digest,
        )
        for note in self.commitment.tampering:
            log.warning("commitment: %s", note)
            self.journal.event("tamper", note)
            self._record_bypass(f"commitment: {note}")
        enf = self._decide(None)
        ca_cert = ca.ensure(
            self.paths.ca_dir, f"zerocontact local CA ({socket.gethostname()})", enf.matcher.target_hosts()
        )
        # today's attempts on every channel, in the zone `stats` uses, so the block page agrees
        zone = self._review_zone
        midnight = dt.datetime.now(zoneinfo.ZoneInfo(zone())).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        self.today = DayCount(zone, clock.now, count_since(self.paths.journal, midnight))
        blocker = self.blocker = Blocker(
            enforcement=enf,
            journal=self.journal,
            today=self.today,
            clock=clock.now,
            on_date=clock.observe_date,
        )
        await life.enter("blocker", _nothing, lambda: asyncio.to_thread(blocker.done))
        notifier = self.notifier = Notifier(
            lambda: self.enforcement.rules.settings.notifications, system=system_mode()
        )

        async def start_notifier() -> None:
            notifier.start()

        await life.enter("notifier", start_notifier, lambda: asyncio.to_thread(notifier.stop))

        pinned = self.pinned = PinnedApps(
            blocker.devices,
            self._platform_for,
            self._record,
            clock.now,
            journal=self.journal,
            client_block=self._client_closed,
            passed=await asyncio.to_thread(passed_through, self.paths.journal),
        )
        extra: tuple[object, ...] = (
            # the Blocker's pages: their templates are compiled once, not again for this addon
            DevicePage(
                ca_cert, blocker.devices, pages=blocker.pages, on_certificate=pinned.certificate_taken
            ),
            pinned,
        )
        if self.opts.redirect_upstream:
            extra += (RedirectUpstream(self.opts.redirect_upstream),)
        proxy = self.proxy = Proxy(
            host, self.opts.port, self.paths.ca_dir, blocker, enf.matcher.target_hosts(), extra
        )

        async def start_proxy() -> None:
            try:
                self.proxy_addr = await proxy.start()
            except OSError as e:
                raise StartError(f"cannot listen on {host}:{self.opts.port}: {e}") from None
            blocker.proxy_port = self.proxy_addr[1]

        await life.enter("proxy", start_proxy, proxy.stop)
        await self.reload_devices("start")

        async def unpublish_devices() -> None:
            with contextlib.suppress(FileNotFoundError):
                self.paths.wireguard.unlink()

        await life.enter("devices record", _nothing, unpublish_devices)
        pac_port = (
            self.opts.pac_port
            if self.opts.pac_port is not None
            else (self.proxy_addr[1] + 1 if self.opts.port else 0)
        )
        pac_server = self.pac_server = PacServer(host, pac_port, self._pac_text, ca_cert)

        async def start_pac() -> None:
            nonlocal pac_port
            try:
                pac_port = await pac_server.start()
            except OSError as e:
                raise StartError(f"cannot serve the PAC file on {host}:{pac_port}: {e}") from None

        await life.enter("pac", start_pac, pac_server.stop)
        await life.enter("stop notice", _nothing, self._note_stop)
        self.runtime = Runtime(
            pid=os.getpid(),
            proxy=proxy_address(*self.proxy_addr),  # "[::1]:8341" for IPv6, as URLs and curl -x want it
            pac=f"http://{proxy_address(host, pac_port)}/proxy.pac",
            ca=str(ca_cert),
            rules=str(self.opts.rules_path) if self.opts.rules_path else "(embedded sample)",
            started=dt.datetime.now(dt.UTC).isoformat(),
        )
        runtime = self.runtime

        async def unpublish() -> None:
            with contextlib.suppress(FileNotFoundError):
                self.paths.runtime.unlink()

        await life.enter("runtime record", self._publish_runtime, unpublish)
        # The timers (the 30 s reconcile, retention, the next transition) start once the proxy
        # enforces: the first wake-up is aimed below (_after_change), and none is due sooner.
        schedule = self.schedule = Timers(loop, self.reconcile, self.apply_retention)
        await life.enter("schedule", schedule.start, schedule.stop)
        if self.opts.rules_path is not None:
            # Watched from here on (watchdog, ~10 ms to import and start, after the runtime record):
            # an edit saved since the rules were read differs from ``initial``, the bytes they were
            # read from, so the watcher's first check, one debounce after its start, applies it.
            from .reloader import RulesFileWatcher

            watcher = self.rules_file_watcher = RulesFileWatcher(
                self.opts.rules_path,
                loop,
                self.apply_rules_text,
                initial=self.opts.rules_bytes,
                on_error=self._unreadable_rules,
            )

            async def start_watcher() -> None:
                watcher.start()

            await life.enter("rules file watcher", start_watcher, lambda: asyncio.to_thread(watcher.stop))
        if self.opts.watch_processes:
            # The process watcher starts after the first decision is published (below), as it always
            # did; its package (and psutil's, ~15 ms) is imported here, after the runtime record.
            from .watcher import ProcessWatcher

            self.process_watcher = ProcessWatcher(
                loop, self._record, system_mode=system_mode(), clock=clock.now
            )
        log.info("zerocontact is running: proxy %s, PAC %s", runtime.proxy, runtime.pac)
        log.info("rules: %s: %s", runtime.rules, self.requested.summary())
        log.info("CA certificate (trust it for HTTPS): %s", ca_cert)
        await self._after_change(enf)
        if self.process_watcher is not None:
            processes = self.process_watcher

            async def start_processes() -> None:
                processes.start()

            async def stop_processes() -> None:
                # resumes anything it suspended; a scan in progress gets 1.5 s (an exit hook resumes too)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.to_thread(processes.stop), 1.5)

            await life.enter("process watcher", start_processes, stop_processes)
        self._journal_watch = asyncio.create_task(self._watch_journal(), name="journal watch")
        self._started = True
        sdnotify.notify(f"READY=1\nSTATUS=blocking {len(enf.active)} people; proxy {runtime.proxy}")
        interval = sdnotify.watchdog_interval()
        if interval:
            self._spawn(self._watchdog(interval))

    async def _publish_runtime(self) -> None:
        assert self.runtime is not None
        await asyncio.to_thread(self.runtime.write, self.paths.runtime)
        self.journal.event("started", json.dumps(dataclasses.asdict(self.runtime)))

    def _note_unclean_stop(self) -> None:
        """A runtime record left behind means the last daemon on this state dir did not stop (it was
        killed, or the machine lost power): journal it, and as a bypass if it was blocking someone."""
        previous = Runtime.read(self.paths.runtime)
        if previous is None:
            return
        last = Status.read(self.paths.status)
        who = ", ".join(sorted(p.name for p in last.people if p.active)) if last else ""
        self.journal.event("unclean stop", f"pid {previous.pid}, started {previous.started}")
        if who:
            self._record_bypass(f"the service was killed or lost power while blocking {who}")

    async def _note_stop(self) -> None:
        """Stopping the service during a block is noted (unless ``install --refresh`` restarts it).
        A start that failed part-way is no stop: nothing ran, so nothing is noted."""
        assert self.blocker is not None
        if not self._started:
            return
        if self.opts.demo:
            return  # stopping a demo is not a way around anything
        marker = self.paths.restart_marker  # written by `install --refresh`
        by_installer = marker.exists()
        with contextlib.suppress(OSError):
            marker.unlink()
        if self.blocker.enforcement.active and not by_installer:
            # the user may stop the service, but stopping it during a block is noted, gently
            who = ", ".join(sorted(self.blocker.enforcement.active))
            self._record_bypass(f"the service was stopped while blocking {who}")

    async def stop(self) -> None:
        """Stop every part that started, last first."""
        if self._journal_watch is not None:
            self._journal_watch.cancel()
        for t in list(self._tasks):
            t.cancel()
        await self._life.close()

    async def _watch_journal(self) -> None:
        """Publish the status as soon as the journal's health changes (it cannot tell us itself),
        so that ``status`` says "Journal: …cannot write…" within a second, not at the next reconcile."""
        shown = self.journal.error
        while True:
            await asyncio.sleep(JOURNAL_WATCH_SECONDS)
            if self.journal.error != shown:
                shown = self.journal.error
                try:
                    await self._publish()
                except Exception:  # a bug: the next change (or reconcile) tries again
                    log.exception("publishing the journal's state failed")

    async def run(self) -> None:
        """Start, then serve until SIGINT or SIGTERM (SIGHUP re-reads the rules file)."""
        loop = asyncio.get_running_loop()
        # handlers first: a SIGTERM that arrives while the parts start stops the daemon once started
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._stopped.set)
        except NotImplementedError:
            # Windows' loops take no signal handlers: asyncio.run turns Ctrl-C into a cancellation
            # of this coroutine (its finally stops the daemon), and SIGTERM comes in by signal.signal
            signal.signal(signal.SIGTERM, lambda *_: loop.call_soon_threadsafe(self._stopped.set))
        else:
            hup = getattr(signal, "SIGHUP", None)  # none on Windows: the file watcher reloads anyway
            if hup is not None:
                loop.add_signal_handler(hup, lambda: self._spawn(self._hangup()))
        await self.start()  # a failed start has stopped what it started, and raises
        try:
            await self._stopped.wait()
        finally:
            sdnotify.notify("STOPPING=1")
            log.info("stopping")
            await self.stop()

    async def _hangup(self) -> None:
        """SIGHUP: re-read the rules file and the devices (``devices add``/``remove`` send it)."""
        try:
            await self.reload_devices("SIGHUP")
        finally:  # the rules are re-read whatever happened to the devices
            await self.reload_from_disk("SIGHUP")

    async def reload_devices(self, why: str) -> None:
        """Serve the devices in ``devices.json`` through WireGuard. A damaged store or a busy port is
        logged and journalled, and the computer's own protection keeps running."""
        if self.proxy is None or self.blocker is None:
            return
        try:
            store = await asyncio.to_thread(devmod.load, self.paths)
        except devmod.DeviceError as e:
            log.error("devices: %s; devices are not protected until it is fixed", e)
            self.journal.event("devices", str(e))
            return
        wg = WireGuard(store.host, store.port, store.server_key, store.peers()) if store else None
        self.blocker.devices.clear()  # shared with the device page: updated in place
        self.blocker.devices.update(store.by_address() if store else {})
        names = [d.name for d in store.devices] if store else []
        if self.pinned is not None:
            self.pinned.keep_only(set(names))
        # the devices' history, in the journal: which were served at start, and each one added or
        # removed while the daemon ran (`devices add`/`remove` tell it with SIGHUP)
        if self._served_devices is None:
            if names:
                self.journal.event("devices", "served: " + ", ".join(names))
        else:
            for name in sorted(set(names) - set(self._served_devices)):
                self.journal.event("device added", name)
            for name in sorted(set(self._served_devices) - set(names)):
                self.journal.event("device removed", name)
        self._served_devices = names
        try:
            await self.proxy.set_wireguard(wg)
        except OSError as e:
            log.error("devices: the WireGuard server cannot start (%s); devices are not protected", e)
            self.journal.event("devices", f"WireGuard server not running: {e}")
            await self._publish_devices(None, str(e), names)
            return
        addr = self.proxy.wireguard_addr()
        await self._publish_devices(f"{addr[0]}:{addr[1]}" if addr else None, None, names)
        if addr:
            log.info(
                "%s: devices connect through WireGuard on UDP %s:%d (%s)",
                why,
                addr[0],
                addr[1],
                ", ".join(names),
            )
        self._device_removals = [
            (d.name, dt.datetime.fromisoformat(d.remove_requested))
            for d in (store.devices if store else ())
            if d.remove_requested
        ]
        # the next _after_change wakes the daemon when a removal is due (at start, and on SIGHUP the
        # rules reload that follows), so its trusted time is published then; never a second one
        # running beside it (both would write the same state files)

    async def _publish_devices(self, listening: str | None, error: str | None, names: list[str]) -> None:
        """What the devices get now, for ``doctor`` (``wireguard.json``)."""
        text = json.dumps({"listening": listening, "error": error, "devices": names})
        try:
            await asyncio.to_thread(write_private, self.paths.wireguard, text)
        except OSError as e:  # a full or read-only state dir: the devices are served all the same
            log.warning("devices: cannot write %s: %s", self.paths.wireguard, os_problem(e))

    def request_stop(self) -> None:
        self._stopped.set()

    async def settled(self) -> None:
        """Wait until the work spawned so far (a reload's reconcile, a status write) has finished."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- journal hand-offs ------------------------------------------------------------------------
    def _review_zone(self) -> str:
        """The zone days are counted in: the rules' own, else this machine's (as `stats` does)."""
        rules = self.blocker.enforcement.rules if self.blocker else self.requested
        return rules.settings.timezone or self.opts.timezone

    def _client_closed(self, host: str) -> tuple[str, str] | None:
        enf = self.blocker.enforcement if self.blocker else None
        return enf.matcher.client_closed(host, enf.active) if enf else None

    def _platform_for(self, host: str) -> str | None:
        found = self.blocker.enforcement.matcher.platforms_for(host) if self.blocker else []
        return found[0].name if found else None

    def _record(self, attempt: Attempt) -> None:
        """An attempt from the process watcher (already on the loop): into the journal's queue."""
        if self.opts.demo and attempt.channel == "bypass":
            return  # a demo has nothing to route around
        self.journal.record(attempt)
        if self.today is not None:
            self.today.add()
        if attempt.channel == "app" and attempt.process and attempt.rule:
            action = "suspend" if (attempt.detail or "").startswith("suspended") else "terminate"
            process = re.sub(r" \(\d+\)$", "", attempt.process)  # "whatsapp (4242)": the pid aside
            self._notify(*notify.app_stopped(process, attempt.rule, action))

    def _record_bypass(self, detail: str) -> None:
        """A way around the block was tried (clock moved, service stopped): one attempt, channel bypass."""
        if self.opts.demo:
            return
        self._record(
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
        self.journal.event("tamper", detail)
        self._record_bypass(f"clock: {detail}")

    # -- keeping enforcement current --------------------------------------------------------------
    def _decide(self, previous: Enforcement | None) -> Enforcement:
        """What is in force now: the commitment's decision on the requested rules, then the schedule."""
        assert self.clock is not None and self.commitment is not None
        now = self.clock.now()
        decision = self.commitment.decide(self.requested, now, self.requested_digest)
        return build(
            decision.effective,
            now,
            self.commitment.started,
            previous=previous,
            learned=() if previous else learned_ids(self.paths.journal),
        )

    async def reconcile(self) -> None:
        """Re-decide from the rules and trusted time: catches transitions, due loosenings, clock jumps.

        It runs every 30 s and must never raise: if deciding fails (a bug, or a state value no rule
        can produce), what is in force stays, the problem is logged once and published in
        ``status``, and the next run tries again."""
        assert self.blocker is not None and self.clock is not None
        # the bodies of the last 30 s are freed but still resident (glibc's arenas): give them back
        await asyncio.to_thread(memory.give_back)
        self.clock.check()
        old = self.blocker.enforcement
        try:
            new = self._decide(old)
        except Exception as e:
            self._problem(
                "decide",
                f"cannot re-decide what is in force ({type(e).__name__}: {e}); the last decision stays",
                exc=e,
            )
            await self._after_change(old)
            return
        self._solved("decide")
        self._swap(old, new)
        await self._after_change(new)

    def _problem(self, key: str, text: str, exc: BaseException | None = None) -> None:
        """Something keeps the daemon from doing all of its job: logged once (not every 30 s), and
        listed in ``status`` and ``doctor`` until ``_solved``."""
        if self.problems.get(key) == text:
            return
        self.problems[key] = text
        log.error("%s", text, exc_info=exc)

    def _solved(self, key: str) -> None:
        text = self.problems.pop(key, None)
        if text is not None:
            log.info("resolved: %s", text)

    def _swap(self, old: Enforcement, new: Enforcement) -> None:
        assert self.blocker is not None and self.proxy is not None
        self.blocker.enforcement = new  # one assignment: hooks see the old or the new, never a mix
        if new.matcher.target_hosts() != old.matcher.target_hosts():
            self.proxy.retarget(new.matcher.target_hosts())
            cert = Path(self.runtime.ca) if self.runtime else self.paths.ca_cert
            missing = ca.missing_hosts(cert, new.matcher.target_hosts())
            if missing:
                log.warning(
                    "the CA cannot vouch for %s: run `zerocontact install --refresh` to renew and "
                    "re-trust it (until then browsers refuse those pages)",
                    ", ".join(missing),
                )
        for name in sorted(new.active - old.active):
            log.info("block started: %s", name)
            self.journal.event("block started", name)
            self._notify(*notify.block_started(name))
        for name in sorted(old.active - new.active):
            log.info("block lifted: %s", name)
            self.journal.event("block lifted", name)
            self._notify(*notify.block_lifted(name))

    def _notify(self, title: str, body: str) -> None:
        if self.notifier is not None:
            self.notifier.send(title, body)

    async def _after_change(self, new: Enforcement) -> None:
        """Wake at the next transition, persist state, and publish status (disk work off the loop)."""
        assert self.clock is not None and self.commitment is not None and self.schedule is not None
        pending = self.commitment.decision.pending if self.commitment.decision else ()
        self.uninstall = await asyncio.to_thread(UninstallRequest.read, self.paths.uninstall_request)
        cooling = new.rules.lock.cooling_off
        wake = [
            t
            for t in (
                new.state.next_change,
                *(p.due for p in pending),
                self.uninstall.due(cooling) if self.uninstall else None,
                *(t + cooling for _, t in self._device_removals),  # status shows the trusted time then
            )
            if t is not None
        ]
        if wake:
            self.schedule.wake_in(min(wake) - self.clock.now())
        if self.process_watcher is not None:
            self.process_watcher.update(
                new.apps,
                new.state.apps,
                new.state.people,
                new.matcher.target_hosts(),
                self.proxy_addr[1],
                self.runtime.pac if self.runtime else "",
            )
        await self._publish()

    async def _publish(self) -> None:
        """Persist the commitment and clock and publish the status, off the loop.

        On a full disk or a read-only state directory this must neither raise (it runs in the 30 s
        reconcile) nor leave ``status`` showing an old, healthy-looking status: the problem is
        logged once and listed in the status, and a status that cannot be written is removed, so
        ``status`` and ``doctor`` say that it cannot be published instead of repeating the old one.
        """
        async with self._publishing:  # one at a time: the files share their temporary names
            failed = await asyncio.to_thread(self._persist_state)
            if failed:
                self._problem(
                    "state",
                    f"cannot save its state in {self.paths.state_dir}: {failed}; enforcement goes on, "
                    "and attempts wait in memory for the journal",
                )
            else:
                self._solved("state")
            await asyncio.to_thread(self._write_status, self.status())

    def _save_commitment(self) -> None:
        """The commitment's files, each handed to the journal (and committed there) first."""
        assert self.commitment is not None
        self.commitment.save(keep=self.journal.keep_state, sync=lambda: self.journal.flush(5.0))

    def _persist_state(self) -> str | None:
        """Save the commitment and the clock (each on its own); the first failure, in words."""
        assert self.commitment is not None and self.clock is not None
        failed: str | None = None
        for save in (self._save_commitment, self.clock.save):
            try:
                save()
            except OSError as e:
                failed = failed or os_problem(e)
        return failed

    def _write_status(self, status: Status) -> None:
        try:
            status.write(self.paths.status)
        except OSError as e:
            # a stale status.json would keep saying all is well: remove it (that frees its space
            # on a full disk) and try once more; if even that fails, its absence tells the truth
            with contextlib.suppress(OSError):
                self.paths.status.unlink()
            try:
                status.write(self.paths.status)
            except OSError:
                if self._status_failure != os_problem(e):
                    self._status_failure = os_problem(e)
                    log.error("cannot publish the status: %s", self._status_failure)
                return
        if self._status_failure is not None:
            log.info("the status is published again")
            self._status_failure = None

    def status(self) -> Status:
        assert self.blocker is not None and self.clock is not None and self.commitment is not None
        enf = self.blocker.enforcement
        clock = self.clock.status()
        people = []
        for p in enf.rules.people:
            end = enf.state.ends.get(f"person:{p.name}")
            people.append(
                PersonStatus(
                    name=p.name,
                    active=p.name in enf.active,
                    surfaces=sorted(p.block),
                    platforms=sorted({a.platform for a in p.accounts}),
                    until=end.isoformat() if end else None,
                    windows=[w.text for w in p.schedule.windows],
                )
            )
        apps = [
            AppStatus(name=a.name, active=a.name in enf.state.apps, match=list(a.match), action=a.action)
            for a in enf.rules.apps
        ]
        rt = self.runtime
        return Status(
            pid=os.getpid(),
            proxy=rt.proxy if rt else None,
            pac=rt.pac if rt else None,
            rules=rt.rules if rt else None,
            trusted_time=self.clock.now().isoformat(),
            people=people,
            apps=apps,
            next_transition=enf.state.next_change.isoformat() if enf.state.next_change else None,
            next_change=change_words(enf.rules, enf.state, self.commitment.started),
            pending=[PendingStatus(**p) for p in self.commitment.pending_view()]
            + self._uninstall_view(enf)
            + [
                PendingStatus(
                    change=f"remove the device {name}",
                    key=f"device:{name}",
                    since=t.isoformat(),
                    applies_at=(t + enf.rules.lock.cooling_off).isoformat(),
                )
                for name, t in self._device_removals
            ],
            cooling_off_seconds=enf.rules.lock.cooling_off.total_seconds(),
            last_reload=self.last_reload,
            clock=ClockReport(
                trusted=clock.trusted, skew_seconds=round(clock.skew_seconds, 1), detail=clock.detail
            ),
            journal=JournalReport(error=self.journal.error),
            timezone=self._review_zone(),
            tampering=list(self.commitment.tampering),
            problems=list(self.problems.values()),
            updated=dt.datetime.now(dt.UTC).isoformat(),
            refresh_seconds=RECONCILE_SECONDS,
            running=True,
        )

    def _uninstall_view(self, enf: Enforcement) -> list[PendingStatus]:
        """An uninstall asked for during a block, as the pending loosening it is."""
        u = self.uninstall
        if u is None:
            return []
        return [
            PendingStatus(
                change="uninstall zerocontact" + (" and delete its journal and rules" if u.purge else ""),
                key="uninstall",
                since=u.requested.isoformat(),
                applies_at=u.due(enf.rules.lock.cooling_off).isoformat(),
            )
        ]

    def apply_rules_text(self, data: bytes) -> None:
        """A new rules file (from the watcher or SIGHUP): validate, then commit; runs on the loop."""
        path = self.opts.rules_path
        now = dt.datetime.now(dt.UTC).isoformat()
        try:
            rules = load(data, str(path), default_timezone=self.opts.timezone)
        except RulesError as e:
            self.last_reload = ReloadStatus(ok=False, time=now, detail=f"kept the last good rules:\n{e}")
            log.error("the rules file has problems; the last good rules stay in force:\n%s", e)
            if self.blocker is not None:
                self._spawn(self._after_change(self.blocker.enforcement))
            return
        self.requested = rules
        self.requested_digest = source_digest(data, self.opts.timezone)
        self.last_reload = ReloadStatus(ok=True, time=now, detail=f"reloaded: {rules.summary()}")
        log.info("reloaded %s: %s", path, rules.summary())
        self._spawn(self.reconcile())

    def _unreadable_rules(self, problem: str) -> None:
        """The rules file cannot be read (from the watcher or SIGHUP): the last good rules stay, and
        ``status`` says why."""
        self.last_reload = ReloadStatus(
            ok=False, time=dt.datetime.now(dt.UTC).isoformat(), detail=f"kept the last good rules: {problem}"
        )
        log.error("%s; the last good rules stay in force", problem)
        if self.blocker is not None:
            self._spawn(self._after_change(self.blocker.enforcement))

    async def reload_from_disk(self, why: str) -> None:
        if self.opts.rules_path is None or self.blocker is None:  # nothing to reload into yet
            return
        try:
            data = await asyncio.to_thread(read_rules_file, self.opts.rules_path)
        except RulesFileError as e:  # a FIFO or a device put in its place: refused, never read
            self._unreadable_rules(f"{why}: {e}")
            return
        except OSError as e:
            self._unreadable_rules(f"{why}: cannot read {self.opts.rules_path}: {e.strerror}")
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
        from .journal.forget import forget

        try:
            n = await asyncio.to_thread(forget, self.paths.journal, self.clock.now() - keep)
        except (
            JournalError,
            OSError,
        ) as e:  # a full disk: try again in 6 h (forget turns SQLite errors into JournalError)
            log.warning("retention: %s", e)
            return
        if n:
            log.info("retention: forgot %d attempt(s) older than %s", n, keep)

    def _pac_text(self) -> str:
        assert self.blocker is not None
        return pac(self.blocker.enforcement.matcher.target_hosts(), self.proxy_addr)

    async def _watchdog(self, interval: float) -> None:
        while True:
            sdnotify.notify("WATCHDOG=1")
            await asyncio.sleep(interval)
