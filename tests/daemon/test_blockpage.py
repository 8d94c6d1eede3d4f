"""The block page as a person sees it: screenshots in headless Chromium, light, dark and on a
phone, with nothing wider than the screen (long words and a long reason included)."""

from __future__ import annotations

from pathlib import Path

import pytest
from zctest.support import VIEWS, contrast, keep_screenshot, need_tool, rgb

from zerocontact.daemon.blockpage import Pages, describe

pytestmark = pytest.mark.browser


def page(tmp_path: Path) -> Path:
    html = Pages().block(
        what=describe("instagram", "stories", "Jordan"),
        why="I want to heal, and looking keeps the wound open. "
        "https://www.instagram.com/stories/jordan.rivers/3141592653589793238/?utm_source=ig_story_item_share",
        today_count=3,
        lifts_on="1 March 2027",
        instead="Text a friend",
        attempt_id="t000001",
    )
    path = tmp_path / "block.html"
    path.write_text(html, encoding="utf-8")
    return path


def test_block_page_screenshots_light_dark_and_phone_fit_the_screen(tmp_path: Path) -> None:
    from zctest.cdp import Browser

    url = page(tmp_path).as_uri()
    need_tool("chromium")
    browser = Browser(tmp_path / "profile")
    shots = {}
    try:
        for name, (width, height, phone, dark) in VIEWS.items():
            browser.view(url, width=width, height=height, mobile=phone, dark=dark)
            fit = browser.overflowing()
            assert fit["bad"] == [] and fit["scrollWidth"] <= fit["width"], (name, fit)
            text = browser.page.evaluate("document.body.innerText")
            assert "Jordan's Instagram stories" in text and "third time today" in text
            body = rgb(browser.page.evaluate("getComputedStyle(document.body).backgroundColor"))
            ink = rgb(browser.page.evaluate("getComputedStyle(document.querySelector('h1')).color"))
            assert (sum(body) < 150) is dark and contrast(body, ink) >= 7, (name, body, ink)
            shots[name] = browser.full_screenshot()
            keep_screenshot(tmp_path, f"block-page-{name}", shots[name])
    finally:
        browser.close()
    assert len(shots["light"]) > 10_000 and shots["light"] != shots["dark"]
