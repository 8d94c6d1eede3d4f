"""Headless Chromium against what the installer sets up, with the real daemon.

* The CA's name constraints hold in the browser, on the decrypting path itself: a daemon whose rules
  target a site the CA was not made for (as after adding a [[site]] without re-installing) serves
  that site a leaf from the CA, and Chromium refuses it, while the targets load.
* A stolen CA key cannot vouch for another site: a leaf for a bank's name, signed with the CA's key
  and served directly, is refused; one for a target name from the same key is accepted.
* User mode end to end: the GNOME proxy setting and the NSS database written by the installer make
  Chromium (started with no proxy flag at all) show the block page; with the daemon killed it goes
  direct, targets too (what the README says user mode does); after uninstall it goes direct.
* System mode end to end (CI only: it writes /etc/chromium/policies/managed): the managed policy
  alone makes Chromium use the proxy (even with --no-proxy-server), trust the CA, and show QUIC off;
  with the daemon SIGKILLed the targets fail closed (a proxy error, never the origin) and a site no
  rule targets still loads.

No request leaves the machine: the targets' allowed traffic goes to a local origin through the
daemon's --redirect-upstream, and a browser's own look-ups through --host-resolver-rules.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.server
import json
import os
import signal
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
from zctest.e2e import Daemon, Origin, _Origin, origin, start_daemon
from zctest.installer import RULES, free_port, said
from zctest.support import chromium_args, need_tool, wait_for

from zerocontact.daemon import ca
from zerocontact.installer.context import Context, SubprocessRunner
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


class Origins:
    """Two loopback origins standing in for the web, recording every request that reaches them.

    ``www.instagram.com`` answers HTTPS with a leaf from the installation's CA (which the browser
    trusts), so a browser that went DIRECT for a target would load it and show the origin's text;
    ``news.example`` is a site no rule targets (plain HTTP). ``resolver`` maps both names to them and
    every other name to nothing, so no request a browser makes can leave the machine."""

    def __init__(self, ca_dir: Path, tmp_path: Path) -> None:
        self.seen: list[str] = []  # host/path of every request that arrived
        seen = self.seen

        class Seen(_Origin):
            def do_GET(self) -> None:
                seen.append(f"{self.headers.get('Host', '').split(':')[0]}{self.path}")
                super().do_GET()

        cp, kp = leaf_for("www.instagram.com", ca_dir, tmp_path)
        self.target = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Seen)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cp, kp)
        self.target.socket = tls.wrap_socket(self.target.socket, server_side=True)
        self.other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Seen)
        for server in (self.target, self.other):
            threading.Thread(target=server.serve_forever, daemon=True).start()
        self.resolver = (
            f"--host-resolver-rules=MAP www.instagram.com 127.0.0.1:{self.target.server_address[1]},"
            f" MAP news.example 127.0.0.1:{self.other.server_address[1]}, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
        )
        # what the daemon passes on for an allowed request goes to the plain-HTTP origin
        self.redirect = f"www.instagram.com=127.0.0.1:{self.other.server_address[1]}"

    def direct(self, host: str) -> list[str]:
        """The requests for ``host`` that reached its origin without the daemon."""
        return [x for x in self.seen if x.startswith(host + "/")]

    def close(self) -> None:
        for server in (self.target, self.other):
            server.shutdown()


@pytest.fixture
def gnome_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_home: Path
) -> Iterator[tuple[Context, Path]]:
    """A user installation with the GNOME proxy setting (GLib's file backend in the test's HOME)."""
    need_tool("gsettings")
    need_tool("certutil")
    monkeypatch.setenv("GSETTINGS_BACKEND", "keyfile")
    ctx = make_context(
        "user",
        Path("/"),
        hosts=targets(RULES),
        state_dir=PurePath(tmp_path / "state-g"),
        run_live_commands=False,  # no systemctl here; every file is under the test's HOME
        proxy_port=free_port(),
        pac_port=free_port(),
    )
    steps = build_steps(ctx, rules=(RULES.encode(), "test"))
    assert [s.name for s in steps] == ["state", "rules", "ca", "trust-nss", "proxy-gnome", "service"]
    _, say = said()
    install(ctx, steps, SubprocessRunner(), say)
    yield ctx, isolated_home


def test_user_install_routes_chromium_through_the_gnome_setting_and_fails_open_when_killed(
    tmp_path: Path, gnome_install: tuple[Context, Path]
) -> None:
    """The README's word on user mode: the desktop setting routes the targets while the daemon runs;
    killed, its PAC URL cannot be fetched and Chromium goes direct for everything, targets too."""
    ctx, home = gnome_install
    web = Origins(ctx.at(ctx.ca_dir), tmp_path)
    ports = (
        "--port",
        str(ctx.proxy_port),
        "--pac-port",
        str(ctx.pac_port),
        "--redirect-upstream",
        web.redirect,
    )
    env = {"XDG_CURRENT_DESKTOP": "GNOME", "HOME": str(home)}

    def load(profile: str, url: str = TARGET, *flags: str) -> subprocess.CompletedProcess[str]:
        return dump(
            chromium(tmp_path / profile, web.resolver, *flags, "--dump-dom", url), env
        )  # no proxy flag

    installed_rules = ctx.at(ctx.rules)  # the installation's own: `run` takes no other beside it
    d = start_daemon(tmp_path, extra=ports, name="g", rules_file=installed_rules)
    try:
        assert d.ca == ctx.at(ctx.ca_dir) / ca.CERT_FILE  # the daemon runs on the installer's constrained CA
        r = load("p1")
        assert 'data-zerocontact="blocked"' in r.stdout, r.stderr[-2000:]
        assert web.direct("www.instagram.com") == []
        os.kill(d.proc.pid, signal.SIGKILL)
        assert d.proc.wait(10) == -signal.SIGKILL
        r = load("p2")
        assert "origin says hi /sam.example/" in r.stdout, r.stderr[-2000:]  # open, as the README says
        assert web.direct("www.instagram.com")
        d = start_daemon(tmp_path, extra=ports, name="g", rules_file=installed_rules)  # back: so is the block
        r = load("p3")
        assert 'data-zerocontact="blocked"' in r.stdout, r.stderr[-2000:]
        _, say = said()
        uninstall(ctx.manifest, SubprocessRunner(), say)
        assert not (home / ".config/glib-2.0").exists() and not (home / ".pki").exists()
        # the CA is no longer trusted either way; past that, direct shows the origin, the proxy would block
        r = load("p4", TARGET, "--ignore-certificate-errors")
        assert "origin says hi /sam.example/" in r.stdout, r.stderr[-2000:]  # the setting is gone: direct
    finally:
        d.stop()
        web.close()


DEEP_TEXT = """(function t(n){let s='';if(n.shadowRoot)s+=t(n.shadowRoot);
for(const c of n.childNodes){s+=c.nodeType===3?c.textContent+' ':t(c);}return s;})(document.body)"""


@pytest.fixture
def managed_policy(tmp_path: Path) -> Iterator[Context]:
    """The system installation's CA and its real Chromium policy in /etc/chromium/policies/managed
    (CI only), uninstalled afterwards; /etc is left exactly as it was found."""
    if os.environ.get("CI") != "true":
        pytest.skip("writes /etc/chromium/policies/managed: CI only")
    policy = Path(CHROMIUM_DIRS["Chromium"]) / "zerocontact.json"
    assert not policy.exists(), "a zerocontact policy is already installed on this machine"
    existed = {p for p in (Path("/etc/chromium"), Path("/etc/chromium/policies")) if p.exists()}
    ctx = make_context(
        "system",
        Path("/"),
        hosts=targets(RULES),
        state_dir=PurePath(tmp_path / "state-p"),
        run_live_commands=False,
        proxy_port=free_port(),
        pac_port=free_port(),
    )
    ctx = dataclasses.replace(ctx, config_dir=PurePath(tmp_path / "config-p"))  # not /etc/zerocontact
    Path(ctx.config_dir).mkdir()
    Path(ctx.rules).write_text(RULES)  # the daemon runs on the installation's rules, as its unit would
    material = CaMaterial(ctx)
    _, say = said()
    try:
        install(
            ctx,
            [CaStep(ctx, material), ChromiumPolicy(ctx, material, {"Chromium": CHROMIUM_DIRS["Chromium"]})],
            SubprocessRunner(),
            say,
        )
        assert json.loads(policy.read_text())["QuicAllowed"] is False
        yield ctx
    finally:
        uninstall(ctx.manifest, SubprocessRunner(), say)
        policy.unlink(missing_ok=True)  # belt and braces: never leave it behind
    assert not policy.exists()
    assert {p for p in (Path("/etc/chromium"), Path("/etc/chromium/policies")) if p.exists()} == existed


def policy_daemon(tmp_path: Path, ctx: Context, redirect: str) -> Daemon:
    """The real daemon on the installation's CA and the ports its policy names."""
    extra = ("--port", str(ctx.proxy_port), "--pac-port", str(ctx.pac_port), "--redirect-upstream", redirect)
    return start_daemon(tmp_path, extra=extra, name="p", rules_file=Path(ctx.rules))


def test_the_managed_policy_alone_routes_trusts_and_turns_quic_off(
    tmp_path: Path, origin: Origin, managed_policy: Context
) -> None:
    d = policy_daemon(tmp_path, managed_policy, f"www.instagram.com=127.0.0.1:{origin.port}")
    try:
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
        d.stop()


def test_a_killed_daemon_leaves_the_targets_closed_and_the_rest_open_under_the_policy(
    tmp_path: Path, managed_policy: Context
) -> None:
    ctx = managed_policy
    web = Origins(ctx.at(ctx.ca_dir), tmp_path)
    home = tmp_path / "empty-home"  # no NSS database: the CA is trusted by the policy alone
    home.mkdir()
    env = {"HOME": str(home)}

    def load(profile: str, url: str) -> subprocess.CompletedProcess[str]:
        return dump(chromium(tmp_path / profile, web.resolver, "--dump-dom", url), env)

    d = policy_daemon(tmp_path, ctx, web.redirect)
    try:
        r = load("p1", TARGET)
        assert 'data-zerocontact="blocked"' in r.stdout, r.stderr[-2000:]  # the policy's proxy is this one
        os.kill(d.proc.pid, signal.SIGKILL)
        assert d.proc.wait(10) == -signal.SIGKILL
        web.seen.clear()
        for n, url in enumerate((TARGET, "https://www.instagram.com/")):  # the person, and the platform
            r = load(f"k{n}", url)
            assert "origin says hi" not in r.stdout and "data-zerocontact" not in r.stdout
            assert "ERR_PROXY_CONNECTION_FAILED" in r.stderr, r.stderr[-2000:]
        assert web.seen == []  # not one request for the target reached its origin directly
        r = load("k2", "http://news.example/today")
        assert "origin says hi /today" in r.stdout, r.stderr[-2000:]
        assert web.direct("news.example") and web.seen == web.direct("news.example")
    finally:
        d.stop()
        web.close()
