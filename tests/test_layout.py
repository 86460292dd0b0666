"""llem's packages import each other without cycles (docs/DEVELOPING.md, "Map").

Every ``import`` statement counts, those inside functions too: a function-level import only
delays a cycle to the first call, it does not remove it. Imports are read with ``ast`` (nothing
is imported), resolved to llem's modules, and folded into units: one unit per package directly
under ``llem/`` (``llem.measure``, ``llem.results``, ...), one per top-level module
(``llem.api``, ``llem.result``, ``llem.errors``), and the Hydra plugins.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("llem", "hydra_plugins")

Edge = tuple[str, str, str, int]  # (importing module, imported module, file, line)


def modules(repo: Path, roots=ROOTS) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under the roots."""
    out = {}
    for root in roots:
        for path in sorted((repo / root).rglob("*.py")):
            parts = list(path.relative_to(repo).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def imported(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, int]]:
    """(module, line) for each of ``known`` that the file imports, at any depth of the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from pkg import sub` imports the module pkg.sub; `from mod import name` imports mod
            targets = [f"{mod}.{a.name}" for a in node.names] + [mod]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add((t, node.lineno))
    return sorted(found)


def unit(module: str, repo: Path = REPO) -> str:
    """The package directly under a root that holds ``module``, or the top-level module itself."""
    parts = module.split(".")
    if len(parts) >= 2 and (repo / parts[0] / parts[1]).is_dir():
        return ".".join(parts[:2])
    return module


def unit_graph(repo: Path = REPO, roots=ROOTS) -> dict[str, dict[str, list[Edge]]]:
    """unit -> imported unit -> the module-level imports that make the edge."""
    known = modules(repo, roots)
    graph: dict[str, dict[str, list[Edge]]] = defaultdict(lambda: defaultdict(list))
    for name, path in known.items():
        for target, line in imported(name, path, known):
            a, b = unit(name, repo), unit(target, repo)
            if a != b:
                graph[a][b].append((name, target, str(path.relative_to(repo)), line))
    return graph


def find_cycle(graph: dict[str, dict[str, list]]) -> Optional[list[str]]:
    """One cycle [u0, u1, ..., u0] of the directed graph, or None if it has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(u: str) -> Optional[list[str]]:
        state[u] = 1
        path.append(u)
        for v in sorted(graph.get(u, {})):
            if state.get(v) == 1:
                return path[path.index(v):] + [v]
            if v not in state:
                found = visit(v)
                if found:
                    return found
        path.pop()
        state[u] = 2
        return None

    for u in sorted(graph):
        if u not in state:
            found = visit(u)
            if found:
                return found
    return None


def describe(cycle: list[str], graph) -> str:
    lines = [" -> ".join(cycle)]
    for a, b in zip(cycle, cycle[1:]):
        for src, dst, file, line in graph[a][b][:3]:
            lines.append(f"  {a} -> {b}: {file}:{line} imports {dst}")
    return "\n".join(lines)


def test_llem_packages_import_each_other_without_cycles():
    graph = unit_graph()
    assert "llem.measure" in graph and "llem.results" in graph  # the walk found llem's packages
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle among llem's packages:\n" + describe(cycle, graph)


def test_the_cycle_check_sees_imports_inside_functions(tmp_path):
    """A cycle closed only by an import inside a function is still found, and named."""
    for d in ("pkg", "pkg/a", "pkg/b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "__init__.py").write_text("")
    (tmp_path / "pkg/a/x.py").write_text("from pkg.b.y import f\n")
    (tmp_path / "pkg/b/y.py").write_text("def f():\n    from ..a import x\n    return x\n")
    graph = unit_graph(tmp_path, ("pkg",))
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]
    assert "pkg/b/y.py:2 imports pkg.a" in describe(find_cycle(graph), graph)
    (tmp_path / "pkg/b/y.py").write_text("def f():\n    return 1\n")
    assert find_cycle(unit_graph(tmp_path, ("pkg",))) is None
