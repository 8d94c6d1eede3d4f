"""Process watcher speed: launch-to-stop latency, and idle CPU with many processes running.

    python -m benchmarks.watcher [--launches 200] [--idle 500] [--seconds 10] [--poll 0.15]

Starts the real ``ProcessWatcher`` on a loop thread with one terminate rule on a name unique to this
run (so nothing else on the machine can match), then:

- launches a copy of /bin/sleep under that name ``--launches`` times, one after another, and times
  each from just before ``Popen`` to the moment the process is reaped (SIGTERM delivered and acted
  on): ``watcher_stop_p50_ms``/``watcher_stop_p95_ms`` (goal, issue 6: p95 under 250 ms);
- starts ``--idle`` sleeping processes, lets the watcher see them, and measures this process's CPU
  time over ``--seconds`` while nothing else happens, minus the same measurement with the watcher
  stopped: ``watcher_idle_cpu_percent`` of one core (goal: under 1 %).

Prints one JSON object with the figures and the inputs. No test asserts these numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from zerocontact.daemon.journal import Attempt
from zerocontact.daemon.watcher import ProcessWatcher
from zerocontact.rules import load
from zerocontact.rules.apps import compile_apps


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _cpu_percent(seconds: float) -> float:
    start_cpu, start = time.process_time(), time.monotonic()
    time.sleep(seconds)  # measuring: the watcher's thread is what runs meanwhile
    return 100.0 * (time.process_time() - start_cpu) / (time.monotonic() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--launches", type=int, default=200)
    ap.add_argument("--idle", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--poll", type=float, default=0.15)
    args = ap.parse_args()

    name = f"zcbench{secrets.token_hex(3)}"
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
    loop_thread.start()
    reported: dict[int, float] = {}

    def report(a: Attempt) -> None:
        if a.process:
            reported[int(a.process.rsplit("(", 1)[1].rstrip(")"))] = time.perf_counter()

    watcher = ProcessWatcher(loop, report, system_mode=False, poll_interval=args.poll)
    apps = compile_apps(load(f'[[app]]\nname = "bench"\nmatch = ["name:{name}"]\ngrace = 3\n'))
    idle: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="zc-watcher-bench-") as tmp:
        target = Path(tmp) / name
        shutil.copy("/bin/sleep", target)
        idler = Path(tmp) / "zc-idle"
        shutil.copy("/bin/sleep", idler)
        watcher.start()
        loop.call_soon_threadsafe(watcher.update, apps, frozenset({"bench"}), frozenset(), [], 0, "")
        while watcher.stats["sweeps"] < 1:
            time.sleep(0.01)
        stop_ms: list[float] = []
        report_ms: list[float] = []
        try:
            rng = random.Random(6)
            for _ in range(args.launches):
                time.sleep(rng.uniform(0, args.poll))  # launch at a random phase of the poll cycle
                t0 = time.perf_counter()
                p = subprocess.Popen([str(target), "300"])
                p.wait()  # blocking waitpid (with a timeout, Popen.wait polls in sleeps of up to 50 ms)
                stop_ms.append(1000 * (time.perf_counter() - t0))
                while p.pid not in reported:  # the report hops through the loop thread
                    time.sleep(0.001)
                report_ms.append(1000 * (reported.pop(p.pid) - t0))
            # counted before the launches: the watcher may inspect most of them while they start
            seen = watcher.stats["inspected"]
            for _ in range(args.idle):
                idle.append(
                    subprocess.Popen(
                        [str(idler), "600"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                    )
                )
            deadline = time.monotonic() + 60  # bounded: a missed process must not hang the run
            while time.monotonic() < deadline and (
                watcher.stats["inspected"] < seen + args.idle // 2
                or any(watcher.seen(p.pid) is None for p in idle)
            ):
                time.sleep(0.05)
            unseen = sum(watcher.seen(p.pid) is None for p in idle)
            time.sleep(1.5)  # past the young-process window: steady state
            polls, listings, seen = (watcher.stats[k] for k in ("polls", "listings", "inspected"))
            with_watcher = _cpu_percent(args.seconds)
            polls, listings, seen = (
                watcher.stats[k] - v
                for k, v in (("polls", polls), ("listings", listings), ("inspected", seen))
            )
            load_avg = os.getloadavg()[0]
            watcher.stop()
            baseline = _cpu_percent(args.seconds)
            processes = len(psutil.pids())
        finally:
            watcher.stop()
            for p in idle:
                p.kill()
            for p in idle:
                p.wait()
            loop.call_soon_threadsafe(loop.stop)
            loop_thread.join(timeout=5)
    out: dict[str, Any] = {
        "watcher_stop_p50_ms": round(statistics.median(stop_ms), 1),
        "watcher_stop_p95_ms": round(_pct(stop_ms, 0.95), 1),
        "watcher_stop_max_ms": round(max(stop_ms), 1),
        "watcher_report_p50_ms": round(statistics.median(report_ms), 1),
        "watcher_report_p95_ms": round(_pct(report_ms, 0.95), 1),
        "watcher_idle_cpu_percent": round(max(0.0, with_watcher - baseline), 3),
        "watcher_idle_cpu_percent_raw": round(with_watcher, 3),
        "baseline_cpu_percent": round(baseline, 3),
        "launches": args.launches,
        "idle_processes": args.idle,
        "idle_processes_unseen": unseen,  # the watcher never listed them within 60 s (expected: 0)
        "processes_running": processes,
        "idle_seconds": args.seconds,
        "poll_interval_s": args.poll,
        "idle_polls": polls,
        "idle_polls_that_listed_pids": listings,
        "other_processes_started_while_idle": seen,  # on a shared machine "idle" is not quite idle
        "load_average_1min": round(load_avg, 2),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "psutil": psutil.__version__,
        "platform": platform.platform(),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
