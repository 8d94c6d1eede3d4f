"""systemd service units (system and ``--user``), written with the standard library at install time.

``Type=notify`` + ``WatchdogSec=``: the daemon says READY=1 once its proxy listens and WATCHDOG=1
every half period (``daemon/sdnotify.py``), so a hung daemon is restarted, not just a dead one.
``Restart=always``: there is no off switch; stopping it by hand is noted in the journal.

Every hardening setting carries a comment saying why it is there or why a stronger one is not: the
daemon binds a loopback port, makes outbound HTTPS connections for the target platforms' allowed
traffic, and in system mode must see every user's processes and their start times and signal them
(the process watcher, ``CAP_KILL``). ``systemd-analyze security --offline=true`` scores the system
unit 1.9 (README, "Installing it as a service"); ``tests/installer/test_systemd.py`` keeps it there.

A second pair of units follows the rules file (``zerocontact-refresh.path`` → ``.service`` running
``zerocontact install --refresh``): when the rules target another platform, the CA is renewed and the
PAC and browser policies follow, without anyone remembering to re-run install.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Sequence
from pathlib import Path, PurePath, PurePosixPath

from zerocontact.daemon.paths import RESTART_MARKER

from .context import LABEL, Context, InstallError
from .ops import Command, Dir, File, Op, Step, Tx

SERVICE = f"{LABEL}.service"
REFRESH_PATH = f"{LABEL}-refresh.path"
REFRESH_SERVICE = f"{LABEL}-refresh.service"
WATCHDOG_SEC = 30
HOME_ROOTS = (PurePosixPath("/home"), PurePosixPath("/root"), PurePosixPath("/run/user"))
UNSAFE = set("'\"\\") | {chr(c) for c in range(32)} | {"\x7f"}  # systemd refuses these in a path


def exec_line(argv: Sequence[str]) -> str:
    """``argv`` as one ExecStart= value: shell-quoted (systemd reads the same quotes), with the
    characters systemd itself expands doubled: ``%`` specifiers everywhere, ``$`` variables in the
    arguments (systemd does not expand them in the program path)."""
    if not argv or not PurePosixPath(argv[0]).is_absolute():
        raise InstallError(f"the service needs an absolute program path, not {argv[:1]}")
    if any(c in UNSAFE for c in argv[0]):
        raise InstallError(
            f"systemd refuses program paths with quotes or special characters: {argv[0]!r}; "
            "install zerocontact in a plainer location"
        )
    if any("\n" in a or "\\" in a for a in argv):
        raise InstallError(f"cannot write a newline or backslash into a unit file: {argv}")
    program = shlex.quote(argv[0]).replace("%", "%%")
    args = [shlex.quote(a).replace("%", "%%").replace("$", "$$") for a in argv[1:]]
    return " ".join([program, *args])


def _under_home(p: str) -> bool:
    pp = PurePosixPath(p)
    return any(pp == h or h in pp.parents for h in HOME_ROOTS)


def home_binds(paths: Sequence[str]) -> list[str]:
    """Of the paths the service must read, those under a home directory, without nested repeats."""
    inside = sorted({p.rstrip("/") for p in paths if _under_home(p)})
    return [p for p in inside if not any(p != q and p.startswith(q + "/") for q in inside)]


def daemon_argv(ctx: Context) -> list[str]:
    """The command line the service runs: ``zerocontact run`` with this installation's paths and ports."""
    return [
        *ctx.exe,
        "run",
        "--rules",
        str(ctx.rules),
        "--state-dir",
        str(ctx.state_dir),
        "--port",
        str(ctx.proxy_port),
        "--pac-port",
        str(ctx.pac_port),
    ]


# Settings enforced with seccomp and prctl: they work in the system and in a user manager alike.
SECCOMP: list[tuple[str, str]] = [
    ("LockPersonality=yes", "no switching of the execution domain"),
    (
        "MemoryDenyWriteExecute=yes",
        "no writable+executable memory; Python, ctypes callbacks and mitmproxy's Rust parts work under it",
    ),
    ("RestrictNamespaces=yes", "creates no namespace: it needs none"),
    ("RestrictRealtime=yes", "no realtime scheduling: it could starve the machine"),
    ("RestrictSUIDSGID=yes", "creates no setuid/setgid file"),
    ("SystemCallArchitectures=native", "only this machine's system call ABI"),
    (
        "SystemCallFilter=@system-service",
        "the system calls an ordinary service needs; minus privileged and resource-control ones",
    ),
    ("SystemCallFilter=~@privileged @resources", ""),
    ("SystemCallErrorNumber=EPERM", "a refused call fails with EPERM instead of killing the daemon"),
]


def _lines(entries: Sequence[tuple[str, str]]) -> str:
    out = []
    for directive, why in entries:
        if why:
            out += [f"# {w}" for w in why.split("\n")]
        if directive:
            out.append(directive)
    return "\n".join(out)


def system_unit(ctx: Context) -> str:
    """The system service: root with one capability, everything else taken away."""
    home = _home_entries(ctx)
    entries: list[tuple[str, str]] = [
        *_service_basics(ctx),
        ("", ""),
        (
            "",
            "--- hardening: `systemd-analyze security --offline=true` scores this unit 1.9 ---\n"
            "Runs as root (costs 0.4) but keeps no capability except CAP_KILL: rules.toml holds a\n"
            "person's name and stays 0600 root-only in /etc; DynamicUser= (1.6) could not read it\n"
            "unless every local user could.",
        ),
        (
            "CapabilityBoundingSet=CAP_KILL",
            "the process watcher stops apps the rules name, for any user (costs 0.1); without\n"
            "CAP_SYS_PTRACE it reads other users' process names and command lines, not their exe links",
        ),
        ("NoNewPrivileges=yes", "no setuid or file capabilities can give it more"),
        ("StateDirectory=zerocontact", "/var/lib/zerocontact: journal, CA, clock; the only writable place"),
        ("StateDirectoryMode=0700", ""),
        ("ConfigurationDirectory=zerocontact", "/etc/zerocontact: rules.toml (read-only here)"),
        ("ConfigurationDirectoryMode=0755", "also holds the public proxy.pac and ca.pem"),
        ("UMask=0077", "whatever it writes is private"),
        ("ProtectSystem=strict", "the whole file system is read-only for it"),
        *home,
        ("PrivateTmp=yes", "no temporary files shared with anyone"),
        ("PrivateDevices=yes", "no device access: it needs none"),
        ("PrivateMounts=yes", "mounts stay private to it"),
        ("RemoveIPC=yes", "no System V IPC left behind"),
        ("ProtectKernelTunables=yes", "no /proc/sys or /sys writes: it tunes nothing"),
        ("ProtectKernelModules=yes", "loads no module"),
        ("ProtectKernelLogs=yes", "reads no kernel log"),
        ("ProtectControlGroups=yes", "changes no cgroup"),
        (
            "ProtectClock=yes",
            "cannot set the clock (its trusted clock only reads it); implies read access to the RTC\n"
            "device, which costs 0.1",
        ),
        ("ProtectHostname=yes", "cannot change the host name"),
        (
            "ProtectProc=default",
            "the watcher must see other users' processes: hidepid (invisible) would hide them (0.2)",
        ),
        (
            "",
            "No ProcSubset=pid (0.1): process start times come from /proc/stat (psutil's boot time).\n"
            "No PrivateUsers= (0.2): CAP_KILL inside a user namespace cannot signal the host's users.\n"
            "No PrivateNetwork= (0.5) and no IPAddressDeny= (0.2): allowed requests to the target\n"
            "platforms go out to the internet; the listening sockets are loopback-only by the daemon's\n"
            "own check (it refuses any other address).",
        ),
        *SECCOMP,
        (
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
            "IP for the proxy (0.3); AF_UNIX for sd_notify (0.1); nothing else (no netlink, no raw)",
        ),
    ]
    return (
        "# zerocontact: written by `zerocontact install --system`; `zerocontact uninstall` removes it.\n"
        "[Unit]\n"
        "Description=zerocontact: blocks looking at one person, gently\n"
        "After=network-online.target\n"
        "Wants=network-online.target\n"
        "\n[Service]\n" + _lines(entries) + "\n\n[Install]\nWantedBy=multi-user.target\n"
    )


def _service_basics(ctx: Context) -> list[tuple[str, str]]:
    """What both units share: how the service starts, says it is ready, and comes back."""
    return [
        (
            "ExecStart=" + exec_line(daemon_argv(ctx)),
            "this installation's own zerocontact (package metadata)",
        ),
        ("Type=notify", "READY=1 once the proxy listens (daemon/sdnotify.py)"),
        ("NotifyAccess=main", ""),
        (f"WatchdogSec={WATCHDOG_SEC}s", "WATCHDOG=1 every 15 s; a hung daemon is restarted"),
        ("Restart=always", "there is no off switch: it comes back however it stopped"),
        ("RestartSec=5s", ""),
        ("TimeoutStopSec=10s", "SIGTERM stops it within 2 s; this is a margin"),
        ("Environment=PYTHONUNBUFFERED=1", "log lines reach the journal at once"),
        *(
            [
                (
                    "Environment=ZEROCONTACT_MODE=system",
                    "acts for every user: the watcher stops their apps, notices reach them",
                )
            ]
            if ctx.mode == "system"
            else []
        ),
    ]


def user_unit(ctx: Context) -> str:
    """The per-user service: no capabilities at all (an unprivileged user has none to drop)."""
    entries: list[tuple[str, str]] = [
        *_service_basics(ctx),
        ("", ""),
        (
            "",
            "--- hardening that works in a user manager ---\n"
            "It runs as you, with no capabilities; it only signals your own processes. Mount and\n"
            "namespace settings (ProtectSystem=, PrivateTmp=, ProtectHome=...) would need\n"
            "unprivileged user namespaces, which some distributions disable (the unit would then\n"
            "fail to start), so only seccomp- and prctl-based settings are used here.",
        ),
        ("NoNewPrivileges=yes", "no setuid or file capabilities can give it more"),
        ("UMask=0077", "whatever it writes is private"),
        *SECCOMP,
        (
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
            "IP for the proxy's loopback listener and outbound connections; AF_UNIX for sd_notify",
        ),
    ]
    return (
        "# zerocontact: written by `zerocontact install --user`; `zerocontact uninstall` removes it.\n"
        "[Unit]\n"
        "Description=zerocontact: blocks looking at one person, gently\n"
        "\n[Service]\n" + _lines(entries) + "\n\n[Install]\nWantedBy=default.target\n"
    )


def refresh_path_unit(ctx: Context) -> str:
    """Watches the rules file; each change starts the refresh service."""
    return (
        "# zerocontact: when the rules file changes, renew the CA and policies if the targeted\n"
        "# platforms changed (`zerocontact install --refresh` does nothing otherwise).\n"
        "[Unit]\n"
        "Description=zerocontact: follow changes of the rules file\n"
        "\n[Path]\n"
        f"PathChanged={str(ctx.rules).replace('%', '%%')}\n"
        f"Unit={REFRESH_SERVICE}\n"
        "\n[Install]\n"
        f"WantedBy={'multi-user.target' if ctx.mode == 'system' else 'default.target'}\n"
    )


# Where `install --refresh` may write besides what the plan's own files and folders name: the trust
# stores that update-ca-certificates (Debian) and update-ca-trust (Fedora) rebuild.
TRUST_OUTPUTS = (
    "/etc/ssl/certs",
    "/etc/ca-certificates",
    "/etc/pki/ca-trust",
    "/usr/local/share/ca-certificates",
)


def _home_entries(ctx: Context) -> list[tuple[str, str]]:
    """Hide home directories, mapping back only the Python installation that runs zerocontact."""
    binds = home_binds(ctx.service_paths)
    if not binds:
        return [("ProtectHome=yes", "no home directory is needed: rules are in /etc, state in /var/lib")]
    return [
        (
            "ProtectHome=tmpfs",
            "home directories are replaced by an empty tmpfs; only the Python installation that\n"
            "runs zerocontact is mapped back in, read-only (it lives under a home directory);\n"
            "costs 0.1 more than ProtectHome=yes, which would hide the interpreter itself",
        ),
        ("BindReadOnlyPaths=" + " ".join(shlex.quote(b) for b in binds), ""),
    ]


def refresh_service_unit(ctx: Context, writes: Sequence[PurePath] = ()) -> str:
    """Runs ``install --refresh``, which does nothing unless the targeted platforms changed.

    ``writes``: the folders the installation's steps write (their files' folders and the folders
    they create); in system mode those, the state directory and the trust stores are the only
    writable places, and the refresh gets no network and no capability."""
    argv = [*ctx.exe, "install", "--refresh", "--state-dir", str(ctx.state_dir)]
    head = (
        "# zerocontact: re-applies the recorded installation when the targeted platforms change.\n"
        "[Unit]\n"
        "Description=zerocontact: renew the CA, PAC and browser policies for the rules' platforms\n"
        "\n[Service]\n"
        "Type=oneshot\n"
        f"ExecStart={exec_line(argv)}\n"
    )
    if ctx.mode != "system":
        user: list[tuple[str, str]] = [
            ("", "--- hardening that works in a user manager (see zerocontact.service) ---"),
            ("NoNewPrivileges=yes", "no setuid or file capabilities can give it more"),
            *SECCOMP,
            ("RestrictAddressFamilies=AF_UNIX", "no network: it talks only to systemd and D-Bus"),
        ]
        return head + _lines(user) + "\n"
    wanted = {str(ctx.state_dir), str(ctx.config_dir), *TRUST_OUTPUTS, *(str(w) for w in writes)}
    rw = sorted(p for p in wanted if not any(p.startswith(q.rstrip("/") + "/") for q in wanted))
    entries: list[tuple[str, str]] = [
        (
            "",
            "--- hardening: `systemd-analyze security --offline=true` scores this unit 0.7 ---\n"
            "It writes what install wrote (trust stores, browser policies, the CA, the PAC) as root;\n"
            "everything else is read-only, and it gets no network and no capability.",
        ),
        (
            "CapabilityBoundingSet=",
            "root owns every file it writes, so it needs no capability to override permissions",
        ),
        ("NoNewPrivileges=yes", "no setuid or file capabilities can give it more"),
        ("UMask=0022", "the trust stores and policies it writes are read by every user's browser"),
        ("ProtectSystem=strict", "the whole file system is read-only for it, except:"),
        (
            "ReadWritePaths=" + " ".join("-" + shlex.quote(p) for p in rw),
            "the folders the installation writes ('-': one that does not exist here is skipped)",
        ),
        *_home_entries(ctx),
        ("PrivateTmp=yes", "no temporary files shared with anyone"),
        ("PrivateDevices=yes", "no device access: it needs none"),
        ("PrivateNetwork=yes", "no network at all: renewing the CA and rewriting files needs none"),
        ("IPAddressDeny=any", ""),
        ("PrivateMounts=yes", "mounts stay private to it"),
        ("RemoveIPC=yes", "no System V IPC left behind"),
        ("ProtectKernelTunables=yes", "tunes nothing"),
        ("ProtectKernelModules=yes", "loads no module"),
        ("ProtectKernelLogs=yes", "reads no kernel log"),
        ("ProtectControlGroups=yes", "changes no cgroup"),
        ("ProtectClock=yes", "cannot set the clock"),
        ("ProtectHostname=yes", "cannot change the host name"),
        ("ProtectProc=invisible", "sees no other process"),
        ("ProcSubset=pid", "no kernel information from /proc beyond processes"),
        *SECCOMP,
        (
            "RestrictAddressFamilies=AF_UNIX",
            "only local sockets: `systemctl try-restart` talks to systemd over one",
        ),
        (
            "",
            "No PrivateUsers= (0.2) and no DynamicUser= (0.4): it must write root's trust stores\n"
            "and restart the root service, as root.",
        ),
    ]
    return head + _lines(entries) + "\n"


def unit_dir(ctx: Context) -> PurePath:
    """Where the units go: the system's unit folder, or the user's."""
    if ctx.mode == "system":
        return PurePosixPath("/etc/systemd/system")
    return PurePosixPath(ctx.config_dir.parent) / "systemd" / "user"


class RestartIfChanged(Op):
    """Restart the running service when the CA or its unit changed (it loads both at start)."""

    live_only = True

    def __init__(self, systemctl: list[str], steps: set[str]) -> None:
        self.systemctl, self.steps = systemctl, steps

    def describe(self) -> str:
        return f"run {' '.join(self.systemctl)} try-restart {SERVICE} if the CA or the unit changed"

    def apply(self, tx: Tx) -> None:
        if not tx.ctx.live_commands:
            return
        if tx.changed_steps & self.steps:
            # tell the daemon this stop is ours, so it is not written down as a bypass attempt
            marker = Path(tx.ctx.state_dir) / RESTART_MARKER
            with contextlib.suppress(OSError):
                marker.write_text("installer\n", encoding="utf-8")
            tx.run([*self.systemctl, "try-restart", SERVICE])
            tx.say(f"ran {' '.join(self.systemctl)} try-restart {SERVICE}")


class SystemdService(Step):
    """The service unit and the refresh units; enabled and started on a live system."""

    name = "service"

    def __init__(self, ctx: Context, writes: Sequence[PurePath] = ()) -> None:
        super().__init__(ctx)
        self.writes = writes  # what the other steps write: the refresh service may write only there
        self.title = (
            "systemd system service (starts at boot, restarts always)"
            if ctx.mode == "system"
            else "systemd user service (starts with your session, restarts always)"
        )

    def systemctl(self) -> list[str]:
        return ["systemctl"] if self.ctx.mode == "system" else ["systemctl", "--user"]

    def ops(self) -> list[Op]:
        d = unit_dir(self.ctx)
        sc = self.systemctl()
        units = [SERVICE, REFRESH_PATH]
        text = system_unit(self.ctx) if self.ctx.mode == "system" else user_unit(self.ctx)
        return [
            # on uninstall, after the unit files are gone: let systemd forget them
            Command(None, revert=[*sc, "daemon-reload"], key="cmd:service:daemon-reload", live_only=True),
            Dir(d),
            File(d / SERVICE, text.encode(), 0o644, "the zerocontact daemon"),
            File(d / REFRESH_PATH, refresh_path_unit(self.ctx).encode(), 0o644, "watches the rules file"),
            File(
                d / REFRESH_SERVICE,
                refresh_service_unit(self.ctx, self.writes).encode(),
                0o644,
                "runs install --refresh",
            ),
            Command([*sc, "daemon-reload"], why="load the new units", live_only=True, only_if_changed=True),
            RestartIfChanged(sc, {"ca", "service"}),
            Command(
                [*sc, "enable", "--now", *units],
                revert=[*sc, "disable", "--now", *units],
                key="cmd:service:enable",
                live_only=True,
            ),
        ]

    def notes(self) -> list[str]:
        if self.ctx.mode == "user":
            return ["runs while you are logged in; `--system` runs it for the whole machine from boot"]
        return []
