"""Every benchmark in one run, on loopback, no network: ``python -m benchmarks [--json] [--quick]``.

Starts the real daemon (``zerocontact run``) and a plain ``mitmdump`` from the same venv as
subprocesses, with a small threaded HTTP origin on 127.0.0.1 standing in for the platform, and
measures them side by side (A, B, A, B …); then runs ``benchmarks.matcher``, ``benchmarks.watcher``,
``benchmarks.journal`` and ``benchmarks.policy`` as subprocesses and folds their JSON in. Prints a
table, or with ``--json`` one JSON object (keys in benchmarks/README.md). Everything stops by
itself; temporary directories are removed. No test asserts these numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import http.server
import json
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

BIN = Path(sys.executable).parent
ZC = str(BIN / "zerocontact")
MITMDUMP = str(BIN / "mitmdump")
HOST = "www.instagram.com"
ALLOWED_URL = f"http://{HOST}/someone.else/"
BLOCKED_PAGE_URL = f"http://{HOST}/sam.example/"
BLOCKED_API_URL = (
    "http://x.com/i/api/graphql/Gb-d6r0vxPOADdG62OEBpQ/UserByScreenName?variables="
    "%7B%22screen_name%22%3A%22samexample%22%7D"
)
RULES = """[settings]
instead = ["Text a friend"]
[[person]]
name = "Sam"
accounts = { instagram = "sam.example", x = "samexample" }
why = "I want to heal."
"""
NON_TARGET_HOSTS = [
    "example.org",
    "www.google.com",
    "news.ycombinator.com",
    "github.com",
    "localhost",
    "127.0.0.1",
    "instagram.com.evil.example",
    "notinstagram.com",
    "myx.com",
    "xcom.net",
    "cdn.example.net",
    "mail.proton.me",
]
TARGET_HOSTS_SAMPLE = ["www.instagram.com", "instagram.com", "x.com", "api.x.com"]
MITM_SCRIPT = """from mitmproxy import http

ORIGIN = ("127.0.0.1", {port})


def request(flow: http.HTTPFlow) -> None:  # the same work as the daemon's RedirectUpstream
    if flow.response is None and flow.request.pretty_host.lower() == "www.instagram.com":
        flow.request.scheme = "http"
        flow.request.host, flow.request.port = ORIGIN
"""


SENT: dict[tuple[str, int], int] = {}  # requests sent through each proxy address


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def r3(x: float) -> float:
    return round(x, 3)


# -- local origins ----------------------------------------------------------------------------------
class _Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the proxies can reuse their upstream connection
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

    def do_GET(self) -> None:
        body = f"origin says hi {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class OriginServer(http.server.ThreadingHTTPServer):
    """The local origins' server: a thread per keep-alive connection, a backlog for 4+ clients."""

    daemon_threads = True
    request_queue_size = 64


@contextlib.contextmanager
def origin(tls: tuple[Path, Path] | None = None) -> Iterator[int]:
    server = OriginServer(("127.0.0.1", 0), _Origin)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*tls)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def self_signed(dirpath: Path) -> tuple[Path, Path]:
    """A certificate for localhost / 127.0.0.1 that only this run knows (not a target host)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "benchmark origin")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
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


# -- the two proxies --------------------------------------------------------------------------------
@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    addr: tuple[str, int]
    info: dict[str, Any]
    startup_s: float

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def _addr(s: str) -> tuple[str, int]:
    h, _, p = s.rpartition(":")
    return h, int(p)


def isolated_env(work: Path) -> dict[str, str]:
    """The environment with HOME and the XDG folders under ``work``, as the tests have: the
    benchmark's daemon neither reads nor writes your own, and an installation of yours there
    (which makes ``run`` refuse other state directories) does not stop it."""
    home = work / "home"
    xdg = {"XDG_CONFIG_HOME": ".config", "XDG_STATE_HOME": ".local/state", "XDG_DATA_HOME": ".local/share"}
    env = {k: v for k, v in os.environ.items() if k != "ZEROCONTACT_STATE_DIR"}
    return {**env, "HOME": str(home), **{k: str(home / v) for k, v in xdg.items()}}


def start_daemon(work: Path, origin_port: int, rules: Path) -> Running:
    state = work / "state"
    runtime = state / "daemon.json"
    # Not beside the rules file: the daemon watches that folder, and a log there woke the watcher's
    # three threads for every line (each blocked attempt: ~0.5 ms more CPU, a quarter of the rate).
    # A service's log goes to its manager (journald), never into the rules' folder.
    log = work / "logs" / "daemon.log"
    log.parent.mkdir(exist_ok=True)
    out = log.open("ab")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            ZC,
            "run",
            "--rules",
            str(rules),
            "--port",
            "0",
            "--pac-port",
            "0",
            "--state-dir",
            str(state),
            "--redirect-upstream",
            f"{HOST}=127.0.0.1:{origin_port}",
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=isolated_env(work),
    )
    out.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the daemon exited {proc.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError, ValueError):
            info = json.loads(runtime.read_text())
            if info.get("pid") == proc.pid:
                return Running(proc, _addr(info["proxy"]), info, time.perf_counter() - t0)
        time.sleep(0.002)
    proc.kill()
    proc.wait()
    raise SystemExit("the daemon did not start within 60 s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_mitmdump(work: Path, origin_port: int) -> Running:
    script = work / "redirect.py"
    script.write_text(MITM_SCRIPT.format(port=origin_port))
    return launch_mitmdump(work, script)


def launch_mitmdump(work: Path, script: Path) -> Running:
    """Plain mitmdump on a free loopback port with the options zerocontact's Proxy sets (so both do
    equal work) and ``script``; ready once it listens and its CA exists (``info["ca"]``)."""
    confdir = work / "mitm-conf"
    confdir.mkdir(exist_ok=True)
    from zerocontact.daemon.proxy import allow_pattern

    for _ in range(5):
        port = free_port()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [
                MITMDUMP,
                "-q",
                "--listen-host",
                "127.0.0.1",
                "--listen-port",
                str(port),
                "--set",
                f"confdir={confdir}",
                "--set",
                "connection_strategy=lazy",
                "--set",
                "http3=false",
                "--set",
                "block_global=true",
                "--set",
                "upstream_cert=false",
                "--allow-hosts",
                allow_pattern("instagram.com"),
                "--allow-hosts",
                allow_pattern("x.com"),
                "-s",
                str(script),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                ca = confdir / "mitmproxy-ca-cert.pem"
                if ca.exists():
                    return Running(proc, ("127.0.0.1", port), {"ca": str(ca)}, time.perf_counter() - t0)
            time.sleep(0.005)
        proc.kill()
        proc.wait()
    raise SystemExit("mitmdump did not start")


# -- a keep-alive load generator --------------------------------------------------------------------
@dataclass
class Load:
    requests: int
    seconds: float
    latencies_ms: list[float]
    statuses: dict[int, int]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def load(
    proxy: tuple[str, int] | None,
    url: str,
    total: int,
    threads: int,
    headers: dict[str, str] | None = None,
    direct: tuple[str, int] | None = None,
) -> Load:
    """``total`` GETs of ``url`` over ``threads`` keep-alive connections, through ``proxy`` or ``direct``."""
    per = total // threads
    lat: list[list[float]] = [[] for _ in range(threads)]
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    start = threading.Barrier(threads + 1)
    path = url if proxy else "/" + url.split("/", 3)[3]
    host, port = proxy or direct or ("", 0)

    def work(i: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        mine: dict[int, int] = {}
        start.wait()
        for _ in range(per):
            t = time.perf_counter()
            conn.request("GET", path, headers=headers or {})
            r = conn.getresponse()
            r.read()
            lat[i].append(1000 * (time.perf_counter() - t))
            mine[r.status] = mine.get(r.status, 0) + 1
            if r.will_close:
                conn.close()
        conn.close()
        with lock:
            for k, v in mine.items():
                statuses[k] = statuses.get(k, 0) + v

    ts = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
    for t in ts:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join(120)
    seconds = time.perf_counter() - t0
    if proxy:
        SENT[proxy] = SENT.get(proxy, 0) + per * threads
    return Load(per * threads, seconds, [x for part in lat for x in part], statuses)


def summarize(runs: list[Load]) -> dict[str, float]:
    """Medians over rounds of each round's requests/s, p50 and p99."""
    return {
        "rps": round(statistics.median(r.rps for r in runs)),
        "p50_ms": r3(statistics.median(statistics.median(r.latencies_ms) for r in runs)),
        "p99_ms": r3(statistics.median(pct(r.latencies_ms, 0.99) for r in runs)),
    }


# -- figures ----------------------------------------------------------------------------------------
def bench_allowed(
    zc: Running, mitm: Running, origin_port: int, total: int, threads: int, single: int, rounds: int
) -> dict[str, Any]:
    """Each round: zerocontact and mitmproxy (order alternating), then direct; ``threads`` keep-alive
    clients for requests/s, then one client alone for the latency one request waits."""
    names = ("zerocontact", "mitmproxy", "direct")
    busy: dict[str, list[Load]] = {k: [] for k in names}
    alone: dict[str, list[Load]] = {k: [] for k in names}
    for r in (zc, mitm):  # warm-up: connections, caches
        load(r.addr, ALLOWED_URL, min(200, total), threads)
    direct = ("127.0.0.1", origin_port)
    for i in range(rounds):
        order = [("zerocontact", zc), ("mitmproxy", mitm)]
        if i % 2:
            order.reverse()  # A B, B A, … so neither always runs on a warmer machine
        for name, r in order:
            for got, into in (
                (load(r.addr, ALLOWED_URL, total, threads), busy),
                (load(r.addr, ALLOWED_URL, single, 1), alone),
            ):
                if got.statuses != {200: got.requests}:
                    raise SystemExit(f"{name}: allowed requests were not passed on: {got.statuses}")
                into[name].append(got)
        busy["direct"].append(load(None, ALLOWED_URL, total, threads, direct=direct))
        alone["direct"].append(load(None, ALLOWED_URL, single, 1, direct=direct))
    out: dict[str, Any] = {}
    for name, prefix in zip(names, ("proxy_allowed", "mitmproxy_allowed", "direct"), strict=True):
        b, a = summarize(busy[name]), summarize(alone[name])
        out[f"{prefix}_rps"] = b["rps"]
        out[f"{prefix}_p50_ms"] = a["p50_ms"]
        out[f"{prefix}_p99_ms"] = a["p99_ms"]
        out[f"{prefix}_concurrent_p50_ms"] = b["p50_ms"]
        out[f"{prefix}_concurrent_p99_ms"] = b["p99_ms"]
    ratios = [a.rps / b.rps for a, b in zip(busy["zerocontact"], busy["mitmproxy"], strict=True)]
    lat = [
        statistics.median(b.latencies_ms) / statistics.median(a.latencies_ms)
        for a, b in zip(alone["zerocontact"], alone["mitmproxy"], strict=True)
    ]
    out["proxy_allowed_ratio_vs_mitmproxy"] = r3(statistics.median(ratios))
    out["proxy_allowed_ratio_vs_mitmproxy_per_round"] = [r3(x) for x in ratios]
    out["proxy_allowed_latency_ratio_vs_mitmproxy"] = r3(statistics.median(lat))
    return out


def bench_blocked(zc: Running, total: int, threads: int, single: int, rounds: int) -> dict[str, Any]:
    """The block page and the API refusal: one client alone (the time a user waits), then
    ``threads`` keep-alive clients (requests/s)."""
    page = (BLOCKED_PAGE_URL, {"Accept": "text/html,application/xhtml+xml"})
    api = (BLOCKED_API_URL, {"Accept": "application/json"})
    load(zc.addr, page[0], min(100, total), threads, page[1])
    runs: dict[str, list[Load]] = {"page": [], "api": [], "page_busy": [], "api_busy": []}
    for _ in range(rounds):
        for kind, (url, headers) in (("page", page), ("api", api)):
            runs[kind].append(load(zc.addr, url, single, 1, headers))
            runs[f"{kind}_busy"].append(load(zc.addr, url, total, threads, headers))
    for got in (g for v in runs.values() for g in v):
        if got.statuses != {403: got.requests}:
            raise SystemExit(f"blocked requests were not refused: {got.statuses}")
    s = {k: summarize(v) for k, v in runs.items()}
    return {
        "blocked_p50_ms": s["page"]["p50_ms"],
        "blocked_p99_ms": s["page"]["p99_ms"],
        "blocked_rps": s["page_busy"]["rps"],
        "blocked_concurrent_p50_ms": s["page_busy"]["p50_ms"],
        "blocked_concurrent_p99_ms": s["page_busy"]["p99_ms"],
        "blocked_api_p50_ms": s["api"]["p50_ms"],
        "blocked_api_p99_ms": s["api"]["p99_ms"],
        "blocked_api_rps": s["api_busy"]["rps"],
        "blocked_api_concurrent_p50_ms": s["api_busy"]["p50_ms"],
        "blocked_api_concurrent_p99_ms": s["api_busy"]["p99_ms"],
    }


def find_proxy_for_url(pac_text: str, host: str) -> str:
    """FindProxyForURL of daemon/pac.py's script, applied in Python (there is no JS engine here)."""
    m = re.search(r"var TARGETS = (\[.*?\]);", pac_text)
    if not m:
        raise SystemExit("the PAC has no TARGETS array: daemon/pac.py changed, update this benchmark")
    proxy = re.search(r"return '(PROXY [^']+)'", pac_text)
    assert proxy is not None
    host = host.lower()
    for t in json.loads(m.group(1)):
        if host == t or host.endswith("." + t):  # dnsDomainIs(host, "." + t)
            return proxy.group(1)
    return "DIRECT"


def bench_non_target(zc: Running, work: Path, total: int, rounds: int) -> dict[str, Any]:
    c = http.client.HTTPConnection(*_addr(zc.info["pac"].split("/")[2]), timeout=10)
    try:
        c.request("GET", "/proxy.pac")
        pac_text = c.getresponse().read().decode()
    finally:
        c.close()
    proxied = [h for h in NON_TARGET_HOSTS if find_proxy_for_url(pac_text, h) != "DIRECT"]
    targets = [h for h in TARGET_HOSTS_SAMPLE if find_proxy_for_url(pac_text, h) != "DIRECT"]
    if len(targets) != len(TARGET_HOSTS_SAMPLE):
        raise SystemExit(f"the PAC does not send the targets to the proxy: {targets}")

    cert, key = self_signed(work)
    origin_der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    ctx = ssl.create_default_context(cafile=str(cert))  # trusts only the origin's own certificate
    untouched = True
    with origin((cert, key)) as port:

        def connection(via_proxy: bool) -> tuple[float, float]:
            """(new connection + TLS + first request, a second request on it) in ms."""
            nonlocal untouched
            t = time.perf_counter()
            if via_proxy:
                c = http.client.HTTPSConnection(*zc.addr, timeout=10, context=ctx)
                c.set_tunnel("127.0.0.1", port)
            else:
                c = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
            c.request("GET", "/x")
            c.getresponse().read()
            first = 1000 * (time.perf_counter() - t)
            assert c.sock is not None
            if c.sock.getpeercert(binary_form=True) != origin_der:
                untouched = False
            t = time.perf_counter()
            c.request("GET", "/y")
            c.getresponse().read()
            again = 1000 * (time.perf_counter() - t)
            c.close()
            return first, again

        per_round = max(1, total // rounds)
        samples: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        for _ in range(rounds):
            for via in (True, False):
                samples[via] += [connection(via) for _ in range(per_round)]

    def med(via: bool, i: int) -> float:
        return r3(statistics.median(s[i] for s in samples[via]))

    return {
        "pac_non_target_hosts": len(NON_TARGET_HOSTS),
        "pac_non_target_proxied": len(proxied),
        "pac_target_hosts_proxied": f"{len(targets)}/{len(TARGET_HOSTS_SAMPLE)}",
        "passthrough_tls_untouched": untouched,
        "passthrough_connect_p50_ms": med(True, 0),
        "direct_tls_connect_p50_ms": med(False, 0),
        "passthrough_connect_overhead_p50_ms": r3(med(True, 0) - med(False, 0)),
        "passthrough_request_p50_ms": med(True, 1),
        "direct_tls_request_p50_ms": med(False, 1),
        "passthrough_request_overhead_p50_ms": r3(med(True, 1) - med(False, 1)),
    }


def bench_reload(zc: Running, rules: Path, saves: int) -> dict[str, Any]:
    conn = http.client.HTTPConnection(*zc.addr, timeout=10)
    times: list[float] = []
    polls = 0
    text = rules.read_text()
    try:
        for i in range(saves):
            handle = f"reload{i}.bench"
            url = f"http://{HOST}/{handle}/"
            text += f'[[person]]\nname = "Reload{i}"\naccounts = {{ instagram = "{handle}" }}\n'
            tmp = rules.with_name(rules.name + ".swp")
            tmp.write_text(text)
            t0 = time.perf_counter()
            os.replace(tmp, rules)  # an editor's atomic save
            while True:
                conn.request("GET", url, headers={"Accept": "text/html"})
                r = conn.getresponse()
                r.read()
                polls += 1
                if r.status == 403:
                    times.append(1000 * (time.perf_counter() - t0))
                    break
                if time.perf_counter() - t0 > 10:
                    raise SystemExit(f"save {i} was not enforced within 10 s")
                time.sleep(0.002)
            time.sleep(0.05)
    finally:
        conn.close()
    return {
        "reload_p50_ms": round(statistics.median(times), 1),
        "reload_p95_ms": round(pct(times, 0.95), 1),
        "reload_max_ms": round(max(times), 1),
        "reload_saves": saves,
        "reload_polls": polls,
    }


def rss_mb(pid: int) -> float:
    return round(float(psutil.Process(pid).memory_info().rss) / 2**20, 1)


def sub_json(module: str, *args: str, timeout: float = 900) -> dict[str, Any]:
    r = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if r.returncode:
        raise SystemExit(f"{module} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(r.stdout)  # type: ignore[no-any-return]


# -- the run ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sizes:
    requests: int  # per round per proxy, with `concurrency` clients (requests/s)
    blocked: int  # per round per kind (page, API), with `concurrency` clients
    single: int  # per round per proxy or kind, one client alone (latency)
    concurrency: int
    rounds: int
    passthrough: int
    reload_saves: int
    journal_attempts: int
    watcher: tuple[str, ...]
    sub: tuple[str, ...] = ()  # extra arguments for benchmarks.traffic and benchmarks.rules_scale


FULL = Sizes(
    requests=1000,
    blocked=1000,
    single=300,
    concurrency=4,
    rounds=8,
    passthrough=64,
    reload_saves=20,
    journal_attempts=100_000,
    watcher=("--launches", "200", "--idle", "500", "--seconds", "10"),
)
QUICK = Sizes(
    40, 40, 20, 2, 2, 4, 2, 2_000, ("--launches", "3", "--idle", "10", "--seconds", "0.3"), ("--quick",)
)


def run(sizes: Sizes, rss_requests: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    inputs: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp(prefix="zc-bench-"))
    try:
        rules = work / "rules.toml"
        rules.write_text(RULES)
        with origin() as origin_port:
            log("starting the daemon (cold: makes its CA), then again (warm)")
            zc = start_daemon(work, origin_port, rules)
            cold = zc.startup_s
            zc.stop()
            zc = start_daemon(work, origin_port, rules)
            try:
                out["startup_cold_s"] = r3(cold)
                out["startup_s"] = r3(zc.startup_s)
                time.sleep(0.5)
                out["rss_mb_after_start"] = rss_mb(zc.proc.pid)
                log("starting mitmdump")
                mitm = start_mitmdump(work, origin_port)
                try:
                    log(f"allowed requests: {sizes.rounds} rounds × {sizes.requests} per proxy")
                    out |= bench_allowed(
                        zc, mitm, origin_port, sizes.requests, sizes.concurrency, sizes.single, sizes.rounds
                    )
                    out["mitmproxy_rss_mb"] = rss_mb(mitm.proc.pid)
                finally:
                    mitm.stop()
                inputs["proxy_allowed"] = {
                    "url": ALLOWED_URL,
                    "requests_per_round": sizes.requests,
                    "rounds": sizes.rounds,
                    "concurrency": sizes.concurrency,
                    "single_client_requests_per_round": sizes.single,
                    "keep_alive": True,
                    "people_in_rules": 1,
                    "mitmproxy_options": "connection_strategy=lazy http3=false block_global=true "
                    "upstream_cert=false allow_hosts=instagram.com,x.com; -s redirect to origin",
                }
                log("blocked requests")
                out |= bench_blocked(zc, sizes.blocked, sizes.concurrency, sizes.single, sizes.rounds)
                inputs["proxy_blocked"] = {
                    "page_url": BLOCKED_PAGE_URL,
                    "api_url": BLOCKED_API_URL,
                    "requests_per_round": sizes.blocked,
                    "rounds": sizes.rounds,
                    "concurrency": sizes.concurrency,
                    "single_client_requests_per_round": sizes.single,
                }
                log("non-target traffic: PAC and TLS pass-through")
                out |= bench_non_target(zc, work, sizes.passthrough, sizes.rounds)
                inputs["non_target"] = {
                    "hosts": NON_TARGET_HOSTS,
                    "connections_per_side": max(1, sizes.passthrough // sizes.rounds) * sizes.rounds,
                }
                if rss_requests > SENT.get(zc.addr, 0):
                    missing = rss_requests - SENT.get(zc.addr, 0)
                    log(f"{missing} more requests before measuring memory (--rss-requests)")
                    for i in range(0, missing, 10_000):  # allowed and blocked, 9 to 1
                        n = min(10_000, missing - i)
                        load(zc.addr, ALLOWED_URL, n - n // 10, sizes.concurrency)
                        load(zc.addr, BLOCKED_PAGE_URL, n // 10, sizes.concurrency, {"Accept": "text/html"})
                out["rss_mb"] = rss_mb(zc.proc.pid)
                out["rss_requests"] = SENT.get(zc.addr, 0)
                log(f"reload: {sizes.reload_saves} saves")
                out |= bench_reload(zc, rules, sizes.reload_saves)
                inputs["reload"] = {"saves": sizes.reload_saves, "poll_interval_ms": 2, "save": "os.replace"}
            finally:
                zc.stop()
        log("matcher")
        m = sub_json("benchmarks.matcher")
        inputs["matcher"] = m.pop("inputs")
        out |= m
        log(f"process watcher: {' '.join(sizes.watcher)}")
        w = sub_json("benchmarks.watcher", *sizes.watcher)
        out |= {k: v for k, v in w.items() if k.startswith("watcher_")}
        inputs["watcher"] = {k: v for k, v in w.items() if not k.startswith("watcher_")}
        log(f"journal: {sizes.journal_attempts} attempts")
        j = sub_json("benchmarks.journal", "--attempts", str(sizes.journal_attempts))
        out |= {
            f"journal_{k}": v for k, v in j.items() if k not in ("python", "cpus", "sqlite", "file_bytes")
        }
        inputs["journal"] = {"attempts": j["attempts"], "sqlite": j["sqlite"], "file_bytes": j["file_bytes"]}
        log("policy: evaluate with 1,000 windows")
        out |= sub_json("benchmarks.policy")
        log("real traffic: Instagram-shaped bodies over HTTP, HTTPS and HTTP/2 beside plain mitmproxy")
        t = sub_json("benchmarks.traffic", *sizes.sub, timeout=3600)
        inputs["traffic"] = t.pop("inputs")
        out |= t
        log("the response prefilter, in process")
        pf = sub_json("benchmarks.prefilter", *sizes.sub)
        inputs["prefilter"] = {"bytes": pf.pop("inputs")}
        out |= pf
        log("rules at 100 / 1,000 / 10,000 people")
        rs = sub_json("benchmarks.rules_scale", *sizes.sub)
        inputs["rules_scale"] = {"people": rs.pop("rules_people")}
        out |= rs
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out["inputs"] = inputs
    out["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    return out


ROWS: list[tuple[str, str, str]] = [
    # (label, keys, goal)
    ("matcher µs/decision, 10 / 10,000 people", "matcher_us_10|matcher_us_10000", ""),
    ("matcher 10k/10 ratio", "matcher_ratio_10k_to_10", "< 1.5"),
    ("allowed req/s, zerocontact / mitmproxy", "proxy_allowed_rps|mitmproxy_allowed_rps", ""),
    ("allowed req/s ratio zerocontact/mitmproxy", "proxy_allowed_ratio_vs_mitmproxy", "≥ 0.95"),
    ("allowed req/s, direct to origin", "direct_rps", ""),
    ("allowed p50 / p99 ms, zerocontact", "proxy_allowed_p50_ms|proxy_allowed_p99_ms", ""),
    ("allowed p50 / p99 ms, mitmproxy", "mitmproxy_allowed_p50_ms|mitmproxy_allowed_p99_ms", ""),
    ("allowed p50 / p99 ms, direct", "direct_p50_ms|direct_p99_ms", ""),
    ("allowed p50 ratio zerocontact/mitmproxy", "proxy_allowed_latency_ratio_vs_mitmproxy", ""),
    ("block page p50 / p99 ms", "blocked_p50_ms|blocked_p99_ms", "p99 < 5"),
    ("block page req/s (p99 ms under load)", "blocked_rps|blocked_concurrent_p99_ms", ""),
    ("API refusal p50 / p99 ms", "blocked_api_p50_ms|blocked_api_p99_ms", ""),
    ("API refusal req/s (p99 ms under load)", "blocked_api_rps|blocked_api_concurrent_p99_ms", ""),
    ("non-target hosts proxied by the PAC", "pac_non_target_proxied|pac_non_target_hosts", "0"),
    ("forced CONNECT: TLS untouched", "passthrough_tls_untouched", "true"),
    ("CONNECT+TLS+GET p50 ms, via / direct", "passthrough_connect_p50_ms|direct_tls_connect_p50_ms", ""),
    ("GET in tunnel p50 ms, via / direct", "passthrough_request_p50_ms|direct_tls_request_p50_ms", ""),
    ("watcher stop p50 / p95 ms", "watcher_stop_p50_ms|watcher_stop_p95_ms", "p95 ≤ 250"),
    ("watcher idle CPU % of one core", "watcher_idle_cpu_percent", "< 1"),
    ("reload save→403 p50 / p95 ms", "reload_p50_ms|reload_p95_ms", "p95 < 1000"),
    ("journal ingest attempts/s", "journal_ingest_per_second", "≥ 20,000"),
    ("journal stats s", "journal_stats_seconds", "< 0.5"),
    (
        "evaluate ms: 1,000 windows / 1,000 people",
        "policy_evaluate_ms_1000_wednesday_windows|policy_evaluate_ms_1000_people_2_windows",
        "< 100",
    ),
    ("daemon start s, warm / cold", "startup_s|startup_cold_s", ""),
    ("daemon RSS MB, start / after load", "rss_mb_after_start|rss_mb", ""),
    ("plain mitmdump RSS MB", "mitmproxy_rss_mb", ""),
    ("real bodies: worst req/s ratio zc/mitmproxy", "traffic_rps_ratio_min", "≥ 0.95"),
    ("real bodies: worst 1-client p50 ratio", "traffic_p50_ratio_max", "≤ 1.1"),
    ("real bodies: worst req per CPU-s ratio", "traffic_cpu_ratio_min", ""),
    ("feed rewrite (200 KB, hers out): req/s ratio", "feed_rewrite_rps_ratio_min", ""),
    (
        "feed rewrite: worst p50 / req per CPU-s ratio",
        "feed_rewrite_p50_ratio_max|feed_rewrite_cpu_ratio_min",
        "",
    ),
    ("prefilter ms: 200 KB / 2 MB body", "prefilter_ms_json200k|prefilter_ms_json2m", ""),
    ("decode+walk ms (before): 200 KB / 2 MB", "decode_walk_ms_json200k|decode_walk_ms_json2m", ""),
    ("mention 200 KB ms: whole / around it", "whole_ms_mention200k|around_ms_mention200k", ""),
    (
        "block vs 10-line addon req/s ratio h1/tls/h2",
        "blocked_vs_addon_http_rps_ratio|blocked_vs_addon_https_rps_ratio|blocked_vs_addon_h2_rps_ratio",
        "≥ 0.9",
    ),
    (
        "block vs 10-line addon p99 ratio h1/tls/h2",
        "blocked_vs_addon_http_p99_ratio|blocked_vs_addon_https_p99_ratio|blocked_vs_addon_h2_p99_ratio",
        "≤ 1.5",
    ),
    ("new-attempt block p99 ms: idle / +procs", "blocked_lookup_p99_ms|blocked_lookup_loaded_p99_ms", ""),
    ("RSS MB after mixed requests zc / mitm", "rss_mixed_mb|mitmproxy_rss_mixed_mb", ""),
    ("RSS ratio zc/mitmproxy (mixed)", "rss_mixed_ratio", "≤ 1.3"),
    ("rules check / daemon start s, most people", "rules_check_s_max|daemon_start_s_max", "< 1"),
    ("mitmdump start s / daemon's extra, most", "mitmdump_start_s|daemon_start_over_mitmdump_s_max", ""),
    ("rules load per-person cost ratio 10k/1k", "rules_load_per_person_ratio", "≈ 1"),
]


def table(out: dict[str, Any]) -> str:
    lines = [f"{'figure':<42} {'value':>22}  goal", "-" * 76]
    for label, keys, goal in ROWS:
        value = " / ".join(str(out.get(k, "—")) for k in keys.split("|"))
        lines.append(f"{label:<42} {value:>22}  {goal}")
    m = out["machine"]
    lines.append("-" * 76)
    lines.append(
        f"{m['cpus']} CPUs, Python {m['python']}, load {m['load_average_1min']}, {m['date']}; "
        f"daemon RSS measured after {out.get('rss_requests')} requests"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (seconds): checks that it runs")
    ap.add_argument(
        "--rss-requests",
        type=int,
        default=0,
        metavar="N",
        help="before measuring the daemon's memory, top its request count up to N (e.g. 100000)",
    )
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    out = run(QUICK if args.quick else FULL, args.rss_requests)
    out["inputs"]["total_seconds"] = round(time.monotonic() - t0, 1)
    print(json.dumps(out) if args.json else table(out))
    return out


if __name__ == "__main__":
    main()
