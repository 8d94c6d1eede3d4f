"""The trusted clock with injected clocks: jumps are noticed, blocks follow real elapsed time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from zerocontact.daemon.clock import TrustedClock

T0 = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)


class Fake:
    def __init__(self) -> None:
        self.wall = T0
        self.boot = 1000.0
        self.boot_id = "boot-a"

    def advance(self, seconds: float) -> None:
        self.wall += dt.timedelta(seconds=seconds)
        self.boot += seconds


def clock(f: Fake, state: Path | None, tampers: list[str] | None = None) -> TrustedClock:
    return TrustedClock(
        state,
        wall_clock=lambda: f.wall,
        boot_clock=lambda: f.boot,
        boot=lambda: f.boot_id,
        uptime=lambda: f.boot,  # the kernel agrees with the process's boot clock
        on_tamper=(tampers.append if tampers is not None else None),
    )


def test_forward_jump_is_ignored_and_reported_once(tmp_path: Path) -> None:
    f, tampers = Fake(), []
    c = clock(f, tmp_path / "clock.json", tampers)
    f.advance(60)
    f.wall += dt.timedelta(days=365)
    assert c.now() == T0 + dt.timedelta(seconds=60)
    assert not c.check().trusted
    c.check()
    assert len(tampers) == 1 and "moved forward" in tampers[0]


def test_backward_jump_does_not_extend_blocks(tmp_path: Path) -> None:
    f = Fake()
    c = clock(f, tmp_path / "clock.json")
    f.wall -= dt.timedelta(days=30)
    f.boot += 3600
    assert c.now() == T0 + dt.timedelta(hours=1)  # real elapsed time still counts
    assert "moved back" in c.check().detail


def test_restart_on_the_same_boot_keeps_real_time(tmp_path: Path) -> None:
    f = Fake()
    c = clock(f, tmp_path / "clock.json")
    c.save()
    f.advance(120)
    f.wall += dt.timedelta(days=365)  # moved while the daemon was stopped
    c2 = clock(f, tmp_path / "clock.json")
    assert c2.now() == T0 + dt.timedelta(seconds=120)
    assert not c2.check().trusted


def test_after_a_reboot_a_date_header_confirms_the_downtime(tmp_path: Path) -> None:
    f = Fake()
    c = clock(f, tmp_path / "clock.json")
    c.save()
    f.boot_id, f.boot = "boot-b", 30.0  # rebooted; three days passed for real
    f.wall = T0 + dt.timedelta(days=3)
    c2 = clock(f, tmp_path / "clock.json")
    assert c2.now() == T0 + dt.timedelta(seconds=30)  # only provable time so far
    assert not c2.status().trusted
    c2.observe_date(f.wall + dt.timedelta(days=300))  # a Date that disagrees with the wall clock: ignored
    assert c2.now() < T0 + dt.timedelta(days=1)
    c2.observe_date(f.wall - dt.timedelta(seconds=5))  # agrees with the wall clock: confirmed
    assert abs(c2.now() - f.wall) < dt.timedelta(seconds=1) and c2.check().trusted


def test_trusted_time_never_goes_back(tmp_path: Path) -> None:
    f = Fake()
    c = clock(f, None)
    before = c.now()
    c.observe_date(T0 - dt.timedelta(days=1))
    assert c.now() >= before


def test_a_faked_boot_clock_is_caught_by_the_kernels_uptime(tmp_path: Path) -> None:
    """libfaketime fakes CLOCK_BOOTTIME with the wall clock; /proc/uptime, read as a file, is real."""
    f, tampers = Fake(), []
    state = tmp_path / "clock.json"
    clock(f, state).save()  # a real run anchors trusted time at T0, boot clock 1000 s
    f.advance(60)
    years = 57 * 365 * 86400.0
    faked = TrustedClock(
        state,
        wall_clock=lambda: f.wall + dt.timedelta(seconds=years),
        boot_clock=lambda: f.boot + years,
        boot=lambda: f.boot_id,
        uptime=lambda: f.boot,
        on_tamper=tampers.append,
    )
    assert faked.now() == T0 + dt.timedelta(seconds=60)  # not 57 years on
    st = faked.status()
    assert not st.trusted and "faked" in st.detail
    assert len(tampers) >= 1 and any("faked" in t for t in tampers)
    f.advance(30)
    assert faked.now() == T0 + dt.timedelta(seconds=90)  # keeps counting the kernel's real time
