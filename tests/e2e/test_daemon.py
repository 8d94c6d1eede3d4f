"""The real daemon as a subprocess, driven with curl over loopback; no network anywhere."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from zctest.e2e import ZC, Daemon, Origin, curl, daemon_with_origin, journal_rows, start_daemon
from zctest.support import need_tool, wait_for


@pytest.mark.e2e
def test_blocks_profile_and_story_over_http_and_https(daemon: Daemon) -> None:
    r = curl(daemon, "-i", "http://www.instagram.com/sam.example/")
    assert "403" in r.stdout.splitlines()[0] and 'data-zerocontact="blocked"' in r.stdout
    r = curl(daemon, "-i", "https://www.instagram.com/stories/sam.example/3312345678901234567/")
    assert r.returncode == 0, r.stderr
    assert 'data-zerocontact="blocked"' in r.stdout and "Instagram stories" in r.stdout
    assert "Sam" not in r.stdout.split("<main>")[1].split("In your own words")[0]  # no name by default
    # the note form on the page, and a private, attempt-specific key for it
    assert 'name="attempt"' in r.stdout and 'action="/.zerocontact/note"' in r.stdout


@pytest.mark.e2e
def test_graphql_call_gets_an_api_refusal(daemon: Daemon) -> None:
    url = (
        "https://x.com/i/api/graphql/Gb-d6r0vxPOADdG62OEBpQ/UserByScreenName?variables="
        "%7B%22screen_name%22%3A%22samexample%22%7D"
    )
    r = curl(daemon, "-H", "Accept: application/json", "-w", "\n%{http_code} %{content_type}", url)
    body, _, meta = r.stdout.rpartition("\n")
    assert meta.startswith("403 application/json"), r.stdout + r.stderr
    doc = json.loads(body)
    assert doc["zerocontact"] == "blocked" and doc["data"] is None


@pytest.mark.e2e
def test_non_target_url_on_the_same_platform_is_passed_on(daemon: Daemon, origin: Origin) -> None:
    r = curl(daemon, "https://www.instagram.com/someone.else/")
    assert r.stdout == "origin says hi /someone.else/", r.stderr
    r = curl(daemon, "http://www.instagram.com/explore/")
    assert r.stdout == "origin says hi /explore/"


@pytest.mark.e2e
def test_non_target_https_host_keeps_its_own_certificate(daemon: Daemon, tls_origin: Origin) -> None:
    assert tls_origin.cert is not None
    url = f"https://localhost:{tls_origin.port}/hello"
    r = subprocess.run(
        [
            need_tool("curl"),
            "-sS",
            "-x",
            f"http://{daemon.proxy}",
            "--cacert",
            str(tls_origin.cert),
            "-w",
            "\n%{certs}",
            "--write-out",
            "",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("origin says hi /hello")
    # with only zerocontact's CA trusted, the same request fails: the certificate is the origin's own
    r2 = curl(daemon, url)
    assert r2.returncode == 60, r2.stderr


@pytest.mark.e2e
def test_listens_on_loopback_only_and_serves_pac(daemon: Daemon) -> None:
    listening = [
        c
        for c in psutil.Process(daemon.proc.pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert len(listening) >= 2
    assert all(c.laddr.ip in ("127.0.0.1", "::1") for c in listening), listening
    r = subprocess.run([need_tool("curl"), "-sS", daemon.pac], capture_output=True, text=True, timeout=10)
    assert "FindProxyForURL" in r.stdout and '"instagram.com"' in r.stdout and daemon.proxy in r.stdout
    assert "return 'DIRECT'" in r.stdout


@pytest.mark.e2e
def test_every_attempt_on_one_connection_names_its_process(daemon: Daemon) -> None:
    """The client process is looked up once per connection (a reload storm on a keep-alive
    connection would otherwise queue a socket scan per reload), and each attempt still names it."""
    host, port = daemon.proxy.rsplit(":", 1)
    nav = (
        b"GET http://www.instagram.com/sam.example/ HTTP/1.1\r\n"
        b"Host: www.instagram.com\r\nAccept: text/html\r\n\r\n"
    )
    with socket.create_connection((host, int(port))) as s:
        for n in (1, 2, 3):  # three navigations: three attempts
            s.sendall(nav)
            got = b""
            while b"</html>" not in got.lower():
                chunk = s.recv(65536)
                assert chunk, got[:200]
                got += chunk
            assert got.startswith(b"HTTP/1.1 403")
            wait_for(lambda n=n: len(journal_rows(daemon)) == n, 10, f"attempt {n} to be written")
        wait_for(
            lambda: all(r["process"] for r in journal_rows(daemon)), 10, "every attempt to name its process"
        )
    assert {r["process"] for r in journal_rows(daemon)} == {journal_rows(daemon)[0]["process"]}
    assert f"({os.getpid()})" in journal_rows(daemon)[0]["process"]


@pytest.mark.e2e
def test_attempts_are_journalled_once_per_burst_with_note(daemon: Daemon) -> None:
    # this test process is the client of the first request, and keeps its connection open
    host, port = daemon.proxy.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as s:
        s.sendall(b"GET http://www.instagram.com/sam.example/ HTTP/1.1\r\nHost: www.instagram.com\r\n\r\n")
        assert b"403" in s.recv(200)
        wait_for(lambda: journal_rows(daemon), 10, "the attempt to be written")
        wait_for(lambda: journal_rows(daemon)[0]["process"], 10, "the client process to be found")
    # four sub-requests of the same look (they name the page as their referrer) fold into it
    curl(
        daemon,
        "-H",
        "Referer: https://www.instagram.com/sam.example/",
        *["https://www.instagram.com/sam.example/"] * 4,
    )
    wait_for(lambda: journal_rows(daemon)[0]["requests"] == 5, 10, "the burst to be folded in")
    assert len(journal_rows(daemon)) == 1
    row = journal_rows(daemon)[0]
    assert (row["person"], row["platform"], row["surface"], row["channel"]) == (
        "Sam",
        "instagram",
        "profile",
        "web",
    )
    assert row["path"] == "/sam.example/" and row["host"] == "www.instagram.com"
    assert f"({os.getpid()})" in row["process"]
    r = curl(
        daemon,
        "-d",
        f"attempt={row['key']}&note=saw+a+photo+of+us",
        "https://www.instagram.com/.zerocontact/note",
    )
    assert 'data-zerocontact="noted"' in r.stdout
    wait_for(lambda: journal_rows(daemon)[0]["note"] == "saw a photo of us", 10, "the note")
    out = subprocess.run(
        [ZC, "log", "--json", "--state-dir", str(daemon.state)], capture_output=True, text=True
    )
    (entry,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert entry["note"] == "saw a photo of us" and entry["person"] == "Sam" and entry["surface"] == "profile"
    mode = (daemon.state / "journal.sqlite3").stat().st_mode & 0o777
    assert mode == 0o600 and (daemon.state.stat().st_mode & 0o777) == 0o700
    assert (daemon.state / "ca" / "mitmproxy-ca.pem").stat().st_mode & 0o777 == 0o600


@pytest.mark.e2e
def test_second_instance_is_refused(daemon: Daemon, tmp_path: Path) -> None:
    r = subprocess.run(
        [
            ZC,
            "run",
            "--rules",
            str(daemon.rules),
            "--port",
            "0",
            "--pac-port",
            "0",
            "--state-dir",
            str(daemon.state),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 1 and "already running" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.e2e
def test_sigterm_and_sigint_stop_within_two_seconds(tmp_path: Path) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        d = start_daemon(tmp_path, name=str(int(sig)))
        # an idle client connection (to the proxy, to the PAC server) must not hold the shutdown up
        host, port = d.proxy.rsplit(":", 1)
        s = socket.create_connection((host, int(port)))
        pac_host, _, pac_port = d.pac.split("/")[2].rpartition(":")
        idle_pac = socket.create_connection((pac_host, int(pac_port)))
        t0 = time.monotonic()
        rc = d.stop(sig, timeout=5)
        s.close()
        idle_pac.close()
        assert time.monotonic() - t0 < 2.0
        assert rc == 0, d.output()
        assert not (d.state / "daemon.json").exists()


@pytest.mark.e2e
def test_bad_rules_refused_at_start_with_the_check_message(tmp_path: Path) -> None:
    rules = tmp_path / "bad.toml"
    rules.write_text('[[person]]\nname = "Sam"\naccounts = { instgram = "sam" }\n')
    r = subprocess.run(
        [ZC, "run", "--rules", str(rules), "--port", "0", "--state-dir", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 1
    assert (
        f"{rules}:3:14: person \"Sam\", accounts.instgram: unknown platform; did you mean 'instagram'?"
        in r.stderr
    )


@pytest.mark.e2e
def test_non_loopback_listen_address_refused(tmp_path: Path) -> None:
    r = subprocess.run(
        [ZC, "run", "--sample", "--host", "0.0.0.0", "--state-dir", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 1 and "refusing to listen on 0.0.0.0" in r.stderr


@pytest.mark.e2e
def test_tells_systemd_ready(tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(20)
    d = start_daemon(tmp_path, env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "1000000"})
    try:
        got = []
        while not any(m.startswith("WATCHDOG=1") for m in got):
            got.append(sock.recv(4096).decode())
        assert any(m.startswith("READY=1") for m in got)
    finally:
        d.stop()
        sock.close()


@pytest.mark.e2e
def test_sigkill_mid_burst_keeps_every_committed_attempt(tmp_path: Path) -> None:
    people = "\n".join(
        f'[[person]]\nname = "p{i}"\naccounts = {{ instagram = "user{i}" }}' for i in range(300)
    )
    d = start_daemon(tmp_path, rules=people)
    proxy = d.proxy
    procs = [
        subprocess.Popen(
            [
                need_tool("curl"),
                "-s",
                "-o",
                "/dev/null",
                "-x",
                f"http://{proxy}",
                *[f"http://www.instagram.com/user{i}/" for i in range(k, 300, 4)],
            ]
        )
        for k in range(4)
    ]

    def committed() -> int:
        import re

        nums = [int(n) for n in re.findall(r"up to #(\d+)", d.output())]
        return max(nums) if nums else 0

    wait_for(lambda: committed() >= 20, 30, "some attempts to be committed")
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(5)
    for p in procs:
        p.kill()
        p.wait()
    reported = committed()
    con = sqlite3.connect(d.state / "journal.sqlite3")
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        ids = {r[0] for r in con.execute("SELECT id FROM attempts")}
    finally:
        con.close()
    assert set(range(1, reported + 1)) <= ids
    # it restarts on the same journal and appends
    (tmp_path / "state-again").symlink_to(d.state)
    d2 = start_daemon(tmp_path, rules=people, name="again")
    try:
        subprocess.run(
            [need_tool("curl"), "-s", "-x", f"http://{d2.proxy}", "http://www.instagram.com/user7/"],
            capture_output=True,
            timeout=10,
        )
        wait_for(lambda: "up to #" in d2.output(), 10, "the restarted daemon to append")
    finally:
        d2.stop()
    # nothing was lost or written twice by the restart: the rows from before are exactly as they were
    con = sqlite3.connect(d.state / "journal.sqlite3")
    try:
        again = {r[0]: r[1] for r in con.execute("SELECT id, key FROM attempts WHERE id <= ?", (max(ids),))}
        web = con.execute(
            "SELECT count(*), count(DISTINCT key) FROM attempts WHERE channel = 'web'"
        ).fetchone()
    finally:
        con.close()
    assert set(again) == ids and web[0] == web[1] == len(ids) + 1


@pytest.mark.e2e
def test_an_h2c_upgrade_never_reaches_the_origin(tmp_path: Path) -> None:
    """The daemon runs mitmproxy without the addons it never uses (``proxy.UNUSED_ADDONS``), but
    keeps the ones that guard the proxy: an HTTP/1.1 request asking to switch to cleartext HTTP/2
    is passed on without the upgrade (mitmproxy's DisableH2C), so the connection stays one the
    blocker can read."""

    seen: list[dict[str, str]] = []
    with daemon_with_origin(tmp_path, lambda path: (b"origin says hi", {}), seen) as d:
        r = curl(d, "--http2", "http://www.instagram.com/explore/")
        assert r.stdout == "origin says hi", r.stderr
        assert len(seen) == 1
        assert "upgrade" not in seen[0] and "http2-settings" not in seen[0], seen[0]
        blocked = curl(
            d, "--http2", "-o", "/dev/null", "-w", "%{http_code}", "http://www.instagram.com/sam.example/"
        )
        assert blocked.stdout == "403" and len(seen) == 1
