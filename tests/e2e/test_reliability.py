"""Odd inputs and faults a real machine produces, survived by the real daemon (issue 15).

Every request stays on loopback: allowed traffic is redirected to the local origin.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from zctest.e2e import RULES, ZC, Daemon, Origin, curl, journal_rows, start_daemon
from zctest.support import fill, mounted, need_tool, wait_for

pytestmark = pytest.mark.e2e
BLOCKED = 'data-zerocontact="blocked"'


def status(d: Daemon) -> dict[str, Any]:
    r = subprocess.run([ZC, "status", "--json", "--state-dir", str(d.state)], capture_output=True, text=True)
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def status_text(d: Daemon) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ZC, "status", "--state-dir", str(d.state)], capture_output=True, text=True)


@pytest.fixture
def dotted(tmp_path: Path, origin: Origin) -> Iterator[Daemon]:
    """The daemon, with allowed requests for Instagram and for evil.example sent to the local origin
    (so a request that wrongly passes is seen arriving there, not sent anywhere)."""
    local = f"127.0.0.1:{origin.port}"
    d = start_daemon(
        tmp_path,
        extra=(
            "--redirect-upstream",
            f"www.instagram.com={local}",
            "--redirect-upstream",
            f"evil.example={local}",
        ),
    )
    yield d
    d.stop()


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_a_trailing_dot_is_the_same_host(dotted: Daemon, scheme: str) -> None:
    for host in ("www.instagram.com.", "WWW.Instagram.COM."):
        r = curl(dotted, "-w", "\n%{http_code}", f"{scheme}://{host}/sam.example/")
        assert r.returncode == 0, r.stderr
        assert r.stdout.endswith("\n403") and BLOCKED in r.stdout, r.stdout[-300:]
    # decrypted and judged, not refused: someone else's profile still passes on
    r = curl(dotted, f"{scheme}://www.instagram.com./someone.else/")
    assert r.stdout == "origin says hi /someone.else/", r.stderr


def test_an_ipv6_loopback_daemon_writes_a_pac_browsers_can_read(tmp_path: Path) -> None:
    d = start_daemon(tmp_path, extra=("--host", "::1"))
    try:
        assert d.proxy.startswith("[::1]:") and d.pac.startswith("http://[::1]:"), (d.proxy, d.pac)
        r = subprocess.run([need_tool("curl"), "-sS", d.pac], capture_output=True, text=True, timeout=10)
        assert f"return 'PROXY {d.proxy}';" in r.stdout, r.stdout + r.stderr
        r = curl(d, "-i", "https://www.instagram.com/sam.example/")  # through "[::1]:port", as the PAC says
        assert BLOCKED in r.stdout, r.stderr
    finally:
        d.stop()


@pytest.mark.parametrize("version", ["--http1.1", "--http2"])
def test_a_forged_host_header_is_judged_as_the_tunnels_host(dotted: Daemon, version: str) -> None:
    """Inside a tunnel to www.instagram.com, ``Host: evil.example`` (HTTP/2: ``:authority``) still
    reaches Instagram's connection, so the request is judged as Instagram's too."""
    r = curl(
        dotted,
        version,
        "-H",
        "Host: evil.example",
        "-w",
        "\n%{http_code} %{http_version}",
        "https://www.instagram.com/sam.example/",
    )
    assert r.returncode == 0, r.stderr
    assert BLOCKED in r.stdout, r.stdout[-300:]
    assert r.stdout.endswith("403 " + ("2" if version == "--http2" else "1.1")), r.stdout[-100:]
    # an allowed page with a forged Host still passes on (to the local origin standing in)
    r = curl(dotted, version, "-H", "Host: evil.example", "https://www.instagram.com/someone.else/")
    assert r.stdout == "origin says hi /someone.else/", r.stderr


def test_a_forged_host_header_on_plain_http_is_judged_as_the_url_host(dotted: Daemon) -> None:
    r = curl(
        dotted, "-H", "Host: evil.example", "-w", "\n%{http_code}", "http://www.instagram.com/sam.example/"
    )
    assert r.stdout.endswith("\n403") and BLOCKED in r.stdout, r.stdout[-300:]


@pytest.mark.parametrize("bad", ["fifo", "dev-zero"])
def test_a_fifo_or_dev_zero_renamed_over_the_rules_is_reported_and_hot_reload_lives_on(
    tmp_path: Path, bad: str
) -> None:
    d = start_daemon(tmp_path)
    try:
        staged = tmp_path / "staged"
        if bad == "fifo":
            os.mkfifo(staged)
        else:
            staged.symlink_to("/dev/zero")
        os.replace(staged, d.rules)
        kind = "a FIFO (named pipe)" if bad == "fifo" else "a character device"
        reload = wait_for(
            lambda: (r := status(d)["last_reload"]) and not r["ok"] and r, 10, "the bad file to be reported"
        )
        assert f"is {kind}: zerocontact reads its rules only from a regular file" in reload["detail"]
        assert "kept the last good rules" in reload["detail"]
        assert "Last reload:  FAILED: kept the last good rules" in status_text(d).stdout
        # a real edit afterwards (a tightening: applies at once) still reaches the daemon
        staged.unlink(missing_ok=True)
        staged.write_text(RULES + '[[person]]\nname = "Alex"\naccounts = { x = "alexexample" }\n')
        os.replace(staged, d.rules)
        wait_for(lambda: len(status(d)["people"]) == 2, 10, "the edit to be applied")
        assert status(d)["last_reload"]["ok"] is True
        assert "Traceback" not in d.output()
    finally:
        d.stop()


def test_a_forever_duration_saved_while_running_is_refused_and_the_block_holds(
    tmp_path: Path, origin: Origin
) -> None:
    d = start_daemon(tmp_path, extra=("--redirect-upstream", f"www.instagram.com=127.0.0.1:{origin.port}"))
    try:
        d.rules.write_text(RULES + 'for = "9999999d"\n')
        reload = wait_for(
            lambda: (r := status(d)["last_reload"]) and not r["ok"] and r, 10, "the edit to be refused"
        )
        assert "person \"Sam\", for: '9999999d' is longer than 100 years" in reload["detail"]
        assert BLOCKED in curl(d, "https://www.instagram.com/sam.example/").stdout
        assert status(d)["problems"] == [] and "Traceback" not in d.output()
    finally:
        d.stop()


@pytest.mark.parametrize(
    "how", [("--http1.1",), ("--http2",), ("--http1.1", "-H", "Transfer-Encoding: chunked")], ids=str
)
def test_a_huge_note_is_refused_and_never_parsed(
    dotted: Daemon, tmp_path: Path, how: tuple[str, ...]
) -> None:
    """A form of 250,000 fields (1 MB) to the block page's note endpoint: refused with 413 before it
    is parsed (parsing 40 MB of fields held the proxy's loop for ~20 s), never forwarded, no note."""
    body = tmp_path / "note.txt"
    body.write_bytes(b"attempt=abc&note=hi" + b"&a=b" * 250_000)
    r = curl(
        dotted,
        *how,
        "-w",
        "\n%{http_code}",
        "--data-binary",
        f"@{body}",
        "https://www.instagram.com/.zerocontact/note",
    )
    assert r.stdout.endswith("\n413") and "too long" in r.stdout, r.stdout[-200:] + r.stderr
    # the proxy carries on
    assert BLOCKED in curl(dotted, "https://www.instagram.com/sam.example/").stdout


# -- a full disk, a read-only state directory ------------------------------------------------------
def run_once(state: Path, rules: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``zerocontact run`` that is expected to exit by itself (a start that fails)."""
    return subprocess.run(
        [ZC, "run", "--rules", str(rules), "--port", "0", "--pac-port", "0", "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def started_once(state: Path, rules: Path) -> None:
    """Start the daemon on ``state`` until it is up, then stop it: an existing state directory."""
    proc = subprocess.Popen(
        [ZC, "run", "--rules", str(rules), "--port", "0", "--pac-port", "0", "--state-dir", str(state)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: (state / "daemon.json").exists(), 30, "the daemon to start")
    finally:
        proc.terminate()
        assert proc.wait(20) == 0


@pytest.mark.parametrize("existing", [False, True], ids=["new-state", "existing-state"])
def test_a_start_on_a_full_disk_is_one_clear_line(tmp_path: Path, existing: bool) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    with mounted("-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(disk)):
        state = disk / "state"
        if existing:
            started_once(state, rules)
        fill(disk)
        r = run_once(state, rules)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.splitlines() == [
        f"zerocontact: cannot start with state directory {state}: No space left on device (free some space)"
    ], r.stderr


@pytest.mark.parametrize("existing", [False, True], ids=["new-state", "existing-state"])
def test_a_start_on_a_read_only_state_directory_is_one_clear_line(tmp_path: Path, existing: bool) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    if existing:
        started_once(state, rules)
    with mounted("--bind", str(state), str(state)) as again:
        again("-o", "remount,bind,ro")
        r = run_once(state, rules)
    assert r.returncode == 1, r.stdout + r.stderr
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"zerocontact: cannot start with state directory {state}: ")
    assert line.endswith("Read-only file system"), line


def test_a_disk_that_fills_while_running_is_reported_and_nothing_is_lost(
    tmp_path: Path, origin: Origin
) -> None:
    """The journal cannot write, nor the status: ``status`` and ``doctor`` must not say all is well,
    the 30 s reconcile must not raise, and once there is room every attempt is in the journal."""
    disk = tmp_path / "disk"
    disk.mkdir()
    with mounted("-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(disk)):
        d = start_daemon(
            disk, extra=("--redirect-upstream", f"www.instagram.com=127.0.0.1:{origin.port}"), name="full"
        )
        try:
            assert status_text(d).returncode == 0
            filler = fill(disk)
            for url in ["https://www.instagram.com/sam.example/"] * 3 + ["https://x.com/samexample"] * 2:
                assert BLOCKED in curl(d, url).stdout  # blocking goes on
            # said within a second or two (the daemon watches its journal), never "Journal: ok"
            r = wait_for(lambda: (r := status_text(d)).returncode == 1 and r, 20, "status to report it")
            assert "Journal:      ok" not in r.stdout, r.stdout
            assert "disk is full" in r.stdout or "cannot publish its status" in r.stdout, r.stdout
            doctor = json.loads(
                subprocess.run(
                    [ZC, "doctor", "--state-dir", str(d.state), "--json"], capture_output=True, text=True
                ).stdout
            )
            bad = {c["name"] for c in doctor["checks"] if c["status"] != "ok"}
            assert bad & {"status", "journal", "daemon"}, doctor["checks"]
            # a reconcile now (SIGHUP re-reads the rules, then reconciles) must not raise
            d.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "SIGHUP: reloading" in d.output(), 10, "the reload")
            filler.unlink()
            r = wait_for(lambda: (r := status_text(d)).returncode == 0 and r, 30, "the journal to recover")
            assert "Journal:      ok" in r.stdout and "Problem:" not in r.stdout

            def web() -> list[Any]:  # (the process watcher may log other programs on this machine)
                return [x for x in journal_rows(d) if x["channel"] == "web"]

            rows = wait_for(
                lambda: (rows := web()) and sum(x["requests"] for x in rows) == 5 and rows,
                20,
                "every attempt in the journal",
            )
            # five page loads with curl are five looks: each its own attempt, none lost
            assert sorted(x["platform"] for x in rows) == ["instagram"] * 3 + ["x"] * 2
        finally:
            assert d.stop() == 0
        out = d.output()
        assert "Traceback" not in out and "raised an exception" not in out, out


def test_the_ca_command_on_a_read_only_state_directory_is_one_clear_line(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    with mounted("--bind", str(state), str(state)) as again:
        again("-o", "remount,bind,ro")
        r = subprocess.run([ZC, "ca", "--state-dir", str(state)], capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"zerocontact: cannot create the CA in {state / 'ca'}: ") and "Read-only" in line
