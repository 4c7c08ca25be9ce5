"""The package's layering: no import cycle between subpackages, the flows in one layer, a light front door."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ofa_edge"


def import_graph() -> dict[str, set[str]]:
    """Subpackage (or top-level module) -> the ofa_edge subpackages it imports, at any level of a file."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        unit = parts[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
            for name in names:
                if name.startswith("ofa_edge."):
                    target = name.split(".")[1]
                    if target != unit:
                        graph[unit].add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt] if nxt in path else path + [nxt]
            if nxt not in state and (found := visit(nxt, path + [nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_no_import_cycle_between_subpackages():
    graph = import_graph()
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph))}"


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_flows_live_in_pipelines_and_only_the_cli_uses_them():
    graph = import_graph()
    users = sorted(unit for unit, deps in graph.items() if "pipelines" in deps)
    assert users == ["cli"], users
    for library in ("space", "supernet", "train", "devices", "latency", "search", "export"):
        assert "cli" not in graph.get(library, set()), library
    assert not (PACKAGE / "search" / "pipeline.py").exists() and not (PACKAGE / "demo").exists()


def test_import_ofa_edge_does_not_import_torch():
    code = ("import sys, ofa_edge; assert 'torch' not in sys.modules, 'torch imported'; "
            "assert callable(ofa_edge.specialize) and 'torch' in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
