"""How reading the rules grows with the number of people: ``python -m benchmarks.rules_scale [--quick]``.

For 100, 1,000 and 10,000 people (each with two Instagram accounts, an X handle, a block list, a
90-day schedule and a reason) it times, in this process, ``load`` (TOML to a validated Ruleset),
``Matcher`` and ``evaluate`` (best of 3); then, as a user runs them, ``zerocontact rules check FILE``
(a new process each time, best of 3; ``cli_startup_s`` is ``zerocontact --version``, the part that
is Python starting) and the daemon from ``Popen`` to ready, i.e. to its runtime record, written once
the proxy listens with the rules decided (a warm start: its CA made and these rules in force; best
of 3). Beside each daemon start, plain mitmdump starts with the options zerocontact's proxy sets
(to listening, its CA made; ``mitmdump_start_s``, best of all): the part of a start that is
mitmproxy's own and that no number of people changes. ``daemon_start_over_mitmdump_s_N`` is what
zerocontact adds to it.
Prints one JSON object; ``*_per_person_ratio`` is the per-person cost at the largest size over that
at the next one (1 = linear), ``*_max`` the figures at the largest size. Goal: 10,000 people under
1 s each, growing linearly.

zerocontact's modules are byte-compiled first, as installing it does (pip writes the ``.pyc`` files
at install time): an editable install run with ``PYTHONDONTWRITEBYTECODE=1`` (as here) would
otherwise compile all ~80 of them again in every new process, ~0.2 s that no user's start pays.
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.__main__ import ZC, r3, start_daemon, start_mitmdump
from zerocontact.rules import Matcher, evaluate, load

SIZES = (100, 1_000, 10_000)


def rules_text(n: int) -> str:
    out = ['[settings]\ntimezone = "Europe/Berlin"\n']
    for i in range(n):
        out.append(
            f'[[person]]\nname = "Person {i}"\n'
            f'accounts = {{ instagram = ["p{i}.example", "{10**9 + i}"], x = "p{i}ex" }}\n'
            'block = ["profile", "stories", "posts", "search"]\nfor = "90d"\n'
            f'why = "Healing, number {i}."\n'
        )
    return "".join(out)


def best(fn: Callable[[], object], n: int = 3) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def wall(cmd: list[str], n: int = 3) -> float:
    def run() -> None:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if r.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed: {r.stdout}{r.stderr}")

    return best(run, n)


def compile_installed() -> None:
    """Write the ``.pyc`` of every zerocontact module, as ``pip install`` does (see the docstring)."""
    import zerocontact.daemon
    import zerocontact.installer
    import zerocontact.rules

    for pkg in (zerocontact.daemon, zerocontact.installer, zerocontact.rules):
        for folder in pkg.__path__:
            compileall.compile_dir(folder, quiet=1)


def run(sizes: tuple[int, ...]) -> dict[str, Any]:
    compile_installed()
    out: dict[str, Any] = {"cli_startup_s": r3(wall([ZC, "--version"]))}
    work = Path(tempfile.mkdtemp(prefix="zc-rules-"))
    mitm: list[float] = []
    try:
        start_mitmdump(work, 9).stop()  # cold: makes its CA
        for n in sizes:
            text = rules_text(n)
            path = work / f"rules-{n}.toml"
            path.write_text(text)
            data = text.encode()
            rs = load(data)
            out[f"rules_load_s_{n}"] = r3(best(lambda data=data: load(data)))  # type: ignore[misc]
            out[f"rules_matcher_s_{n}"] = r3(best(lambda rs=rs: Matcher(rs)))  # type: ignore[misc]
            now = dt.datetime.now(dt.UTC)
            out[f"rules_evaluate_s_{n}"] = r3(best(lambda rs=rs, now=now: evaluate(rs, now)))  # type: ignore[misc]
            out[f"rules_check_s_{n}"] = r3(wall([ZC, "rules", "check", str(path)]))
            d = start_daemon(work, 9, path)  # cold: makes the CA and commits to these rules
            d.stop()
            warm = []
            for _ in range(3):  # best of 3, as for rules check: one start on 2 shared cores is noise
                m = start_mitmdump(work, 9)  # alternated with the daemon's: both see the same machine
                m.stop()
                mitm.append(m.startup_s)
                d = start_daemon(work, 9, path)  # (the origin port is never used)
                d.stop()
                warm.append(d.startup_s)
            out[f"daemon_start_s_{n}"] = r3(min(warm))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lo, hi = sizes[-2], sizes[-1]
    for k in ("rules_load_s", "rules_matcher_s"):
        # the per-person cost at the largest size over that at the next: ~1 means linear growth (the
        # command's is not computed: Python's start-up, ~0.3 s of noise, dwarfs 1,000 people)
        out[f"{k.removesuffix('_s')}_per_person_ratio"] = r3(
            (out[f"{k}_{hi}"] / hi) / max(out[f"{k}_{lo}"] / lo, 1e-9)
        )
    out["mitmdump_start_s"] = r3(min(mitm))
    for n in sizes:
        out[f"daemon_start_over_mitmdump_s_{n}"] = r3(out[f"daemon_start_s_{n}"] - out["mitmdump_start_s"])
    out["rules_check_s_max"] = out[f"rules_check_s_{hi}"]
    out["daemon_start_s_max"] = out[f"daemon_start_s_{hi}"]
    out["daemon_start_over_mitmdump_s_max"] = out[f"daemon_start_over_mitmdump_s_{hi}"]
    out["rules_people"] = list(sizes)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.rules_scale", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 and 100 people only")
    args = ap.parse_args(argv)
    print(json.dumps(run((10, 100) if args.quick else SIZES)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
