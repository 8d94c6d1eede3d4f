"""How attempts leave the journal: ``log --json`` records, CSV for a spreadsheet, exact JSON.

Pure over the rows the journal's reader streams (``read_attempts``) and its column list; the
formats are documented in the README and kept stable.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from ..journal.schema import iso


def what(row: dict[str, Any]) -> str:
    """The request an attempt stopped ('GET host/path'), or its detail when there was none."""
    return f"{row['method'] or ''} {row['host'] or ''}{row['path'] or ''}".strip() or (row["detail"] or "")


def surfaces(row: dict[str, Any]) -> list[str]:
    """Every surface one attempt revealed, the first request's first (older journals: that one)."""
    first = row["surface"]
    more = sorted(x for x in str(row.get("surfaces") or "").split(",") if x and x != first)
    return ([first] if first else []) + more


def log_record(row: dict[str, Any]) -> dict[str, Any]:
    """The stable ``log --json`` object for one attempt (keys documented in the README)."""
    return {
        "time": row["time"],
        "person": row["person"],
        "platform": row["platform"],
        "surface": row["surface"],
        "surfaces": surfaces(row),
        "channel": row["channel"],
        "detail": what(row),
        "note": row["note"],
        "requests": row["requests"],
        "process": row["process"],
    }


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def export_csv(rows: Iterable[dict[str, Any]], cols: Sequence[str], out: TextIO) -> int:
    """Attempts as CSV with a header row; returns how many.

    For spreadsheets: a text cell starting with = + - @ (which a spreadsheet would run as a
    formula) gets a leading ' as OWASP advises. Use JSON for an exact copy.
    """
    w = csv.writer(out, lineterminator="\n")
    w.writerow(cols)
    n = 0
    for row in rows:
        w.writerow(
            [
                "'" + v if isinstance(v, str) and v.startswith(_FORMULA_START) else v
                for v in map(row.get, cols)
            ]
        )
        n += 1
    return n


def export_json(rows: Iterable[dict[str, Any]], cols: Sequence[str], out: TextIO, *, now: dt.datetime) -> int:
    """Attempts as ``{"exported_at", "attempts": [{column: value, …}, …]}``, exact; returns how many."""
    out.write(f'{{"exported_at": {json.dumps(iso(now))}, "attempts": [')
    n = 0
    for row in rows:
        item = json.dumps({c: row.get(c) for c in cols}, ensure_ascii=False)
        out.write(("," if n else "") + "\n  " + item)
        n += 1
    out.write("\n]}\n")
    return n
