"""Apps that refuse the certificate: how a greeting is recognised, what is passed through and kept
in the journal, re-checked, and refused while a block closes the whole client (end to end:
tests/e2e/test_devices.py)."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import options
from mitmproxy.connection import Client
from mitmproxy.proxy import mode_specs
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.server_hooks import ServerConnectionHookData
from mitmproxy.test import tflow
from mitmproxy.tls import ClientHelloData, TlsData

from zerocontact.daemon.journal import Attempt, Journal
from zerocontact.daemon.journal.reader import devices_seen, passed_through
from zerocontact.daemon.journal.schema import iso
from zerocontact.daemon.pinning import RECHECK, PinnedApps, fingerprint


@dataclass
class Hello:
    cipher_suites: list[int]
    extensions: list[tuple[int, bytes]]
    alpn_protocols: list[bytes] = field(default_factory=lambda: [b"h2", b"http/1.1"])
    sni: str | None = None


def test_grease_values_and_extension_order_do_not_change_the_fingerprint() -> None:
    # Chrome puts random GREASE values (0x?a?a) in each greeting and shuffles its extensions
    one = Hello([0x1A1A, 0x1301, 0x1302], [(0x2A2A, b""), (0, b"x"), (16, b"")])
    two = Hello([0x7A7A, 0x1301, 0x1302], [(16, b""), (0, b"y"), (0xDADA, b"")])
    assert fingerprint(one) == fingerprint(two)


def test_a_different_client_greets_differently() -> None:
    app = Hello([0x1301, 0x1302], [(0, b""), (16, b"")])
    assert fingerprint(app) != fingerprint(Hello([0x1301, 0x1302], [(0, b""), (16, b""), (43, b"")]))
    assert fingerprint(app) != fingerprint(Hello([0x1302], [(0, b""), (16, b"")]))
    assert fingerprint(app) != fingerprint(Hello([0x1301, 0x1302], [(0, b""), (16, b"")], [b"h2"]))


# -- the addon, with mitmproxy's own hook objects and a real journal ------------------------------
PHONE = "10.0.0.2"
APP = Hello([0x1301, 0x1302], [(0, b""), (16, b"")])
T0 = dt.datetime(2026, 12, 1, 22, 30, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> dt.datetime:
        return self.t


@dataclass
class Phone:
    """A PinnedApps addon as the daemon builds it, on a journal file, with a hand-moved clock."""

    path: Path
    clock: Clock = field(default_factory=Clock)
    recorded: list[Attempt] = field(default_factory=list)
    closed: tuple[str, str] | None = None  # what client_block answers
    journal: Journal = field(init=False)
    addon: PinnedApps = field(init=False)

    def __post_init__(self) -> None:
        self.start()

    def start(self) -> None:
        self.journal = Journal(self.path)
        self.journal.start()
        self.addon = PinnedApps(
            {PHONE: "phone"},
            lambda host: "instagram" if host.endswith("instagram.com") else None,
            self.record,
            self.clock,
            journal=self.journal,
            client_block=lambda host: self.closed,
            passed=passed_through(self.path),
        )

    def restart(self) -> None:
        assert self.journal.flush()
        self.journal.close()
        self.start()

    def record(self, a: Attempt) -> None:
        self.recorded.append(a)
        self.journal.record(a)

    def connect(self, hello: Hello = APP, host: str = "i.instagram.com") -> tuple[ClientHelloData, Client]:
        client = tflow.tclient_conn()
        client.peername = (PHONE, 40000)
        client.proxy_mode = mode_specs.ProxyMode.parse("wireguard")
        ctx = Context(client, options.Options())
        hello.sni = host
        data = ClientHelloData(ctx, hello)  # type: ignore[arg-type]
        self.addon.client_connected(client)
        self.addon.tls_clienthello(data)
        return data, client

    def refuses_certificate(self, hello: Hello = APP) -> None:
        data, client = self.connect(hello)
        assert not data.ignore_connection  # decrypted: zerocontact's certificate is offered
        self.addon.tls_failed_client(TlsData(client, data.context))

    def passthrough_rows(self) -> list[tuple[Any, ...]]:
        assert self.journal.flush()
        with contextlib.closing(sqlite3.connect(self.path)) as con:
            return con.execute("SELECT device, host, since, checked FROM passthrough").fetchall()


@pytest.fixture
def phone(tmp_path: Path) -> Iterator[Phone]:
    p = Phone(tmp_path / "journal.sqlite3")
    yield p
    p.journal.close()


def test_an_app_refusing_the_certificate_stays_passed_through_after_a_restart(phone: Phone) -> None:
    phone.refuses_certificate()
    assert [(a.channel, a.process, a.platform) for a in phone.recorded] == [
        ("app", "device phone", "instagram")
    ]
    assert phone.passthrough_rows() == [("phone", "i.instagram.com", iso(T0), iso(T0))]
    phone.restart()
    phone.clock.t += dt.timedelta(minutes=1)
    data, _ = phone.connect()
    assert data.ignore_connection  # passed through at once: it does not fail again after a restart
    browser, _ = phone.connect(Hello([0x1301], [(0, b""), (16, b""), (43, b"")]))
    assert not browser.ignore_connection  # the browser on the same phone is still decrypted
    assert len(phone.recorded) == 1


def test_a_passed_app_is_tried_again_and_decrypted_once_it_trusts_the_certificate(phone: Phone) -> None:
    phone.refuses_certificate()
    phone.clock.t += RECHECK
    phone.refuses_certificate()  # still pinned: passed through again, no second attempt
    assert len(phone.recorded) == 1
    assert phone.passthrough_rows() == [("phone", "i.instagram.com", iso(T0), iso(T0 + RECHECK))]
    phone.clock.t += RECHECK / 2
    assert phone.connect()[0].ignore_connection
    phone.clock.t += RECHECK  # e.g. a browser that failed only because the certificate was not installed
    data, client = phone.connect()
    assert not data.ignore_connection
    phone.addon.tls_established_client(TlsData(client, data.context))
    assert phone.passthrough_rows() == []
    assert not phone.connect()[0].ignore_connection  # decrypted (and judged) from now on


def test_taking_the_certificate_gives_every_app_of_the_device_a_fresh_look(phone: Phone) -> None:
    phone.refuses_certificate()
    phone.addon.certificate_taken("ipad")
    assert phone.connect()[0].ignore_connection
    phone.addon.certificate_taken("phone")
    assert phone.passthrough_rows() == []
    assert not phone.connect()[0].ignore_connection


def test_a_removed_device_leaves_nothing_passed_through(phone: Phone) -> None:
    phone.refuses_certificate()
    phone.addon.keep_only({"phone", "ipad"})
    assert len(phone.passthrough_rows()) == 1
    phone.addon.keep_only({"ipad"})
    assert phone.passthrough_rows() == [] and phone.addon.passed == {}


def test_while_a_block_closes_the_whole_client_the_app_is_refused_as_one_attempt(phone: Phone) -> None:
    phone.refuses_certificate()
    phone.closed = ("Sam", "instagram")
    for _ in range(3):  # the app retries: one use, one attempt
        data, client = phone.connect()
        assert data.ignore_connection  # no certificate offered: it would only fail again
        hook = ServerConnectionHookData(tflow.tserver_conn(), client)
        phone.addon.server_connect(hook)
        assert hook.server.error and "while Sam is blocked" in hook.server.error
        phone.clock.t += dt.timedelta(seconds=5)
    refused = [a for a in phone.recorded if a.person]
    assert [(a.person, a.platform, a.surface, a.channel, a.process) for a in refused] == [
        ("Sam", "instagram", "client", "app", "device phone")
    ]
    assert phone.journal.flush()
    with contextlib.closing(sqlite3.connect(phone.path)) as con:
        assert con.execute("SELECT requests FROM attempts WHERE person = 'Sam'").fetchall() == [(3,)]
    phone.closed = None  # the window ends: passed through untouched again
    data, client = phone.connect()
    hook = ServerConnectionHookData(tflow.tserver_conn(), client)
    phone.addon.server_connect(hook)
    assert data.ignore_connection and not hook.server.error


def test_a_device_connection_is_written_down_at_most_once_a_minute(phone: Phone) -> None:
    phone.connect()
    phone.clock.t += dt.timedelta(seconds=30)
    phone.connect()
    assert phone.journal.flush()
    assert devices_seen(phone.path) == {"phone": T0}
    phone.clock.t += dt.timedelta(seconds=31)
    phone.connect()
    assert phone.journal.flush()
    assert devices_seen(phone.path) == {"phone": T0 + dt.timedelta(seconds=61)}
