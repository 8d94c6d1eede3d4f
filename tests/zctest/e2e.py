"""Start the real daemon as a subprocess, with local origins standing in for the platforms."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import json
import os
import signal
import sqlite3
import ssl
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from zctest.cdp import CDP
from zctest.support import chromium_args, need_tool, wait_for

RULES = """
[settings]
instead = ["Text a friend"]
[[person]]
name = "Sam"
accounts = { instagram = "sam.example", x = "samexample" }
why = "I want to heal."
"""
ZC = str(Path(sys.executable).with_name("zerocontact"))


class _Origin(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"origin says hi {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Origin:
    port: int
    server: http.server.ThreadingHTTPServer
    cert: Path | None = None


def _serve(server: http.server.ThreadingHTTPServer) -> None:
    threading.Thread(target=server.serve_forever, daemon=True).start()


@pytest.fixture
def origin() -> Iterator[Origin]:
    """A plain-HTTP origin on loopback: 'passed on' requests land here."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    _serve(server)
    yield Origin(server.server_address[1], server)
    server.shutdown()


def self_signed(dirpath: Path, name: str = "localhost") -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "test origin"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "test origin org"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cp, kp = dirpath / "origin.pem", dirpath / "origin.key"
    cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kp.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cp, kp


@pytest.fixture
def tls_origin(tmp_path: Path) -> Iterator[Origin]:
    """An HTTPS origin for 'localhost' with its own self-signed certificate (not a target)."""
    cp, kp = self_signed(tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cp, kp)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    _serve(server)
    yield Origin(server.server_address[1], server, cp)
    server.shutdown()


@dataclass
class Daemon:
    proc: subprocess.Popen[str]
    state: Path
    rules: Path
    proxy: str = ""
    pac: str = ""
    ca: Path = field(default_factory=Path)
    log: Path = field(default_factory=Path)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_daemon(
    tmp_path: Path,
    rules: str = RULES,
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    name: str = "d",
    state_dir: Path | None = None,
    rules_file: Path | None = None,
) -> Daemon:
    """The daemon on ``state_dir`` (default ``tmp_path/state-NAME``) with ``rules`` written beside
    it, or on ``rules_file`` as it is (an installation's own: beside an installation ``run`` takes
    no other)."""
    state = state_dir or tmp_path / f"state-{name}"
    if rules_file is None:
        rules_file = tmp_path / f"rules-{name}.toml"
        rules_file.write_text(rules)
    log = tmp_path / f"daemon-{name}.log"
    proc = subprocess.Popen(
        [
            ZC,
            "run",
            "--rules",
            str(rules_file),
            "--port",
            "0",
            "--pac-port",
            "0",
            "--state-dir",
            str(state),
            "--verbose",
            *extra,
        ],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    d = Daemon(proc, state, rules_file, log=log)
    runtime = state / "daemon.json"

    def ready() -> dict[str, str] | None:
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited {proc.returncode}:\n{d.output()}")
        try:
            info = json.loads(runtime.read_text())
        except (OSError, ValueError):
            return None
        # a daemon killed earlier may have left its file behind: wait for this one's
        return info if info.get("pid") == proc.pid else None  # type: ignore[no-any-return]

    info = wait_for(ready, 30, "the daemon to start")
    d.proxy, d.pac, d.ca = info["proxy"], info["pac"], Path(info["ca"])
    return d


@pytest.fixture
def daemon(tmp_path: Path, origin: Origin) -> Iterator[Daemon]:
    d = start_daemon(tmp_path, extra=("--redirect-upstream", f"www.instagram.com=127.0.0.1:{origin.port}"))
    yield d
    d.stop()


def nss_home(tmp_path: Path, ca: Path) -> Path:
    """A HOME whose NSS database trusts the daemon's CA, as `zerocontact install` will arrange."""
    home = tmp_path / "browser-home"
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    certutil = need_tool("certutil")
    subprocess.run([certutil, "-d", f"sql:{db}", "-N", "--empty-password"], check=True)
    subprocess.run(
        [certutil, "-d", f"sql:{db}", "-A", "-t", "C,,", "-n", "zerocontact", "-i", str(ca)], check=True
    )
    return home


def chromium(tmp_path: Path, home: Path, *args: str) -> list[str]:
    return chromium_args(tmp_path / "profile", "--disable-quic", "--window-size=390,844", *args)


@contextlib.contextmanager
def open_browser(tmp_path: Path, daemon: Daemon) -> Iterator[CDP]:
    """Headless Chromium through the daemon's proxy, trusting its CA, driven over CDP."""
    home = nss_home(tmp_path, daemon.ca)
    proc = subprocess.Popen(
        chromium(
            tmp_path,
            home,
            f"--proxy-server=http://{daemon.proxy}",
            "--remote-debugging-port=0",
            "about:blank",
        ),
        env={**os.environ, "HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port_file = tmp_path / "profile" / "DevToolsActivePort"
    port = wait_for(lambda: port_file.exists() and port_file.read_text().split("\n")[0], 30, "devtools")
    targets = wait_for(
        lambda: [
            t
            for t in json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5))
            if t["type"] == "page"
        ],
        30,
        "a page target",
    )
    cdp = CDP(targets[0]["webSocketDebuggerUrl"])
    try:
        yield cdp
    finally:
        cdp.close()
        proc.kill()
        proc.wait()


def curl(d: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            need_tool("curl"),
            "-sS",
            "--max-time",
            "10",
            "-x",
            f"http://{d.proxy}",
            "--cacert",
            str(d.ca),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )


def journal_rows(d: Daemon) -> list[sqlite3.Row]:
    con = sqlite3.connect(f"file:{d.state / 'journal.sqlite3'}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return con.execute("SELECT * FROM attempts ORDER BY id").fetchall()
    finally:
        con.close()


@contextlib.contextmanager
def daemon_with_origin(
    tmp_path: Path,
    answer: Callable[[str], tuple[bytes, dict[str, str]]],
    seen: list[dict[str, str]] | None = None,
) -> Iterator[Daemon]:
    """A daemon whose allowed www.instagram.com requests go to a local origin that answers each
    path with ``answer(path)``: (body, headers). ``seen`` gets each request's headers the origin
    received (lower-case names)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if seen is not None:
                seen.append({k.lower(): v for k, v in self.headers.items()})
            body, headers = answer(self.path)
            self.send_response(200)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    _serve(server)
    port = server.server_address[1]
    d = start_daemon(tmp_path, extra=("--redirect-upstream", f"www.instagram.com=127.0.0.1:{port}"))
    try:
        yield d
    finally:
        d.stop()
        server.shutdown()
