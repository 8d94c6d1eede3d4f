"""macOS: a LaunchDaemon (system) or LaunchAgent (user), written with ``plistlib``.

``KeepAlive`` restarts the daemon however it stops; a second job watches the rules file
(``WatchPaths``) and runs ``zerocontact install --refresh`` so the CA and PAC follow the targets.
This cannot run on Linux: tests check the plist content (a ``plistlib`` round trip) and the plan.
"""

from __future__ import annotations

import plistlib
from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath
from typing import Any

from .context import REVERSE_LABEL, Context
from .ops import File, Op, Step, Tx
from .systemd import daemon_argv

REFRESH_LABEL = "net.zerocontact.refresh"


def daemon_plist(ctx: Context) -> dict[str, Any]:
    """The daemon's job: started at load, kept alive, logging to the state directory."""
    log = str(ctx.state_dir / "daemon.log")
    return {
        "Label": REVERSE_LABEL,
        "ProgramArguments": daemon_argv(ctx),
        "RunAtLoad": True,
        "KeepAlive": True,  # there is no off switch: it comes back however it stopped
        "ThrottleInterval": 5,
        # a LaunchDaemon acts for every user (the watcher stops their apps): daemon/paths.system_mode
        "EnvironmentVariables": {"PYTHONUNBUFFERED": "1"}
        | ({"ZEROCONTACT_MODE": "system"} if ctx.mode == "system" else {}),
        "StandardOutPath": log,
        "StandardErrorPath": log,
        "Umask": 0o077,
    }


def refresh_plist(ctx: Context) -> dict[str, Any]:
    """A job that runs ``install --refresh`` whenever the rules file changes."""
    return {
        "Label": REFRESH_LABEL,
        "ProgramArguments": [*ctx.exe, "install", "--refresh", "--state-dir", str(ctx.state_dir)],
        "WatchPaths": [str(ctx.rules)],
        "RunAtLoad": False,
    }


def plist_dir(ctx: Context) -> PurePath:
    """LaunchDaemons for the machine, LaunchAgents for one user."""
    if ctx.mode == "system":
        return PurePosixPath("/Library/LaunchDaemons")
    return ctx.home / "Library" / "LaunchAgents"


def domain(ctx: Context) -> str:
    """The launchctl domain: ``system``, or the user's GUI session."""
    return "system" if ctx.mode == "system" else f"gui/{ctx.uid}"


@dataclass
class LaunchdJob(Op):
    """Load a job (bootout first when its plist changed); uninstall boots it out again."""

    label: str
    plist: PurePath
    domain: str
    live_only: bool = True

    def describe(self) -> str:
        return (
            f"run launchctl bootstrap {self.domain} {self.plist}; "
            f"on uninstall: launchctl bootout {self.domain}/{self.label}"
        )

    def apply(self, tx: Tx) -> None:
        if not tx.ctx.live_commands:
            tx.say(f"skipped (staging root): launchctl bootstrap {self.domain} {self.plist}")
            return
        key = f"cmd:service:launchd:{self.label}"
        target = f"{self.domain}/{self.label}"
        loaded = tx.run(["launchctl", "print", target], check=False).returncode == 0
        if loaded and not tx.step_changed and tx.manifest.find(key):
            tx.say(f"unchanged: {self.label} is loaded")
            return
        if loaded:
            tx.run(["launchctl", "bootout", target], check=False)
        tx.command(
            ["launchctl", "bootstrap", self.domain, str(tx.ctx.at(self.plist))],
            ["launchctl", "bootout", target],
            key,
        )
        tx.say(f"loaded {self.label}")


class LaunchdService(Step):
    """The launchd jobs: the daemon and the rules watcher."""

    name = "service"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.title = (
            "launchd LaunchDaemon (starts at boot, kept alive)"
            if ctx.mode == "system"
            else "launchd LaunchAgent (starts at your login, kept alive)"
        )

    def ops(self) -> list[Op]:
        d = plist_dir(self.ctx)
        main = d / f"{REVERSE_LABEL}.plist"
        refresh = d / f"{REFRESH_LABEL}.plist"
        return [
            File(main, plistlib.dumps(daemon_plist(self.ctx)), 0o644, "the zerocontact daemon"),
            File(
                refresh,
                plistlib.dumps(refresh_plist(self.ctx)),
                0o644,
                "runs install --refresh on rules changes",
            ),
            LaunchdJob(REVERSE_LABEL, main, domain(self.ctx)),
            LaunchdJob(REFRESH_LABEL, refresh, domain(self.ctx)),
        ]
