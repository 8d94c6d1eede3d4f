"""Windows: a Task Scheduler task that starts the daemon, and registry values set with ``reg.exe``.

None of this can run on the Linux machines the tests run on: the task XML is checked for being
well-formed with the expected fields, and the registry ops are run against a fake ``reg.exe``.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import PurePath, PureWindowsPath
from xml.etree import ElementTree as ET

from .context import LABEL, Context
from .ops import Command, File, Op, Step, Tx

TASK_NS = "http://schemas.microsoft.com/windows/2004/02/mit/task"
TASK_NAME = LABEL


def task_xml(ctx: Context) -> bytes:
    """The task definition (UTF-16 with a BOM, as ``schtasks /Create /XML`` expects).

    User mode starts at logon as that user, without elevation; system mode starts at boot as
    LocalSystem. Either way: restart on failure (every minute, up to 999 times), never stopped for
    running long or on battery, one instance."""
    from .systemd import daemon_argv

    ET.register_namespace("", TASK_NS)
    q = f"{{{TASK_NS}}}"

    def sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
        e = ET.SubElement(parent, q + tag)
        if text is not None:
            e.text = text
        return e

    root = ET.Element(q + "Task", {"version": "1.4"})
    info = sub(root, "RegistrationInfo")
    sub(info, "Description", "zerocontact: blocks looking at one person, gently")
    sub(info, "URI", f"\\{TASK_NAME}")
    triggers = sub(root, "Triggers")
    principals = sub(root, "Principals")
    principal = ET.SubElement(principals, q + "Principal", {"id": "Author"})
    if ctx.mode == "system":
        sub(sub(triggers, "BootTrigger"), "Enabled", "true")
        sub(principal, "UserId", "S-1-5-18")  # LocalSystem
        sub(principal, "RunLevel", "HighestAvailable")
    else:
        logon = sub(triggers, "LogonTrigger")
        sub(logon, "Enabled", "true")
        sub(principal, "LogonType", "InteractiveToken")
        sub(principal, "RunLevel", "LeastPrivilege")
    settings = sub(root, "Settings")
    for tag, text in (
        ("MultipleInstancesPolicy", "IgnoreNew"),
        ("DisallowStartIfOnBatteries", "false"),
        ("StopIfGoingOnBatteries", "false"),
        ("AllowHardTerminate", "true"),
        ("StartWhenAvailable", "true"),
        ("RunOnlyIfNetworkAvailable", "false"),
        ("AllowStartOnDemand", "true"),
        ("Enabled", "true"),
        ("Hidden", "true"),
        ("ExecutionTimeLimit", "PT0S"),  # never stopped for running long
        ("Priority", "7"),
    ):
        sub(settings, tag, text)
    idle = sub(settings, "IdleSettings")
    sub(idle, "StopOnIdleEnd", "false")
    sub(idle, "RestartOnIdle", "false")
    restart = sub(settings, "RestartOnFailure")
    sub(restart, "Interval", "PT1M")
    sub(restart, "Count", "999")
    actions = ET.SubElement(root, q + "Actions", {"Context": "Author"})
    exe = sub(actions, "Exec")
    argv = daemon_argv(ctx)
    sub(exe, "Command", argv[0])
    sub(exe, "Arguments", subprocess.list2cmdline(argv[1:]))
    body = ET.tostring(root, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-16"?>\n' + body + "\n").encode("utf-16")


def task_file(ctx: Context) -> PurePath:
    """Where the task definition is kept (the state folder), for schtasks and for uninstall."""
    return ctx.state_dir / f"{TASK_NAME}-task.xml"


class WindowsTask(Step):
    """The Task Scheduler task that starts the daemon."""

    name = "service"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.title = (
            "Task Scheduler task at boot, as LocalSystem (restarts on failure)"
            if ctx.mode == "system"
            else "Task Scheduler task at your logon (restarts on failure)"
        )

    def ops(self) -> list[Op]:
        f = task_file(self.ctx)
        real = str(PureWindowsPath(f)) if isinstance(f, PureWindowsPath) else str(f)
        return [
            File(f, task_xml(self.ctx), 0o644, "the task definition"),
            Command(
                ["schtasks", "/Create", "/TN", TASK_NAME, "/XML", real, "/F"],
                revert=["schtasks", "/Delete", "/TN", TASK_NAME, "/F"],
                key="cmd:service:task",
                live_only=True,
            ),
            Command(["schtasks", "/Run", "/TN", TASK_NAME], why="start it now", live_only=True),
        ]

    def notes(self) -> list[str]:
        return ["Windows has no file-change trigger: after adding a platform to the rules, run install again"]


_REG_LINE = re.compile(r"^\s+(?P<name>.+?)\s{4}(?P<type>REG_[A-Z_]+)\s{4}(?P<data>.*)$")


def reg_query_value(output: str, name: str) -> tuple[str, str] | None:
    """(type, data) of ``name`` in ``reg query KEY /v NAME`` output, or None."""
    for line in output.splitlines():
        m = _REG_LINE.match(line)
        if m and m["name"].lower() == name.lower():
            return m["type"], m["data"]
    return None


@dataclass
class RegValue(Op):
    """Set one registry value; uninstall puts back what was there (or deletes it)."""

    key: str
    value: str
    type: str
    data: str
    why: str = ""
    live_only: bool = True

    def describe(self) -> str:
        return f'reg add "{self.key}" /v {self.value} /t {self.type} /d {self.data}' + (
            f": {self.why}" if self.why else ""
        )

    def apply(self, tx: Tx) -> None:
        if not tx.ctx.live_commands:
            tx.say(f"skipped (staging root): reg add {self.key} /v {self.value}")
            return
        rkey = f"reg:{self.key}:{self.value}"
        q = tx.run(["reg", "query", self.key, "/v", self.value], check=False)
        previous = reg_query_value(q.stdout, self.value) if q.returncode == 0 else None
        if previous == (self.type, self.data):
            tx.say(f"unchanged: {self.key}\\{self.value}")
            return
        if previous is None:
            revert = ["reg", "delete", self.key, "/v", self.value, "/f"]
        else:
            revert = ["reg", "add", self.key, "/v", self.value, "/t", previous[0], "/d", previous[1], "/f"]
        if tx.manifest.find(rkey) is not None:
            revert = list(tx.manifest.find(rkey)["revert"])  # type: ignore[index]
        tx.command(
            ["reg", "add", self.key, "/v", self.value, "/t", self.type, "/d", self.data, "/f"], revert, rkey
        )
        tx.say(f"set {self.key}\\{self.value}")
