"""Putting an installation together: which steps for this OS and mode, and install / uninstall.

Backends are chosen at run time (maestral's way): systemd, launchd or Task Scheduler for the service;
``update-ca-certificates`` or ``update-ca-trust`` for the system store; GNOME and/or KDE settings when
that desktop is there. Nothing is touched while planning.

User mode (no root): the service runs in your session; the CA is trusted by your browsers' NSS
databases; your desktop's proxy setting points at the PAC. System mode (root): the service runs
from boot for everyone; the CA goes into the system store; managed browser policies route the
targets, turn QUIC and DNS over HTTPS off, and cannot be changed by a user.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import shutil
import sys
import sysconfig
from collections.abc import Callable, Sequence
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Any

from .context import OS, Context, InstallError, Mode, Runner, host_os
from .launchd import LaunchdService
from .ops import Dir, File, Manifest, Op, Reverter, Step, transaction
from .policies import ChromiumPolicy, FirefoxPolicy, pac_text
from .routing import desktop_steps
from .systemd import SystemdService
from .trust import CaMaterial, CaStep, NssTrust, PublicFiles, system_trust
from .windows import WindowsTask

Say = Callable[[str], None]
HEADER = ("mode", "os", "root", "home", "config_dir", "state_dir", "exe", "hosts", "proxy_port", "pac_port")


# -- this installation's own program ----------------------------------------------------------------------
def installed_command() -> tuple[str, ...]:
    """How a service should start *this* zerocontact: the console script the package metadata
    declares, in this interpreter's scripts folder; failing that, this interpreter with ``-m``."""
    names = ["zerocontact"]
    try:
        dist = importlib.metadata.distribution("zerocontact")
        names = [e.name for e in dist.entry_points if e.group == "console_scripts"] or names
    except importlib.metadata.PackageNotFoundError:
        pass
    folders = [Path(sysconfig.get_path("scripts")), Path(sys.executable).parent]
    for folder in folders:
        for name in names:
            for candidate in (folder / name, folder / f"{name}.exe"):
                if candidate.is_file() and os.access(candidate, os.X_OK):
                    return (str(candidate.absolute()),)
    return (str(Path(sys.executable).absolute()), "-m", "zerocontact.daemon.cli")


def editable_source() -> str | None:
    """The source folder this zerocontact runs from (an editable install, as ``./dev``'s ``.venv``),
    else None: a service started from a clone stops the day the clone is deleted."""
    import zerocontact.daemon

    # an installed package lives in site-packages/zerocontact/; a source tree has the repository's
    # own layout around the real file (an editable install links back to it)
    src = Path(os.path.realpath(zerocontact.daemon.__file__ or ".")).parent.parent
    if (src / "pyproject.toml").is_file() and (src / "installer").is_dir() and (src / "rules").is_dir():
        return str(src)
    return None


def service_read_paths(exe: Sequence[str]) -> tuple[str, ...]:
    """Everything the service must be able to read to start: the script, the interpreter (also
    behind the venv's symlink) and the package (also the source tree of an editable install)."""
    import zerocontact.daemon
    import zerocontact.installer
    import zerocontact.rules

    paths = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        str(Path(os.path.realpath(sys.executable)).parent.parent),
    }
    paths |= {str(Path(exe[0]).parent)}
    for key in ("purelib", "platlib"):
        paths.add(sysconfig.get_path(key))
    for mod in (zerocontact.daemon, zerocontact.rules, zerocontact.installer):
        f = Path(mod.__file__ or ".")
        paths |= {str(f.parent), str(Path(os.path.realpath(f)).parent.parent)}
    return tuple(sorted(p for p in paths if p))


# -- where things go ----------------------------------------------------------------------------------------
def default_dirs(mode: Mode, target: OS, home: PurePath) -> tuple[PurePath, PurePath]:
    """(config dir, state dir) by each OS's conventions (the daemon's own on this OS)."""
    if target == host_os() and mode == "user":
        from zerocontact.daemon import paths

        p = paths.resolve()
        return PurePath(p.config_dir), PurePath(p.state_dir)
    if target == "linux":
        if mode == "system":
            return PurePosixPath("/etc/zerocontact"), PurePosixPath("/var/lib/zerocontact")
        return home / ".config" / "zerocontact", home / ".local" / "state" / "zerocontact"
    if target == "darwin":
        base = PurePosixPath("/Library") if mode == "system" else home / "Library"
        return (
            base / "Application Support" / "zerocontact",
            base / "Application Support" / "zerocontact" / "state",
        )
    if mode == "system":
        return PureWindowsPath(r"C:\ProgramData\zerocontact"), PureWindowsPath(
            r"C:\ProgramData\zerocontact\state"
        )
    return home / "AppData" / "Roaming" / "zerocontact", home / "AppData" / "Local" / "zerocontact"


def make_context(
    mode: Mode,
    root: Path = Path("/"),
    hosts: Sequence[str] = (),
    target: OS | None = None,
    state_dir: PurePath | None = None,
    env: dict[str, str] | None = None,
    home: PurePath | None = None,
    exe: Sequence[str] | None = None,
    **extra: Any,
) -> Context:
    """A context for this machine (or, for a printed plan, another OS's conventions)."""
    target = target or host_os()
    env = dict(os.environ) if env is None else env
    if home is None:
        if target == host_os():
            home = PurePath(env.get("HOME") or Path.home())
        else:
            home = PureWindowsPath(r"C:\Users\you") if target == "windows" else PurePosixPath("/Users/you")
    config_dir, default_state = default_dirs(mode, target, home)
    exe = tuple(exe) if exe is not None else installed_command()
    return Context(
        mode=mode,
        root=root,
        home=home,
        config_dir=config_dir,
        state_dir=state_dir if state_dir is not None else default_state,
        exe=exe,
        hosts=tuple(hosts),
        os=target,
        uid=os.getuid() if hasattr(os, "getuid") else 0,
        service_paths=service_read_paths(exe) if target == host_os() else (),
        env=env,
        **extra,
    )


def context_from_manifest(m: Manifest, env: dict[str, str] | None = None, **changes: Any) -> Context:
    """The context an earlier install recorded (for refresh and doctor)."""
    d = m.data
    target: OS = d["os"]
    P = PureWindowsPath if target == "windows" else PurePosixPath
    fields: dict[str, Any] = {
        "mode": d["mode"],
        "root": Path(d["root"]),
        "home": P(d["home"]),
        "config_dir": P(d["config_dir"]),
        "state_dir": P(d["state_dir"]),
        "exe": tuple(d["exe"]),
        "hosts": tuple(d["hosts"]),
        "os": target,
        "proxy_port": d["proxy_port"],
        "pac_port": d["pac_port"],
        "uid": d.get("uid", 0),
        "service_paths": tuple(d.get("service_paths", ())),
        "env": dict(os.environ) if env is None else env,
    }
    fields.update(changes)
    return Context(**fields)


# -- steps ------------------------------------------------------------------------------------------------
class StateStep(Step):
    """The configuration and state folders, made private (kept by a plain uninstall)."""

    name = "state"
    title = "zerocontact's own folders (kept by a plain uninstall, with your rules and journal)"

    def ops(self) -> list[Op]:
        public = 0o755 if self.ctx.mode == "system" else 0o700
        return [Dir(self.ctx.config_dir, public, keep=True), Dir(self.ctx.state_dir, 0o700, keep=True)]


class RulesStep(Step):
    """Copy the rules file given with --rules into place, readable only by its owner."""

    name = "rules"
    title = "your rules file (kept by a plain uninstall; --purge removes it)"

    def __init__(self, ctx: Context, data: bytes, source: str) -> None:
        super().__init__(ctx)
        self.data, self.source = data, source

    def ops(self) -> list[Op]:
        return [File(self.ctx.rules, self.data, 0o600, f"copied from {self.source}", keep=True)]


def written_folders(steps: Sequence[Step]) -> list[PurePath]:
    """The folders these steps write into: each file's folder and each folder they create."""
    out = set()
    for step in steps:
        for op in step.ops():
            if isinstance(op, File):
                out.add(op.path.parent)
            elif isinstance(op, Dir):
                out.add(op.path)
    return sorted(out, key=str)


def build_steps(
    ctx: Context, material: CaMaterial | None = None, rules: tuple[bytes, str] | None = None
) -> list[Step]:
    """Every step of this installation, in the order they are applied (service last)."""
    m = material or CaMaterial(ctx)
    steps: list[Step] = [StateStep(ctx)]
    if rules is not None:
        steps.append(RulesStep(ctx, *rules))
    steps.append(CaStep(ctx, m))
    public: PublicFiles | None = None
    if ctx.mode == "system":
        public = PublicFiles(ctx, m, lambda: pac_text(ctx))
        steps.append(public)
    trust = system_trust(ctx, m)
    if trust is not None:
        steps.append(trust)
    if ctx.os == "linux" and ctx.mode == "user":
        steps.append(NssTrust(ctx, m))
    steps += desktop_steps(ctx)
    if public is not None:
        steps += [ChromiumPolicy(ctx, m), FirefoxPolicy(ctx, public.ca_file, public.pac_file)]
    if ctx.os == "linux":
        steps.append(SystemdService(ctx, written_folders(steps)))
    elif ctx.os == "darwin":
        steps.append(LaunchdService(ctx))
    else:
        steps.append(WindowsTask(ctx))
    return steps


def plan_text(ctx: Context, steps: Sequence[Step]) -> str:
    """The whole plan as printed before anything is applied."""
    where = "this system" if ctx.live else f"the staging root {ctx.root}"
    hosts = ", ".join(ctx.hosts) or "none yet"
    lines = [f"zerocontact install --{ctx.mode} ({ctx.os}) into {where}", f"targeted hosts: {hosts}", ""]
    for s in steps:
        lines += s.plan()
    if ctx.mode == "user" and ctx.os == "linux":
        lines += [
            "",
            "not in user mode: managed browser policies (QUIC off, a PAC that works with the daemon down)",
            "and the system trust store need root: `sudo zerocontact install --system` adds them.",
        ]
    return "\n".join(lines) + "\n"


# -- install / uninstall ------------------------------------------------------------------------------------
def preflight(ctx: Context) -> None:
    """Refuse, with the fix, what cannot work (before anything is touched)."""
    if ctx.os != host_os():
        raise InstallError(f"this plan is for {ctx.os}; it can only be printed here (--dry-run)")
    if not ctx.live:
        return
    euid = os.geteuid() if hasattr(os, "geteuid") else 0
    if ctx.mode == "system" and euid != 0 and ctx.os != "windows":
        raise InstallError("--system needs root: run `sudo zerocontact install --system`")
    if ctx.mode == "user" and euid == 0 and ctx.os == "linux":
        raise InstallError("--user as root would install for root only; run it as yourself, or use --system")
    if ctx.os == "linux":
        if not Path("/run/systemd/system").is_dir():
            raise InstallError(
                "systemd is not running here (it keeps the service alive); "
                "run `zerocontact run` from your session's autostart instead, "
                "or use --root DIR to stage the files"
            )
        if ctx.mode == "user":
            runtime = ctx.env.get("XDG_RUNTIME_DIR")
            if not runtime or not (Path(runtime) / "systemd").exists():
                raise InstallError(
                    "no systemd user manager for this session (XDG_RUNTIME_DIR has none); "
                    "log in to a desktop session, or install for the whole machine with --system"
                )
        if not shutil.which("systemctl", path=ctx.env.get("PATH")):
            raise InstallError("systemctl is not on PATH")


def other_install(ctx: Context) -> str | None:
    """The other mode's installation, if there is one: both would listen on the same ports."""
    if ctx.os != "linux":
        return None
    if ctx.mode == "user" and ctx.at(PurePosixPath("/etc/systemd/system/zerocontact.service")).exists():
        return "zerocontact is already installed for the whole system; `sudo zerocontact uninstall` it first"
    if ctx.mode == "system":
        user_unit = ctx.at(ctx.home / ".config" / "systemd" / "user" / "zerocontact.service")
        if user_unit.exists():
            return "zerocontact is installed for your user; run `zerocontact uninstall` (without sudo) first"
    return None


def header(ctx: Context) -> dict[str, Any]:
    """The installation's context as the manifest keeps it (for refresh and doctor)."""
    return {
        "mode": ctx.mode,
        "os": ctx.os,
        "root": str(ctx.root),
        "home": str(ctx.home),
        "config_dir": str(ctx.config_dir),
        "state_dir": str(ctx.state_dir),
        "exe": list(ctx.exe),
        "hosts": list(ctx.hosts),
        "proxy_port": ctx.proxy_port,
        "pac_port": ctx.pac_port,
        "uid": ctx.uid,
        "service_paths": list(ctx.service_paths),
    }


def install(ctx: Context, steps: Sequence[Step], runner: Runner, say: Say) -> Manifest:
    """Apply every step; on failure undo this run's changes. Safe to run again at any time."""
    manifest = Manifest.load(ctx.manifest)
    recorded = manifest.data.get("mode")
    if recorded and recorded != ctx.mode and manifest.data.get("installed"):
        raise InstallError(f"this state directory holds a --{recorded} installation; uninstall it first")
    clash = other_install(ctx)
    if clash:
        raise InstallError(clash)
    with transaction(ctx, runner, manifest, say) as tx:
        for step in steps:
            say(f"[{step.name}]")
            step.apply(tx)
        manifest.data.update(header(ctx), installed=True)
    return manifest


def uninstall(
    manifest_path: Path, runner: Runner, say: Say, purge: bool = False, env: dict[str, str] | None = None
) -> bool:
    """Revert what the manifest records, newest first; True if anything was done.

    A plain uninstall keeps the rules file, the state directory (journal) and the folders holding
    them, and keeps their records so a later ``--purge`` can remove them too. ``--purge`` also
    deletes the state directory and everything in it."""
    manifest = Manifest.load(manifest_path)
    state_dir = manifest_path.parent
    reverter = Reverter(runner, say, dict(os.environ) if env is None else env)
    todo = [r for r in reversed(manifest.records) if purge or not r.get("keep")]
    if not todo and not (purge and state_dir.exists()):
        return False
    dirs_last = [r for r in todo if r["kind"] == "dir" and r.get("keep")]
    for rec in [r for r in todo if r not in dirs_last]:
        try:
            reverter.revert(rec)
        except OSError as e:
            say(f"warning: could not undo {rec['key']}: {e}")
        manifest.remove(rec["key"])
        if manifest_path.parent.exists() and not purge:
            manifest.save()
    if purge:
        if state_dir.exists():
            shutil.rmtree(state_dir)
            say(f"removed {state_dir} (journal, CA, learned ids)")
        for rec in dirs_last:
            reverter.revert(rec)
        return True
    manifest.data["installed"] = False
    manifest.save()
    with contextlib.suppress(OSError):
        manifest.backups.rmdir()
    return True
