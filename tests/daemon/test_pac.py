"""The PAC text and the proxy's decrypt list: every spelling of a target host is a target."""

from __future__ import annotations

import re

import pytest

from zerocontact.daemon.pac import pac, proxy_address
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
