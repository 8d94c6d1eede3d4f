"""The systemd units: verified by systemd itself, and their exposure kept at the README's figure."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
from zctest.installer import zc
from zctest.support import need_tool

from zerocontact.installer import systemd
from zerocontact.installer.context import InstallError
from zerocontact.installer.plan import installed_command, make_context

ROOT = Path(__file__).resolve().parents[2]
UNIT = "etc/systemd/system/zerocontact.service"


def documented_exposure() -> float:
    """The figure the README promises (``systemd-analyze security`` exposure of the system unit)."""
    m = re.search(r"exposure level of \*\*(\d+\.\d)\*\*", (ROOT / "README.md").read_text())
    assert m, "README's 'Installing it as a service' must state the measured exposure"
    return float(m.group(1))


def exposure(unit: Path) -> tuple[float, str]:
    tool = need_tool("systemd-analyze")
    r = subprocess.run([tool, "security", "--offline=true", str(unit)], capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d)", r.stdout)
    assert m, r.stdout + r.stderr
    return float(m.group(1)), r.stdout


def test_the_system_unit_verifies_and_stays_within_the_documented_exposure(
    staging: Path, rules_file: Path
) -> None:
    tool = need_tool("systemd-analyze")
    zc("install", "--system", "--rules", str(rules_file), "--root", str(staging), check=True)
    unit = staging / UNIT
    r = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "" and r.stdout.strip() == ""
    for other in ("zerocontact-refresh.path", "zerocontact-refresh.service"):
        r = subprocess.run(
            [tool, "verify", str(staging / "etc/systemd/system" / other)], capture_output=True, text=True
        )
        assert r.returncode == 0, r.stderr
    level, report = exposure(unit)
    (staging.parent / "security.txt").write_text(report)
    assert level <= documented_exposure() <= 2.0, report


def test_the_refresh_unit_is_hardened_and_may_write_only_what_install_writes(
    staging: Path, rules_file: Path
) -> None:
    tool = need_tool("systemd-analyze")
    zc("install", "--system", "--rules", str(rules_file), "--root", str(staging), check=True)
    unit = staging / "etc/systemd/system/zerocontact-refresh.service"
    r = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
    level, report = exposure(unit)
    assert level <= 4.0, report
    text = unit.read_text()
    m = re.search(r"scores this unit (\d\.\d)", text)
    assert m and float(m.group(1)) == level, "the unit's comment must give its measured exposure"
    writable = re.search(r"^ReadWritePaths=(.*)$", text, re.M)
    assert writable
    paths = {p.lstrip("-") for p in writable.group(1).split()}
    assert {"/var/lib/zerocontact", "/etc/zerocontact", "/etc/chromium/policies/managed"} <= paths
    assert "/" not in paths and "/etc" not in paths and "/home" not in paths
    assert "PrivateNetwork=yes" in text and "CapabilityBoundingSet=\n" in text


def test_the_user_unit_verifies(staging: Path, rules_file: Path, tmp_path: Path) -> None:
    tool = need_tool("systemd-analyze")
    zc("install", "--user", "--rules", str(rules_file), "--root", str(staging), check=True)
    home = Path(os.environ["HOME"])
    units = staging / home.relative_to("/") / ".config/systemd/user"
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    for name in ("zerocontact.service", "zerocontact-refresh.path", "zerocontact-refresh.service"):
        r = subprocess.run(
            [tool, "--user", "verify", str(units / name)],
            capture_output=True,
            text=True,
            env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
        )
        assert r.returncode == 0, r.stderr
    text = (units / "zerocontact.service").read_text()
    assert "Capabilit" not in text.replace("no capabilities", "")  # nothing granted in user mode
    assert "WantedBy=default.target" in text


def unit_text(mode: str = "system") -> str:
    c = make_context(mode, Path("/"), hosts=("instagram.com",))  # type: ignore[arg-type]
    return systemd.system_unit(c) if mode == "system" else systemd.user_unit(c)


@pytest.mark.parametrize("mode", ["system", "user"])
def test_the_unit_starts_this_installation_with_notify_and_watchdog(mode: str) -> None:
    text = unit_text(mode)
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    assert exec_start.split("=", 1)[1].split()[0] == installed_command()[0]
    # the console script of the interpreter running this (the venv's), from the package metadata
    assert installed_command() == (str(Path(sys.executable).with_name("zerocontact").absolute()),)
    for line in ("Type=notify", "WatchdogSec=30s", "Restart=always"):
        assert line in text.splitlines()
    env = dict(
        line.removeprefix("Environment=").split("=", 1)
        for line in text.splitlines()
        if line.startswith("Environment=")
    )
    # the service's own idea of its mode (the process watcher acts for every user only in system
    # mode) comes from its environment: as root, with exactly the unit's variables
    probe = "from zerocontact.daemon.paths import system_mode; print(system_mode())"
    got = subprocess.run(
        [sys.executable, "-c", probe], env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True
    )
    assert got.stdout.strip() == str(mode == "system" and os.geteuid() == 0), got.stderr
    if mode == "system":
        assert env["ZEROCONTACT_MODE"] == "system"
        assert (
            "--state-dir /var/lib/zerocontact" in exec_start
            and "--rules /etc/zerocontact/rules.toml" in exec_start
        )
        assert "CapabilityBoundingSet=CAP_KILL" in text and "AmbientCapabilities" not in text
        assert "IPAddressDeny" not in text.replace("no IPAddressDeny=", "")  # outbound HTTPS is needed
        assert "ProtectProc=default" in text and "ProcSubset" not in text.replace("No ProcSubset=", "")


@pytest.mark.parametrize("mode", ["system", "user"])
def test_every_hardening_setting_says_why(mode: str) -> None:
    lines = unit_text(mode).splitlines()
    start = next(i for i, line in enumerate(lines) if "--- hardening" in line)
    prev = ""
    for line in lines[start : lines.index("[Install]")]:
        if line and not line.startswith("#"):
            follows = prev.startswith("#") or line.startswith(
                ("SystemCallFilter=~", "StateDirectoryMode", "BindReadOnly")
            )
            assert follows, f"{line} has no comment saying why"
        prev = line


def test_exec_start_is_quoted_for_systemd(tmp_path: Path) -> None:
    tool = need_tool("systemd-analyze")
    odd = tmp_path / "with space" / "zero%contact$"
    odd.parent.mkdir()
    odd.symlink_to(installed_command()[0])
    line = systemd.exec_line([str(odd), "run", "--rules", "/etc/a b/$x%.toml"])
    assert line == f"'{odd}'".replace("%", "%%") + " run --rules '/etc/a b/$$x%%.toml'"
    unit = tmp_path / "quoted.service"
    unit.write_text(f"[Service]\nType=oneshot\nExecStart={line}\n")
    r = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with pytest.raises(InstallError, match="quotes or special characters"):
        systemd.exec_line(["/opt/it's/zerocontact", "run"])
    with pytest.raises(InstallError, match="absolute"):
        systemd.exec_line(["zerocontact", "run"])


def test_home_binds_only_what_lives_under_a_home() -> None:
    assert systemd.home_binds(
        ["/usr", "/root/.pyenv/versions/3.13.0", "/root/.pyenv/versions/3.13.0/lib", "/home/sam/venv/"]
    ) == [
        "/home/sam/venv",
        "/root/.pyenv/versions/3.13.0",
    ]
    c = make_context("system", Path("/"))
    c2 = type(c)(**{**c.__dict__, "service_paths": ("/opt/venv",)})
    assert "ProtectHome=yes" in systemd.system_unit(c2)
    c3 = type(c)(**{**c.__dict__, "service_paths": ("/home/sam/venv",)})
    text = systemd.system_unit(c3)
    assert "ProtectHome=tmpfs" in text and "BindReadOnlyPaths=/home/sam/venv" in text


def test_the_refresh_units_watch_the_rules_file() -> None:
    c = make_context("system", Path("/"))
    path = systemd.refresh_path_unit(c)
    assert "PathChanged=/etc/zerocontact/rules.toml" in path and "Unit=zerocontact-refresh.service" in path
    assert "install --refresh --state-dir /var/lib/zerocontact" in systemd.refresh_service_unit(c)
    assert systemd.unit_dir(c) == PurePosixPath("/etc/systemd/system")
