"""``pip install .`` alone gives a working package: every third-party module that brats_lib imports is
provided by a distribution declared in pyproject.toml's dependencies."""

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _imported_top_level_modules() -> set[str]:
    names = set()
    for path in (REPO / "brats_lib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"brats_lib", "__future__"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_distribution_is_declared():
    declared = {_normalise(re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0])
                for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    providers = packages_distributions()
    modules = _imported_top_level_modules()
    assert {"torch", "numpy", "edt", "surface_distance", "PIL"} <= modules  # the scan sees the imports
    missing = {m: providers.get(m) for m in modules
               if not declared & {_normalise(d) for d in providers.get(m, [m])}}
    assert not missing, f"imported by brats_lib but not declared in pyproject.toml: {missing}"
