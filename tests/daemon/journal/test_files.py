"""Opening the journal file: only daemon/journal/ does it, one that is not ours is never touched, one
moved aside is started anew, and the journal, its ``-wal`` and ``-shm`` stay private (0600,
directory 0700) whatever the umask.
"""

from __future__ import annotations

import ast
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from zctest.journals import BAD_FILES, FAST, T0, Writer, attempt, keys, mode, query, records, snapshot
from zctest.support import wait_for

from zerocontact.daemon.journal import Journal, count_since, learned_ids
from zerocontact.daemon.journal.reader import attempts

ROOT = Path(__file__).resolve().parents[3]


def test_only_the_journal_package_opens_sqlite() -> None:
    """The SQLite file has one owner: review, the CLI and the daemon ask daemon/journal/ for rows."""
    users = set()
    for folder in ("daemon", "rules", "installer"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                if any(n.split(".")[0] == "sqlite3" for n in names):
                    users.add(path.relative_to(ROOT).as_posix())
    assert users and all(u.startswith("daemon/journal/") for u in users), sorted(users)


# -- files that are not (or no longer) a journal we may write --------------------------------------
@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_a_bad_journal_file_is_reported_never_touched_and_blocking_goes_on(
    tmp_path: Path, journal_log: pytest.LogCaptureFixture, kind: str
) -> None:
    make, problem = BAD_FILES[kind]
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    path = state / "journal.sqlite3"
    make(path)
    os.chmod(path, 0o644)  # even its mode stays as it is
    before = snapshot(path)

    j = Journal(path, retry_seconds=FAST)  # constructs: the daemon must keep enforcing
    j.start()
    # what the daemon reads at start does not raise either
    assert isinstance(learned_ids(path), list)
    assert isinstance(count_since(path, T0), int)
    for i in range(20):
        j.record(attempt(i, key=f"new{i:06d}"))
    wait_for(lambda: j.error, 10, "the bad file to be reported")
    assert j.error is not None and str(path) in j.error and problem in j.error, j.error
    hint = "upgrade zerocontact" if kind == "newer-version" else "move it aside"
    assert hint in j.error and "has not changed this file" in j.error
    wait_for(lambda: j.failures >= 3, 10, "the writer to retry")
    assert snapshot(path) == before
    assert j.buffered == 20
    errors = records(journal_log, logging.ERROR)
    assert len(errors) == 1 and str(path) in errors[0]

    # the user moves it aside (as the message says): a new journal is made and what waited is written
    aside = state / "journal.sqlite3.bad"
    path.rename(aside)
    wait_for(lambda: j.error is None, 10, "a new journal to be started")
    assert j.flush()
    j.close()
    assert keys(path) == [f"new{i:06d}" for i in range(20)]
    assert snapshot(aside) == before
    assert mode(path) == 0o600


def test_a_journal_moved_aside_without_its_wal_keeps_its_last_attempts(
    tmp_path: Path, journal_log: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state" / "journal.sqlite3"
    w = Writer(path, 10_000, "k")  # a crashed daemon leaves committed attempts in the -wal only
    wait_for(lambda: "ready" in w.lines, 30, "the writer to open its journal")
    w.go()
    wait_for(lambda: w.reported() >= 500, 60, "some attempts to be committed")
    w.proc.send_signal(signal.SIGKILL)
    w.finish()
    reported = w.reported()
    wal = Path(f"{path}-wal")
    assert wal.stat().st_size > 0
    moved = tmp_path / "state" / "journal.sqlite3.old"
    path.rename(moved)  # the user moves the journal, not its -wal

    j = Journal(path)
    j.start()
    j.record(attempt(0, key="fresh"))
    assert j.flush()
    j.close()
    assert keys(path) == ["fresh"]  # the old -wal was not replayed into the new journal
    assert query(path, "PRAGMA integrity_check") == [("ok",)]
    # SQLite itself would delete a -wal found beside a new, empty database: it is kept instead
    kept = list(path.parent.glob("journal.sqlite3-wal.orphaned-*"))
    assert len(kept) == 1
    assert any(str(kept[0]) in m for m in records(journal_log, logging.WARNING))
    # put beside the moved journal, as the warning says, it gives back every reported attempt
    kept[0].rename(f"{moved}-wal")
    assert keys(moved)[:reported] == [f"k{i:06d}" for i in range(reported)]


# -- file modes ----------------------------------------------------------------------------------
@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_journal_wal_and_shm_are_0600_and_the_directory_0700_whatever_the_umask(
    tmp_path: Path, permissive_umask: None
) -> None:
    state = tmp_path / "home" / "state"
    path = state / "journal.sqlite3"
    j = Journal(path)
    j.start()
    j.record(attempt(0))
    assert j.flush()
    assert Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists()
    assert (mode(path), mode(f"{path}-wal"), mode(f"{path}-shm")) == (0o600, 0o600, 0o600)
    assert mode(state) == 0o700
    j.close()
    # a reader while the daemon is stopped (it recreates -wal/-shm), and a journal restored 0644
    rows = list(attempts(path))
    assert len(rows) == 1
    for side in ("-wal", "-shm"):
        if Path(f"{path}{side}").exists():
            assert mode(f"{path}{side}") == 0o600
    os.chmod(path, 0o644)
    j = Journal(path)
    j.start()
    j.record(attempt(1))
    assert j.flush()
    assert (mode(path), mode(f"{path}-wal"), mode(f"{path}-shm")) == (0o600, 0o600, 0o600)
    j.close()
