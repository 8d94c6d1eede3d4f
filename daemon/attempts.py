"""What counts as one attempt: one look at the person, as the person would count it.

A look starts with a top-level navigation (a page load, a reload, a typed URL) or, in a single-page
app, with the first API call for the person after a quiet gap (clicking from the feed to their
profile loads no document). The sub-requests and API calls of that page load fold into it while they
come within ``PAGE_LOAD_SECONDS`` of the look's start (counted from the start, never extended by
later requests) or keep coming less than ``QUIET_SECONDS`` apart (a view that is still loading).
Reloads and new navigations are always new looks: an evening of checking every 20 seconds is as
many attempts as there were checks.

``DayCount`` is today's number of attempts on every channel (web, app, bypass), in the same zone
and with the same day boundaries as ``stats``, so the block page's "today" agrees with the log.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

PAGE_LOAD_SECONDS = 10.0
QUIET_SECONDS = 4.0
MAX_OPEN_LOOKS = 1000  # bounded memory: the oldest open looks are closed first


def is_navigation(headers: Mapping[str, str], kind: str) -> bool:
    """Whether a request (lower-case header names) starts a new look by itself.

    Browsers say so with Fetch Metadata (``Sec-Fetch-Mode: navigate`` and ``Sec-Fetch-Dest:
    document``); without it (curl, older clients) a request that accepts HTML is a page load, one that
    names a referring page or says it is XHR is a sub-request, and otherwise a page URL is a look."""
    mode, dest = headers.get("sec-fetch-mode", ""), headers.get("sec-fetch-dest", "")
    if mode or dest:
        return mode == "navigate" and dest in ("document", "")
    if headers.get("x-requested-with"):
        return False
    if "text/html" in headers.get("accept", ""):
        return True
    if headers.get("referer"):
        return False
    return kind == "page"


@dataclass
class Look:
    """An attempt still open for folding: its journal key, when it started, its last request."""

    key: str
    start: float
    last: float
    surfaces: set[str] = field(default_factory=set)
    requests: int = 1


class Looks:
    """The open looks per (person, platform); ``observe`` says whether a request opens a new one."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], Look] = {}

    def current(self, person: str, platform: str, navigation: bool, now: float) -> Look | None:
        """The open look this request folds into, or None when it starts a new one."""
        if navigation:
            return None
        look = self._open.get((person, platform))
        if look is None:
            return None
        if now - look.start <= PAGE_LOAD_SECONDS or now - look.last <= QUIET_SECONDS:
            return look
        return None

    def fold(self, look: Look, surface: str | None, now: float) -> bool:
        """Fold one more request into ``look``; True when it revealed a surface not yet seen."""
        look.last, look.requests = now, look.requests + 1
        if surface and surface not in look.surfaces:
            look.surfaces.add(surface)
            return True
        return False

    def open(self, person: str, platform: str, key: str, surface: str | None, now: float) -> Look:
        if len(self._open) >= MAX_OPEN_LOOKS:
            oldest = min(self._open, key=lambda k: self._open[k].last)
            del self._open[oldest]
        look = self._open[(person, platform)] = Look(key, now, now, {surface} if surface else set())
        return look


class DayCount:
    """Attempts recorded today (local day of ``zone()``), on every channel."""

    def __init__(self, zone: Callable[[], str], clock: Callable[[], dt.datetime], initial: int = 0) -> None:
        self._zone, self._clock = zone, clock
        self._day = self._today()
        self.count = initial

    def _today(self) -> dt.date:
        return self._clock().astimezone(zoneinfo.ZoneInfo(self._zone())).date()

    def date(self) -> dt.date:
        """Today, the local day counts are kept for (also the day of a "kept out of sight" figure)."""
        return self._today()

    def add(self) -> int:
        """One more attempt; returns today's count with it (a new local day starts again at 1)."""
        day = self._today()
        if day != self._day:
            self._day, self.count = day, 0
        self.count += 1
        return self.count
