"""App presets as data, globs, the protected list, bypass flags and the pure verdict (rules/apps.py)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import tomli

from zerocontact.rules import RulesError, load
from zerocontact.rules.apps import (
    BypassContext,
    ProcInfo,
    _probes,
    active_rules,
    app_presets,
    app_rules,
    browsers,
    bypass_list_covers,
    bypass_of,
    check_entry,
    chromium_bypass,
    compile_apps,
    compile_entry,
    describe,
    explain_process,
    innocents,
    judge,
    protected_reason,
)

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = [
    "whatsapp", "telegram", "signal", "spotify", "discord", "messenger", "instagram", "facebook",
    "snapchat", "tor-browser",
]  # fmt: skip
CTX = BypassContext(("instagram.com", "cdninstagram.com"), 8341, "http://127.0.0.1:8342/proxy.pac")


def proc(name: str, exe: str = "", *cmdline: str, pid: int = 4242, cgroup: str = "") -> ProcInfo:
    return ProcInfo(pid, name, exe, tuple(cmdline) or ((exe or name),), cgroup=cgroup)


# --- presets as data ----------------------------------------------------------------------------------
def test_required_presets_exist() -> None:
    assert set(REQUIRED) <= set(app_presets())
    assert {"chromium", "chrome", "brave", "edge", "vivaldi", "opera", "firefox", "librewolf"} <= set(
        browsers()
    )


def test_apps_toml_ships_in_the_wheel() -> None:
    data = tomli.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    globs = data.get("zerocontact.rules", [])
    assert any(Path("apps.toml").match(g) for g in globs), (
        "add \"apps.toml\" to [tool.setuptools.package-data] 'zerocontact.rules' in pyproject.toml"
    )


@pytest.mark.parametrize("name", sorted(app_presets()))
def test_each_preset_has_samples_that_match_it_and_no_other(name: str) -> None:
    preset = app_presets()[name]
    assert preset.samples, f"preset {name} has no [[app.sample]]: add real process samples"
    assert preset.note and preset.title
    for system, sample in preset.samples:
        assert preset.matches(sample), f"{name} ({system}): {sample} does not match"
        others = [p.name for p in app_presets().values() if p is not preset and p.matches(sample)]
        assert not others, f"{name} ({system}) sample also matches {others}"


@pytest.mark.parametrize(
    ("name", "systems"),
    [
        ("whatsapp", {"windows", "macos", "linux", "flatpak", "snap"}),
        ("telegram", {"windows", "macos", "linux", "flatpak", "snap"}),
        ("signal", {"windows", "macos", "linux", "flatpak", "snap"}),
        ("spotify", {"windows", "macos", "linux", "flatpak", "snap"}),
        ("discord", {"windows", "macos", "linux", "flatpak", "snap"}),
        ("messenger", {"windows", "macos", "linux", "flatpak", "snap"}),
        ("tor-browser", {"windows", "macos", "linux", "flatpak"}),
        ("instagram", {"windows", "macos"}),
        ("facebook", {"windows", "macos"}),
        ("snapchat", {"macos"}),
    ],
)
def test_presets_cover_each_system_where_the_app_exists(name: str, systems: set[str]) -> None:
    assert systems <= {s for s, _ in app_presets()[name].samples}


@pytest.mark.parametrize("name", sorted(browsers()))
def test_browser_samples_match_their_browser_and_no_app(name: str) -> None:
    b = browsers()[name]
    assert b.samples and b.kind in ("chromium", "firefox")
    for system, sample in b.samples:
        assert b.matches(sample), f"{name} ({system}): {sample}"
        assert not [p.name for p in app_presets().values() if p.matches(sample)]


def test_innocent_neighbours_match_no_preset() -> None:
    assert len(innocents()) >= 10
    for p in innocents():
        assert not [a.name for a in app_presets().values() if a.matches(p)], p


def test_no_preset_matches_a_protected_process() -> None:
    for p in _probes():
        assert not [a.name for a in app_presets().values() if a.matches(p)], p


def test_flatpak_and_snap_wrappers() -> None:
    wa = app_presets()["whatsapp"]
    assert wa.matches(proc("flatpak", "/usr/bin/flatpak", "/usr/bin/flatpak", "run", "com.rtosta.zapzap"))
    assert wa.matches(
        proc("flatpak", "/usr/bin/flatpak", "flatpak", "run", "--user", "com.rtosta.zapzap", "-x")
    )
    assert not wa.matches(proc("flatpak", "/usr/bin/flatpak", "flatpak", "run", "com.rtosta.zapzapx"))
    assert wa.matches(proc("bwrap", "/usr/bin/bwrap", "bwrap", "--args", "41", "zapzap"))
    assert not wa.matches(proc("bwrap", "/usr/bin/bwrap", "bwrap", "--args", "41", "zapzapx"))
    scope = "/user.slice/user-1000.slice/user@1000.service/app.slice/app-flatpak-com.rtosta.zapzap-77.scope"
    assert wa.matches(proc("python3", "/usr/bin/python3", "python3", "-m", "x", cgroup=scope))
    sp = app_presets()["spotify"]
    assert sp.matches(proc("snap", "/usr/bin/snap", "/usr/bin/snap", "run", "spotify"))
    assert sp.matches(proc("x", "", "x", cgroup="/user.slice/app.slice/snap.spotify.spotify-1a2b.scope"))
    assert not sp.matches(proc("snap", "/usr/bin/snap", "/usr/bin/snap", "run", "spotify-qt"))


# --- entries and globs --------------------------------------------------------------------------------
def matches(entry: str, p: ProcInfo) -> bool:
    from zerocontact.rules.apps import _view

    return any(pat.matches(_view(p)) for pat in compile_entry(entry))


def test_glob_shapes_choose_the_field() -> None:
    tg = proc("Telegram.exe", r"C:\Users\sam\AppData\Roaming\Telegram Desktop\Telegram.exe")
    assert matches("telegram*", tg)  # name, case-insensitive, with or without .exe
    assert matches("name:TELEGRAM", tg)
    assert matches("*/telegram desktop/*", tg)  # a path: backslashes read as slashes
    assert matches("exe:c:/users/*/telegram.exe", tg)
    assert not matches("name:telegram-desktop", tg)
    cmd = proc("python3", "/usr/bin/python3.12", "/usr/bin/python3", "/opt/notes/notes.py", "--profile", "x")
    assert matches("python3 /opt/notes/notes.py*", cmd)  # with a space: the command line, argv[0] cut
    assert matches("/usr/bin/python3 /opt/notes/*", cmd)  # … or whole
    assert matches("cmdline:*--profile x", cmd)
    assert not matches("cmdline:*--profile y", cmd)
    # exec -a: argv[0] names the process too
    renamed = ProcInfo(7, "sleep", "/usr/bin/sleep", ("WhatsApp", "300"))
    assert matches("whatsapp", renamed)


def test_exact_names_do_not_match_neighbours() -> None:
    assert not matches("telegram", proc("telegraf", "/usr/bin/telegraf"))
    assert not matches("spotify", proc("spotifyd", "/usr/bin/spotifyd"))
    assert not matches("snapchat", proc("snapd", "/usr/lib/snapd/snapd"))
    assert not matches(
        "signal", proc("java", "/usr/bin/java", "java", "-jar", "/usr/share/signal-cli/signal-cli.jar")
    )


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("*", "too many processes"),
        ("**", "too many processes"),
        ("*sh*", "too many processes"),
        ("a*", "too many processes"),
        ("name:?", "too many processes"),
        ("systemd*", "would also match systemd"),
        ("python*", "would also match python"),
        ("*zerocontact*", "would also match zerocontact"),
        ("cmdline:*zerocontact*", "would also match"),
        ("init", "protected process (init or service manager)"),
        ("gnome-shell", "protected process (desktop session)"),
        ("kwin_x11", "protected process (desktop session)"),
        ("plasmashell", "protected process (desktop session)"),
        ("Xorg", "protected process (desktop session)"),
        ("Xwayland", "protected process (desktop session)"),
        ("sshd", "protected process (login or privilege)"),
        ("login", "protected process (login or privilege)"),
        ("sudo", "protected process (login or privilege)"),
        ("name:bash", "would also match bash"),
        ("exe:*/bin/sh", "would also match sh"),
        ("/usr/bin/*", "would also match"),
        ("*.exe", "would also match"),
        ("explorer.exe", "protected process (desktop session)"),
        ("whatsap", "unknown app preset 'whatsap'; did you mean 'whatsapp'?"),
        ("obsidian", "write 'name:obsidian'"),
        ("name:", "write a glob after 'name:'"),
    ],
)
def test_check_entry_refuses(entry: str, says: str) -> None:
    problem = check_entry(entry)
    assert problem is not None and says in problem, problem


@pytest.mark.parametrize(
    "entry",
    ["whatsapp", "WhatsApp", "tor-browser", "telegram*", "name:obsidian", "exe:/opt/Foo/foo",
     "/app/bin/zapzap", "cmdline:*--no-proxy-server*", "signal-desktop *--use-tray-icon*"],
)  # fmt: skip
def test_check_entry_accepts(entry: str) -> None:
    assert check_entry(entry) is None


def test_rules_check_rejects_entries_with_their_key_path() -> None:
    text = """
[[person]]
name = "Sam"
accounts = { instagram = "sam.example" }
apps = ["whatsapp", "python*"]

[[app]]
name = "night"
match = ["telegram", "*", "gnome-shell", "spotfy"]
"""
    with pytest.raises(RulesError) as e:
        load(text, "r.toml")
    got = {p.key: p.message for p in e.value.problems}
    assert set(got) == {"person[1].apps[2]", "app[1].match[2]", "app[1].match[3]", "app[1].match[4]"}
    assert "'*' would match every process" in got["app[1].match[2]"]
    assert "did you mean 'spotify'?" in got["app[1].match[4]"]
    assert all(p.line is not None for p in e.value.problems)


def test_a_persons_apps_follow_the_person() -> None:
    rules = load(
        '[[person]]\nname = "Sam"\naccounts = { instagram = "sam.example" }\napps = ["whatsapp"]\n'
        '[[app]]\nname = "night"\nmatch = ["whatsapp"]\naction = "suspend"\nwindows = ["22:00-07:00"]\n'
    )
    compiled = app_rules(rules)
    assert [(r.name, r.key, r.action, r.person) for r in compiled] == [
        ("night", "app:night", "suspend", None),
        ("Sam: apps", "person:Sam", "terminate", "Sam"),
    ]
    wa = proc("WhatsApp", "/Applications/WhatsApp.app/Contents/MacOS/WhatsApp")
    both = active_rules(compiled, frozenset({"night"}), frozenset({"Sam"}))
    v = judge(wa, both)
    assert (v.action, v.rule and v.rule.person, v.preset) == ("terminate", "Sam", "whatsapp")  # the stronger
    v = judge(wa, active_rules(compiled, frozenset({"night"}), frozenset()))
    assert (v.action, v.rule and v.rule.name) == ("suspend", "night")
    assert judge(wa, active_rules(compiled, frozenset(), frozenset())).action == "allow"


def test_compile_apps_is_the_one_compile_step_the_watcher_receives() -> None:
    text = (
        '[[person]]\nname = "Sam"\naccounts = { instagram = "sam.example" }\napps = ["whatsapp"]\n'
        '[[app]]\nname = "night"\nmatch = ["whatsapp"]\naction = "suspend"\n'
    )
    apps = compile_apps(load(text))
    assert apps.rules == app_rules(load(text)) and apps.bypass_detection
    # equal rules compile equal (the watcher then skips a sweep); an app edit does not
    assert compile_apps(load(text)) == apps
    assert compile_apps(load(text.replace('"suspend"', '"terminate"'))) != apps
    assert apps.active(frozenset({"night"}), frozenset()) == active_rules(
        apps.rules, frozenset({"night"}), frozenset()
    )
    ctx = apps.bypass_context(frozenset({"Sam"}), ["instagram.com"], 8341, "http://127.0.0.1:8342/proxy.pac")
    assert ctx == BypassContext(("instagram.com",), 8341, "http://127.0.0.1:8342/proxy.pac")
    assert apps.bypass_context(frozenset(), ["instagram.com"], 8341, "") is None  # nobody is blocked
    off = compile_apps(load(text + "[settings]\nbypass_detection = false\n"))
    assert off.bypass_context(frozenset({"Sam"}), ["instagram.com"], 8341, "") is None


# --- safety -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("p", "protected"),
    [
        (ProcInfo(1, "systemd", "/usr/lib/systemd/systemd"), True),
        (ProcInfo(1, "whatsapp", "/tmp/whatsapp"), True),  # PID 1, whatever its name
        (ProcInfo(77, "kworker/0:1", ppid=2), True),
        (ProcInfo(77, "bash", "/usr/bin/bash", ("-bash",)), True),
        (ProcInfo(77, "gnome-shell", "/usr/bin/gnome-shell"), True),
        (ProcInfo(77, "python3.13", "/usr/bin/python3.13", ("python3", "-m", "pytest")), True),
        (ProcInfo(77, "Xwayland", "/usr/bin/Xwayland"), True),
        (
            ProcInfo(
                77, "zerocontact", "/usr/bin/python3", ("/usr/bin/python3", "/usr/bin/zerocontact", "run")
            ),
            True,
        ),
        (ProcInfo(77, "explorer.exe", r"C:\Windows\explorer.exe"), True),
        (ProcInfo(77, "WhatsApp", "/Applications/WhatsApp.app/Contents/MacOS/WhatsApp"), False),
        (ProcInfo(77, "vim", "/usr/bin/vim", ("vim", "/home/sam/.config/zerocontact/rules.toml")), False),
    ],
)
def test_protected_reason(p: ProcInfo, protected: bool) -> None:
    assert (protected_reason(p) is not None) is protected


# --- bypass -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--no-proxy-server"], "--no-proxy-server"),
        (["-no-proxy-server"], "--no-proxy-server"),
        (["--proxy-server=direct://"], "not zerocontact's proxy"),
        (["--proxy-server=socks5://127.0.0.1:9050"], "not zerocontact's proxy"),
        (["--proxy-server=127.0.0.1:8341"], None),
        (["--proxy-server=http://localhost:8341"], None),
        (["--proxy-server=http=127.0.0.1:8341;https=127.0.0.1:8341"], None),
        (["--proxy-server=http=127.0.0.1:8341;https=10.0.0.1:3128"], "not zerocontact's proxy"),
        (
            ["--proxy-server=127.0.0.1:8341", "--proxy-bypass-list=*.instagram.com;<local>"],
            "instagram.com direct",
        ),
        (["--proxy-server=127.0.0.1:8341", "--proxy-bypass-list=<local>;10.0.0.0/8;example.org"], None),
        (["--proxy-bypass-list=*"], None),  # ignored by Chromium without --proxy-server
        (["--proxy-pac-url=http://127.0.0.1:8342/proxy.pac"], None),
        (["--proxy-pac-url=http://localhost:8342/proxy.pac"], None),
        (["--proxy-pac-url=http://10.0.0.1/other.pac"], "not zerocontact's PAC file"),
        (["--proxy-auto-detect"], "ignores zerocontact's PAC file"),
        (["--no-proxy-server", "--proxy-server=127.0.0.1:8341"], "--no-proxy-server"),
        (["https://www.instagram.com/"], None),
    ],
)
def test_chromium_bypass_flags(args: list[str], says: str | None) -> None:
    got = chromium_bypass(["/usr/lib/chromium/chromium", *args], CTX)
    assert (got is None) if says is None else (got is not None and says in got), got


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("*.instagram.com", "instagram.com"),
        (".instagram.com", "instagram.com"),
        ("instagram.com", "instagram.com"),
        ("www.instagram.com", "instagram.com"),
        ("https://scontent.cdninstagram.com:443", "cdninstagram.com"),
        ("*instagram*", "instagram.com"),
        ("*", "instagram.com"),
        ("notinstagram.com", None),
        ("<local>;<-loopback>;127.0.0.1;[::1];192.168.0.0/16", None),
    ],
)
def test_bypass_list_covers(value: str, host: str | None) -> None:
    assert bypass_list_covers(value, CTX.target_hosts) == host


def test_bypass_of_browsers_and_tor() -> None:
    brave = ProcInfo(
        9, "brave", "/opt/brave.com/brave/brave", ("/opt/brave.com/brave/brave", "--no-proxy-server")
    )
    assert bypass_of(brave, CTX) == "Brave started with --no-proxy-server"
    ff = ProcInfo(9, "firefox", "/usr/lib/firefox/firefox", ("/usr/lib/firefox/firefox", "--no-proxy-server"))
    assert bypass_of(ff, CTX) is None  # Firefox has no proxy switches: only its connections are judged
    tor = ProcInfo(9, "firefox.real", "/home/sam/tor-browser/Browser/firefox.real", ("./firefox.real",))
    assert bypass_of(tor, CTX) == "Tor Browser routes around zerocontact's proxy"
    fake = ProcInfo(
        9, "chromium", "/usr/bin/python3", ("/usr/bin/python3", "/tmp/x/chromium", "--no-proxy-server")
    )
    assert bypass_of(fake, CTX) is not None  # the name is enough
    v = judge(fake, (), CTX)
    assert (v.action, v.stops) == ("bypass", False)
    assert judge(fake, (), None).action == "allow"  # detection off (or nobody blocked)


# --- explain ------------------------------------------------------------------------------------------
RULES = """
[settings]
timezone = "UTC"
[[person]]
name = "Sam"
accounts = { instagram = "sam.example" }
windows = ["20:00-23:00"]
[[app]]
name = "WhatsApp at night"
match = ["whatsapp"]
windows = ["22:00-07:00"]
action = "suspend"
"""
NIGHT = dt.datetime(2027, 1, 4, 22, 30, tzinfo=dt.UTC)
NOON = dt.datetime(2027, 1, 4, 12, 0, tzinfo=dt.UTC)


def test_explain_process_follows_the_schedule() -> None:
    rules = load(RULES)
    at_night = explain_process(rules, "WhatsApp", NIGHT)
    assert at_night["verdict"] == "suspend" and at_night["rule"] == "WhatsApp at night" and at_night["active"]
    assert at_night["text"].startswith("PAUSE  WhatsApp")
    at_noon = explain_process(rules, "WhatsApp", NOON)
    assert at_noon["verdict"] == "allow" and not at_noon["active"]
    assert "matches" in at_noon["reason"] and "not in force now" in at_noon["reason"]
    json.dumps(at_noon)  # the --json output is plain data


def test_explain_process_bypass_and_protected() -> None:
    rules = load(RULES)
    got = explain_process(rules, "chromium --proxy-server=direct://", NIGHT, proxy_port=8341)
    assert got["verdict"] == "bypass" and "logged as a bypass (not stopped)" in got["reason"]
    assert (
        explain_process(rules, "chromium --proxy-server=direct://", NOON, proxy_port=8341)["verdict"]
        == "allow"
    )
    pid1 = ProcInfo(1, "whatsapp", "/usr/bin/whatsapp", ("whatsapp",))
    got = explain_process(rules, pid1, NIGHT)
    assert got["verdict"] == "protected" and "PID 1" in got["reason"] and got["pid"] == 1


def test_describe_reads_names_paths_and_command_lines() -> None:
    assert describe("WhatsApp") == ProcInfo(0, "WhatsApp", "", ("WhatsApp",))
    d = describe("/opt/Signal/signal-desktop --no-sandbox")
    assert (d.name, d.exe, d.cmdline) == ("signal-desktop", "/opt/Signal/signal-desktop", d.cmdline)
    assert d.cmdline[1] == "--no-sandbox"
