"""The installer's primitives: each change it makes is one small op that records how to undo itself.

A ``Step`` (one mechanism: a service unit, a trust store, a browser policy…) is a list of ops. Its
``plan()`` is the ops' descriptions; ``apply()`` runs them inside a ``Tx``, which appends a record to
the manifest for every change (a file with the backup of what it replaced, a directory it created, a
command with the command that undoes it, a setting with its previous value). ``uninstall`` replays
the manifest backwards, so it reverts exactly what was done, and nothing else:

* install twice: every op first looks at the current state and does nothing when it already holds;
  an existing record keeps the state from *before the first* install (what uninstall must restore);
* a failure half-way: the run's own changes are undone (newest first) and the manifest is restored;
* uninstall twice: the second finds no records and says so.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import functools
import hashlib
import json
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from .context import CommandError, Completed, Context, InstallError, Runner

Record = dict[str, Any]  # JSON-serialisable; always has "key", "kind", "step", "keep"
Content = bytes | Callable[[], bytes]
MANIFEST_VERSION = 1


def sha256(data: bytes) -> str:
    """Hex SHA-256, to tell later whether a written file was changed."""
    return hashlib.sha256(data).hexdigest()


def atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` in one rename, created with ``mode`` (never briefly wider)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    os.chmod(path, mode)  # os.replace keeps the temp file's mode; be explicit anyway


# -- the manifest --------------------------------------------------------------------------------------
@dataclass
class Manifest:
    """What an installation did, in order, kept in the state directory (``install.json``, 0600)."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = {}
        except PermissionError:
            raise InstallError(f"{path} is readable only by root: run this with sudo") from None
        except (OSError, ValueError) as e:
            raise InstallError(f"cannot read the install manifest {path}: {e}") from None
        if data and data.get("version") != MANIFEST_VERSION:
            raise InstallError(f"{path} was written by another zerocontact version; remove it by hand")
        data.setdefault("version", MANIFEST_VERSION)
        data.setdefault("records", [])
        return cls(path, data)

    @property
    def records(self) -> list[Record]:
        records: list[Record] = self.data["records"]
        return records

    @property
    def exists(self) -> bool:
        return self.path.exists()

    def find(self, key: str) -> Record | None:
        return next((r for r in self.records if r["key"] == key), None)

    def add(self, record: Record) -> Record:
        """Append ``record`` unless its key is known: then the first (pre-install) record stays."""
        old = self.find(record["key"])
        if old is not None:
            for k in ("sha256", "mode"):  # what we wrote last, for doctor; the backup stays
                if k in record:
                    old[k] = record[k]
            return old
        self.records.append(record)
        return record

    def remove(self, key: str) -> None:
        self.data["records"] = [r for r in self.records if r["key"] != key]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.data, indent=2, sort_keys=False) + "\n"
        atomic_write(self.path, text.encode(), 0o600)

    @property
    def backups(self) -> Path:
        return self.path.parent / "install-backup"


# -- reverting one record ------------------------------------------------------------------------------
@dataclass
class Reverter:
    """Undoes records (uninstall, or a failed run's own changes); tolerant of what is already gone."""

    runner: Runner
    say: Callable[[str], None]
    env: Mapping[str, str]

    def _env(self, rec: Record) -> dict[str, str]:
        return {**self.env, **rec.get("env", {})}

    def revert(self, rec: Record) -> None:
        kind = rec["kind"]
        getattr(self, f"_revert_{kind.replace('-', '_')}")(rec)

    def _revert_dir(self, rec: Record) -> None:
        p = Path(rec["path"])
        try:
            p.rmdir()
            self.say(f"removed {p}/")
        except FileNotFoundError:
            pass
        except OSError:
            self.say(f"kept {p}/ (not empty: it holds files zerocontact did not put there)")

    def _revert_file(self, rec: Record) -> None:
        p = Path(rec["path"])
        backup = rec.get("backup")
        if backup:
            data = Path(backup).read_bytes()
            atomic_write(p, data, rec["backup_mode"])
            Path(backup).unlink(missing_ok=True)
            self.say(f"restored {p}")
        elif p.is_symlink() or p.exists():
            p.unlink()
            self.say(f"removed {p}")

    def _revert_cmd(self, rec: Record) -> None:
        argv = rec["revert"]
        r = self.runner.run(argv, env=self._env(rec), check=False)
        if r.returncode == 0:
            self.say(f"ran {' '.join(argv)}")
        else:  # already undone by hand, or the tool is gone: say so and go on with the rest
            self.say(f"ran {' '.join(argv)} (exit {r.returncode}; it may have been undone already)")

    def _revert_gsetting(self, rec: Record) -> None:
        schema, key = rec["schema"], rec["gkey"]
        if rec["was_default"]:
            argv = ["gsettings", "reset", schema, key]
        else:
            argv = ["gsettings", "set", schema, key, rec["previous"]]
        self.runner.run(argv, env=self._env(rec), check=False)
        self.say(f"ran {' '.join(argv)}")

    def _revert_created_if_empty(self, rec: Record) -> None:
        """A settings file zerocontact created: removed once it holds no values again."""
        p = Path(rec["path"])
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        if not any("=" in ln and not ln.lstrip().startswith(("#", ";")) for ln in text.splitlines()):
            p.unlink()
            self.say(f"removed {p} (it held only zerocontact's settings)")

    def _revert_ini(self, rec: Record) -> None:
        p = Path(rec["path"])
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        atomic_write(p, ini_set(text, rec["group"], rec["ikey"], rec["previous"]).encode(), rec["mode"])
        self.say(f"restored [{rec['group']}] {rec['ikey']} in {p}")

    def _revert_json(self, rec: Record) -> None:
        p = Path(rec["path"])
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return
        json_set(doc, rec["keypath"], rec.get("previous"), present=rec["had"])
        original = rec.get("original")
        if rec.get("created") and json_empty(doc):
            p.unlink()
            self.say(f"removed {p} (it held only zerocontact's settings)")
        elif original is not None and _same_json(original, doc):
            atomic_write(p, original.encode("utf-8"), rec["mode"])
            self.say(f"restored {p}")
        else:
            atomic_write(p, (json.dumps(doc, indent=2) + "\n").encode(), rec["mode"])
            self.say(f"restored {'.'.join(rec['keypath'])} in {p}")

    def _revert_nssdb(self, rec: Record) -> None:
        """An NSS database zerocontact created: removed when it holds no certificates or keys."""
        db = Path(rec["path"])
        r = self.runner.run(["certutil", "-L", "-d", f"sql:{db}"], env=self._env(rec), check=False)
        listed = [ln for ln in r.stdout.splitlines()[4:] if ln.strip()] if r.returncode == 0 else ["?"]
        if listed:
            self.say(f"kept the NSS database {db} (it holds other certificates)")
            return
        for name in ("cert9.db", "key4.db", "pkcs11.txt"):
            (db / name).unlink(missing_ok=True)
        self.say(f"removed the NSS database {db}")


# -- a transaction: one run of install ------------------------------------------------------------------
class Tx:
    """Applies ops, records them in the manifest, and can undo this run's own changes if one fails."""

    def __init__(self, ctx: Context, runner: Runner, manifest: Manifest, say: Callable[[str], None]) -> None:
        self.ctx, self.runner, self.manifest, self.say = ctx, runner, manifest, say
        self.step = ""
        self.step_changed = False
        self.changed_steps: set[str] = set()
        self._snapshot = copy.deepcopy(manifest.data)
        self._undo: list[Callable[[], None]] = []
        self._tmp = Path(tempfile.mkdtemp(prefix="zerocontact-install-"))
        self.reverter = Reverter(runner, say, ctx.env)

    # bookkeeping
    def begin(self, step: str) -> None:
        self.step, self.step_changed = step, False

    def changed(self) -> None:
        self.step_changed = True
        self.changed_steps.add(self.step)

    def record(self, rec: Record, keep: bool = False) -> Record:
        rec.setdefault("step", self.step)
        rec.setdefault("keep", keep)
        return self.manifest.add(rec)

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {**self.ctx.env, **(extra or {})}

    def run(
        self, argv: Sequence[str], extra_env: Mapping[str, str] | None = None, check: bool = True
    ) -> Completed:
        return self.runner.run(argv, env=self.env(extra_env), check=check)

    # primitives
    def mkdir(self, path: Path, mode: int = 0o755, keep: bool = False) -> None:
        """Create ``path`` and any missing parents, recording each directory created."""
        missing = []
        p = path
        while not p.exists():
            missing.append(p)
            if p.parent == p:
                break
            p = p.parent
        for d in reversed(missing):
            d.mkdir(mode=mode)
            os.chmod(d, mode)  # mkdir's mode is masked by the umask
            self.record({"key": f"dir:{d}", "kind": "dir", "path": str(d)}, keep=keep)
            self._undo.append(functools.partial(_rmdir_quiet, d))
            self.changed()

    def write(self, path: Path, data: bytes, mode: int, keep: bool = False) -> bool:
        """Write ``path`` (parents created) unless it already holds ``data`` with ``mode``."""
        self.mkdir(path.parent, keep=keep)
        key = f"file:{path}"
        try:
            st = path.lstat()
            current: bytes | None = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
            cur_mode: int | None = st.st_mode & 0o7777
        except FileNotFoundError:
            current, cur_mode = None, None
        rec: Record = {"key": key, "kind": "file", "path": str(path), "sha256": sha256(data), "mode": mode}
        if current == data and cur_mode == mode:
            # already right; if no record exists it held this before we ever wrote it: not ours to undo
            return False
        backup = None
        if current is not None and not self.manifest.find(key):
            self.manifest.backups.mkdir(parents=True, exist_ok=True, mode=0o700)
            backup = self.manifest.backups / sha256(key.encode())[:16]
            atomic_write(backup, current, 0o600)
        self.record({**rec, "backup": str(backup) if backup else None, "backup_mode": cur_mode}, keep=keep)
        run_backup = self._tmp / sha256(f"{key}{len(self._undo)}".encode())[:16]
        if current is not None:
            run_backup.write_bytes(current)
        atomic_write(path, data, mode)
        self._undo.append(lambda: _restore(path, run_backup if current is not None else None, cur_mode))
        self.changed()
        return True

    def command(
        self,
        argv: Sequence[str],
        revert: Sequence[str] | None,
        key: str,
        extra_env: Mapping[str, str] | None = None,
        keep: bool = False,
    ) -> None:
        """Run ``argv`` and record ``revert`` (the command that undoes it) under ``key``."""
        if argv:
            self.run(argv, extra_env)
        if revert is not None:
            new = self.manifest.find(key) is None
            rec: Record = {"key": key, "kind": "cmd", "revert": list(revert)}
            if extra_env:
                rec["env"] = dict(extra_env)
            self.record(rec, keep=keep)
            if new and argv:
                self._undo.append(lambda: self.reverter.revert(rec))
        self.changed()

    def on_undo(self, fn: Callable[[], None]) -> None:
        self._undo.append(fn)

    # ending
    def commit(self) -> None:
        self.manifest.data["updated"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.manifest.save()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def rollback(self) -> None:
        """Undo this run's changes, newest first, and put the manifest back as it was."""
        for fn in reversed(self._undo):
            try:
                fn()
            except Exception as e:  # keep undoing the rest; say what could not be undone
                self.say(f"warning: could not undo a change: {e}")
        self.manifest.data = self._snapshot
        if self.manifest.records or self.manifest.exists:
            self.manifest.save()
        shutil.rmtree(self._tmp, ignore_errors=True)


def _rmdir_quiet(d: Path) -> None:
    with contextlib.suppress(OSError):
        d.rmdir()


def _restore(path: Path, backup: Path | None, mode: int | None) -> None:
    if backup is None:
        path.unlink(missing_ok=True)
    else:
        atomic_write(path, backup.read_bytes(), mode if mode is not None else 0o644)


# -- structured settings files ------------------------------------------------------------------------
def ini_get(text: str, group: str, key: str) -> str | None:
    """The raw value of ``key`` in ``[group]``, or None."""
    current = None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            current = s[1:-1]
        elif current == group and "=" in s and s.split("=", 1)[0].strip() == key:
            return s.split("=", 1)[1]
    return None


def ini_set(text: str, group: str, key: str, value: str | None) -> str:
    """Set (or with None remove) ``key`` in ``[group]``, keeping every other line as it was."""
    lines = text.splitlines()
    out: list[str] = []
    current = None
    done = False
    group_end = None  # index in out after the group's last line
    for line in lines:
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            current = s[1:-1]
        elif current == group and "=" in s and s.split("=", 1)[0].strip() == key:
            if value is not None and not done:
                out.append(f"{key}={value}")
                done = True
            group_end = len(out)
            continue
        out.append(line)
        if current == group and s:
            group_end = len(out)
    if value is not None and not done:
        if group_end is None:
            if out and out[-1].strip():
                out.append("")
            out += [f"[{group}]", f"{key}={value}"]
        else:
            out.insert(group_end, f"{key}={value}")
    return "\n".join(out) + "\n" if out else ""


def json_get(doc: Any, keypath: Sequence[str]) -> tuple[bool, Any]:
    """(present, value) at ``keypath`` in a nested JSON object."""
    for k in keypath:
        if not isinstance(doc, dict) or k not in doc:
            return False, None
        doc = doc[k]
    return True, doc


def json_set(doc: dict[str, Any], keypath: Sequence[str], value: Any, present: bool = True) -> None:
    """Set ``keypath`` to ``value`` (or remove it when not ``present``), pruning emptied parents."""
    *parents, last = keypath
    node = doc
    trail = []
    for k in parents:
        if not isinstance(node.get(k), dict):
            if not present:
                return
            node[k] = {}
        trail.append((node, k))
        node = node[k]
    if present:
        node[last] = value
        return
    node.pop(last, None)
    for parent, k in reversed(trail):
        if parent[k] == {}:
            del parent[k]


def _same_json(text: str, doc: Any) -> bool:
    try:
        return bool(json.loads(text) == doc)
    except ValueError:
        return False


def json_empty(doc: Any) -> bool:
    """True for a document that holds nothing but empty objects."""
    return isinstance(doc, dict) and all(json_empty(v) for v in doc.values())


# -- ops ---------------------------------------------------------------------------------------------------
class Op(ABC):
    """One change. ``describe`` is its plan line; ``apply`` makes it true and records how to undo it."""

    live_only = False  # acts on the running system (systemctl, launchctl): skipped in a staging root

    @abstractmethod
    def describe(self) -> str: ...

    @abstractmethod
    def apply(self, tx: Tx) -> None: ...


@dataclass
class Dir(Op):
    """A directory that must exist; only one this op creates is recorded (and removed if empty)."""

    path: PurePath
    mode: int = 0o755
    keep: bool = False

    def describe(self) -> str:
        return f"create directory {self.path} ({self.mode:04o}) if missing"

    def apply(self, tx: Tx) -> None:
        tx.mkdir(tx.ctx.at(self.path), self.mode, keep=self.keep)


@dataclass
class File(Op):
    """A whole file zerocontact owns; whatever it replaces is backed up and comes back on uninstall."""

    path: PurePath
    content: Content
    mode: int = 0o644
    why: str = ""
    keep: bool = False  # survives a plain uninstall (the user's rules file); --purge removes it

    def describe(self) -> str:
        return f"write {self.path} ({self.mode:04o}){': ' + self.why if self.why else ''}"

    def data(self) -> bytes:
        return self.content() if callable(self.content) else self.content

    def apply(self, tx: Tx) -> None:
        changed = tx.write(tx.ctx.at(self.path), self.data(), self.mode, keep=self.keep)
        tx.say(f"{'wrote' if changed else 'unchanged'} {self.path}")


@dataclass
class Command(Op):
    """Run ``argv`` now; ``revert`` is run by uninstall. With ``argv`` None it only registers ``revert``
    (placed before the ops it must follow on uninstall, e.g. rebuilding a trust store last)."""

    argv: Sequence[str] | None
    revert: Sequence[str] | None = None
    why: str = ""
    key: str = ""
    live_only: bool = False
    only_if_changed: bool = False  # run only when this step changed something (or never ran)
    env: Mapping[str, str] | None = None
    check: bool = True  # False: a failure is reported, not fatal (a notification nobody listens to)

    def describe(self) -> str:
        parts = []
        if self.argv:
            parts.append(f"run {' '.join(self.argv)}")
        if self.revert:
            parts.append(f"{'; ' if parts else ''}on uninstall: {' '.join(self.revert)}")
        return "".join(parts) + (f": {self.why}" if self.why else "")

    def apply(self, tx: Tx) -> None:
        key = self.key or f"cmd:{tx.step}:{' '.join(self.argv or self.revert or ())}"
        if self.live_only and not tx.ctx.live_commands:
            if self.argv:
                tx.say(f"skipped (staging root): {' '.join(self.argv)}")
            return
        if self.only_if_changed and not tx.step_changed and (self.revert is None or tx.manifest.find(key)):
            tx.say(f"unchanged: {' '.join(self.argv or ())}")
            return
        if self.argv and not self.check:
            r = tx.run(self.argv, self.env, check=False)
            tx.say(
                f"ran {' '.join(self.argv)}" + (f" (exit {r.returncode}, ignored)" if r.returncode else "")
            )
            return
        tx.command(self.argv or (), self.revert, key, self.env)
        if self.argv:
            tx.say(f"ran {' '.join(self.argv)}")


@dataclass
class IniKeys(Op):
    """Set keys in one group of an INI-style file (KDE's kioslaverc), keeping the rest of the file."""

    path: PurePath
    group: str
    values: Mapping[str, str]
    mode: int = 0o600
    why: str = ""

    def describe(self) -> str:
        keys = ", ".join(f"{k}={v}" for k, v in self.values.items())
        return f"set [{self.group}] {keys} in {self.path}{': ' + self.why if self.why else ''}"

    def apply(self, tx: Tx) -> None:
        p = tx.ctx.at(self.path)
        tx.mkdir(p.parent, 0o700)
        created = not p.exists()
        text = "" if created else p.read_text(encoding="utf-8")
        mode = self.mode if created else p.stat().st_mode & 0o7777
        if created:
            tx.record({"key": f"created:{p}", "kind": "created-if-empty", "path": str(p)})
            tx.on_undo(lambda: p.unlink(missing_ok=True))
        new = text
        for k, v in self.values.items():
            before = ini_get(new, self.group, k)
            if before == v:
                continue
            tx.record(
                {
                    "key": f"ini:{p}:{self.group}:{k}",
                    "kind": "ini",
                    "path": str(p),
                    "group": self.group,
                    "ikey": k,
                    "previous": before,
                    "mode": mode,
                }
            )
            new = ini_set(new, self.group, k, v)
        if new != text:
            old = text
            atomic_write(p, new.encode(), mode)
            tx.on_undo(lambda: atomic_write(p, old.encode(), mode) if p.exists() else None)
            tx.changed()
            tx.say(f"updated {self.path}")
        else:
            tx.say(f"unchanged {self.path}")


@dataclass
class JsonKeys(Op):
    """Set top-level entries of a JSON document another program owns (Firefox's policies.json),
    keeping what others put there; uninstall puts back each entry's previous value."""

    path: PurePath
    values: Mapping[tuple[str, ...], Any]
    mode: int = 0o644
    why: str = ""

    def describe(self) -> str:
        keys = ", ".join(".".join(k) for k in self.values)
        return f"set {keys} in {self.path}{': ' + self.why if self.why else ''}"

    def apply(self, tx: Tx) -> None:
        p = tx.ctx.at(self.path)
        tx.mkdir(p.parent, 0o755)
        created = not p.exists()
        try:
            doc = {} if created else json.loads(p.read_text(encoding="utf-8"))
        except ValueError as e:
            raise InstallError(
                f"{p} is not valid JSON ({e}); fix or remove it, then run install again"
            ) from None
        if not isinstance(doc, dict):
            raise InstallError(f"{p} does not hold a JSON object; fix or remove it, then run install again")
        mode = self.mode if created else p.stat().st_mode & 0o7777
        before_text = None if created else p.read_bytes()
        changed = False
        for keypath, value in self.values.items():
            had, previous = json_get(doc, keypath)
            if had and previous == value:
                continue
            key = f"json:{p}:{'.'.join(keypath)}"
            rec: Record = {"key": key, "kind": "json", "path": str(p), "keypath": list(keypath), "mode": mode}
            rec.update(had=had, previous=previous, created=created)
            if before_text is not None:  # put back byte for byte once every key of ours is gone
                rec["original"] = before_text.decode("utf-8")
            tx.record(rec)
            json_set(doc, keypath, value)
            changed = True
        if changed:
            atomic_write(p, (json.dumps(doc, indent=2) + "\n").encode(), mode)
            tx.on_undo(
                lambda: (
                    p.unlink(missing_ok=True) if before_text is None else atomic_write(p, before_text, mode)
                )
            )
            tx.changed()
            tx.say(f"updated {self.path}")
        else:
            tx.say(f"unchanged {self.path}")


# -- steps ------------------------------------------------------------------------------------------------
class Step(ABC):
    """One mechanism. Subclasses build their ops from the context; constructing one changes nothing."""

    name: str = "step"
    title: str = ""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @abstractmethod
    def ops(self) -> list[Op]: ...

    def notes(self) -> list[str]:
        """Plain-language caveats shown under the step in the plan (what it cannot do)."""
        return []

    def plan(self) -> list[str]:
        lines = [f"[{self.name}] {self.title}"]
        for op in self.ops():
            skip = " (skipped: staging root)" if op.live_only and not self.ctx.live_commands else ""
            lines.append(f"  - {op.describe()}{skip}")
        lines += [f"  note: {n}" for n in self.notes()]
        return lines

    def apply(self, tx: Tx) -> None:
        tx.begin(self.name)
        for op in self.ops():
            op.apply(tx)

    def revert(self, reverter: Reverter, records: list[Record]) -> None:
        for rec in reversed(records):
            reverter.revert(rec)


@contextmanager
def transaction(ctx: Context, runner: Runner, manifest: Manifest, say: Callable[[str], None]) -> Iterator[Tx]:
    """Run ops in a ``Tx``: committed at the end, or this run's changes undone on any error."""
    tx = Tx(ctx, runner, manifest, say)
    try:
        yield tx
    except (InstallError, OSError) as e:
        say(f"failed: {e}; undoing this run's changes")
        tx.rollback()
        if isinstance(e, CommandError):
            raise
        raise InstallError(str(e)) from None
    except BaseException:
        tx.rollback()
        raise
    else:
        tx.commit()
