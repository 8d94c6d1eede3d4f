"""While zerocontact is installed, ``run`` runs only on the installation's state directory and rules.

The installation is made by the installer itself (``install()`` with every step ``install --user``
would take, into the test's own HOME, with ``root=/``); only the ``systemctl`` calls are skipped,
since no systemd runs here. Then the real ``zerocontact run`` is started as a subprocess: the
installed unit's own ``ExecStart`` line runs, a second daemon on another state directory or rules
file is refused before it touches anything, the demo keeps to its own state directory and ports,
and after ``uninstall`` nothing is refused any more.
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from zctest.installer import RULES, free_port, said, tree, zc
from zctest.support import need_tool, wait_for

from zerocontact.daemon import installation
from zerocontact.daemon.installation import Installation, Refused
from zerocontact.daemon.paths import MANIFEST, SYSTEM_STATE
from zerocontact.installer.context import Context, SubprocessRunner
from zerocontact.installer.plan import build_steps, install, make_context, uninstall
from zerocontact.rules import Matcher, load

OTHER_RULES = '[[person]]\nname = "Kim"\naccounts = { x = "kim" }\n'


Install = Callable[..., Context]


@pytest.fixture
def install_user(monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> Install:
    """Make a user installation in the test's HOME with the installer's own steps (ports: keywords)."""
    need_tool("certutil")
    monkeypatch.setenv("GSETTINGS_BACKEND", "keyfile")  # GLib's file backend, in the test's HOME

    def make(**ports: int) -> Context:
        ctx = make_context(
            "user",
            Path("/"),
            hosts=Matcher(load(RULES, "test", default_timezone="UTC")).target_hosts(),
            run_live_commands=False,  # no systemd here: systemctl is listed in the plan but not run
            **ports,
        )
        assert Path(ctx.state_dir).is_relative_to(isolated_home)  # the XDG default, in the test's HOME
        _, say = said()
        install(ctx, build_steps(ctx, rules=(RULES.encode(), "test")), SubprocessRunner(), say)
        assert ctx.manifest == Path(ctx.state_dir) / MANIFEST and ctx.manifest.exists()
        return ctx

    return make


@pytest.fixture
def installed(install_user: Install) -> Context:
    """An installation on ports of its own (its service's command line is started in these tests)."""
    return install_user(proxy_port=free_port(), pac_port=free_port())


def refused(*args: str) -> str:
    """Run ``zerocontact run ARGS``, which must be refused: its one-line message."""
    r = zc("run", *args)
    assert r.returncode == 1, r.stdout + r.stderr
    message = r.stderr.strip()
    assert message.startswith("zerocontact: ") and "\n" not in message, message
    return message


def started(argv: list[str], state: Path) -> subprocess.Popen[str]:
    """Start ``argv`` (a daemon on ``state``) and wait until it has published its runtime record."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the daemon exited {proc.returncode}: {proc.stderr and proc.stderr.read()}")
        try:
            return bool(json.loads((state / "daemon.json").read_text()).get("pid") == proc.pid)
        except (OSError, ValueError):
            return False

    wait_for(ready, 30, "the daemon to start")
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0


def test_a_second_daemon_on_another_state_dir_or_rules_file_is_refused_until_uninstall(
    tmp_path: Path, installed: Context
) -> None:
    state, rules = Path(installed.state_dir), Path(installed.rules)
    other_state, other_rules = tmp_path / "fresh-state", tmp_path / "empty.toml"
    other_rules.write_text(OTHER_RULES)
    before = tree(state)

    message = refused("--state-dir", str(other_state), "--rules", str(other_rules))
    assert f"state directory {state} and rules {rules}" in message
    assert f"refusing a second daemon on state directory {other_state}" in message
    assert "systemctl --user start zerocontact" in message
    assert f"on state directory {other_state}" in refused("--state-dir", str(other_state))  # its rules
    message = refused("--rules", str(other_rules))  # the installation's state, other rules
    assert f"refusing to run that state directory on rules {other_rules}" in message
    assert not other_state.exists()  # refused before anything was written
    assert tree(state) == before

    _, say = said()
    uninstall(installed.manifest, SubprocessRunner(), say)  # keeps the record, marked uninstalled
    assert installed.manifest.exists()
    proc = started(
        [*installed.exe, "run", "--state-dir", str(other_state), "--rules", str(other_rules), "--port", "0"],
        other_state,
    )
    stop(proc)


def test_the_installed_units_own_command_line_runs(installed: Context) -> None:
    unit = Path(installed.home) / ".config/systemd/user/zerocontact.service"
    line = next(x for x in unit.read_text().splitlines() if x.startswith("ExecStart="))
    argv = shlex.split(line.removeprefix("ExecStart="))
    assert argv[1:6] == ["run", "--rules", str(installed.rules), "--state-dir", str(installed.state_dir)]
    state = Path(installed.state_dir)
    stop(started(argv, state))
    # the same daemon from the command line, by default paths (ports of its own: the test's may be taken)
    stop(started([*installed.exe, "run", "--port", "0", "--pac-port", "0"], state))


def test_the_demo_beside_an_installation_keeps_its_own_state_and_ports(install_user: Install) -> None:
    installed = install_user()  # the default ports, which the demo would take by default
    assert (installed.proxy_port, installed.pac_port) == (8341, 8342)
    state = Path(installed.state_dir)
    before = tree(state)
    assert "installation's state directory" in refused("--sample", "--state-dir", str(state))
    assert "--port 8341 is the installed service's port" in refused("--sample", "--port", "8341")
    assert "--pac-port 8342" in refused("--sample", "--port", "0", "--pac-port", "8342")
    demo = state.with_name(state.name + "-demo")  # a folder of its own (by default a throwaway one)
    proc = started([*installed.exe, "run", "--sample", "--state-dir", str(demo)], demo)
    try:
        info = json.loads((demo / "daemon.json").read_text())
        proxy, pac = int(info["proxy"].rsplit(":", 1)[1]), int(info["pac"].split(":")[2].split("/")[0])
        assert not {proxy, pac} & {8341, 8342}  # moved to free ports
    finally:
        stop(proc)
    assert tree(state) == before  # not one file of the installation's state was touched


# -- the record, read directly --------------------------------------------------------------------------
def record(state: Path, data: object) -> Path:
    state.mkdir(parents=True, exist_ok=True)
    (state / MANIFEST).write_text(json.dumps(data) if not isinstance(data, str) else data)
    return state / MANIFEST


def test_an_unreadable_record_leaves_only_its_own_state_directory(tmp_path: Path) -> None:
    state = tmp_path / "state"
    broken = installation.read(record(state, "{not json"))
    assert broken is not None and broken.problem
    installation.check_run([broken], state, tmp_path / "any-rules.toml")  # the service itself still runs
    with pytest.raises(Refused, match="cannot be read"):
        installation.check_run([broken], tmp_path / "other", tmp_path / "any-rules.toml")
    # the demo cannot know its ports: default ones move to free ports, explicit ones are its own affair
    assert installation.check_demo([broken], tmp_path / "demo", [("--port", 8341, False)]) == {"--port"}
    assert installation.check_demo([broken], tmp_path / "demo", [("--port", 8341, True)]) == set()


def test_the_same_broken_record_refuses_the_real_command(tmp_path: Path, isolated_home: Path) -> None:
    record(isolated_home / ".local/state/zerocontact", {"installed": True, "state_dir": 7})
    message = refused("--state-dir", str(tmp_path / "other"), "--rules", str(tmp_path / "r.toml"))
    assert "cannot be read" in message and str(isolated_home / ".local/state/zerocontact") in message


def test_only_a_live_installation_counts(tmp_path: Path) -> None:
    base = {"installed": True, "root": "/", "mode": "user", "os": "linux", "proxy_port": 1, "pac_port": 2}
    base |= {"state_dir": str(tmp_path / "s"), "config_dir": str(tmp_path / "c")}
    live = installation.read(record(tmp_path / "a", base))
    assert live == Installation(
        tmp_path / "a" / MANIFEST, "user", "linux", tmp_path / "s", tmp_path / "c" / "rules.toml", (1, 2)
    )
    assert installation.read(record(tmp_path / "b", {**base, "installed": False})) is None  # uninstalled
    assert installation.read(record(tmp_path / "c", {**base, "root": str(tmp_path)})) is None  # --root
    assert installation.read(tmp_path / "d" / MANIFEST) is None
    assert installation.find([tmp_path / "a" / MANIFEST, tmp_path / "d" / MANIFEST]) == [live]


def test_where_records_are_looked_for(tmp_path: Path) -> None:
    default, named = tmp_path / "default", tmp_path / "named"
    assert installation.candidates(default, None, 1000) == [default / MANIFEST]
    assert installation.candidates(default, default, 1000) == [default / MANIFEST]
    assert installation.candidates(default, named, 0) == [
        default / MANIFEST,
        named / MANIFEST,
        SYSTEM_STATE / MANIFEST,  # root's daemon could take the system service's port
    ]
