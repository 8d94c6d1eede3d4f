"""A corpus of real request shapes, each row citing the public client, scraper test or documented API it
comes from, run through the real matcher.

``tests/rules/corpus/<platform>.toml`` holds what public code really sends (GraphQL forms, XHR, typeahead,
DM look-ups, route prefetch, host aliases, wrapped ids), the expected verdict and, for rows that reveal
the person, the surface. Many rows are about someone else: zero of them may block. Each file is also
run with rules that block one surface only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from zctest.casefiles import check, check_single_surface, matcher, read, validate

from zerocontact.rules import Matcher
from zerocontact.rules.schema import SURFACES

CORPUS = Path(__file__).parent / "corpus"
FILES = sorted(CORPUS.glob("*.toml"))
PERSON_SURFACES = [s for s in SURFACES if s != "client"]
_MATCHERS: dict[tuple[str, str | None], Matcher] = {}


def _matcher(name: str, only: str | None = None) -> Matcher:
    if (name, only) not in _MATCHERS:
        _MATCHERS[name, only] = matcher(read(CORPUS / f"{name}.toml"), f"corpus/{name}.toml", only)
    return _MATCHERS[name, only]


def _rows() -> list[Any]:
    return [
        pytest.param(f.stem, row, id=f"{f.stem}-{i + 1}-{row['request'][:70]}")
        for f in FILES
        for i, row in enumerate(read(f)["case"])
    ]


@pytest.mark.parametrize(("name", "row"), _rows())
def test_corpus_row(name: str, row: dict[str, Any]) -> None:
    validate(row, name)
    assert row.get("source", "").strip(), f"{row['request']}: every row cites where its shape comes from"
    _, wrong = check(_matcher(name), row)
    assert not wrong, f"{row['request']}: " + "; ".join(wrong)


@pytest.mark.parametrize("surface", PERSON_SURFACES)
@pytest.mark.parametrize("name", [f.stem for f in FILES])
def test_corpus_with_single_surface_rules(name: str, surface: str) -> None:
    m = _matcher(name, surface)
    failures = []
    for row in read(CORPUS / f"{name}.toml")["case"]:
        why = check_single_surface(m, surface, row)
        if why:
            failures.append(f"{row['request'][:100]} ({row.get('surface', 'no surface')}): {why}")
    assert not failures, "\n".join(failures)


def test_corpus_has_rows_that_must_pass_on_every_platform() -> None:
    for f in FILES:
        rows = read(f)["case"]
        passing = [r for r in rows if r["verdict"] == "allow" and "surface" not in r]
        assert len(passing) >= 5, f"{f.stem}: only {len(passing)} rows about someone else"
        assert len(rows) >= 12, f"{f.stem}: only {len(rows)} rows"
    from zerocontact.rules.platforms import presets

    assert {f.stem for f in FILES} == set(presets()), "every preset has a corpus file"
