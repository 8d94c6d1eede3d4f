"""Headless Chromium (Debian's chromium) through the proxy and through the PAC file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from zctest.cdp import CDP
from zctest.e2e import Daemon, chromium, nss_home, open_browser
from zctest.support import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
TARGET = "https://www.instagram.com/sam.example/"


@pytest.fixture
def browser(tmp_path: Path, daemon: Daemon) -> Iterator[CDP]:
    with open_browser(tmp_path, daemon) as cdp:
        yield cdp


def test_block_page_in_chromium_and_the_note_lands_in_the_journal(
    browser: CDP, daemon: Daemon, tmp_path: Path
) -> None:
    browser.call("Page.enable")
    browser.call("Page.navigate", url=TARGET)
    assert browser.wait("document.documentElement.dataset.zerocontact") == "blocked"
    text = browser.evaluate("document.body.innerText")
    assert "You chose not to look at this" in text and "An Instagram profile" in text
    # self-contained: nothing on the page loads anything
    assert browser.evaluate("performance.getEntriesByType('resource').length") == 0
    png = browser.screenshot()
    (tmp_path / "block-page.png").write_bytes(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    browser.evaluate(
        "document.querySelector('input[name=note]').value = 'our song came on';"
        "document.querySelector('form').submit(); true"
    )
    assert browser.wait("document.documentElement.dataset.zerocontact === 'noted'") is True

    def note() -> str | None:
        con = sqlite3.connect(f"file:{daemon.state / 'journal.sqlite3'}?mode=ro", uri=True)
        try:
            row = con.execute("SELECT note FROM attempts WHERE note IS NOT NULL").fetchone()
        finally:
            con.close()
        return row[0] if row else None

    assert wait_for(note, 10, "the note in the journal") == "our song came on"


def test_block_page_through_the_pac_file(tmp_path: Path, daemon: Daemon) -> None:
    home = nss_home(tmp_path, daemon.ca)
    r = subprocess.run(
        chromium(tmp_path, home, f"--proxy-pac-url={daemon.pac}", "--dump-dom", TARGET),
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert 'data-zerocontact="blocked"' in r.stdout, r.stderr[-2000:]


def test_a_trailing_dot_cannot_slip_past_the_pac(tmp_path: Path, daemon: Daemon) -> None:
    """``www.instagram.com.`` (fully qualified) must go to the proxy like ``www.instagram.com``, both with
    the PAC the daemon serves and with the data: URL PAC the managed browser policy carries."""
    from zerocontact.installer.context import Context
    from zerocontact.installer.policies import CHROMIUM_DIRS, pac_data_url

    managed = sorted(Path(CHROMIUM_DIRS["Chromium"]).glob("*.json"))
    if any("ProxySettings" in p.read_text(errors="replace") for p in managed):
        # a managed policy beats --proxy-pac-url: this Chromium would test someone else's PAC
        why = f"a managed Chromium proxy policy is installed ({', '.join(map(str, managed))})"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)

    host, _, port = daemon.proxy.rpartition(":")
    ctx = Context(
        mode="user",
        root=tmp_path / "root",
        home=tmp_path,
        config_dir=tmp_path / "config",
        state_dir=daemon.state,
        exe=(),
        hosts=("instagram.com",),
        proxy_port=int(port),
    )
    assert ctx.proxy == (host, int(port))
    home = nss_home(tmp_path, daemon.ca)
    for pac_url in (daemon.pac, pac_data_url(ctx)):
        r = subprocess.run(
            chromium(
                tmp_path,
                home,
                f"--proxy-pac-url={pac_url}",
                # a name that went DIRECT fails here instead of leaving the machine
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--dump-dom",
                "https://www.instagram.com./sam.example/",
            ),
            env={**os.environ, "HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert 'data-zerocontact="blocked"' in r.stdout, (pac_url[:40], r.stderr[-2000:])
