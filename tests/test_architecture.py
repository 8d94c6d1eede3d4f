"""The folder tree is the architecture: imports run one way (installer → daemon → rules), no module
imports another in a circle, one module touches mitmproxy's master internals, every module imports
on its own in a fresh interpreter, and every source module has a test module that mirrors it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"rules": 0, "daemon": 1, "installer": 2}  # a layer may import only layers below it
MASTER_INTERNALS = ("mitmproxy.master", "mitmproxy.tools", "mitmproxy.addons", "mitmproxy.options")
THE_ADAPTER = "zerocontact.daemon.proxy"

# Source modules whose behaviour is tested through another module's tests, and why.
COVERED_ELSEWHERE = {
    "zerocontact.daemon.cli.common": "every command's test exercises it (tests/daemon/cli/)",
    "zerocontact.daemon.cli.__main__": "the installed service runs it; tests/installer/test_systemd.py",
    "zerocontact.daemon.sdnotify": "tests/e2e/test_daemon.py::test_tells_systemd_ready",
    "zerocontact.daemon.clientproc": "the blocker's client lookups, tests/e2e/test_daemon.py",
    "zerocontact.daemon.schedule": "tests/daemon/test_app.py drives transitions through it",
    "zerocontact.daemon.enforcement": "tests/daemon/test_app.py and tests/daemon/test_blocker.py",
    "zerocontact.daemon.status": "tests/daemon/test_app.py (written) and tests/daemon/cli/ (read)",
    "zerocontact.daemon.pac": "tests/e2e/test_daemon.py::test_listens_on_loopback_only_and_serves_pac",
    "zerocontact.daemon.proxy": "every e2e test runs the real proxy (tests/e2e/)",
    "zerocontact.daemon.blockpage": "tests/daemon/test_blocker.py and tests/e2e/test_browser.py",
    "zerocontact.daemon.paths": "every test that resolves a state dir; tests/daemon/test_app.py",
    "zerocontact.daemon.journal.errors": "every journal test that checks an error names the file",
    "zerocontact.rules.errors": "tests/rules/test_loader.py (every located problem)",
    "zerocontact.rules.locate": "tests/rules/test_loader.py (line and column of each problem)",
    "zerocontact.rules.schema": "tests/rules/test_loader.py (the schema is what the loader builds)",
    "zerocontact.rules.platforms": "tests/rules/test_cases.py runs every preset's sample requests",
    "zerocontact.rules.request": "tests/rules/test_matcher.py and tests/rules/test_cases.py",
    "zerocontact.rules.response": "tests/daemon/test_blocker.py (response-side owner checks)",
    "zerocontact.rules.sample": "tests/rules/test_loader.py::test_sample_passes_check_as_written",
    "zerocontact.rules.dump": "tests/rules/test_commit.py (dump then load is an identity)",
    "zerocontact.installer.context": "every installer test builds one (tests/installer/)",
    "zerocontact.installer.plan": "tests/installer/test_install.py",
    "zerocontact.installer.cli": "tests/installer/test_install.py runs install/uninstall/doctor",
    "zerocontact.installer.doctor": "tests/installer/test_install.py (doctor after install)",
    "zerocontact.installer.trust": "tests/installer/test_install.py (trust stores filled, restored)",
    "zerocontact.installer.routing": "tests/installer/test_install.py and test_other_systems.py",
    "zerocontact.installer.policies": "tests/installer/test_browser.py (Chromium under the policy)",
    "zerocontact.installer.launchd": "tests/installer/test_other_systems.py (content only: no launchd)",
    "zerocontact.installer.windows": "tests/installer/test_other_systems.py (content only: no Windows)",
}


def modules() -> dict[str, Path]:
    """Every source module by its import name."""
    found = {}
    for folder in LAYERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(["zerocontact", *parts])] = path
    return found


def imports_of(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports, anywhere in the file (a lazy import inside a function counts:
    it is a dependency all the same), resolved to absolute names."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}  # `from . import x` imports module x
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {
        name: {m for m in imports_of(name, path) if m in mods and m != name} for name, path in mods.items()
    }


def layer(name: str) -> int:
    return LAYERS[name.split(".")[1]]


def test_imports_run_one_way() -> None:
    wrong = [
        f"{a} imports {b}"
        for a, deps in graph().items()
        for b in deps
        if layer(b) > layer(a)  # rules never imports daemon or installer; daemon never installer
    ]
    assert wrong == []


def test_no_import_cycles() -> None:
    g = graph()
    # a package's __init__ re-exporting its own parts is not a cycle between parts
    edges = {a: {b for b in deps if not a.startswith(b + ".")} for a, deps in g.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n, [n])
    assert cycles == []


def test_only_the_adapter_imports_mitmproxy_master_internals() -> None:
    users = {
        name
        for name, path in modules().items()
        for m in imports_of(name, path)
        if m.startswith(MASTER_INTERNALS) or m in {"mitmproxy.master", "mitmproxy.addons"}
    }
    assert users == {THE_ADAPTER}


def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    names = sorted(n for n in modules() if not n.endswith("__main__"))
    code = (
        "import importlib, sys\n"
        "bad = []\n"
        f"for n in {names!r}:\n"
        "    try:\n"
        "        importlib.import_module(n)\n"
        "    except Exception as e:\n"
        "        bad.append(f'{n}: {e!r}')\n"
        "print('\\n'.join(bad)); sys.exit(1 if bad else 0)\n"
    )
    # each module in its own interpreter would take minutes; one fresh one, in order, still catches
    # an import-time cycle (ImportError: partially initialised module) and a missing dependency
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_module_has_a_mirrored_test_module() -> None:
    missing = []
    for name, path in modules().items():
        if name in COVERED_ELSEWHERE or path.name == "__init__.py":
            continue
        parts = name.split(".")[1:]  # e.g. daemon, cli, review
        folder = ROOT / "tests" / Path(*parts[:-1])
        if not ((folder / f"test_{parts[-1]}.py").exists() or (folder / parts[-1]).is_dir()):
            missing.append(f"tests/{'/'.join(parts[:-1])}/test_{parts[-1]}.py for {name}")
    assert missing == [], "add these, or list the module in COVERED_ELSEWHERE with where it is tested"


def test_covered_elsewhere_names_real_modules() -> None:
    assert set(COVERED_ELSEWHERE) <= set(modules())


def test_no_two_public_classes_share_a_name() -> None:
    seen: dict[str, list[str]] = {}
    for name, path in modules().items():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                seen.setdefault(node.name, []).append(name)
    assert {k: v for k, v in seen.items() if len(v) > 1} == {}


def test_pytest_runs_as_design_md_says() -> None:
    """importlib import mode and never the repository root on sys.path: the bare folders daemon/,
    rules/ and installer/ must not shadow another module of the same name (e.g. python-daemon)."""
    import tomli

    cfg = tomli.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--import-mode=importlib" in cfg["addopts"]
    assert all((ROOT / p).resolve() != ROOT for p in cfg.get("pythonpath", []))
    assert not (ROOT / "tests" / "__init__.py").exists()
    assert all(str(ROOT) != p for p in sys.path), "the repository root is on sys.path"
