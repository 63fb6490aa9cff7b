"""The house's layout rules, checked on the source:

* dependencies point one way: gazex_core imports neither training, annotations_db nor app;
* no import circle among the product modules (function-local and TYPE_CHECKING imports count too: a circle
  hidden inside a function is still a circle);
* no test scaffolding in product packages: no product module imports a test tool, and none is named like
  a stand-in (demo, simulation, fake, mock, stub, throwaway cluster) - those live in tests/.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "gazex_core"
PRODUCT_PACKAGES = ("gazex_core", "annotations_db", "training", "app", "interop")
TEST_TOOLS = ("pytest", "hypothesis", "playwright", "unittest.mock", "_pytest")
SCAFFOLDING_NAME = re.compile(r"(^|_)(demo|simulation|simulated|fake|fakes|mock|mocks|stub|stubs|pgcluster|testing"
                              r"|fixtures?)(_|$)")


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


def packages_loaded_by(statements: str, packages: set[str]) -> list[str]:
    """Which of ``packages`` a fresh interpreter has imported after running ``statements``."""
    code = (f"import json, sys; {statements}; "
            f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(packages)!r}))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=CORE.parent)
    return json.loads(out.stdout)


def test_loading_the_api_pulls_in_neither_package():
    api = "import gazex_core, gazex_core.inference, gazex_core.cli, gazex_core.imaging, gazex_core.checkpoint"
    assert packages_loaded_by(api, {"training", "annotations_db", "app"}) == []


def test_drafting_with_the_shipped_model_loads_neither_transformers_nor_peft():
    """A cold `gazex analyze` should cost little more than importing torch: the tiny model is plain torch."""
    draft = ("import numpy as np; from gazex_core import GazeX; "
             "GazeX().analyze(np.random.default_rng(0).random((256, 256), dtype=np.float32), draft_out_of_scope=True)")
    assert packages_loaded_by(draft, {"transformers", "peft", "accelerate"}) == []


def test_building_the_command_line_loads_no_model_or_database_library():
    """`gazex --help` and argument errors answer without importing torch, transformers or SQLAlchemy."""
    parser = "import training.cli; training.cli.build_parser()"
    assert packages_loaded_by(parser, {"torch", "transformers", "sqlalchemy"}) == []


def test_parsing_a_drafting_command_builds_only_the_model_api_commands():
    """A cold `gazex analyze` parses its arguments without importing the training, database or interop commands."""
    parse = "import training.cli; training.cli.build_parser('analyze').parse_args(['analyze', 'x.dcm'])"
    assert packages_loaded_by(parse, {"annotations_db", "interop"}) == []
    assert not [m for m in json.loads(subprocess.run(
        [sys.executable, "-c", f"import json, sys; {parse}; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True, cwd=REPO).stdout) if m.startswith("training.") and m != "training.cli"]


def test_every_command_is_still_reachable_through_the_partial_parser():
    import training.cli

    everything = training.cli.build_parser()
    commands = next(a for a in everything._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name in commands:
        partial = training.cli.build_parser(name)
        assert name in next(a for a in partial._actions if isinstance(a, argparse._SubParsersAction)).choices


# ------------------------------------------------------------------ the import graph


def product_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the product packages (a package is its __init__)."""
    modules = {}
    for package in PRODUCT_PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")) if (REPO / package).is_dir() else []:
            parts = path.relative_to(REPO).with_suffix("").parts
            if "migrations" in parts:
                continue  # Alembic loads revisions by file; they are not imported as modules
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = module.split(".")
    base = package[: len(package) - node.level + (1 if _is_package(module) else 0)]
    return ".".join(base + ([node.module] if node.module else []))


_PACKAGES: set[str] = set()


def _is_package(module: str) -> bool:
    return module in _PACKAGES


def imported_modules(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every product module ``module`` imports, wherever the import statement is (top level or in a function)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            origin = _absolute(module, node)
            targets = [f"{origin}.{alias.name}" for alias in node.names] + [origin]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]  # `from pkg import name`: the module pkg.name, else pkg
            if target and target != module:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    known = product_modules()
    _PACKAGES.clear()
    _PACKAGES.update(name for name, path in known.items() if path.name == "__init__.py")
    graph = {}
    for module, path in known.items():
        # a module importing its own parent package's __init__ is how Python imports it: not an edge of ours
        parents = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        graph[module] = imported_modules(module, path, known) - parents
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_graph_sees_function_local_imports(tmp_path):
    """The checker itself: an import hidden inside a function is an edge, and a circle through it is found."""
    graph = {"app.main": {"app.admin"}, "app.admin": {"app.admin_models"}, "app.admin_models": {"app.main"},
             "app.plots": set()}
    assert find_cycles(graph) == [["app.admin", "app.admin_models", "app.main"]]
    source = tmp_path / "admin_models.py"
    source.write_text("def wire():\n    from .main import request_username\n")
    known = {"app": tmp_path / "__init__.py", "app.main": tmp_path / "main.py", "app.admin_models": source}
    _PACKAGES.clear()
    _PACKAGES.add("app")
    assert imported_modules("app.admin_models", source, known) == {"app.main"}


def test_no_import_circle_in_any_package():
    graph = import_graph()
    assert {"app.main", "app.admin", "app.admin_models", "app.context"} <= set(graph)
    cycles = find_cycles(graph)
    assert not cycles, "import circles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_test_scaffolding_in_product_packages():
    graph = import_graph()
    tools = []
    for module, path in product_modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            tools += [f"{module} imports {n}" for n in names if any(n == t or n.startswith(t + ".") for t in TEST_TOOLS)]
    named = [m for m in graph if SCAFFOLDING_NAME.search(m.rpartition(".")[2])]
    assert not tools, tools
    assert not named, f"test scaffolding belongs in tests/: {named}"


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
