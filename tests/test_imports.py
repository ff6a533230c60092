"""The import graph of lab/ has no circles, read from the source with ast (every import counts, also those
inside functions or under TYPE_CHECKING: a circle hidden in a function is still a circle of concepts)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LAB = Path(__file__).resolve().parent.parent / "lab"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = LAB) -> dict[str, set[str]]:
    """Module -> the lab modules it imports. `from pkg import name` is an edge to pkg.name when that is a
    module, else to pkg."""
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    graph = {m: set() for m in files}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in files else source for a in node.names]
            else:
                continue
            graph[mod] |= {t for t in targets if t in files and t != mod}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a list of modules (first == last), or None."""
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = "done"
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_the_checker_finds_a_circle_and_reads_relative_imports(tmp_path):
    pkg = tmp_path / "lab"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import x\n")
    (pkg / "a.py").write_text("from .sub import b\nx = 1\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..c import y\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import x\n")
    graph = import_graph(pkg)
    assert graph["lab.a"] == {"lab.sub.b"} and graph["lab.sub.b"] == {"lab.c"}
    assert find_cycle(graph) == ["lab.a", "lab.sub.b", "lab.c", "lab.a"]
    (pkg / "c.py").write_text("y = 2\n")
    assert find_cycle(import_graph(pkg)) is None


def test_lab_has_no_import_circles():
    graph = import_graph()
    assert {"lab.model", "lab.stream", "lab.checkpoint", "lab.evaluate"} <= set(graph)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_no_file_in_lab_is_long():
    lines = {str(p.relative_to(LAB.parent)): len(p.read_text().splitlines()) for p in LAB.rglob("*.py")}
    long = {name: n for name, n in lines.items() if n > 450}
    assert not long, f"files over 450 lines (split them by concept): {long}"


def test_a_missing_reference_skips_here_but_fails_under_ci(monkeypatch):
    from conftest import reference_or_skip

    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        reference_or_skip("no_such_reference_module")
    monkeypatch.setenv("CI", "1")
    with pytest.raises(ImportError, match="no_such_reference_module is missing and CI is set"):
        reference_or_skip("no_such_reference_module")
    assert reference_or_skip("json").dumps([]) == "[]"
