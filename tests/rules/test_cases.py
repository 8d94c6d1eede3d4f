"""Every preset's sample requests, with their expected verdicts, run through the real matcher.

Case files live in ``tests/rules/cases/<platform>.toml``: a rules text and ``[[case]]`` entries. A
preset without a case file (or without both blocked and allowed samples) fails the suite. Each case
that reveals a person carries its surface, and every file is run again with rules that block one
surface only, so a tab, a highlight or a live signal filed under the wrong surface shows up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from zctest.casefiles import check, check_single_surface, matcher, read, validate

from zerocontact.rules import Matcher
from zerocontact.rules.platforms import presets
from zerocontact.rules.schema import SURFACES

CASES = Path(__file__).parent / "cases"
FILES = sorted(CASES.glob("*.toml"))


def _load_cases() -> list[Any]:
    out = []
    for f in FILES:
        doc = read(f)
        for i, case in enumerate(doc["case"]):
            out.append(pytest.param(f.stem, case, id=f"{f.stem}-{i + 1}-{case['request'][:60]}"))
    return out


_MATCHERS: dict[tuple[str, str | None], Matcher] = {}


def _matcher(name: str, only: str | None = None) -> Matcher:
    if (name, only) not in _MATCHERS:
        _MATCHERS[name, only] = matcher(read(CASES / f"{name}.toml"), f"cases/{name}.toml", only)
    return _MATCHERS[name, only]


@pytest.mark.parametrize(("name", "case"), _load_cases())
def test_case(name: str, case: dict[str, Any]) -> None:
    validate(case, name)
    _, wrong = check(_matcher(name), case)
    assert not wrong, f"{case['request']}: " + "; ".join(wrong)


# "client" closes a whole web client for anyone's sake, so it is no view of one person: left out here.
PERSON_SURFACES = [s for s in SURFACES if s != "client"]


@pytest.mark.parametrize("surface", PERSON_SURFACES)
@pytest.mark.parametrize("name", [f.stem for f in FILES])
def test_single_surface_rules_block_exactly_that_surface(name: str, surface: str) -> None:
    m = _matcher(name, surface)
    failures = []
    for case in read(CASES / f"{name}.toml")["case"]:
        why = check_single_surface(m, surface, case)
        if why:
            failures.append(f"{case['request'][:100]} ({case.get('surface', 'no surface')}): {why}")
    assert not failures, "\n".join(failures)


def test_every_preset_has_samples() -> None:
    for name in presets():
        f = CASES / f"{name}.toml"
        assert f.exists(), f"preset {name} has no sample cases in {f}"
        cases = read(f)["case"]
        verdicts = {c["verdict"] for c in cases}
        assert verdicts == {"block", "allow"}, f"{name}: needs both blocked and allowed samples"
        assert len(cases) >= 10, f"{name}: only {len(cases)} samples"
