"""The CA's name constraints, checked by OpenSSL itself, with leaves minted the way the daemon mints them."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from mitmproxy import certs
from zctest.support import need_tool

from zerocontact.daemon import ca

TARGETS = ["instagram.com", "x.com"]


def make_ca(tmp_path: Path, hosts: list[str] = TARGETS) -> Path:
    key_and_cert, cert = ca.generate(hosts, "zerocontact test CA")
    d = tmp_path / "ca"
    ca.write_files(d, key_and_cert, cert)
    return d


def leaf(ca_dir: Path, name: str) -> Path:
    """A leaf for ``name`` from mitmproxy's own CertStore over our CA: what the proxy would serve."""
    store = certs.CertStore.from_files(ca_dir / ca.KEY_FILE, ca_dir / ca.DH_FILE)
    try:
        import ipaddress

        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        san = x509.DNSName(name)
    entry = store.get_cert(name, [san])
    out = ca_dir.parent / f"leaf-{name}.pem"
    out.write_bytes(entry.cert.to_pem())
    return out


def openssl_verify(ca_dir: Path, leaf_pem: Path) -> subprocess.CompletedProcess[str]:
    openssl = need_tool("openssl")
    return subprocess.run(
        [openssl, "verify", "-CAfile", str(ca_dir / ca.CERT_FILE), str(leaf_pem)],
        capture_output=True,
        text=True,
    )


def test_the_ca_is_limited_to_the_targets_and_to_tls_servers(tmp_path: Path) -> None:
    d = make_ca(tmp_path)
    cert = x509.load_pem_x509_certificate((d / ca.CERT_FILE).read_bytes())
    nc = cert.extensions.get_extension_for_class(x509.NameConstraints)
    assert nc.critical
    assert [n.value for n in nc.value.permitted_subtrees or ()] == TARGETS
    assert {str(n.value) for n in nc.value.excluded_subtrees or ()} == {"0.0.0.0/0", "::/0"}
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]
    info = ca.inspect((d / ca.CERT_FILE).read_bytes())
    assert info.permitted == tuple(TARGETS) and info.ip_excluded and info.constrained
    assert info.not_after - info.not_before > dt.timedelta(days=4 * 365)
    assert (d / ca.KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert d.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    "name", ["www.instagram.com", "instagram.com", "i.instagram.com", "x.com", "api.x.com"]
)
def test_openssl_accepts_a_leaf_for_a_target(tmp_path: Path, name: str) -> None:
    d = make_ca(tmp_path)
    r = openssl_verify(d, leaf(d, name))
    assert r.returncode == 0 and r.stdout.strip().endswith(": OK"), r.stdout + r.stderr


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("www.mybank.example", "permitted subtree violation"),
        ("evilinstagram.com", "permitted subtree violation"),  # not a subdomain, just a longer name
        ("instagram.com.evil.net", "permitted subtree violation"),
        ("x.co", "permitted subtree violation"),
        ("127.0.0.1", "excluded subtree violation"),  # no IP address either
    ],
)
def test_openssl_rejects_a_leaf_for_anything_else_from_the_same_ca(
    tmp_path: Path, name: str, why: str
) -> None:
    d = make_ca(tmp_path)
    r = openssl_verify(d, leaf(d, name))
    assert r.returncode != 0
    assert why in r.stdout + r.stderr


def test_a_ca_for_no_target_vouches_for_nothing(tmp_path: Path) -> None:
    d = make_ca(tmp_path, [])
    assert ca.inspect((d / ca.CERT_FILE).read_bytes()).permitted == ("invalid",)
    assert openssl_verify(d, leaf(d, "www.instagram.com")).returncode != 0


def test_normalise_folds_subdomains_case_and_idna() -> None:
    assert ca.normalise(["Instagram.com.", "l.instagram.com", "x.com", "bücher.example", ""]) == (
        "instagram.com",
        "x.com",
        "xn--bcher-kva.example",
    )
    assert ca.covered("www.Instagram.com", ["instagram.com"]) and not ca.covered(
        "notinstagram.com", ["instagram.com"]
    )


def test_renewal_is_needed_exactly_when_the_targets_change(tmp_path: Path) -> None:
    _, cert = ca.generate(TARGETS, "t")
    assert ca.needs_renewal(None, TARGETS) == "there is no CA yet"
    assert ca.needs_renewal(cert, ["x.com", "instagram.com", "www.instagram.com"]) is None  # same set
    assert "targeted domains changed" in (ca.needs_renewal(cert, [*TARGETS, "tiktok.com"]) or "")
    assert "targeted domains changed" in (ca.needs_renewal(cert, ["x.com"]) or "")  # narrower: renew too
    old = certs.CertStore.create_store(tmp_path / "m", "mitmproxy", 2048)  # mitmproxy's own: unconstrained
    assert old is None
    legacy = (tmp_path / "m" / "mitmproxy-ca-cert.pem").read_bytes()
    assert "not name-constrained" in (ca.needs_renewal(legacy, TARGETS) or "")
    soon = dt.datetime.now(dt.UTC) - ca.VALIDITY + dt.timedelta(days=10)
    _, expiring = ca.generate(TARGETS, "t", now=soon)
    assert "expires" in (ca.needs_renewal(expiring, TARGETS) or "")


def test_the_daemons_ensure_ca_makes_a_constrained_ca_and_keeps_an_existing_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    d = tmp_path / "state" / "ca"
    cert = ca.ensure(d, "zerocontact local CA (test)", ["instagram.com"])
    info = ca.inspect(cert.read_bytes())
    assert info.permitted == ("instagram.com",)
    assert (d / ca.KEY_FILE).stat().st_mode & 0o777 == 0o600 and (d / ca.DH_FILE).exists()
    with caplog.at_level(logging.WARNING, "zerocontact.ca"):
        again = ca.ensure(d, "zerocontact local CA (test)", ["instagram.com", "tiktok.com"])
    assert again.read_bytes() == cert.read_bytes()  # kept: it may be trusted already
    assert "tiktok.com" in caplog.text and "zerocontact install" in caplog.text
    # no rules known yet (`zerocontact ca`): bounded by every preset platform, never unconstrained
    other = ca.ensure(tmp_path / "other", "t")
    permitted = ca.inspect(other.read_bytes()).permitted
    assert "instagram.com" in permitted and "whatsapp.com" in permitted
    assert not any(p.endswith(("bank.com", "google.com")) for p in permitted)


def test_mitmproxy_loads_the_ca_and_signs_with_it(tmp_path: Path) -> None:
    d = make_ca(tmp_path)
    store = certs.CertStore.from_store(d, "mitmproxy", 2048)
    entry = store.get_cert("www.instagram.com", [x509.DNSName("www.instagram.com")])
    assert entry.cert.issuer == store.default_ca.issuer
    assert store.default_ca.cn == "zerocontact test CA"
