"""How a client's TLS greeting is recognised (end to end: tests/e2e/test_devices.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from zerocontact.daemon.pinning import fingerprint


@dataclass
class Hello:
    cipher_suites: list[int]
    extensions: list[tuple[int, bytes]]
    alpn_protocols: list[bytes] = field(default_factory=lambda: [b"h2", b"http/1.1"])


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
