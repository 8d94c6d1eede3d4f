"""The PAC text and the proxy's decrypt list: every spelling of a target host is a target."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from zerocontact.daemon.pac import PacServer, pac, proxy_address
from zerocontact.daemon.proxy import allow_pattern


@pytest.mark.parametrize(
    "host_port",
    ["www.instagram.com:443", "www.instagram.com.:443", "WWW.Instagram.COM.:443", "instagram.com.:80"],
)
def test_the_decrypt_list_covers_the_fully_qualified_spelling(host_port: str) -> None:
    # mitmproxy compiles allow_hosts with IGNORECASE and searches "host:port"
    assert re.search(allow_pattern("instagram.com"), host_port, re.IGNORECASE)


@pytest.mark.parametrize("host_port", ["notinstagram.com:443", "instagram.com.evil.example:443", "x.com:443"])
def test_the_decrypt_list_covers_nothing_else(host_port: str) -> None:
    assert not re.search(allow_pattern("instagram.com"), host_port, re.IGNORECASE)


def test_the_pac_normalises_the_host_before_comparing() -> None:
    text = pac(["Instagram.com.", "x.com"], ("127.0.0.1", 8341))
    assert 'var TARGETS = ["instagram.com", "x.com"];' in text
    assert "host = host.toLowerCase().replace(/\\.+$/, '');" in text
    assert "return 'PROXY 127.0.0.1:8341';" in text


def test_an_ipv6_proxy_is_written_in_brackets() -> None:
    assert "return 'PROXY [::1]:8341';" in pac(["instagram.com"], ("::1", 8341))
    assert proxy_address("::1", 8341) == "[::1]:8341"
    assert proxy_address("127.0.0.1", 8341) == "127.0.0.1:8341"


def test_stopping_closes_idle_clients_at_once(tmp_path: Path) -> None:
    """An idle client (connected, nothing sent) used to hold ``stop`` for its 1 s bound and stay
    connected until the 5 s read timeout; SIGTERM waited for it."""

    async def scenario() -> bytes:
        server = PacServer("127.0.0.1", 0, lambda: "pac", tmp_path / "ca.pem")
        port = await server.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0)  # let the server accept it
        stopping = asyncio.create_task(server.stop())
        try:
            return await asyncio.wait_for(reader.read(), 2)  # EOF: the server closed us
        finally:
            await asyncio.wait_for(stopping, 2)
            writer.close()

    assert asyncio.run(scenario()) == b""
