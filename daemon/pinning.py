"""Apps on a device that refuse zerocontact's certificate (pinning, or Android apps that ignore user
certificates): detected, passed through untouched from then on, journalled once, and refused
outright while one of the person's blocks asks for the whole ``client``.

Such an app cannot be decrypted, so it can only be passed through or refused whole. Passing it
through keeps it working for everything else in the person's life. Only that app is passed: a
connection is known by the device, the host and its TLS ClientHello's shape (cipher suites,
extensions, ALPN; GREASE values left out), so the browser on the same phone, which trusts the
certificate and greets differently, is still decrypted and still sees the block page.

What was passed is kept in the journal (schema 5), so a restart does not make every pinned app fail
once more. Because "passed through" must never become a silent hole, it is not forever: a passed
app is tried again (decrypted) once every ``RECHECK``, and every app of a device is tried again as
soon as that device takes the certificate from its setup page. A browser that refused the
certificate only because it was not installed yet is decrypted again from then on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .journal import Attempt, Journal
from .journal.schema import DEVICE_PREFIX
from .proxy import is_wireguard

log = logging.getLogger("zerocontact.proxy")

# How long a passed-through app goes untouched before one of its connections is decrypted again: a
# pinned app then fails one connection in this long (apps retry at once), and an app or browser
# that has come to trust the certificate is blocked precisely again after at most this long.
RECHECK = dt.timedelta(minutes=10)
# One use of a refused app is one attempt: its connections (apps retry and reconnect, with backoff)
# fold into it while they keep coming less than this far apart.
APP_QUIET_SECONDS = 60.0
SEEN_EVERY = dt.timedelta(minutes=1)  # how often a device's latest connection is written down

Key = tuple[str, str, str]  # (device name, host, fingerprint)


def _grease(value: int) -> bool:
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


def fingerprint(client_hello: Any) -> str:
    """A stable digest of how a TLS client greets (the same app greets the same way every time)."""
    suites = [c for c in client_hello.cipher_suites if not _grease(c)]
    exts = sorted(t for t, _ in client_hello.extensions if not _grease(t))
    alpn = [bytes(p) for p in client_hello.alpn_protocols]
    text = repr((suites, exts, alpn))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(slots=True)
class Passed:
    since: dt.datetime  # when the app first refused the certificate
    checked: dt.datetime  # when it last refused it


@dataclass(slots=True)
class _Refused:
    key: str  # the attempt's journal key
    last: float  # monotonic time of its latest refused connection


class PinnedApps:
    """A mitmproxy addon (before the one that names decrypted connections: see proxy._DeviceTraffic).

    ``client_block(host)`` says whose block closes the whole client of ``host``'s platform right now
    (person, platform), or None; ``journal`` keeps what was passed through (None: memory only).
    """

    def __init__(
        self,
        devices: dict[str, str],
        platform_for: Callable[[str], str | None],
        record: Callable[[Attempt], None],
        clock: Callable[[], dt.datetime],
        *,
        journal: Journal | None = None,
        client_block: Callable[[str], tuple[str, str] | None] | None = None,
        passed: list[tuple[str, str, str, dt.datetime, dt.datetime]] | None = None,
    ) -> None:
        self.devices = devices  # tunnel address → device name (shared with the Blocker)
        self.platform_for = platform_for
        self.record = record
        self.clock = clock
        self.journal = journal
        self.client_block = client_block
        self.passed: dict[Key, Passed] = {
            (d, h, f): Passed(since, checked) for d, h, f, since, checked in passed or ()
        }
        self._greeting: dict[str, tuple[Key, bool]] = {}  # client connection id → (key, a re-check)
        self._refusing: dict[str, str] = {}  # client connection id → why its server is refused
        self._refused: dict[tuple[str, str, str], _Refused] = {}  # (device, platform, person) → attempt
        self._seen: dict[str, dt.datetime] = {}  # device → when its latest connection was written

    def _key(self, data: Any) -> Key | None:
        c = data.context.client
        sni = data.client_hello.sni
        if not is_wireguard(c) or not sni or not c.peername:
            return None
        device = self.devices.get(str(c.peername[0]))
        if device is None:
            return None
        return device, sni.lower().rstrip("."), fingerprint(data.client_hello)

    # -- hooks ------------------------------------------------------------------------------------
    def client_connected(self, client: Any) -> None:
        if not is_wireguard(client) or not client.peername or self.journal is None:
            return
        device = self.devices.get(str(client.peername[0]))
        if device is None:
            return
        now = self.clock()
        last = self._seen.get(device)
        if last is None or now - last >= SEEN_EVERY or now < last:
            self._seen[device] = now
            self.journal.device_seen(device, now)

    def tls_clienthello(self, data: Any) -> None:
        key = self._key(data)
        if key is None:
            return
        cid = data.context.client.id
        entry = self.passed.get(key)
        if entry is None:
            self._greeting[cid] = (key, False)
            return
        blocked = self.client_block(key[1]) if self.client_block else None
        if blocked is not None:
            self._refuse(cid, key, *blocked)
            data.ignore_connection = True  # no certificate is offered; server_connect refuses it
            return
        now = self.clock()
        if now - entry.checked >= RECHECK or now < entry.checked:
            self._greeting[cid] = (key, True)  # decrypted once more: does it trust the certificate now?
            return
        data.ignore_connection = True  # untouched: the app talks to its server as if we were not here

    def tls_established_client(self, data: Any) -> None:
        key, recheck = self._greeting.pop(data.context.client.id, (None, False))
        if key is None or not recheck or key not in self.passed:
            return
        del self.passed[key]
        log.info(
            "%s: an app that refused the certificate for %s now trusts it; decrypting it again", *key[:2]
        )
        if self.journal is not None:
            self.journal.not_passed_through(*key)

    def tls_failed_client(self, data: Any) -> None:
        key, _ = self._greeting.pop(data.context.client.id, (None, False))
        if key is None:
            return
        now = self.clock()
        entry = self.passed.get(key)
        if entry is not None:  # a re-check that failed: passed through again, no new attempt
            entry.checked = now
            if self.journal is not None:
                self.journal.passed_through(*key, entry.since, now)
            return
        self.passed[key] = Passed(now, now)
        if self.journal is not None:
            self.journal.passed_through(*key, now, now)
        device, host, _ = key
        log.warning("%s: an app refused the certificate for %s; passing it through from now on", device, host)
        self.record(
            Attempt(
                time=now,
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

    def server_connect(self, data: Any) -> None:
        why = self._refusing.pop(data.client.id, None)
        if why is not None:
            data.server.error = why  # the connection is closed before anything reaches the platform

    def client_disconnected(self, client: Any) -> None:
        self._greeting.pop(client.id, None)
        self._refusing.pop(client.id, None)

    # -- the device's certificate and devices coming and going -------------------------------------
    def certificate_taken(self, device: str) -> None:
        """``device`` downloaded the certificate: every app on it is decrypted again (one that still
        refuses it is found again by its next connection)."""
        gone = [k for k in self.passed if k[0] == device]
        for k in gone:
            del self.passed[k]
        if gone and self.journal is not None:
            self.journal.not_passed_through(device)
        if gone:
            log.info(
                "%s took the certificate: its %d passed-through app(s) are decrypted again", device, len(gone)
            )

    def keep_only(self, devices: set[str]) -> None:
        """Forget the apps of devices that were removed (a device added again starts afresh)."""
        for device in sorted({k[0] for k in self.passed} - devices):
            for k in [k for k in self.passed if k[0] == device]:
                del self.passed[k]
            if self.journal is not None:
                self.journal.not_passed_through(device)

    # -- refusing a client during a block that closes the whole client -----------------------------
    def _refuse(self, cid: str, key: Key, person: str, platform: str) -> None:
        device, host, _ = key
        self._refusing[cid] = (
            f"zerocontact: {host} is closed on {device} while {person} is blocked (the whole client)"
        )
        now, mono = self.clock(), time.monotonic()
        look = self._refused.get((device, platform, person))
        if look is not None and mono - look.last < APP_QUIET_SECONDS:
            look.last = mono
            if self.journal is not None:
                self.journal.bump(look.key, now)
            return
        attempt = Attempt(
            time=now,
            person=person,
            platform=platform,
            surface="client",
            channel="app",
            host=host,
            process=f"{DEVICE_PREFIX}{device}",
            detail=f"an app on {device} that refuses zerocontact's certificate was refused: {person}'s "
            f"block closes the whole {platform} client now",
        )
        self.record(attempt)
        if len(self._refused) >= 1000:  # bounded: the oldest open uses are closed first
            del self._refused[min(self._refused, key=lambda k: self._refused[k].last)]
        self._refused[(device, platform, person)] = _Refused(attempt.key, mono)
