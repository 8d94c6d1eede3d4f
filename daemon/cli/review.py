"""Review commands: log, stats, report, export, forget (all read the journal; forget deletes).

They read the journal through ``journal.reader`` (its own read-only connection, so they work while
the daemon writes and when it is stopped; ``forget`` deletes through ``journal.forget``). The
figures come from ``review``; this module only turns them into words and files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
import tempfile
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import click
import tomli

from .. import paths as pathmod
from ..journal.forget import count_before, forget
from ..journal.reader import Filters, read_attempts, reading
from ..journal.schema import DEVICE_PREFIX, parse_stored
from ..review import export, periods, report, words
from ..review.periods import ReviewError
from ..review.stats import NONE_KEY, Stats, compute_stats
from ..status import Status
from .common import UserError, state_dir_option, user_errors, warn

SPARK = "▁▂▃▄▅▆▇█"
SHADES = ("░░", "▒▒", "▓▓", "██")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _clean(text: str | None, width: int | None = None) -> str:
    """Text safe to print in a terminal: no control characters (a note cannot move the cursor)."""
    s = "".join(c if c.isprintable() else " " for c in (text or "-"))
    if width is not None and len(s) > width:
        s = s[: width - 1] + "…"
    return s


def rules_zone(p: pathmod.Paths) -> str | None:
    """The zone the user's rules count days in (``[settings] timezone``): as the running or last
    daemon published it, else as the rules in force or the rules file say; None when none says."""
    st = Status.read(p.status)
    if st is not None and st.timezone:
        return st.timezone
    for path in (p.in_force, p.rules):
        try:
            doc = tomli.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        settings = doc.get("settings")
        tz = settings.get("timezone") if isinstance(settings, dict) else None
        if isinstance(tz, str) and tz:
            return tz
    return None


def _zone(name: str | None, p: pathmod.Paths | None = None) -> zoneinfo.ZoneInfo:
    """--timezone, else the rules' own zone, else this computer's (the block page counts the same)."""
    from .common import local_timezone

    chosen = name or (rules_zone(p) if p is not None else None)
    try:
        return periods.zone(chosen or local_timezone())
    except ReviewError:
        if name:
            raise
        return zoneinfo.ZoneInfo("UTC")  # the system names a zone Python does not know


def _local(t: dt.datetime, tz: zoneinfo.ZoneInfo) -> str:
    return f"{t.astimezone(tz):%a %Y-%m-%d %H:%M}"


@contextlib.contextmanager
def _pipe_safe() -> Iterator[None]:
    """``zerocontact log | head`` ends quietly when the reader stops (no BrokenPipeError traceback)."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)


@contextlib.contextmanager
def _private_file(path: Path) -> Iterator[TextIO]:
    """Write ``path`` readable only by its owner (0600), all at once: a temp file renamed over it."""
    path = path.expanduser()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent.resolve())
    except OSError as e:
        raise UserError(f"cannot write in {path.parent}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            yield f
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise UserError(f"cannot write {path}: {e.strerror}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# -- text for the terminal -------------------------------------------------------------------------
def _sparkline_rows(s: Stats) -> list[str]:
    """Attempts per day, 4 weeks a line, weeks from Monday; '·' is a day with none. Each line is
    labelled with the first and last day it shows."""
    peak = max((c for _, c in s.per_day), default=0) or 1
    counts = dict(s.per_day)
    first, last = s.per_day[0][0], s.per_day[-1][0]
    monday = first - dt.timedelta(days=first.weekday())
    rows = []
    while monday <= last:
        weeks = []
        for w in range(4):
            week = ""
            for i in range(7):
                d = monday + dt.timedelta(days=7 * w + i)
                if d < first or d > last:
                    week += " "
                elif counts[d] == 0:
                    week += "·"
                else:
                    week += SPARK[min(7, max(0, -(-counts[d] * 8 // peak) - 1))]
            weeks.append(week)
        # labelled by the days the row shows (never by a Monday before them: an attempt on
        # 1 December must not read as "30 November")
        a, b = max(first, monday), min(last, monday + dt.timedelta(days=27))
        label = f"{a:%-d %b}–{b:%-d %b}" if a != b else f"{a:%-d %b}"
        rows.append(f"  {label:<13}  {' '.join(weeks).rstrip()}")
        monday += dt.timedelta(days=28)
    return rows


def _heat_rows(s: Stats) -> list[str]:
    peak = max((c for row in s.hour_weekday for c in row), default=0) or 1
    head = "       " + "".join(f"{h:02d}    " for h in range(0, 24, 3)).rstrip()
    rows = [head]
    for w, row in enumerate(s.hour_weekday):
        cells = "".join(" ·" if c == 0 else SHADES[min(3, (c * 4 - 1) // peak)] for c in row)
        rows.append(f"  {WEEKDAYS[w]}  {cells}")
    return rows


def _totals(counts: dict[str, int]) -> str:
    return " · ".join(f"{_clean(k)} {v:,}" for k, v in counts.items()) or "-"


def _devices_named(counts: dict[str, int]) -> dict[str, int]:
    """Per-device counts as the terminal says them: the attempts on no device are this computer's."""
    return {("this computer" if k == NONE_KEY else k): v for k, v in counts.items()}


def stats_text(s: Stats, tz: zoneinfo.ZoneInfo, today: dt.date) -> str:
    """The terminal page for ``stats``: sentences first, then the per-day sparkline, totals and map."""
    first_day, last_day = s.per_day[0][0], s.per_day[-1][0]
    until = "today" if last_day == today else f"{last_day:%a %-d %b %Y}"
    lines = [
        f"{first_day:%a %-d %b %Y} – {until}: {words.plural(len(s.per_day), 'day')} ({s.timezone}), "
        f"{words.PERIOD_BASIS.get(s.basis, s.basis)}.",
        "",
        f"  {words.week_sentence(s)}",
        f"  {words.streak_sentence(s, today)}",
    ]
    if s.total:
        days_with = words.plural(len(s.per_day) - s.zero_days, "day")
        lines.append(
            f"  {words.plural(s.total, 'attempt')} in all, on {days_with}; "
            f"{words.plural(s.zero_days, 'day')} with none."
        )
        assert s.first and s.last
        lines.append(f"  First: {_local(s.first, tz)} · most recent: {_local(s.last, tz)}")
    else:
        lines.append("  Not a single attempt in this period.")
    lines += ["", "Per day (· is a day with none)", *_sparkline_rows(s)]
    if s.hidden_total or s.hidden_missed:
        lines += [
            "",
            f"Kept out of sight: {s.hidden_total:,} (their entries taken out of feeds, trays, suggestions)",
        ]
        lines.append(f"  By platform  {_totals(s.hidden_per_platform)}")
        for d, per in s.hidden or ():
            lines.append(f"  {d:%a %-d %b}   {_totals(per)}")
        if s.hidden_missed:
            lines.append(
                f"  {words.plural(s.hidden_missed, 'response')} with theirs could not be rewritten safely"
                " and went through unchanged."
            )
    if s.total:
        lines += [
            "",
            f"  By person    {_totals(s.per_person)}",
            f"  By platform  {_totals(s.per_platform)}",
            f"  By surface   {_totals(s.per_surface)}",
            f"  By channel   {_totals(s.per_channel)}",
            *([f"  By device    {_totals(_devices_named(s.per_device))}"] if s.per_device else []),
            "",
            "When the urge comes (local hour × weekday)",
            *_heat_rows(s),
        ]
    return "\n".join(lines)


def _log_lines(rows: Iterator[dict[str, Any]], tz: zoneinfo.ZoneInfo) -> Iterator[str]:
    """The readable table: one line an attempt, its note (if any) on the line below."""
    for i, r in enumerate(rows):
        if i == 0:
            yield f"{'When':<16}  {'Person':<12} {'Platform':<10} {'Surface':<9} {'Channel':<7} What"
        when = parse_stored(r["time"]).astimezone(tz)
        extra = f"  ({r['requests']} requests)" if (r["requests"] or 1) > 1 else ""
        if (r["process"] or "").startswith(DEVICE_PREFIX):  # one of the person's devices
            extra += f"  on {_clean(r['process'].removeprefix(DEVICE_PREFIX))}"
        yield (
            f"{when:%Y-%m-%d %H:%M}  {_clean(r['person'], 12):<12} {_clean(r['platform'], 10):<10} "
            f"{_clean('+'.join(export.surfaces(r)) or None, 9):<9} {_clean(r['channel'], 7):<7} "
            f"{_clean(export.what(r))}{extra}"
        )
        if r["note"]:
            yield f"{'':16}  note: “{_clean(r['note'])}”"


# -- the commands ------------------------------------------------------------------------------------


def resolve(journal: Path, names: tuple[str, ...]) -> tuple[str, ...]:
    """--person values as the journal spells them; a name it lacks is said, not an error."""
    if not names:
        return ()
    with reading(journal) as j:
        found, missing = j.resolve_people(names)
        known = j.people()
    for name in missing:
        warn(f"no attempts name {name!r}" + (f"; the journal names {', '.join(known)}" if known else ""))
    return found


def figures(
    journal: Path,
    now: dt.datetime,
    tz: zoneinfo.ZoneInfo,
    s: dt.datetime | None,
    u: dt.datetime | None,
    person: tuple[str, ...],
) -> Stats:
    who = resolve(journal, person)
    if person and not who:
        raise ReviewError("none of the people asked for is in the journal")
    with reading(journal) as j:
        return compute_stats(j, now=now, tz=tz, since=s, until=u, who=who)


def period(
    since: str | None, until: str | None, tz: zoneinfo.ZoneInfo, now: dt.datetime
) -> tuple[dt.datetime | None, dt.datetime | None]:
    s = periods.parse_when(since, tz, now, what="--since") if since else None
    u = periods.parse_when(until, tz, now, end=True, what="--until") if until else None
    if s and u and u <= s:
        raise ReviewError("the period is empty: --until is not after --since")
    return s, u


since_opt = click.option(
    "--since",
    metavar="WHEN",
    default=None,
    help="From this date (2026-11-01), date-time (2026-11-01T22:30), 'today', or span (7d = the "
    "last 7 days with today, 12h = the last 12 hours).",
)
until_opt = click.option(
    "--until", metavar="WHEN", default=None, help="Up to this date (included) or date-time (excluded)."
)
person_opt = click.option(
    "--person", multiple=True, help="Only this person (repeat for several; any letter case)."
)
tz_opt = click.option(
    "--timezone",
    "tz_name",
    metavar="ZONE",
    default=None,
    help="IANA zone for days (default: the rules' [settings] timezone, else this computer's).",
)


@click.command("log")
@since_opt
@until_opt
@person_opt
@click.option("--platform", multiple=True, help="Only this platform, e.g. instagram (repeatable).")
@click.option("--surface", multiple=True, help="Only this surface, e.g. stories (repeatable).")
@click.option("--channel", multiple=True, help="Only this channel: web, app or bypass (repeatable).")
@click.option("--device", multiple=True, help="Only attempts on this device (`devices list`; repeatable).")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most this many attempts.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@tz_opt
@state_dir_option
def log_cmd(
    since: str | None,
    until: str | None,
    person: tuple[str, ...],
    platform: tuple[str, ...],
    surface: tuple[str, ...],
    channel: tuple[str, ...],
    device: tuple[str, ...],
    limit: int | None,
    as_json: bool,
    tz_name: str | None,
    state_dir: Path | None,
) -> None:
    """The blocked attempts, newest first, with the notes typed on the pause page."""
    p = pathmod.resolve(state_dir)
    with user_errors():
        tz = _zone(tz_name, p)
        s, u = period(since, until, tz, dt.datetime.now(dt.UTC))
        who = resolve(p.journal, person)
        f = Filters(s, u, who, platform, surface, channel, device)
        rows = read_attempts(p.journal, f, limit, on_damage=warn) if who or not person else iter(())
        n = 0
        with _pipe_safe():
            if as_json:
                for r in rows:
                    click.echo(json.dumps(export.log_record(r), ensure_ascii=False))
            else:
                for line in _log_lines(rows, tz):
                    click.echo(line)
                    n += 1
                if n == 0:
                    click.echo("No attempts match." if f.any or person else "No blocked attempts yet.")


@click.command("stats")
@since_opt
@until_opt
@person_opt
@click.option("--json", "as_json", is_flag=True, help="The figures as one JSON object.")
@tz_opt
@state_dir_option
def stats_cmd(
    since: str | None,
    until: str | None,
    person: tuple[str, ...],
    as_json: bool,
    tz_name: str | None,
    state_dir: Path | None,
) -> None:
    """How the urge has gone: per day, streaks of days without an attempt, when and where.

    The period starts when the rules took effect (or at --since) and ends now (or at --until).
    """
    p = pathmod.resolve(state_dir)
    now = dt.datetime.now(dt.UTC)
    with user_errors():
        tz = _zone(tz_name, p)
        s, u = period(since, until, tz, now)
        st = figures(p.journal, now, tz, s, u, person)
    with _pipe_safe():
        if as_json:
            click.echo(json.dumps(st.as_json(), ensure_ascii=False, indent=2))
        else:
            click.echo(stats_text(st, tz, periods.local_date(now, tz)))


@click.command("report")
@since_opt
@until_opt
@person_opt
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write it (default: report-YYYY-MM-DD.html in the current folder).",
)
@click.option("--open", "open_it", is_flag=True, help="Open it in the web browser afterwards.")
@tz_opt
@state_dir_option
def report_cmd(
    since: str | None,
    until: str | None,
    person: tuple[str, ...],
    out: Path | None,
    open_it: bool,
    tz_name: str | None,
    state_dir: Path | None,
) -> None:
    """Write one private HTML page with the figures, charts and your notes (no scripts, loads nothing)."""
    p = pathmod.resolve(state_dir)
    now = dt.datetime.now(dt.UTC)
    with user_errors():
        tz = _zone(tz_name, p)
        s, u = period(since, until, tz, now)
        st = figures(p.journal, now, tz, s, u, person)
        with reading(p.journal) as j:
            kept, n_notes = j.notes(st.start, st.end, st.who, limit=report.NOTES_LIMIT)
    html = report.render_report(st, kept, n_notes, generated=now, tz=tz)
    target = out if out is not None else Path(f"report-{periods.local_date(now, tz):%Y-%m-%d}.html")
    with _private_file(target) as f:
        f.write(html)
    target = target.expanduser().resolve()
    click.echo(f"wrote {target}")
    if open_it:
        import webbrowser

        try:
            opened = webbrowser.get().open(target.as_uri())
        except webbrowser.Error:
            opened = False
        if not opened:
            click.echo("No web browser found here; open the file above yourself.", err=True)


@click.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json"]),
    default=None,
    help="csv (for a spreadsheet) or json (exact); default: from --out's suffix, else csv.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file, private to you (default: standard output).",
)
@state_dir_option
def export_cmd(fmt: str | None, out: Path | None, state_dir: Path | None) -> None:
    """Every attempt with every column, oldest first, for your own records or a therapist."""
    p = pathmod.resolve(state_dir)
    if fmt is None:
        fmt = "json" if out is not None and out.suffix.lower() == ".json" else "csv"
    now = dt.datetime.now(dt.UTC)

    def write(f: TextIO) -> int:
        rows = read_attempts(p.journal, Filters(), newest_first=False, on_damage=warn)
        if fmt == "csv":
            return export.export_csv(rows, cols, f)
        return export.export_json(rows, cols, f, now=now)

    with user_errors():
        with reading(p.journal) as j:  # a missing or unreadable journal: before any output
            cols = j.columns()
        if out is None:
            with _pipe_safe():
                write(sys.stdout)
        else:
            with _private_file(out) as f:
                n = write(f)
            click.echo(f"wrote {words.plural(n, 'attempt')} to {out.expanduser().resolve()}", err=True)


@click.command("forget")
@click.option("--before", "before_text", required=True, metavar="WHEN", help="Delete attempts before this.")
@click.option("--yes", is_flag=True, help="Do not ask; needed when not at a terminal.")
@tz_opt
@state_dir_option
def forget_cmd(before_text: str, yes: bool, tz_name: str | None, state_dir: Path | None) -> None:
    """Delete attempts (and their notes) from before a date, for good. Works while the daemon runs.

    WHEN is a date (2026-11-01: everything before that day), a date-time, or a span (90d: keep
    the last 90 days). It asks first; at no terminal it needs --yes.
    """
    p = pathmod.resolve(state_dir)
    with user_errors():
        tz = _zone(tz_name, p)
        now = dt.datetime.now(dt.UTC)
        before = periods.parse_when(before_text, tz, now, what="--before")
        if before > now:
            raise UserError(
                f"--before {before_text!r} is in the future ({_local(before, tz)}): forget deletes "
                "only what is already past, e.g. --before today, or --before 90d to keep 90 days"
            )
        n, oldest = count_before(p.journal, before)
        if n == 0:
            click.echo(f"Nothing to forget: no attempts before {_local(before, tz)}.")
            return
        assert oldest is not None
        what = (
            f"{words.plural(n, 'attempt')} from before {_local(before, tz)} (the oldest from "
            f"{_local(parse_stored(oldest), tz)}), with their notes"
        )
        if not yes:
            if not sys.stdin.isatty():
                raise UserError(f"this would delete {what}, for good; add --yes to confirm")
            if not click.confirm(f"Delete {what}? This cannot be undone", default=False):
                click.echo("Nothing was deleted.")
                sys.exit(1)
        done = forget(p.journal, before)
    click.echo(f"Forgot {words.plural(done, 'attempt')} from before {_local(before, tz)}.")
