"""A clock that a changed system clock cannot fool.

Trusted time advances with CLOCK_BOOTTIME (counts suspend; no one can set it) from an anchor that is
persisted with the boot id. It never goes back. A preload such as libfaketime fakes CLOCK_BOOTTIME
too, but not the kernel's own ``/proc/uptime`` read as a file: when the two disagree, the file is
the boot clock and the disagreement is reported as tampering. It moves to the wall clock only when two sources
agree: an HTTPS ``Date`` header from a platform and the system clock. The rule for a clock moved
back: trusted time simply keeps counting real elapsed time, so blocks end when they truly should.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .paths import write_private

log = logging.getLogger("zerocontact.clock")
TOLERANCE = dt.timedelta(minutes=2)


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def boottime() -> float:
    return time.clock_gettime(getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC))


def kernel_uptime() -> float | None:
    """Seconds since boot as the kernel writes them in /proc/uptime (suspend included, like
    CLOCK_BOOTTIME); None where there is no such file."""
    try:
        with open("/proc/uptime", "rb") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


FAKED_BOOT_CLOCK = dt.timedelta(seconds=30)  # /proc/uptime has 10 ms resolution; this is no drift


def wall() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class ClockStatus:
    trusted: bool
    skew_seconds: float  # system clock minus trusted time
    detail: str


class TrustedClock:
    def __init__(
        self,
        state_file: Path | None,
        *,
        wall_clock: Callable[[], dt.datetime] = wall,
        boot_clock: Callable[[], float] = boottime,
        boot: Callable[[], str] = boot_id,
        uptime: Callable[[], float | None] = kernel_uptime,
        on_tamper: Callable[[str], None] | None = None,
    ) -> None:
        self.state_file = state_file
        self._wall, self._boot, self._boot_id = wall_clock, boot_clock, boot()
        self.on_tamper = on_tamper
        self.confirmed = True
        self.detail = "system clock agrees"
        self._tampered = False
        faked = self._faked_boot_clock(boot_clock, uptime)
        if faked:
            self._boot = lambda: uptime() or 0.0
        saved = self._read()
        now_wall = self._wall()
        b = self._boot()
        if saved is None:
            self._anchor, self._anchor_boot = now_wall, b
        elif saved[1] == self._boot_id:
            # same boot: the elapsed time is known exactly, whatever the wall clock says
            self._anchor, self._anchor_boot = saved[0], saved[2]
        else:
            # after a reboot only the time since boot is provable; the downtime is taken from the wall
            # clock once an HTTPS Date header confirms it (until then blocks are never shortened)
            self._anchor, self._anchor_boot = saved[0], 0.0
            if now_wall > self.now() + TOLERANCE:
                self.confirmed = False
                self.detail = (
                    "restarted after a reboot: waiting for an HTTPS Date header to confirm the clock"
                )
        self.check()
        if faked:
            self.confirmed = False
            self.detail = faked
            log.warning("clock: %s", faked)
            if self.on_tamper:
                self.on_tamper(faked)

    @staticmethod
    def _faked_boot_clock(boot_clock: Callable[[], float], uptime: Callable[[], float | None]) -> str | None:
        """Why the process's boot clock cannot be believed, or None when the kernel's agrees with it."""
        kernel = uptime()
        if kernel is None:
            return None
        ours = boot_clock()
        off = dt.timedelta(seconds=ours - kernel)
        if abs(off) <= FAKED_BOOT_CLOCK:
            return None
        return (
            f"this process's clocks are faked (its boot clock is {abs(off)} "
            f"{'ahead of' if off > dt.timedelta(0) else 'behind'} the kernel's uptime): "
            "blocks follow the kernel's uptime"
        )

    def _read(self) -> tuple[dt.datetime, str, float] | None:
        if self.state_file is None:
            return None
        try:
            d = json.loads(self.state_file.read_text())
            return dt.datetime.fromisoformat(d["trusted"]), str(d["boot_id"]), float(d["boottime"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def now(self) -> dt.datetime:
        """Trusted UTC time."""
        return self._anchor + dt.timedelta(seconds=self._boot() - self._anchor_boot)

    def _reanchor(self, t: dt.datetime) -> None:
        if t > self.now():  # never back
            self._anchor, self._anchor_boot = t, self._boot()

    def check(self) -> ClockStatus:
        """Compare the system clock with trusted time; a jump is reported once as a tamper attempt."""
        skew = self._wall() - self.now()
        if abs(skew) <= TOLERANCE:
            if not self.confirmed:
                self.detail = "system clock agrees again"
            self.confirmed, self._tampered = True, False
        elif self.confirmed or not self._tampered:
            direction = "forward" if skew > dt.timedelta(0) else "back"
            where = "ahead of" if direction == "forward" else "behind"
            msg = f"the system clock is {abs(skew)} {where} trusted time"
            if self.confirmed or "reboot" not in self.detail:
                self.detail = f"{msg}: it was moved {direction}; blocks follow trusted time"
                self._tampered = True
                log.warning("clock: %s", self.detail)
                if self.on_tamper:
                    self.on_tamper(self.detail)
            self.confirmed = False
        return self.status()

    def status(self) -> ClockStatus:
        return ClockStatus(self.confirmed, (self._wall() - self.now()).total_seconds(), self.detail)

    def observe_date(self, date: dt.datetime) -> None:
        """A platform's HTTPS ``Date`` header: when it agrees with the system clock, trust that time."""
        w = self._wall()
        if abs(date - w) <= TOLERANCE and w > self.now() + TOLERANCE:
            log.info("clock: an HTTPS Date header confirms the system clock; trusted time moves to it")
            self._reanchor(w)
            self.detail = "confirmed by an HTTPS Date header"
            self.confirmed, self._tampered = True, False

    def save(self) -> None:
        """Persist the anchor (small, atomic, private); call off the event loop."""
        if self.state_file is None:
            return
        data = {"trusted": self.now().isoformat(), "boot_id": self._boot_id, "boottime": self._boot()}
        write_private(self.state_file, json.dumps(data))  # a failed write leaves no temporary file
