"""Running a study of either task: every strategy with every seed, each run saved as it finishes."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, as_completed
from typing import TYPE_CHECKING, Any, cast, overload

import numpy as np
import pandas as pd
import torch

from balancer import MultiLabelBalancedSampler, RepeatFactorSampler
from balancer.study._config import MultiLabelStudyConfig, StudyConfig
from balancer.study._data import MultiLabelData, StudyData, load_multilabel_data, load_study_data
from balancer.study._environment import describe_environment
from balancer.study._metrics import ML_HEADLINE, Predictions, paired_multilabel
from balancer.study._outputs import COLUMNS, RunFolder
from balancer.study._strategies import ML_STRATEGIES, STRATEGIES, seeded_generator
from balancer.study._train import RunResult

if TYPE_CHECKING:  # imported where a pool starts (it loads multiprocessing)
    from concurrent.futures import ProcessPoolExecutor

__all__ = ["Predictions", "prepare_data", "run_multilabel_study", "run_strategies", "run_study"]


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


@overload
def prepare_data(config: StudyConfig) -> StudyData: ...
@overload
def prepare_data(config: MultiLabelStudyConfig) -> MultiLabelData: ...
@overload
def prepare_data(config: StudyConfig | MultiLabelStudyConfig) -> StudyData | MultiLabelData: ...
def prepare_data(config: StudyConfig | MultiLabelStudyConfig) -> StudyData | MultiLabelData:
    """Load and check the data of ``config``, of either task (every input error is raised
    here)."""
    if isinstance(config, MultiLabelStudyConfig):
        return _prepare_multilabel_data(config)
    data = load_study_data(dataset=config.dataset, data=config.data, csv=config.csv,
                           table=config.table, image_col=config.image_col,
                           label_col=config.label_col, split_col=config.split_col,
                           group_col=config.group_col, image_size=config.image_size,
                           fractions=config.split, impute=config.impute)
    if config.train_limit is not None:
        data = _limit_train(data, config.train_limit)
    if len(data.labels["train"]) < config.batch_size:
        raise ValueError(f"batch_size={config.batch_size} is larger than the train split "
                         f"({len(data.labels['train'])} samples); pass a smaller --batch-size")
    config.apply_min_steps(len(data.labels["train"]))
    return data


#: The run rows that measure time (wall and CPU seconds): they differ between two runs of one
#: study, while every other row is a function of the settings and seeds.
TIMING_METRICS = ("seconds", "cpu_seconds")


def _rows(name: str, seed: int, result: RunResult) -> pd.DataFrame:
    rows = [(name, seed, "test", metric, value) for metric, value in result.test.items()]
    rows += [(name, seed, "val", metric, value) for metric, value in result.val.items()]
    rows += [(name, seed, "run", "selected_epoch", float(result.selected_epoch)),
             (name, seed, "run", "steps", float(result.steps)),
             (name, seed, "run", "shortest_phase_steps", float(result.shortest_phase_steps)),
             (name, seed, "run", "seconds", result.seconds),
             (name, seed, "run", "cpu_seconds", result.cpu_seconds)]
    return pd.DataFrame(rows, columns=COLUMNS)


def _run_rows(name: str, seed: int, result: RunResult) -> tuple[pd.DataFrame, dict]:
    return _rows(name, seed, result), result.probs


#: Called with ``(strategy, seed, seconds)`` as each run finishes (see ``on_run`` below).
OnRun = Callable[[str, int, float], None]


def run_strategies(config: StudyConfig | MultiLabelStudyConfig, train: Callable[[str, int], Any],
                   *, folder: RunFolder | None = None,
                   submit: Callable[[str, int], Future] | None = None,
                   rows: Callable[[str, int, Any], tuple[pd.DataFrame, dict]] = _run_rows,
                   on_run: OnRun | None = None) -> tuple[pd.DataFrame, dict]:
    """Call ``train(strategy, seed)`` for every pair of ``config`` not already in ``folder``,
    saving each finished run there; return the rows of all pairs and their arrays.

    With ``submit`` (``submit(strategy, seed)`` returns a future of the result, e.g. from a
    process pool), every missing pair is submitted at once and saved as it finishes; the rows
    come back in the same order as without it. ``rows(strategy, seed, result)`` turns a result
    into its rows and arrays (by default a single-label ``RunResult``'s); ``on_run`` hears of
    each run trained here, with its seconds.
    """
    from tqdm.auto import tqdm

    kept: dict[tuple[str, int], tuple[pd.DataFrame, dict]] = {}
    pairs = [(name, seed) for name in config.strategies for seed in config.seeds]
    desc = "study" if config.task == "single" else "multi-label study"
    bar = tqdm(total=len(pairs), desc=desc, unit="run", position=0,
               disable=not config.progress)

    def finish(pair: tuple[str, int], result: Any) -> None:
        frame, arrays = rows(*pair, result)
        if folder is not None:
            folder.save_run(*pair, frame, arrays)
        kept[pair] = frame, arrays
        bar.update()
        if on_run is not None:
            seconds = frame.loc[frame["metric"].eq("seconds") & frame["split"].eq("run"), "value"]
            on_run(*pair, float(seconds.iloc[0]))

    missing = []
    for pair in pairs:
        if folder is not None and folder.finished(*pair):
            kept[pair] = folder.rows(*pair), folder.probs(*pair)
            bar.update()
        else:
            missing.append(pair)
    try:
        if submit is None:
            for pair in missing:
                bar.set_postfix(strategy=pair[0], seed=pair[1])
                finish(pair, train(*pair))
        else:
            futures = {submit(*pair): pair for pair in missing}
            try:
                for future in as_completed(futures):
                    finish(futures[future], future.result())
            finally:
                for future in futures:
                    future.cancel()
    finally:
        bar.close()
    frames = [kept[pair][0] for pair in pairs]
    probs = {pair: kept[pair][1] for pair in pairs}
    return pd.concat(frames, ignore_index=True), probs


# One process of a --jobs pool: the data and settings arrive once, in the initializer.
_WORKER: dict = {}


def _init_worker(data: StudyData | MultiLabelData,
                 config: StudyConfig | MultiLabelStudyConfig) -> None:
    torch.set_num_threads(config.threads)
    _WORKER.update(data=data, config=config)


def _train_in_worker(name: str, seed: int, overrides: dict | None = None,
                     evaluate: tuple[str, ...] = ("val", "test")) -> RunResult:
    from balancer.study._train import train_and_evaluate

    config = _WORKER["config"]
    if overrides:
        config = StudyConfig(**{**config.to_dict(), **overrides})
    return train_and_evaluate(_WORKER["data"], STRATEGIES[name], seed, config,
                              device=torch.device(config.device), evaluate=evaluate)


def _train_multilabel_in_worker(name: str, seed: int) -> dict[str, Any]:
    from balancer.study._multilabel import train_multilabel_run

    config = _WORKER["config"]
    return train_multilabel_run(_WORKER["data"], ML_STRATEGIES[name], seed, config,
                                device=torch.device(config.device))


def add_posthoc(results: pd.DataFrame, probs: dict, labels: dict[str, np.ndarray],
                train_counts: np.ndarray, config: StudyConfig) -> tuple[pd.DataFrame, dict]:
    """Append the post-hoc rows (see :mod:`balancer.study._posthoc`), derived from the trained
    runs' validation and test probabilities; the settings are chosen on validation only."""
    from balancer.study._posthoc import POSTHOC, posthoc_rows

    derived, derived_probs = posthoc_rows(
        Predictions(labels, probs), train_counts, list(config.seeds), ece_bins=config.ece_bins,
        ordinal=config.is_ordinal(),
        fixed={name: getattr(config, field) for name, (_, field) in POSTHOC.items()},
        positive=config.positive_class)
    if derived.empty:
        return results, probs
    return pd.concat([results, derived], ignore_index=True), {**probs, **derived_probs}


def make_pool(data: StudyData | MultiLabelData, config: StudyConfig | MultiLabelStudyConfig,
              jobs: int | None = None) -> ProcessPoolExecutor:
    """``jobs`` (default ``config.jobs``) fresh processes (spawned: nothing of this process's torch state, threads
    or generators is inherited), each with ``config.threads`` torch threads. A run is a
    function of its seed alone, so the results are those of ``jobs=1``."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    quiet = type(config)(**{**config.to_dict(), "progress": False, "jobs": 1})
    return ProcessPoolExecutor(max_workers=config.jobs if jobs is None else jobs,
                               mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(data, quiet))


@contextlib.contextmanager
def _run_settings(config: StudyConfig | MultiLabelStudyConfig, data: StudyData | MultiLabelData,
                  worker: Callable[[str, int], Any]
                  ) -> Iterator[tuple[torch.device, Callable[[str, int], Future] | None]]:
    """The torch settings both studies train under, restored on exit, and with ``jobs > 1``
    the process pool: yields the device and ``submit(name, seed)`` (``None`` for one job).
    ``config``'s ``min_steps`` is applied first (as :func:`prepare_data` does; a no-op when it
    did), so data loaded by the caller gets it too, the pool's copy included."""
    rows = data.targets["train"] if isinstance(data, MultiLabelData) else data.labels["train"]
    config.apply_min_steps(len(rows))
    device = torch.device(config.device)
    threads = torch.get_num_threads()
    cudnn = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    if device.type == "cpu":
        torch.set_num_threads(config.threads)
    else:  # the same seed, the same numbers on the GPU too
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    pool = None
    try:
        if config.jobs > 1:
            pool = make_pool(data, config)
        yield device, None if pool is None else (lambda n, s: pool.submit(worker, n, s))
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(threads)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


def run_study(config: StudyConfig | MultiLabelStudyConfig,
              data: StudyData | MultiLabelData | None = None, *,
              folder: RunFolder | None = None, on_run: OnRun | None = None) -> pd.DataFrame:
    """Train every strategy with every seed and return the results in long form.

    Args:
        config: the settings (see :class:`StudyConfig`); a
            :class:`~balancer.study.MultiLabelStudyConfig` runs the multi-label study (see
            :func:`_run_multilabel` for its results).
        data: already loaded data; by default :func:`prepare_data` loads ``config``'s.
        folder: a run folder from :func:`~balancer.study.prepare_out`: each finished run is
            saved there at once, and runs it already holds are read instead of trained.
        on_run: called with ``(strategy, seed, seconds)`` as each run trained here finishes
            (the command line prints a line per run where no progress bar shows).

    Returns:
        A DataFrame with columns ``strategy, seed, split, metric, value``: the test metrics
        (``split="test"``), the same metrics on validation (``"val"``) and the run's
        ``selected_epoch``, ``steps``, ``shortest_phase_steps`` and ``seconds``
        (``"run"``). ``attrs`` holds
        ``class_names``, ``source``, ``tabular`` (the model is the MLP), ``counts`` (per split),
        ``dataset_key``, ``seconds``, ``predictions`` (:class:`Predictions`) and
        ``environment`` (the machine, as the run started).
    """
    from balancer.study._train import train_and_evaluate

    # data is of config's task (the caller's); the casts only tell mypy which one
    if isinstance(config, MultiLabelStudyConfig):
        return _run_multilabel(config, cast("MultiLabelData | None", data), folder, on_run)
    config.validate()
    data = prepare_data(config) if data is None else cast(StudyData, data)
    start = time.perf_counter()
    environment = describe_environment(device=config.device, threads=config.threads,
                                       jobs=config.jobs)  # the load average as the run starts
    with _run_settings(config, data, _train_in_worker) as (device, submit):
        results, probs = run_strategies(
            config, lambda name, seed: train_and_evaluate(data, STRATEGIES[name], seed, config,
                                                          device=device),
            folder=folder, on_run=on_run, submit=submit)
    labels = {split: data.labels[split].numpy() for split in ("val", "test")}
    if config.posthoc:
        results, probs = add_posthoc(results, probs, labels, data.counts("train"), config)
    key = (config.dataset or ("retinamnist" if all(
        getattr(config, n) is None for n in ("data", "csv", "table")) else None))
    results.attrs.update(
        class_names=list(data.class_names), source=data.source, tabular=data.tabular,
        counts={split: data.counts(split).tolist() for split in ("train", "val", "test")},
        dataset_key=key.lower() if key else None, seconds=time.perf_counter() - start,
        predictions=Predictions(labels, probs), environment=environment)
    return results


#: The multi-label study's runner is :func:`run_study` with a multi-label config.
run_multilabel_study = run_study


# ------------------------------------------------------------------ the multi-label study
def _prepare_multilabel_data(config: MultiLabelStudyConfig) -> MultiLabelData:
    """Load and check the data of ``config`` (every input error is raised here)."""
    data = load_multilabel_data(data=config.data, table=config.table,
                                label_cols=config.label_cols, label_col=config.label_col,
                                split_col=config.split_col, group_col=config.group_col,
                                samples=config.samples, impute=config.impute,
                                min_positives=config.min_positives, fractions=config.split)
    train = len(data.targets["train"])
    if train < config.batch_size:
        raise ValueError(f"batch_size={config.batch_size} is larger than the train split "
                         f"({train} rows); pass a smaller --batch-size")
    config.apply_min_steps(train)
    # Build every strategy's sampler and loss once (milliseconds): whatever they refuse is
    # refused now, not after the first runs have trained.
    from balancer.study._multilabel import make_multilabel_loss, make_multilabel_sampler

    targets = data.targets["train"].numpy()
    assert config.finetune_epochs is not None  # validate() filled it in when it was left unset
    for name in config.strategies:
        strategy = ML_STRATEGIES[name]
        make_multilabel_sampler(strategy, targets, batch_size=config.batch_size,
                                epochs=config.epochs, finetune_epochs=config.finetune_epochs,
                                seed=0, rfs_threshold=config.rfs_threshold)
        make_multilabel_loss(strategy, targets.sum(0), train, config)
    return data


def _multilabel_rows(name: str, seed: int, run: dict[str, Any]) -> pd.DataFrame:
    rows = [(name, seed, split, metric, value) for split in ("test", "val")
            for metric, value in run["metrics"][split].items()]
    rows += [(name, seed, "run", "selected_epoch", float(run["selected_epoch"])),
             (name, seed, "run", "steps", float(run["steps"])),
             (name, seed, "run", "shortest_phase_steps", float(run["shortest_phase_steps"])),
             (name, seed, "run", "seconds", float(run["seconds"])),
             (name, seed, "run", "cpu_seconds", float(run["cpu_seconds"]))]
    return pd.DataFrame(rows, columns=COLUMNS)


def _run_multilabel(config: MultiLabelStudyConfig, data: MultiLabelData | None,
                    folder: RunFolder | None, on_run: OnRun | None = None) -> pd.DataFrame:
    """:func:`run_study` of a multi-label study.

    Returns:
        A DataFrame with columns ``strategy, seed, split, metric, value`` (test and val metrics
        of :func:`~balancer.study._metrics.multilabel_metrics`, and each run's
        ``selected_epoch``, ``steps``, ``shortest_phase_steps``, ``seconds``). ``attrs`` holds
        ``label_names``,
        ``source``, ``counts`` (per split), ``rarest``, ``paired`` (the paired differences),
        ``positive_rates`` (per sampler, the planned share of slots carrying each label),
        ``seconds`` and ``environment`` (the machine, as the run started).
    """
    from balancer.study._multilabel import rarest_labels, train_multilabel_run

    config.validate()
    data = prepare_data(config) if data is None else data
    start = time.perf_counter()
    environment = describe_environment(device=config.device, threads=config.threads,
                                       jobs=config.jobs)  # the load average as the run starts
    with _run_settings(config, data, _train_multilabel_in_worker) as (device, submit):
        results, arrays = run_strategies(
            config, lambda name, seed: train_multilabel_run(data, ML_STRATEGIES[name], seed,
                                                            config, device=device),
            folder=folder, on_run=on_run,
            rows=lambda name, seed, run: (_multilabel_rows(name, seed, run), run["arrays"]),
            submit=submit)
    names = list(data.label_names)
    rarest = rarest_labels(data, config.rarest)
    metrics = [*ML_HEADLINE, *[f"{kind}[{label}]" for label in rarest
                            for kind in ("auroc", "auprc")]]
    paired = paired_multilabel(
        {key: value["test"] for key, value in arrays.items()}, data.targets["test"].numpy(),
        {key: value["thresholds"] for key, value in arrays.items()},
        strategies=list(config.strategies), seeds=list(config.seeds),
        reference=config.reference_row(), metrics=metrics, names=names,
        resamples=config.bootstrap)
    results.attrs.update(
        label_names=names, source=data.source, rarest=rarest, paired=paired,
        counts={split: data.counts(split).tolist() for split in ("train", "val", "test")},
        rows={split: len(data.targets[split]) for split in ("train", "val", "test")},
        positive_rates=_positive_rates(data, config),
        seconds=time.perf_counter() - start, environment=environment)
    return results


def _positive_rates(data: MultiLabelData, config: MultiLabelStudyConfig) -> pd.DataFrame:
    """Per label: its share of the train rows and of the slots each sampler plans."""
    targets = data.targets["train"].numpy()
    frame = pd.DataFrame({"label": list(data.label_names),
                          "plain": targets.mean(0, dtype=np.float64)})
    if any(ML_STRATEGIES[s].sampling == "label-balanced" for s in config.strategies):
        frame["label-balanced"] = MultiLabelBalancedSampler(
            targets, config.batch_size, seed=0, samples_per_epoch=len(targets)
        ).label_positive_rate
    if any(ML_STRATEGIES[s].sampling == "repeat-factor" for s in config.strategies):
        frame["repeat-factor"] = RepeatFactorSampler(
            targets, config.batch_size, threshold=config.rfs_threshold, seed=0
        ).label_positive_rate
    return frame
