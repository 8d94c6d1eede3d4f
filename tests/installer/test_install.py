"""install / uninstall / doctor through the real command, into staging roots."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from zctest.installer import RULES, debian_layout, tree, zc
from zctest.support import need_tool

from zerocontact.daemon import ca


def home_in(root: Path) -> Path:
    return root / Path(os.environ["HOME"]).relative_to("/")


def test_user_install_twice_then_purge_leaves_the_root_exactly_as_before(
    staging: Path, rules_file: Path
) -> None:
    need_tool("certutil")
    (staging / "etc").mkdir()  # something that was there before
    (staging / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    before = tree(staging)
    first = zc("install", "--user", "--rules", str(rules_file), "--root", str(staging), check=True)
    assert "[service] systemd user service" in first.stdout
    home = home_in(staging)
    manifest = home / ".local/state/zerocontact/install.json"
    after_first, records = tree(staging), json.loads(manifest.read_text())["records"]
    second = zc("install", "--user", "--root", str(staging), check=True)  # harmless; rules already there
    assert "wrote" not in second.stdout.split("applying:")[1]
    changed = {k for k, v in tree(staging).items() if after_first.get(k) != v}
    assert changed <= {str(manifest.relative_to(staging))}  # at most its "updated" time
    assert json.loads(manifest.read_text())["records"] == records
    assert (home / ".config/zerocontact/rules.toml").read_text() == RULES
    assert (home / ".config/zerocontact/rules.toml").stat().st_mode & 0o777 == 0o600
    assert (home / ".local/state/zerocontact").stat().st_mode & 0o777 == 0o700
    assert (home / ".config/systemd/user/zerocontact.service").exists()
    assert (home / ".pki/nssdb/cert9.db").exists()
    purge = zc("uninstall", "--purge", "--root", str(staging), check=True)
    assert "journal and rules were deleted" in purge.stdout
    assert tree(staging) == before
    again = zc("uninstall", "--purge", "--root", str(staging), check=True)
    assert "nothing to uninstall" in again.stdout
    assert tree(staging) == before


def test_system_install_fills_the_trust_store_and_purge_restores_it(staging: Path, rules_file: Path) -> None:
    debian_layout(staging)
    before = tree(staging)
    zc("install", "--system", "--rules", str(rules_file), "--root", str(staging), check=True)
    cert = (staging / "var/lib/zerocontact/ca/mitmproxy-ca-cert.pem").read_bytes()
    body = b"".join(cert.split(b"\n")[1:-2])
    assert body in (staging / "etc/ssl/certs/ca-certificates.crt").read_bytes().replace(b"\n", b"")
    assert (staging / "etc/ssl/certs/zerocontact.pem").is_symlink()
    policy = json.loads((staging / "etc/chromium/policies/managed/zerocontact.json").read_text())
    assert policy["QuicAllowed"] is False and policy["DnsOverHttpsMode"] == "off"
    assert policy["ProxySettings"]["ProxyPacUrl"].startswith("data:application/x-ns-proxy-autoconfig;base64,")
    assert policy["ProxySettings"]["ProxyPacMandatory"] is True  # a PAC that fails to run never means DIRECT
    constrained = policy["CACertificatesWithConstraints"][0]
    assert constrained["certificate"] == ca.der_base64(cert)
    assert "instagram.com" in constrained["constraints"]["permitted_dns_names"]
    firefox = json.loads((staging / "etc/firefox/policies/policies.json").read_text())["policies"]
    assert firefox["Proxy"] == {
        "Mode": "autoConfig",
        "AutoConfigURL": "file:///etc/zerocontact/proxy.pac",
        "Locked": True,
    }
    assert firefox["Certificates"]["Install"] == ["/etc/zerocontact/ca.pem"]
    assert firefox["DNSOverHTTPS"] == {"Enabled": False, "Locked": True}
    assert firefox["Preferences"]["network.http.http3.enable"] == {"Value": False, "Status": "locked"}
    assert (staging / "etc/zerocontact/ca.pem").read_bytes() == cert
    assert "PROXY 127.0.0.1:8341" in (staging / "etc/zerocontact/proxy.pac").read_text()
    assert (staging / "etc/zerocontact/rules.toml").stat().st_mode & 0o777 == 0o600
    zc("uninstall", "--purge", "--root", str(staging), check=True)
    assert tree(staging) == before


def test_plain_uninstall_keeps_the_rules_and_the_journal(staging: Path, rules_file: Path) -> None:
    debian_layout(staging)
    zc("install", "--system", "--rules", str(rules_file), "--root", str(staging), check=True)
    journal = staging / "var/lib/zerocontact/journal.sqlite3"
    journal.write_bytes(b"pretend journal")
    out = zc("uninstall", "--root", str(staging), check=True)
    assert "rules file and journal were kept" in out.stdout
    assert journal.read_bytes() == b"pretend journal"
    assert (staging / "etc/zerocontact/rules.toml").read_text() == RULES
    left = {p for p in tree(staging) if "zerocontact" in p}
    assert left == {
        "etc/zerocontact",
        "etc/zerocontact/rules.toml",
        "var/lib/zerocontact",
        "var/lib/zerocontact/journal.sqlite3",
        "var/lib/zerocontact/install.json",
    }
    assert not (staging / "etc/chromium").exists() and not (staging / "etc/systemd").exists()
    assert "nothing to uninstall" in zc("uninstall", "--root", str(staging), check=True).stdout
    zc("uninstall", "--purge", "--root", str(staging), check=True)
    assert not (staging / "var/lib/zerocontact").exists() and not (staging / "etc/zerocontact").exists()


def test_what_was_there_before_comes_back(staging: Path, rules_file: Path) -> None:
    """Someone else's Firefox policies and a rules file the user wrote themselves survive, exactly."""
    policies = staging / "etc/firefox/policies/policies.json"
    policies.parent.mkdir(parents=True)
    policies.write_text('{"policies": {"DisableTelemetry": true}}\n')
    rules = staging / "etc/zerocontact/rules.toml"
    rules.parent.mkdir(parents=True)
    rules.write_text(RULES)
    rules.chmod(0o600)
    before = tree(staging)
    zc("install", "--system", "--root", str(staging), check=True)  # uses the rules already there
    assert json.loads(policies.read_text())["policies"]["DisableTelemetry"] is True
    zc("uninstall", "--purge", "--root", str(staging), check=True)
    assert tree(staging) == before


def test_dry_run_prints_the_plan_and_touches_nothing(staging: Path, rules_file: Path) -> None:
    before = tree(staging)
    r = zc("install", "--system", "--rules", str(rules_file), "--root", str(staging), "--dry-run", check=True)
    assert tree(staging) == before
    for line in (
        "[ca] interception CA, valid only for: ",
        "write /etc/systemd/system/zerocontact.service (0644)",
        "write /etc/chromium/policies/managed/zerocontact.json (0644)",
        "run systemctl enable --now zerocontact.service zerocontact-refresh.path; on uninstall: "
        "systemctl disable --now zerocontact.service zerocontact-refresh.path (skipped: staging root)",
        "(dry run: nothing was changed)",
    ):
        assert line in r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("install", "--user", "--root", "{root}"), "no rules file at"),
        (("install", "--user", "--rules", "{bad}", "--root", "{root}"), "1 problem in"),
        (("install", "--user", "--rules", "{rules}", "--root", "{root}/nope"), "is not a folder"),
        (("install", "--for", "darwin", "--rules", "{rules}", "--root", "{root}"), "add --dry-run"),
        (("install", "--user", "--rules", "{rules}"), "--user as root would install for root only"),
    ],
)
def test_mistakes_get_one_clear_line_and_exit_1(
    staging: Path, rules_file: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    if "--user as root" in message and os.geteuid() != 0:
        pytest.skip("as a normal user on a live system this would really install")
    bad = tmp_path / "bad.toml"
    bad.write_text('[[person]]\nname = "S"\naccounts = { instgram = "s" }\n')
    r = zc(*(a.format(root=staging, rules=rules_file, bad=bad) for a in args))
    assert r.returncode == 1
    assert message in r.stderr, r.stderr
    assert r.stderr.startswith("zerocontact: ")


def test_system_without_root_and_without_systemd_say_so(rules_file: Path) -> None:
    """On the live system: --system needs root; without systemd running there is nothing to install into."""
    r = zc("install", "--system", "--rules", str(rules_file))
    assert r.returncode == 1
    if os.geteuid() != 0:
        assert "--system needs root: run `sudo zerocontact install --system`" in r.stderr
    elif not Path("/run/systemd/system").is_dir():
        assert "systemd is not running here" in r.stderr
    else:
        pytest.skip("this machine runs systemd as root: a live install would really happen")
    assert not Path("/etc/systemd/system/zerocontact.service").exists()


def test_refresh_follows_a_new_platform_and_never_narrows_during_a_cooling_off(
    staging: Path, rules_file: Path
) -> None:
    need_tool("certutil")
    zc("install", "--user", "--rules", str(rules_file), "--root", str(staging), check=True)
    home = home_in(staging)
    state = home / ".local/state/zerocontact"
    rules = home / ".config/zerocontact/rules.toml"
    old = (state / "ca/mitmproxy-ca-cert.pem").read_bytes()
    assert "nothing to refresh" in zc("install", "--refresh", "--root", str(staging), check=True).stdout
    rules.write_text(RULES.replace('x = "samexample"', 'x = "samexample", tiktok = "sam.example"'))
    r = zc("install", "--refresh", "--root", str(staging), check=True)
    assert "refreshing" in r.stdout
    new = (state / "ca/mitmproxy-ca-cert.pem").read_bytes()
    assert new != old and "tiktok.com" in ca.inspect(new).permitted
    nss = subprocess.run(
        [need_tool("certutil"), "-L", "-d", f"sql:{home / '.pki/nssdb'}"], capture_output=True, text=True
    ).stdout
    assert nss.count("zerocontact") == 1  # the old CA was taken out
    # the daemon still enforces TikTok (a loosening in its cooling-off): install must not narrow
    (state / "in-force.toml").write_text(rules.read_text())
    rules.write_text(RULES)
    assert "nothing to refresh" in zc("install", "--refresh", "--root", str(staging), check=True).stdout
    zc("install", "--user", "--root", str(staging), check=True)
    assert "tiktok.com" in ca.inspect((state / "ca/mitmproxy-ca-cert.pem").read_bytes()).permitted
    zc("uninstall", "--purge", "--root", str(staging), check=True)


def test_doctor_on_a_staged_installation(staging: Path, rules_file: Path) -> None:
    zc("install", "--system", "--rules", str(rules_file), "--root", str(staging), check=True)
    r = zc("doctor", "--root", str(staging), "--json")
    report = json.loads(r.stdout)
    status = {c["name"]: c["status"] for c in report["checks"]}
    assert r.returncode == 0 and report["ok"], r.stdout
    assert status["policy-chromium"] == "ok" and status["policy-firefox"] == "ok" and status["quic"] == "ok"
    assert status["ca"] == "ok" and status["service"] == "skip" and status["rules"] == "ok"
    # a hole: the Chromium policy is gone -> exit 1, with the fix
    (staging / "etc/chromium/policies/managed/zerocontact.json").unlink()
    r = zc("doctor", "--root", str(staging))
    assert r.returncode == 1
    assert (
        "FAIL  policy-chromium" in r.stdout
        and f"fix: sudo zerocontact install --system --root {staging}" in r.stdout
    )
    assert "FAIL  quic" in r.stdout
    # the rules target a platform the installation does not cover yet
    rules = staging / "etc/zerocontact/rules.toml"
    rules.write_text(RULES.replace('x = "samexample"', 'x = "samexample", reddit = "sam"'))
    out = json.loads(zc("doctor", "--root", str(staging), "--json").stdout)
    targets = next(c for c in out["checks"] if c["name"] == "targets")
    assert targets["status"] == "fail" and "reddit.com" in targets["detail"]
    rules.write_text("[[person]]\nname = 1\n")
    out = json.loads(zc("doctor", "--root", str(staging), "--json").stdout)
    assert next(c for c in out["checks"] if c["name"] == "rules")["status"] == "fail"
    zc("uninstall", "--purge", "--root", str(staging), check=True)
    r = zc("doctor", "--root", str(staging))
    assert r.returncode == 1 and "FAIL  install" in r.stdout


def test_doctor_asks_the_running_daemon(tmp_path: Path) -> None:
    from zctest.e2e import start_daemon

    d = start_daemon(tmp_path, RULES, name="doc")
    try:
        r = zc("doctor", "--state-dir", str(d.state), "--json")
    finally:
        d.stop()
    report = json.loads(r.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert r.returncode == 1 and checks["install"]["status"] == "fail"  # running by hand is not installed
    for name in ("daemon", "proxy", "pac", "clock", "rules", "ca"):
        assert checks[name]["status"] == "ok", checks[name]
    assert d.proxy in checks["proxy"]["detail"] and str(d.rules) in checks["rules"]["detail"]
    assert checks["install"]["fix"].startswith(
        ("sudo zerocontact install --system", "zerocontact install --user")
    )
    r = zc("doctor", "--state-dir", str(d.state))  # stopped now: the hole is named, with the fix
    assert r.returncode == 1 and "FAIL  daemon" in r.stdout and "fix: start it" in r.stdout
