"""The daemon's published status: a typed record written by the daemon (``status.json``) and read by
``zerocontact status``, ``reload`` and ``doctor``, so every reader sees the same fields and defaults.

``daemon.json`` (``Runtime``) says where a live daemon listens; ``status.json`` (``Status``) what it
enforces. Both are written private (0600) off the event loop.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zerocontact.rules import Ruleset
from zerocontact.rules.policy import State, evaluate

from .paths import MANIFEST, Paths, resolve, system_mode, system_paths, user_paths, write_private


@dataclass(frozen=True, slots=True)
class Runtime:
    """Where the running daemon listens and what it runs on (``daemon.json``)."""

    pid: int
    proxy: str
    pac: str
    ca: str
    rules: str
    started: str

    def write(self, path: Path) -> None:
        write_private(path, json.dumps(dataclasses.asdict(self), indent=2))

    @classmethod
    def read(cls, path: Path) -> Runtime | None:
        """The runtime record, or None when missing, unreadable or not in this shape."""
        data = _read_object(path)
        try:
            return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)}) if data else None
        except (KeyError, TypeError):
            return None

    def alive(self) -> bool:
        """Whether the process that wrote this record is still running.

        psutil, not ``os.kill(pid, 0)``: on Windows that call terminates the process."""
        import psutil

        try:
            return bool(psutil.pid_exists(int(self.pid)))
        except (OSError, ValueError, TypeError):
            return False


@dataclass(frozen=True, slots=True)
class PersonStatus:
    name: str
    active: bool
    surfaces: list[str]
    platforms: list[str]
    until: str | None
    windows: list[str]


@dataclass(frozen=True, slots=True)
class AppStatus:
    name: str
    active: bool
    match: list[str]
    action: str


@dataclass(frozen=True, slots=True)
class PendingStatus:
    change: str
    key: str
    since: str
    applies_at: str


@dataclass(frozen=True, slots=True)
class ReloadStatus:
    ok: bool = True
    time: str | None = None
    detail: str = "loaded at start"


@dataclass(frozen=True, slots=True)
class ClockReport:
    trusted: bool = True
    skew_seconds: float = 0.0
    detail: str = "-"


@dataclass(frozen=True, slots=True)
class JournalReport:
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Status:
    """What the daemon enforces now; ``running`` is filled in by the reader from ``daemon.json``."""

    pid: int | None = None
    proxy: str | None = None
    pac: str | None = None
    rules: str | None = None
    trusted_time: str | None = None
    people: list[PersonStatus] = field(default_factory=list)
    apps: list[AppStatus] = field(default_factory=list)
    next_transition: str | None = None
    next_change: str | None = None  # what happens at next_transition, in words ("the block on Sam lifts")
    pending: list[PendingStatus] = field(default_factory=list)
    cooling_off_seconds: float = 0.0
    last_reload: ReloadStatus = field(default_factory=ReloadStatus)
    clock: ClockReport = field(default_factory=ClockReport)
    journal: JournalReport = field(default_factory=JournalReport)
    timezone: str | None = None  # the zone days are counted in (the block page's "today", stats)
    tampering: list[str] = field(default_factory=list)  # state found changed at start, and restored
    problems: list[str] = field(default_factory=list)  # what keeps the daemon from its whole job
    updated: str | None = None  # when the daemon wrote this (system clock, UTC)
    refresh_seconds: float = 30.0  # the daemon rewrites it at least this often while it can
    running: bool = False

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def stale_for(self, now: dt.datetime) -> float | None:
        """Seconds since this should have been rewritten (three refreshes missed), or None while it
        is current: a running daemon that cannot write its state directory leaves an old status."""
        if not self.updated:
            return None
        try:
            age = (now - dt.datetime.fromisoformat(self.updated)).total_seconds()
        except (ValueError, TypeError):
            return None
        return age if age > 3 * self.refresh_seconds else None

    def write(self, path: Path) -> None:
        write_private(path, json.dumps(self.as_json(), indent=2))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Status:
        """Rebuild from ``as_json`` output; unknown keys are ignored and missing ones take defaults,
        so a status written by an older daemon still reads."""

        def part[T](kind: type[T], value: Any) -> T:
            if not isinstance(value, dict):
                return kind()
            names = {f.name for f in dataclasses.fields(kind)}  # type: ignore[arg-type]
            return kind(**{k: v for k, v in value.items() if k in names})

        def parts[T](kind: type[T], value: Any) -> list[T]:
            return [part(kind, v) for v in value] if isinstance(value, list) else []

        simple = {f.name for f in dataclasses.fields(cls)} - {
            "people",
            "apps",
            "pending",
            "last_reload",
            "clock",
            "journal",
        }
        return cls(
            **{k: v for k, v in data.items() if k in simple},
            people=parts(PersonStatus, data.get("people")),
            apps=parts(AppStatus, data.get("apps")),
            pending=parts(PendingStatus, data.get("pending")),
            last_reload=part(ReloadStatus, data.get("last_reload")),
            clock=part(ClockReport, data.get("clock")),
            journal=part(JournalReport, data.get("journal")),
        )

    @classmethod
    def read(cls, path: Path) -> Status | None:
        """The last status the daemon published, or None when there is none (or it is unreadable)."""
        data = _read_object(path)
        if data is None:
            return None
        try:
            return cls.from_json(data)
        except TypeError:
            return None


def _read_object(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True, slots=True)
class Located:
    """The installation a command talks to: its folders, its mode, and how it was found."""

    paths: Paths
    mode: str  # "user" or "system"
    how: str  # "given", "running", "installed" or "default"


def _installed(p: Paths) -> bool:
    data = _read_object(p.state_dir / MANIFEST)
    return bool(data and data.get("installed"))


def locate(state_dir: str | Path | None = None) -> Located:
    """Find the installation ``status``, ``reload`` and ``doctor`` report on, the same way for all:
    a state folder given (``--state-dir``, ``ZEROCONTACT_STATE_DIR``) is used as it is; otherwise the
    one whose daemon is running, else the one installed as a service, else this mode's default.
    The user's folders are looked at before the system's unless this process runs in system mode,
    so root with a daemon of its own (``zerocontact run``) is not sent to an absent system install."""
    if state_dir is not None or os.environ.get("ZEROCONTACT_STATE_DIR"):
        return Located(resolve(state_dir), "system" if system_mode() else "user", "given")
    system, user = ("system", system_paths()), ("user", user_paths())
    order = [system, user] if system_mode() else [user, system]
    for mode, p in order:
        rt = Runtime.read(p.runtime)
        if rt is not None and rt.alive():
            return Located(p, mode, "running")
    for mode, p in order:
        if _installed(p):
            return Located(p, mode, "installed")
    mode, p = order[0]
    return Located(p, mode, "default")


def change_words(rules: Ruleset, state: State, started: Mapping[str, dt.datetime]) -> str | None:
    """What happens at ``state.next_change``, as a person says it: 'the block on Sam lifts'."""
    if state.next_change is None:
        return None
    after = evaluate(rules, state.next_change, started)
    words = [f"the block on {n} starts" for n in sorted(after.people - state.people)]
    words += [f"the block on {n} lifts" for n in sorted(state.people - after.people)]
    words += [f"the app rule {n!r} starts" for n in sorted(after.apps - state.apps)]
    words += [f"the app rule {n!r} ends" for n in sorted(state.apps - after.apps)]
    return "; ".join(words) or None
