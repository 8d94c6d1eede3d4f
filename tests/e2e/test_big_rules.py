"""``zerocontact run`` on a big rules file, whose TOML it parses in a forked child while it starts
(daemon/parseahead.py): a new process has one thread, so these go through the fork."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from zctest.e2e import ZC, Origin, curl, start_daemon
from zctest.support import many_people

from zerocontact.daemon.parseahead import AHEAD_BYTES

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parsed ahead on Linux only")


@pytest.mark.e2e
def test_the_daemon_on_a_big_file_blocks_its_last_person_and_no_one_else(
    tmp_path: Path, origin: Origin
) -> None:
    """``zerocontact run`` parses a 2,000-person file ahead (a new process has one thread) and
    enforces all of it: the last person written is blocked, someone not in it is not."""
    rules = many_people(2_000)
    assert len(rules.encode()) >= AHEAD_BYTES
    d = start_daemon(
        tmp_path, rules=rules, extra=("--redirect-upstream", f"www.instagram.com=127.0.0.1:{origin.port}")
    )
    try:
        for url in ("https://x.com/p1999ex", "https://www.instagram.com/p1999.example/"):
            r = curl(d, "-o", "/dev/null", "-w", "%{http_code}", url)
            assert r.stdout == "403", url + r.stderr + d.output()
        r = curl(d, "https://www.instagram.com/p2000.example/")
        assert r.stdout == "origin says hi /p2000.example/", r.stderr
    finally:
        d.stop()


@pytest.mark.e2e
def test_run_names_the_line_of_a_mistake_in_a_big_file(tmp_path: Path) -> None:
    """End to end through the fork: exit non-zero, the file and line said, no traceback (HOME and
    the XDG folders are the test's own: the autouse ``isolated_home``)."""
    path = tmp_path / "rules.toml"
    lines = many_people(2_000).splitlines()
    lines[9_000] = 'why = "an unclosed quote'
    path.write_text("\n".join(lines) + "\n")
    r = subprocess.run(
        [
            ZC,
            "run",
            "--rules",
            str(path),
            "--port",
            "0",
            "--pac-port",
            "0",
            "--state-dir",
            str(tmp_path / "s"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0
    assert str(path) in r.stderr and f"{path}:9001:" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
