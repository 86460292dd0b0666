"""llem's packages import each other without cycles, and only as docs/DEVELOPING.md's map allows.

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


# What each unit may import besides itself: the "may import" column of docs/DEVELOPING.md's map
# (keep the two together). An entry is a unit or, for a single module of one, the module.
BASE = {"llem._version", "llem.errors", "llem.result", "llem.fsio"}
PACKAGES = {"llem.models", "llem.datasets", "llem.config", "llem.devices", "llem.meters", "llem.backends",
            "llem.environment", "llem.measure", "llem.runners", "llem.results", "llem.study", "llem.cli",
            "llem.quality", "llem.serve"}
MAY_IMPORT: dict[str, set[str]] = {
    "llem._version": set(),
    "llem.errors": set(),
    "llem.fsio": set(),
    "llem.result": {"llem.fsio"},
    "llem.models": BASE,
    "llem.datasets": BASE | {"llem.models"},
    "llem.config": BASE | {"llem.models", "llem.datasets"},
    "llem.devices": BASE,
    "llem.meters": BASE | {"llem.devices"},
    # a backend loads and generates: nothing about energy, nothing of the protocol
    "llem.backends": BASE | {"llem.config", "llem.devices", "llem.models", "llem.datasets"},
    "llem.environment": BASE | {"llem.devices"},
    "llem.measure": BASE | {"llem.backends", "llem.config", "llem.datasets", "llem.devices", "llem.environment",
                            "llem.meters", "llem.models", "llem.quality"},
    # v3: scores measured on the very backend object the harness measured, in its own meter windows
    "llem.quality": BASE | {"llem.backends", "llem.config", "llem.datasets", "llem.devices", "llem.meters",
                            "llem.models"},
    "llem.runners": BASE | {"llem.config", "llem.devices", "llem.measure"},
    # reads the two schemas; runs nothing (the web reads results through it)
    "llem.results": BASE | {"llem.measure.stats"},
    # v4: serves stored results; imports no backend and runs no measurement
    "llem.serve": BASE | {"llem.results"},
    "llem.study": BASE | {"llem.config", "llem.devices", "llem.environment", "llem.models", "llem.results",
                          "llem.runners"},
    # `llem serve` hands over to llem.serve.cli, imported only when that command runs (FastAPI loads there alone)
    "llem.cli": BASE | PACKAGES - {"llem.cli"},
    "llem.api": BASE | {"llem.cli", "llem.config", "llem.runners"},
    "llem": BASE | {"llem.api", "llem.config", "llem.results"},
    "llem.__main__": {"llem.cli"},
    "hydra_plugins.llem_plugins": BASE | PACKAGES - {"llem.cli", "llem.serve"},
}


def violations(graph, may_import) -> list[str]:
    """One line per import the map does not allow, and per unit the map does not know."""
    out = []
    for a in sorted(graph):
        if a not in may_import:
            out.append(f"{a} is not in the map: give it a row in docs/DEVELOPING.md and in MAY_IMPORT")
            continue
        for b in sorted(graph[a]):
            for src, dst, file, line in graph[a][b]:
                if b not in may_import[a] and dst not in may_import[a]:
                    out.append(f"{file}:{line}: {src} imports {dst}, but {a} may import only "
                               f"{', '.join(sorted(may_import[a])) or 'nothing of llem'}")
    return out


def test_llem_packages_import_each_other_without_cycles():
    graph = unit_graph()
    assert "llem.measure" in graph and "llem.results" in graph  # the walk found llem's packages
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle among llem's packages:\n" + describe(cycle, graph)


def test_each_package_imports_only_what_the_map_allows():
    bad = violations(unit_graph(), MAY_IMPORT)
    assert not bad, "imports the map (docs/DEVELOPING.md) does not allow:\n" + "\n".join(bad)


def test_the_map_check_names_the_import_it_refuses():
    graph = {"llem.results": {"llem.measure": [("llem.results.plots", "llem.measure.sampler", "llem/results/plots.py", 3)],
                              "llem.result": [("llem.results.load", "llem.result", "llem/results/load.py", 9)]},
             "llem.newroom": {}}
    assert violations(graph, MAY_IMPORT) == [
        "llem.newroom is not in the map: give it a row in docs/DEVELOPING.md and in MAY_IMPORT",
        "llem/results/plots.py:3: llem.results.plots imports llem.measure.sampler, but llem.results may import "
        "only llem._version, llem.errors, llem.fsio, llem.measure.stats, llem.result"]
    graph["llem.results"]["llem.measure"] = [("llem.results.compare", "llem.measure.stats", "llem/results/compare.py", 5)]
    del graph["llem.newroom"]
    assert violations(graph, MAY_IMPORT) == []


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
