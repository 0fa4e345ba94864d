"""The package's import contract (docs/architecture.md): data flows one way through layers, and only the GUI imports
napari/Qt."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "napari_samed"

#: Bottom to top: a module may import its own layer and those below, never one above.
LAYERS = [
    {"errors", "tasks", "masks"},
    {"io", "phantom", "sample_data"},
    {"models"},
    {"training"},
    {"methods"},
    {"evaluation"},
    {"interactive"},
    {"napari_io", "widgets", "cli", "__init__"},
]
GUI = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "vispy", "superqt",
       "matplotlib.backends.backend_qtagg")
#: Where napari/Qt may be imported: the widgets, the npe2 hooks, and the CLI's command that opens a viewer.
GUI_ALLOWED = {"widgets", "napari_io", "cli:cmd_demo"}


def layer_of(part: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if part in names)


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        yield path, parts


def imports(path: Path, parts: tuple[str, ...]):
    """(imported module as a dotted name, enclosing top-level function or None) for every import in the file."""
    tree = ast.parse(path.read_text())
    package = ("napari_samed", *parts[:-1]) if parts[-1] != "__init__" else ("napari_samed", *parts[:-1])
    for top in tree.body:
        func = top.name if isinstance(top, ast.FunctionDef | ast.AsyncFunctionDef) else None
        for node in ast.walk(top):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield alias.name, func
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[:len(package) - node.level + 1]
                    name = ".".join(base + ((node.module,) if node.module else ()))
                    if not node.module:  # `from . import x`: each name is a module of that package
                        for alias in node.names:
                            yield f"{name}.{alias.name}", func
                        continue
                else:
                    name = node.module
                yield name, func


def test_every_module_has_a_layer():
    for _, parts in modules():
        layer_of(parts[0])


def test_no_module_imports_from_a_layer_above_it():
    upward = []
    for path, parts in modules():
        own = layer_of(parts[0])
        for name, _ in imports(path, parts):
            if name.startswith("napari_samed.") and layer_of(name.split(".")[1]) > own:
                upward.append(f"{'/'.join(parts)} imports {name}")
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_only_the_gui_imports_napari_or_qt():
    found = []
    for path, parts in modules():
        for name, func in imports(path, parts):
            if name.split(".")[0] in GUI or name in GUI:
                if parts[0] not in GUI_ALLOWED and f"{parts[0]}:{func}" not in GUI_ALLOWED:
                    found.append(f"{'/'.join(parts)} imports {name}")
    assert not found, "napari/Qt imported outside the GUI:\n" + "\n".join(found)


def test_headless_modules_load_without_napari_or_qt():
    modules = "napari_samed.cli, napari_samed.interactive, napari_samed.evaluation.report, napari_samed.methods"
    code = f"import sys, {modules}; print(sorted(m for m in sys.modules if m.split('.')[0] in {GUI!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_opening_the_segment_widget_imports_no_model_code():
    """napari imports the widget's module on its GUI thread: torch (seconds) must wait for the worker."""
    code = ("import sys, napari_samed.widgets.segment; "
            "print(sorted(m for m in ('torch', 'monai', 'segment_anything', 'timm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_modules_stay_short():
    """No module over 400 lines, and the Segment widget's class under 250: a newcomer reads one concern at a time."""
    long = [f"{'/'.join(parts)}: {n}" for path, parts in modules() if (n := len(path.read_text().splitlines())) > 400]
    assert not long, long
    tree = ast.parse((PACKAGE / "widgets" / "segment" / "widget.py").read_text())
    [widget] = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "SegmentWidget"]
    assert widget.end_lineno - widget.lineno + 1 < 250
