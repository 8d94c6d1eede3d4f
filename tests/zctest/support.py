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
