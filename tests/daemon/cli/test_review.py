"""The review commands as a user runs them: log's table and JSON, stats' page, forget asking first,
reading while the daemon writes, and one clear line and exit code for every user error.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest
from zctest.journals import UTC, ZC, att, write, zc

from zerocontact.daemon.journal import Journal


# -- log -------------------------------------------------------------------------------------------
def test_log_command_table_and_json(sample: Path) -> None:
    r = zc("log", "--state-dir", str(sample))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["When", "Person", "Platform", "Surface", "Channel", "What"]
    assert lines[1].startswith("2026-11-09 13:00  -")  # Berlin time; the stopped service has no person
    first = lines.index(next(x for x in lines if x.startswith("2026-11-01 22:30")))
    assert "GET www.instagram.com/stories/sam.example/" in lines[first]
    assert lines[first + 1].strip() == "note: “our song came on”"  # the note, under its attempt
    assert "\x1b" not in r.stdout and "couldn't [2J sleep" in r.stdout  # no terminal control from a note
    r = zc(
        "log",
        "--state-dir",
        str(sample),
        "--json",
        "--person",
        "sam",
        "--since",
        "2026-11-02",
        "--limit",
        "2",
    )
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["time"] for x in rows] == ["2026-11-08T23:30:00.000Z", "2026-11-02T20:05:00.000Z"]
    assert list(rows[0]) == [
        "time",
        "person",
        "platform",
        "surface",
        "surfaces",
        "channel",
        "detail",
        "note",
        "requests",
        "process",
    ]
    assert rows[0]["process"] == "Instagram" and rows[0]["note"] == "couldn't\x1b[2J sleep"  # JSON is exact
    assert rows[1]["detail"] == "GET x.com/samexample"
    r = zc("log", "--state-dir", str(sample), "--until", "2026-11-01", "--json")
    assert len(r.stdout.splitlines()) == 2  # an --until date includes its whole day
    r = zc("log", "--state-dir", str(sample), "--person", "Robin")
    assert r.returncode == 0 and r.stdout == "No attempts match.\n"
    assert "no attempts name 'Robin'; the journal names Alex, Sam" in r.stderr


def test_log_into_a_closed_pipe_ends_quietly(sample: Path) -> None:
    r = subprocess.run(
        f"{ZC} log --state-dir {sample} | head -n 1", shell=True, capture_output=True, text=True, timeout=60
    )
    assert r.stdout.startswith("When") and "Traceback" not in r.stderr and "Broken pipe" not in r.stderr


# -- user errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["log", "stats", "report", "export", "forget"])
def test_every_review_command_explains_a_missing_or_foreign_journal(tmp_path: Path, command: str) -> None:
    extra = ["--before", "2026-11-01", "--yes"] if command == "forget" else []
    r = zc(command, "--state-dir", str(tmp_path / "nothing"), *extra, cwd=tmp_path)
    assert r.returncode == 1 and "no journal at" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "journal.sqlite3").write_bytes(b"this is a shopping list, not a database\n" * 200)
    r = zc(command, "--state-dir", str(bad), *extra, cwd=tmp_path)
    assert r.returncode == 1 and str(bad / "journal.sqlite3") in r.stderr and "Traceback" not in r.stderr
    assert (bad / "journal.sqlite3").read_bytes().startswith(b"this is a shopping list")  # untouched


def test_a_damaged_journal_still_gives_what_can_be_read(state: Path) -> None:
    path = state / "journal.sqlite3"
    base = dt.datetime(2026, 1, 1, tzinfo=UTC)
    write(path, [att(base + dt.timedelta(minutes=i), detail="x" * 200) for i in range(3000)])
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 65536] = b"Z" * 65536  # sixteen pages of the middle are gone
    path.write_bytes(bytes(data))
    r = zc("export", "--state-dir", str(state), "--format", "json")
    assert r.returncode == 0 and "Traceback" not in r.stderr
    assert f"{path} is damaged" in r.stderr and "what can still be read" in r.stderr
    assert 0 < len(json.loads(r.stdout)["attempts"]) <= 3000
    r = zc("stats", "--state-dir", str(state))
    assert r.returncode == 1 and f"{path} is damaged" in r.stderr and "zerocontact export" in r.stderr
    r = zc("log", "--state-dir", str(state), "--json")
    assert r.returncode == 0 and "Traceback" not in r.stderr and r.stdout.count("\n") > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stats", "--since", "last tuesday"], "--since 'last tuesday' is not a date"),
        (["log", "--until", "2026-02-30"], "--until '2026-02-30' is not a real date"),
        (["stats", "--timezone", "Europe/Atlantis"], "unknown time zone 'Europe/Atlantis'"),
        (["report", "--since", "2026-11-05", "--until", "2026-11-01"], "--until is not after --since"),
        (["stats", "--until", "2026-10-01"], "the journal begins 2026-11-01 09:00"),
        (["stats", "--person", "Robin"], "none of the people asked for is in the journal"),
        (["forget", "--before", "soon"], "--before 'soon' is not a date"),
        (["export", "--format", "xml"], "Invalid value for '--format'"),
    ],
)
def test_user_errors_are_one_clear_line(sample: Path, args: list[str], message: str) -> None:
    r = zc(*args, "--state-dir", str(sample), cwd=sample)
    assert r.returncode in (1, 2) and message in r.stderr and "Traceback" not in r.stderr, r.stderr


# -- stats and forget ------------------------------------------------------------------------------
def test_stats_command(sample: Path) -> None:
    r = zc("stats", "--state-dir", str(sample), "--until", "2026-11-14")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith(
        "Sun 1 Nov 2026 – Sat 14 Nov 2026: 14 days (Europe/Berlin), since the rules took effect."
    )
    assert "6 attempts in all, on 4 days; 10 days with none." in out
    assert "5 days in a row without an attempt, up to Sat 14 Nov." in out
    assert "not yet a full week before it" in out  # the 7 days before began 10 hours before the rules
    # weeks from Monday, labelled by the days shown (1 Nov is a Sunday); · is a quiet day
    assert "  1 Nov–14 Nov         █ ▄·▄···· █·····\n" in out
    assert "By person    Sam 4 · Alex 1 · (none) 1" in out
    data = json.loads(zc("stats", "--state-dir", str(sample), "--json", "--timezone", "Asia/Kolkata").stdout)
    assert data["period"]["timezone"] == "Asia/Kolkata" and data["total"] == 6
    assert data["per_day"][0] == {"date": "2026-11-01", "count": 0}  # 21:30Z is 03:00 on the 2nd there
    assert data["per_day"][1] == {"date": "2026-11-02", "count": 2}


def test_stats_command_shows_what_was_kept_out_of_sight(sample: Path) -> None:
    j = Journal(sample / "journal.sqlite3")
    j.start()
    j.hidden(dt.date(2026, 11, 3), "instagram", 14)
    j.hidden(dt.date(2026, 11, 3), "x", 2)
    j.hidden(dt.date(2026, 11, 5), "instagram", 1, missed=1)
    assert j.flush()
    j.close()
    out = zc("stats", "--state-dir", str(sample), "--until", "2026-11-14").stdout
    assert "6 attempts in all, on 4 days; 10 days with none." in out  # removals are not attempts
    assert "Kept out of sight: 17 (their entries taken out of feeds, trays, suggestions)" in out
    assert "  By platform  instagram 15 · x 2" in out
    assert "  Tue 3 Nov   instagram 14 · x 2" in out and "  Thu 5 Nov   instagram 1" in out
    assert "1 response with theirs could not be rewritten safely and went through unchanged." in out
    data = json.loads(zc("stats", "--state-dir", str(sample), "--json", "--until", "2026-11-14").stdout)
    assert data["kept_out_of_sight"]["total"] == 17 and data["kept_out_of_sight"]["missed"] == 1


def test_review_commands_read_while_the_writer_runs_and_after_it_stops(state: Path) -> None:
    path = state / "journal.sqlite3"
    j = Journal(path)
    j.start()
    j.record(att("2026-11-02T10:00:00Z"))
    assert j.flush()
    r = zc("log", "--state-dir", str(state), "--json")  # the writer's connection is open (WAL)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1
    j.record(att("2026-11-02T11:00:00Z"))
    assert j.flush()
    assert json.loads(zc("stats", "--state-dir", str(state), "--json").stdout)["total"] == 2
    j.close()
    assert json.loads(zc("stats", "--state-dir", str(state), "--json").stdout)["total"] == 2
    assert zc("export", "--state-dir", str(state)).stdout.count("\n") == 3


def test_forget_command_asks_first(sample: Path) -> None:
    args = ("forget", "--state-dir", str(sample), "--before", "2026-11-03")
    r = zc(*args, input="")  # no terminal: it will not delete without --yes
    assert r.returncode == 1 and "would delete 3 attempts from before Tue 2026-11-03 00:00" in r.stderr
    assert "add --yes" in r.stderr
    assert len(zc("log", "--state-dir", str(sample), "--json").stdout.splitlines()) == 6
    r = zc(*args, "--yes")
    assert r.returncode == 0 and r.stdout == "Forgot 3 attempts from before Tue 2026-11-03 00:00.\n"
    assert len(zc("log", "--state-dir", str(sample), "--json").stdout.splitlines()) == 3
    r = zc(*args, "--yes")
    assert r.returncode == 0 and r.stdout.startswith("Nothing to forget")


def test_forget_refuses_a_future_date_and_leaves_a_trace_when_it_deletes(sample: Path) -> None:
    import sqlite3

    r = zc("forget", "--state-dir", str(sample), "--before", "2099-01-01", "--yes")
    assert r.returncode == 1 and "is in the future" in r.stderr and "Traceback" not in r.stderr
    assert len(zc("log", "--state-dir", str(sample), "--json").stdout.splitlines()) == 6  # nothing gone
    assert zc("forget", "--state-dir", str(sample), "--before", "2026-11-03", "--yes").returncode == 0
    con = sqlite3.connect(sample / "journal.sqlite3")
    try:
        events = con.execute("SELECT kind, detail FROM events WHERE kind = 'forgot'").fetchall()
    finally:
        con.close()
    assert events == [("forgot", "3 attempt(s) from before 2026-11-02T23:00:00.000Z")]


def test_log_reads_an_intact_journal_on_read_only_storage(sample: Path) -> None:
    from zctest.journals import read_only

    with read_only(sample):
        r = zc("log", "--state-dir", str(sample), "--json")
    assert r.returncode == 0, r.stderr
    assert "damaged" not in r.stderr and len(r.stdout.splitlines()) == 6
