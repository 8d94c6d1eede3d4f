"""Helpers for the installer tests: staging roots, tree snapshots, a fake command runner, the CLI."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from zctest.support import need_tool
from zerocontact.installer.context import Completed

ZC = str(Path(sys.executable).with_name("zerocontact"))
RULES = """
[[person]]
name = "Sam"
accounts = { instagram = "sam.example", x = "samexample" }
why = "I want to heal."
"""


def zc(
    *args: str, env: Mapping[str, str] | None = None, check: bool | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``zerocontact`` script; never a traceback, whatever the exit status."""
    r = subprocess.run(
        [ZC, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120
    )
    assert "Traceback" not in r.stderr, r.stderr
    if check is True:
        assert r.returncode == 0, f"{args}: {r.stdout}\n{r.stderr}"
    return r


def tree(root: Path) -> dict[str, tuple[str, int, str]]:
    """Every path under ``root`` with its type, mode and content hash (or link target)."""
    out: dict[str, tuple[str, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", 0, os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir", st.st_mode & 0o7777, "")
            else:
                out[rel] = ("file", st.st_mode & 0o7777, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


@pytest.fixture
def staging(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    return root


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    p = tmp_path / "my-rules.toml"
    p.write_text(RULES)
    return p


def debian_layout(root: Path, path: str | None = None) -> None:
    """A staging root with a working Debian trust store holding one ordinary CA (built with the
    ``update-ca-certificates`` found on ``path``, as install will find it)."""
    tool = shutil.which("update-ca-certificates", path=path) if path else need_tool("update-ca-certificates")
    assert tool is not None
    src = Path("/usr/share/ca-certificates/mozilla")
    certs = sorted(src.glob("*.crt"))[:1] if src.is_dir() else []
    (root / "usr/share/ca-certificates/test").mkdir(parents=True)
    (root / "etc/ssl/certs").mkdir(parents=True)
    if certs:
        (root / "usr/share/ca-certificates/test" / certs[0].name).write_bytes(certs[0].read_bytes())
        (root / "etc/ca-certificates.conf").write_text(f"test/{certs[0].name}\n")
    else:
        (root / "etc/ca-certificates.conf").write_text("")
    # the long options every version has (Debian 12's stock tool has no --sysroot)
    subprocess.run(
        [
            tool,
            *("--certsconf", str(root / "etc/ca-certificates.conf")),
            *("--certsdir", str(root / "usr/share/ca-certificates")),
            *("--localcertsdir", str(root / "usr/local/share/ca-certificates")),
            *("--etccertsdir", str(root / "etc/ssl/certs")),
            *("--hooksdir", str(root / "etc/ca-certificates/update.d")),
        ],
        check=True,
        capture_output=True,
    )
    assert (root / "etc/ssl/certs/ca-certificates.crt").exists()


def stock_debian12_tool(folder: Path) -> Path:
    """A folder holding update-ca-certificates as Debian 12 shipped it (20230311+deb12u1): this
    machine's own script without the ``--sysroot`` option added in later releases, which the stock
    one answers, like any unknown option, with its usage line and exit 0."""
    real = Path(need_tool("update-ca-certificates")).read_text()
    lines, out, skipping = real.splitlines(keepends=True), [], False
    for line in lines:
        if line.strip() == "--sysroot)":
            skipping = True
        if not skipping:
            out.append(line)
        elif line.rstrip().endswith(";;"):
            skipping = False
    folder.mkdir(parents=True, exist_ok=True)
    tool = folder / "update-ca-certificates"
    tool.write_text("".join(out))
    tool.chmod(0o755)
    probe = subprocess.run(
        [str(tool), "--sysroot", "/nonexistent"], capture_output=True, text=True, check=True
    )
    assert "[--verbose] [--fresh]" in probe.stdout  # it behaves like the stock tool
    return folder


def usage_only_tool(folder: Path) -> Path:
    """An update-ca-certificates that understands nothing: usage line, exit 0, nothing changed."""
    folder.mkdir(parents=True, exist_ok=True)
    tool = folder / "update-ca-certificates"
    tool.write_text('#!/bin/sh\necho "$0: [--verbose] [--fresh]"\nexit 0\n')
    tool.chmod(0o755)
    return folder


class FakeRunner:
    """Records every command; answers from a table of (argv prefix → stdout, returncode)."""

    def __init__(self, answers: Mapping[tuple[str, ...], tuple[str, int]] | None = None) -> None:
        self.answers = dict(answers or {})
        self.calls: list[list[str]] = []

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        check: bool = True,
    ) -> Completed:
        self.calls.append(list(argv))
        best: tuple[str, int] = ("", 0)
        best_len = -1
        for prefix, answer in self.answers.items():
            if tuple(argv[: len(prefix)]) == prefix and len(prefix) > best_len:
                best, best_len = answer, len(prefix)
        r = Completed(tuple(argv), best[1], best[0], "")
        if check and r.returncode:
            from zerocontact.installer.context import CommandError

            raise CommandError(r)
        return r


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def said() -> tuple[list[str], Any]:
    lines: list[str] = []
    return lines, lines.append
