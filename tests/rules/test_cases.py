"""Every preset's sample requests, with their expected verdicts, run through the real matcher.

Case files live in ``tests/rules/cases/<platform>.toml``: a rules text and ``[[case]]`` entries. A
preset without a case file (or without both blocked and allowed samples) fails the suite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tomli

from zerocontact.rules import Matcher, Request, load
from zerocontact.rules.platforms import presets

CASES = Path(__file__).parent / "cases"


def _load_cases() -> list[Any]:
    out = []
    for f in sorted(CASES.glob("*.toml")):
        doc = tomli.loads(f.read_text(encoding="utf-8"))
        for i, case in enumerate(doc["case"]):
            out.append(
                pytest.param(
                    f.stem,
                    doc["rules"],
                    doc.get("learned", []),
                    case,
                    id=f"{f.stem}-{i + 1}-{case['request'][:60]}",
                )
            )
    return out


_MATCHERS: dict[str, Matcher] = {}


def _matcher(name: str, rules: str, learned: list[list[str]]) -> Matcher:
    if name not in _MATCHERS:
        m = Matcher(load(rules, f"cases/{name}.toml"))
        for platform, value, person in learned:
            m.learn(platform, value, person)
        _MATCHERS[name] = m
    return _MATCHERS[name]


@pytest.mark.parametrize(("name", "rules", "learned", "case"), _load_cases())
def test_case(name: str, rules: str, learned: list[list[str]], case: dict[str, Any]) -> None:
    m = _matcher(name, rules, learned)
    method, _, url = case["request"].rpartition(" ")
    headers = {k.lower(): v for k, v in case.get("headers", {}).items()}
    body = case.get("body", "").encode()
    v = m.judge(Request(method or "GET", url, headers, body))
    got = "block" if v.block else "allow"
    assert got == case["verdict"], f"{case['request']}: {v.reason}"
    for key in ("surface", "person", "certain", "needs_response"):
        if key in case:
            assert getattr(v, key) == case[key], f"{key}: {v.as_dict()}"


def test_every_preset_has_samples() -> None:
    for name in presets():
        f = CASES / f"{name}.toml"
        assert f.exists(), f"preset {name} has no sample cases in {f}"
        cases = tomli.loads(f.read_text(encoding="utf-8"))["case"]
        verdicts = {c["verdict"] for c in cases}
        assert verdicts == {"block", "allow"}, f"{name}: needs both blocked and allowed samples"
        assert len(cases) >= 10, f"{name}: only {len(cases)} samples"
