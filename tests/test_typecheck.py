"""``python -m mypy`` (the ``[tool.mypy]`` settings of pyproject.toml, as ``make typecheck`` runs
it) finds no error in the type-checked packages.

It runs from the repository root with this interpreter, so it checks this checkout. The cache
is mypy's default ``.mypy_cache`` (git-ignored): the first run of a checkout reads everything,
later ones only what changed. Skipped where mypy is not installed.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
def test_mypy_is_clean() -> None:
    environment = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, env=environment,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"mypy found errors:\n{result.stdout}{result.stderr}"
