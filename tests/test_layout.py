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


def test_every_library_the_package_imports_is_declared() -> None:
    """A wheel installs only what pyproject declares: an import that works here only because
    mitmproxy happens to bring it along would break the day mitmproxy stops doing so."""
    import ast
    import importlib.metadata
    import re
    import sys

    project = tomli.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0].lower().replace("_", "-") for d in project["dependencies"]
    }
    dists = importlib.metadata.packages_distributions()
    imported: dict[str, str] = {}
    for folder in ("daemon", "rules", "installer"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module]
                    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                    else []
                )
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in ("zerocontact", "__future__"):
                        imported.setdefault(top, str(path.relative_to(ROOT)))
    assert imported, "the scan found no imports at all"
    missing = {
        top: where
        for top, where in imported.items()
        if not {d.lower().replace("_", "-") for d in dists.get(top, [top])} & declared
    }
    assert missing == {}, "declare these in [project] dependencies"
