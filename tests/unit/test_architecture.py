"""The package's shape: no import circles, no private names across packages, small modules.

These read the source with :mod:`ast` (nothing is imported), so they are fast and catch a
circle or a reach into another room's internals the moment it is written.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "harness"
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path) -> list[tuple[str, str | None]]:
    """(module, imported name or None) for every absolute ``harness`` import, lazy ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("harness"):
            found.extend((node.module, a.name) for a in node.names)
        elif isinstance(node, ast.Import):
            found.extend((a.name, None) for a in node.names if a.name.startswith("harness"))
    return found


def _room(module: str) -> str:
    """``harness.metrics.shape`` -> ``harness.metrics``; top-level modules are their own room."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        for target, name in _imports(path):
            full = f"{target}.{name}" if name else target
            dest = full if full in mods else target
            if dest in mods and dest != mod:
                graph[mod].add(dest)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_cycle_finder_finds_a_planted_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    assert _cycles(_graph()) == []


def test_no_private_names_imported_across_rooms():
    offenders = []
    for mod, path in _modules().items():
        for target, name in _imports(path):
            private = [p for p in ([*target.split("."), name] if name else target.split("."))
                       if p.startswith("_") and not p.startswith("__")]
            if private and _room(target) != _room(mod):
                offenders.append(f"{mod} imports {target}{'.' + name if name else ''}")
    assert offenders == []


def test_modules_stay_small():
    big = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
           if (n := len(p.read_text("utf-8").splitlines())) > MAX_LINES}
    assert big == {}, f"split these modules (over {MAX_LINES} lines): {big}"


def test_every_room_is_a_package_that_says_its_job():
    """A folder of modules without ``__init__.py`` is a namespace package: a wheel leaves it out."""
    for folder in sorted({p.parent for p in PACKAGE.rglob("*.py")}):
        init = folder / "__init__.py"
        assert init.exists(), f"{folder.relative_to(ROOT)}: no __init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text("utf-8")))
        assert doc and len(doc.split()) >= 5, f"{init.relative_to(ROOT)}: no opening docstring naming the room's job"
