"""One attempt per look, through the real daemon: real Chromium navigations and in-page API calls,
curl without browser headers, and the block page's "today" agreeing with `stats` across channels."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from zctest.e2e import ZC, Daemon, daemon_with_origin, open_browser, start_daemon
from zctest.support import need_tool, wait_for

pytestmark = [pytest.mark.e2e]
PROFILE = "https://www.instagram.com/sam.example/"
STORIES = "https://www.instagram.com/stories/sam.example/"
PROFILE_API = "/api/v1/users/web_profile_info/?username=sam.example"

# The home feed (not Sam's) whose script asks for Sam's profile 30 times as it loads, then once
# more after a quiet gap (past the 10 s page load and the 4 s quiet time): one attempt, then another.
FEED = f"""<!doctype html><html><head><title>feed</title></head><body><p>the feed</p><script>
async function calls(n, tag) {{
  for (let i = 0; i < n; i++) {{
    const url = '{PROFILE_API}&' + tag + '=' + i;
    try {{ await fetch(url, {{headers: {{'X-IG-App-ID': '936619743392459'}}}}); }}
    catch (e) {{}}
  }}
}}
calls(30, 'load').then(() => {{
  document.title = 'loaded';
  setTimeout(() => calls(1, 'later').then(() => {{ document.title = 'later'; }}), 15000);
}});
</script></body></html>""".encode()


def _feed(path: str) -> tuple[bytes, dict[str, str]]:
    if path == "/":
        return FEED, {"Content-Type": "text/html"}
    return b"{}", {"Content-Type": "application/json"}


@pytest.fixture
def feed_daemon(tmp_path: Path) -> Iterator[Daemon]:
    with daemon_with_origin(tmp_path, _feed) as d:
        yield d


def web_attempts(d: Daemon) -> list[tuple[str, str, int]]:
    con = sqlite3.connect(f"file:{d.state / 'journal.sqlite3'}?mode=ro", uri=True)
    try:
        return con.execute(
            "SELECT surface, surfaces, requests FROM attempts WHERE channel = 'web' ORDER BY id"
        ).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        con.close()


def stats_today(d: Daemon) -> int:
    r = subprocess.run([ZC, "stats", "--json", "--state-dir", str(d.state)], capture_output=True, text=True)
    data = json.loads(r.stdout)
    today = dt.datetime.now().astimezone().date().isoformat()  # no [settings] timezone: this machine's
    return next(row["count"] for row in data["per_day"] if row["date"] == today)


@pytest.mark.browser
def test_chromium_profile_stories_and_three_reloads_are_five_attempts(
    tmp_path: Path, feed_daemon: Daemon
) -> None:
    d = feed_daemon
    with open_browser(tmp_path, d) as browser:
        browser.call("Page.enable")
        browser.call("Page.navigate", url=PROFILE)
        wait_for(lambda: len(web_attempts(d)) == 1, 20, "the profile's attempt")
        browser.call("Page.navigate", url=STORIES)
        wait_for(lambda: len(web_attempts(d)) == 2, 20, "the stories' attempt")
        browser.call("Page.navigate", url=PROFILE)
        wait_for(lambda: len(web_attempts(d)) == 3, 20, "the profile again")
        for n in (4, 5):
            browser.evaluate("location.reload(), true")
            wait_for(lambda n=n: len(web_attempts(d)) == n, 20, f"reload number {n - 3}")
        # the fifth page says so (the journal may be written before the page has rendered)
        assert browser.wait("document.body.innerText.includes('fifth time today')") is True
    assert [s for s, _, _ in web_attempts(d)] == ["profile", "stories", "profile", "profile", "profile"]
    assert stats_today(d) == 5


@pytest.mark.browser
def test_chromium_thirty_api_calls_of_one_load_are_one_attempt_and_a_later_call_another(
    tmp_path: Path, feed_daemon: Daemon
) -> None:
    d = feed_daemon
    with open_browser(tmp_path, d) as browser:
        browser.call("Page.enable")
        browser.call("Page.navigate", url="https://www.instagram.com/")
        assert browser.wait("document.title === 'loaded'", timeout=30) is True
        wait_for(lambda: web_attempts(d) and web_attempts(d)[0][2] == 30, 10, "the 30 calls folded in")
        assert web_attempts(d) == [("profile", "profile", 30)]
        # the page asks once more after a quiet gap, with no document load: a new look
        assert browser.wait("document.title === 'later'", timeout=40) is True
        wait_for(lambda: len(web_attempts(d)) == 2, 10, "the later call's attempt")
    assert web_attempts(d) == [("profile", "profile", 30), ("profile", "profile", 1)]


def test_curl_navigations_are_attempts_and_sub_requests_fold(tmp_path: Path, feed_daemon: Daemon) -> None:
    d = feed_daemon
    curl = [need_tool("curl"), "-s", "-o", "/dev/null", "-x", f"http://{d.proxy}"]
    for n in (1, 2):  # two navigations (curl sends no browser headers), one after the other
        subprocess.run([*curl, PROFILE.replace("https", "http")], check=True, timeout=20)
        wait_for(lambda n=n: len(web_attempts(d)) == n, 10, f"navigation {n}")
    # the page's sub-requests name it as their referrer and ask for JSON: folded into the second
    sub = ["-H", f"Referer: {PROFILE}", "-H", "Accept: application/json"]
    urls = [f"http://www.instagram.com{PROFILE_API}", STORIES.replace("https", "http")]
    subprocess.run([*curl, *sub, *urls, "-o", "/dev/null"], check=True, timeout=20)
    wait_for(lambda: web_attempts(d)[-1][2] == 3, 10, "the sub-requests folded in")
    assert web_attempts(d) == [("profile", "profile", 1), ("profile", "profile,stories", 3)]
    r = subprocess.run(
        [ZC, "log", "--json", "--state-dir", str(d.state)], capture_output=True, text=True, check=True
    )
    newest = json.loads(r.stdout.splitlines()[0])
    assert newest["surfaces"] == ["profile", "stories"] and newest["requests"] == 3


def test_the_block_pages_today_agrees_with_stats_across_web_api_and_apps(tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "whatsapp"
    fake.parent.mkdir()
    shutil.copy(shutil.which("sleep") or "/bin/sleep", fake)
    rules = (
        '[[person]]\nname = "Sam"\naccounts = { instagram = "sam.example", x = "samexample" }\n'
        '[[app]]\nname = "WhatsApp"\nmatch = ["whatsapp"]\naction = "terminate"\ngrace = 1\n'
    )
    d = start_daemon(tmp_path, rules=rules)
    curl = [need_tool("curl"), "-s", "-x", f"http://{d.proxy}"]
    try:
        app = subprocess.Popen([str(fake), "300"])
        wait_for(lambda: app.poll() is not None, 10, "the app to be stopped")
        subprocess.run([*curl, "-o", "/dev/null", PROFILE.replace("https", "http")], check=True)
        api = "http://x.com/i/api/1.1/users/show.json?screen_name=samexample"
        subprocess.run([*curl, "-o", "/dev/null", "-H", "Accept: application/json", api], check=True)
        page = subprocess.run([*curl, STORIES.replace("https", "http")], capture_output=True, text=True)
        assert "fourth time today" in page.stdout
        wait_for(lambda: stats_today(d) == 4, 10, "stats to count the four attempts")
    finally:
        d.stop()


def test_review_uses_the_rules_time_zone(tmp_path: Path, isolated_home: Path) -> None:
    """The machine is in UTC; the rules say Auckland: 23:30 UTC on 1 December is 2 December there."""
    from zerocontact.daemon.journal import Attempt, Journal

    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    j = Journal(state / "journal.sqlite3")
    j.start()
    j.record(
        Attempt(
            time=dt.datetime(2026, 12, 1, 23, 30, tzinfo=dt.UTC),
            person="Sam",
            platform="x",
            surface="profile",
        )
    )
    assert j.flush()
    j.close()
    rules = isolated_home / ".config" / "zerocontact" / "rules.toml"
    rules.parent.mkdir(parents=True)
    rules.write_text('[settings]\ntimezone = "Pacific/Auckland"\n')
    env_args = ["--state-dir", str(state)]
    r = subprocess.run(
        [ZC, "stats", "--json", *env_args, "--since", "2026-12-01", "--until", "2026-12-03"],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(r.stdout)
    assert data["period"]["timezone"] == "Pacific/Auckland"
    assert {row["date"]: row["count"] for row in data["per_day"]}["2026-12-02"] == 1
    r = subprocess.run([ZC, "log", *env_args], capture_output=True, text=True, check=True)
    assert "2026-12-02 12:30" in r.stdout  # shown in Auckland time
    out = tmp_path / "report.html"
    subprocess.run([ZC, "report", *env_args, "--out", str(out)], capture_output=True, text=True, check=True)
    assert "Pacific/Auckland" in out.read_text()
