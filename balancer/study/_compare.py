"""The study on the user's own model and data: :func:`compare`."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

from balancer.study._config import StudyConfig, check_seeds
from balancer.study._data import SPLITS, _check_classes, _class_indices, check_finite_features
from balancer.study._strategies import INIT, STRATEGIES

__all__ = ["compare"]

#: compare()'s default rows: every strategy except ldam-drw, which needs a cosine classifier.
COMPARE_STRATEGIES = tuple(name for name, s in STRATEGIES.items()
                           if not s.cosine_head and not s.classifier_retrain)


def _encode(labels: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Labels of the three splits to class indices ``0..C-1`` (classes sorted; integers as
    numbers, anything else as strings)."""
    arrays = {s: np.asarray(labels[s]) for s in SPLITS}
    for s in SPLITS:
        if np.issubdtype(arrays[s].dtype, np.floating):
            # As the CLI does: NaN, infinite and fractional labels are refused (as strings they
            # became classes 'nan' and '0.5'); whole numbers become the integer classes.
            arrays[s] = _class_indices(arrays[s], f"labels of {s}")
    numeric = all(arrays[s].dtype.kind in "iub" for s in SPLITS)
    values = {s: arrays[s].astype(np.int64) if numeric else arrays[s].astype(str) for s in SPLITS}
    classes = np.unique(np.concatenate([values[s] for s in SPLITS]))
    codes = {s: np.searchsorted(classes, values[s]).astype(np.int64) for s in SPLITS}
    return codes, tuple(str(c) for c in classes)


def _labels(dataset: Dataset, given: Any, split: str) -> np.ndarray:
    """``labels_of``'s labels; for a ``TensorDataset`` (or a ``Subset`` of one, as
    ``random_split`` makes) whose last tensor holds the labels, that tensor."""
    from torch.utils.data import Subset, TensorDataset

    from balancer import labels_of

    def last_tensor(ds: Dataset) -> np.ndarray | None:
        if isinstance(ds, TensorDataset):
            return ds.tensors[-1].numpy()
        if isinstance(ds, Subset):
            inner = last_tensor(ds.dataset)
            return None if inner is None else inner[np.asarray(ds.indices, dtype=np.int64)]
        return None

    try:
        return np.asarray(labels_of(dataset, given))
    except ValueError as error:
        found = last_tensor(dataset) if given is None else None
        if found is None:
            raise ValueError(f"labels of {split}: {error}") from None
        return found


def _tensor_inputs(dataset: Dataset) -> torch.Tensor | None:
    """The inputs of a ``TensorDataset`` (or of a ``Subset`` of one), in the dataset's order,
    without loading items; ``None`` for any other dataset."""
    from torch.utils.data import Subset, TensorDataset

    if isinstance(dataset, TensorDataset):
        return dataset.tensors[0]
    if isinstance(dataset, Subset):
        inner = _tensor_inputs(dataset.dataset)
        return None if inner is None else inner[torch.as_tensor(dataset.indices, dtype=torch.long)]
    return None


def _check_finite_inputs(datasets: dict[str, Dataset]) -> None:
    """Refuse NaN or infinite features where they can be seen without loading items: every row of
    a ``TensorDataset`` split (other datasets are checked on the probe item only)."""
    for split, dataset in datasets.items():
        inputs = _tensor_inputs(dataset)
        if inputs is not None and inputs.is_floating_point() and inputs.ndim >= 1:
            check_finite_features(inputs.reshape(len(inputs), -1).numpy(),
                                  f"compare(): the {split} split's inputs")


def _input_width(model: nn.Module) -> str:
    """What the model's first layer expects, for the error message (``''`` when unknown)."""
    for module in model.modules():
        if isinstance(module, nn.modules.lazy.LazyModuleMixin):
            return ""
        if isinstance(module, nn.Linear):
            return f"(batch, {module.in_features})"
        if isinstance(module, nn.modules.conv._ConvNd):
            return f"(batch, {module.in_channels}, ...)"
    return ""


def _seeded_model(model_fn: Callable[[int], nn.Module], num_classes: int, seed: int) -> nn.Module:
    from balancer.study._strategies import seeded_generator

    # A user's model initialises itself from torch's global generator; seeding a forked copy of
    # it makes the model a function of the run's seed without changing the caller's RNG state.
    state = int(torch.randint(2**62, (1,), generator=seeded_generator(seed, INIT)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(state)
        model = model_fn(num_classes)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model_fn({num_classes}) should return a torch.nn.Module, but returned "
                        f"{type(model).__name__}")
    return model


def compare(
    train: Dataset,
    val: Dataset,
    test: Dataset,
    model_fn: Callable[[int], nn.Module],
    *,
    labels: dict[str, Any] | None = None,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    resume: bool = False,
    num_workers: int = 0,
    command: str = "balancer.study.compare(...)",
    **settings: Any,
) -> pd.DataFrame:
    """Run the study's strategies x seeds on your own datasets and model.

    Every strategy trains ``model_fn(num_classes)`` (a fresh model per run, initialised from the
    run's seed) for the same number of optimizer steps, ``epochs * ceil(len(train) /
    batch_size)``, with the same AdamW settings; only how batches are drawn and the loss differ.
    The model is selected on ``val`` (``select``) and evaluated once on ``test``, with the same
    metrics as ``balancer study``. The datasets' own transforms (augmentation, normalisation)
    apply; the study adds none.

    Args:
        train, val, test: map-style datasets whose items are ``(input, label, ...)`` tuples (or
            dicts with an ``"image"``/``"input"``/``"x"`` key). Labels are read without loading
            items where possible (:func:`balancer.labels_of`: ``targets``, ``labels``, ...).
        model_fn: ``model_fn(num_classes) -> nn.Module``, mapping a batch of inputs to logits.
        labels: per split, labels to use instead of :func:`balancer.labels_of`'s.
        out: a run folder for the CSV, Markdown and PNG outputs (checked before training; each
            finished run is saved at once). ``overwrite`` replaces a previous study there,
            ``resume`` continues it.
        num_workers: ``DataLoader`` workers.
        command: how the report names what produced it.
        **settings: any :class:`StudyConfig` training setting (``strategies``, ``seeds``,
            ``epochs``, ``batch_size``, ``lr``, ``focal_gamma``, ...). The default strategies
            are every one except ``ldam-drw``, whose margins are defined on a cosine classifier
            that a user's model does not have.

    Returns:
        The results in long form, as :func:`run_study` returns them.

    Raises:
        TypeError, ValueError: before any training, for NaN, infinite or fractional labels,
            NaN or infinite features (every row of a ``TensorDataset`` split, the probe item of
            any other), ``seeds`` that is not a non-empty sequence of integers >= 0, and a model
            whose input or output shape does not fit the data (one item is probed through it).

    Example::

        import torch
        from torch import nn
        from balancer.study import compare

        X = torch.randn(600, 8)
        y = (X[:, 0] > 1.0).long()                      # about 1 in 6 positive
        data = torch.utils.data.TensorDataset(X, y)
        train, val, test = torch.utils.data.random_split(
            data, [400, 100, 100], generator=torch.Generator().manual_seed(0))

        def model_fn(num_classes):
            return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, num_classes))

        results = compare(train, val, test, model_fn, strategies=("plain", "balanced"),
                          seeds=(0, 1), epochs=5, out="runs/mine")
    """
    from balancer.study._outputs import prepare_out
    from balancer.study._report import write_outputs
    from balancer.study._study import Predictions, add_posthoc, run_strategies
    from balancer.study._train import DatasetSource, train_run

    for name in ("data", "dataset", "csv", "table", "train_limit"):
        if settings.get(name) is not None:
            raise ValueError(f"compare() takes the data as datasets; {name}={settings[name]!r} "
                             f"does not apply here (use balancer study --{name} for that)")
    if settings.get("jobs", 1) != 1:
        raise ValueError(f"compare() trains its runs one after another in this process "
                         f"(model_fn and the datasets need not be picklable), so "
                         f"jobs={settings['jobs']!r} does not apply; remove jobs (balancer "
                         f"study --jobs trains the shipped data in parallel)")
    if settings.get("augment"):
        raise ValueError("compare() adds no augmentation (the datasets' own transforms apply), "
                         "so augment=True does not apply; put it in the train dataset's transform")
    if settings.get("tuned"):
        raise ValueError("tuned=True fills settings from a shipped data set's tuning record "
                         "(balancer/study/tuned/), which says nothing about your data; pass the "
                         "settings themselves (e.g. focal_gamma=0.5)")
    if "seeds" in settings:
        seeds = settings["seeds"]
        # Sized, so that a one-shot generator is not emptied by a check before it is used.
        if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__len__"):
            raise TypeError(f"seeds should be a sequence of integers >= 0, but got seeds={seeds!r} "
                            f"of type {type(seeds).__name__}; pass e.g. seeds=(0, 1, 2)")
        if len(seeds) == 0:
            raise ValueError(f"seeds={seeds!r} is empty; pass at least one seed, e.g. "
                             f"seeds=(0, 1, 2)")
        settings["seeds"] = check_seeds(seeds)
    settings.setdefault("strategies", COMPARE_STRATEGIES)
    settings.setdefault("progress", False)
    # A config without data names the default shipped RetinaMNIST: without these, a user's
    # datasets got RetinaMNIST's tuned settings and its ordinal-grade metric (kappa).
    settings.setdefault("tuned", False)
    settings.setdefault("ordinal", False)
    settings.setdefault("augment", False)
    config = StudyConfig(**settings)
    cosine = [name for name in config.strategies if STRATEGIES[name].cosine_head]
    if cosine:
        raise ValueError(f"strategies={list(config.strategies)} includes {cosine[0]!r}, whose "
                         f"LDAM margins are defined on a cosine classifier that model_fn's model "
                         f"does not have; leave it out (the default strategies do)")
    if not callable(model_fn):
        raise TypeError(f"model_fn should be a callable model_fn(num_classes) -> nn.Module, but "
                        f"got {type(model_fn).__name__}")
    datasets = {"train": train, "val": val, "test": test}
    for split, dataset in datasets.items():
        if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
            raise TypeError(f"{split} should be a map-style dataset (with __getitem__ and "
                            f"__len__), but got {type(dataset).__name__}")
    given = labels or {}
    raw = {split: _labels(datasets[split], given.get(split), split) for split in SPLITS}
    for split in SPLITS:
        if raw[split].ndim != 1 or len(raw[split]) != _length(datasets[split]):
            raise ValueError(f"labels of {split}: expected one label per item "
                             f"({_length(datasets[split])}), but got shape {raw[split].shape}")
    codes, names = _encode(raw)
    _check_classes(codes, names, "compare()")
    if len(codes["train"]) < config.batch_size:
        raise ValueError(f"batch_size={config.batch_size} is larger than the train split "
                         f"({len(codes['train'])} samples); pass a smaller batch_size")
    device = torch.device(config.device)
    num_classes = len(names)
    source = DatasetSource(datasets, codes, device=device, num_workers=num_workers)

    # One forward pass before any training: a model that does not fit the data fails now.
    probe = _seeded_model(model_fn, num_classes, config.seeds[0]).to(device)
    if config.finetune_freeze and not isinstance(getattr(probe, "backbone", None), nn.Module):
        raise ValueError("finetune_freeze=True freezes model.backbone, but model_fn's model has "
                         "no 'backbone' submodule; add one or pass finetune_freeze=False")
    retrain = [name for name in config.strategies if STRATEGIES[name].classifier_retrain]
    if retrain and not all(isinstance(getattr(probe, part, None), nn.Module)
                           for part in ("backbone", "head")):
        raise ValueError(f"strategies={list(config.strategies)} includes {retrain[0]!r}, which "
                         f"freezes model.backbone and retrains model.head, but model_fn's model "
                         f"lacks one of those submodules; add both or leave {retrain[0]!r} out")
    from torch.utils.data import default_collate

    _check_finite_inputs(datasets)
    inputs = default_collate([source.datasets["train"][0]])[0]
    if (isinstance(inputs, torch.Tensor) and inputs.is_floating_point()
            and not torch.isfinite(inputs).all()):
        raise ValueError("compare(): the train split's inputs have NaN or infinite values in row "
                         "0; fill or drop them")
    inputs = inputs.to(device)
    with torch.no_grad():
        probe.eval()
        try:
            shape = tuple(probe(inputs).shape)
        except RuntimeError as error:
            expects = _input_width(probe)
            raise ValueError(
                f"model_fn({num_classes})'s model cannot take the data's inputs: a batch of "
                f"inputs has shape {tuple(inputs.shape)}, but the model expects "
                f"{expects or 'another shape'} ({str(error).splitlines()[0]}); make the "
                f"model's input layer match the data") from error
    if shape != (1, num_classes):
        raise ValueError(f"model_fn({num_classes}) maps one input to shape {shape}, but the "
                         f"study needs logits of shape (1, {num_classes}) ({names})")

    folder = (prepare_out(out, config=config.to_dict(), overwrite=overwrite, resume=resume)
              if out is not None else None)
    start = time.perf_counter()
    results, probs = run_strategies(
        config, lambda name, seed: train_run(
            source, lambda: _seeded_model(model_fn, num_classes, seed), num_classes,
            STRATEGIES[name], seed, config, device=device),
        folder=folder)
    if config.posthoc:
        results, probs = add_posthoc(results, probs, {s: codes[s] for s in ("val", "test")},
                                     np.bincount(codes["train"], minlength=num_classes), config)
    results.attrs.update(
        class_names=list(names),
        source=f"user datasets ({_length(train)} / {_length(val)} / {_length(test)} samples), "
               f"model_fn="
               f"{getattr(model_fn, '__name__', type(model_fn).__name__)}",
        counts={s: np.bincount(codes[s], minlength=num_classes).tolist() for s in SPLITS},
        dataset_key=None, seconds=time.perf_counter() - start, own_model=True,
        predictions=Predictions({s: codes[s] for s in ("val", "test")}, probs))
    if out is not None:
        write_outputs(results, config, Path(out), command=command, info=results.attrs)
    return results


def _length(dataset: Dataset) -> int:
    # torch's Dataset declares no __len__; a map-style one has it (compare() checks that first)
    return len(dataset)  # type: ignore[arg-type]
