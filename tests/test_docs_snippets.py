"""Every Python example in README.md and docs/ runs, and the API reference covers every public name.

Each fenced ```python block is one test, named ``file:line`` (the line of its opening fence). It
runs in a fresh namespace, in a temporary working directory, so files it writes do not leak. A
block that cannot run here is marked by an HTML comment on the line before its fence (invisible
in the rendered page):

    <!-- snippet: requires lightning -->    skipped unless ``import lightning`` works
    <!-- snippet: skip reason in words -->  always skipped, with that reason

Only ```python blocks are collected; shell commands sit in ```bash blocks.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import pathlib
import pkgutil
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FILES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
MARKER = re.compile(r"^\s*<!--\s*snippet:\s*(?P<kind>requires|skip)\b\s*(?P<arg>.*?)\s*-->\s*$")
PRIVATE = re.compile(r"\b(?:balancer|losses)(?:\.[A-Za-z]\w*)*\._\w")


@dataclasses.dataclass(frozen=True)
class Snippet:
    path: pathlib.Path
    line: int  # 1-based line of the opening fence
    code: str
    marker: tuple[str, str] | None  # ("requires", "lightning") or ("skip", "reason")

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"


def collect(path: pathlib.Path) -> list[Snippet]:
    lines = path.read_text(encoding="utf-8").splitlines()
    snippets, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        fence, indent = match["fence"], len(match["indent"])
        language = match["info"].split()[0].lower() if match["info"].split() else ""
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        if end == len(lines):
            raise AssertionError(f"{path}:{i + 1}: code fence never closed")
        if language in ("python", "py"):
            previous = next((line for line in reversed(lines[:i]) if line.strip()), "")
            marker = MARKER.match(previous)
            body = "\n".join(line[indent:] for line in lines[i + 1:end])
            snippets.append(Snippet(path, i + 1, body + "\n",
                                    (marker["kind"], marker["arg"]) if marker else None))
        i = end + 1
    return snippets


SNIPPETS = [snippet for path in FILES for snippet in collect(path)]


def test_snippets_are_collected():
    # A parser that silently finds nothing would pass every test below.
    assert len(SNIPPETS) >= 8
    assert any(s.path.name == "README.md" for s in SNIPPETS)


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda s: s.id)
def test_snippet_runs(snippet: Snippet, tmp_path, monkeypatch):
    if snippet.marker is not None:
        kind, arg = snippet.marker
        if kind == "skip":
            pytest.skip(arg or "marked skip")
        for module in (name.strip() for name in arg.split(",") if name.strip()):
            if importlib.util.find_spec(module) is None:
                pytest.skip(f"needs {module}, which is not installed")
    monkeypatch.chdir(tmp_path)
    code = compile(snippet.code, snippet.id, "exec")
    exec(code, {"__name__": "__snippet__"})


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda s: s.id)
def test_snippet_uses_public_names(snippet: Snippet):
    assert not PRIVATE.search(snippet.code), "examples import only public names"


def _public_names() -> list[str]:
    import balancer
    import balancer.study
    import losses
    import losses.functional

    names = [f"balancer.{name}" for name in balancer.__all__]
    names += [f"losses.{name}" for name in losses.__all__ if name != "functional"]
    names += [f"losses.functional.{name}" for name in losses.functional.__all__]
    names += [f"balancer.study.{name}" for name in balancer.study.__all__]
    integrations = ROOT / "balancer" / "integrations"
    names += [f"balancer.integrations.{module.name}"
              for module in pkgutil.iter_modules([str(integrations)])
              if not module.name.startswith("_")]
    return names


def test_api_reference_lists_every_public_name():
    documented = set()
    for path in sorted((DOCS / "api").glob("*.md")):
        module = ""
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.match(r"\s*\.\. (?:py:)?(\w+)::\s+([\w.]+)", line)
            if match is None:
                continue
            kind, name = match.groups()
            if kind == "module":
                module = name
            # A bare name (py:data) is qualified by the current module, as Sphinx does.
            documented.add(name if "." in name or not module else f"{module}.{name}")
    missing = [name for name in _public_names() if name not in documented]
    assert not missing, f"add these public names to docs/api/: {missing}"

