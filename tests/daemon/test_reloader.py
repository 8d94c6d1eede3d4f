"""The rules watcher with the real watchdog observer, real files and a real asyncio loop.

One test per way editors save. Each asserts what was delivered and that it arrived within one
second of the save (the issue's promise). Nothing sleeps to synchronise: tests wait on asyncio
events with a timeout; where a test must show that *nothing* happens, it waits a multiple of the
debounce and says so.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from zctest.support import need_tool

from zerocontact.daemon.reloader import DEBOUNCE_SECONDS, RulesFileWatcher, digest

OLD = b'[[person]]\nname = "Sam"\naccounts = { instagram = "sam.example" }\n'
NEW = b'[[person]]\nname = "Sam"\naccounts = { instagram = "sam.example", x = "samexample" }\n'
PROMISE = 1.0  # seconds from save to delivery (the issue)
WAIT = 5.0  # how long a test waits for something that must happen before calling it a failure
# Long enough for a missed-but-due callback to have arrived: events settle after DEBOUNCE_SECONDS,
# so five debounces leave ample room for the check and the hop to the loop.
QUIET = 5 * DEBOUNCE_SECONDS


class Seen:
    """What the watcher delivered, when (monotonic), and on which thread."""

    def __init__(self) -> None:
        self.changes: list[tuple[float, bytes]] = []
        self.missing: list[float] = []
        self.changed = asyncio.Event()
        self.gone = asyncio.Event()
        self.loop_thread = threading.get_ident()
        self.threads: set[int] = set()

    def on_change(self, data: bytes) -> None:
        self.threads.add(threading.get_ident())
        self.changes.append((time.monotonic(), data))
        self.changed.set()

    def on_missing(self) -> None:
        self.threads.add(threading.get_ident())
        self.missing.append(time.monotonic())
        self.gone.set()

    async def change(self, saved: float) -> bytes:
        """The next delivery, asserted to come within the promise of ``saved``."""
        await asyncio.wait_for(self.changed.wait(), WAIT)
        self.changed.clear()
        at, data = self.changes[-1]
        assert at - saved < PROMISE, f"delivered {at - saved:.3f}s after the save"
        return data

    async def vanished(self, deleted: float) -> None:
        await asyncio.wait_for(self.gone.wait(), WAIT)
        self.gone.clear()
        assert self.missing[-1] - deleted < PROMISE, f"reported {self.missing[-1] - deleted:.3f}s late"

    async def nothing_more(self) -> None:
        """Let QUIET pass (a multiple of the debounce, see above) and require no new change."""
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(self.changed.wait(), QUIET)


@asynccontextmanager
async def watching(path: Path, **kw: Any) -> AsyncIterator[tuple[RulesFileWatcher, Seen]]:
    seen = Seen()
    w = RulesFileWatcher(path, asyncio.get_running_loop(), seen.on_change, seen.on_missing, **kw)
    w.start()
    try:
        yield w, seen
    finally:
        w.stop()
    assert seen.threads <= {seen.loop_thread}, "callbacks must run on the loop's thread"


def run(coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(coro())


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "other.toml").write_text("unrelated = true\n")
    p = folder / "rules.toml"
    p.write_bytes(OLD)
    return p


# -- one test per save style ------------------------------------------------------------------------
def test_in_place_write_like_nano_or_redirect(rules: Path) -> None:
    async def main() -> None:
        async with watching(rules) as (w, seen):
            with open(rules, "r+b") as f:
                f.seek(0)
                f.truncate()
                f.write(NEW)
            saved = time.monotonic()
            assert await seen.change(saved) == NEW
            assert w.current() == NEW and w.last_hash == digest(NEW)
            await seen.nothing_more()
            assert len(seen.changes) == 1 and not seen.missing

    run(main)


def test_temp_file_and_rename_like_vscode(rules: Path) -> None:
    async def main() -> None:
        async with watching(rules) as (_, seen):
            tmp = rules.with_name(".rules.toml.tmp-1234")
            tmp.write_bytes(NEW)
            os.replace(tmp, rules)
            saved = time.monotonic()
            assert await seen.change(saved) == NEW
            await seen.nothing_more()
            assert len(seen.changes) == 1 and not seen.missing

    run(main)


def test_sed_in_place(rules: Path) -> None:
    sed = need_tool("sed")

    async def main() -> None:
        async with watching(rules) as (_, seen):
            script = 's/"sam.example" }/"sam.example", x = "samexample" }/'
            subprocess.run([sed, "-i", script, rules], check=True)
            saved = time.monotonic()
            assert await seen.change(saved) == NEW
            await seen.nothing_more()
            assert len(seen.changes) == 1 and not seen.missing

    run(main)


def test_vim_backup_rename_and_4913_probe(rules: Path) -> None:
    async def main() -> None:
        async with watching(rules) as (_, seen):
            probe = rules.with_name("4913")  # vim checks it may create files in the folder
            probe.write_bytes(b"")
            probe.unlink()
            backup = rules.with_name("rules.toml~")
            os.rename(rules, backup)  # backupcopy=no: the original becomes the backup
            with open(rules, "xb") as f:
                f.write(NEW)
            os.chmod(rules, 0o600)
            backup.unlink()  # nowritebackup's default: the backup goes once the write succeeded
            saved = time.monotonic()
            assert await seen.change(saved) == NEW
            await seen.nothing_more()
            assert len(seen.changes) == 1 and not seen.missing  # the moment without the file is not "missing"

    run(main)


def test_delete_then_recreate_after_a_moment(rules: Path) -> None:
    async def main() -> None:
        async with watching(rules) as (w, seen):
            rules.unlink()
            await seen.vanished(time.monotonic())  # the moment: the watcher has seen it gone
            assert not seen.changes and w.current() == OLD  # gone is not "empty"
            rules.write_bytes(NEW)
            saved = time.monotonic()
            assert await seen.change(saved) == NEW
            await seen.nothing_more()
            assert len(seen.changes) == 1

    run(main)


def test_delete_and_recreate_at_once(rules: Path) -> None:
    async def main() -> None:
        async with watching(rules) as (_, seen):
            rules.unlink()
            rules.write_bytes(NEW)
            saved = time.monotonic()
            assert await seen.change(saved) == NEW
            await seen.nothing_more()
            assert len(seen.changes) == 1 and not seen.missing

    run(main)


def test_touch_chmod_and_identical_rewrites_deliver_nothing(rules: Path) -> None:
    async def main() -> None:
        async with watching(rules) as (w, seen):
            rules.touch()
            os.chmod(rules, 0o640)
            rules.write_bytes(OLD)  # in place, same bytes
            tmp = rules.with_name("rules.toml.new")
            tmp.write_bytes(OLD)
            os.replace(tmp, rules)  # renamed over, same bytes
            rules.unlink()
            rules.write_bytes(OLD)  # recreated, same bytes
            rules.read_bytes()  # someone reading it (opens and closes are not changes)
            await seen.nothing_more()
            assert not seen.changes and not seen.missing and w.last_hash == digest(OLD)
            # and the watcher is still alive: a real change gets through
            rules.write_bytes(NEW)
            assert await seen.change(time.monotonic()) == NEW

    run(main)


def test_burst_of_rapid_writes_is_one_change(rules: Path) -> None:
    async def main() -> None:
        async with watching(rules) as (_, seen):
            for i in range(20):
                rules.write_bytes(NEW + f"# save {i}\n".encode())
            saved = time.monotonic()
            final = NEW + b"# save 19\n"
            await seen.change(saved)
            await seen.nothing_more()  # a second delivery, if any, would have come by now
            assert 1 <= len(seen.changes) <= 2
            at, data = seen.changes[-1]
            assert data == final and at - saved < PROMISE

    run(main)


def test_symlinked_rules_file_whose_target_is_replaced(tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles"
    config = tmp_path / "config"
    dotfiles.mkdir()
    config.mkdir()
    target = dotfiles / "rules.toml"
    target.write_bytes(OLD)
    link = config / "rules.toml"
    link.symlink_to(Path("..") / "dotfiles" / "rules.toml")  # relative, as dotfile managers do

    async def main() -> None:
        async with watching(link) as (_, seen):
            tmp = dotfiles / ".rules.toml.swp-new"
            tmp.write_bytes(NEW)
            os.replace(tmp, target)  # the editor saved the target, in the other folder
            assert await seen.change(time.monotonic()) == NEW
            # the link is pointed at a file in a third folder: that folder is watched from now on
            elsewhere = tmp_path / "elsewhere"
            elsewhere.mkdir()
            (elsewhere / "rules.toml").write_bytes(OLD)
            new_link = config / "rules.toml.lnk"
            new_link.symlink_to(elsewhere / "rules.toml")
            os.replace(new_link, link)  # `ln -sfn`, atomically
            assert await seen.change(time.monotonic()) == OLD
            (elsewhere / "rules.toml").write_bytes(NEW)
            assert await seen.change(time.monotonic()) == NEW
            target.write_bytes(b"# no longer the rules file\n")
            await seen.nothing_more()
            assert len(seen.changes) == 3 and not seen.missing

    run(main)


def test_deletion_alone_reports_missing_and_delivers_nothing(rules: Path) -> None:
    async def main() -> None:
        async with watching(rules) as (w, seen):
            rules.unlink()
            await seen.vanished(time.monotonic())
            await seen.nothing_more()
            assert not seen.changes and len(seen.missing) == 1
            assert w.current() == OLD and w.last_hash == digest(OLD)  # the last rules stay

    run(main)


# -- the rest of the contract -----------------------------------------------------------------------
def test_edit_between_load_and_start_is_delivered(rules: Path) -> None:
    async def main() -> None:
        loaded = rules.read_bytes()
        rules.write_bytes(NEW)  # saved after the daemon read the file, before the watcher started
        saved = time.monotonic()
        async with watching(rules, initial=loaded) as (_, seen):
            assert await seen.change(saved) == NEW

    run(main)


def test_unchanged_file_at_start_delivers_nothing(rules: Path) -> None:
    async def main() -> None:
        async with watching(rules) as (w, seen):
            await seen.nothing_more()
            assert not seen.changes and not seen.missing and w.current() == OLD

    run(main)


def test_missing_at_start_then_created(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"

    async def main() -> None:
        async with watching(rules) as (w, seen):
            await seen.vanished(time.monotonic())
            assert w.current() is None and w.last_hash is None
            rules.write_bytes(NEW)
            assert await seen.change(time.monotonic()) == NEW

    run(main)


def test_poll_catches_changes_when_events_are_lost(rules: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RulesFileWatcher, "_on_fs_event", lambda self, event: None)  # inotify says nothing

    async def main() -> None:
        async with watching(rules, poll_interval=0.3) as (_, seen):
            rules.write_bytes(NEW)
            assert await seen.change(time.monotonic()) == NEW

    run(main)


def test_folder_deleted_and_recreated_is_watched_again(rules: Path) -> None:
    folder = rules.parent

    async def main() -> None:
        # a dotfiles tool removing and re-creating the folder: the old inotify watch dies with it
        async with watching(rules, poll_interval=0.5) as (_, seen):
            for p in folder.iterdir():
                p.unlink()
            folder.rmdir()
            await seen.vanished(time.monotonic())
            folder.mkdir()
            rules.write_bytes(OLD)  # back, unchanged: nothing to deliver
            await seen.nothing_more()
            assert not seen.changes
            rules.write_bytes(NEW)  # the poll has re-armed the watch; this is caught by its event
            assert await seen.change(time.monotonic()) == NEW

    run(main)


def test_stop_is_quick_idempotent_and_silences_callbacks(rules: Path) -> None:
    async def main() -> None:
        seen = Seen()
        w = RulesFileWatcher(rules, asyncio.get_running_loop(), seen.on_change, seen.on_missing)
        w.stop()  # before start: nothing to do
        w = RulesFileWatcher(rules, asyncio.get_running_loop(), seen.on_change, seen.on_missing)
        w.start()
        rules.write_bytes(NEW)
        t0 = time.monotonic()
        w.stop()
        w.stop()
        assert time.monotonic() - t0 < 1.0
        assert not any(t.name == "zerocontact-rules-watcher" and t.is_alive() for t in threading.enumerate())
        await seen.nothing_more()  # whatever was pending when it stopped is dropped
        assert not seen.changes

    run(main)


def test_a_failing_callback_does_not_stop_the_watcher(rules: Path) -> None:
    async def main() -> None:
        got: list[bytes] = []
        first, second = asyncio.Event(), asyncio.Event()

        def on_change(data: bytes) -> None:
            got.append(data)
            if len(got) == 1:
                first.set()
                raise ValueError("bad rules")  # logged by the watcher; the loop carries on
            second.set()

        w = RulesFileWatcher(rules, asyncio.get_running_loop(), on_change)
        w.start()
        try:
            rules.write_bytes(NEW)
            await asyncio.wait_for(first.wait(), WAIT)
            rules.write_bytes(OLD)
            await asyncio.wait_for(second.wait(), WAIT)
            assert got == [NEW, OLD]
        finally:
            w.stop()

    run(main)


@pytest.mark.parametrize("bad", ["fifo", "dev-zero"])
def test_a_fifo_or_a_link_to_dev_zero_is_reported_and_hot_reload_lives_on(rules: Path, bad: str) -> None:
    """Renamed over the rules file, a FIFO (whose open would block the settle thread for good) or a
    link to /dev/zero (an endless read) is reported once, never read; replacing it with a regular
    file (even with the same text as before) is delivered as usual."""

    async def main() -> None:
        problems: list[str] = []
        reported = asyncio.Event()

        def on_error(problem: str) -> None:
            problems.append(problem)
            reported.set()

        async with watching(rules, on_error=on_error) as (_, seen):
            staged = rules.with_name("staged")
            if bad == "fifo":
                os.mkfifo(staged)
            else:
                staged.symlink_to("/dev/zero")
            os.replace(staged, rules)
            await asyncio.wait_for(reported.wait(), WAIT)
            kind = "a FIFO (named pipe)" if bad == "fifo" else "a character device"
            assert problems[0].startswith(str(rules)) and f"is {kind}: " in problems[0]
            with pytest.raises(TimeoutError):  # reported once, not at every check
                reported.clear()
                await asyncio.wait_for(reported.wait(), QUIET)
            staged.write_bytes(OLD)  # the very text it had before
            os.replace(staged, rules)
            saved = time.monotonic()
            assert await seen.change(saved) == OLD
            rules.write_bytes(NEW)
            assert await seen.change(time.monotonic()) == NEW
            assert problems == problems[:1] and not seen.missing

    run(main)
