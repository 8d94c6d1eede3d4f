"""A big rules file's TOML parsed by a forked child while the daemon starts (daemon/parseahead.py).

These fork the test process, as ``zerocontact run`` forks itself. ``start`` refuses to fork a
process with other threads, and pytest may have some by now (another test's leftovers), so the
tests that fork say the process has one: the child only parses, writes and leaves.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
from pathlib import Path

import pytest
import tomli
from click.testing import CliRunner
from zctest.support import many_people

from zerocontact.daemon import parseahead
from zerocontact.daemon.cli import main
from zerocontact.daemon.cli.common import UserError, read_rules_and_bytes
from zerocontact.daemon.parseahead import AHEAD_BYTES, ParseAhead
from zerocontact.daemon.paths import MANIFEST
from zerocontact.rules import load

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parsed ahead on Linux only")


@pytest.fixture
def one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parseahead.threading, "active_count", lambda: 1)


def no_parse_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on this process cannot parse TOML: a document must come from the child."""

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("the parent parsed the TOML itself")

    monkeypatch.setattr(tomli, "loads", refuse)


def test_a_big_file_comes_back_from_the_child_as_the_same_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread: None
) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('[settings]\ntimezone = "Europe/Berlin"\n' + many_people(2_000))
    data = path.read_bytes()
    assert len(data) >= AHEAD_BYTES
    expected = load(data, str(path), default_timezone="UTC")
    with ParseAhead.start(path) as ahead:
        assert ahead is not None and ahead.data == data
        no_parse_here(monkeypatch)
        rs, got = read_rules_and_bytes(path, ahead)
    assert got == data
    assert rs == expected and len(rs.people) == 2_000
    assert rs.settings.timezone == "Europe/Berlin"


def test_dates_in_the_file_come_back_as_dates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread: None
) -> None:
    """``marshal`` cannot carry a TOML date: the child's pickle does, and the rules are the same."""
    path = tmp_path / "rules.toml"
    text = many_people(1_500).replace('for = "90d"\n', "until = 2027-03-01T18:00:00+01:00\n", 1)
    path.write_text(text)
    expected_doc = tomli.loads(text)
    expected = load(text, str(path))
    with ParseAhead.start(path) as ahead:
        assert ahead is not None
        no_parse_here(monkeypatch)
        doc = ahead.document()
    assert doc == expected_doc
    assert load(path.read_bytes(), str(path), document=doc) == expected
    until = expected.people[0].schedule.until
    assert until is not None and until.isoformat() == "2027-03-01T18:00:00+01:00"


def test_a_mistake_deep_in_a_big_file_is_still_named_by_file_and_line(
    tmp_path: Path, one_thread: None
) -> None:
    """The child does not report errors: the parent parses again and says where, as always."""
    path = tmp_path / "rules.toml"
    lines = many_people(2_000).splitlines()
    lines[9_000] = 'why = "an unclosed quote'
    path.write_text("\n".join(lines) + "\n")
    with ParseAhead.start(path) as ahead:
        assert ahead is not None
        with pytest.raises(UserError) as parsed_ahead:
            read_rules_and_bytes(path, ahead)
    with pytest.raises(UserError) as in_process:
        read_rules_and_bytes(path)
    assert str(parsed_ahead.value) == str(in_process.value)
    assert f"{path}:9001:" in str(in_process.value)


def test_a_check_deep_in_a_big_file_is_still_named_by_key(tmp_path: Path, one_thread: None) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(many_people(2_000).replace('x = "p1999ex"', 'x = "no spaces allowed"'))
    with ParseAhead.start(path) as ahead, pytest.raises(UserError) as e:
        read_rules_and_bytes(path, ahead)
    assert f'{path}:11997:59: person "Person 1999", accounts.x:' in str(e.value)


def test_a_child_whose_document_is_never_asked_for_is_reaped(tmp_path: Path, one_thread: None) -> None:
    """A start that fails first (another daemon running, say) leaves no child behind, even one
    blocked writing a document bigger than the pipe holds."""
    path = tmp_path / "rules.toml"
    path.write_text(many_people(2_000))
    with ParseAhead.start(path) as ahead:
        assert ahead is not None
        pid = ahead.pid
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def test_a_child_that_dies_gives_way_to_the_ordinary_parse(tmp_path: Path, one_thread: None) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('[settings]\ntimezone = "UTC"\n' + many_people(2_000))
    expected = load(path.read_bytes(), str(path))
    with ParseAhead.start(path) as ahead:
        assert ahead is not None
        # before it can have finished: its document (~350 KB) cannot leave the pipe unread
        os.kill(ahead.pid, signal.SIGKILL)
        rs, _ = read_rules_and_bytes(path, ahead)
    assert rs == expected


def test_a_process_that_ignores_sigchld_still_gets_the_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread: None
) -> None:
    """Started with SIGCHLD ignored (a service manager or shell can leave it so), the child is
    reaped by the kernel and ``waitpid`` fails: the document still counts, and the start goes on."""
    path = tmp_path / "rules.toml"
    path.write_text('[settings]\ntimezone = "UTC"\n' + many_people(2_000))
    expected = load(path.read_bytes(), str(path))
    before = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        with ParseAhead.start(path) as ahead:
            assert ahead is not None
            no_parse_here(monkeypatch)
            rs, _ = read_rules_and_bytes(path, ahead)
    finally:
        signal.signal(signal.SIGCHLD, before)
    assert rs == expected


def test_a_start_refused_before_it_reads_the_rules_leaves_no_child(
    tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch, one_thread: None
) -> None:
    """``run`` forks before it checks for an installation; refused there (an installation record
    it cannot read, and another state directory), it says so and its child is reaped."""
    record = isolated_home / ".local/state/zerocontact" / MANIFEST
    record.parent.mkdir(parents=True)
    record.write_text("{not json")
    path = tmp_path / "rules.toml"
    path.write_text(many_people(2_000))
    started: list[ParseAhead] = []
    real = ParseAhead.start

    def start(rules: Path) -> ParseAhead | None:
        ahead = real(rules)
        if ahead is not None:
            started.append(ahead)
        return ahead

    monkeypatch.setattr(ParseAhead, "start", staticmethod(start))
    r = CliRunner().invoke(main, ["run", "--rules", str(path), "--state-dir", str(tmp_path / "other")])
    assert r.exit_code == 1 and "cannot be read" in r.output, r.output
    assert len(started) == 1
    with pytest.raises(ChildProcessError):
        os.waitpid(started[0].pid, os.WNOHANG)


def test_a_fork_the_system_refuses_leaves_the_ordinary_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread: None
) -> None:
    """At the process limit or under a seccomp filter ``fork`` fails; the start goes on, parsing
    in process. (Faked: tests run as root here, which no process limit stops.)"""
    path = tmp_path / "rules.toml"
    path.write_text(many_people(2_000))

    def refused() -> int:
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(parseahead.os, "fork", refused)
    before = len(os.listdir("/proc/self/fd"))
    assert ParseAhead.start(path) is None
    assert len(os.listdir("/proc/self/fd")) == before  # the pipe is closed again


def test_only_a_big_regular_file_is_parsed_ahead(tmp_path: Path, one_thread: None) -> None:
    small = tmp_path / "small.toml"
    small.write_text(many_people(1_000))  # ~200 KB: the fork and the pipe would cost more
    assert ParseAhead.start(small) is None
    assert ParseAhead.start(tmp_path / "missing.toml") is None  # the ordinary read says so
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    assert ParseAhead.start(fifo) is None  # and never opened: that would block
    small.write_text(many_people(2_000))
    with ParseAhead.start(small) as ahead:
        assert ahead is not None


def test_a_process_with_other_threads_is_not_forked(tmp_path: Path) -> None:
    """A fork copies only the calling thread: a lock another thread holds would stay held."""
    big = tmp_path / "big.toml"
    big.write_text(many_people(2_000))
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert ParseAhead.start(big) is None
    finally:
        stop.set()
        other.join()
