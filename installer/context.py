"""What an installation is about (mode, OS, root, paths, targets) and how commands are run.

Everything the installer touches is named by its *logical* path (as seen on the installed system,
e.g. ``/etc/chromium/policies/managed/zerocontact.json``) and written at ``Context.at(path)``: the
same path under ``root``. With ``root=/`` that is the live system; with a staging root (``--root``,
and every test) nothing outside it is touched, and commands that can only act on a live system
(``systemctl``, ``launchctl``, …) are listed in the plan but skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath
from typing import Literal, Protocol

from zerocontact.daemon.paths import MANIFEST
from zerocontact.rules.errors import UserFacingError

Mode = Literal["user", "system"]
OS = Literal["linux", "darwin", "windows"]

PROXY_PORT = 8341  # the daemon's default proxy port (zerocontact.daemon.app.DEFAULT_PORT)
PAC_PORT = PROXY_PORT + 1  # the daemon serves the PAC file on the next port
LABEL = "zerocontact"  # service name, certificate nickname, file stem
REVERSE_LABEL = "net.zerocontact.daemon"  # launchd label


class InstallError(UserFacingError):
    """Something the user can fix (not root, no systemd, a command failed): the message says how."""


def host_os() -> OS:
    """The OS this process runs on, in the installer's three names."""
    if sys.platform == "darwin":
        return "darwin"
    if sys.platform.startswith("win"):
        return "windows"
    return "linux"


@dataclass(frozen=True)
class Context:
    """One installation: where, for whom, with which program, blocking which platforms' hosts.

    ``hosts`` are the rules' target host suffixes (``Matcher.target_hosts()``): the CA is constrained
    to them and the PAC sends only them to the proxy.
    """

    mode: Mode
    root: Path
    home: PurePath  # the installing user's home (logical)
    config_dir: PurePath  # where rules.toml lives (logical)
    state_dir: PurePath  # journal, CA, manifest (logical)
    exe: tuple[str, ...]  # how to start `zerocontact` (an absolute script, or python -m …)
    hosts: tuple[str, ...] = ()
    os: OS = "linux"
    uid: int = 0
    proxy_port: int = PROXY_PORT
    pac_port: int = PAC_PORT
    service_paths: tuple[str, ...] = ()  # what the service must be able to read (venv, interpreter)
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    run_live_commands: bool | None = None  # tests with a fake runner: run them on a staging root too

    @property
    def live(self) -> bool:
        """True when installing onto the running system (root is /)."""
        return self.root == Path("/")

    @property
    def live_commands(self) -> bool:
        """Whether commands that act on the running system (systemctl, launchctl, …) are run."""
        return self.live if self.run_live_commands is None else self.run_live_commands

    def at(self, path: PurePath | str) -> Path:
        """Where a logical absolute path really is: under the staging root, or itself.

        A Windows path's drive becomes a folder of the staging root (``C:\\x`` → ``ROOT/C/x``)."""
        p = path if isinstance(path, PurePath) else PurePosixPath(path)
        if not p.is_absolute():
            raise ValueError(f"{path} is not absolute")
        if self.live:
            return Path(p)
        rest = list(p.parts[1:])
        if p.drive:
            rest.insert(0, p.drive.rstrip(":\\/"))
        return self.root.joinpath(*rest)

    @property
    def rules(self) -> PurePath:
        return self.config_dir / "rules.toml"

    @property
    def ca_dir(self) -> PurePath:
        return self.state_dir / "ca"

    @property
    def manifest(self) -> Path:
        return self.at(self.state_dir / MANIFEST)

    @property
    def pac_url(self) -> str:
        return f"http://127.0.0.1:{self.pac_port}/proxy.pac"

    @property
    def proxy(self) -> tuple[str, int]:
        return ("127.0.0.1", self.proxy_port)


@dataclass(frozen=True)
class Completed:
    """What a command did: its argv, exit status and output."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class CommandError(InstallError):
    """A command failed: the message names it, its exit status and its last line of output."""

    def __init__(self, result: Completed) -> None:
        self.result = result
        tail = (result.stderr or result.stdout).strip().splitlines()
        why = f": {tail[-1]}" if tail else ""
        super().__init__(f"`{' '.join(result.argv)}` failed (exit {result.returncode}){why}")


class Runner(Protocol):
    """Runs system commands; tests substitute a fake that records argv and returns canned output."""

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        check: bool = True,
    ) -> Completed: ...


class SubprocessRunner:
    """The real runner: no shell, output captured, a timeout so a stuck tool cannot hang install."""

    def __init__(self, timeout: float = 120) -> None:
        self.timeout = timeout

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        check: bool = True,
    ) -> Completed:
        try:
            p = subprocess.run(
                list(argv),
                env=dict(env) if env is not None else None,
                input=input,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError:
            r = Completed(tuple(argv), 127, "", f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired:
            r = Completed(tuple(argv), 124, "", f"timed out after {self.timeout:g} s")
        else:
            r = Completed(tuple(argv), p.returncode, p.stdout, p.stderr)
        if check and r.returncode != 0:
            raise CommandError(r)
        return r
