"""install / uninstall / doctor through the real command, into staging roots."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from zctest.installer import (
    RULES,
    debian_layout,
    stock_debian12_tool,
    tree,
    usage_only_tool,
    zc,
)
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


@pytest.mark.parametrize("tool", ["this machine's", "debian 12 stock"])
def test_system_install_fills_the_trust_store_and_purge_restores_it(
    staging: Path, rules_file: Path, tmp_path: Path, tool: str
) -> None:
    path = os.environ["PATH"]
    if tool == "debian 12 stock":
        path = f"{stock_debian12_tool(tmp_path / 'old-bin')}{os.pathsep}{path}"
    debian_layout(staging, path)
    before = tree(staging)
    r = zc("install", "--system", "--rules", str(rules_file), "--root", str(staging), env={"PATH": path})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "checked: /etc/ssl/certs/ca-certificates.crt holds the CA" in r.stdout
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
    zc("uninstall", "--purge", "--root", str(staging), env={"PATH": path}, check=True)
    assert tree(staging) == before


def test_a_trust_tool_that_only_prints_its_usage_is_not_taken_for_success(
    staging: Path, rules_file: Path, tmp_path: Path
) -> None:
    debian_layout(staging)
    before = tree(staging)
    path = f"{usage_only_tool(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}"
    r = zc("install", "--system", "--rules", str(rules_file), "--root", str(staging), env={"PATH": path})
    assert r.returncode == 1
    assert "update-ca-certificates finished without error, but /etc/ssl/certs/ca-certificates.crt" in r.stderr
    assert "update the ca-certificates package" in r.stderr and "installed." not in r.stdout
    assert tree(staging) == before  # the failed run's own changes were undone


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
    # and with Sam blocked under the default 24 h cooling-off, uninstalling waits as well
    assert zc("uninstall", "--purge", "--root", str(staging)).returncode == 3


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


def test_uninstall_during_a_block_waits_out_the_cooling_off(staging: Path, tmp_path: Path) -> None:
    """Uninstall is a loosening: asked during a block it is pending (status shows it, nothing is
    removed, the block holds); asked again once the cooling-off has passed, it runs."""
    from zctest.e2e import start_daemon
    from zctest.support import need_tool, wait_for

    # long enough that a loaded machine cannot let it pass between two commands
    rules = RULES.replace("[[person]]", '[lock]\ncooling_off = "15s"\n\n[[person]]', 1)
    src = tmp_path / "rules.toml"
    src.write_text(rules)
    zc("install", "--user", "--rules", str(src), "--root", str(staging), check=True)
    home = Path(os.environ["HOME"]).relative_to("/")
    state = staging / home / ".local/state/zerocontact"
    unit = staging / home / ".config/systemd/user/zerocontact.service"
    d = start_daemon(tmp_path, rules, name="installed", state_dir=state)
    try:
        r = zc("uninstall", "--root", str(staging))
        assert r.returncode == 3 and "waits out your cooling-off" in r.stdout, r.stdout + r.stderr
        assert unit.exists()  # nothing was removed
        wait_for(
            lambda: any(
                p["key"] == "uninstall"
                for p in json.loads(zc("status", "--json", "--state-dir", str(state)).stdout)["pending"]
            ),
            10,
            "status to show the pending uninstall",
        )
        curl = subprocess.run(
            [
                need_tool("curl"),
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-x",
                f"http://{d.proxy}",
                "http://www.instagram.com/sam.example/",
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert curl.stdout == "403"  # enforcement unchanged
        assert zc("uninstall", "--root", str(staging)).returncode == 3  # asked again too soon
        assert zc("uninstall", "--root", str(staging), "--cancel").returncode == 0
        assert not (state / "uninstall-requested.json").exists()
        assert zc("uninstall", "--root", str(staging)).returncode == 3  # a new request, a new wait
        done = wait_for(
            lambda: (r := zc("uninstall", "--root", str(staging))).returncode == 0 and r,
            45,
            "the cooling-off to pass and the uninstall to run",
        )
        assert "uninstalled" in done.stdout and not unit.exists()
    finally:
        d.stop()


def test_install_refuses_a_rules_path_that_is_not_a_regular_file(staging: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # refused as `rules check` refuses it (the bytes installed are the bytes checked)
    r = zc("install", "--user", "--rules", str(fifo), "--root", str(staging))
    assert r.returncode == 1
    assert f"{fifo} is a FIFO (named pipe): zerocontact reads its rules only from a regular file" in r.stderr


def test_a_service_is_never_started_from_a_source_folder(
    staging: Path, rules_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """./dev's .venv is an editable install: a service started from it dies with the clone."""
    from click.testing import CliRunner

    from zerocontact.daemon.cli import main
    from zerocontact.installer import plan

    source = plan.editable_source()
    assert source is not None and Path(source) == Path(__file__).resolve().parents[2]
    r = zc("install", "--user", "--rules", str(rules_file), "--root", str(staging), "--dry-run", check=True)
    assert f"note: this zerocontact runs from the source folder {source}" in r.stdout

    def must_not_install(*args: object) -> None:
        raise AssertionError("a live install from a source folder was attempted")

    # on a live system (whatever preflight would say here), it refuses before touching anything
    monkeypatch.setattr(plan, "preflight", lambda ctx: None)
    monkeypatch.setattr(plan, "install", must_not_install)
    out = CliRunner().invoke(main, ["install", "--system", "--rules", str(rules_file)])
    assert out.exit_code == 1, out.output
    assert "runs from the source folder" in out.output and "pipx install ." in out.output


def test_doctor_and_status_find_the_same_running_daemon(tmp_path: Path, isolated_home: Path) -> None:
    """A daemon in the user's own folders (`zerocontact run`, no install): as root too, doctor must
    check that one, as status does, not a system installation that does not exist."""
    from zctest.installer import ZC
    from zctest.support import wait_for

    rules = tmp_path / "my-rules.toml"
    rules.write_text(RULES)
    log = tmp_path / "daemon.log"
    proc = subprocess.Popen(
        [ZC, "run", "--rules", str(rules), "--port", "0", "--pac-port", "0"],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    runtime = isolated_home / ".local/state/zerocontact/daemon.json"
    try:
        wait_for(
            lambda: runtime.exists() and json.loads(runtime.read_text() or "{}").get("pid") == proc.pid,
            30,
            "the daemon in the user's state folder",
        )
        st = zc("status")
        assert st.returncode == 0 and f"zerocontact is running (pid {proc.pid})" in st.stdout
        r = zc("doctor", "--json")
        checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
        failing = sorted(name for name, c in checks.items() if c["status"] == "fail")
        assert failing == ["install"], r.stdout  # running by hand is not installed; nothing else is wrong
        assert str(proc.pid) in checks["daemon"]["detail"] and str(rules) in checks["rules"]["detail"]
        if os.geteuid() == 0:  # install refuses --user as root: the fix must be one that works
            assert checks["install"]["fix"] == "zerocontact install --system"
    finally:
        proc.terminate()
        proc.wait(30)
