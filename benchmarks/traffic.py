"""Real traffic, real cost: zerocontact beside plain mitmproxy on the responses platforms really send.

``python -m benchmarks.traffic [--quick]`` prints one JSON object (keys in benchmarks/README.md).
An origin *process* (so it does not share this process's GIL with the clients) answers on 127.0.0.1
with Instagram-shaped bodies from ``benchmarks.bodies``: 2 KB, 20 KB, 200 KB and 2 MB JSON, a
~500 KB HTML page with JSON script islands, and three bodies that do mention the target (a feed with
her comment: learning; a post whose caption tags her: the owner check; a home feed with her posts:
the feed surface takes them out and re-serialises it). The real daemon and a plain
``mitmdump`` with the same options run side by side; mitmdump's script does the same redirect and
answers ``/sam.example/`` with the daemon's own block page bytes (the ten-line "answer it yourself"
ceiling). Every figure is taken over plain HTTP, HTTPS (decrypted, through CONNECT) and HTTP/2, in
rounds that alternate which proxy goes first; ratios are medians of per-round ratios. Then blocked
requests that each start a new attempt (so each runs the client-process lookup) with and without 500
idle processes, and RSS after a mix of requests including the large bodies, against mitmdump's.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import itertools
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil

from benchmarks import bodies
from benchmarks.__main__ import OriginServer, Running, launch_mitmdump, pct, r3, rss_mb, start_daemon
from benchmarks.clients import make

HOST = "www.instagram.com"
BLOCKED_PATH = "/sam.example/"
PAGE_HEADERS = {"Accept": "text/html,application/xhtml+xml"}
PROTOCOLS = ("http", "https", "h2")
LOOKUP_PEOPLE = 3000  # x-only people: each blocked request for a new one is a new attempt (and lookup)


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    requests: int  # per round and proxy, over the concurrent clients
    single: int  # per round and proxy, one client alone
    rewritten: bool = False  # the daemon takes the target's entries out: it answers with fewer bytes


CASES = (
    Case("json2k", "/api/v1/media/3312345678901234567/comments/?b=2k", 400, 150),
    Case("json20k", "/api/v1/feed/timeline/?b=20k", 400, 150),
    Case("json200k", "/api/v1/feed/timeline/?b=200k", 160, 60),
    Case("json2m", "/api/v1/feed/timeline/?b=2m", 64, 24),
    # compressed, as platforms send JSON to a browser that accepts it: the proxy passes the bytes
    # on as they came, but zerocontact must decompress them to search them
    Case("json200k_br", "/api/v1/feed/timeline/?b=200k&e=br", 160, 60),
    Case("json2m_gzip", "/api/v1/feed/timeline/?b=2m&e=gzip", 64, 24),
    Case("html500k", "/explore/?b=html", 80, 40),
    Case("mention_feed200k", "/api/v1/feed/reels_tray/?b=m200k", 160, 60),
    Case("mention_post20k", "/p/Other1234/?__a=1", 400, 150),
    Case("mention_feed200k_br", "/api/v1/feed/reels_tray/?b=m200k&e=br", 160, 60),
    # the feed surface: a home feed with three of her posts and one comment of hers (taken out, the
    # body re-serialised), beside json200k (the same feed shape without her: one byte search)
    Case("feed_theirs200k", "/api/v1/feed/timeline/?b=t200k", 160, 60, rewritten=True),
)
RULES = """[settings]
instead = ["Text a friend"]
[[person]]
name = "Sam"
accounts = { instagram = "sam.example", x = "samexample" }
why = "I want to heal."
"""
MITM_SCRIPT = """import json

from mitmproxy import http

ORIGIN = ("127.0.0.1", {port})
PAGE, HEADERS = open({page!r}, "rb").read(), json.load(open({headers!r}))  # the daemon's block page


def request(flow: http.HTTPFlow) -> None:  # the daemon's RedirectUpstream, plus "answer it yourself"
    if flow.response is None and flow.request.pretty_host.lower() == "www.instagram.com":
        if flow.request.path.startswith("/sam.example/"):
            flow.response = http.Response.make(403, PAGE, HEADERS)
            return
        flow.request.scheme = "http"
        flow.request.host, flow.request.port = ORIGIN
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] traffic: {msg}", file=sys.stderr, flush=True)


# -- the origin, in its own process ------------------------------------------------------------------
# A compressed case's body comes in this many variants, served in turn: real responses differ, and
# mitmproxy keeps the last body it decompressed (``net.encoding``'s one-entry cache), which one body
# sent again and again would hit every time
VARIANTS = 16


def _variants(body: bytes, compress: Callable[[bytes], bytes]) -> list[bytes]:
    """``VARIANTS`` compressed bodies, each with a different first key (``{"v":N,``), valid JSON."""
    return [compress(body.replace(b"{", b'{"v":%d,' % i, 1)) for i in range(VARIANTS)]


def origin_bodies() -> dict[str, tuple[list[bytes], str, str]]:
    """Each case's path: its bodies as sent (compressed where the case says, then in ``VARIANTS``
    variants), content type and encoding."""
    import gzip

    import brotli  # mitmproxy's own dependency (its content decoding), present wherever it is

    json_ct, html_ct = "application/json; charset=utf-8", "text/html; charset=utf-8"
    feed200k, feed2m = bodies.feed(200_000), bodies.feed(2_000_000)
    mention200k = bodies.feed(200_000, seed=5, commenter_at=5)

    # gzip's default level and a middling brotli quality, what servers commonly use on the fly
    def br(b: bytes) -> bytes:
        return bytes(brotli.compress(b, quality=5))

    def gz(b: bytes) -> bytes:
        return gzip.compress(b, 6, mtime=0)

    made = {
        "json2k": ([bodies.small(2048)], json_ct, ""),
        "json20k": ([bodies.feed(20_000)], json_ct, ""),
        "json200k": ([feed200k], json_ct, ""),
        "json2m": ([feed2m], json_ct, ""),
        "json200k_br": (_variants(feed200k, br), json_ct, "br"),
        "json2m_gzip": (_variants(feed2m, gz), json_ct, "gzip"),
        "html500k": ([bodies.html_page(500_000)], html_ct, ""),
        "mention_feed200k": ([mention200k], json_ct, ""),
        "mention_post20k": ([bodies.feed(20_000, seed=6, mention_at=0)], json_ct, ""),
        "mention_feed200k_br": (_variants(mention200k, br), json_ct, "br"),
        "feed_theirs200k": (
            [bodies.feed(200_000, seed=9, commenter_at=7, owned_at=(3, 11, 20))],
            json_ct,
            "",
        ),
    }
    return {c.path: made[c.name] for c in CASES}


def serve_origin() -> None:
    """``--serve-origin``: print the port, then answer until stdin closes."""
    pages = origin_bodies()
    turn = itertools.count()  # next() on it is atomic under the GIL: the handler threads share it

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            if self.path == "/__sizes":
                body, ctype, enc = (
                    json.dumps({p: sorted({len(b) for b in bs}) for p, (bs, _, _) in pages.items()}).encode(),
                    "application/json",
                    "",
                )
            else:
                variants, ctype, enc = pages.get(self.path, ([b"not here"], "text/plain", ""))
                body = variants[next(turn) % len(variants)]
            self.send_response(200 if self.path in pages or self.path == "/__sizes" else 404)
            self.send_header("Content-Type", ctype)
            if enc:
                self.send_header("Content-Encoding", enc)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = OriginServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # the parent closes it (or exits): stop


@contextlib.contextmanager
def origin() -> Iterator[tuple[int, dict[str, list[int]]]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.traffic", "--serve-origin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        import http.client

        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", "/__sizes")
        sizes = json.loads(c.getresponse().read())
        c.close()
        yield port, sizes
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_mitm(work: Path, origin_port: int, page: bytes, headers: dict[str, str]) -> Running:
    (work / "page.html").write_bytes(page)
    (work / "page-headers.json").write_text(json.dumps(headers))
    script = work / "answer.py"
    script.write_text(
        MITM_SCRIPT.format(
            port=origin_port, page=str(work / "page.html"), headers=str(work / "page-headers.json")
        )
    )
    return launch_mitmdump(work, script)


# -- load ---------------------------------------------------------------------------------------------
@dataclass
class Load:
    requests: int
    seconds: float
    latencies_ms: list[float]
    statuses: dict[int, int]
    received: int
    sizes: set[int]  # of each body received

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def load(
    proto: str,
    r: Running,
    paths: list[str] | str,
    total: int,
    threads: int,
    headers: dict[str, str] | None = None,
    host: str = HOST,
) -> Load:
    """``total`` GETs over ``threads`` keep-alive connections (set up before the clock starts)."""
    per = max(1, total // threads)
    seq = [paths] * per if isinstance(paths, str) else paths
    lat: list[list[float]] = [[] for _ in range(threads)]
    statuses: dict[int, int] = {}
    received = [0] * threads
    sizes: set[int] = set()
    lock = threading.Lock()
    start = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            client = make(proto, r.addr, r.info["ca"], host)
        except BaseException as e:
            errors.append(e)
            start.abort()
            return
        mine: dict[int, int] = {}
        try:
            start.wait()
            for k in range(per):
                path = seq[(i * per + k) % len(seq)]
                t = time.perf_counter()
                status, n = client.get(host, path, headers or {})
                lat[i].append(1000 * (time.perf_counter() - t))
                received[i] += n
                sizes.add(n)  # set.add is atomic under the GIL
                mine[status] = mine.get(status, 0) + 1
        except BaseException as e:
            errors.append(e)
        finally:
            client.close()
        with lock:
            for k2, v in mine.items():
                statuses[k2] = statuses.get(k2, 0) + v

    ts = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
    for t in ts:
        t.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        start.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join(300)
    seconds = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"{proto} load failed: {errors[0]!r}")
    return Load(per * threads, seconds, [x for part in lat for x in part], statuses, sum(received), sizes)


def _check(got: Load, status: int, size: int | frozenset[int] | None, what: str) -> None:
    """Every answer had ``status``, and each body one of the sizes sent (``size``: one, or the
    variants'), so none was cut short or changed in length on the way."""
    if got.statuses != {status: got.requests}:
        raise SystemExit(f"{what}: expected {status} for all, got {got.statuses}")
    allowed = {size} if isinstance(size, int) else size
    if allowed is not None and not got.sizes <= allowed:
        raise SystemExit(f"{what}: bodies were not passed on whole ({sorted(got.sizes - allowed)} received)")


def compare(
    zc: Running,
    mitm: Running,
    proto: str,
    path: str,
    total: int,
    single: int,
    rounds: int,
    threads: int,
    status: int,
    size: int | frozenset[int] | dict[str, int | frozenset[int]] | None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """zerocontact beside mitmproxy, order alternating per round: busy requests/s, one client's p50/p99."""
    busy: dict[str, list[Load]] = {"zc": [], "mitm": []}
    alone: dict[str, list[Load]] = {"zc": [], "mitm": []}
    cpu: dict[str, list[float]] = {"zc": [], "mitm": []}  # proxy process CPU ms per request, busy runs
    for r in (zc, mitm):  # warm-up: TLS session, upstream connections, caches
        load(proto, r, path, max(threads, total // 8), threads, headers)
    for i in range(rounds):
        order = [("zc", zc), ("mitm", mitm)]
        if i % 2:
            order.reverse()
        for name, r in order:
            c0 = cpu_seconds(r)
            b = load(proto, r, path, total, threads, headers)
            cpu[name].append(1000 * (cpu_seconds(r) - c0) / b.requests)
            a = load(proto, r, path, single, 1, headers)
            for got in (b, a):
                _check(got, status, size[name] if isinstance(size, dict) else size, f"{name} {proto} {path}")
            busy[name].append(b)
            alone[name].append(a)

    def med(xs: list[float]) -> float:
        return r3(statistics.median(xs))

    out: dict[str, Any] = {}
    for name in ("zc", "mitm"):
        out[f"{name}_rps"] = round(statistics.median(x.rps for x in busy[name]), 1)
        out[f"{name}_p50_ms"] = med([statistics.median(x.latencies_ms) for x in alone[name]])
        out[f"{name}_p99_ms"] = med([pct(x.latencies_ms, 0.99) for x in alone[name]])
    out["rps_ratio"] = med([a.rps / b.rps for a, b in zip(busy["zc"], busy["mitm"], strict=True)])
    out["p50_ratio"] = med(
        [
            statistics.median(a.latencies_ms) / statistics.median(b.latencies_ms)
            for a, b in zip(alone["zc"], alone["mitm"], strict=True)
        ]
    )
    out["p99_ratio"] = med(
        [
            pct(a.latencies_ms, 0.99) / pct(b.latencies_ms, 0.99)
            for a, b in zip(alone["zc"], alone["mitm"], strict=True)
        ]
    )
    out["zc_cpu_ms"] = med(cpu["zc"])
    out["mitm_cpu_ms"] = med(cpu["mitm"])
    # requests per CPU-second, zerocontact over mitmproxy: what requests/s would be with a core each,
    # and far less disturbed by whatever else the machine runs than requests/s themselves
    # (the clock-tick resolution, 10 ms, can read 0 for the few requests of --quick: such rounds are
    # left out, and with none left there is no figure)
    both = [(z, m) for z, m in zip(cpu["zc"], cpu["mitm"], strict=True) if z > 0 and m > 0]
    out["cpu_ratio"] = med([m / z for z, m in both]) if both else None
    out["rps_ratio_per_round"] = [r3(a.rps / b.rps) for a, b in zip(busy["zc"], busy["mitm"], strict=True)]
    out["p50_ratio_per_round"] = [
        r3(statistics.median(a.latencies_ms) / statistics.median(b.latencies_ms))
        for a, b in zip(alone["zc"], alone["mitm"], strict=True)
    ]
    return out


def _least(xs: Iterator[float | None]) -> float | None:
    """The smallest of the figures there are (a --quick run may have none)."""
    there = [x for x in xs if x is not None]
    return min(there) if there else None


def rewritten_size(zc: Running, path: str, sent: int) -> int:
    """What the daemon answers for a feed with her entries: checked once (valid JSON, smaller, none of
    hers left), then every response of the run must have exactly this size."""
    import http.client

    c = http.client.HTTPConnection(*zc.addr, timeout=30)
    c.request("GET", f"http://{HOST}{path}")
    body = c.getresponse().read()
    c.close()
    doc = json.loads(body)
    theirs = [i for i in doc["items"] if i["user"]["username"] == bodies.TARGET_HANDLE]
    if len(body) >= sent or theirs:
        raise SystemExit(f"{path}: the daemon did not take her posts out ({len(body)} of {sent} bytes)")
    return len(body)


def cpu_seconds(r: Running) -> float:
    """User plus system CPU of the proxy process, all its threads."""
    t = psutil.Process(r.proc.pid).cpu_times()
    return float(t.user + t.system)


# -- blocked requests under process load ---------------------------------------------------------------
@contextlib.contextmanager
def idle_processes(n: int) -> Iterator[list[int]]:
    """``n`` sleeping processes started here (and only these are stopped afterwards, by pid)."""
    procs = [
        subprocess.Popen(["sleep", "3600"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        for _ in range(n)
    ]
    try:
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(10)


def bench_lookup(zc: Running, per_round: int, rounds: int, procs: int) -> dict[str, Any]:
    """One client; every request blocks a different person (a new attempt: journal record plus the
    client-process lookup in its thread), with and without ``procs`` idle processes."""
    people = iter(range(LOOKUP_PEOPLE))
    runs: dict[str, list[Load]] = {"idle": [], "procs": []}

    def one_round(key: str) -> None:
        paths = [f"/load{next(people)}" for _ in range(per_round)]
        got = load("http", zc, paths, per_round, 1, PAGE_HEADERS, host="x.com")
        _check(got, 403, None, f"lookup {key}")
        runs[key].append(got)

    for _ in range(rounds):
        one_round("idle")
    with idle_processes(procs):
        time.sleep(0.5)  # let them all settle into sleep
        others = len(psutil.pids())
        for _ in range(rounds):
            one_round("procs")
    out: dict[str, Any] = {"processes_on_machine_with_load": others}
    for key, prefix in (("idle", "blocked_lookup"), ("procs", "blocked_lookup_loaded")):
        lats = [x for r in runs[key] for x in r.latencies_ms]
        out[f"{prefix}_p50_ms"] = r3(statistics.median(lats))
        out[f"{prefix}_p99_ms"] = r3(pct(lats, 0.99))
    return out


# -- memory --------------------------------------------------------------------------------------------
def mixed_paths(n: int, seed: int = 11) -> list[str]:
    """Mostly small answers, some large: 50 % 2 KB, 26 % 20 KB, 12 % 200 KB (half of it sent br),
    3 % HTML, 1 % 2 MB (half of it sent gzip), 4 % mentioning the target (a quarter of it, the
    200 KB feed, sent br), 4 % blocked. The compressed ones are inflated to be searched: copies
    the size of the body, which must not pile up either."""
    by = {c.name: c.path for c in CASES}
    weights = [
        (by["json2k"], 100),
        (by["json20k"], 52),
        (by["json200k"], 12),
        (by["json200k_br"], 12),
        (by["html500k"], 6),
        (by["json2m"], 1),
        (by["json2m_gzip"], 1),
        (by["mention_feed200k"], 2),
        (by["mention_feed200k_br"], 2),
        (by["mention_post20k"], 4),
        (BLOCKED_PATH, 8),
    ]
    rng = random.Random(seed)
    return rng.choices([p for p, _ in weights], [w for _, w in weights], k=n)


def bench_rss(zc: Running, mitm: Running, total: int, threads: int) -> dict[str, Any]:
    paths = mixed_paths(min(total, 20_000))
    done = 0
    while done < total:
        n = min(10_000, total - done)
        for r in (zc, mitm):
            load("http", r, paths, n, threads, PAGE_HEADERS)
        done += n
    zc_mb, mitm_mb = rss_mb(zc.proc.pid), rss_mb(mitm.proc.pid)
    return {
        "rss_mixed_requests": done,
        "rss_mixed_mb": zc_mb,
        "mitmproxy_rss_mixed_mb": mitm_mb,
        "rss_mixed_ratio": r3(zc_mb / mitm_mb),
    }


# -- the run -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sizes:
    rounds: int
    threads: int
    scale: float  # × each case's request counts
    blocked: int
    blocked_single: int
    lookup_per_round: int
    lookup_rounds: int
    procs: int
    rss_requests: int


# 10 rounds: on a shared VM one round's p50 ratio alone reads anywhere from 0.56 to 1.47 for the
# same code, and a median of 6 moved ±0.1 between runs, as wide as the 1.1 goal it is read against
FULL = Sizes(10, 4, 1.0, 600, 200, 150, 4, 500, 100_000)
QUICK = Sizes(1, 2, 0.05, 20, 10, 10, 1, 10, 200)


def run(sizes: Sizes, protocols: tuple[str, ...] = PROTOCOLS, cases: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    traffic: dict[str, dict[str, Any]] = {}
    work = Path(tempfile.mkdtemp(prefix="zc-traffic-"))
    people = "".join(
        f'[[person]]\nname = "Load {i}"\naccounts = {{ x = "load{i}" }}\n' for i in range(LOOKUP_PEOPLE)
    )
    rules = work / "rules.toml"
    rules.write_text(RULES + people)
    try:
        with origin() as (port, body_sizes):
            zc = start_daemon(work, port, rules)
            mitm: Running | None = None
            try:
                page = load("http", zc, BLOCKED_PATH, 1, 1, PAGE_HEADERS)
                _check(page, 403, None, "block page")
                import http.client

                c = http.client.HTTPConnection(*zc.addr, timeout=10)
                c.request("GET", f"http://{HOST}{BLOCKED_PATH}", headers=PAGE_HEADERS)
                resp = c.getresponse()
                page_bytes = resp.read()
                page_headers = {
                    k: v for k, v in resp.getheaders() if k.lower() not in ("date", "content-length")
                }
                c.close()
                mitm = start_mitm(work, port, page_bytes, page_headers)
                for proto in protocols:
                    for case in CASES:
                        if cases and case.name not in cases:
                            continue
                        log(f"{proto} {case.name}")
                        sent = frozenset(body_sizes[case.path])
                        expect: frozenset[int] | dict[str, int | frozenset[int]] = sent
                        if case.rewritten:
                            expect = {"zc": rewritten_size(zc, case.path, min(sent)), "mitm": sent}
                        traffic[f"{proto}_{case.name}"] = compare(
                            zc,
                            mitm,
                            proto,
                            case.path,
                            max(sizes.threads, int(case.requests * sizes.scale)),
                            max(4, int(case.single * sizes.scale)),
                            sizes.rounds,
                            sizes.threads,
                            200,
                            expect,
                        )
                    log(f"{proto} blocked page vs a ten-line addon")
                    traffic[f"{proto}_blocked"] = compare(
                        zc,
                        mitm,
                        proto,
                        BLOCKED_PATH,
                        sizes.blocked,
                        sizes.blocked_single,
                        sizes.rounds,
                        sizes.threads,
                        403,
                        None,  # the page carries the attempt's id and today's count: its length varies
                        PAGE_HEADERS,
                    )
                log(f"blocked with client-process lookups, 0 and {sizes.procs} idle processes")
                out |= bench_lookup(zc, sizes.lookup_per_round, sizes.lookup_rounds, sizes.procs)
                log(f"memory after {sizes.rss_requests} mixed requests each")
                out |= bench_rss(zc, mitm, sizes.rss_requests, sizes.threads)
            finally:
                zc.stop()
                if mitm is not None:
                    mitm.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # rewriting a feed is work plain mitmproxy never does: its figures are reported on their own
    feed = {k: v for k, v in traffic.items() if any(k.endswith(f"_{c.name}") for c in CASES if c.rewritten)}
    allowed = {k: v for k, v in traffic.items() if not k.endswith("_blocked") and k not in feed}
    if feed:
        out["feed_rewrite_rps_ratio_min"] = min(v["rps_ratio"] for v in feed.values())
        out["feed_rewrite_p50_ratio_max"] = max(v["p50_ratio"] for v in feed.values())
        out["feed_rewrite_cpu_ratio_min"] = _least(v["cpu_ratio"] for v in feed.values())
    out["traffic"] = traffic
    if allowed:
        out["traffic_rps_ratio_min"] = min(v["rps_ratio"] for v in allowed.values())
        out["traffic_p50_ratio_max"] = max(v["p50_ratio"] for v in allowed.values())
        out["traffic_cpu_ratio_min"] = _least(v["cpu_ratio"] for v in allowed.values())
    for proto in protocols:
        b = traffic.get(f"{proto}_blocked")
        if b:
            out[f"blocked_vs_addon_{proto}_rps_ratio"] = b["rps_ratio"]
            out[f"blocked_vs_addon_{proto}_p99_ratio"] = b["p99_ratio"]
            out[f"blocked_vs_addon_{proto}_cpu_ratio"] = b["cpu_ratio"]
    out["inputs"] = {
        "cases": {c.name: {"path": c.path, "bytes": body_sizes.get(c.path)} for c in CASES},
        "rounds": sizes.rounds,
        "concurrency": sizes.threads,
        "requests_scale": sizes.scale,
        "protocols": list(protocols),
        "lookup_requests": sizes.lookup_per_round * sizes.lookup_rounds,
        "idle_processes": sizes.procs,
        "people_in_rules": 1 + LOOKUP_PEOPLE,
        "instagram_identifiers": 1,
        "cpus": os.cpu_count(),
    }
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.traffic", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs")
    ap.add_argument("--protocols", default=",".join(PROTOCOLS), help="comma-separated: http,https,h2")
    ap.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    ap.add_argument("--rss-requests", type=int, default=None, help="mixed requests per proxy before RSS")
    ap.add_argument("--rounds", type=int, default=None, help=f"rounds per case (default {FULL.rounds})")
    ap.add_argument("--serve-origin", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_origin:
        serve_origin()
        return
    sizes = QUICK if args.quick else FULL
    given = {"rss_requests": args.rss_requests, "rounds": args.rounds}
    sizes = replace(sizes, **{k: v for k, v in given.items() if v is not None})
    t0 = time.monotonic()
    out = run(
        sizes, tuple(p for p in args.protocols.split(",") if p), tuple(c for c in args.cases.split(",") if c)
    )
    out["inputs"]["seconds"] = round(time.monotonic() - t0, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
