"""balancer.labels sits in no import circle, counting imports inside functions and under
TYPE_CHECKING, and the rest of balancer reaches labels through balancer.labels only."""

from __future__ import annotations

import ast
import pathlib

import balancer

PACKAGE = pathlib.Path(balancer.__file__).parent
# Lines of the temporary shims (the old module names, re-exported until the merge retargets
# their importers) are not part of the layout.
SHIM = "temporary shim, removed at merge"


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, pathlib.Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports(path: pathlib.Path, name: str, known: set[str]) -> set[str]:
    """Every balancer module ``path`` imports, wherever the import statement is."""
    source = path.read_text()
    lines = source.splitlines()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and SHIM in lines[node.lineno - 1]:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            for alias in node.names:
                # `from package import submodule` needs the submodule; the package's own
                # __init__ is already being imported as its parent.
                target = f"{base}.{alias.name}"
                found.add(target if target in known else base)
    return found & known


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """The import circles: groups of modules that each reach all the others (Kosaraju)."""
    order: list[str] = []
    seen: set[str] = set()

    def finish(node: str) -> None:
        seen.add(node)
        for target in graph[node]:
            if target not in seen:
                finish(target)
        order.append(node)

    for node in graph:
        if node not in seen:
            finish(node)
    reverse: dict[str, set[str]] = {node: set() for node in graph}
    for node, targets in graph.items():
        for target in targets:
            reverse[target].add(node)
    groups, assigned = [], set()
    for node in reversed(order):
        if node in assigned:
            continue
        group, stack = set(), [node]
        while stack:
            current = stack.pop()
            if current not in assigned:
                assigned.add(current)
                group.add(current)
                stack.extend(reverse[current] - assigned)
        groups.append(group)
    return [group for group in groups if len(group) > 1]


def test_labels_sit_in_no_import_circle():
    known = modules()
    graph = {name: imports(path, name, set(known)) - {name} for name, path in known.items()}
    assert "balancer.labels._sources" in graph["balancer.labels"]  # the graph is real
    assert "balancer._validation" in graph["balancer.labels._sources"]
    circles = [sorted(group) for group in strongly_connected(graph)
               if any(name.startswith("balancer.labels") for name in group)]
    assert circles == []


def test_no_module_outside_the_package_holds_label_code():
    for name, path in modules().items():
        if name.startswith("balancer.labels"):
            continue
        text = path.read_text()
        for definition in ("def labels_of", "def multilabels_of", "def encode_labels",
                           "def encode_multilabels", "class MultiLabels", "class EncodedLabels",
                           "def label_array"):
            assert definition not in text, f"{name} defines {definition.split()[1]}"
