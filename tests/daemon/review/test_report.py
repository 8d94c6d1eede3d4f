"""The HTML report: self-contained (no scripts, nothing fetched), private, with the notes escaped,
and rendered in headless Chromium in light and dark."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from zctest.journals import att, write, zc
from zctest.support import VIEWS, contrast, keep_screenshot, need_tool, rgb

from zerocontact.daemon.journal import Journal


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
    assert html.count("<svg") == 4 and 'class="bar"' in html and 'class="l4"' in html  # wide and phone
    for unkind in ("fail", "relapse", "weak", "shame", "bad"):
        assert unkind not in low


def test_report_shows_what_was_kept_out_of_sight(sample: Path, tmp_path: Path) -> None:
    _, before = render(sample, tmp_path, "--until", "2026-11-14", "--out", str(tmp_path / "a.html"))
    assert "Kept out of sight" not in before  # nothing removed yet: no empty table
    j = Journal(sample / "journal.sqlite3")
    j.start()
    j.hidden(dt.date(2026, 11, 3), "instagram", 1200)
    j.hidden(dt.date(2026, 11, 4), "x", 3, missed=2)
    assert j.flush()
    j.close()
    _, html = render(sample, tmp_path, "--until", "2026-11-14", "--out", str(tmp_path / "b.html"))
    assert "Kept out of sight" in html
    assert "1,203 posts, stories and mentions of theirs never reached your feeds" in html
    assert "<td>Tue 3 Nov</td><td>1,200</td><td>·</td>" in html
    assert "<th>1,200</th><th>3</th>" in html  # per platform, most first
    assert "2 responses with something of theirs could not be rewritten safely" in html


def test_report_of_an_empty_journal(state: Path, tmp_path: Path) -> None:
    write(state / "journal.sqlite3", [])
    _, html = render(state, tmp_path, "--out", str(tmp_path / "empty.html"))
    assert "Not a single attempt in this period." in html and "No notes in this period." in html


def test_report_open_without_a_browser_is_fine(sample: Path, tmp_path: Path) -> None:
    r = zc("report", "--state-dir", str(sample), "--open", cwd=tmp_path, BROWSER="true")
    assert r.returncode == 0 and "Traceback" not in r.stderr


def day_one(state: Path) -> Path:
    """A journal started an hour ago with two attempts since: what a new user's report shows."""
    now = dt.datetime.now(dt.UTC)
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    write(
        state / "journal.sqlite3",
        [
            att((now - dt.timedelta(minutes=40)).strftime(stamp)),
            att((now - dt.timedelta(minutes=10)).strftime(stamp)),
        ],
        notes={1: "saw a photo of us"},
        started=[(now - dt.timedelta(hours=1)).strftime(stamp)],
    )
    return state


def test_day_one_is_not_a_wall_of_zeros_nor_one_solid_block(state: Path, tmp_path: Path) -> None:
    _, html = render(day_one(state), tmp_path, "--out", str(tmp_path / "day-one.html"))
    assert "<b>0</b>" not in html  # no zero streaks, no 'of 1 day without any attempt'
    # (an hour ago may have been yesterday in this machine's zone: one day or two, both are a start)
    assert re.search(r"This is the start: the report covers (1 day|2 days) so far", html)
    assert "<b>2</b><span>attempts in the last 7 days</span>" in html
    bars = re.findall(r'<rect class="bar" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', html)
    assert len(bars) in (2, 4)  # each day's bar, in the wide and the phone chart
    for x, w in bars:
        assert float(w) < 0.1 * 720 and float(x) > 0  # a slim column, not the chart's whole width


@pytest.mark.browser
@pytest.mark.parametrize("which", ["two weeks", "day one"])
def test_report_screenshots_light_dark_and_phone_fit_and_keep_contrast(
    sample: Path, tmp_path: Path, which: str
) -> None:
    from zctest.cdp import Browser

    if which == "day one":
        other = tmp_path / "day-one-state"
        other.mkdir()
        path, _ = render(day_one(other), tmp_path, "--out", str(tmp_path / "report.html"))
    else:
        path, _ = render(sample, tmp_path, "--out", str(tmp_path / "report.html"), "--until", "2026-11-14")
    need_tool("chromium")
    browser = Browser(tmp_path / "profile")
    shots: dict[str, bytes] = {}
    try:
        for name, (width, height, phone, dark) in VIEWS.items():
            browser.view(path.as_uri(), width=width, height=height, mobile=phone, dark=dark)
            fit = browser.overflowing()
            assert fit["bad"] == [] and fit["scrollWidth"] <= fit["width"], (name, fit)
            page = browser.page
            bg = rgb(page.evaluate("getComputedStyle(document.body).backgroundColor"))
            assert (sum(bg) < 150) is dark, (name, bg)  # the page follows the colour scheme
            # the hour map's shades, as drawn: each level stands apart from the one below it,
            # the faintest from an empty cell, the strongest from the card
            shade = [
                rgb(
                    page.evaluate(f"getComputedStyle(document.querySelector('.legend .{c}')).backgroundColor")
                )
                for c in ("cell0", "l1", "l2", "l3", "l4")
            ]
            card = rgb(page.evaluate("getComputedStyle(document.querySelector('section')).backgroundColor"))
            steps = [contrast(shade[i], shade[i + 1]) for i in range(4)]
            assert min(steps) >= 1.4 and contrast(shade[4], card) >= 4.5, (name, steps)
            # on a phone the map is the turned one, drawn whole, without a scroll bar
            heat = page.evaluate(
                "[...document.querySelectorAll('svg.heat')].filter(e => e.getBoundingClientRect().width > 0)"
                ".map(e => e.getAttribute('class'))"
            )
            if which == "two weeks":
                assert heat == (["chart narrow heat"] if phone else ["chart wide heat"]), (name, heat)
            shots[name] = browser.full_screenshot()
            keep_screenshot(tmp_path, f"report-{which.replace(' ', '-')}-{name}", shots[name])
    finally:
        browser.close()
    assert len(shots["light"]) > 30_000  # charts and text, not a blank page
    assert shots["light"] != shots["dark"] and shots["phone"] != shots["light"]


def test_attempts_on_a_device_are_shown_per_device_in_the_report_and_stats(
    state: Path, tmp_path: Path
) -> None:
    write(
        state / "journal.sqlite3",
        [
            att("2026-11-02T22:00:00Z", process="device phone"),
            att("2026-11-02T22:30:00Z", process="device phone"),
            att("2026-11-03T10:00:00Z", process="firefox (4242)"),
        ],
    )
    _, html = render(state, tmp_path, "--since", "2026-11-01", "--until", "2026-11-04", "--timezone", "UTC")
    group = html[html.index("<h3>On which device</h3>") :]
    group = group[: group.index("</ul>")]
    assert re.findall(r'<span class="lbl">([^<]+)</span>', group) == ["phone", "This computer"]
    assert re.findall(r'<span class="num">([^<]+)</span>', group) == ["2", "1"]
    r = zc(
        "stats",
        "--state-dir",
        str(state),
        "--since",
        "2026-11-01",
        "--until",
        "2026-11-04",
        "--timezone",
        "UTC",
    )
    assert r.returncode == 0 and "By device    phone 2 · this computer 1" in r.stdout, r.stdout + r.stderr
    alone = tmp_path / "alone"
    alone.mkdir(mode=0o700)
    write(alone / "journal.sqlite3", [att("2026-11-05T10:00:00Z")])  # a computer-only journal
    _, html = render(alone, tmp_path, "--out", str(tmp_path / "alone.html"))
    assert "On which device" not in html  # no device, no device section
