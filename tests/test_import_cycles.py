"""No import cycles in dags/, plugins/ (package `groundtruth`) or emulator/: modules import downwards only.

Every import counts, including function-local and `TYPE_CHECKING` ones: a cycle hidden inside a function is still
a cycle a reader has to untangle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# (directory holding top-level packages or modules, the module name prefix its files get)
ROOTS = {
    "emulator": (REPO, "emulator"),
    "groundtruth": (REPO / "plugins", "groundtruth"),
    "dags": (REPO / "dags", ""),
}


def _module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, tuple[Path, bool]]:
    """module name -> (file, is a package's __init__), for every .py under the three roots."""
    found: dict[str, tuple[Path, bool]] = {}
    for base, package in ROOTS.values():
        top = base / package if package else base
        for path in sorted(top.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            found[_module_name(path, base)] = (path, path.name == "__init__.py")
    return found


def _imported(module: str, is_package: bool, tree: ast.AST) -> set[str]:
    """Every module name this module's code imports, anywhere in the file, relative imports resolved."""
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".") if package else []
                anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            names.add(base)
            # `from package import module` imports the submodule too
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges = set()
        for target in _imported(name, is_package, tree):
            # importing a.b.c runs a and a.b too; keep only the modules of the three roots
            parts = target.split(".")
            for end in range(1, len(parts) + 1):
                candidate = ".".join(parts[:end])
                if candidate in modules and candidate != name:
                    edges.add(candidate)
        graph[name] = edges
    return graph


def _ancestors(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:end]) for end in range(1, len(parts))}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan), each as a closed path.

    A package importing its own submodules (and them importing the package) is how packages work, not a cycle:
    edges from a module to the packages that contain it are left out.
    """
    edges = {name: {t for t in targets if t not in _ancestors(name)} for name, targets in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
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
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return [_closed_path(component, edges) for component in components]


def _closed_path(component: list[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first), e.g. [a, b, a]."""
    start, members = component[0], set(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(edges[node] & members):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, node, start]
                if nxt not in parents:
                    parents[nxt] = node
                    following.append(nxt)
        frontier = following
    return [*component, component[0]]


def test_the_walk_sees_local_type_checking_and_relative_imports():
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import sibling\n"
        "from ..other import thing\n"
        "if TYPE_CHECKING:\n    import pkg.typed\n"
        "def f():\n    import pkg.local\n"
    )
    found = _imported("pkg.sub.mod", False, ast.parse(source))
    assert {"pkg.sub", "pkg.sub.sibling", "pkg.other", "pkg.other.thing", "pkg.typed", "pkg.local"} <= found


def test_cycles_are_found_and_printed_as_paths():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "p": {"p.x"}, "p.x": {"p"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]


@pytest.mark.parametrize("root", sorted(ROOTS))
def test_no_import_cycles(root):
    graph = import_graph()
    prefix = ROOTS[root][1]
    if prefix:
        mine = [c for c in find_cycles(graph) if any(m == prefix or m.startswith(prefix + ".") for m in c)]
    else:
        dag_files = {_module_name(p, ROOTS["dags"][0]) for p in ROOTS["dags"][0].glob("*.py")}
        mine = [c for c in find_cycles(graph) if any(m in dag_files for m in c)]
    assert not mine, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in mine)
