"""Journals for the journal and review tests: real SQLite files, never mocks.

Written through the real ``Journal`` writer (``write``, ``existing_journal``), filled directly in a
file ``files.connect`` created where hundreds of rows per example are needed (``fill``), or made
bad on purpose (``BAD_FILES``); read back with a plain connection of their own (``query``) as
another tool would. ``Writer`` runs ``fixtures/journal_writer.py`` in its own process for crash and
concurrency tests; ``zc`` runs the installed command line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import random
import re
import sqlite3
import subprocess
import sys
import threading
import zoneinfo
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from zerocontact.daemon.journal import Attempt, Journal
from zerocontact.daemon.journal.files import connect
from zerocontact.daemon.journal.reader import reading
from zerocontact.daemon.journal.schema import SCHEMA_VERSION, iso
from zerocontact.daemon.review.stats import Stats, compute_stats

FIXTURES = Path(__file__).resolve().parents[1] / "daemon" / "fixtures"
WRITER = FIXTURES / "journal_writer.py"
V1_JOURNAL = FIXTURES / "journal-v1.sqlite3"
T0 = dt.datetime(2026, 3, 1, 21, 0, tzinfo=dt.UTC)
FAST = 0.05  # retry interval for tests: the writer retries on its own timer
ZC = str(Path(sys.executable).with_name("zerocontact"))
UTC = dt.UTC
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",  # clocks jump at midnight: a day that starts at 01:00
    "Asia/Kolkata",  # +05:30
    "Asia/Kathmandu",  # +05:45
    "America/St_Johns",  # -03:30 with DST
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "Pacific/Chatham",  # +12:45 / +13:45
    "Pacific/Kiritimati",  # +14
]


# -- attempts and journals written by the real writer ------------------------------------------------
def attempt(i: int, **kw: Any) -> Attempt:
    fields: dict[str, Any] = {
        "time": T0 + dt.timedelta(seconds=i),
        "person": "Sam",
        "platform": "instagram",
        "surface": "profile",
        "method": "GET",
        "host": "www.instagram.com",
        "path": f"/sam.example/{i}/",
        "key": f"t{i:06d}",
    }
    fields.update(kw)
    return Attempt(**fields)


def t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


NOW = t("2026-11-10T15:20:00Z")  # 16:20 in Berlin


def att(when: str | dt.datetime, **kw: Any) -> Attempt:
    fields: dict[str, Any] = {
        "person": "Sam",
        "platform": "instagram",
        "surface": "stories",
        "channel": "web",
        "method": "GET",
        "host": "www.instagram.com",
        "path": "/stories/sam.example/",
        "rule": "/stories/{handle}/",
        "detail": "Instagram stories of Sam",
    }
    fields.update(kw)
    return Attempt(time=t(when) if isinstance(when, str) else when, **fields)


def write(
    path: Path,
    attempts: Sequence[Attempt],
    notes: dict[int, str] | None = None,
    started: Sequence[str] = (),
) -> Path:
    """A journal written by the real writer thread; ``started`` daemon starts at fixed times."""
    j = Journal(path)
    j.start()
    for i, a in enumerate(attempts):
        key = j.record(a)
        if notes and i in notes:
            j.note(key, notes[i])
    assert j.flush(), j.error
    j.close()
    if not attempts:  # an empty journal still needs its file
        connect(path).close()
    if started:
        con = sqlite3.connect(path, isolation_level=None)
        con.executemany(
            "INSERT INTO events (time, kind, detail) VALUES (?, 'started', '{}')",
            [(iso(t(s)),) for s in started],
        )
        con.close()
    return path


def fill(path: Path, times: Sequence[dt.datetime], started: dt.datetime | None = None) -> Path:
    """Many attempts at once, straight into a file that ``files.connect`` created."""
    con = connect(path)
    con.execute("BEGIN")
    con.executemany(
        "INSERT INTO attempts (key, time, last_time, person, platform, surface, channel) "
        "VALUES (?, ?, ?, ?, ?, ?, 'web')",
        [
            (f"k{i}", iso(x), iso(x), ("Sam", "Alex")[i % 2], ("x", "instagram")[i % 3 == 0], "profile")
            for i, x in enumerate(times)
        ],
    )
    if started:
        con.execute("INSERT INTO events (time, kind) VALUES (?, 'started')", (iso(started),))
    con.execute("COMMIT")
    con.close()
    return path


def existing_journal(path: Path, n: int = 1) -> None:
    j = Journal(path)
    j.start()
    for i in range(n):
        j.record(attempt(i, key=f"old{i:06d}"))
    assert j.flush()
    j.close()


def stats(path: Path, now: str, tz: str = "Europe/Berlin", **kw: Any) -> Stats:
    with reading(path) as journal:
        return compute_stats(journal, now=t(now), tz=zoneinfo.ZoneInfo(tz), **kw)


def zc(
    *args: str, input: str | None = None, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ZC, *args],
        capture_output=True,
        text=True,
        input=input,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "TZ": "Europe/Berlin", **env},
    )


# -- reading back and comparing ------------------------------------------------------------------
def query(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Read with a plain read-write connection of its own (as another tool would)."""
    con = sqlite3.connect(path, timeout=30)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def keys(path: Path) -> list[str]:
    return [r[0] for r in query(path, "SELECT key FROM attempts ORDER BY id")]


def snapshot(path: Path) -> tuple[str, int, int]:
    """What 'untouched' means: the same bytes, mode and modification time."""
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mode, st.st_mtime_ns


def mode(path: Path | str) -> int:
    return os.stat(path).st_mode & 0o777


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "zerocontact.journal" and r.levelno == level]


# -- real processes ------------------------------------------------------------------------------
class Writer:
    """``fixtures/journal_writer.py`` in its own process, its stdout read line by line as it comes."""

    def __init__(self, path: Path, count: int, prefix: str, chunk: int = 0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WRITER), str(path), str(count), prefix, str(chunk)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def reported(self) -> int:
        """The highest attempt id the child was told is committed."""
        ids = [int(m[1]) for line in list(self.lines) if (m := re.match(r"committed \d+ up to #(\d+)", line))]
        return max(ids, default=0)

    def finish(self, timeout: float = 120) -> None:
        self.proc.wait(timeout)
        self._reader.join(10)

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read()


# -- a full disk ---------------------------------------------------------------------------------
class Disk:
    """A real SQLITE_FULL: every connection the journal opens may use no more pages than it has."""

    def __init__(self) -> None:
        self.full = True

    def on_connect(self, con: sqlite3.Connection) -> None:
        con.execute(f"PRAGMA max_page_count = {1 if self.full else 1_073_741_823}")  # 1: its current size


# -- files that are not (or no longer) a journal we may write --------------------------------------
def random_bytes(path: Path) -> None:
    path.write_bytes(random.Random(4).randbytes(20_000))


def foreign_sqlite(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
    con.execute("INSERT INTO moz_places (url) VALUES ('https://example.org/')")
    con.commit()
    con.close()


def big_journal(path: Path, n: int = 3000) -> None:
    existing_journal(path, n)
    assert not Path(f"{path}-wal").exists()  # checkpointed: the main file holds everything


def truncated_journal(path: Path) -> None:
    big_journal(path)
    os.truncate(path, path.stat().st_size * 9 // 10)


def damaged_journal(path: Path) -> None:
    """A journal with one page of attempts in the middle overwritten (a bad sector, a bad copy)."""
    big_journal(path)
    pages = query(path, "SELECT pageno FROM dbstat WHERE name = 'attempts' AND pagetype = 'leaf'")
    page_size = query(path, "PRAGMA page_size")[0][0]
    with open(path, "r+b") as f:
        f.seek((sorted(pages)[len(pages) // 2][0] - 1) * page_size)
        f.write(b"\xa5" * page_size)


def newer_journal(path: Path) -> None:
    existing_journal(path, 3)
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    con.execute("ALTER TABLE attempts ADD COLUMN mood TEXT")
    con.commit()
    con.close()


BAD_FILES = {
    "random-bytes": (random_bytes, "not an SQLite database"),
    "foreign-sqlite": (foreign_sqlite, "another application (tables: moz_places)"),
    "truncated": (truncated_journal, "damaged (database disk image is malformed)"),
    "damaged-page": (damaged_journal, "damaged"),
    "newer-version": (newer_journal, f"newer zerocontact (journal schema {SCHEMA_VERSION + 1}"),
}


@contextlib.contextmanager
def mounted(*args: str) -> Iterator[Callable[..., None]]:
    """``mount ARGS`` (skipped where the sandbox forbids it); yields ``again(OPTIONS…)`` to remount
    the same target; unmounts at the end, whatever happens.
    """
    target = args[-1]
    r = subprocess.run(["mount", *args], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"mount is not permitted here: {r.stderr.strip()}")

    def again(*options: str) -> None:
        subprocess.run(["mount", *options, target], check=True, capture_output=True)

    try:
        yield again
    finally:
        subprocess.run(["umount", target], capture_output=True)


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[Callable[[], None]]:
    """Make a directory read-only for real; yield the function that makes it writable again.

    Root ignores permissions, so as root this is a read-only bind mount of the directory on itself
    (skipped where the sandbox forbids mount); otherwise a 0500 directory.
    """
    if os.geteuid() != 0:
        os.chmod(directory, 0o500)
        try:
            yield lambda: os.chmod(directory, 0o700)
        finally:
            os.chmod(directory, 0o700)
        return
    with mounted("--bind", str(directory), str(directory)) as again:
        again("-o", "remount,bind,ro")
        yield lambda: again("-o", "remount,bind,rw")
