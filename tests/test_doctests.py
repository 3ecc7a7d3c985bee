"""The examples in the docstrings of every module of ``balancer`` and ``losses`` run and give the
numbers they show.

The modules are found by walking the packages, so a module that is added, moved or renamed is
covered without editing this file. A module that imports an optional framework when imported
(an integration needing lightning or transformers, say) is skipped where that framework is not
installed.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil
from pathlib import Path

import pytest

import balancer
import losses

PACKAGES = (balancer, losses)
# The frameworks of pyproject's optional extras: only a missing one of these skips a module.
OPTIONAL_FRAMEWORKS = {"accelerate", "lightning", "pytorch_lightning", "ray", "torchdata",
                       "transformers"}


def walked_modules() -> list[str]:
    """Every module and subpackage of the packages, by name."""
    names = []
    for package in PACKAGES:
        names.append(package.__name__)
        names += [info.name for info in
                  pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    return names


def has_examples(name: str) -> bool:
    """Whether the module's source holds a ``>>>`` example (read without importing it)."""
    origin = importlib.util.find_spec(name).origin
    return origin is not None and origin.endswith(".py") and (
        ">>>" in Path(origin).read_text(encoding="utf-8"))


WITH_EXAMPLES = [name for name in walked_modules() if has_examples(name)]


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples(name):
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] in OPTIONAL_FRAMEWORKS:
            pytest.skip(f"{name} needs {error.name}, which is not installed")
        raise
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_the_walk_finds_every_file_with_examples():
    """A source file the walk misses (a folder without ``__init__.py``, say) would go untested."""
    files = set()
    for package in PACKAGES:
        root = Path(package.__file__).parent
        for path in root.rglob("*.py"):
            if ">>>" in path.read_text(encoding="utf-8"):
                parts = path.relative_to(root).with_suffix("").parts
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                files.add(".".join((package.__name__, *parts)))
    assert files and files == set(WITH_EXAMPLES)
