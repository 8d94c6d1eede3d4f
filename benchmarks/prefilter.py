"""What the response hook costs per body, with and without the prefilter: ``python -m benchmarks.prefilter``.

For each Instagram-shaped body (``benchmarks.bodies``), in this process, best of N: the prefilter's
verdict (``Prefilter.mentions``, what every response on a targeted host now costs) beside what the
hook did before it existed (``json_objects``, one walk, ``learn_from`` and ``owner_in`` for posts);
for bodies that mention her, that whole decode beside decoding only the objects around each mention
(``around_ms_*``: what such a body costs now); and the prefilter at 1, 10, 24 and 48 identifiers
(``MAX_IDENTIFIERS``: past it nothing is searched and every body is decoded, as before the
prefilter). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable

from benchmarks import bodies
from zerocontact.rules import Matcher, load
from zerocontact.rules.prefilter import MAX_IDENTIFIERS, Prefilter
from zerocontact.rules.request import all_dicts
from zerocontact.rules.response import json_objects, json_text

RULES = '[[person]]\nname = "Sam"\naccounts = { instagram = "sam.example", x = "samexample" }\n'


def best_ms(fn: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(1000 * min(times), 4)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.prefilter", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    n = 3 if args.quick else 15
    m = Matcher(load(RULES))
    m.learn("instagram", str(bodies.TARGET_PK), "Sam")
    pf = Prefilter(*m.identifiers("instagram"))
    cases = {
        "json2k": (bodies.small(2048), "application/json"),
        "json20k": (bodies.feed(20_000), "application/json"),
        "json200k": (bodies.feed(200_000), "application/json"),
        "json2m": (bodies.feed(2_000_000), "application/json"),
        "html500k": (bodies.html_page(500_000), "text/html"),
    }
    out: dict[str, object] = {}
    for name, (body, ctype) in cases.items():
        assert not pf.mentions(body)
        out[f"prefilter_ms_{name}"] = best_ms(lambda body=body: pf.mentions(body), n)  # type: ignore[misc]

        def decode_walk(body: bytes = body, ctype: str = ctype) -> None:
            objs = json_objects(body, ctype)
            dicts = all_dicts(objs)  # walked once for both, as the response hook does
            m.learn_from("instagram", objs, dicts)
            m.owner_in("instagram", objs, dicts)

        out[f"decode_walk_ms_{name}"] = best_ms(decode_walk, max(1, n // 3))
    # bodies that do mention her (her comment beside her id): decoded whole, as before and where the
    # bytes cannot show every mention, against only the objects around each mention (json_text)
    mentioning = {
        "mention20k": bodies.feed(20_000, seed=5, commenter_at=1),
        "mention200k": bodies.feed(200_000, seed=5, commenter_at=5),
        "mention2m": bodies.feed(2_000_000, seed=5, commenter_at=5),
    }
    paths = m.mention_paths("instagram", True)
    for name, body in mentioning.items():
        whole = json_objects(body, "application/json")
        out[f"whole_ms_{name}"] = best_ms(
            lambda body=body: _checked(m, json_objects(body, "application/json")), n
        )  # type: ignore[misc]

        def around(body: bytes = body) -> list[object]:
            offsets = pf.offsets(body)
            assert offsets is not None
            doc = json_text(body, "application/json")
            assert doc is not None
            near = doc.around(offsets, paths)
            assert near is not None
            _checked(m, near)
            return near

        near = around()
        assert _checked(m, near) == _checked(m, whole) != (None, [])
        out[f"around_ms_{name}"] = best_ms(around, n)
        out[f"around_bytes_{name}"] = len(json.dumps(near, separators=(",", ":")))
    rng = random.Random(3)
    body = cases["json200k"][0]
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789._"
    for k in (1, 10, 24, MAX_IDENTIFIERS):  # beyond MAX_IDENTIFIERS nothing is searched: all decoded
        # handles and ids that the body does not hold: every one of them is searched for in full
        idents = {f"{rng.choice(alphabet)}{rng.randrange(10**6)}.zq{i}" for i in range(k // 2)}
        idents |= {str(rng.randrange(10**15, 10**16)) for _ in range(k - len(idents))}
        many = Prefilter(idents)
        assert not many.mentions(body)
        out[f"prefilter_ms_json200k_{k}_ids"] = best_ms(lambda p=many: p.mentions(body), n)  # type: ignore[misc]
    out["inputs"] = {name: len(b) for name, (b, _) in cases.items()}
    print(json.dumps(out))


def _checked(m: Matcher, objs: list[object]) -> tuple[object, list[object]]:
    """The owner check and what learning would read (ids already learned: nothing new is)."""
    dicts = all_dicts(objs)
    m.learn_from("instagram", objs, dicts)
    found = [d.get("pk") for d in dicts if d.get("username") == bodies.TARGET_HANDLE]
    return m.owner_in("instagram", objs, dicts), found


if __name__ == "__main__":
    main()
