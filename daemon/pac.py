"""The PAC file (only target platforms go to the proxy) and the tiny loopback server that serves it.

Served over plain HTTP on loopback because every browser accepts that; a target host gets the proxy
with no DIRECT fallback, so if the daemon is down those hosts fail closed and nothing else is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("zerocontact.pac")


def proxy_address(host: str, port: int) -> str:
    """``host:port`` as PAC files, URLs and proxy settings write it: an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def pac(hosts: list[str], proxy: tuple[str, int]) -> str:
    """A PAC script sending ``hosts`` (and their subdomains) to the proxy and everything else DIRECT.

    The host is lower-cased and loses its trailing dots first: ``www.instagram.com.`` is the same
    name (fully qualified) and must not slip past as DIRECT.
    """
    targets = sorted({h.lower().rstrip(".") for h in hosts})
    return (
        "// zerocontact: only the platforms your rules target go through the local proxy.\n"
        "var TARGETS = " + json.dumps(targets) + ";\n"
        "function FindProxyForURL(url, host) {\n"
        "  host = host.toLowerCase().replace(/\\.+$/, '');\n"
        "  for (var i = 0; i < TARGETS.length; i++) {\n"
        "    var t = TARGETS[i];\n"
        "    if (host == t || dnsDomainIs(host, '.' + t)) {\n"
        f"      return 'PROXY {proxy_address(*proxy)}';\n"
        "    }\n"
        "  }\n"
        "  return 'DIRECT';\n"
        "}\n"
    )


class PacServer:
    """Serves /proxy.pac and /ca.pem on loopback; the content is read from callables on each request."""

    def __init__(self, host: str, port: int, pac_text: Callable[[], str], ca_file: Path) -> None:
        self.host, self.port = host, port
        self.pac_text, self.ca_file = pac_text, ca_file
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and close every client connection at once.

        ``wait_closed`` waits for the handlers, and an idle client (a browser that opened a
        connection and sent nothing yet) would hold it until the 5 s read timeout: that alone kept
        SIGTERM waiting a second (the bound below). Closing the clients ends their reads now."""
        if self._server:
            self._server.close()
            for writer in list(self._clients):
                writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)).strip():
                pass
            parts = line.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) > 1 else ""
            if path == "/proxy.pac":
                status, ctype, body = "200 OK", "application/x-ns-proxy-autoconfig", self.pac_text().encode()
            elif path == "/ca.pem":
                status, ctype, body = "200 OK", "application/x-pem-file", self.ca_file.read_bytes()
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"not found\n"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Cache-Control: no-store\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._clients.discard(writer)
            writer.close()
