"""The comparison study: weighting vs resampling strategies, trained the same way, several seeds.

Example::

    from balancer.study import StudyConfig, run_study, write_outputs

    config = StudyConfig(dataset="pneumoniamnist", strategies=("plain", "balanced+finetune"))
    results = run_study(config)           # long DataFrame: strategy, seed, split, metric, value
    write_outputs(results, config, "runs/pneumonia", command="(python)", info=results.attrs)

From the command line: ``balancer study --help``.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from balancer.study._config import QUICK, StudyConfig
from balancer.study._data import StudyData, load_csv, load_npz, load_study_data
from balancer.study._metrics import classification_metrics, expected_calibration_error
from balancer.study._report import OUTPUT_FILES, format_table, summarize, write_outputs
from balancer.study._strategies import STRATEGIES, Strategy, seeded_generator
from balancer.study._train import RunResult, train_and_evaluate

__all__ = [
    "OUTPUT_FILES",
    "QUICK",
    "STRATEGIES",
    "RunResult",
    "Strategy",
    "StudyConfig",
    "StudyData",
    "classification_metrics",
    "expected_calibration_error",
    "format_table",
    "load_csv",
    "load_npz",
    "load_study_data",
    "prepare_data",
    "run_study",
    "summarize",
    "write_outputs",
]

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
                           image_col=config.image_col, label_col=config.label_col,
                           split_col=config.split_col, image_size=config.image_size)
    if config.train_limit is not None:
        data = _limit_train(data, config.train_limit)
    if len(data.labels["train"]) < config.batch_size:
        raise ValueError(f"batch_size={config.batch_size} is larger than the train split "
                         f"({len(data.labels['train'])} samples); pass a smaller --batch-size")
    return data


def run_study(config: StudyConfig, data: StudyData | None = None) -> pd.DataFrame:
    """Train every strategy with every seed and return the results in long form.

    Args:
        config: the settings (see :class:`StudyConfig`).
        data: already loaded data; by default :func:`prepare_data` loads ``config``'s.

    Returns:
        A DataFrame with columns ``strategy, seed, split, metric, value``: the test metrics
        (``split="test"``), the same metrics on validation (``"val"``) and the run's
        ``selected_epoch``, ``steps`` and ``seconds`` (``"run"``). ``attrs`` holds
        ``class_names``, ``source``, ``counts`` (per split), ``dataset_key`` and ``seconds``.
    """
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
    rows = []
    try:
        runs = tqdm(total=len(config.strategies) * len(config.seeds), desc="study", unit="run",
                    position=0, disable=not config.progress)
        for name in config.strategies:
            for seed in config.seeds:
                runs.set_postfix(strategy=name, seed=seed)
                result = train_and_evaluate(data, STRATEGIES[name], seed, config, device=device)
                rows += [(name, seed, "test", metric, value)
                         for metric, value in result.test.items()]
                rows += [(name, seed, "val", metric, value)
                         for metric, value in result.val.items()]
                rows += [(name, seed, "run", "selected_epoch", float(result.selected_epoch)),
                         (name, seed, "run", "steps", float(result.steps)),
                         (name, seed, "run", "seconds", result.seconds)]
                runs.update()
        runs.close()
    finally:
        torch.set_num_threads(threads)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
    results = pd.DataFrame(rows, columns=["strategy", "seed", "split", "metric", "value"])
    key = (config.dataset or ("retinamnist" if config.data is None and config.csv is None
                              else None))
    results.attrs.update(
        class_names=list(data.class_names), source=data.source,
        counts={split: data.counts(split).tolist() for split in ("train", "val", "test")},
        dataset_key=key.lower() if key else None, seconds=time.perf_counter() - start)
    return results
