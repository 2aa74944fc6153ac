"""The tree has no import cycle: every taskapp module imports on its own in a fresh interpreter;
and no test module imports another (what tests share is in tests/support)."""

import ast
import json
import subprocess
import sys

import pytest

from conftest import PROJECT

# One fresh interpreter that enters the package at each module in turn, forgetting every
# taskapp module in between. ``import taskapp.x`` runs taskapp/__init__.py first, whose
# import order would hide a cycle between areas, so the root package is registered empty:
# each module's own imports then decide the order.
IMPORT_EACH_ALONE = """
import importlib, json, sys, types
failures = {}
for name in sys.argv[2:]:
    for loaded in [m for m in sys.modules if m == "taskapp" or m.startswith("taskapp.")]:
        del sys.modules[loaded]
    if name != "taskapp":
        root = types.ModuleType("taskapp")
        root.__path__ = [sys.argv[1]]
        sys.modules["taskapp"] = root
    try:
        importlib.import_module(name)
    except Exception as exc:
        failures[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(failures))
"""


def taskapp_modules() -> list[str]:
    """Every module of the taskapp package, by dotted name."""
    names = []
    for path in sorted((PROJECT / "taskapp").rglob("*.py")):
        parts = path.relative_to(PROJECT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.mark.slow
def test_every_module_imports_alone():
    modules = taskapp_modules()
    assert "taskapp.auth.service" in modules
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH_ALONE, str(PROJECT / "taskapp"), *modules],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(result.stdout) == {}


def test_no_test_module_imports_another():
    """A helper one test module takes from another makes the two run together (collection,
    fixtures, an xdist worker) and hides the harness: what tests share is in tests/support."""
    found = []
    for path in sorted((PROJECT / "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            found += [
                f"{path.name}: {name}"
                for name in names
                if name.startswith(("test_", "tests.test_"))
            ]
    assert found == []
