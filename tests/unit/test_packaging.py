"""What a maintainer expects of the package: every imported package declared, one version, the licence file."""

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import tomllib

import napari_samed

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


#: Imported only where installed, inside ``try: ... except ImportError``: torch's own optional dependency, which
#: `napari_samed.widgets.model_code.keep_triton_out` loads early so that it cannot crash napari later.
OPTIONAL = {"triton"}


def declared() -> set[str]:
    names = PYPROJECT["project"]["dependencies"]
    return {re.split(r"[<>=!~ \[;]", n, maxsplit=1)[0].lower().replace("_", "-") for n in names}


def imported_packages() -> set[str]:
    found = set()
    for path in (ROOT / "src" / "napari_samed").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"napari_samed"} - OPTIONAL


def test_every_imported_package_is_declared():
    providers = importlib.metadata.packages_distributions()
    deps = declared()
    undeclared = {name: providers.get(name) for name in imported_packages()
                  if not {d.lower().replace("_", "-") for d in providers.get(name, [name])} & deps}
    assert not undeclared, f"imported but not in pyproject's dependencies: {undeclared}"


def test_the_version_is_written_once():
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert importlib.metadata.version("napari-samed") == napari_samed.__version__


def test_the_licence_file_matches_pyproject():
    assert PYPROJECT["project"]["license"] == "BSD-3-Clause"
    assert (ROOT / "LICENSE").read_text().startswith("BSD 3-Clause License")
