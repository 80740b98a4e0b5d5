"""No import cycles in ``vex_llm.cache`` (stores included), lazy imports inside functions counted.

The graph is read from the source (every ``import`` statement, except those under
``if TYPE_CHECKING:``), so a cycle hidden in a function body (``stores.redis`` importing
``stores.url`` which imports ``stores.redis``) is found too. And each module imports on its own
in a fresh interpreter, in an order no other test can hide.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import vex_llm

ROOT = Path(vex_llm.__file__).parent
CACHE = "vex_llm.cache"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py")}


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            if target in known:
                found.add(target)
                break  # "from m import f": m itself, not also its parents
    found.discard(name)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, set(known)) for name, path in known.items()}


def cycles(edges: dict[str, set[str]], within: str) -> list[list[str]]:
    """Every cycle among modules under ``within`` (one per strongly connected component)."""
    nodes = [n for n in edges if n == within or n.startswith(within + ".")]
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges[node]:
            if nxt not in nodes:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in nodes:
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_lazy_imports() -> None:
    edges = graph()
    assert "vex_llm.cache.stores.redis" in edges["vex_llm.cache.stores.url"]  # inside _redis()
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}, "a") == []  # only under `within`
    assert cycles({"x.a": {"x.b"}, "x.b": {"x.a"}}, "x") == [["x.a", "x.b"]]


def test_no_import_cycles_in_the_cache() -> None:
    edges = graph()
    # Package __init__ modules re-export their children: edges into them are not cycles.
    for name in edges:
        edges[name] = {t for t in edges[name] if modules()[t].name != "__init__.py"}
    assert cycles(edges, CACHE) == []


def test_each_cache_module_imports_alone_in_a_fresh_interpreter() -> None:
    names = sorted(n for n in modules() if n.startswith(CACHE))
    script = (
        "import importlib, subprocess, sys\n"
        "for name in sys.argv[1:]:\n"
        "    code = f'import {name}'\n"
        "    subprocess.run([sys.executable, '-W', 'error', '-c', code], check=True)\n"
    )
    subprocess.run([sys.executable, "-c", script, *names], check=True, timeout=120)
