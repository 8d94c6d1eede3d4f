"""The journal file on disk: opening it for writing (``connect``) or reading (``open_readonly``).

Opening is where a file that is not ours is caught before anything touches it, so both ways in live
here: a file that is not a zerocontact journal of this or an older version is never changed (not
truncated, overwritten or converted), and the error names it and says what to do. The journal and
its ``-wal``/``-shm`` files are 0600, a directory the journal creates is 0700.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import sqlite3
import stat
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from .errors import BadJournalFile, JournalError
from .schema import SCHEMA_VERSION, migrate, newer, version_of

log = logging.getLogger("zerocontact.journal")

BUSY_TIMEOUT = 5.0  # seconds a transaction waits for another writer's lock before it is retried
SQLITE_MAGIC = b"SQLite format 3\x00"


def _make_dir(directory: Path) -> None:
    """Create the journal's directory 0700 (whatever the umask); an existing one is left as it is."""
    if directory.is_dir():
        return
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)


def _create_private(path: Path) -> None:
    """Create the database file 0600 before SQLite touches it (its WAL and SHM inherit the mode).

    Never truncates: an existing file is only tightened to 0600 (callers have checked it is ours).
    """
    _make_dir(path.parent)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _tighten_sidecars(path: Path) -> None:
    """SQLite gives ``-wal``/``-shm`` the database's mode; fix ones left looser by anything else."""
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(OSError):
            side = Path(f"{path}{suffix}")
            if stat.S_IMODE(side.stat().st_mode) != 0o600:
                os.chmod(side, 0o600)


def _set_orphans_aside(path: Path) -> None:
    """Before creating a new journal, move away a ``-wal`` left without its database.

    That happens when a user moves a journal aside but not its ``-wal`` (after a crash it holds the
    last committed attempts). SQLite deletes a ``-wal`` it finds beside a new, empty database, so
    it is renamed first, and the log says where; the ``-shm`` is only an index SQLite rebuilds.
    """
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    try:
        size = wal.stat().st_size
    except FileNotFoundError:
        size = None
    if path.exists():  # checked after the -wal: a writer creates the database before its -wal
        return
    if size:
        kept = Path(f"{wal}.orphaned-{dt.datetime.now():%Y%m%d-%H%M%S}")
        os.rename(wal, kept)
        log.warning(
            "journal: %s had no database beside it (was the journal moved without it?); kept as %s: "
            "put it beside the moved journal as <name>-wal to read its last entries",
            wal,
            kept,
        )
    elif size == 0:
        wal.unlink(missing_ok=True)
    shm.unlink(missing_ok=True)


def why_not(path: Path) -> str:
    """Why a directory refuses writes, for messages where SQLite says only "unable to open"."""
    d = path.parent
    with contextlib.suppress(OSError):
        if os.statvfs(d).f_flag & os.ST_RDONLY:
            return f" ({d} is on a read-only file system)"
        if not os.access(d, os.W_OK | os.X_OK):
            return f" ({d} is not writable: permission denied)"
    return ""


def _on_read_only_storage(path: Path) -> bool:
    """Whether the journal's folder cannot be written at all (a read-only mount or permissions)."""
    try:
        return bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY) or not os.access(path.parent, os.W_OK)
    except OSError:
        return False


def readonly_uri(path: Path, **params: str) -> str:
    query = urllib.parse.urlencode({"mode": "ro", **params})
    return f"file:{urllib.parse.quote(str(path))}?{query}"


def _inspect(path: Path, check: bool) -> int | None:
    """Check an existing file without changing it: its schema version, or None if it is new/empty.

    Raises ``BadJournalFile`` for anything the writer must not touch: not SQLite, another application's
    database, a newer journal, or one SQLite finds damaged or truncated: at once, or (``check``) by
    ``quick_check`` (about 0.3 s for a million attempts, so the writer runs it once per file).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise BadJournalFile(f"{path} is not a regular file")
    if st.st_size == 0:
        return None
    with open(path, "rb") as f:
        head = f.read(16)
    if head != SQLITE_MAGIC:  # never hand SQLite a file that is not SQLite's
        raise BadJournalFile(f"{path} is not a zerocontact journal (not an SQLite database)")
    # Truncation and damage are SQLite's to judge: a main file shorter than its header says is normal
    # while its -wal still holds pages (a checkpoint cut short by a full disk or a crash); SQLite
    # reads those from the -wal, and reports "malformed" only for pages that are really missing.
    try:
        con = sqlite3.connect(readonly_uri(path), uri=True, timeout=BUSY_TIMEOUT)
    except sqlite3.Error as e:
        raise JournalError(f"cannot open {path}: {e}{why_not(path)}") from e
    try:
        version = version_of(con, path)
        if version > SCHEMA_VERSION:
            raise newer(path, version)
        problems = [r[0] for r in con.execute("PRAGMA quick_check(3)")] if check else ["ok"]
        if problems != ["ok"]:
            raise BadJournalFile(f"{path} is damaged ({'; '.join(problems)})")
        return version
    except sqlite3.OperationalError as e:  # locked, I/O error, no -shm: the file may be fine
        raise JournalError(f"cannot read {path}: {e}{why_not(path)}") from e
    except sqlite3.DatabaseError as e:
        raise BadJournalFile(f"{path} is damaged ({e})") from e
    finally:
        con.close()


def connect(
    path: Path, on_connect: Callable[[sqlite3.Connection], None] | None = None, *, check: bool = True
) -> sqlite3.Connection:
    """Open the journal for writing: create it, or check an existing one and upgrade it in place.

    Raises ``JournalError`` naming the file for anything that stops it, and leaves a file that is not
    a zerocontact journal of this or an older version exactly as it was (its content and mode).
    ``check`` runs SQLite's ``quick_check`` on an existing file first. ``on_connect`` is called on
    the new connection before anything is written (tests use it to make a disk "full" with
    ``PRAGMA max_page_count``).
    """
    try:
        _make_dir(path.parent)
        if why := why_not(path):
            raise JournalError(f"cannot write {path}{why}")
        if _inspect(path, check) is None:
            _set_orphans_aside(path)
        _create_private(path)
    except OSError as e:
        raise JournalError(f"cannot open {path}: {e.strerror or e}") from e
    try:
        con = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT)
    except sqlite3.Error as e:
        raise JournalError(f"cannot open {path}: {e}{why_not(path)}") from e
    try:
        if on_connect:
            on_connect(con)
        mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise JournalError(f"cannot open {path}: SQLite cannot use WAL there (journal_mode={mode})")
        con.execute("PRAGMA synchronous=FULL")  # a committed attempt survives a crash or power loss
        migrate(con, path)
    except sqlite3.Error as e:
        con.close()
        raise JournalError(f"cannot open {path}: {e}{why_not(path)}") from e
    except BaseException:
        con.close()
        raise
    _tighten_sidecars(path)
    return con


def open_readonly(path: Path) -> sqlite3.Connection:
    """Open the journal read-only (never changes it). JournalError, naming the file, if it cannot be
    read as a journal at all. A damaged or truncated journal opens if its schema can be read; the
    readers (``reader``) then return the attempts that can still be read.
    """
    if not path.exists():
        raise JournalError(
            f"no journal at {path} yet: nothing has been blocked (is the daemon running "
            "with this state directory?)"
        )
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise JournalError(f"cannot read {path}: {e.strerror or e}") from e
    if head and head != SQLITE_MAGIC:
        raise JournalError(f"{path} is not a zerocontact journal (not an SQLite database)")
    try:
        con = sqlite3.connect(readonly_uri(path), uri=True, timeout=30)
    except sqlite3.Error as e:
        raise JournalError(f"cannot read {path}: {e}") from e
    con.row_factory = sqlite3.Row
    try:
        try:
            version = version_of(con, path)
        except sqlite3.OperationalError as e:
            if not _on_read_only_storage(path):
                raise
            # a journal on read-only storage (a backup, a read-only mount): SQLite cannot create the
            # shared-memory file a WAL reader needs, so read the file as the unchangeable file it is
            con.close()
            con = sqlite3.connect(readonly_uri(path, immutable="1"), uri=True, timeout=30)
            con.row_factory = sqlite3.Row
            if path.with_name(path.name + "-wal").exists():
                log.warning(
                    "journal: %s is on read-only storage with a write-ahead log beside it; "
                    "the newest attempts may not be shown (%s)",
                    path,
                    e,
                )
            version = version_of(con, path)
        except sqlite3.DatabaseError:
            # SQLite refuses a file shorter than its header says as a whole; with writable_schema
            # (harmless on a read-only connection) it reads the pages that are there.
            con.execute("PRAGMA writable_schema=ON")
            version = version_of(con, path)
    except BadJournalFile as e:
        con.close()
        raise JournalError(e.what) from e
    except sqlite3.DatabaseError as e:
        con.close()
        raise JournalError(f"{path} is damaged and cannot be read ({e})") from e
    if version == 0:
        con.close()
        raise JournalError(f"the journal {path} is empty: nothing has been recorded yet")
    return con
