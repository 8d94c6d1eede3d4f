"""Desktop notifications: a block started or lifted, an app was stopped.

Linux desktops take freedesktop notifications on the session bus. ``notify-send`` (libnotify) is
used where it is installed, else ``gdbus`` (GLib, on every GNOME desktop) calls
``org.freedesktop.Notifications.Notify`` itself; ``dbus-send`` cannot, as it has no way to write
the call's ``a{sv}`` hints. Where neither exists, where there is no session bus (the system
service runs outside any session), and on macOS and Windows, there are none: the daemon says so
once in its log. ``[settings] notifications = false`` turns them off.

A notification never blocks the event loop: the tool runs on one worker thread, with a timeout.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping

log = logging.getLogger("zerocontact.notify")
APP_NAME = "zerocontact"
TIMEOUT = 5.0  # seconds a notification tool may take before it is given up on
EXPIRE_MS = 8000
REPEAT_SECONDS = 60.0  # the same message (an app started again and again) at most once a minute


def _gvariant_string(text: str) -> str:
    """``text`` as a GVariant text-format string, which is how gdbus reads its arguments."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def command(tool: str, path: str, title: str, body: str) -> list[str]:
    """The argv that shows one notification with ``tool`` (``notify-send`` or ``gdbus``) at ``path``."""
    if tool == "notify-send":
        return [path, f"--app-name={APP_NAME}", f"--expire-time={EXPIRE_MS}", "--", title, body]
    return [
        path,
        "call",
        "--session",
        "--dest=org.freedesktop.Notifications",
        "--object-path=/org/freedesktop/Notifications",
        "--method=org.freedesktop.Notifications.Notify",
        _gvariant_string(APP_NAME),
        "uint32 0",
        '""',
        _gvariant_string(title),
        _gvariant_string(body),
        "@as []",
        "@a{sv} {}",
        f"int32 {EXPIRE_MS}",
    ]


def find_tool(env: Mapping[str, str]) -> tuple[str, str] | str:
    """(tool, path) to notify with, or why there is none."""
    if not sys.platform.startswith("linux"):
        return "desktop notifications are only available on Linux desktops"
    if not env.get("DBUS_SESSION_BUS_ADDRESS") and not env.get("XDG_RUNTIME_DIR"):
        return "there is no desktop session (no session bus) to show notifications in"
    for tool in ("notify-send", "gdbus"):
        path = shutil.which(tool, path=env.get("PATH"))
        if path:
            return tool, path
    return "neither notify-send (libnotify-bin) nor gdbus (libglib2.0-bin) is installed"


class Notifier:
    """Shows notifications while ``enabled()`` says so (the rules' setting, read at each one)."""

    def __init__(
        self,
        enabled: Callable[[], bool],
        *,
        system: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.enabled = enabled
        self.env = dict(os.environ if env is None else env)
        found = "the system service runs outside any desktop session" if system else find_tool(self.env)
        self.tool: tuple[str, str] | None = found if isinstance(found, tuple) else None
        self.unavailable = found if isinstance(found, str) else None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._last: dict[str, float] = {}
        self._said_unavailable = False

    def start(self) -> None:
        if self.tool is not None:
            self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="zerocontact-notify")
            log.info("desktop notifications: with %s", self.tool[0])

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=False)  # each is bounded by TIMEOUT
            self._pool = None

    def send(self, title: str, body: str) -> None:
        """Queue one notification (returns at once); repeats within a minute are dropped."""
        if not self.enabled():
            return
        if self.tool is None or self._pool is None:
            if not self._said_unavailable:
                log.info("no desktop notifications: %s", self.unavailable or "not started")
                self._said_unavailable = True
            return
        now = time.monotonic()
        key = f"{title}\n{body}"
        if now - self._last.get(key, -REPEAT_SECONDS) < REPEAT_SECONDS:
            return
        self._last[key] = now
        argv = command(*self.tool, title, body)
        with contextlib.suppress(RuntimeError):  # shutting down
            self._pool.submit(self._run, argv)

    def _run(self, argv: list[str]) -> None:
        try:
            r = subprocess.run(argv, env=self.env, capture_output=True, timeout=TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            log.warning("a desktop notification failed: %s", e)
            return
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).decode("utf-8", "replace").strip().splitlines()[-1:]
            log.warning(
                "a desktop notification failed (exit %d)%s", r.returncode, f": {tail[0]}" if tail else ""
            )


def block_started(name: str) -> tuple[str, str]:
    return "A block has started", f"You chose not to look at {name} now. zerocontact is holding that for you."


def block_lifted(name: str) -> tuple[str, str]:
    return "A block has ended", f"The block on {name} has ended, as you planned it."


def app_stopped(process: str, rule: str, action: str) -> tuple[str, str]:
    verb = "paused" if action == "suspend" else "closed"
    return f"{process} was {verb}", f"Your rule {rule!r} asked for this. Noticing the urge is the work."
