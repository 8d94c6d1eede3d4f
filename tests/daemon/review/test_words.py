"""How the figures are said: gently, and only comparing what can fairly be compared."""

from __future__ import annotations

from pathlib import Path

from zctest.journals import att, stats, write

from zerocontact.daemon.review import words


def test_a_harder_week_is_said_kindly(tmp_path: Path) -> None:
    path = write(
        tmp_path / "j.sqlite3",
        [att("2026-11-03T20:00:00Z")] + [att(f"2026-11-{d:02d}T20:00:00Z") for d in (10, 11, 12)],
        started=["2026-10-20T09:00:00Z"],
    )
    text = words.week_sentence(stats(path, "2026-11-14T12:00:00Z"))
    assert text.startswith("A harder week: 3 attempts in the last 7 days, 1 in the 7 before.")
    assert "waves" in text
