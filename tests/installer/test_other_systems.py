"""macOS and Windows cannot run here: their files are checked for content, their commands run against
a fake runner (what would be run, and what uninstall would run to put things back)."""

from __future__ import annotations

import plistlib
from pathlib import Path, PurePosixPath, PureWindowsPath
from xml.etree import ElementTree as ET

import pytest
from zctest.installer import FakeRunner, said, zc

from zerocontact.installer import launchd, windows
from zerocontact.installer.ops import Manifest, Reverter
from zerocontact.installer.plan import build_steps, install, make_context, plan_text
from zerocontact.installer.routing import parse_autoproxy

HOSTS = ("instagram.com", "x.com")
EXE = ("/Applications/zerocontact/bin/zerocontact",)


def mac(mode: str, root: Path = Path("/"), **kw: object):  # type: ignore[no-untyped-def]
    return make_context(
        mode, root, hosts=HOSTS, target="darwin", exe=EXE, home=PurePosixPath("/Users/sam"), **kw
    )  # type: ignore[arg-type]


def win(mode: str, root: Path = Path("/"), **kw: object):  # type: ignore[no-untyped-def]
    return make_context(
        mode,  # type: ignore[arg-type]
        root,
        hosts=HOSTS,
        target="windows",
        exe=(r"C:\Program Files\zerocontact\zerocontact.exe",),
        home=PureWindowsPath(r"C:\Users\Sam Example"),
        **kw,
    )


@pytest.mark.parametrize("mode", ["system", "user"])
def test_the_launchd_plist_round_trips(mode: str) -> None:
    c = mac(mode)
    data = plistlib.loads(plistlib.dumps(launchd.daemon_plist(c)))
    assert data["Label"] == "net.zerocontact.daemon"
    assert data["ProgramArguments"][:2] == [EXE[0], "run"]
    assert data["RunAtLoad"] is True and data["KeepAlive"] is True and data["Umask"] == 0o077
    # a LaunchDaemon acts for every user; an agent only for its own (daemon/paths.system_mode)
    assert data["EnvironmentVariables"].get("ZEROCONTACT_MODE") == ("system" if mode == "system" else None)
    state = (
        "/Library/Application Support/zerocontact/state"
        if mode == "system"
        else "/Users/sam/Library/Application Support/zerocontact/state"
    )
    assert data["ProgramArguments"][data["ProgramArguments"].index("--state-dir") + 1] == state
    refresh = plistlib.loads(plistlib.dumps(launchd.refresh_plist(c)))
    assert refresh["WatchPaths"] == [str(c.rules)] and "--refresh" in refresh["ProgramArguments"]
    where = "/Library/LaunchDaemons" if mode == "system" else "/Users/sam/Library/LaunchAgents"
    assert str(launchd.plist_dir(c)) == where
    assert launchd.domain(c) == ("system" if mode == "system" else f"gui/{c.uid}")


@pytest.mark.parametrize("mode", ["system", "user"])
def test_the_task_scheduler_xml_is_well_formed_with_the_expected_fields(mode: str) -> None:
    raw = windows.task_xml(win(mode))
    assert raw[:2] == b"\xff\xfe"  # UTF-16 with a BOM, as schtasks wants it
    text = raw.decode("utf-16")
    assert text.startswith('<?xml version="1.0" encoding="UTF-16"?>')
    root = ET.fromstring(text.split("\n", 1)[1])
    ns = {"t": windows.TASK_NS}
    assert root.tag == f"{{{windows.TASK_NS}}}Task"
    exe = root.find("t:Actions/t:Exec", ns)
    assert exe is not None
    assert exe.findtext("t:Command", namespaces=ns) == r"C:\Program Files\zerocontact\zerocontact.exe"
    args = exe.findtext("t:Arguments", namespaces=ns) or ""
    if mode == "user":  # a path with a space is quoted the way Windows splits command lines
        assert args.startswith(r'run --rules "C:\Users\Sam Example\AppData\Roaming\zerocontact\rules.toml"')
    else:
        assert args.startswith(r"run --rules C:\ProgramData\zerocontact\rules.toml --state-dir")
    assert root.findtext("t:Settings/t:ExecutionTimeLimit", namespaces=ns) == "PT0S"
    assert root.findtext("t:Settings/t:RestartOnFailure/t:Count", namespaces=ns) == "999"
    assert root.findtext("t:Settings/t:MultipleInstancesPolicy", namespaces=ns) == "IgnoreNew"
    assert root.findtext("t:Settings/t:DisallowStartIfOnBatteries", namespaces=ns) == "false"
    trigger = "BootTrigger" if mode == "system" else "LogonTrigger"
    assert root.find(f"t:Triggers/t:{trigger}", ns) is not None
    user = root.findtext("t:Principals/t:Principal/t:UserId", namespaces=ns)
    assert (user == "S-1-5-18") == (mode == "system")


def test_plans_for_other_systems_print_here(rules_file: Path) -> None:
    rules = str(rules_file)
    mac_plan = zc("install", "--system", "--for", "darwin", "--dry-run", "--rules", rules, check=True).stdout
    win_plan = zc("install", "--user", "--for", "windows", "--dry-run", "--rules", rules, check=True).stdout
    assert (
        "security add-trusted-cert -d -r trustRoot -p ssl -k /Library/Keychains/System.keychain" in mac_plan
    )
    assert "networksetup -setautoproxyurl <each network service> http://127.0.0.1:8342/proxy.pac" in mac_plan
    assert "launchctl bootstrap system /Library/LaunchDaemons/net.zerocontact.daemon.plist" in mac_plan
    assert "certutil -user -addstore -f Root {cert}" in win_plan
    assert (
        r'reg add "HKCU\Software\Microsoft\Windows\CurrentVersion\Internet Settings" /v AutoConfigURL'
        in win_plan
    )
    assert "schtasks /Create /TN zerocontact /XML" in win_plan


def test_macos_apply_and_uninstall_with_a_fake_system(staging: Path) -> None:
    c = mac("system", staging, run_live_commands=True, env={})
    (staging / "Applications/Firefox.app").mkdir(parents=True)
    runner = FakeRunner(
        {
            ("networksetup", "-listallnetworkservices"): (
                "An asterisk (*) denotes that a network service is disabled.\n"
                "Wi-Fi\nThunderbolt Bridge\n*Old VPN\n",
                0,
            ),
            ("networksetup", "-getautoproxyurl", "Wi-Fi"): ("URL: http://corp/wpad.pac\nEnabled: Yes\n", 0),
            ("networksetup", "-getautoproxyurl", "Thunderbolt Bridge"): ("URL: (null)\nEnabled: No\n", 0),
            ("launchctl", "print"): ("", 113),  # not loaded yet
        }
    )
    _, say = said()
    m = install(c, build_steps(c), runner, say)
    ran = [" ".join(a) for a in runner.calls]
    assert any(
        a.startswith(
            "security add-trusted-cert -d -r trustRoot -p ssl -k /Library/Keychains/System.keychain "
        )
        for a in ran
    )
    assert "networksetup -setautoproxyurl Wi-Fi http://127.0.0.1:8342/proxy.pac" in ran
    assert not any("Old VPN" in a and "-set" in a for a in ran)
    assert any(a.startswith("launchctl bootstrap system ") for a in ran)
    plist = staging / "Library/LaunchDaemons/net.zerocontact.daemon.plist"
    assert plistlib.loads(plist.read_bytes())["KeepAlive"] is True
    assert (staging / "Applications/Firefox.app/Contents/Resources/distribution/policies.json").exists()
    undo = FakeRunner()
    r = Reverter(undo, say, {})
    for rec in reversed(Manifest.load(c.manifest).records):
        r.revert(rec)
    ran = [" ".join(a) for a in undo.calls]
    assert ran[:2] == [
        "launchctl bootout system/net.zerocontact.refresh",
        "launchctl bootout system/net.zerocontact.daemon",
    ]
    assert "networksetup -setautoproxyurl Wi-Fi http://corp/wpad.pac" in ran  # what was there before
    assert "networksetup -setautoproxystate Thunderbolt Bridge off" in ran
    sha1 = [a for a in ran if a.startswith("security delete-certificate -t -Z ")]
    assert len(sha1) == 1 and len(sha1[0].split()[4]) == 40
    assert m.data["os"] == "darwin"


def test_windows_registry_values_are_put_back(staging: Path) -> None:
    c = win("user", staging, run_live_commands=True, env={})
    key = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Internet Settings"
    runner = FakeRunner(
        {
            ("reg", "query", key, "/v", "AutoConfigURL"): (
                f"\n{key}\n    AutoConfigURL    REG_SZ    http://corp/proxy.pac\n\n",
                0,
            ),
        }
    )
    _, say = said()
    install(c, build_steps(c), runner, say)
    ran = [a for a in runner.calls if a[:2] == ["reg", "add"]]
    assert ran == [
        [
            "reg",
            "add",
            key,
            "/v",
            "AutoConfigURL",
            "/t",
            "REG_SZ",
            "/d",
            "http://127.0.0.1:8342/proxy.pac",
            "/f",
        ]
    ]
    assert ["schtasks", "/Run", "/TN", "zerocontact"] in runner.calls
    undo = FakeRunner()
    for rec in reversed(Manifest.load(c.manifest).records):
        Reverter(undo, say, {}).revert(rec)
    assert [
        "reg",
        "add",
        key,
        "/v",
        "AutoConfigURL",
        "/t",
        "REG_SZ",
        "/d",
        "http://corp/proxy.pac",
        "/f",
    ] in undo.calls
    assert ["schtasks", "/Delete", "/TN", "zerocontact", "/F"] in undo.calls
    assert any(a[:4] == ["certutil", "-user", "-delstore", "Root"] for a in undo.calls)


def test_windows_system_mode_sets_browser_policies_in_the_registry() -> None:
    c = win("system")
    text = plan_text(c, build_steps(c))
    for browser in (r"Google\Chrome", r"Microsoft\Edge"):
        assert rf'reg add "HKLM\SOFTWARE\Policies\{browser}" /v QuicAllowed /t REG_DWORD /d 0' in text
        assert rf'reg add "HKLM\SOFTWARE\Policies\{browser}" /v DnsOverHttpsMode /t REG_SZ /d off' in text
    assert "pac_script" in text and "data:application/x-ns-proxy-autoconfig;base64," in text


def test_parse_networksetup_and_reg_output() -> None:
    assert parse_autoproxy("URL: (null)\nEnabled: No\n") == (None, False)
    assert parse_autoproxy("URL: http://a/b.pac\nEnabled: Yes\n") == ("http://a/b.pac", True)
    out = "\nHKEY_CURRENT_USER\\X\n    Auto Config URL    REG_SZ    http://a b\n"
    assert windows.reg_query_value(out, "auto config url") == ("REG_SZ", "http://a b")
    assert windows.reg_query_value(out, "Other") is None


def test_cli_refuses_to_apply_another_systems_plan(staging: Path) -> None:
    out = zc("install", "--user", "--for", "windows", "--root", str(staging))
    assert out.returncode == 1 and "add --dry-run" in out.stderr
