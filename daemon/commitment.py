"""The persisted side of commitment: the rules in force, pending loosenings, and when entries began.

The pure decision is ``zerocontact.rules.commit.decide``; this module keeps its inputs across
restarts in the state directory, so stopping the service, editing the file and starting it again
cannot skip a cooling-off.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

from zerocontact.rules import RulesError, Ruleset, load
from zerocontact.rules.commit import Decision, decide
from zerocontact.rules.dump import dump
from zerocontact.rules.policy import entry_key
from zerocontact.rules.schema import App, Person

from .paths import Paths, write_private

log = logging.getLogger("zerocontact.commitment")


def _times(path: Path) -> dict[str, dt.datetime]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {str(k): dt.datetime.fromisoformat(v) for k, v in raw.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


class Commitment:
    def __init__(self, paths: Paths, timezone: str = "UTC") -> None:
        self.in_force_file = paths.in_force
        self.pending_file = paths.pending
        self.started_file = paths.started
        self.in_force: Ruleset | None = None
        if self.in_force_file.exists():
            try:
                self.in_force = load(self.in_force_file.read_bytes(), str(self.in_force_file), timezone)
            except RulesError as e:
                # never silently drop what was in force: the caller treats the file as the baseline
                log.error("cannot read the rules in force (%s); the rules file becomes the baseline", e)
        self.pending = _times(self.pending_file)
        self.started = _times(self.started_file)
        self.decision: Decision | None = None
        self._written: dict[Path, str] = {}  # what each file holds, so a quiet reconcile writes nothing

    def decide(self, requested: Ruleset, now: dt.datetime) -> Decision:
        """Decide at trusted time ``now``; remembers the result (call ``save`` to persist it)."""
        d = decide(self.in_force, requested, self.pending, self.started, now)
        for c in d.released:
            log.warning("the cooling-off has passed: %s", c.text)
        self.in_force = d.effective
        self.pending = {p.change.key: p.since for p in d.pending}
        entries: list[Person | App] = [*d.effective.people, *d.effective.apps]
        live = {entry_key(e) for e in entries}
        for key in live - set(self.started):
            self.started[key] = now
        self.started = {k: v for k, v in self.started.items() if k in live}
        self.decision = d
        return d

    def save(self) -> None:
        """Persist in-force rules, pending changes and start times (call off the event loop)."""
        if self.in_force is None:
            return
        for path, text in (
            (self.in_force_file, dump(self.in_force)),
            (self.pending_file, json.dumps({k: v.isoformat() for k, v in self.pending.items()})),
            (self.started_file, json.dumps({k: v.isoformat() for k, v in self.started.items()})),
        ):
            if self._written.get(path) != text:
                write_private(path, text)
                self._written[path] = text

    def pending_view(self) -> list[dict[str, Any]]:
        if self.decision is None:
            return []
        return [
            {
                "change": p.change.text,
                "key": p.change.key,
                "since": p.since.isoformat(),
                "applies_at": p.due.isoformat(),
            }
            for p in self.decision.pending
        ]
