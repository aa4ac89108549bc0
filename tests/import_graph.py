"""The import graph of ``mtlaug_lib``, read from the source (nothing is imported).

Used by ``tests/test_architecture.py``; run it to draw the graph between packages as a Mermaid
diagram (paste it into any Mermaid viewer, or a Markdown file on GitHub)::

    python tests/import_graph.py            # packages
    python tests/import_graph.py --modules  # every module
"""

from __future__ import annotations

import argparse
import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "mtlaug_lib"

# Which packages each package may import. The order is the architecture: the core first; the
# data sets on it; augmentation on both; training on the core alone (batches reach it already
# augmented); the course on everything; the top-level __init__ re-exports.
ALLOWED = {
    "core": {"core"},
    "data": {"core", "data"},
    "augment": {"core", "data", "augment"},
    "training": {"core", "training"},
    "course": {"core", "data", "augment", "training", "course"},
    "": {"core", "data", "augment", "training"},  # mtlaug_lib/__init__.py (course: lazily)
}


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``names`` from ``target`` at ``line``; ``local`` if inside a function."""

    source: str
    target: str
    names: tuple[str, ...]
    line: int
    local: bool


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """``{dotted name: file}`` for every module and package of the library."""
    return {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def package_of(module: str) -> str:
    """The sub-package a module belongs to (``""`` for the top-level package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _resolve(source: str, is_package: bool, level: int, target: str | None) -> str:
    base = source.split(".") if is_package else source.split(".")[:-1]
    if level:
        base = base[: len(base) - (level - 1)]
        return ".".join(base + ([target] if target else []))
    return target or ""


def edges() -> list[Edge]:
    """Every import of one library module by another, module-level and inside functions."""
    known = modules()
    out = []
    for source, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_level = {id(node) for node in tree.body}
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            local = id(node) not in top_level
            if isinstance(node, ast.ImportFrom):
                target = _resolve(source, is_package, node.level, node.module)
                if not target.startswith(PACKAGE):
                    continue
                # `from package import module` is an import of that module
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    name = sub if sub in known else target
                    out.append(Edge(source, name, (alias.name,), node.lineno, local))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith(PACKAGE):
                        out.append(Edge(source, alias.name, (), node.lineno, local))
    return [e for e in out if e.target != e.source]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def mermaid(by_module: bool = False) -> str:
    """The graph as a Mermaid flowchart (packages, or every module grouped by package)."""
    lines = ["flowchart BT"]
    if by_module:
        for pkg in ALLOWED:
            members = [m for m in modules() if package_of(m) == pkg and m != PACKAGE]
            if pkg and members:
                lines.append(f"  subgraph {pkg}")
                lines += [f"    {m.replace('.', '_')}[{m.split('.')[-1]}]" for m in members]
                lines.append("  end")
        pairs = {(e.source, e.target) for e in edges() if e.source != PACKAGE}
        lines += [f"  {a.replace('.', '_')} --> {b.replace('.', '_')}" for a, b in sorted(pairs)]
    else:
        pairs = {(package_of(e.source), package_of(e.target)) for e in edges()}
        lines += [f"  {a or PACKAGE} --> {b or PACKAGE}" for a, b in sorted(pairs) if a != b]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", action="store_true", help="draw every module")
    print(mermaid(parser.parse_args().modules))
