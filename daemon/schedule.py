"""When the daemon wakes: at the next schedule transition or due loosening, every 30 s to reconcile,
and every 6 h for retention. APScheduler 3 only wakes the loop; what is in force is decided by the
pure policy (``rules.policy``) each time, so nothing is persisted here."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable

RECONCILE_SECONDS = 30.0
RETENTION_HOURS = 6


class Timers:
    """The daemon's timers on its own loop (named so as not to be taken for a rules `Schedule`)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        reconcile: Callable[[], Awaitable[None]],
        retention: Callable[[], Awaitable[None]],
    ) -> None:
        # imported here: APScheduler scans every installed package's entry points as it loads
        # (~20 ms), and the daemon starts its timers only once it enforces (app.Daemon._start)
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self._reconcile = reconcile
        self._scheduler = AsyncIOScheduler(
            event_loop=loop, job_defaults={"coalesce": True, "misfire_grace_time": None}
        )
        self._scheduler.add_job(reconcile, "interval", seconds=RECONCILE_SECONDS, id="reconcile")
        self._scheduler.add_job(
            retention,
            "interval",
            hours=RETENTION_HOURS,
            id="retention",
            next_run_time=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1),
        )

    async def start(self) -> None:
        self._scheduler.start()

    async def stop(self) -> None:
        self._scheduler.shutdown(wait=False)

    def wake_in(self, delay: dt.timedelta) -> None:
        """Reconcile once ``delay`` from now (of trusted time): APScheduler runs on the system clock,
        so the trusted instant is translated into it, plus 50 ms to land just past the change.

        A delay over a day is cut to a day: the 30 s reconcile re-decides (and re-aims this wake-up)
        long before, and a far "never" (a change due in the year 9999) cannot overflow the sum."""
        delay = min(delay, dt.timedelta(days=1))
        at = dt.datetime.now(dt.UTC) + delay + dt.timedelta(milliseconds=50)
        self._scheduler.add_job(self._reconcile, "date", run_date=at, id="transition", replace_existing=True)
