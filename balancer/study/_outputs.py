"""The run folder: checked before training, each finished run saved at once, every file atomic.

# Design note: never lose a result
# A study trains for minutes, so its folder is prepared before the first step: a path through an
# existing file, a folder that cannot be written to or a previous run (without ``overwrite`` or
# ``resume``) is an error then, not after training. Each (strategy, seed) run is saved as soon as
# it finishes (``runs/<strategy>__seed<k>.csv`` with its metric rows, ``.npz`` with its val and
# test probabilities), so an interrupted study keeps its finished runs and ``resume`` trains only
# the missing ones. Every file is written to a temporary name in the same folder and renamed
# over the target (``os.replace`` is atomic on POSIX and Windows), so a Ctrl-C leaves either the
# old file or the new one, never half of one. ``overwrite`` removes the previous run's files
# first, so a folder never mixes two studies.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ACROSS_FILES", "FILES", "ML_OUTPUT_FILES", "OUTPUT_FILES", "RunFolder",
           "atomic_write", "default_out", "output_files", "prepare_out"]

#: Every file the study writes, and which runs write it: ``"single"`` (``balancer study``),
#: ``"multi"`` (``balancer study --multilabel``), ``"tune"`` (``balancer study --tune``) and
#: ``"across"`` (several ``--dataset``: into the folder above the data sets' run folders).
#: A run folder also holds ``study.json`` (the settings, written first) and ``runs/``.
FILES: dict[str, tuple[str, ...]] = {
    "results.csv": ("single", "multi"),
    "summary.csv": ("single", "multi"),
    "paired.csv": ("single", "multi"),
    "per_label.csv": ("multi",),
    "report.md": ("single", "multi"),
    "recall_by_class.png": ("single",),
    "confusion_matrices.png": ("single",),
    "reliability.png": ("single",),
    "balanced_vs_accuracy.png": ("single",),
    "config.json": ("single", "multi"),
    "tuned.json": ("tune",),
    "tune.md": ("tune",),
    "across.csv": ("across",),
    "across.md": ("across",),
    "critical_difference.png": ("across",),
}


def output_files(task: str) -> tuple[str, ...]:
    """The files of :data:`FILES` that a run of ``task`` writes, in report order."""
    return tuple(name for name, tasks in FILES.items() if task in tasks)


#: The files a single-label run folder holds (besides ``study.json`` and ``runs/``).
OUTPUT_FILES = output_files("single")
#: The files a multi-label run folder holds (besides ``study.json`` and ``runs/``).
ML_OUTPUT_FILES = output_files("multi")
#: The files of a comparison across data sets.
ACROSS_FILES = output_files("across")

RUNS_DIR = "runs"
COLUMNS = ["strategy", "seed", "split", "metric", "value"]
# Settings that may change between an interrupted study and its resumption: they do not change
# any number (strategies and seeds only choose which runs exist). Not ``threads``: torch's CPU
# kernels split their sums by thread count, so another count changes the last bits of a run.
_RESUMABLE = {"strategies", "seeds", "progress", "jobs", "reference", "bootstrap",
              "rarest",  # the multi-label report's list of labels: every run holds them all
              "posthoc"}


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it to ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def default_out(name: str, *, quick: bool = False) -> Path:
    """A new run folder ``runs/<timestamp>-<name>[-quick]`` (``-2``, ``-3``, ... if taken)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path("runs") / f"{stamp}-{name}{'-quick' if quick else ''}"
    suffix = 1
    while out.exists():
        suffix += 1
        out = out.with_name(f"{stamp}-{name}-{suffix}")
    return out


def _run_name(strategy: str, seed: int) -> str:
    return f"{strategy}__seed{seed}"


class RunFolder:
    """A prepared run folder (see :func:`prepare_out`)."""

    def __init__(self, path: Path, done: dict[tuple[str, int], pd.DataFrame]) -> None:
        self.path = path
        self.done = done

    def finished(self, strategy: str, seed: int) -> bool:
        return (strategy, seed) in self.done

    def rows(self, strategy: str, seed: int) -> pd.DataFrame:
        return self.done[(strategy, seed)]

    def probs(self, strategy: str, seed: int) -> dict[str, np.ndarray]:
        file = self.path / RUNS_DIR / f"{_run_name(strategy, seed)}.npz"
        with np.load(file, allow_pickle=False) as arrays:
            return {key: arrays[key] for key in arrays.files}

    def save_run(self, strategy: str, seed: int, rows: pd.DataFrame,
                 probs: dict[str, np.ndarray]) -> None:
        """Save one finished run: probabilities first, the rows last (their file marks it done)."""
        runs = self.path / RUNS_DIR
        runs.mkdir(exist_ok=True)
        name = _run_name(strategy, seed)
        atomic_write(runs / f"{name}.npz", lambda tmp: _savez(tmp, probs))
        atomic_write(runs / f"{name}.csv", lambda tmp: rows.to_csv(tmp, index=False))
        self.done[(strategy, seed)] = rows


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as handle:  # a file object: np.savez would append ".npz" to a name
        # numpy's stub types **kwds as its allow_pickle keyword (bool); here every value is an array
        np.savez(handle, **arrays)  # type: ignore[arg-type]


def _previous_files(path: Path) -> list[str]:
    # Every kind of run's files, the multi-label per-label table and a tuning run's record
    # included: left out, --overwrite kept them next to the new study's.
    studies = dict.fromkeys([*OUTPUT_FILES, *ML_OUTPUT_FILES, *output_files("tune")])
    return [name for name in (*studies, RUNS_DIR) if (path / name).exists()]


def clear_previous(path: Path) -> None:
    """Remove the files of a previous study (or tuning run) from the folder ``path``."""
    for name in _previous_files(path):
        target = path / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()


def prepare_out(out: str | os.PathLike, *, config: dict[str, Any], overwrite: bool = False,
                resume: bool = False) -> RunFolder:
    """Check and create the run folder ``out`` before any training.

    Raises ``ValueError`` naming ``out`` if it (or a folder above it) is a file, cannot be
    created or written, or holds a previous run while neither ``overwrite`` nor ``resume`` is
    set; with ``resume``, if the previous run's settings differ from ``config`` (except
    :data:`_RESUMABLE`). ``config`` (``StudyConfig.to_dict()``) is saved as ``study.json``.
    """
    if overwrite and resume:
        raise ValueError("pass at most one of overwrite (start again) and resume (continue the "
                         "previous run), not both")
    path = Path(out)
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == path else f"lies under the file {str(parent)!r}"
            raise ValueError(f"out={str(out)!r} {where}; pass a folder for the run's outputs")
    try:
        path.mkdir(parents=True, exist_ok=True)
        atomic_text(path / ".write-test", "")
        (path / ".write-test").unlink()
    except OSError as error:
        raise ValueError(f"out={str(out)!r} cannot be written ({error.strerror or error}); pass "
                         f"a folder you can write to") from None

    previous = _previous_files(path)
    done: dict[tuple[str, int], pd.DataFrame] = {}
    if previous and not (overwrite or resume):
        raise ValueError(f"out={str(out)!r} already holds a study ({', '.join(previous)}); pass "
                         f"--overwrite to replace it, --resume to continue it, or another --out")
    if previous and overwrite:
        clear_previous(path)
    if previous and resume:
        saved_file = path / "study.json"
        if not saved_file.is_file():
            raise ValueError(f"out={str(out)!r} holds files of a study but no study.json, so its "
                             f"settings are unknown and it cannot be resumed; pass --overwrite "
                             f"to start again")
        saved = json.loads(saved_file.read_text(encoding="utf-8"))
        # Compared with sorted keys: the order of a dict setting (tuned_from's settings follow the
        # strategies' declaration order) is not a setting.
        changed = sorted(key for key in set(saved) | set(config) if key not in _RESUMABLE
                         and json.dumps(saved.get(key), default=str, sort_keys=True)
                         != json.dumps(config.get(key), default=str, sort_keys=True))
        if changed:
            shown = ", ".join(f"{k}: {saved.get(k)!r} then, {config.get(k)!r} now"
                              for k in changed[:4])
            raise ValueError(f"out={str(out)!r} holds a study with other settings ({shown}); "
                             f"resume with the same settings, or pass --overwrite")
        for file in sorted((path / RUNS_DIR).glob("*.csv")):
            rows = pd.read_csv(file)
            if list(rows.columns) != COLUMNS or rows.empty or not \
                    file.with_suffix(".npz").is_file():
                continue  # an incomplete run: it is trained again
            done[(str(rows["strategy"].iloc[0]), int(rows["seed"].iloc[0]))] = rows
    atomic_text(path / "study.json", json.dumps(config, indent=2, default=str) + "\n")
    return RunFolder(path, done)
