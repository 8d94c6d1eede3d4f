"""The commitment's files on disk: written when what is in force changes, left alone when not (a
restart on unchanged rules rewrites nothing, and at 10,000 people does not dump them again)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from zerocontact.daemon import commitment
from zerocontact.daemon.commitment import Commitment, source_digest
from zerocontact.daemon.paths import Paths, resolve
from zerocontact.rules import load
from zerocontact.rules.dump import dump

RULES = '[[person]]\nname = "Sam"\naccounts = { instagram = "sam.example" }\n'
TIGHTER = RULES + '\n[[person]]\nname = "Alex"\naccounts = { x = "alexexample" }\n'
NOW = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)


def test_unchanged_rules_are_not_rewritten_and_changed_ones_are(tmp_path: Path) -> None:
    paths = resolve(tmp_path / "state", tmp_path / "config")
    paths.state_dir.mkdir(parents=True)
    first = Commitment(paths)
    first.decide(load(RULES, "rules.toml"), NOW)
    first.save()
    written = paths.in_force.read_text()
    assert load(written).people == load(RULES).people
    before = paths.in_force.stat()

    again = Commitment(paths)  # a restart: the same rules, read from another path
    again.decide(load(RULES, "elsewhere/rules.toml"), NOW + dt.timedelta(minutes=1))
    again.save()
    after = paths.in_force.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    again.decide(load(TIGHTER, "rules.toml"), NOW + dt.timedelta(minutes=2))  # tightening: at once
    again.save()
    assert again.in_force is not None
    assert paths.in_force.read_text() == dump(again.in_force)
    assert [p.name for p in load(paths.in_force.read_text()).people] == ["Sam", "Alex"]


LOCKED = '[lock]\ncooling_off = "2h"\n' + TIGHTER  # Sam and Alex, loosening waits 2 h
LOOSER = '[lock]\ncooling_off = "2h"\n' + RULES  # Alex removed


def _state(tmp_path: Path) -> tuple[Paths, dict[str, str]]:
    """State with LOCKED in force, and what the journal kept of it."""
    paths = resolve(tmp_path / "state", tmp_path / "config")
    paths.state_dir.mkdir(parents=True)
    kept: dict[str, str] = {}
    first = Commitment(paths)
    first.decide(load(LOCKED, "rules.toml"), NOW)
    first.save(keep=kept.__setitem__)
    return paths, kept


def test_a_restart_on_the_rules_in_force_reads_them_once(tmp_path: Path) -> None:
    """The copy in force is exactly the file's rules dumped: the file's Ruleset is taken as the rules
    in force (equal to what reading the copy gives), the decision is the same, nothing is rewritten."""
    paths, kept = _state(tmp_path)
    before = paths.in_force.stat()
    requested = load(LOCKED, "rules.toml")
    again = Commitment(paths, kept=kept, requested=requested)
    assert again.in_force is not None
    assert again.in_force.people[0] is requested.people[0]  # not parsed a second time
    read = Commitment(paths, kept=kept).in_force  # the copy parsed, as without the file's rules
    assert again.in_force == read and again.in_force.source == read.source == str(paths.in_force)
    d = again.decide(requested, NOW + dt.timedelta(minutes=1))
    assert d.effective is requested and d.pending == () and d.released == ()
    again.save(keep=kept.__setitem__)
    after = paths.in_force.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_an_in_force_copy_that_differs_from_the_file_is_read_and_honoured(tmp_path: Path) -> None:
    """The file was loosened while the daemon was stopped (Alex removed): the copy is parsed, Alex
    stays blocked for the cooling-off, and is released after it."""
    paths, kept = _state(tmp_path)
    requested = load(LOOSER, "rules.toml")
    again = Commitment(paths, kept=kept, requested=requested)
    assert again.in_force is not None and [p.name for p in again.in_force.people] == ["Sam", "Alex"]
    d = again.decide(requested, NOW + dt.timedelta(minutes=1))
    assert [p.name for p in d.effective.people] == ["Sam", "Alex"]
    assert [p.change.key for p in d.pending] == ["person:Alex"]
    assert d.pending[0].due == NOW + dt.timedelta(hours=2, minutes=1)
    again.save(keep=kept.__setitem__)
    assert [p.name for p in load(paths.in_force.read_text()).people] == ["Sam", "Alex"]
    later = Commitment(paths, kept=kept, requested=requested)
    done = later.decide(requested, NOW + dt.timedelta(hours=2, minutes=2))
    assert [c.key for c in done.released] == ["person:Alex"] and done.effective is requested


def test_a_copy_rewritten_to_match_a_loosened_file_does_not_skip_the_cooling_off(tmp_path: Path) -> None:
    """Both the file and the copy in force loosened while stopped, the copy to exactly what the
    loosened file dumps to: the journal's copy is in force, so the one-read path is not taken."""
    paths, kept = _state(tmp_path)
    requested = load(LOOSER, "rules.toml")
    paths.in_force.write_text(dump(requested))
    again = Commitment(paths, kept=kept, requested=requested)
    assert any("in-force" in note or paths.in_force.name in note for note in again.tampering)
    d = again.decide(requested, NOW + dt.timedelta(minutes=1))
    assert [p.name for p in d.effective.people] == ["Sam", "Alex"]
    assert [p.change.key for p in d.pending] == ["person:Alex"]


def _digested(tmp_path: Path, text: str = LOCKED) -> tuple[Paths, dict[str, str], str]:
    """State whose copy in force was saved from ``text``'s bytes, with their digest, and what the
    journal kept of it."""
    paths = resolve(tmp_path / "state", tmp_path / "config")
    paths.state_dir.mkdir(parents=True)
    kept: dict[str, str] = {}
    digest = source_digest(text.encode(), "UTC")
    first = Commitment(paths, "UTC")
    first.decide(load(text, "rules.toml", "UTC"), NOW, digest)
    first.save(keep=kept.__setitem__)
    return paths, kept, digest


def _no_dump(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Count the commitment's dumps (each is ~0.07 s at 10,000 people)."""
    calls: list[object] = []

    def counting(rules: object) -> str:
        calls.append(rules)
        return dump(rules)  # type: ignore[arg-type]

    monkeypatch.setattr(commitment, "dump", counting)
    return calls


def test_the_copy_in_force_says_which_file_bytes_it_holds_and_still_reads_as_rules(tmp_path: Path) -> None:
    paths, kept, digest = _digested(tmp_path)
    text = paths.in_force.read_text()
    lines = text.splitlines()
    assert lines[1] == f"# dumped from the rules file with digest {digest}"
    assert kept[paths.in_force.name] == text  # the journal holds the same text, digest and all
    assert load(text).people == load(LOCKED).people  # a comment: the copy loads as before
    assert "\n".join(lines[:1] + lines[2:]) + "\n" == dump(load(LOCKED))


def test_a_restart_on_the_same_bytes_takes_the_files_rules_without_dumping_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths, kept, digest = _digested(tmp_path)
    before = paths.in_force.stat()
    dumps = _no_dump(monkeypatch)
    requested = load(LOCKED, "rules.toml", "UTC")
    again = Commitment(paths, "UTC", kept=kept, requested=requested, requested_digest=digest)
    assert again.in_force is not None and again.in_force.people[0] is requested.people[0]
    assert again.in_force == Commitment(paths, "UTC", kept=kept).in_force  # what reading it gives
    d = again.decide(requested, NOW + dt.timedelta(minutes=1), digest)
    assert d.effective is requested and d.pending == ()
    again.save(keep=kept.__setitem__)
    after = paths.in_force.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert dumps == []


@pytest.mark.parametrize(
    ("data", "zone"),
    [
        ((LOCKED + "# an edit that changes nothing\n").encode(), "UTC"),  # other bytes, same rules
        (LOCKED.encode(), "Europe/Berlin"),  # the same bytes read in another default time zone
    ],
)
def test_another_digest_falls_back_to_comparing_dumps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes, zone: str
) -> None:
    paths, kept, digest = _digested(tmp_path)
    other = source_digest(data, zone)
    assert other != digest
    dumps = _no_dump(monkeypatch)
    requested = load(data.decode(), "rules.toml", "UTC")
    again = Commitment(paths, "UTC", kept=kept, requested=requested, requested_digest=other)
    assert len(dumps) == 1  # the file's rules dumped once, compared with the copy: equal
    assert again.in_force is not None and again.in_force.people[0] is requested.people[0]
    again.decide(requested, NOW + dt.timedelta(minutes=1), other)
    again.save(keep=kept.__setitem__)
    # the copy now names the bytes it was last taken from
    assert paths.in_force.read_text().splitlines()[1].endswith(other)


def test_a_file_loosened_while_stopped_keeps_its_cooling_off_and_the_copy_loses_its_digest(
    tmp_path: Path,
) -> None:
    paths, kept, _ = _digested(tmp_path)
    looser = source_digest(LOOSER.encode(), "UTC")
    requested = load(LOOSER, "rules.toml", "UTC")
    again = Commitment(paths, "UTC", kept=kept, requested=requested, requested_digest=looser)
    d = again.decide(requested, NOW + dt.timedelta(minutes=1), looser)
    assert [p.name for p in d.effective.people] == ["Sam", "Alex"]
    assert [p.change.key for p in d.pending] == ["person:Alex"]
    again.save(keep=kept.__setitem__)
    # what is in force is not what the file asks for: the copy names no file bytes
    text = paths.in_force.read_text()
    assert "digest" not in text and [p.name for p in load(text).people] == ["Sam", "Alex"]
    later = Commitment(paths, "UTC", kept=kept, requested=requested, requested_digest=looser)
    assert [c.key for c in later.decide(requested, NOW + dt.timedelta(hours=3), looser).released] == [
        "person:Alex"
    ]
    later.save(keep=kept.__setitem__)
    assert paths.in_force.read_text().splitlines()[1].endswith(looser)  # the file's rules, at last


def test_a_copy_forged_with_the_loosened_files_digest_loses_to_the_journal(tmp_path: Path) -> None:
    """The file loosened and the copy rewritten to claim it was dumped from those very bytes: the
    journal's copy is in force, so the claim is never read and Alex's cooling-off still runs."""
    paths, kept, _ = _digested(tmp_path)
    looser = source_digest(LOOSER.encode(), "UTC")
    body = dump(load(LOOSER)).split("\n", 1)
    paths.in_force.write_text(f"{body[0]}\n# dumped from the rules file with digest {looser}\n{body[1]}")
    requested = load(LOOSER, "rules.toml", "UTC")
    again = Commitment(paths, "UTC", kept=kept, requested=requested, requested_digest=looser)
    assert again.tampering
    d = again.decide(requested, NOW + dt.timedelta(minutes=1), looser)
    assert [p.name for p in d.effective.people] == ["Sam", "Alex"]
    assert [p.change.key for p in d.pending] == ["person:Alex"]


def test_the_digest_covers_the_bytes_and_the_time_zone() -> None:
    a = source_digest(LOCKED.encode(), "UTC")
    assert a == source_digest(LOCKED.encode(), "UTC") and len(a) == 64
    assert a != source_digest(LOCKED.encode() + b"\n", "UTC")
    assert a != source_digest(LOCKED.encode(), "Europe/Berlin")
