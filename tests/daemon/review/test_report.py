"""The HTML report: self-contained (no scripts, nothing fetched), private, with the notes escaped,
and rendered in headless Chromium in light and dark."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from zctest.journals import write, zc
from zctest.support import need_tool, wait_for


def render(sample: Path, tmp_path: Path, *args: str) -> tuple[Path, str]:
    r = zc("report", "--state-dir", str(sample), *args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    path = Path(r.stdout.removeprefix("wrote ").strip())
    return path, path.read_text(encoding="utf-8")


def test_report_is_self_contained_private_and_has_the_notes(sample: Path, tmp_path: Path) -> None:
    path, html = render(sample, tmp_path, "--until", "2026-11-14")
    assert path.parent == tmp_path and path.name.startswith("report-") and path.suffix == ".html"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    low = html.lower()
    assert "<script" not in low and "http://" not in low and "https://" not in low and "src=" not in low
    assert "url(" not in low and "@import" not in low
    assert "default-src 'none'" in html  # even a browser that found a reference would fetch nothing
    assert "saw &lt;b&gt;them&lt;/b&gt; &amp; &#34;him&#34; =1+1" in html  # the note, escaped
    assert "our song came on" in html and "<b>them</b>" not in html
    assert "prefers-color-scheme:dark" in html
    assert "Looking back" in html and "5 days in a row without an attempt" in html
    assert html.count("<svg") >= 6 and 'class="bar"' in html and 'class="cell"' in html
    for unkind in ("fail", "relapse", "weak", "shame", "bad"):
        assert unkind not in low


def test_report_of_an_empty_journal(state: Path, tmp_path: Path) -> None:
    write(state / "journal.sqlite3", [])
    _, html = render(state, tmp_path, "--out", str(tmp_path / "empty.html"))
    assert "Not a single attempt in this period." in html and "No notes in this period." in html


def test_report_open_without_a_browser_is_fine(sample: Path, tmp_path: Path) -> None:
    r = zc("report", "--state-dir", str(sample), "--open", cwd=tmp_path, BROWSER="true")
    assert r.returncode == 0 and "Traceback" not in r.stderr


@pytest.fixture
def screenshots(sample: Path, tmp_path: Path) -> Iterator[dict[str, bytes]]:
    chromium = need_tool("chromium")
    path, _ = render(sample, tmp_path, "--out", str(tmp_path / "report.html"))
    shots: dict[str, bytes] = {}
    for scheme, extra in (
        ("light", []),
        ("dark", ["--force-dark-mode", "--blink-settings=preferredColorScheme=0"]),
    ):
        png = tmp_path / f"report-{scheme}.png"
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--hide-scrollbars",
                f"--user-data-dir={tmp_path / ('profile-' + scheme)}",
                *extra,
                f"--screenshot={png}",
                "--window-size=1000,2400",
                path.as_uri(),
            ],
            capture_output=True,
            timeout=120,
        )
        shots[scheme] = wait_for(
            lambda png=png: png.exists() and png.read_bytes(), 30, f"{scheme} screenshot"
        )
    yield shots


def test_report_renders_in_chromium_in_light_and_dark(screenshots: dict[str, bytes]) -> None:
    for png in screenshots.values():
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 30_000  # charts and text, not a blank page
    assert screenshots["light"] != screenshots["dark"]  # the page follows the colour scheme
