"""No import circles among the project's modules.

Every ``import`` statement counts: module-level, inside functions and under ``TYPE_CHECKING``.
Importing ``a.b.c`` counts as an edge to ``a.b.c`` only (not to the packages ``a`` and ``a.b``
whose ``__init__`` Python runs first), and ``from a.b import name`` as an edge to ``a.b.name``
when that is a module, else to ``a.b``. Run as a script to print the graph's circles.
"""

from __future__ import annotations

import ast
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("balancer", "losses")


def project_modules(root: pathlib.Path = ROOT) -> dict[str, pathlib.Path]:
    """Every module of the project's packages, by dotted name."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def import_graph(root: pathlib.Path = ROOT) -> dict[str, set[str]]:
    """``module -> the project modules it imports``, from every import statement in it."""
    modules = project_modules(root)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolved against this module's package
                    package = name.split(".") if is_package else name.split(".")[:-1]
                    package = package[: len(package) - node.level + 1]
                    base = ".".join(package + ([base] if base else []))
                for alias in node.names:
                    child = f"{base}.{alias.name}"
                    targets.add(child if child in modules else base)
        graph[name] = {target for target in targets if target in modules and target != name}
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for module in sorted(graph):
            if module not in index:
                visit(module)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(circles)


# Samplers, loader wrapping and framework adapters: none of their modules is in a circle.
SAMPLER_AREA = ("balancer.samplers", "balancer.loader", "balancer.integrations")


def test_no_import_circle_touches_the_samplers_loader_or_adapters():
    touching = [circle for circle in import_circles(import_graph())
                if any(module.startswith(SAMPLER_AREA) for module in circle)]
    assert touching == []


def test_no_import_circles():
    assert import_circles(import_graph()) == []


def test_the_checker_sees_function_level_and_type_checking_imports(tmp_path):
    package = tmp_path / "balancer"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from balancer import b\n")
    (package / "b.py").write_text("from typing import TYPE_CHECKING\n"
                                  "if TYPE_CHECKING:\n    from balancer.a import f\n")
    (package / "c.py").write_text("from . import a\n")
    graph = import_graph(tmp_path)
    assert graph["balancer.c"] == {"balancer.a"}
    assert import_circles(graph) == [["balancer.a", "balancer.b"]]


if __name__ == "__main__":
    found = import_circles(import_graph())
    for circle in found:
        print(" <-> ".join(circle))
    print(f"{len(found)} import circle(s) among {len(project_modules())} modules")
    sys.exit(1 if found else 0)
