"""The persisted side of commitment: the rules in force, pending loosenings, and when entries began.

The pure decision is ``zerocontact.rules.commit.decide``; this module keeps its inputs across
restarts in the state directory, so stopping the service, editing the file and starting it again
cannot skip a cooling-off.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zerocontact.rules
from zerocontact.rules import RulesError, Ruleset, evaluate, load
from zerocontact.rules.commit import Decision, decide
from zerocontact.rules.dump import dump
from zerocontact.rules.policy import entry_key
from zerocontact.rules.schema import App, Person

from .paths import Paths, write_private

log = logging.getLogger("zerocontact.commitment")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None


def _times(text: str | None) -> dict[str, dt.datetime]:
    try:
        raw = json.loads(text or "{}")
        return {str(k): dt.datetime.fromisoformat(v) for k, v in raw.items()}
    except (ValueError, TypeError, AttributeError):
        return {}


# The second line of an in-force copy written while it held exactly the rules file's rules: which
# file bytes (read with which code and default time zone) it was dumped from. See ``source_digest``.
_SOURCE = "# dumped from the rules file with digest "


@functools.cache
def _code_fingerprint() -> bytes:
    """A digest of the rules package's own files (its code and platform presets, ~1 ms to read):
    the same bytes read by other code may mean other rules, so a digest never outlives an upgrade."""
    h = hashlib.sha256()
    for folder in zerocontact.rules.__path__:
        for f in sorted(Path(folder).rglob("*")):
            if f.is_file() and f.suffix in (".py", ".toml", ".json") and "__pycache__" not in f.parts:
                h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.digest()


def source_digest(data: bytes, timezone: str) -> str:
    """What identifies the rules a file's bytes load to: the bytes, the default time zone they are
    read in and the code reading them. An in-force copy carrying the digest of the file's bytes
    holds exactly the file's rules, so the start takes them without dumping 10,000 people to compare
    (``Commitment``); the copy is trusted no more than its text is (the journal's copy wins)."""
    h = hashlib.sha256(_code_fingerprint())
    h.update(timezone.encode() + b"\0")
    h.update(data)
    return h.hexdigest()


def _split_source(text: str) -> tuple[str | None, str]:
    """(the digest on an in-force copy's second line or None, the copy without that line)."""
    first, sep, rest = text.partition("\n")
    if not rest.startswith(_SOURCE):
        return None, text
    line, _, body = rest.partition("\n")
    return line[len(_SOURCE) :].strip() or None, first + sep + body


def _with_source(body: str, digest: str | None) -> str:
    if digest is None:
        return body
    first, _, rest = body.partition("\n")
    return f"{first}\n{_SOURCE}{digest}\n{rest}"


class Commitment:
    """What is in force, what is pending and when each block started, kept in three state files and
    in the journal (the durable, integrity-checked store). At start the journal's copy wins over a
    file that is missing, edited or older, and each such difference is reported in ``tampering``:
    deleting the state files while the daemon is stopped no longer lifts a block."""

    def __init__(
        self,
        paths: Paths,
        timezone: str = "UTC",
        *,
        kept: Mapping[str, str] | None = None,
        journal_is_new: bool = False,
        requested: Ruleset | None = None,
        requested_digest: str | None = None,
    ) -> None:
        self.in_force_file = paths.in_force
        self.pending_file = paths.pending
        self.started_file = paths.started
        self.tampering: list[str] = []
        texts, on_disk = self._reconcile(kept or {}, journal_is_new)
        self.in_force: Ruleset | None = None
        # rules whose dump is known, with it, so that saving rules that did not change dumps nothing
        # (a dump of 10,000 people takes ~0.07 s)
        self._dumps: list[tuple[Ruleset, str]] = []
        # the rules file's rules and the ``source_digest`` of its bytes (None: not known)
        self._requested = requested
        self._requested_digest = requested_digest if requested is not None else None
        text = texts[self.in_force_file]
        claimed, body = _split_source(text) if text is not None else (None, None)
        if requested is not None and body is not None and claimed is not None and claimed == requested_digest:
            # The copy in force was dumped from these very bytes, read by this code in this zone:
            # it is exactly the file's rules, taken as they are without parsing or dumping 10,000
            # people again. The digest is trusted as far as the text it sits in: a copy edited while
            # the daemon was stopped loses to the journal's (``_reconcile``), and without a journal
            # whoever can write the copy could as well write the rules it names.
            self.in_force = dataclasses.replace(requested, source=str(self.in_force_file), notes=())
            self._dumps.append((requested, body))
        else:
            canonical = dump(requested) if body is not None and requested is not None else None
            if requested is not None and canonical is not None:
                self._dumps.append((requested, canonical))
            if requested is not None and body is not None and body == canonical:
                # The text in force is exactly what the file's rules dump to, so it reads back as
                # those rules (dump then load is an identity: tests/rules/test_dump.py): they are
                # taken as they are instead of parsing the same 10,000 people a second time. Comparing
                # computed texts trusts nothing new: a file loosened while the daemon was stopped
                # dumps to another text and takes the path below, with every cooling-off.
                self.in_force = dataclasses.replace(requested, source=str(self.in_force_file), notes=())
            elif text is not None and body is not None:
                try:
                    self.in_force = load(text, str(self.in_force_file), timezone)
                    self._dumps.append((self.in_force, body))
                except RulesError as e:
                    # never silently drop what was in force: the caller treats the file as the baseline
                    log.error("cannot read the rules in force (%s); the rules file becomes the baseline", e)
        self.pending = _times(texts[self.pending_file])
        self.started = _times(texts[self.started_file])
        self.decision: Decision | None = None
        # what each file (and the journal) holds, so a quiet reconcile writes nothing; a restored
        # file is missing here, so the next save writes it back
        self._written: dict[Path, str] = {p: t for p, t in texts.items() if t is not None and t == on_disk[p]}

    def _reconcile(
        self, kept: Mapping[str, str], journal_is_new: bool
    ) -> tuple[dict[Path, str | None], dict[Path, str | None]]:
        """Each state file's text (the journal's copy where the file lacks it or differs), and what
        each file held (read once: the in-force copy of 10,000 people is ~3 MB)."""
        out: dict[Path, str | None] = {}
        disk: dict[Path, str | None] = {}
        for path in (self.in_force_file, self.pending_file, self.started_file):
            on_disk, copy = _read(path), kept.get(path.name)
            disk[path] = on_disk
            if copy is not None and on_disk != copy:
                how = "missing" if on_disk is None else "changed"
                self.tampering.append(
                    f"{path.name} was {how} while the daemon was stopped; the journal's copy is in force"
                )
                out[path] = copy
            else:
                out[path] = on_disk
        if journal_is_new and not kept and out[self.in_force_file] is not None:
            self.tampering.append(
                "the journal was removed or replaced while the daemon was stopped (the rules in force "
                "remain; the attempts logged before are gone from it)"
            )
        return out, disk

    def decide(self, requested: Ruleset, now: dt.datetime, digest: str | None = None) -> Decision:
        """Decide at trusted time ``now``; remembers the result (call ``save`` to persist it).
        ``digest``: the ``source_digest`` of the bytes ``requested`` was read from, if known."""
        self._requested, self._requested_digest = requested, digest
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

    def save(
        self, keep: Callable[[str, str], None] | None = None, sync: Callable[[], object] | None = None
    ) -> None:
        """Persist in-force rules, pending changes and start times (call off the event loop).

        ``keep(name, text)`` hands each changed file's text to the journal and ``sync`` waits until
        it is committed, before the file is written: the journal's copy is never older than the file."""
        if self.in_force is None:
            return
        in_force = self.in_force
        body = next((t for r, t in self._dumps if _same_rules(r, in_force)), None)
        if body is None:
            body = dump(in_force)
            self._dumps = [(in_force, body)]
        # the digest of the file's bytes only on a copy that holds exactly the file's rules
        same = self._requested is not None and _same_rules(self._requested, in_force)
        rules_text = _with_source(body, self._requested_digest if same else None)
        changed = [
            (path, text)
            for path, text in (
                (self.in_force_file, rules_text),
                (self.pending_file, json.dumps({k: v.isoformat() for k, v in self.pending.items()})),
                (self.started_file, json.dumps({k: v.isoformat() for k, v in self.started.items()})),
            )
            if self._written.get(path) != text
        ]
        if not changed:
            return
        if keep is not None:
            for path, text in changed:
                keep(path.name, text)
            if sync is not None:
                sync()
        for path, text in changed:
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


@dataclass(frozen=True, slots=True)
class UninstallRequest:
    """``zerocontact uninstall`` asked during a block: it runs once the cooling-off has passed."""

    requested: dt.datetime
    purge: bool

    def due(self, cooling_off: dt.timedelta) -> dt.datetime:
        return self.requested + cooling_off

    def write(self, path: Path) -> None:
        write_private(path, json.dumps({"requested": self.requested.isoformat(), "purge": self.purge}))

    @classmethod
    def read(cls, path: Path) -> UninstallRequest | None:
        """The request, or None when there is none; a damaged file counts as asked now (never sooner)."""
        text = _read(path)
        if text is None:
            return None
        try:
            d = json.loads(text)
            t = dt.datetime.fromisoformat(d["requested"])
            return cls(t if t.tzinfo else t.replace(tzinfo=dt.UTC), bool(d.get("purge")))
        except (ValueError, KeyError, TypeError, AttributeError):
            return cls(dt.datetime.now(dt.UTC), True)


def lock_in_force(paths: Paths, now: dt.datetime, timezone: str = "UTC") -> dt.timedelta | None:
    """The cooling-off that holds a loosening back now: the rules in force (restored from the journal
    as the daemon would) while one of their blocks is active; None when nothing is held."""
    from .journal.reader import kept_state

    c = Commitment(paths, timezone, kept=kept_state(paths.journal))
    if c.in_force is None or c.in_force.lock.cooling_off <= dt.timedelta(0):
        return None
    state = evaluate(c.in_force, now, c.started)
    return c.in_force.lock.cooling_off if state.people or state.apps else None


def _same_rules(a: Ruleset, b: Ruleset) -> bool:
    """Would ``dump`` write the same text for both? Every field but where the rules were read from
    and the loader's notes on them (which ``dump`` does not write)."""
    return a is b or all(
        getattr(a, f.name) == getattr(b, f.name)
        for f in dataclasses.fields(a)
        if f.name not in ("source", "notes")
    )
