"""The commitment's files on disk: written when what is in force changes, left alone when not (a
restart on unchanged rules rewrites nothing, and at 10,000 people does not dump them again)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from zerocontact.daemon.commitment import Commitment
from zerocontact.daemon.paths import resolve
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
