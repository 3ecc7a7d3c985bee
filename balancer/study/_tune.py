"""The tuning mode (``balancer study --tune``): every strategy's own key setting chosen on the
validation split, from grids of the same size, with the same seeds.

# Design note: an equal tuning budget
# A row tuned over twenty values beats a row run at its paper's default for a reason that has
# nothing to do with the method. So every strategy that has a key setting gets the same number
# of grid points, :data:`GRID_POINTS`, each trained with the same seeds (:data:`TUNE_SEEDS`,
# apart from the study's own seeds) under the study's budget; a strategy without one (plain,
# weighted, undersample, oversample-wrs, balanced, hinge) gets none. The post-hoc rows pick
# their tau (or threshold) from as many points, applied to the tuning runs of their base row.
# The criterion is the study's selection criterion, the validation balanced accuracy, averaged
# over the tuning seeds; the first grid point wins a tie (the grids list the library default
# first where it is one of the points).
#
# The test split never enters: the data handed to the training runs has no test split at all
# (:func:`without_test`), and the runs evaluate on validation only.
"""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from balancer.study._config import TUNE_SEEDS, StudyConfig
from balancer.study._data import StudyData, data_identity
from balancer.study._posthoc import POSTHOC, logit_shift
from balancer.study._strategies import STRATEGIES, TUNED_ROWS

__all__ = ["GRID", "GRID_POINTS", "TUNE_SEEDS", "tune", "tune_markdown", "without_test",
           "write_tuning"]

#: Grid points per strategy: the same for every strategy that has a key setting.
GRID_POINTS = 3

#: Each strategy's grid: ``GRID_POINTS`` settings of its own key setting(s) (StudyConfig fields),
#: as declared with the strategy (:data:`balancer.study._strategies.DECLARED`).
GRID: dict[str, tuple[dict[str, Any], ...]] = {name: s.grid for name, s in TUNED_ROWS.items()}


def without_test(data: StudyData) -> StudyData:
    """``data`` with only its train and validation splits (the test split is not touched)."""
    return StudyData({split: data.images[split] for split in ("train", "val")},
                     {split: data.labels[split] for split in ("train", "val")},
                     data.class_names, data.source)


def tuned_identity(config: StudyConfig, data: StudyData) -> dict[str, Any]:
    """The identity of ``config``'s data (:func:`~balancer.study._data.data_identity`) that a
    tuning record carries and ``--tuned FILE`` compares."""
    return data_identity(dataset=config.dataset, data=config.data, csv=config.csv,
                         table=config.table, label_col=config.label_col,
                         class_names=data.class_names, task=config.task)


def _capped(point: dict[str, Any], epochs: int) -> dict[str, Any]:
    # Phase lengths longer than a short (--quick) budget are cut to it.
    return {k: min(v, epochs) if k.endswith("_epochs") else v for k, v in point.items()}


def _balanced_accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    predicted = probs.argmax(1)
    return float(np.mean([np.mean(predicted[labels == c] == c) for c in np.unique(labels)]))


def _shifted(probs: np.ndarray, shift: np.ndarray) -> np.ndarray:
    logits = np.log(np.clip(probs, 1e-300, None)) + shift
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def tune(config: StudyConfig, data: StudyData, *, command: str = "(python)",
         run: str | None = None) -> dict[str, Any]:
    """Choose every strategy's key setting of ``config.strategies`` (and of the post-hoc rows,
    with ``config.posthoc``) on the validation split of ``data``.

    Args:
        config: the budget (epochs, batch size, ...), strategies, tuning seeds (``seeds``) and
            ``jobs``; its own values of the tuned settings are ignored (the grid sets them).
        data: the loaded data; only its train and validation splits are read.
        command, run: recorded in the result (what produced it, and where).

    Returns:
        The tuning record (also what ``balancer study --tune`` writes as ``tuned.json``):
        ``budget`` (the settings it is valid for), ``seeds``, ``criterion``, ``grid`` and
        ``scores`` (per strategy, per point, the validation balanced accuracy of each seed),
        ``choices`` (per strategy, the chosen point) and ``settings`` (the chosen values by
        StudyConfig field), ``seconds``, ``command``, ``run``, ``date``.
    """
    from balancer.study._study import make_pool
    from balancer.study._train import train_and_evaluate

    config.validate()
    data = without_test(data)
    start = time.perf_counter()
    trained = [name for name in config.strategies if name in GRID]
    posthoc = [name for name, (base, _) in POSTHOC.items()
               if config.posthoc and base in config.strategies
               and (name != "plain+threshold" or data.num_classes == 2)]
    bases = [name for name in ("plain", "balanced")
             if any(POSTHOC[p][0] == name for p in posthoc)]
    if not trained and not posthoc:
        raise ValueError(
            f"strategies={list(config.strategies)} have no key setting to tune (the tuned "
            f"ones are {', '.join(GRID)}; the post-hoc rows need plain or balanced and "
            f"posthoc=True); add such a strategy, or run the study without --tune")
    # Grid points are phase lengths of the given budget; with --min-steps the runs train them
    # scaled to the raised epochs, as a study with the chosen setting would.
    given_epochs = config.given_budget()["epochs"]
    jobs: list[tuple[str, int, dict[str, Any]]] = []
    for name in trained:
        jobs += [(name, i, {k: config.scale_phase(v) if k.endswith("_epochs") else v
                            for k, v in _capped(point, given_epochs).items()})
                 for i in range(GRID_POINTS) for point in [GRID[name][i]]]
    jobs += [(name, 0, {}) for name in bases]
    runs = [(name, i, point, seed) for name, i, point in jobs for seed in config.seeds]

    base = StudyConfig(**{**config.to_dict(), "tuned": False, "progress": False, "jobs": 1,
                          "tuned_from": None})
    probs: dict[tuple[str, int, int], np.ndarray] = {}
    threads = torch.get_num_threads()
    try:
        if config.jobs > 1:
            from balancer.study._study import _train_in_worker

            pool = make_pool(data, base, config.jobs)
            try:
                futures = {(name, i, seed): pool.submit(_train_in_worker, name, seed, point,
                                                        ("val",))
                           for name, i, point, seed in runs}
                for key, future in futures.items():
                    probs[key] = future.result().probs["val"]
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        else:
            torch.set_num_threads(config.threads)
            for name, i, point, seed in runs:
                run_config = StudyConfig(**{**base.to_dict(), **point})
                result = train_and_evaluate(data, STRATEGIES[name], seed, run_config,
                                            device=torch.device(config.device),
                                            evaluate=("val",))
                probs[(name, i, seed)] = result.probs["val"]
    finally:
        torch.set_num_threads(threads)

    labels = data.labels["val"].numpy()
    prior = data.counts("train") / data.counts("train").sum()
    scores: dict[str, list[list[float]]] = {}
    for name in trained:
        scores[name] = [[_balanced_accuracy(probs[(name, i, seed)], labels)
                         for seed in config.seeds] for i in range(GRID_POINTS)]
    for name in posthoc:
        base_row = POSTHOC[name][0]
        scores[name] = [[_balanced_accuracy(
            _shifted(probs[(base_row, 0, seed)], logit_shift(name, value, prior)), labels)
            for seed in config.seeds] for point in GRID[name] for value in point.values()]
    choices, chosen, settings = {}, {}, {}
    for name, table in scores.items():
        best = int(np.argmax([np.mean(row) for row in table]))  # the first on ties
        points = [_capped(point, given_epochs) for point in GRID[name]]
        choices[name], chosen[name] = points[best], best
        settings.update(points[best])
    return {
        "dataset": config.shipped_key(),
        "source": data.source,
        # what --tuned FILE compares with the study's data (the source names a path)
        "data": tuned_identity(config, data),
        "budget": config.given_budget(),
        "seeds": list(config.seeds),
        "criterion": "validation balanced accuracy, mean over the tuning seeds; the first "
                     "grid point on ties",
        "grid_points": GRID_POINTS,
        "grid": {name: [_capped(p, given_epochs) for p in GRID[name]] for name in scores},
        "scores": scores,
        "choices": choices,
        "chosen_index": chosen,
        "settings": settings,
        "untuned": [name for name in config.strategies if name not in GRID],
        "seconds": round(time.perf_counter() - start, 1),
        "command": command,
        "run": run,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _point(point: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items())


def tune_markdown(record: dict[str, Any]) -> str:
    """The tuning record as a short Markdown report: the grid, the scores, the choices."""
    lines = [f"# Tuning on validation: {record['source']}", "",
             f"`{record['command']}` ({record['date']}, {record['seconds']:.0f} s). "
             f"Seeds {record['seeds']}; {record['criterion']}. Every strategy with a key "
             f"setting got {record['grid_points']} grid points; "
             f"{', '.join(record['untuned']) or 'none'} have none. No test label was read.", "",
             "| strategy | grid point | validation balanced accuracy (per seed) | mean | chosen |",
             "|---|---|---|---|---|"]
    for name, table in record["scores"].items():
        for index, (point, row) in enumerate(zip(record["grid"][name], table, strict=True)):
            mark = "yes" if index == record["chosen_index"][name] else ""
            lines.append(f"| {name} | {_point(point)} | "
                         f"{', '.join(f'{v:.3f}' for v in row)} | {np.mean(row):.3f} | {mark} |")
    lines += ["", "Budget these settings are valid for: "
              + ", ".join(f"{k}={v}" for k, v in record["budget"].items()) + ".", ""]
    return "\n".join(lines)


def write_tuning(record: dict[str, Any], out: Path) -> dict[str, Path]:
    """Write ``tuned.json`` and ``tune.md`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"tuned.json": out / "tuned.json", "tune.md": out / "tune.md"}
    paths["tuned.json"].write_text(json.dumps(record, indent=1) + "\n")
    paths["tune.md"].write_text(tune_markdown(record))
    return paths
