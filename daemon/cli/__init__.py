"""The ``zerocontact`` command: a group whose commands are found by name in one table.

Each family lives in its own module (``rules`` and ``explain``; the service: ``run``, ``ca``,
``status``, ``reload``; review: ``log`` … ``forget``; ``devices``; and install/uninstall/doctor,
which belong to ``zerocontact.installer.cli``). A command's module is imported only when that command runs, so
``rules check`` never loads mitmproxy, and the daemon never imports the installer: the table below
names the installer's commands as strings, the one place the two layers meet.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

COMMANDS: dict[str, str] = {
    "rules": "zerocontact.daemon.cli.rules:rules",
    "explain": "zerocontact.daemon.cli.rules:explain",
    "run": "zerocontact.daemon.cli.service:run",
    "ca": "zerocontact.daemon.cli.service:ca",
    "status": "zerocontact.daemon.cli.service:status",
    "reload": "zerocontact.daemon.cli.service:reload",
    "log": "zerocontact.daemon.cli.review:log_cmd",
    "stats": "zerocontact.daemon.cli.review:stats_cmd",
    "report": "zerocontact.daemon.cli.review:report_cmd",
    "export": "zerocontact.daemon.cli.review:export_cmd",
    "forget": "zerocontact.daemon.cli.review:forget_cmd",
    "devices": "zerocontact.daemon.cli.devices:devices",
    "install": "zerocontact.installer.cli:install_cmd",
    "uninstall": "zerocontact.installer.cli:uninstall_cmd",
    "doctor": "zerocontact.installer.cli:doctor_cmd",
}


def load_command(name: str) -> click.Command:
    """The command object for ``name`` (importing its module now)."""
    module, _, attr = COMMANDS[name].partition(":")
    cmd = getattr(importlib.import_module(module), attr)
    if not isinstance(cmd, click.Command):  # a table entry that names the wrong thing is a bug
        raise TypeError(f"{COMMANDS[name]} is not a click command")
    return cmd


class CommandTable(click.Group):
    """A click group over ``COMMANDS``, loading each command's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return load_command(cmd_name) if cmd_name in COMMANDS else None


@click.group(cls=CommandTable, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="zerocontact")
def main(**_: Any) -> None:
    """zerocontact: stop looking at one person, gently, and see the urge fade."""
