"""The package list in pyproject.toml must name every source folder: a wheel silently drops the rest."""

from __future__ import annotations

from pathlib import Path

import tomli

ROOT = Path(__file__).resolve().parent.parent


def test_every_subpackage_is_listed() -> None:
    cfg = tomli.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = cfg["package-dir"]
    listed = set(cfg["packages"])
    found = set()
    for pkg, folder in dirs.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([pkg, *rel.parts]))
    assert found == listed
    assert set(dirs.values()) == {"daemon", "rules", "installer"}


def test_readme_first_screen_and_ci_agree() -> None:
    readme = (ROOT / "README.md").read_text()
    first_screen = "\n".join(readme.splitlines()[:20])
    assert "./dev run" in first_screen and "./dev test" in first_screen
    assert "exec ./dev test" in (ROOT / ".ci" / "run").read_text()


def test_readme_lists_every_platform_preset() -> None:
    from zerocontact.rules.platforms import presets

    readme = (ROOT / "README.md").read_text()
    for name in presets():
        assert f"\n| {name} |" in readme, f"README's platform table lacks {name}"
