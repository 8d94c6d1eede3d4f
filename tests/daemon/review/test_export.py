"""Export: every column of every attempt, CSV safe for a spreadsheet, JSON exact, files private."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from zctest.journals import NOW, zc

from zerocontact.daemon.journal.files import open_readonly
from zerocontact.daemon.review import export


def test_export_csv_round_trip(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine.csv"
    r = zc("export", "--state-dir", str(sample), "--out", str(out))
    assert r.returncode == 0 and "wrote 6 attempts" in r.stderr
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    with out.open(newline="", encoding="utf-8") as f:
        got = list(csv.DictReader(f))
    con = open_readonly(sample / "journal.sqlite3")
    try:
        rows = [dict(r) for r in con.execute("SELECT * FROM attempts ORDER BY time, id")]
    finally:
        con.close()
    assert list(got[0]) == list(rows[0])  # every column, in the table's order
    assert len(got) == len(rows)
    for g, row in zip(got, rows, strict=True):
        for k, v in row.items():
            text = "" if v is None else str(v)
            if text.startswith(("=", "+", "-", "@")):
                text = "'" + text  # a formula is defused for spreadsheets
            assert g[k] == text, k
    assert got[3]["note"] == 'saw <b>them</b> & "him" =1+1'


def test_export_json_is_exact(sample: Path) -> None:
    r = zc("export", "--state-dir", str(sample), "--format", "json")
    data = json.loads(r.stdout)
    con = open_readonly(sample / "journal.sqlite3")
    try:
        rows = [dict(r) for r in con.execute("SELECT * FROM attempts ORDER BY time, id")]
    finally:
        con.close()
    assert data["attempts"] == rows and data["exported_at"].endswith("Z")
    assert export.export_json([], ["id"], io.StringIO(), now=NOW) == 0
