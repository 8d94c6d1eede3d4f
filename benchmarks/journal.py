"""Journal speed: writer ingest, ``stats`` and ``log --limit 50`` over a large journal.

    python -m benchmarks.journal [--attempts 1000000] [--keep DIR]

Builds a journal of N attempts (two years, evenings heavier, two people, five platforms) in a
temporary directory through the real ``Journal`` writer, measures, and prints one JSON object
(keys in benchmarks/README.md). Goals (issue 4): ingest >= 20,000 attempts/s, stats < 0.5 s,
log --limit 50 "instant".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zerocontact.daemon.journal import Attempt, Journal
from zerocontact.daemon.journal import writer as journal_writer
from zerocontact.daemon.journal.files import open_readonly
from zerocontact.daemon.journal.reader import Filters, JournalReader
from zerocontact.daemon.journal.schema import ensure_review_index
from zerocontact.daemon.review.periods import zone
from zerocontact.daemon.review.stats import Stats, compute_stats

ZC = str(Path(sys.executable).with_name("zerocontact"))
NOW = dt.datetime(2026, 12, 31, 23, 0, tzinfo=dt.UTC)
ZONE = "Europe/Berlin"


def attempts(n: int, seed: int = 4) -> list[Attempt]:
    """N attempts over the two years before NOW, in time order, shaped like a real urge log."""
    rng = random.Random(seed)
    span = 2 * 365 * 86400
    start = NOW - dt.timedelta(seconds=span)
    hours = [1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 2, 2, 2, 2, 3, 4, 5, 6, 7, 6, 3]
    cum = [sum(hours[: i + 1]) for i in range(24)]
    people = ["Sam", "Sam", "Sam", "Alex"]
    platforms = ["instagram", "instagram", "x", "tiktok", "whatsapp", "facebook"]
    surfaces = ["stories", "stories", "profile", "posts", "presence", "search", "messages"]
    out = []
    for s in sorted(rng.random() * span for _ in range(n)):
        day = int(s // 86400)
        hour = rng.choices(range(24), cum_weights=cum)[0]
        t = start + dt.timedelta(days=day, hours=hour, seconds=rng.random() * 3600)
        out.append(
            Attempt(
                time=t,
                person=rng.choice(people),
                platform=rng.choice(platforms),
                surface=rng.choice(surfaces),
                channel="web" if rng.random() < 0.9 else "app",
                method="GET",
                host="www.instagram.com",
                path="/sam.example/",
                rule="/{handle}/",
                detail="Instagram profile of Sam (sam.example): matched /{handle}/",
                note="our song came on" if rng.random() < 0.01 else None,
            )
        )
    return out


def best(fn: Callable[[], object], runs: int = 3) -> float:
    """The fastest of ``runs`` runs, in seconds (warm cache: what a user sees on a second look)."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(min(times), 4)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.journal", description=__doc__.split("\n")[0])
    ap.add_argument("--attempts", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path, default=None, help="build the journal in DIR and keep it")
    args = ap.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="zc-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    path = work / "journal.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    batch = attempts(args.attempts)

    journal = Journal(path)
    journal.start()
    if not journal.flush(timeout=60):
        raise SystemExit(f"the journal did not open: {journal.error}")
    # Feed as a burst of page loads would, but never past the writer's memory bound (the oldest
    # waiting entries would be dropped): what is measured is the rate the writer commits.
    high = journal_writer.MEMORY_BOUND // 2
    t = time.perf_counter()
    for i, a in enumerate(batch):
        if i % 1000 == 0:
            while journal.buffered > high:
                time.sleep(0.001)
        journal.record(a)
    if not journal.flush(timeout=3600):
        raise SystemExit("the writer did not finish")
    ingest = time.perf_counter() - t
    journal.close()
    del batch
    if journal.dropped or journal.written != args.attempts:
        raise SystemExit(f"the writer lost attempts: {journal.written} written, {journal.dropped} dropped")

    tz = zone(ZONE)
    j = JournalReader(open_readonly(path))

    def stats() -> Stats:
        return compute_stats(j, now=NOW, tz=tz)

    def log(**filters: Any) -> Callable[[], list[dict[str, Any]]]:
        f = Filters(**filters)
        return lambda: list(j.select_attempts(f, 50))

    result: dict[str, Any] = {"attempts": args.attempts}
    result["ingest_seconds"] = round(ingest, 2)
    result["ingest_per_second"] = round(args.attempts / ingest)
    result["stats_seconds_without_index"] = best(stats, 2)
    j.con.close()
    t = time.perf_counter()
    ensure_review_index(path)
    result["index_seconds"] = round(time.perf_counter() - t, 2)
    j = JournalReader(open_readonly(path))
    s = stats()
    assert s.total == args.attempts, (s.total, args.attempts)
    result["stats_seconds"] = best(stats)
    result["log_limit_50_seconds"] = best(log())
    result["log_limit_50_filtered_seconds"] = best(log(person=("Alex",), surface=("stories",)))
    result["log_limit_50_no_match_seconds"] = best(log(person=("Nobody",)))
    j.con.close()
    env = {**os.environ, "TZ": ZONE}

    def cli(*argv: str) -> Callable[[], object]:
        return lambda: subprocess.run([ZC, *argv], check=True, capture_output=True, env=env)

    state = ("--state-dir", str(work))
    result["stats_cli_seconds"] = best(cli("stats", "--json", "--timezone", ZONE, *state))
    result["log_cli_seconds"] = best(cli("log", "--limit", "50", *state))
    result["cli_startup_seconds"] = best(cli("--version"))
    result["file_bytes"] = path.stat().st_size
    result["sqlite"] = sqlite3.sqlite_version
    result["python"] = platform.python_version()
    result["cpus"] = os.cpu_count()
    print(json.dumps(result))
    if not args.keep:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        os.rmdir(work)
    return result


if __name__ == "__main__":
    main()
