"""Where zerocontact keeps things: XDG directories in user mode, FHS ones in system mode.

Every command resolves paths here, so ``run``, ``log`` and ``ca`` always agree; ``--state-dir``
overrides the state directory on every command. ``Paths`` names every state file, and
``write_private`` is how each one is written: atomically, readable only by its owner.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP = "zerocontact"

# State file names, relative to the state directory. The installer uses the same names (through
# ``Paths``) for an installation it has not started yet.
JOURNAL = "journal.sqlite3"
CA_DIR = "ca"
LOCK = "daemon.lock"
RUNTIME = "daemon.json"
STATUS = "status.json"
CLOCK = "clock.json"
IN_FORCE = "in-force.toml"
PENDING = "pending.json"
STARTED = "started.json"
UNINSTALL_REQUEST = "uninstall-requested.json"  # a loosening like any other: it waits (commitment)
START_ROOM = 16 * 1024  # what a start must be able to write: lock, daemon.json, status, clock
DEVICES = "devices.json"  # WireGuard keys of the person's phones and tablets (0600)
WIREGUARD = "wireguard.json"  # what the running daemon serves to devices (for doctor), removed at stop
DEVICES_DIR = "devices"  # each device's client config and its QR code (0600: they hold its key)
RESTART_MARKER = "restart-requested"  # written by `install --refresh`, removed by the daemon as it stops
MANIFEST = "install.json"  # written by `zerocontact install`: what it changed (installer/ops.py)
SYSTEM_CONFIG_DIR = Path("/etc/zerocontact")
SYSTEM_STATE_DIR = Path("/var/lib/zerocontact")
SYSTEM_CONFIG = SYSTEM_CONFIG_DIR  # the names daemon/installation.py uses
SYSTEM_STATE = SYSTEM_STATE_DIR


def write_private(path: Path, text: str) -> None:
    """Atomically replace ``path`` with ``text``, readable only by its owner.

    On failure (a full disk, a read-only state directory) the ``OSError`` is raised and the
    half-written temporary file is removed, so a full disk is not left fuller."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def os_problem(e: OSError) -> str:
    """One line for a failed file operation: the file, the system's words, and what to do."""
    where = f"{e.filename}: " if e.filename else ""
    hint = {
        errno.ENOSPC: "free some space",
        errno.EDQUOT: "free some space",
        errno.EACCES: "check who owns the state directory",
        errno.EPERM: "check who owns the state directory",
    }.get(e.errno or 0)
    return f"{where}{e.strerror or e}" + (
        f" ({hint})" if hint and e.strerror and hint not in e.strerror else ""
    )


@dataclass(frozen=True, slots=True)
class Paths:
    config_dir: Path
    state_dir: Path

    @property
    def rules(self) -> Path:
        return self.config_dir / "rules.toml"

    @property
    def journal(self) -> Path:
        return self.state_dir / JOURNAL

    @property
    def ca_dir(self) -> Path:
        return self.state_dir / CA_DIR

    @property
    def ca_cert(self) -> Path:
        return self.ca_dir / "mitmproxy-ca-cert.pem"

    @property
    def lock(self) -> Path:
        return self.state_dir / LOCK

    @property
    def runtime(self) -> Path:
        """What the running daemon publishes about itself (ports, PID) for the other commands."""
        return self.state_dir / RUNTIME

    @property
    def status(self) -> Path:
        """What the running daemon enforces (``status.Status``), for ``status`` and ``doctor``."""
        return self.state_dir / STATUS

    @property
    def clock(self) -> Path:
        return self.state_dir / CLOCK

    @property
    def in_force(self) -> Path:
        """The rules in force (pending loosenings still enforced), as TOML."""
        return self.state_dir / IN_FORCE

    @property
    def pending(self) -> Path:
        return self.state_dir / PENDING

    @property
    def started(self) -> Path:
        """When each block took effect (``for = "90d"`` counts from there)."""
        return self.state_dir / STARTED

    @property
    def uninstall_request(self) -> Path:
        return self.state_dir / UNINSTALL_REQUEST

    @property
    def devices(self) -> Path:
        return self.state_dir / DEVICES

    @property
    def wireguard(self) -> Path:
        return self.state_dir / WIREGUARD

    @property
    def devices_dir(self) -> Path:
        return self.state_dir / DEVICES_DIR

    @property
    def restart_marker(self) -> Path:
        return self.state_dir / RESTART_MARKER

    def ensure_state(self) -> None:
        """Create the state directory private to its owner (0700), tightening it if it exists.

        The mode is changed only when it differs: a chmod is a write, and on a read-only file
        system it fails even when there is nothing to change."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if stat.S_IMODE(self.state_dir.stat().st_mode) != 0o700:
            os.chmod(self.state_dir, 0o700)

    def check_room(self, size: int = START_ROOM) -> None:
        """Raise ``OSError`` unless ``size`` bytes can be written in the state directory now (a
        full disk, a read-only directory), so a start fails before any part has begun."""
        probe = self.state_dir / ".write-test"
        write_private(probe, "\0" * size)
        probe.unlink()


def system_mode() -> bool:
    euid = os.geteuid() if hasattr(os, "geteuid") else -1  # Windows has no euid: never system here
    return euid == 0 and os.environ.get("ZEROCONTACT_MODE", "") == "system"


def system_paths() -> Paths:
    """Where a system installation (``install --system``) keeps its rules and state."""
    return Paths(config_dir=SYSTEM_CONFIG_DIR, state_dir=SYSTEM_STATE_DIR)


def user_paths() -> Paths:
    """This user's XDG folders (``install --user``, ``zerocontact run``)."""
    return Paths(
        config_dir=Path(platformdirs.user_config_dir(APP, appauthor=False)),
        state_dir=Path(platformdirs.user_state_dir(APP, appauthor=False)),
    )


def resolve(state_dir: str | Path | None = None, config_dir: str | Path | None = None) -> Paths:
    default = system_paths() if system_mode() else user_paths()
    cfg, state = default.config_dir, default.state_dir
    env_state = os.environ.get("ZEROCONTACT_STATE_DIR")
    return Paths(
        config_dir=Path(config_dir) if config_dir else cfg,
        state_dir=Path(state_dir) if state_dir else Path(env_state) if env_state else state,
    )
