"""Matcher cost per decision at 10, 1,000 and 10,000 handles, measured side by side (A, B, A, B …).

Prints one JSON object. The goal (issue 8): the 10,000/10 ratio under 1.5 — the cost of a decision
must not grow with the number of people named in the rules.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

from zerocontact.rules import Matcher, Request, load

ROUNDS = 7


def rules(n: int) -> str:
    return "\n".join(
        f'[[person]]\nname = "p{i}"\n'
        f'accounts = {{ instagram = "user{i}.ig", x = "user{i}x", tiktok = "user{i}.tt" }}'
        for i in range(n)
    )


def mix(n: int) -> list[Request]:
    """A realistic mix: mostly allowed traffic on target hosts, some targets, some API calls."""
    out = []
    for i in range(200):
        k = i % n
        out += [
            Request("GET", f"https://www.instagram.com/someone{i}/"),
            Request("GET", f"https://www.instagram.com/user{k}.ig/"),
            Request("GET", "https://www.instagram.com/explore/"),
            Request("GET", f"https://www.instagram.com/stories/user{k}.ig/123/"),
            Request(
                "GET",
                "https://x.com/i/api/graphql/abc/UserByScreenName?variables="
                f"%7B%22screen_name%22%3A%22user{k}x%22%7D",
            ),
            Request("GET", "https://x.com/home"),
            Request("GET", f"https://www.tiktok.com/@user{k}.tt?lang=en"),
            Request(
                "POST",
                "https://www.instagram.com/graphql/query",
                {"content-type": "application/x-www-form-urlencoded"},
                b"fb_api_req_friendly_name=PolarisProfilePageContentQuery&variables=%7B%22id%22%3A%2212345%22%7D",
            ),
        ]
    return out


def per_decision_us(m: Matcher, requests: list[Request]) -> float:
    # fresh Request objects each round: their decoding is cached per object and is part of the cost
    fresh = [Request(r.method, r.url, r.headers, r.body) for r in requests]
    t0 = time.perf_counter()
    for r in fresh:
        m.judge(r)
    return (time.perf_counter() - t0) / len(fresh) * 1e6


def main() -> None:
    sizes = (10, 1000, 10000)
    matchers = {n: Matcher(load(rules(n))) for n in sizes}
    reqs = {n: mix(n) for n in sizes}
    samples: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(ROUNDS):
        for n in sizes:  # interleaved, so machine noise hits every size alike
            samples[n].append(per_decision_us(matchers[n], reqs[n]))
    med = {n: statistics.median(v) for n, v in samples.items()}
    out = {
        "matcher_us_10": round(med[10], 2),
        "matcher_us_1000": round(med[1000], 2),
        "matcher_us_10000": round(med[10000], 2),
        "matcher_ratio_10k_to_10": round(med[10000] / med[10], 3),
        "inputs": {
            "handles": [n * 3 for n in sizes],
            "people": list(sizes),
            "requests_per_round": len(reqs[10]),
            "rounds": ROUNDS,
        },
    }
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
