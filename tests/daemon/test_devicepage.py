"""The devices' certificate page: only WireGuard peers get it, and what it hands out is the CA."""

from __future__ import annotations

import plistlib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from mitmproxy.proxy import mode_specs
from mitmproxy.test import tflow

from zerocontact.daemon import ca
from zerocontact.daemon.devicepage import DevicePage


def page(tmp_path: Path) -> tuple[DevicePage, bytes]:
    cert = ca.ensure(tmp_path / "ca", "zerocontact local CA (test)", ["instagram.com"])
    der = x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(serialization.Encoding.DER)
    return DevicePage(cert, {"10.0.0.2": "phone"}), der


def flow(path: str, wireguard: bool) -> tflow.HTTPFlow:
    f = tflow.tflow()
    f.request.scheme, f.request.host, f.request.port, f.request.path = "http", "10.0.0.1", 80, path
    f.client_conn.peername = ("10.0.0.2", 40000)
    if wireguard:
        f.client_conn.proxy_mode = mode_specs.ProxyMode.parse("wireguard")
    return f


def test_only_a_device_gets_the_page(tmp_path: Path) -> None:
    p, _ = page(tmp_path)
    local = flow("/", wireguard=False)
    p.request(local)
    assert local.response is None  # the computer's own browser is passed on as usual
    dev = flow("/", wireguard=True)
    p.request(dev)
    assert dev.response is not None and dev.response.status_code == 200
    text = dev.response.get_text() or ""
    assert 'data-zerocontact="device-setup"' in text and "phone" in text
    assert "Certificate Trust Settings" in text and "Install a certificate" in text


def test_the_android_certificate_and_ios_profile_are_the_ca(tmp_path: Path) -> None:
    p, der = page(tmp_path)
    crt = flow("/zerocontact.crt", wireguard=True)
    p.request(crt)
    assert crt.response is not None and crt.response.content == der
    assert crt.response.headers["Content-Type"] == "application/x-x509-ca-cert"
    prof = flow("/zerocontact.mobileconfig", wireguard=True)
    p.request(prof)
    assert prof.response is not None
    assert prof.response.headers["Content-Type"] == "application/x-apple-aspen-config"
    plist = plistlib.loads(prof.response.content or b"")
    (payload,) = plist["PayloadContent"]
    assert payload["PayloadType"] == "com.apple.security.root" and payload["PayloadContent"] == der
    assert plist["PayloadUUID"] != payload["PayloadUUID"]


def test_taking_the_certificate_is_told_for_the_device_that_took_it(tmp_path: Path) -> None:
    cert = ca.ensure(tmp_path / "ca", "zerocontact local CA (test)", ["instagram.com"])
    took: list[str] = []
    p = DevicePage(cert, {"10.0.0.2": "phone"}, on_certificate=took.append)
    p.request(flow("/", wireguard=True))
    assert took == []  # the page alone is not the certificate
    for path in ("/zerocontact.crt", "/zerocontact.mobileconfig"):
        p.request(flow(path, wireguard=True))
    p.request(flow("/zerocontact.crt", wireguard=False))  # not a device: never answered, never told
    assert took == ["phone", "phone"]
