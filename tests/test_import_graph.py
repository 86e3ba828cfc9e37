"""The import graph of ``src/dormant`` has no cycle and library code never imports ``bench``.

Every ``import`` statement in every module is counted — at module level and inside functions
(lazy imports), ``from . import x`` resolved to the submodule ``x`` when there is one. A cycle
(a strongly connected component of more than one module) means two parts cannot be understood,
tested or replaced one without the other; ``bench`` holds test organisms with ground truth and
must stay out of anything a user runs. The layers are drawn in ARCHITECTURE.md ("Import layers").
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
from _paths import ROOT

SRC = ROOT / "src"
PACKAGE = "dormant"
# Parts allowed to import the test organisms: bench itself, the scenarios built from them and
# the CLI commands that run those.
MAY_IMPORT_BENCH = ("dormant.bench", "dormant.scenarios", "dormant.cli")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is a module of the package, else None."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def import_graph() -> nx.DiGraph:
    """Directed graph module -> module it imports (any depth of the source, lazy included)."""
    modules = _modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base_parts = package.split(".")
                    if node.level > 1:
                        base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                    base = ".".join(base_parts)
                    base = f"{base}.{node.module}" if node.module else base
                else:
                    base = node.module or ""
                # `from pkg import sub` imports the submodule when there is one.
                targets = [f"{base}.{alias.name}" for alias in node.names] or [base]
                targets = [t if _resolve(t, modules) == t else base for t in targets]
            for target in targets:
                resolved = _resolve(target, modules)
                if resolved is not None and resolved != name:
                    graph.add_edge(name, resolved)
    return graph


def import_cycles() -> list[list[str]]:
    """Strongly connected components of more than one module, each sorted, largest first."""
    components = [sorted(c) for c in nx.strongly_connected_components(import_graph()) if len(c) > 1]
    return sorted(components, key=lambda c: (-len(c), c))


def test_the_graph_sees_lazy_and_relative_imports() -> None:
    graph = import_graph()
    # report imports findings relatively at module level and errors inside a function;
    # registry imports its schema inside methods (`from .schema import ...`).
    assert graph.number_of_nodes() > 100
    assert graph.has_edge("dormant.report", "dormant.findings")
    assert graph.has_edge("dormant.report", "dormant.errors")
    assert graph.has_edge("dormant.registry", "dormant.registry.schema")


def test_no_import_cycle() -> None:
    cycles = import_cycles()
    assert cycles == [], "import cycles (lazy imports counted):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def _part(module: str) -> str:
    """The top-level part a module belongs to: ``dormant.scanners.agent.probes`` ->
    ``dormant.scanners``."""
    return ".".join(module.split(".")[:2])


def test_the_parts_form_layers() -> None:
    # Coarser than modules: no two top-level parts (adapters, subjects, registry, provenance,
    # scanners ...) import each other, even through different modules; see ARCHITECTURE.md.
    graph = import_graph()
    parts = nx.DiGraph()
    parts.add_edges_from((_part(a), _part(b)) for a, b in graph.edges if _part(a) != _part(b))
    cycles = sorted(sorted(c) for c in nx.strongly_connected_components(parts) if len(c) > 1)
    detail = [
        f"{a} -> {b}"
        for c in cycles
        for a, b in sorted(graph.edges)
        if _part(a) in c and _part(b) in c and _part(a) != _part(b)
    ]
    assert cycles == [], "parts importing each other:\n" + "\n".join(detail)


def test_library_code_does_not_import_bench() -> None:
    graph = import_graph()
    offenders = sorted(
        f"{src} -> {dst}"
        for src, dst in graph.edges
        if (dst == "dormant.bench" or dst.startswith("dormant.bench."))
        and not any(src == p or src.startswith(p + ".") for p in MAY_IMPORT_BENCH)
    )
    assert offenders == [], "library modules importing the test organisms:\n" + "\n".join(offenders)
