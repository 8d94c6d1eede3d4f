"""Desktop proxy settings: point the system at the PAC file, so only the targets reach the proxy.

GNOME (``gsettings``; Chromium, Firefox with "system proxy" and GLib apps follow it), KDE
(``kioslaverc``), macOS (``networksetup`` per network service) and Windows (``AutoConfigURL`` in the
user's Internet Settings). These use the daemon's PAC URL (``http://127.0.0.1:8342/proxy.pac``): it
follows rules changes by itself, and every program that reads these settings can fetch it. Its
weakness — a PAC server that is down makes browsers go DIRECT — is what the browser policies
(``--system``) close with a self-contained ``data:`` PAC.

Every previous value is recorded, and uninstall puts it back.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePath

from .context import Context, InstallError
from .ops import Command, Dir, IniKeys, Op, Step, Tx
from .windows import RegValue

GNOME_SCHEMA = "org.gnome.system.proxy"
WININET = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Internet Settings"


def gvariant_str(s: str) -> str:
    """A GVariant string literal, the form ``gsettings get`` prints."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass
class TrackNewFile(Op):
    """Remember that a settings file did not exist, so uninstall removes it once it is empty again."""

    path: PurePath

    def describe(self) -> str:
        return f"(if {self.path} is new, it is removed again on uninstall once empty)"

    def apply(self, tx: Tx) -> None:
        real = tx.ctx.at(self.path)
        if not real.exists() and tx.manifest.find(f"created:{real}") is None:
            tx.record({"key": f"created:{real}", "kind": "created-if-empty", "path": str(real)})
            tx.on_undo(lambda: real.unlink(missing_ok=True))


@dataclass
class GSetting(Op):
    """One GSettings key; its previous value (or that it was at the default) is recorded."""

    schema: str
    key: str
    value: str  # GVariant text
    env: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"gsettings set {self.schema} {self.key} {self.value}"

    def apply(self, tx: Tx) -> None:
        get = ["gsettings", "get", self.schema, self.key]
        current = tx.run(get, self.env).stdout.strip()
        if current == self.value:
            tx.say(f"unchanged: {self.schema} {self.key}")
            return
        default = tx.run(get, {**self.env, "GSETTINGS_BACKEND": "memory"}).stdout.strip()
        rec = {
            "key": f"gsetting:{self.schema}:{self.key}",
            "kind": "gsetting",
            "schema": self.schema,
            "gkey": self.key,
            "previous": current,
            "was_default": current == default,
            "env": dict(self.env),
        }
        rec = tx.record(rec)
        tx.run(["gsettings", "set", self.schema, self.key, self.value], self.env)
        tx.on_undo(
            lambda: tx.reverter.revert({**rec, "previous": current, "was_default": current == default})
        )
        if tx.run(get, self.env).stdout.strip() != self.value:
            raise InstallError(
                f"gsettings did not keep {self.schema} {self.key} (no desktop session or D-Bus?); "
                "run install from your desktop session"
            )
        tx.changed()
        tx.say(f"set {self.schema} {self.key} {self.value}")


class GnomeProxy(Step):
    """GNOME's proxy setting: automatic configuration from the daemon's PAC URL."""

    name = "proxy-gnome"
    title = "GNOME proxy setting: automatic, from the daemon's PAC file"

    @property
    def xdg_config(self) -> PurePath:
        return self.ctx.config_dir.parent

    def env(self) -> dict[str, str]:
        if self.ctx.live:
            return {}
        # a staging root: GLib's keyfile backend under the root instead of the session's dconf
        return {"GSETTINGS_BACKEND": "keyfile", "XDG_CONFIG_HOME": str(self.ctx.at(self.xdg_config))}

    def ops(self) -> list[Op]:
        env = self.env()
        ops: list[Op] = []
        if env or self.ctx.env.get("GSETTINGS_BACKEND") == "keyfile":
            # GLib's keyfile backend: a file zerocontact may create (dconf keeps its own database)
            settings = self.xdg_config / "glib-2.0" / "settings"
            ops += [Dir(settings.parent, 0o700), Dir(settings, 0o700), TrackNewFile(settings / "keyfile")]
        ops.append(GSetting(GNOME_SCHEMA, "autoconfig-url", gvariant_str(self.ctx.pac_url), env))
        ops.append(GSetting(GNOME_SCHEMA, "mode", gvariant_str("auto"), env))
        return ops

    @classmethod
    def detect(cls, ctx: Context) -> bool:
        if not shutil.which("gsettings", path=ctx.env.get("PATH")):
            return False
        from .context import SubprocessRunner

        # the memory backend: asking must not create the keyfile backend's folders
        env = {**ctx.env, "GSETTINGS_BACKEND": "memory"}
        r = SubprocessRunner(timeout=20).run(["gsettings", "list-keys", GNOME_SCHEMA], env=env, check=False)
        return r.returncode == 0 and "autoconfig-url" in r.stdout

    def notes(self) -> list[str]:
        return ["any earlier proxy setting is replaced while installed; uninstall puts it back"]


class KdeProxy(Step):
    """KDE's proxy setting in kioslaverc: ProxyType 2 (PAC) with the daemon's PAC URL."""

    name = "proxy-kde"
    title = "KDE proxy setting (kioslaverc): automatic, from the daemon's PAC file"

    @property
    def path(self) -> PurePath:
        return self.ctx.config_dir.parent / "kioslaverc"

    def ops(self) -> list[Op]:
        ops: list[Op] = [
            IniKeys(
                self.path,
                "Proxy Settings",
                {"ProxyType": "2", "Proxy Config Script": self.ctx.pac_url},
                0o600,
            )
        ]
        if shutil.which("dbus-send", path=self.ctx.env.get("PATH")):
            ops.append(
                Command(
                    [
                        "dbus-send",
                        "--type=signal",
                        "/KIO/Scheduler",
                        "org.kde.KIO.Scheduler.reparseSlaveConfiguration",
                        "string:",
                    ],
                    why="tell running KDE apps",
                    live_only=True,
                    only_if_changed=True,
                    check=False,
                )
            )
        return ops

    @classmethod
    def detect(cls, ctx: Context) -> bool:
        desktop = ctx.env.get("XDG_CURRENT_DESKTOP", "").upper()
        return "KDE" in desktop or ctx.at(ctx.config_dir.parent / "kioslaverc").exists()


def parse_autoproxy(output: str) -> tuple[str | None, bool]:
    """(URL, enabled) from ``networksetup -getautoproxyurl SERVICE``."""
    url, enabled = None, False
    for line in output.splitlines():
        k, _, v = line.partition(":")
        if k.strip() == "URL":
            v = v.strip()
            url = None if v in ("", "(null)") else v
        elif k.strip() == "Enabled":
            enabled = v.strip().lower() == "yes"
    return url, enabled


@dataclass
class NetworkServicesPac(Op):
    """The automatic proxy URL on every enabled macOS network service, each one's previous state recorded."""

    url: str
    live_only: bool = True

    def describe(self) -> str:
        return f"networksetup -setautoproxyurl <each network service> {self.url} (uninstall restores each)"

    def apply(self, tx: Tx) -> None:
        if not tx.ctx.live_commands:
            tx.say("skipped (staging root): networksetup")
            return
        listing = tx.run(["networksetup", "-listallnetworkservices"]).stdout.splitlines()
        services = [s for s in listing[1:] if s.strip() and not s.startswith("*")]  # "*": disabled
        for svc in services:
            key = f"netsvc:{svc}"
            url, enabled = parse_autoproxy(tx.run(["networksetup", "-getautoproxyurl", svc]).stdout)
            if url == self.url and enabled:
                tx.say(f"unchanged: {svc}")
                continue
            old = tx.manifest.find(key)
            if old is not None:
                revert = list(old["revert"])
            elif url and enabled:
                revert = ["networksetup", "-setautoproxyurl", svc, url]
            else:
                revert = ["networksetup", "-setautoproxystate", svc, "off"]
            tx.command(["networksetup", "-setautoproxyurl", svc, self.url], revert, key)
            tx.say(f"set the automatic proxy of {svc}")


class MacProxy(Step):
    """macOS: the PAC for every network service."""

    name = "proxy-macos"
    title = "macOS automatic proxy configuration (every network service)"

    def ops(self) -> list[Op]:
        return [NetworkServicesPac(self.ctx.pac_url)]


class WindowsProxy(Step):
    """Windows: the per-user automatic configuration script."""

    name = "proxy-windows"
    title = "Windows automatic configuration script (Edge, Chrome and most apps follow it)"

    def ops(self) -> list[Op]:
        return [RegValue(WININET, "AutoConfigURL", "REG_SZ", self.ctx.pac_url, "the PAC file")]

    def notes(self) -> list[str]:
        return ["programs already running pick it up when they next start"]


def desktop_steps(ctx: Context) -> list[Step]:
    """The proxy settings to write for this OS and desktop (user mode on Linux)."""
    if ctx.os == "darwin":
        return [MacProxy(ctx)]
    if ctx.os == "windows":
        return [WindowsProxy(ctx)]
    if ctx.mode != "user":
        return []
    out: list[Step] = []
    if GnomeProxy.detect(ctx):
        out.append(GnomeProxy(ctx))
    if KdeProxy.detect(ctx):
        out.append(KdeProxy(ctx))
    return out
