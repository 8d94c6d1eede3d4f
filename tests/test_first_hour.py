"""A newcomer's first hour, for real: a fresh ``git clone`` in a scratch HOME, the README's two
commands, then the README's install, whose service must not depend on the clone.

These set up real virtual environments, so pip fetches packages from the package index (the one
place this machine's network reaches), as ``./dev`` does on any fresh machine; pip's cache lives in
pytest's cache folder, so a second run is quick. No request goes anywhere else.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from zctest.support import need_tool

ROOT = Path(__file__).resolve().parent.parent
SETUP_TIMEOUT = 1200  # a first setup downloads and installs every dependency

pytestmark = pytest.mark.install


@dataclass
class Scratch:
    clone: Path
    home: Path
    tmp: Path
    env: dict[str, str]


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def zerocontact_files(home: Path) -> list[str]:
    """What zerocontact left in a HOME: anything named for it (its XDG state, config and data
    folders) and any NSS database (trust it would add). Other tools may write there (a rustup shim
    on PATH writes ~/.rustup), which is no concern of this test."""
    return sorted(
        str(p.relative_to(home))
        for p in home.rglob("*")
        if "zerocontact" in p.name.lower() or p.name == ".pki"
    )


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Scratch]:
    """A fresh clone of this commit and an empty HOME; the environment a new user's shell has."""
    git = need_tool("git")
    base = tmp_path_factory.mktemp("first-hour")
    home, tmp, clone = base / "home", base / "tmp", base / "clone"
    home.mkdir()
    tmp.mkdir()
    head = subprocess.run(
        [git, "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run([git, "clone", "--quiet", "--no-checkout", str(ROOT), str(clone)], check=True)
    subprocess.run([git, "-C", str(clone), "checkout", "--quiet", head], check=True)
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    pip_cache = cache.mkdir("first-hour-pip") if cache else base / "pip"
    env = {
        # what a login shell has: no XDG variables (the defaults under HOME apply), no venv
        "HOME": str(home),
        "PATH": os.pathsep.join(
            p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) if ".venv" not in p
        ),
        "LANG": "C.UTF-8",
        "TMPDIR": str(tmp),
        "PIP_CACHE_DIR": str(pip_cache),
        **{k: v for k, v in os.environ.items() if k.startswith(("PIP_", "PYENV")) and k != "PIP_CACHE_DIR"},
    }
    yield Scratch(clone, home, tmp, env)


class Lines:
    """A process's output, read on a thread so the test can wait for a line with a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.seen: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        assert proc.stdout is not None
        out = proc.stdout

        def pump() -> None:
            for line in out:
                self._q.put(line)
            self._q.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def until(self, text: str, timeout: float) -> str:
        while True:
            try:
                line = self._q.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {text!r} within {timeout}s:\n{''.join(self.seen)}") from None
            if line is None:
                raise AssertionError(f"ended before {text!r}:\n{''.join(self.seen)}")
            self.seen.append(line)
            if text in line:
                return "".join(self.seen)

    def rest(self, timeout: float) -> str:
        while (line := self._q.get(timeout=timeout)) is not None:
            self.seen.append(line)
        return "".join(self.seen)


def test_the_readme_commands_on_a_fresh_clone_leave_the_real_state_untouched(scratch: Scratch) -> None:
    readme = (scratch.clone / "README.md").read_text()
    first_screen = "\n".join(readme.splitlines()[:20])
    assert "./dev run" in first_screen and "./dev test" in first_screen
    # `./dev run` as the README says (any free port, so a daemon already on 8341 cannot clash)
    proc = subprocess.Popen(
        ["./dev", "run", "--port", "0", "--pac-port", "0"],
        cwd=scratch.clone,
        env=scratch.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = Lines(proc)
    try:
        shown = out.until("zerocontact is running", SETUP_TIMEOUT)
    except BaseException:
        proc.kill()
        raise
    demo = Path(re.search(r"--state-dir (\S+)", shown)[1])  # type: ignore[index]
    assert demo.parent == scratch.tmp and demo.is_dir() and (demo / "journal.sqlite3").exists()
    if shutil.which("zerocontact", path=scratch.env["PATH"]) is None:
        assert "not on your PATH" in shown and "pipx install ." in shown
    assert "no cooling-off" in shown
    proc.send_signal(signal.SIGINT)  # Ctrl-C, as the README says
    assert proc.wait(60) == 0
    said = out.rest(10)
    assert "Traceback" not in said and f"deleted {demo}" in said
    assert not demo.exists() and files_under(scratch.tmp) == set()
    # nothing of zerocontact in the scratch HOME: no state, no config, no data, no cache
    assert zerocontact_files(scratch.home) == []

    # `./dev test`, limited to one module: lint, format and type checks run on the whole clone
    r = subprocess.run(
        ["./dev", "test", "tests/test_layout.py", "-q", "-p", "no:cacheprovider"],
        cwd=scratch.clone,
        env=scratch.env,
        capture_output=True,
        text=True,
        timeout=SETUP_TIMEOUT,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "passed" in r.stdout and "Success: no issues found" in r.stdout
    assert zerocontact_files(scratch.home) == []


def readme_install_lines(readme: str) -> list[str]:
    """The shell lines of the README's 'install by hand' block, as a reader would copy them."""
    block = readme.split("<!-- install-by-hand", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_the_readme_install_puts_zerocontact_on_path_and_the_service_outlives_the_clone(
    scratch: Scratch,
) -> None:
    lines = readme_install_lines((scratch.clone / "README.md").read_text())
    assert any("pip install ." in line for line in lines)
    for line in lines:
        r = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", line],
            cwd=scratch.clone,
            env=scratch.env,
            capture_output=True,
            text=True,
            timeout=SETUP_TIMEOUT,
        )
        assert r.returncode == 0, f"{line}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    bin_dir = scratch.home / ".local/bin"
    env = {**scratch.env, "PATH": f"{bin_dir}{os.pathsep}{scratch.env['PATH']}"}
    zc = shutil.which("zerocontact", path=env["PATH"])
    assert zc == str(bin_dir / "zerocontact")
    r = subprocess.run(["zerocontact", "--version"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and re.fullmatch(r"zerocontact, version \S+\n", r.stdout), r.stdout + r.stderr

    # the wheel that `pip install .` built is complete: code, presets, templates, typing marker
    app = scratch.home / ".local/share/zerocontact-app"
    wheels = scratch.tmp / "wheels"
    r = subprocess.run(
        [str(app / "bin/pip"), "wheel", "--no-deps", "-q", "-w", str(wheels), "."],
        cwd=scratch.clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=SETUP_TIMEOUT,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = wheels.glob("zerocontact-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "zerocontact/daemon/cli/__init__.py",
        "zerocontact/daemon/templates/block.html",
        "zerocontact/daemon/templates/report.html",
        "zerocontact/rules/platforms/instagram.toml",
        "zerocontact/rules/apps.toml",
        "zerocontact/installer/py.typed",
    ):
        assert needed in names, needed
    shutil.rmtree(wheels)

    # the service, installed into a staging root from the installed command, starts that command
    work = scratch.tmp / "work"
    work.mkdir()
    staging = work / "root"
    staging.mkdir()
    rules = work / "my-rules.toml"
    for args in (
        ["rules", "init", str(rules)],
        ["rules", "check", str(rules)],
        ["install", "--user", "--rules", str(rules), "--root", str(staging)],
    ):
        r = subprocess.run(["zerocontact", *args], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"{args}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
        assert "source folder" not in r.stdout  # an installed package, not a clone
    unit = (staging / str(scratch.home).lstrip("/") / ".config/systemd/user/zerocontact.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    program = exec_start.removeprefix("ExecStart=").split()[0].strip("'")
    assert program == str(app / "bin" / "zerocontact"), exec_start
    assert str(scratch.clone) not in unit
    # the clone goes away; the installed command and the service's program still work
    gone = scratch.clone.with_name("clone-deleted")
    scratch.clone.rename(gone)
    try:
        for argv in (["zerocontact", "--version"], [program, "rules", "check", str(rules)]):
            r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, f"{argv}: {r.stderr[-2000:]}"
    finally:
        gone.rename(scratch.clone)
