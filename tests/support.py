"""Helpers for tests: wait by polling (never sleep to synchronise), and require system tools."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable

import pytest


def wait_for[T](fn: Callable[[], T | None], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``fn`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)  # polling interval, not synchronisation


def need_tool(name: str) -> str:
    """A system tool's path; skip where it is missing locally, fail in CI (where .ci/run installs it)."""
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is required in CI (.ci/run installs it)")
    pytest.skip(f"{name} is not installed")


def chromium_args(profile: object, *args: str) -> list[str]:
    """Headless Chromium as CI can run it: as root, offline, a fresh profile."""
    return [
        need_tool("chromium"),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]


VIEWS = {  # name -> viewport (width, height), phone, dark
    "light": (1000, 900, False, False),
    "dark": (1000, 900, False, True),
    "phone": (390, 844, True, False),
    "phone-dark": (390, 844, True, True),
}


def keep_screenshot(tmp_path: object, name: str, png: bytes) -> None:
    """Write a screenshot into the test's folder and, when ZEROCONTACT_SCREENSHOTS names a folder
    (CI can keep it as an artifact), there too."""
    from pathlib import Path

    assert png[:8] == b"\x89PNG\r\n\x1a\n", name
    Path(str(tmp_path), f"{name}.png").write_bytes(png)
    out = os.environ.get("ZEROCONTACT_SCREENSHOTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        Path(out, f"{name}.png").write_bytes(png)


def rgb(css: str) -> tuple[int, int, int]:
    """'rgb(29, 33, 37)' (as getComputedStyle gives a colour) -> (29, 33, 37)."""
    r, g, b = (int(float(x)) for x in css[css.index("(") + 1 : css.index(")")].split(",")[:3])
    return r, g, b


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """The WCAG contrast ratio of two colours (1 to 21)."""

    def lum(c: tuple[int, int, int]) -> float:
        def ch(v: int) -> float:
            x = v / 255
            return x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4

        return 0.2126 * ch(c[0]) + 0.7152 * ch(c[1]) + 0.0722 * ch(c[2])

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)
