"""The words the figures are said in, shared by the terminal page (``stats``) and the HTML report.

One place for them so that both say the same thing, gently: why a period starts where it does, this
week against last, streaks of days without an attempt, and the titles of surfaces and channels.
"""

from __future__ import annotations

import datetime as dt

from .stats import Stats

PERIOD_BASIS = {
    "rules": "since the rules took effect",
    "first_attempt": "since the first recorded attempt",
    "forgotten": "since the oldest attempt still kept (older ones were forgotten)",
    "since": "from the date you asked for",
    "empty": "the journal has nothing yet",
}


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def week_sentence(s: Stats) -> str:
    """This week against last, said gently; no comparison when the journal does not cover both."""
    a, b = s.this_week.count, s.last_week.count
    if not s.last_week.complete:
        return f"Last 7 days: {plural(a, 'attempt')}. There is not yet a full week before it to compare with."
    if a < b:
        return f"Fewer attempts in the last 7 days than in the 7 before: {a:,}, down from {b:,}."
    if a == b == 0:
        return "No attempts in the last 7 days, nor in the 7 before."
    if a == b:
        return f"As many attempts in the last 7 days as in the 7 before ({a:,})."
    if a - b <= b // 10:
        return f"About as many attempts in the last 7 days as in the 7 before ({a:,} and {b:,})."
    return (
        f"A harder week: {a:,} attempts in the last 7 days, {b:,} in the 7 before. "
        "Urges come in waves; noticing them is part of letting them pass."
    )


def streak_sentence(s: Stats, today: dt.date) -> str:
    """The current and longest runs of days without an attempt, in words."""
    cur, best = s.current_streak_days, s.longest_streak_days
    last = s.per_day[-1][0]
    is_today = last == today
    if cur == 0:
        text = (
            "Today has had an attempt; tomorrow is a new day."
            if is_today
            else f"The last day of this period, {last:%a %-d %b}, had an attempt."
        )
    elif cur == len(s.per_day):
        text = f"{plural(cur, 'day')} in a row without an attempt: every day of this period."
    else:
        end = "today included" if is_today else f"up to {last:%a %-d %b}"
        text = f"{plural(cur, 'day')} in a row without an attempt, {end}."
    if best > cur:
        text += f" Your longest stretch so far: {plural(best, 'day')}."
    return text


SURFACE_TITLES = {
    "profile": "Profiles",
    "stories": "Stories",
    "posts": "Posts",
    "presence": "Online status",
    "search": "Searches",
    "messages": "Messages",
    "feed": "Feeds",
    "client": "Web clients",
}
CHANNEL_TITLES = {"web": "In the browser", "app": "In an app", "bypass": "Around the block"}


def platform_title(name: str) -> str:
    from zerocontact.rules.platforms import presets

    p = presets().get(name)
    return p.title if p else name
