"""Desktop notifications through the real tools' command lines: a stand-in notify-send or gdbus on
PATH records each call (a desktop's notification server cannot run here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from zerocontact.daemon import notify
from zerocontact.daemon.notify import Notifier

SESSION = "unix:path=/run/user/1000/bus"


def recorder(folder: Path, tool: str) -> Path:
    """``tool`` on a PATH of its own, writing each call's arguments (one a line) to a log."""
    folder.mkdir(exist_ok=True)
    log = folder / f"{tool}.log"
    script = folder / tool
    script.write_text(
        f'#!/bin/sh\nfor a in "$@"; do printf \'%s\\n\' "$a" >> {log}; done\necho --- >> {log}\n'
    )
    script.chmod(0o755)
    return log


def calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [c.strip("\n").split("\n") for c in log.read_text().split("---\n") if c.strip()]


def sent(env: dict[str, str], *messages: tuple[str, str], enabled: bool = True, system: bool = False) -> None:
    n = Notifier(lambda: enabled, system=system, env=env)
    n.start()
    for title, body in messages:
        n.send(title, body)
    n.stop()  # waits for the worker: every queued call has run


def test_notify_send_is_used_where_it_is_installed(tmp_path: Path) -> None:
    log = recorder(tmp_path / "bin", "notify-send")
    recorder(tmp_path / "bin", "gdbus")
    env = {"PATH": str(tmp_path / "bin"), "DBUS_SESSION_BUS_ADDRESS": SESSION}
    sent(env, notify.block_started("Sam"), notify.app_stopped("whatsapp", "WhatsApp at night", "terminate"))
    (first, second) = calls(log)
    assert first == [
        "--app-name=zerocontact",
        "--expire-time=8000",
        "--",
        "A block has started",
        "You chose not to look at Sam now. zerocontact is holding that for you.",
    ]
    assert second[-2:] == [
        "whatsapp was closed",
        "Your rule 'WhatsApp at night' asked for this. Noticing the urge is the work.",
    ]
    assert calls(tmp_path / "bin" / "gdbus.log") == []


def test_gdbus_calls_the_freedesktop_interface_when_there_is_no_notify_send(tmp_path: Path) -> None:
    log = recorder(tmp_path / "bin", "gdbus")
    env = {"PATH": str(tmp_path / "bin"), "DBUS_SESSION_BUS_ADDRESS": SESSION}
    sent(env, ("A block has ended", 'The block on "Sam" has ended'))
    ((*call,),) = calls(log)
    assert call[:6] == [
        "call",
        "--session",
        "--dest=org.freedesktop.Notifications",
        "--object-path=/org/freedesktop/Notifications",
        "--method=org.freedesktop.Notifications.Notify",
        '"zerocontact"',
    ]
    # GVariant text: strings quoted and escaped, the empty actions list and hints dict typed
    assert call[6:] == [
        "uint32 0",
        '""',
        '"A block has ended"',
        '"The block on \\"Sam\\" has ended"',
        "@as []",
        "@a{sv} {}",
        "int32 8000",
    ]


def test_the_same_message_within_a_minute_is_shown_once(tmp_path: Path) -> None:
    log = recorder(tmp_path / "bin", "notify-send")
    env = {"PATH": str(tmp_path / "bin"), "DBUS_SESSION_BUS_ADDRESS": SESSION}
    sent(
        env,
        notify.app_stopped("whatsapp", "night", "terminate"),
        notify.app_stopped("whatsapp", "night", "terminate"),
    )
    assert len(calls(log)) == 1


@pytest.mark.parametrize(
    ("env", "enabled", "system", "why"),
    [
        ({"DBUS_SESSION_BUS_ADDRESS": SESSION}, False, False, None),  # [settings] notifications = false
        ({"DBUS_SESSION_BUS_ADDRESS": SESSION}, True, True, "outside any desktop session"),
        ({}, True, False, "no desktop session"),
    ],
)
def test_no_notifications_when_off_in_a_system_service_or_without_a_session(
    tmp_path: Path, env: dict[str, str], enabled: bool, system: bool, why: str | None
) -> None:
    log = recorder(tmp_path / "bin", "notify-send")
    full = {"PATH": str(tmp_path / "bin"), **env}
    sent(full, notify.block_started("Sam"), enabled=enabled, system=system)
    assert calls(log) == []
    n = Notifier(lambda: enabled, system=system, env=full)
    assert (n.unavailable is None) if why is None else (why in (n.unavailable or ""))


def test_without_either_tool_it_says_why(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    n = Notifier(lambda: True, env={"PATH": str(tmp_path / "empty"), "DBUS_SESSION_BUS_ADDRESS": SESSION})
    assert n.tool is None and "neither notify-send" in (n.unavailable or "")
    n.start()
    n.send("t", "b")  # nothing to run, nothing raised
    n.stop()


def test_gdbus_puts_a_well_formed_notify_call_on_a_real_session_bus(tmp_path: Path) -> None:
    """A private session bus (dbus-daemon) watched by dbus-monitor: the call gdbus sends carries
    the freedesktop Notify arguments as typed values. (No notification server runs here, so the
    bus answers that nobody owns the name; the notifier logs that and carries on.)"""
    import os
    import subprocess

    from zctest.support import need_tool, wait_for

    daemon_tool, monitor_tool, gdbus = need_tool("dbus-daemon"), need_tool("dbus-monitor"), need_tool("gdbus")
    address = f"unix:path={tmp_path / 'bus'}"
    bus = subprocess.Popen([daemon_tool, "--session", "--nofork", f"--address={address}"])
    out = tmp_path / "monitor.txt"
    monitor = None
    try:
        wait_for(lambda: (tmp_path / "bus").exists(), 10, "the session bus")
        monitor = subprocess.Popen(
            [monitor_tool, "--address", address],
            stdout=out.open("w"),
            stderr=subprocess.STDOUT,
        )
        only = tmp_path / "only-gdbus"
        only.mkdir()
        os.symlink(gdbus, only / "gdbus")
        env = {"PATH": str(only), "DBUS_SESSION_BUS_ADDRESS": address}
        # the monitor is attached once it has been told it is one (its first line)
        wait_for(lambda: out.exists() and "NameAcquired" in out.read_text(), 10, "dbus-monitor to attach")
        sent(env, notify.block_lifted("Sam"))  # returns once gdbus has finished
    finally:
        for p in (monitor, bus):  # dbus-monitor writes what it saw as it stops
            if p is not None:
                p.terminate()
                p.wait(10)
    text = out.read_text()
    assert "member=Notify" in text, text
    call = text[text.index("member=Notify") :].split("error time=", 1)[0]
    for typed in (
        'string "zerocontact"',
        "uint32 0",
        'string "A block has ended"',
        'string "The block on Sam has ended, as you planned it."',
        "int32 8000",
    ):
        assert typed in call, call
