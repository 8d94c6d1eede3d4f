"""Helpers for tests: wait by polling (never sleep to synchronise), and require system tools."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


@contextlib.contextmanager
def mounted(*args: str) -> Iterator[Callable[..., None]]:
    """``mount ARGS`` (the target is the last argument); yields ``again(OPTIONS…)`` to remount it,
    and unmounts at the end whatever happens. Needs root and a sandbox that permits mounts: skipped
    where either is missing locally, a failure in CI."""
    target = args[-1]
    r = subprocess.run(["mount", *args], capture_output=True, text=True) if os.geteuid() == 0 else None
    if r is None or r.returncode != 0:
        why = "mounting needs root" if r is None else f"mount is not permitted here: {r.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why} (CI must run these as root)")
        pytest.skip(why)

    def again(*options: str) -> None:
        subprocess.run(["mount", *options, target], check=True, capture_output=True)

    try:
        yield again
    finally:
        subprocess.run(["umount", "-l", target], capture_output=True)


def fill(directory: Path) -> Path:
    """Write a file into ``directory`` until its file system is full; return that file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 16, 512, 1):  # big pieces, then the last partial page
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    return filler


def benchmark_module(name: str) -> Any:
    """A self-contained module of benchmarks/ (e.g. ``bodies``, the platform-shaped bodies), loaded
    from its file: the repository root is never on the tests' path."""
    import importlib.util
    import sys
    from pathlib import Path

    key = f"zctest_benchmarks_{name}"
    if key in sys.modules:
        return sys.modules[key]
    path = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(key, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


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


def many_people(n: int) -> str:
    """A rules file of ``n`` people in the scale benchmark's shape (two Instagram accounts, an X
    handle, a block list, a duration and a reason each): ~200 bytes a person."""
    return "".join(
        f'[[person]]\nname = "Person {i}"\n'
        f'accounts = {{ instagram = ["p{i}.example", "{10**9 + i}"], x = "p{i}ex" }}\n'
        f'block = ["profile", "stories", "posts", "search"]\nfor = "90d"\nwhy = "Healing, number {i}."\n'
        for i in range(n)
    )
