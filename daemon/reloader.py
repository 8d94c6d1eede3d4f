"""Hot reload: notice every save of the rules file and hand its new bytes to the asyncio loop.

Editors save in three ways (write in place; write a temporary file and rename it over; delete and
recreate), so the watcher watches the file's *directory*, waits for a burst of events to settle, and
compares contents: only bytes that differ from the last ones handed over are delivered. A missing
file is never delivered (deleting the rules must not weaken anything); it is reported separately.

Threads: watchdog's observer thread only records that something happened; one settle thread of our
own debounces, reads and hashes the file (so a slow or network filesystem never stalls the proxy's
loop) and polls as a fallback for lost events; the callbacks run on the loop, scheduled with
``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    DirDeletedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from .rulesfile import RulesFileError, read_with_stat

log = logging.getLogger("zerocontact")

DEBOUNCE_SECONDS = 0.2  # quiet time after the last event; an editor's burst takes milliseconds
POLL_SECONDS = 30.0  # fallback when inotify events are lost (watch limits, network filesystems)
MAX_SYMLINK_HOPS = 40  # the kernel's own limit for a chain of links

# Events that can mean new content. Opens and no-write closes are left out on purpose: reading the
# file ourselves produces them, and listening would make every check trigger the next one.
# Attribute changes (touch, chmod) cannot change the content either. DirDeletedEvent is kept for
# a watched directory disappearing (its watch dies; the next check re-arms it).
EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    DirDeletedEvent,
]


def digest(data: bytes) -> str:
    """The content hash the watcher compares (SHA-256, hex)."""
    return hashlib.sha256(data).hexdigest()


def name_chain(path: str) -> list[str]:
    """Every name that leads to the rules file, each with its directory resolved: the path itself,
    then, while the entry is a symlink, its target (relative targets count from the link's folder).

    Events name files by their watched directory, so these are the names to compare them with; a
    dangling link's target is included so that the target's creation is noticed too.
    """
    out: list[str] = []
    p = path
    for _ in range(MAX_SYMLINK_HOPS):
        entry = os.path.join(os.path.realpath(os.path.dirname(p)), os.path.basename(p))
        if entry in out:
            break  # a link loop: the names so far are all there is to watch
        out.append(entry)
        try:
            target = os.readlink(entry)
        except OSError:  # not a link (or not there): the chain ends here
            break
        p = os.path.join(os.path.dirname(entry), target)
    return out


def _read(path: str) -> tuple[bytes, float] | None:
    """The file's bytes and modification time, or None if it (or a folder on the way, or a link's
    target) is missing. Only a regular file of at most ``rulesfile.MAX_BYTES`` is read: anything
    else raises ``RulesFileError`` (a FIFO would otherwise block this thread, and hot reload with
    it, for good; ``/dev/zero`` would fill memory)."""
    try:
        data, st = read_with_stat(Path(path))
    except (FileNotFoundError, NotADirectoryError):
        return None
    return data, st.st_mtime


def _dir_identity(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


class _Handler(FileSystemEventHandler):
    """Forwards every watchdog event (on the observer thread) to the watcher's filter."""

    def __init__(self, watcher: RulesFileWatcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._watcher._on_fs_event(event)


class RulesFileWatcher:
    """Delivers the rules file's new bytes to ``on_change`` on ``loop`` within a second of a save.

    ``on_change(data)`` runs on the loop, once per settled change whose content differs from the
    last bytes handed over (the ``initial`` bytes, or the file as it was at ``start()``); touches,
    chmods and saves of identical text deliver nothing. ``on_missing()`` runs on the loop once each
    time the file disappears and stays gone past the debounce; nothing else happens until it is back.
    ``on_error(problem)`` runs on the loop once each time the file cannot be read (a FIFO, a device,
    over the size bound, permission denied); the watcher keeps checking, and the next readable
    content is delivered even if it equals the last bytes handed over.

    Pass ``initial`` (the bytes the daemon actually loaded) so that an edit made between loading
    and ``start()`` is still delivered: the first check runs one debounce after ``start()``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        loop: asyncio.AbstractEventLoop,
        on_change: Callable[[bytes], None],
        on_missing: Callable[[], None] | None = None,
        *,
        on_error: Callable[[str], None] | None = None,
        initial: bytes | None = None,
        debounce: float = DEBOUNCE_SECONDS,
        poll_interval: float = POLL_SECONDS,
    ) -> None:
        p = os.fspath(path)
        # Absolute but not resolved: a symlinked rules file stays a link, so retargeting it is seen.
        self.path = p if os.path.isabs(p) else os.path.join(os.getcwd(), p)
        self._loop = loop
        self._on_change = on_change
        self._on_missing = on_missing
        self._on_error = on_error
        self._problem: str | None = None  # why the file could not be read, until it can again
        self._redeliver = False  # after a problem: deliver the next good read even if unchanged
        self._initial = initial
        self._debounce = debounce
        self._poll_interval = poll_interval

        self._cond = threading.Condition()  # guards _due, _stopping; wakes the settle thread
        self._due: float | None = None  # monotonic time of the next check after events settle
        self._stopping = False
        self._started = False
        self._stopped = False

        self._state_lock = threading.Lock()  # guards _content/_hash (read by current()/last_hash)
        self._content: bytes | None = None
        self._hash: str | None = None
        self._present = True  # so a file already missing at start is reported once

        self._watch_lock = threading.Lock()  # start() and the settle thread both (re)arm watches
        # Replaced whole, never mutated: the observer thread reads them without a lock.
        self._names: frozenset[str] = frozenset()
        self._dirs: frozenset[str] = frozenset()
        self._watches: dict[str, tuple[ObservedWatch, tuple[int, int]]] = {}
        self._observer: BaseObserver | None = None
        self._handler = _Handler(self)
        self._thread: threading.Thread | None = None

    # -- public -----------------------------------------------------------------------------------
    @property
    def last_hash(self) -> str | None:
        """SHA-256 (hex) of the last content handed to the loop (or the baseline); None if none yet."""
        with self._state_lock:
            return self._hash

    def current(self) -> bytes | None:
        """The last content handed to the loop (or the baseline); None if the file never existed."""
        with self._state_lock:
            return self._content

    def start(self) -> None:
        """Set the baseline, arm the directory watches and start the settle thread.

        When this returns the watches are in place, so any later save is seen. Without ``initial``
        the baseline is read here, on the caller's thread: one small read, once.
        """
        if self._started:
            raise RuntimeError("RulesFileWatcher.start() called twice")
        self._started = True
        if self._initial is not None:
            baseline: bytes | None = self._initial
        else:
            try:
                got = _read(self.path)
            except (RulesFileError, OSError):
                got = None  # reported by the first check, one debounce from now
            baseline = got[0] if got is not None else None
        with self._state_lock:
            self._content = baseline
            self._hash = digest(baseline) if baseline is not None else None
        observer = Observer()
        observer.daemon = True
        observer.start()  # before scheduling: a directory that cannot be watched must not stop it
        self._observer = observer
        self._rearm()
        with self._cond:
            # A first check soon: it catches edits made before the baseline was taken. Not at once,
            # so that a save already under way settles first.
            self._due = time.monotonic() + self._debounce
        self._thread = threading.Thread(target=self._run, name="zerocontact-rules-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop both threads and wait for them (well under a second); callbacks not yet run are
        dropped. Safe to call twice, and before ``start()``."""
        if self._stopped:
            return
        self._stopped = True
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5.0)

    # -- observer thread --------------------------------------------------------------------------
    def _on_fs_event(self, event: FileSystemEvent) -> None:
        """Note an event that touches one of the rules file's names (or kills a watch); ignore the
        rest of the directory (other files, vim's 4913 probe and backup~ when they are not ours)."""
        names = self._names
        paths = {os.fsdecode(event.src_path)}
        if event.dest_path:
            paths.add(os.fsdecode(event.dest_path))
        ours = not paths.isdisjoint(names)
        if not ours and event.is_directory:
            ours = os.fsdecode(event.src_path) in self._dirs  # a watched folder went away
        if not ours:
            return
        with self._cond:
            self._due = time.monotonic() + self._debounce  # every event restarts the quiet time
            self._cond.notify()

    # -- settle thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        """Wait for events to settle (or the poll interval to pass), then check; until stopped.

        A dedicated thread rather than ``loop.call_later``: the read must not run on the loop
        (a network filesystem can hang), and one Condition gives both the debounce and the poll
        without creating a Timer thread per event.
        """
        next_poll = time.monotonic() + self._poll_interval
        while True:
            with self._cond:
                while not self._stopping:
                    now = time.monotonic()
                    wake = next_poll if self._due is None else min(self._due, next_poll)
                    if now >= wake:
                        break
                    self._cond.wait(wake - now)
                if self._stopping:
                    return
                self._due = None
            try:
                self._check()
            except Exception:  # a bug here must not end hot reload for the daemon's lifetime
                log.exception("rules watcher: checking %s failed", self.path)
            next_poll = time.monotonic() + self._poll_interval

    def _check(self) -> None:
        """Re-arm the watches if needed, read the file, and hand over bytes that are new.

        Bytes are handed over only once they have settled: if an event arrived while reading, or the
        file was modified less than a debounce ago (a poll landing between an editor's truncate and
        write), the read is discarded and the file checked again when quiet. This keeps a truncated,
        half-written file from ever being delivered.
        """
        self._rearm()
        got: tuple[bytes, float] | None = None
        problem: str | None = None
        try:
            got = _read(self.path)
        except RulesFileError as e:
            problem = str(e)
        except OSError as e:
            problem = f"cannot read {self.path}: {e.strerror or e}"
        with self._cond:
            if self._due is not None:
                return  # an event came in during the read: its own check follows
            if got is not None:
                age = time.time() - got[1]
                if 0 <= age < self._debounce:
                    self._due = time.monotonic() + self._debounce - age
                    return
        if problem is not None:
            self._unreadable(problem)
            return
        self._problem = None
        if got is None:
            if self._present:
                self._present = False
                log.warning("rules file %s is missing; the current rules stay in force", self.path)
                if self._on_missing is not None:
                    self._post(self._deliver_missing)
            return
        data = got[0]
        self._present = True
        h = digest(data)
        with self._state_lock:
            if h == self._hash and not self._redeliver:
                return
            self._redeliver = False
            self._content, self._hash = data, h
        log.info("rules file %s changed", self.path)
        self._post(self._deliver_change, data)

    def _unreadable(self, problem: str) -> None:
        """Report a file that cannot be read, once per distinct problem. The daemon has been told its
        rules file is bad, so the next good content is delivered even if it is the same bytes as
        before: that is what clears the report."""
        self._redeliver = True
        if problem == self._problem:
            return
        self._problem = problem
        if self._on_error is not None:
            self._post(self._deliver_error, problem)
        else:
            log.error("rules watcher: %s", problem)

    def _rearm(self) -> None:
        """Watch the folder of every name in the symlink chain; replace watches whose folder was
        deleted or swapped for another (a re-checkout of a dotfiles repo); drop ones no longer needed.
        A folder that cannot be watched now is retried at the next check (the poll guarantees one)."""
        observer = self._observer
        if observer is None:
            return
        with self._watch_lock:
            names = name_chain(self.path)
            self._names = frozenset(names)
            wanted = {os.path.dirname(n) for n in names}
            alive = {e.watch for e in list(observer.emitters) if e.is_alive()}
            for folder, (watch, ident) in list(self._watches.items()):
                try:
                    same = folder in wanted and watch in alive and _dir_identity(folder) == ident
                except OSError:
                    same = False
                if not same:
                    with contextlib.suppress(KeyError, RuntimeError):
                        observer.unschedule(watch)
                    del self._watches[folder]
            for folder in sorted(wanted - self._watches.keys()):
                try:
                    ident = _dir_identity(folder)
                    watch = observer.schedule(self._handler, folder, event_filter=EVENT_FILTER)
                except OSError as e:
                    log.debug("rules watcher: cannot watch %s yet: %s", folder, e)
                    continue
                self._watches[folder] = (watch, ident)
            self._dirs = frozenset(self._watches)

    def _post[*Ts](self, fn: Callable[[*Ts], None], *args: *Ts) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the daemon is gone
            self._loop.call_soon_threadsafe(fn, *args)

    # -- loop thread ------------------------------------------------------------------------------
    def _deliver_change(self, data: bytes) -> None:
        if self._stopped:
            return
        try:
            self._on_change(data)
        except Exception:
            log.exception("applying the changed rules file %s failed", self.path)

    def _deliver_error(self, problem: str) -> None:
        if self._stopped or self._on_error is None:
            return
        try:
            self._on_error(problem)
        except Exception:
            log.exception("handling the unreadable rules file %s failed", self.path)

    def _deliver_missing(self) -> None:
        if self._stopped or self._on_missing is None:
            return
        try:
            self._on_missing()
        except Exception:
            log.exception("handling the missing rules file %s failed", self.path)
