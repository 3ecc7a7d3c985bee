"""Post-hoc baselines: rows derived from trained runs by a shift of the logits chosen on the
validation split only (no training, so every one costs seconds and uses no test label).

- ``plain+posthoc`` / ``balanced+posthoc``: post-hoc logit adjustment (Menon et al. 2021,
  https://arxiv.org/abs/2007.07314), :math:`z_c = \\log p_c - \\tau \\log \\pi_c` with
  :math:`\\pi` the training class frequencies and :math:`\\tau` from :data:`TAU_GRID`, the one
  with the highest validation balanced accuracy (the smallest on ties), per seed.
- ``plain+threshold`` (two classes only): predict class 1 when :math:`p_1 \\ge t`, with ``t``
  the validation-balanced-accuracy-best of :data:`THRESHOLDS`; as probabilities, class 1's
  logit is shifted by :math:`-\\operatorname{logit}(t)`, so the argmax is the thresholded
  prediction.

A setting given (``StudyConfig.posthoc_tau``, ``balanced_posthoc_tau``, ``threshold``, e.g. from
the shipped tuning record of the data set) is used for every seed instead; the tuning mode
(:mod:`balancer.study._tune`) chooses it from a grid of as many points as every other
strategy's setting, on validation only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from balancer.study._metrics import Predictions, classification_metrics
from balancer.study._strategies import POSTHOC_ROWS

__all__ = ["POSTHOC", "TAU_GRID", "THRESHOLDS", "logit_shift", "posthoc_rows"]

TAU_GRID = tuple(np.round(np.linspace(0.0, 2.0, 9), 2).tolist())
THRESHOLDS = tuple(np.round(np.linspace(0.05, 0.95, 19), 2).tolist())


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def _balanced_accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    predicted = probs.argmax(1)
    return float(np.mean([np.mean(predicted[labels == c] == c) for c in np.unique(labels)]))


def _shifted(probs: np.ndarray, shift: np.ndarray) -> np.ndarray:
    return _softmax(np.log(np.clip(probs, 1e-300, None)) + shift)


def logit_shift(name: str, setting: float, prior: np.ndarray) -> np.ndarray:
    """The shift of the log-probabilities that post-hoc row ``name`` applies with ``setting``."""
    if name.endswith("+posthoc"):
        return -setting * np.log(prior)
    return np.array([0.0, -np.log(setting / (1 - setting))])  # plain+threshold


#: The base row of each post-hoc row and the StudyConfig field that fixes its setting.
POSTHOC = {name: (row.base, row.settings[0].field) for name, row in POSTHOC_ROWS.items()
           if row.base is not None}  # every post-hoc row has a base (POSTHOC_ROWS's filter)


def posthoc_rows(predictions: Predictions, train_counts: np.ndarray, seeds: list[int], *,
                 ece_bins: int = 15, ordinal: bool = False,
                 fixed: dict[str, float | None] | None = None,
                 positive: int = 1) -> tuple[pd.DataFrame, dict]:
    """The derived rows for every base row present in ``predictions`` (``plain``,
    ``balanced``), as results rows and as ``{(row, seed): {"val", "test"}}`` probabilities.

    ``fixed`` maps a post-hoc row to its setting; a row without one chooses it per seed from
    :data:`TAU_GRID` or :data:`THRESHOLDS` by validation balanced accuracy.
    """
    prior = np.asarray(train_counts, dtype=np.float64) / np.sum(train_counts)
    c = len(prior)
    fixed = fixed or {}
    names = [name for name in POSTHOC if c == 2 or name != "plain+threshold"]
    candidates = {}
    for name in names:
        values = (TAU_GRID if name.endswith("+posthoc") else THRESHOLDS)
        if fixed.get(name) is not None:
            values = (fixed[name],)
        candidates[name] = (POSTHOC[name][0],
                            [(value, logit_shift(name, value, prior)) for value in values])
    rows, probs = [], {}
    labels = predictions.labels
    for name, (base, grid) in candidates.items():
        if not all((base, s) in predictions.probs for s in seeds):
            continue
        for seed in seeds:
            run = predictions.probs[(base, seed)]
            scores = [_balanced_accuracy(_shifted(run["val"], shift), labels["val"])
                      for _, shift in grid]
            best = int(np.argmax(scores))  # first maximum: the smallest setting on ties
            setting, shift = grid[best]
            derived = {split: _shifted(run[split], shift) for split in ("val", "test")}
            probs[(name, seed)] = derived
            for split in ("test", "val"):
                metrics = classification_metrics(derived[split], labels[split], num_classes=c,
                                                 ece_bins=ece_bins, ordinal=ordinal,
                                                 positive=positive)
                rows += [(name, seed, split, m, v) for m, v in metrics.items()]
            key = "posthoc_tau" if name.endswith("posthoc") else "threshold"
            rows.append((name, seed, "run", key, float(setting)))
    frame = pd.DataFrame(rows, columns=["strategy", "seed", "split", "metric", "value"])
    return frame, probs
