"""Review commands: log, stats, report, export, forget (read the journal; forget deletes)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import paths as pathmod


def register(
    main: click.Group, user_error: type[click.ClickException], state_dir_option: Callable[[Any], Any]
) -> None:
    @main.command("log")
    @click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
    @click.option("--limit", type=click.IntRange(1), default=None, help="At most this many attempts.")
    @state_dir_option
    def log_cmd(as_json: bool, limit: int | None, state_dir: Path | None) -> None:
        """The blocked attempts, newest first."""
        from .journal import JournalError, attempts

        p = pathmod.resolve(state_dir)
        try:
            rows = list(attempts(p.journal, limit=limit))
        except JournalError as e:
            raise user_error(str(e)) from None
        if not rows and not as_json:
            click.echo("No blocked attempts yet.")
        for r in rows:
            detail = f"{r['method'] or ''} {r['host'] or ''}{r['path'] or ''}".strip() or (r["detail"] or "")
            if as_json:
                click.echo(
                    json.dumps(
                        {
                            "time": r["time"],
                            "person": r["person"],
                            "platform": r["platform"],
                            "surface": r["surface"],
                            "channel": r["channel"],
                            "detail": detail,
                            "note": r["note"],
                            "requests": r["requests"],
                            "process": r["process"],
                        },
                        ensure_ascii=False,
                    )
                )
            else:
                when = dt.datetime.fromisoformat(r["time"].replace("Z", "+00:00")).astimezone()
                note = f'  note: "{r["note"]}"' if r["note"] else ""
                click.echo(
                    f"{when:%Y-%m-%d %H:%M}  {r['person'] or '-':<12} {r['platform'] or '-':<10} "
                    f"{r['surface'] or '-':<9} {detail}{note}"
                )
