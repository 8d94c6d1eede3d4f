"""Where zerocontact keeps things: XDG directories in user mode, FHS ones in system mode.

Every command resolves paths here, so ``run``, ``log`` and ``ca`` always agree; ``--state-dir``
overrides the state directory on every command.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP = "zerocontact"


@dataclass(frozen=True, slots=True)
class Paths:
    config_dir: Path
    state_dir: Path

    @property
    def rules(self) -> Path:
        return self.config_dir / "rules.toml"

    @property
    def journal(self) -> Path:
        return self.state_dir / "journal.sqlite3"

    @property
    def ca_dir(self) -> Path:
        return self.state_dir / "ca"

    @property
    def ca_cert(self) -> Path:
        return self.ca_dir / "mitmproxy-ca-cert.pem"

    @property
    def lock(self) -> Path:
        return self.state_dir / "daemon.lock"

    @property
    def runtime(self) -> Path:
        """What the running daemon publishes about itself (ports, PID) for the other commands."""
        return self.state_dir / "daemon.json"

    def ensure_state(self) -> None:
        """Create the state directory private to its owner (0700), tightening it if it exists."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.state_dir, 0o700)


def system_mode() -> bool:
    return os.geteuid() == 0 and os.environ.get("ZEROCONTACT_MODE", "") == "system"


def resolve(state_dir: str | Path | None = None, config_dir: str | Path | None = None) -> Paths:
    if system_mode():
        cfg, state = Path("/etc/zerocontact"), Path("/var/lib/zerocontact")
    else:
        cfg = Path(platformdirs.user_config_dir(APP, appauthor=False))
        state = Path(platformdirs.user_state_dir(APP, appauthor=False))
    env_state = os.environ.get("ZEROCONTACT_STATE_DIR")
    return Paths(
        config_dir=Path(config_dir) if config_dir else cfg,
        state_dir=Path(state_dir) if state_dir else Path(env_state) if env_state else state,
    )
