"""The folder tree is the architecture: no import cycle, and no import that runs back up.

The graph is read from the source (``tests/import_graph.py``), so an import hidden inside a
function counts like one at the top of a module.
"""

from __future__ import annotations

import pytest
from import_graph import ALLOWED, PACKAGE, Edge, edges, find_cycle, modules, package_of


@pytest.fixture(scope="module")
def graph_edges() -> list[Edge]:
    return edges()


def test_the_graph_is_read_from_every_module(graph_edges) -> None:
    found = modules()
    assert f"{PACKAGE}.core.tasks" in found and f"{PACKAGE}.training.loop" in found
    assert {package_of(m) for m in found} == set(ALLOWED)  # no package the rules forget
    # the reader sees relative imports, including those inside functions
    assert any(e.source == f"{PACKAGE}.training.loop" and e.target.startswith(f"{PACKAGE}.core")
               for e in graph_edges)


def test_find_cycle_finds_a_cycle_and_only_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None  # a diamond


def test_no_import_cycle_between_modules(graph_edges) -> None:
    graph: dict[str, set[str]] = {}
    for e in graph_edges:
        if e.source != PACKAGE:  # the top-level __init__ re-exports everything: not a layer
            graph.setdefault(e.source, set()).add(e.target)
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_every_import_goes_down_the_layers(graph_edges) -> None:
    wrong = [f"{e.source}:{e.line} imports {e.target}" for e in graph_edges
             if package_of(e.target) not in ALLOWED[package_of(e.source)]]
    assert not wrong, "imports that run back up:\n" + "\n".join(wrong)


def test_no_private_name_is_imported_from_another_package(graph_edges) -> None:
    wrong = [f"{e.source}:{e.line} imports {n} from {e.target}" for e in graph_edges
             for n in e.names if n.startswith("_")
             and package_of(e.source) != package_of(e.target)]
    assert not wrong, "\n".join(wrong)
