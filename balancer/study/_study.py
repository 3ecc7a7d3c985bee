"""Running the study: every strategy with every seed, each run saved as it finishes."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from balancer.study._config import StudyConfig
from balancer.study._data import StudyData, load_study_data
from balancer.study._outputs import COLUMNS, RunFolder
from balancer.study._strategies import STRATEGIES, seeded_generator
from balancer.study._train import RunResult

__all__ = ["Predictions", "prepare_data", "run_strategies", "run_study"]


class Predictions:
    """Every run's val and test probabilities and the true classes, for the paired statistics.

    Attributes:
        labels: per split (``"val"``, ``"test"``), the ``(N,)`` class indices.
        probs: per ``(strategy, seed)``, per split, the ``(N, C)`` probabilities.

    Compared by identity, so a DataFrame can carry it in ``attrs`` (pandas compares attrs with
    ``==``, which arrays do not answer with one bool).
    """

    def __init__(self, labels: dict[str, np.ndarray],
                 probs: dict[tuple[str, int], dict[str, np.ndarray]]) -> None:
        self.labels = labels
        self.probs = probs

    def __repr__(self) -> str:
        return f"Predictions({len(self.probs)} runs)"


_LIMIT_SEED = 0x6C696D6974  # the train_limit slice is the same for every study seed


def _limit_train(data: StudyData, limit: int) -> StudyData:
    """A stratified slice of ``limit`` training samples (at least 2 per class when possible)."""
    labels = data.labels["train"].numpy()
    if limit >= len(labels):
        return data
    counts = np.bincount(labels, minlength=data.num_classes)
    share = counts * limit / len(labels)
    take = np.minimum(counts, np.maximum(2, np.floor(share).astype(np.int64)))
    # Hand the samples still missing to the largest remainders (largest-remainder rounding).
    for cls in np.argsort(-(share - np.floor(share)), kind="stable"):
        if take.sum() >= limit:
            break
        take[cls] += take[cls] < counts[cls]
    generator = seeded_generator(_LIMIT_SEED)
    chosen = [np.flatnonzero(labels == c)[torch.randperm(int(counts[c]), generator=generator)
                                          [: int(take[c])].numpy()]
              for c in range(data.num_classes)]
    return data.subset("train", np.sort(np.concatenate(chosen)))


def prepare_data(config: StudyConfig) -> StudyData:
    """Load and check the data of ``config`` (every input error is raised here)."""
    data = load_study_data(dataset=config.dataset, data=config.data, csv=config.csv,
                           table=config.table, image_col=config.image_col,
                           label_col=config.label_col, split_col=config.split_col,
                           group_col=config.group_col, image_size=config.image_size)
    if config.train_limit is not None:
        data = _limit_train(data, config.train_limit)
    if len(data.labels["train"]) < config.batch_size:
        raise ValueError(f"batch_size={config.batch_size} is larger than the train split "
                         f"({len(data.labels['train'])} samples); pass a smaller --batch-size")
    return data


def _rows(name: str, seed: int, result: RunResult) -> pd.DataFrame:
    rows = [(name, seed, "test", metric, value) for metric, value in result.test.items()]
    rows += [(name, seed, "val", metric, value) for metric, value in result.val.items()]
    rows += [(name, seed, "run", "selected_epoch", float(result.selected_epoch)),
             (name, seed, "run", "steps", float(result.steps)),
             (name, seed, "run", "seconds", result.seconds)]
    return pd.DataFrame(rows, columns=COLUMNS)


def run_strategies(config: StudyConfig, train: Callable[[str, int], RunResult], *,
                   folder: RunFolder | None = None) -> tuple[pd.DataFrame, dict]:
    """Call ``train(strategy, seed)`` for every pair of ``config`` not already in ``folder``,
    saving each finished run there; return the rows of all pairs and their probabilities."""
    from tqdm.auto import tqdm

    frames, probs = [], {}
    pairs = [(name, seed) for name in config.strategies for seed in config.seeds]
    bar = tqdm(total=len(pairs), desc="study", unit="run", position=0,
               disable=not config.progress)
    for name, seed in pairs:
        if folder is not None and folder.finished(name, seed):
            frames.append(folder.rows(name, seed))
            probs[(name, seed)] = folder.probs(name, seed)
            bar.update()
            continue
        bar.set_postfix(strategy=name, seed=seed)
        result = train(name, seed)
        rows = _rows(name, seed, result)
        if folder is not None:
            folder.save_run(name, seed, rows, result.probs)
        frames.append(rows)
        probs[(name, seed)] = result.probs
        bar.update()
    bar.close()
    return pd.concat(frames, ignore_index=True), probs


def add_posthoc(results: pd.DataFrame, probs: dict, labels: dict[str, np.ndarray],
                train_counts: np.ndarray, config: StudyConfig) -> tuple[pd.DataFrame, dict]:
    """Append the post-hoc rows (see :mod:`balancer.study._posthoc`), derived from the trained
    runs' validation and test probabilities; the settings are chosen on validation only."""
    from balancer.study._posthoc import posthoc_rows

    derived, derived_probs = posthoc_rows(Predictions(labels, probs), train_counts,
                                          list(config.seeds), ece_bins=config.ece_bins,
                                          ordinal=config.is_ordinal())
    if derived.empty:
        return results, probs
    return pd.concat([results, derived], ignore_index=True), {**probs, **derived_probs}


def run_study(config: StudyConfig, data: StudyData | None = None, *,
              folder: RunFolder | None = None) -> pd.DataFrame:
    """Train every strategy with every seed and return the results in long form.

    Args:
        config: the settings (see :class:`StudyConfig`).
        data: already loaded data; by default :func:`prepare_data` loads ``config``'s.
        folder: a run folder from :func:`~balancer.study.prepare_out`: each finished run is
            saved there at once, and runs it already holds are read instead of trained.

    Returns:
        A DataFrame with columns ``strategy, seed, split, metric, value``: the test metrics
        (``split="test"``), the same metrics on validation (``"val"``) and the run's
        ``selected_epoch``, ``steps`` and ``seconds`` (``"run"``). ``attrs`` holds
        ``class_names``, ``source``, ``counts`` (per split), ``dataset_key``, ``seconds`` and
        ``predictions`` (:class:`Predictions`).
    """
    from balancer.study._train import train_and_evaluate

    config.validate()
    data = prepare_data(config) if data is None else data
    device = torch.device(config.device)
    threads = torch.get_num_threads()
    cudnn = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    if device.type == "cpu":
        torch.set_num_threads(config.threads)
    else:  # the same seed, the same numbers on the GPU too
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    start = time.perf_counter()
    try:
        results, probs = run_strategies(
            config, lambda name, seed: train_and_evaluate(data, STRATEGIES[name], seed, config,
                                                          device=device),
            folder=folder)
    finally:
        torch.set_num_threads(threads)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
    labels = {split: data.labels[split].numpy() for split in ("val", "test")}
    if config.posthoc:
        results, probs = add_posthoc(results, probs, labels, data.counts("train"), config)
    key = (config.dataset or ("retinamnist" if all(
        getattr(config, n) is None for n in ("data", "csv", "table")) else None))
    results.attrs.update(
        class_names=list(data.class_names), source=data.source,
        counts={split: data.counts(split).tolist() for split in ("train", "val", "test")},
        dataset_key=key.lower() if key else None, seconds=time.perf_counter() - start,
        predictions=Predictions(labels, probs))
    return results
