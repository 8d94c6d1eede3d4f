"""``evaluate`` over schedules with many windows: one person with 1,000 one-minute Wednesday windows
(most boundaries in the horizon change nothing, the worst case of the old evaluation: 8 s), one with
1,000 random overlapping windows, and 1,000 people with two windows each.

Prints one JSON object of milliseconds per ``evaluate`` (median of ``ROUNDS``). Goal (issue 15): well
under the daemon's 30 s reconcile, i.e. milliseconds.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import statistics
import time

from zerocontact.rules import Ruleset, evaluate, load

ROUNDS = 5
SATURDAY_NOON = dt.datetime(2026, 3, 28, 12, 0, tzinfo=dt.UTC)


def _hm(minute: int) -> str:
    minute %= 1440
    return f"{minute // 60:02d}:{minute % 60:02d}"


def one_person(windows: list[str]) -> str:
    listed = ", ".join(f'"{w}"' for w in windows)
    return f'[[person]]\nname = "Sam"\naccounts = {{ x = "sam" }}\nwindows = [{listed}]\n'


def shapes() -> dict[str, Ruleset]:
    rng = random.Random(1)
    wednesdays = [f"wed {_hm(m)}-{_hm(m + 1)}" for m in ((i * 7) % 1380 for i in range(1000))]
    overlapping = []
    for _ in range(1000):
        start = rng.randrange(1440)
        overlapping.append(f"{_hm(start)}-{_hm(start + rng.randrange(15, 240))}")
    many = "".join(
        f'[[person]]\nname = "p{i}"\naccounts = {{ x = "p{i}x" }}\n'
        f'windows = ["{_hm(i * 60)}-{_hm(i * 60 + 210)}", "sat,sun 10:00-18:00"]\n'
        for i in range(1000)
    )
    return {
        "policy_evaluate_ms_1000_wednesday_windows": load(one_person(wednesdays)),
        "policy_evaluate_ms_1000_overlapping_windows": load(one_person(overlapping)),
        "policy_evaluate_ms_1000_people_2_windows": load(many),
    }


def main() -> None:
    out: dict[str, float] = {}
    for key, rules in shapes().items():
        times = []
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            evaluate(rules, SATURDAY_NOON)
            times.append(time.perf_counter() - t0)
        out[key] = round(statistics.median(times) * 1000, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
