"""Bypass scans: proxy-disabling launch flags and direct connections to a target, logged and never
stopped (bypass.py)."""

from __future__ import annotations

import socket
import sys

import pytest
from zctest.support import wait_for
from zctest.watcher import PERSON, Harness

from zerocontact.daemon.watcher.bypass import _hex_ip, proc_net_remotes
from zerocontact.rules import load

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="real /proc processes")


def test_browser_started_without_the_proxy_is_logged_not_stopped(h: Harness) -> None:
    h.update(load(PERSON), people={"Sam"})
    p = h.run(h.script("chromium", "time.sleep(300)"), "--no-proxy-server")
    (a,) = wait_for(lambda: h.about(p.pid), what="the bypass attempt")
    assert (a.channel, a.person) == ("bypass", "Sam")
    assert a.detail is not None and "Chromium started with --no-proxy-server" in a.detail
    h.settle()
    assert p.poll() is None and h.spy.asked(p.pid) == [] and len(h.about(p.pid)) == 1


def test_no_bypass_detection_while_nobody_is_blocked(h: Harness) -> None:
    h.update(load(PERSON), people=set())
    p = h.run(h.script("chromium", "time.sleep(300)"), "--no-proxy-server")
    wait_for(lambda: h.w.seen(p.pid), what="the watcher to see it")
    h.settle()
    assert h.about(p.pid) == []


def test_direct_connection_to_a_target_is_a_bypass(h: Harness) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    h.hosts = {"instagram.com": {"127.0.0.1"}}
    h.w.direct_ports = frozenset({port})  # the platform's 443, on a port a test may open
    h.w.net_interval = 0.1
    h.update(load(PERSON), people={"Sam"})
    p = h.run(
        h.script(
            "fetcher", f"s = __import__('socket').create_connection(('127.0.0.1', {port}))\ntime.sleep(300)"
        )
    )
    conn, _ = server.accept()
    try:
        (a,) = wait_for(lambda: h.about(p.pid), what="the direct-connection attempt")
        assert (a.channel, a.host) == ("bypass", "instagram.com")
        assert a.detail is not None and f"127.0.0.1:{port}" in a.detail and "not through" in a.detail
        h.settle()
        assert len(h.about(p.pid)) == 1 and p.poll() is None
    finally:
        conn.close()
        server.close()


def test_proc_net_remotes_sees_a_connection() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    try:
        remotes = proc_net_remotes()
        assert remotes is not None and ("127.0.0.1", server.getsockname()[1]) in remotes
    finally:
        client.close()
        server.close()


@pytest.mark.parametrize(
    ("raw", "ip"),
    [
        ("0100007F", "127.0.0.1"),  # /proc/net/tcp: little-endian IPv4
        ("0000000000000000FFFF00000100007F", "127.0.0.1"),  # tcp6: an IPv4-mapped address, as IPv4
        ("00000000000000000000000001000000", "::1"),
    ],
)
def test_proc_net_addresses_read_as_the_resolver_writes_them(raw: str, ip: str) -> None:
    assert _hex_ip(raw) == ip
