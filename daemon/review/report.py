"""The HTML report: one self-contained page (inline SVG and CSS, no scripts, nothing fetched).

Turns ``Stats`` and the notes the journal hands over into the ``templates/report.html`` page:
the chart geometry is computed here, the markup lives in the template.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from importlib import resources
from typing import TYPE_CHECKING, Any

from ..journal.schema import parse_stored
from .periods import local_date
from .stats import NONE_KEY, Stats
from .words import (
    CHANNEL_TITLES,
    PERIOD_BASIS,
    SURFACE_TITLES,
    platform_title,
    plural,
    streak_sentence,
    week_sentence,
)

if TYPE_CHECKING:
    import jinja2

NOTES_LIMIT = 500  # the report shows at most this many notes (the newest); export has them all


def _template_env() -> jinja2.Environment:
    import jinja2  # only the report needs it: every other command starts faster

    root = resources.files("zerocontact.daemon").joinpath("templates")
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: root.joinpath(name).read_text(encoding="utf-8")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _day_chart(s: Stats, width: float = 720.0) -> dict[str, Any]:
    """Geometry for the per-day bar chart (an SVG viewBox ``width`` wide: 720 on a wide screen, 360 on
    a phone, where the same text is then drawn at a readable size)."""
    height, top = 150.0, 8.0
    n = len(s.per_day)
    slot = width / n
    gap = min(slot * 0.2, 3.0) if slot > 2 else 0.0
    # a bar is at most a slim column: one day, or a few, is not a solid block across the chart
    bar_w = max(min(slot - gap, width * 0.06), 0.6)
    peak = max((c for _, c in s.per_day), default=0) or 1
    bars: list[dict[str, Any]] = []
    quiet: list[dict[str, Any]] = []
    for i, (d, c) in enumerate(s.per_day):
        x = i * slot
        label = f"{d:%a %-d %b %Y}: {plural(c, 'attempt') if c else 'no attempts'}"
        if c:
            h = max((height - top) * c / peak, 2.0)
            bars.append({"x": x + (slot - bar_w) / 2, "y": height - h, "w": bar_w, "h": h, "label": label})
        else:
            quiet.append({"cx": x + slot / 2, "r": min(max(slot * 0.22, 1.0), 3.5), "label": label})
    # date labels: the first day, then the first of each month (or each year for long periods)
    labels: list[dict[str, Any]] = []
    step_months = 1 if n <= 200 else 3 if n <= 600 else 12
    for i, (d, _) in enumerate(s.per_day):
        if i == 0 or (d.day == 1 and (d.month - 1) % step_months == 0):
            x = i * slot + (slot / 2 if n <= 31 else 0)
            if labels and x - labels[-1]["x"] < 70:
                if i == 0:
                    continue
                labels.pop()
            fmt = "%-d %b" if n <= 200 else "%b %Y"
            labels.append({"x": x, "text": d.strftime(fmt), "anchor": _anchor(x, width, n)})
    return {"width": width, "height": height, "bars": bars, "quiet": quiet, "labels": labels, "peak": peak}


def _anchor(x: float, width: float, n: int) -> str:
    """Where a date label hangs from its x, so it never runs past either edge of the chart."""
    if x > width - 60:
        return "end"
    if n <= 31 and x >= 30:
        return "middle"
    return "start"


HEAT_LEVELS = 4  # discrete shades, each with its own colour per scheme (contrast checked by a test)


def _heat_chart(s: Stats) -> dict[str, Any]:
    """Geometry for the hour × weekday map: 24 columns by 7 rows on a wide screen, and turned (7
    columns by 24 rows) on a phone, so it fits without scrolling."""
    peak = max((c for row in s.hour_weekday for c in row), default=0) or 1
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    long_days = ["Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays"]
    cells = []
    for w, row in enumerate(s.hour_weekday):
        for h, c in enumerate(row):
            cells.append(
                {
                    "x": 44 + h * 27,
                    "y": 4 + w * 27,
                    "tx": 40 + w * 38,
                    "ty": 4 + h * 20,
                    "level": -(-HEAT_LEVELS * c // peak) if c else 0,  # 1..4, rounded up
                    "label": f"{long_days[w]} {h:02d}:00–{h:02d}:59: {plural(c, 'attempt') if c else 'none'}",
                }
            )
    return {"cells": cells, "days": days, "hours": list(range(0, 24, 3)), "levels": range(1, HEAT_LEVELS + 1)}


def _bars(counts: dict[str, int], title: Any, none: str = "Not recorded") -> list[dict[str, Any]]:
    peak = max(counts.values(), default=0) or 1
    total = sum(counts.values()) or 1
    return [
        {
            "label": title(k) if k != NONE_KEY else none,
            "count": c,
            "w": round(max(100 * c / peak, 1.0), 1),  # percent of the track
            "pct": round(100 * c / total),
        }
        for k, c in counts.items()
    ]


def _cards(s: Stats) -> list[tuple[int, str]]:
    """The summary's figures, only those that say something: a zero streak or 'no day without an
    attempt' on day one would be a wall of zeros; the week's count always shows (none is news)."""
    days = len(s.per_day)
    cards: list[tuple[int, str]] = []

    def days_word(n: int) -> str:
        return "day" if n == 1 else "days"

    if s.current_streak_days:
        n = s.current_streak_days
        cards.append((n, f"{days_word(n)} in a row without an attempt"))
    if s.longest_streak_days and s.longest_streak_days != s.current_streak_days:
        n = s.longest_streak_days
        cards.append((n, f"{days_word(n)}: the longest such stretch"))
    if s.zero_days:
        cards.append((s.zero_days, f"of {plural(days, 'day')} without any attempt"))
    tail = f", {s.last_week.count:,} in the 7 before" if s.last_week.complete else ""
    cards.append(
        (s.this_week.count, f"{'attempt' if s.this_week.count == 1 else 'attempts'} in the last 7 days{tail}")
    )
    return cards


def _hidden(s: Stats) -> dict[str, Any] | None:
    """The "kept out of sight" table: one row a day that had any, one column a platform."""
    if not s.hidden_total and not s.hidden_missed:
        return None
    platforms = list(s.hidden_per_platform)
    return {
        "platforms": [{"title": platform_title(p), "count": s.hidden_per_platform[p]} for p in platforms],
        "days": [
            {"label": f"{d:%a %-d %b}", "counts": [per.get(p, 0) for p in platforms]}
            for d, per in s.hidden or ()
        ],
    }


def _best_hours(s: Stats) -> str | None:
    """'evenings (18:00–23:59)' and such: the part of the day that holds the most attempts."""
    if not s.total:
        return None
    parts = [
        ("nights (00:00–05:59)", range(0, 6)),
        ("mornings (06:00–11:59)", range(6, 12)),
        ("afternoons (12:00–17:59)", range(12, 18)),
        ("evenings (18:00–23:59)", range(18, 24)),
    ]
    sums = [(sum(row[h] for row in s.hour_weekday for h in hours), name) for name, hours in parts]
    n, name = max(sums)
    return f"Most attempts came in the {name}: {round(100 * n / s.total)}% of them."


def render_report(
    s: Stats, notes_: list[dict[str, Any]], notes_total: int, *, generated: dt.datetime, tz: zoneinfo.ZoneInfo
) -> str:
    """The self-contained HTML report: inline SVG, inline CSS, no scripts, nothing fetched."""
    from ..blockpage import describe

    def local(t: dt.datetime) -> str:
        return f"{t.astimezone(tz):%a %-d %b %Y, %H:%M}"

    first_day, last_day = s.per_day[0][0], s.per_day[-1][0]
    today = local_date(generated, tz)
    return str(
        _template_env()
        .get_template("report.html")
        .render(
            s=s,
            period_text=(
                f"{first_day:%-d %B %Y} – "
                + ("today" if last_day == today else f"{last_day:%-d %B %Y}")
                + f" · {plural(len(s.per_day), 'day')} · {s.timezone}"
            ),
            basis=PERIOD_BASIS.get(s.basis, ""),
            generated=local(generated),
            week_sentence=week_sentence(s),
            streak_sentence=streak_sentence(s, today),
            hours_sentence=_best_hours(s),
            days_with=len(s.per_day) - s.zero_days,
            first=local(s.first) if s.first else None,
            last=local(s.last) if s.last else None,
            day_chart=_day_chart(s),
            day_chart_narrow=_day_chart(s, 360.0),
            heat=_heat_chart(s),
            cards=_cards(s),
            hidden=_hidden(s),
            first_days=len(s.per_day) <= 2,
            groups=[
                ("What you tried to see", _bars(s.per_surface, lambda k: SURFACE_TITLES.get(k, k.title()))),
                ("Where", _bars(s.per_platform, platform_title)),
                ("Whom", _bars(s.per_person, str)),
                ("How", _bars(s.per_channel, lambda k: CHANNEL_TITLES.get(k, k))),
                *(
                    [("On which device", _bars(s.per_device, str, none="This computer"))]
                    if s.per_device
                    else []
                ),
            ],
            notes=[
                {
                    "when": local(parse_stored(n["time"])),
                    "iso": n["time"],
                    "what": describe(n["platform"], n["surface"]) if n["platform"] else "",
                    "text": n["note"],
                }
                for n in notes_
            ],
            notes_total=notes_total,
            plural=plural,
        )
    )
