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


def _variants(case: dict[str, Any]) -> list[dict[str, Any]]:
    """The row, its path upper-cased, with a doubled slash, and with a non-ASCII letter that the
    path regexes fold to an ASCII one (Kelvin sign for "k", long s for "s")."""
    method, _, url = case["request"].rpartition(" ")
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    out = [case]
    for p in (path.upper(), "/" + path, path.replace("k", "\u212a"), path.replace("s", "\u017f")):
        out.append({**case, "request": f"{method} {scheme}://{host}{slash}{p}".strip()})
    return out


@pytest.mark.parametrize("name", [f.stem for f in FILES])
def test_the_path_index_judges_as_trying_every_pattern(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The matcher tries only the patterns a path's leading literal segments allow: on every row
    (and variants of it) that must give exactly the verdict that trying every pattern gives."""
    from zctest.casefiles import request

    from zerocontact.rules import matcher as matcher_module

    m = _matcher(name)
    rows = [v for case in read(CASES / f"{name}.toml")["case"] for v in _variants(case)]
    indexed = [m.judge(request(row)) for row in rows]
    monkeypatch.setattr(
        matcher_module._PathIndex, "candidates", lambda self, req: [(p, 0) for p in self._all]
    )
    every = [m.judge(request(row)) for row in rows]
    assert [(r["request"], v) for r, v in zip(rows, indexed, strict=True)] == [
        (r["request"], v) for r, v in zip(rows, every, strict=True)
    ]
    assert any(v.block for v in indexed)
