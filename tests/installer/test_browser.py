"""Headless Chromium against what the installer sets up, with the real daemon.

* The CA's name constraints hold in the browser, on the decrypting path itself: a daemon whose rules
  target a site the CA was not made for (as after adding a [[site]] without re-installing) serves
  that site a leaf from the CA, and Chromium refuses it, while the targets load.
* A stolen CA key cannot vouch for another site: a leaf for a bank's name, signed with the CA's key
  and served directly, is refused; one for a target name from the same key is accepted.
* User mode end to end: the GNOME proxy setting and the NSS database written by the installer make
  Chromium (started with no proxy flag at all) show the block page; after uninstall it goes direct.
* System mode end to end (CI only: it writes /etc/chromium/policies/managed): the managed policy
  alone makes Chromium use the proxy (even with --no-proxy-server), trust the CA, and show QUIC off.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import ssl
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path, PurePath

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from zctest.cdp import CDP
from zctest.e2e import Origin, _Origin, origin, start_daemon
from zctest.installer import RULES, free_port, said
from zctest.support import chromium_args, need_tool, wait_for

from zerocontact.daemon import ca
from zerocontact.installer.context import SubprocessRunner
from zerocontact.installer.plan import build_steps, install, make_context, uninstall
from zerocontact.installer.policies import CHROMIUM_DIRS, ChromiumPolicy
from zerocontact.installer.trust import CaMaterial, CaStep
from zerocontact.rules import Matcher, load

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
__all__ = ["origin"]  # the e2e fixture, used here too
TARGET = "https://www.instagram.com/sam.example/"
FORUM = """
[[site]]
name = "forum"
hosts = ["forum.example.org"]
pages = { profile = ["/members/{handle}"] }
"""


def targets(rules: str) -> list[str]:
    return Matcher(load(rules, "test", default_timezone="UTC")).target_hosts()


def chromium(profile: Path, *args: str) -> list[str]:
    return chromium_args(profile, *args)


def dump(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=90)


def nss_trust(home: Path, cert: Path) -> None:
    certutil = need_tool("certutil")
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    subprocess.run([certutil, "-d", f"sql:{db}", "-N", "--empty-password"], check=True)
    subprocess.run(
        [certutil, "-d", f"sql:{db}", "-A", "-t", "C,,", "-n", "zerocontact", "-i", str(cert)], check=True
    )


def test_chromium_refuses_a_name_the_ca_was_not_made_for_on_the_decrypting_path(
    tmp_path: Path, origin: Origin
) -> None:
    # the CA was made for Instagram and X; the rules have since gained a forum the CA does not cover
    state = tmp_path / "state-nc"
    ca.write_files(state / "ca", *ca.generate(targets(RULES), "zerocontact test CA"))
    rules = RULES + FORUM + '[[person]]\nname = "Kim"\naccounts = { forum = "kim" }\n'
    d = start_daemon(
        tmp_path, rules, ("--redirect-upstream", f"www.instagram.com=127.0.0.1:{origin.port}"), name="nc"
    )
    try:
        home = tmp_path / "browser-home"
        nss_trust(home, state / "ca" / ca.CERT_FILE)
        env = {"HOME": str(home)}
        ok = dump(chromium(tmp_path / "p1", f"--proxy-server=http://{d.proxy}", "--dump-dom", TARGET), env)
        assert 'data-zerocontact="blocked"' in ok.stdout, ok.stderr[-2000:]
        bad = dump(
            chromium(
                tmp_path / "p2",
                f"--proxy-server=http://{d.proxy}",
                "--dump-dom",
                "https://forum.example.org/members/kim",
            ),
            env,
        )
        assert "data-zerocontact" not in bad.stdout
        assert "ERR_CERT_INVALID" in bad.stderr, bad.stderr[-2000:]
        assert wait_for(
            lambda: "does not trust the proxy's certificate for forum.example.org" in d.output(),
            10,
            "the log",
        )
    finally:
        d.stop()


def leaf_for(name: str, ca_dir: Path, out: Path) -> tuple[Path, Path]:
    """What a thief holding the CA's key could make: a leaf for any name, with its own key."""
    ca_key = serialization.load_pem_private_key((ca_dir / ca.KEY_FILE).read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate((ca_dir / ca.CERT_FILE).read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    cp, kp = out / f"{name}.pem", out / f"{name}.key"
    cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kp.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cp, kp


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, int]]:
    """Two HTTPS origins on loopback, each with a leaf signed by the CA: a bank's name and a target's."""
    ca.write_files(tmp_path / "ca", *ca.generate(targets(RULES), "zerocontact test CA"))
    ports: dict[str, int] = {}
    servers = []
    for name in ("www.mybank.example", "www.instagram.com"):
        cp, kp = leaf_for(name, tmp_path / "ca", tmp_path)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cp, kp)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        ports[name] = server.server_address[1]
        servers.append(server)
    yield ports
    for s in servers:
        s.shutdown()


def test_a_stolen_ca_key_cannot_vouch_for_another_site_in_chromium(
    tmp_path: Path, served: dict[str, int]
) -> None:
    home = tmp_path / "browser-home"
    nss_trust(home, tmp_path / "ca" / ca.CERT_FILE)
    rules = ",".join(f"MAP {name} 127.0.0.1" for name in served)
    env = {"HOME": str(home)}

    def load_page(name: str) -> subprocess.CompletedProcess[str]:
        url = f"https://{name}:{served[name]}/hello"
        return dump(chromium(tmp_path / name, f"--host-resolver-rules={rules}", "--dump-dom", url), env)

    bank = load_page("www.mybank.example")
    assert "origin says hi" not in bank.stdout and "ERR_CERT_INVALID" in bank.stderr, bank.stderr[-2000:]
    target = load_page("www.instagram.com")
    assert "origin says hi /hello" in target.stdout, target.stderr[-2000:]


def test_user_install_routes_chromium_through_the_gnome_setting(
    tmp_path: Path, origin: Origin, monkeypatch: pytest.MonkeyPatch, isolated_home: Path
) -> None:
    need_tool("gsettings")
    need_tool("certutil")
    monkeypatch.setenv("GSETTINGS_BACKEND", "keyfile")  # GLib's file backend in the test's own HOME
    port, pac_port = free_port(), free_port()
    state = tmp_path / "state-g"
    ctx = make_context(
        "user",
        Path("/"),
        hosts=targets(RULES),
        state_dir=PurePath(state),
        run_live_commands=False,  # no systemctl here; every file is under the test's HOME
        proxy_port=port,
        pac_port=pac_port,
    )
    steps = build_steps(ctx, rules=(RULES.encode(), "test"))
    assert [s.name for s in steps] == ["state", "rules", "ca", "trust-nss", "proxy-gnome", "service"]
    _, say = said()
    install(ctx, steps, SubprocessRunner(), say)
    extra = (
        "--port",
        str(port),
        "--pac-port",
        str(pac_port),
        "--redirect-upstream",
        f"www.instagram.com=127.0.0.1:{origin.port}",
    )
    d = start_daemon(tmp_path, RULES, extra, name="g")
    env = {"XDG_CURRENT_DESKTOP": "GNOME", "HOME": str(isolated_home)}
    try:
        assert d.ca == state / "ca" / ca.CERT_FILE  # the daemon runs on the installer's constrained CA
        r = dump(chromium(tmp_path / "p1", "--dump-dom", TARGET), env)  # no proxy flag: GNOME's setting
        assert 'data-zerocontact="blocked"' in r.stdout, r.stderr[-2000:]
        uninstall(ctx.manifest, SubprocessRunner(), say)
        assert not (isolated_home / ".config/glib-2.0").exists() and not (isolated_home / ".pki").exists()
        r = dump(chromium(tmp_path / "p2", "--dump-dom", TARGET), env)
        assert "data-zerocontact" not in r.stdout  # the proxy setting is gone: Chromium went direct
    finally:
        d.stop()


DEEP_TEXT = """(function t(n){let s='';if(n.shadowRoot)s+=t(n.shadowRoot);
for(const c of n.childNodes){s+=c.nodeType===3?c.textContent+' ':t(c);}return s;})(document.body)"""


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="writes /etc/chromium/policies/managed: CI only")
def test_the_managed_policy_alone_routes_trusts_and_turns_quic_off(tmp_path: Path, origin: Origin) -> None:
    policy = Path(CHROMIUM_DIRS["Chromium"]) / "zerocontact.json"
    assert not policy.exists(), "a zerocontact policy is already installed on this machine"
    existed = {p for p in (Path("/etc/chromium"), Path("/etc/chromium/policies")) if p.exists()}
    port, pac_port = free_port(), free_port()
    state = tmp_path / "state-p"
    ctx = make_context(
        "system",
        Path("/"),
        hosts=targets(RULES),
        state_dir=PurePath(state),
        run_live_commands=False,
        proxy_port=port,
        pac_port=pac_port,
    )
    material = CaMaterial(ctx)
    _, say = said()
    install(
        ctx,
        [CaStep(ctx, material), ChromiumPolicy(ctx, material, {"Chromium": CHROMIUM_DIRS["Chromium"]})],
        SubprocessRunner(),
        say,
    )
    d = None
    try:
        assert json.loads(policy.read_text())["QuicAllowed"] is False
        extra = (
            "--port",
            str(port),
            "--pac-port",
            str(pac_port),
            "--redirect-upstream",
            f"www.instagram.com=127.0.0.1:{origin.port}",
        )
        d = start_daemon(tmp_path, RULES, extra, name="p")
        home = tmp_path / "empty-home"  # no NSS database: the CA is trusted by the policy alone
        home.mkdir()
        env = {"HOME": str(home)}
        r = dump(chromium(tmp_path / "p1", "--no-proxy-server", "--dump-dom", TARGET), env)
        assert 'data-zerocontact="blocked"' in r.stdout, r.stderr[-2000:]
        # chrome://policy (over the DevTools protocol; headless --dump-dom cannot load chrome:// pages)
        proc = subprocess.Popen(
            chromium(tmp_path / "p2", "--remote-debugging-port=0", "about:blank"),
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port_file = tmp_path / "p2" / "DevToolsActivePort"
            devtools = wait_for(
                lambda: port_file.exists() and port_file.read_text().split("\n")[0], 30, "devtools"
            )
            pages = wait_for(
                lambda: [
                    t
                    for t in json.load(
                        urllib.request.urlopen(f"http://127.0.0.1:{devtools}/json/list", timeout=5)
                    )
                    if t["type"] == "page"
                ],
                30,
                "a page",
            )
            cdp = CDP(pages[0]["webSocketDebuggerUrl"])
            cdp.call("Page.navigate", url="chrome://policy/")
            text = cdp.wait(
                f"(() => {{ const s = {DEEP_TEXT}; return s.includes('QuicAllowed') && s; }})()", 30
            )
            cdp.close()
        finally:
            proc.kill()
            proc.wait()
        for name in ("QuicAllowed", "DnsOverHttpsMode", "ProxySettings", "CACertificatesWithConstraints"):
            assert name in text
        assert "Mandatory" in text and "Machine" in text
    finally:
        if d is not None:
            d.stop()
        uninstall(ctx.manifest, SubprocessRunner(), say)
        policy.unlink(missing_ok=True)  # belt and braces: never leave it behind
    assert not policy.exists()
    assert {p for p in (Path("/etc/chromium"), Path("/etc/chromium/policies")) if p.exists()} == existed
