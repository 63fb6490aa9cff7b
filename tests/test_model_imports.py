"""gazex_core imports neither training nor annotations_db (dependency direction)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "gazex_core"


def test_no_forbidden_imports_in_source():
    bad = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            bad += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("training", "annotations_db", "app")]
    assert not bad, bad


def test_loading_the_api_pulls_in_neither_package():
    code = ("import sys, gazex_core, gazex_core.inference, gazex_core.cli, gazex_core.imaging; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'training', 'annotations_db', 'app'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=CORE.parent).stdout.strip()
    assert out == "[]"


INTEROP = CORE.parent / "interop"
PACKAGES = ("gazex_core", "annotations_db", "training", "app", "interop")
MAY_IMPORT = {"interop": {"gazex_core", "annotations_db", "interop"}}


def _top_level_imports(package: Path) -> list[tuple[str, str]]:
    found = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found += [(path.name, a.name.split(".")[0]) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((path.name, node.module.split(".")[0]))
    return found


def test_interop_imports_only_gazex_core_and_annotations_db():
    bad = [f"{name}: {module}" for name, module in _top_level_imports(INTEROP)
           if module in PACKAGES and module not in MAY_IMPORT["interop"]]
    assert not bad, bad


def test_only_app_and_training_import_interop():
    for package in ("gazex_core", "annotations_db"):
        bad = [f"{name}: interop" for name, module in _top_level_imports(CORE.parent / package) if module == "interop"]
        assert not bad, bad
