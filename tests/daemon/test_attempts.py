"""One look is one attempt: which requests start a look, which fold into it, and today's count."""

from __future__ import annotations

import datetime as dt

import pytest

from zerocontact.daemon.attempts import PAGE_LOAD_SECONDS, QUIET_SECONDS, DayCount, Looks, is_navigation

CHROME_NAV = {"sec-fetch-mode": "navigate", "sec-fetch-dest": "document", "accept": "text/html,*/*"}
CHROME_XHR = {"sec-fetch-mode": "cors", "sec-fetch-dest": "empty", "accept": "*/*"}


@pytest.mark.parametrize(
    ("headers", "kind", "expected"),
    [
        (CHROME_NAV, "page", True),
        (CHROME_NAV, "api", True),  # a typed API URL in the address bar is a look too
        (CHROME_XHR, "api", False),
        (CHROME_XHR, "page", False),  # a page URL fetched by script: part of the view
        ({"sec-fetch-mode": "navigate", "sec-fetch-dest": "iframe"}, "page", False),
        ({"sec-fetch-mode": "no-cors", "sec-fetch-dest": "image"}, "page", False),
        ({"accept": "*/*"}, "page", True),  # curl: a page URL, nothing else said
        ({"accept": "*/*"}, "api", False),
        ({"accept": "text/html"}, "api", True),  # an older browser loading a document
        ({"accept": "*/*", "referer": "https://www.instagram.com/sam/"}, "page", False),
        ({"accept": "text/html", "referer": "https://www.instagram.com/"}, "page", True),  # a link
        ({"x-requested-with": "XMLHttpRequest", "accept": "text/html"}, "page", False),
    ],
)
def test_what_starts_a_look(headers: dict[str, str], kind: str, expected: bool) -> None:
    assert is_navigation(headers, kind) is expected


def test_sub_requests_fold_within_the_page_load_counted_from_its_start() -> None:
    looks = Looks()
    assert looks.current("Sam", "instagram", True, 0.0) is None
    look = looks.open("Sam", "instagram", "k1", "profile", 0.0)
    t = 0.0
    while t + 3 < PAGE_LOAD_SECONDS:  # 3 s apart: each within the page load
        t += 3
        assert looks.current("Sam", "instagram", False, t) is look
        looks.fold(look, "profile", t)
    # past the page load and past the quiet gap: a new view
    later = look.start + PAGE_LOAD_SECONDS + QUIET_SECONDS + 1
    assert looks.current("Sam", "instagram", False, later) is None
    assert look.requests == 1 + 3


def test_a_view_that_keeps_loading_folds_but_a_reload_is_a_new_look() -> None:
    looks = Looks()
    look = looks.open("Sam", "instagram", "k1", "profile", 0.0)
    t = 0.0
    for _ in range(10):  # polling every 3 s, well past the page load: still the same view
        t += QUIET_SECONDS - 1
        assert looks.current("Sam", "instagram", False, t) is look
        looks.fold(look, None, t)
    assert looks.current("Sam", "instagram", True, t + 0.1) is None  # a reload, however soon


def test_surfaces_of_one_look_and_people_kept_apart() -> None:
    looks = Looks()
    look = looks.open("Sam", "instagram", "k1", "profile", 0.0)
    assert looks.fold(look, "stories", 1.0) is True
    assert looks.fold(look, "stories", 1.5) is False
    assert look.surfaces == {"profile", "stories"}
    assert looks.current("Ann", "instagram", False, 1.0) is None
    assert looks.current("Sam", "x", False, 1.0) is None


def test_day_count_starts_again_at_local_midnight() -> None:
    now = [dt.datetime(2026, 12, 1, 10, 59, tzinfo=dt.UTC)]  # 23:59 in Auckland (UTC+13)
    count = DayCount(lambda: "Pacific/Auckland", lambda: now[0], initial=4)
    assert count.add() == 5
    now[0] += dt.timedelta(minutes=2)  # 00:01 the next day there, still 1 December in UTC
    assert count.add() == 1
