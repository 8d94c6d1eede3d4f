"""Odd inputs and faults a real machine produces, survived by the real daemon (issue 15).

Every request stays on loopback: allowed traffic is redirected to the local origin.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Daemon, Origin, start_daemon
from tests.e2e.test_daemon import curl
from tests.support import need_tool

pytestmark = pytest.mark.e2e
BLOCKED = 'data-zerocontact="blocked"'


@pytest.fixture
def dotted(tmp_path: Path, origin: Origin) -> Iterator[Daemon]:
    d = start_daemon(tmp_path, extra=("--redirect-upstream", f"www.instagram.com=127.0.0.1:{origin.port}"))
    yield d
    d.stop()


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_a_trailing_dot_is_the_same_host(dotted: Daemon, scheme: str) -> None:
    for host in ("www.instagram.com.", "WWW.Instagram.COM."):
        r = curl(dotted, "-w", "\n%{http_code}", f"{scheme}://{host}/sam.example/")
        assert r.returncode == 0, r.stderr
        assert r.stdout.endswith("\n403") and BLOCKED in r.stdout, r.stdout[-300:]
    # decrypted and judged, not refused: someone else's profile still passes on
    r = curl(dotted, f"{scheme}://www.instagram.com./someone.else/")
    assert r.stdout == "origin says hi /someone.else/", r.stderr


def test_an_ipv6_loopback_daemon_writes_a_pac_browsers_can_read(tmp_path: Path) -> None:
    d = start_daemon(tmp_path, extra=("--host", "::1"))
    try:
        assert d.proxy.startswith("[::1]:") and d.pac.startswith("http://[::1]:"), (d.proxy, d.pac)
        r = subprocess.run([need_tool("curl"), "-sS", d.pac], capture_output=True, text=True, timeout=10)
        assert f"return 'PROXY {d.proxy}';" in r.stdout, r.stdout + r.stderr
        r = curl(d, "-i", "https://www.instagram.com/sam.example/")  # through "[::1]:port", as the PAC says
        assert BLOCKED in r.stdout, r.stderr
    finally:
        d.stop()
