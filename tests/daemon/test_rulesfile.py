"""Only a regular file of bounded size is read as rules: FIFOs, devices and huge files are refused
at once (a real FIFO, a real symlink to /dev/zero), never read until memory or patience runs out."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from zerocontact.daemon.rulesfile import MAX_BYTES, RulesFileError, read_rules_file

RULES = b'[[person]]\nname = "Sam"\naccounts = { instagram = "sam.example" }\n'


def read_soon(path: Path) -> bytes | BaseException:
    """``read_rules_file`` in a thread that must finish within 5 s (a blocked open would not)."""
    out: list[bytes | BaseException] = []

    def run() -> None:
        try:
            out.append(read_rules_file(path))
        except BaseException as e:
            out.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive(), f"reading {path} did not return"
    return out[0]


def test_a_regular_file_and_a_link_to_one_are_read(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_bytes(RULES)
    link = tmp_path / "link.toml"
    link.symlink_to(path)
    assert read_rules_file(path) == RULES and read_rules_file(link) == RULES


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "rules.toml"
    os.mkfifo(fifo)
    got = read_soon(fifo)
    assert isinstance(got, RulesFileError)
    assert str(got) == f"{fifo} is a FIFO (named pipe): zerocontact reads its rules only from a regular file"


def test_a_link_to_dev_zero_is_refused_without_reading_it(tmp_path: Path) -> None:
    link = tmp_path / "rules.toml"
    link.symlink_to("/dev/zero")
    got = read_soon(link)
    assert isinstance(got, RulesFileError)
    assert str(got).startswith(f"{link} (a link to /dev/zero) is a character device: ")


def test_a_directory_is_refused(tmp_path: Path) -> None:
    got = read_soon(tmp_path)
    assert isinstance(got, RulesFileError) and "is a directory" in str(got)


def test_a_file_over_the_bound_is_refused_and_one_at_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (MAX_BYTES + 1))
    with pytest.raises(RulesFileError, match=r"big.toml is larger than 8 MiB: a rules file is a few"):
        read_rules_file(big)
    big.write_bytes(b"#" * MAX_BYTES)
    assert len(read_rules_file(big)) == MAX_BYTES


def test_rules_for_ten_thousand_people_are_within_the_bound(tmp_path: Path) -> None:
    """The bound must not refuse the scale the rules promise (issue 12: 10,000 people, each with two
    Instagram accounts, an X handle, a block list, a duration and a reason, ~2 MB)."""
    from zerocontact.rules import load

    people = (
        f'[[person]]\nname = "Person {i}"\n'
        f'accounts = {{ instagram = ["p{i}.example", "{10**9 + i}"], x = "p{i}ex" }}\n'
        'block = ["profile", "stories", "posts", "search"]\nfor = "90d"\n'
        f'why = "Healing, number {i}. Every day without looking is a day for me."\n'
        for i in range(10_000)
    )
    path = tmp_path / "rules.toml"
    path.write_text("".join(people))
    assert path.stat().st_size > 2 << 20
    assert len(load(read_rules_file(path), str(path)).people) == 10_000


def test_a_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_rules_file(tmp_path / "nope.toml")
    with pytest.raises(NotADirectoryError):
        (tmp_path / "file").write_text("")
        read_rules_file(tmp_path / "file" / "rules.toml")
