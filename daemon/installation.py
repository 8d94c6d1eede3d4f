"""The installation on this machine, as ``run`` sees it: read from the installer's own record.

While zerocontact is installed, the commitment in force lives in the installation's state directory
and follows its rules file. A second daemon on another state directory starts from nothing (no
rules in force, no pending loosenings: the cooling-off skipped), and one on another rules file
enforces something the installation never agreed to; either could take the proxy's port while the
service is stopped, and the browsers would follow it. So while an installation exists, ``run`` runs
only on the installation's own state directory and rules file (what its service runs), and the
demo (``--sample``) keeps to a state directory and ports of its own.

The daemon does not import the installer: it reads the few keys it needs from the manifest's JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from zerocontact.rules.errors import UserFacingError

from .paths import MANIFEST, SYSTEM_STATE


class Refused(UserFacingError):
    """``run`` would start a second daemon beside the installed one; the message says what to do."""


def _real(p: Path) -> str:
    return os.path.realpath(p)


@dataclass(frozen=True)
class Installation:
    """One installation's record: its state directory, rules file and ports (``problem`` when the
    record exists but cannot be read: then only its own state directory is known)."""

    record: Path
    mode: str = ""
    os: str = ""
    state_dir: Path | None = None
    rules: Path | None = None
    ports: tuple[int, ...] = ()
    problem: str = ""

    @property
    def home(self) -> Path:
        """The state directory the installation runs on (where its record is)."""
        return self.state_dir or self.record.parent

    def describe(self) -> str:
        if self.problem:
            return f"an installation's record {self.record} cannot be read ({self.problem})"
        return (
            f"an installation (--{self.mode}) runs on state directory {self.state_dir} and rules {self.rules}"
        )

    def start_hint(self) -> str:
        if self.os == "linux":
            return (
                "sudo systemctl start zerocontact"
                if self.mode == "system"
                else "systemctl --user start zerocontact"
            )
        return "start the installed service"


def read(record: Path) -> Installation | None:
    """The installation recorded at ``record``, or None if there is none (no file, uninstalled, or
    staged into another root with ``--root``)."""
    try:
        text = record.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        return Installation(record, problem=e.strerror or type(e).__name__)
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if not data.get("installed") or data.get("root", "/") != "/":
            return None
        state, config = data["state_dir"], data["config_dir"]
        ports = (data["proxy_port"], data["pac_port"])
        if not (
            isinstance(state, str) and isinstance(config, str) and all(isinstance(p, int) for p in ports)
        ):
            raise ValueError("unexpected values")
    except (ValueError, KeyError) as e:
        return Installation(record, problem=f"{type(e).__name__}: {e}")
    return Installation(
        record,
        mode=str(data.get("mode", "")),
        os=str(data.get("os", "")),
        state_dir=Path(state),
        rules=Path(config) / "rules.toml",
        ports=ports,
    )


def candidates(default_state: Path, named_state: Path | None, euid: int) -> list[Path]:
    """Where an installation's record may be: this user's default state directory, the one named
    with ``--state-dir`` (an installation made with ``install --state-dir``), and for root the
    system's. Installations elsewhere are not found (nor does ``install`` find them without the
    same ``--state-dir``)."""
    dirs = [default_state, *([named_state] if named_state is not None else [])]
    if euid == 0:
        dirs.append(SYSTEM_STATE)
    out: list[Path] = []
    seen: set[str] = set()
    for d in dirs:
        if _real(d) not in seen:
            seen.add(_real(d))
            out.append(d / MANIFEST)
    return out


def find(records: Iterable[Path]) -> list[Installation]:
    """The installations recorded at ``records`` (see ``candidates``)."""
    return [i for i in map(read, records) if i is not None]


def check_run(installs: Sequence[Installation], state_dir: Path, rules: Path) -> None:
    """Refuse a daemon that is not the installation's own: another state directory or rules file."""
    if not installs:
        return
    for inst in installs:
        if _real(inst.home) != _real(state_dir):
            continue
        if inst.problem or inst.rules is None or _real(inst.rules) == _real(rules):
            return  # its own state directory (the lock keeps it to one daemon); its rules when known
        raise Refused(
            f"{inst.describe()}; refusing to run that state directory on rules {rules}: "
            f"edit {inst.rules} (loosening waits for the cooling-off), or install with --rules {rules}"
        )
    inst = installs[0]
    raise Refused(
        f"{inst.describe()}; refusing a second daemon on state directory {state_dir}: "
        f"start the installed service ({inst.start_hint()}), or try the demo with --sample"
    )


def check_demo(
    installs: Sequence[Installation], state_dir: Path, ports: Sequence[tuple[str, int, bool]]
) -> set[str]:
    """The demo beside an installation: never in its state directory, never on its ports (were the
    service stopped, the browsers would follow the demo's rules instead of yours).

    ``ports`` are (option, port, given explicitly); an explicit port of the installation's is
    refused. Returns the options whose default port must become 0 (any free port); with a record
    that cannot be read, every default port does."""
    moved: set[str] = set()
    for inst in installs:
        if _real(inst.home) == _real(state_dir):
            raise Refused(
                f"the demo cannot run in {state_dir}: it is the installation's state directory "
                "(leave out --state-dir: the demo keeps its own)"
            )
        for option, port, explicit in ports:
            if port == 0 or (not inst.ports and explicit):
                continue
            if explicit and port in inst.ports:
                raise Refused(
                    f"{option} {port} is the installed service's port; the demo needs another "
                    "(leave it out and the demo takes any free port)"
                )
            if not inst.ports or port in inst.ports:
                moved.add(option)
    return moved
