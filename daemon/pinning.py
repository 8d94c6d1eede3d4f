"""Apps on a device that refuse zerocontact's certificate (pinning, or Android apps that ignore user
certificates): detected, passed through untouched from then on, and journalled once.

Such an app cannot be decrypted, so it can only be passed through or refused whole. Passing it
through keeps it working for everything else in the person's life. Only that app is passed: a
connection is known by the device, the host and its TLS ClientHello's shape (cipher suites,
extensions, ALPN; GREASE values left out), so the browser on the same phone, which trusts the
certificate and greets differently, is still decrypted and still sees the block page.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from typing import Any

from .journal import Attempt
from .journal.schema import DEVICE_PREFIX
from .proxy import is_wireguard

log = logging.getLogger("zerocontact.proxy")


def _grease(value: int) -> bool:
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


def fingerprint(client_hello: Any) -> str:
    """A stable digest of how a TLS client greets (the same app greets the same way every time)."""
    suites = [c for c in client_hello.cipher_suites if not _grease(c)]
    exts = sorted(t for t, _ in client_hello.extensions if not _grease(t))
    alpn = [bytes(p) for p in client_hello.alpn_protocols]
    text = repr((suites, exts, alpn))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class PinnedApps:
    """A mitmproxy addon (before the one that names decrypted connections: see proxy._DeviceTraffic)."""

    def __init__(
        self,
        devices: dict[str, str],
        platform_for: Callable[[str], str | None],
        record: Callable[[Attempt], None],
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.devices = devices  # tunnel address → device name (shared with the Blocker)
        self.platform_for = platform_for
        self.record = record
        self.clock = clock
        self.passed: set[tuple[str, str, str]] = set()  # (tunnel address, host, fingerprint)
        self._greeting: dict[str, tuple[str, str, str]] = {}  # client connection id → its key

    def _key(self, data: Any) -> tuple[str, str, str] | None:
        c = data.context.client
        sni = data.client_hello.sni
        if not is_wireguard(c) or not sni or not c.peername:
            return None
        return str(c.peername[0]), sni.lower(), fingerprint(data.client_hello)

    def tls_clienthello(self, data: Any) -> None:
        key = self._key(data)
        if key is None:
            return
        if key in self.passed:
            data.ignore_connection = True  # untouched: the app talks to its server as if we were not here
        else:
            self._greeting[data.context.client.id] = key

    def tls_failed_client(self, data: Any) -> None:
        key = self._greeting.pop(data.context.client.id, None)
        if key is None or key in self.passed:
            return
        self.passed.add(key)
        address, host, _ = key
        device = self.devices.get(address, address)
        log.warning("%s: an app refused the certificate for %s; passing it through from now on", device, host)
        self.record(
            Attempt(
                time=self.clock(),
                person=None,
                platform=self.platform_for(host),
                surface=None,
                channel="app",
                host=host,
                process=f"{DEVICE_PREFIX}{device}",
                detail=f"an app on {device} refused zerocontact's certificate for {host} (it pins its "
                "certificate or ignores user certificates); its connections pass through untouched",
            )
        )

    def client_disconnected(self, client: Any) -> None:
        self._greeting.pop(client.id, None)
