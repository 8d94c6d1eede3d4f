"""Reading the table-driven request files (sample cases and the cited corpus) and judging one row.

A file holds a ``rules`` text, optional ``learned`` ids and ``[[case]]`` rows: a request (``METHOD URL``
or just a URL), optional headers and body, the expected verdict and, for every request that reveals a
person, the surface it reveals. Rows without a surface are requests about nobody the rules name.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import tomli

from zerocontact.rules import Matcher, Request, Verdict, load
from zerocontact.rules.schema import SURFACES, Ruleset


def read(path: Path) -> dict[str, Any]:
    return tomli.loads(path.read_text(encoding="utf-8"))


def request(case: dict[str, Any]) -> Request:
    method, _, url = case["request"].rpartition(" ")
    headers = {k.lower(): v for k, v in case.get("headers", {}).items()}
    return Request(method or "GET", url, headers, case.get("body", "").encode())


def matcher(doc: dict[str, Any], where: str, only: str | None = None) -> Matcher:
    """The file's rules; with ``only``, every person blocks that one surface and nothing else."""
    rules: Ruleset = load(doc["rules"], where)
    if only is not None:
        people = tuple(dataclasses.replace(p, block=frozenset({only})) for p in rules.people)
        rules = dataclasses.replace(rules, people=people)
    m = Matcher(rules)
    for platform, value, person in doc.get("learned", []):
        m.learn(platform, value, person)
    return m


def check(m: Matcher, case: dict[str, Any]) -> tuple[Verdict, list[str]]:
    """Judge one row with the file's own rules; the list says what differs from the row."""
    v = m.judge(request(case))
    wrong = []
    got = "block" if v.block else "allow"
    if got != case["verdict"]:
        wrong.append(f"{got}, expected {case['verdict']}: {v.reason}")
    for key in ("surface", "person", "certain", "needs_response"):
        if key in case and getattr(v, key) != case[key]:
            if key == "surface" and not v.block and not v.needs_response:
                continue  # an allowed row's surface says what it would reveal if that surface were blocked
            wrong.append(f"{key}: got {getattr(v, key)!r}, expected {case[key]!r}")
    return v, wrong


def check_single_surface(m: Matcher, surface: str, case: dict[str, Any]) -> str | None:
    """Rules blocking only ``surface``: a row blocks (or waits for its response) iff it is that surface."""
    v = m.judge(request(case))
    mine = case.get("surface") == surface
    if case.get("needs_response"):
        if v.block or v.needs_response != mine:
            return f"needs_response={v.needs_response}, block={v.block}, expected {mine}: {v.reason}"
        return None
    want = mine and "surface" in case
    if v.block != want:
        return f"block={v.block}, expected {want}: {v.reason}"
    return None


def validate(case: dict[str, Any], where: str) -> None:
    """Every row that reveals someone names a real surface."""
    if case["verdict"] == "block" or case.get("needs_response"):
        assert case.get("surface") in SURFACES, f"{where}: {case['request'][:80]} needs a surface"
    elif "surface" in case:
        assert case["surface"] in SURFACES, f"{where}: unknown surface {case['surface']!r}"
