"""The strategies the study compares: how each one samples batches and which loss it trains with.

# Design note: one step budget for every strategy
# A strategy that sees more batches is not better, it is longer. Every strategy here runs the
# same number of optimizer steps: ``epochs * ceil(N / batch_size)`` for ``N`` training samples.
# To get there, every batch sampler yields exactly ``ceil(N / batch_size)`` batches per "epoch",
# whatever it draws from: a shuffled pass over the data (plain and the loss-based strategies), ``N``
# draws with replacement (oversample-wrs), ``N`` slots of the circular per-class buffers
# (balanced, through ``samples_per_epoch=N``) or consecutive shuffled passes over the fixed,
# undersampled subset (undersample, which therefore cycles its small subset several times per
# epoch). Phases (the last ``finetune_epochs`` of balanced+finetune, the last ``drw_epochs`` of
# ldam-drw, the balanced last ``drs_epochs`` of drs and ``crt_epochs`` of crt) happen inside those
# epochs: a phase changes what a step does, never how many steps there are.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, Sampler, WeightedRandomSampler

import losses
from balancer import BalancedBatchSampler, FineTuneSchedule
from balancer._schedule import BATCHNORM_POLICIES

__all__ = ["DECLARED", "LIBRARY_DEFAULTS", "ML_STRATEGIES", "POSTHOC_ROWS", "SETTINGS",
           "STRATEGIES", "TUNABLE", "TUNED_ROWS", "Setting", "Strategy", "make_batch_sampler",
           "make_loss", "seeded_generator"]


@dataclass(frozen=True)
class Setting:
    """One setting of a strategy: a :class:`~balancer.study.StudyConfig` field, its ``--flag``,
    its library default and the words of its help.

    Attributes:
        field: the config field (the flag is ``--field-with-dashes``).
        default: the value without a given or tuned one; a phase length (``*_epochs``) is capped
            at ``epochs``; ``None`` for a post-hoc row's setting: chosen per seed on validation.
        help: what the flag sets, e.g. ``"focal's gamma (0 is cross-entropy)"``.
        choices: the values of a setting that is a word, not a number (the flag accepts only
            these); empty for a number.
    """

    field: str
    default: float | int | str | None
    help: str
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")

    def default_text(self) -> str:
        """The default in words, as the help states it."""
        if self.default is None:
            return "chosen per seed on validation"
        if self.field.endswith("_epochs"):
            return f"min({self.default}, epochs)"
        return str(self.default)


@dataclass(frozen=True)
class Strategy:
    """How one row of the study trains, declared once: everything else (the config's tunable
    settings and their defaults, the tuning grid, the command-line flags, the report's lines and
    the post-hoc rows) is read from these declarations.

    Attributes:
        name: the row's name.
        sampling: single-label: ``"shuffle"``, ``"undersample"``, ``"wrs"``, ``"balanced"`` or
            ``"deferred"`` (shuffled passes, then balanced batches for the last epochs);
            multi-label: ``"shuffle"``, ``"label-balanced"``
            (:class:`~balancer.MultiLabelBalancedSampler`) or ``"repeat-factor"``
            (:class:`~balancer.RepeatFactorSampler`); ``""`` for a post-hoc row.
        loss: single-label: ``"ce"``, ``"weighted"``, ``"effective"``, ``"focal"``, ``"ldam"``,
            ``"logit-adjusted"`` or ``"hinge"``; multi-label: ``"bce"``, ``"pos-weight"``,
            ``"asl"``, ``"db"`` or ``"sigmoid-la"``; ``""`` for a post-hoc row.
        description: one line for the report.
        finetune: the last ``finetune_epochs`` run at the true frequencies, with the fine-tune
            learning rate, BatchNorm per ``finetune_batchnorm`` and (optionally) a frozen
            backbone.
        deferred_reweighting: the last ``drw_epochs`` add class-balanced weights to the loss.
        cosine_head: the model's classifier is a cosine head (LDAM is defined on cosines).
        classifier_retrain: when the deferred balanced phase starts, the classifier is
            re-initialised and retrained alone, the backbone frozen (cRT).
        task: ``"single"`` (``balancer study``) or ``"multi"`` (``balancer study --multilabel``).
        settings: the strategy's own key settings, which ``balancer study --tune`` chooses.
        grid: the tuning grid: ``GRID_POINTS`` values of ``settings``, the first the default.
        phase: the setting that sets the length of the strategy's last phase, and what the
            strategy trains as when that phase has 0 epochs.
        base: a post-hoc row's trained row (its runs' logits are shifted after training).
    """

    name: str
    sampling: str
    loss: str
    description: str
    finetune: bool = False
    deferred_reweighting: bool = False
    cosine_head: bool = False
    classifier_retrain: bool = False
    task: str = "single"
    settings: tuple[Setting, ...] = ()
    grid: tuple[dict[str, Any], ...] = ()
    phase: tuple[str, str] | None = None
    base: str | None = None


def _grid(field: str, *values: float) -> tuple[dict[str, Any], ...]:
    return tuple({field: value} for value in values)


#: Every row of both studies, in report order.
DECLARED: tuple[Strategy, ...] = (
    Strategy("plain", "shuffle", "ce", "shuffled batches, cross-entropy"),
    Strategy("weighted", "shuffle", "weighted",
             "cross-entropy with inverse-frequency class weights"),
    Strategy("effective", "shuffle", "effective",
             "cross-entropy with class-balanced weights (effective number of samples, Cui et al. 2019)",
             settings=(Setting("effective_beta", 0.99, "effective's beta of the effective number "
                                                       "of samples, in [0, 1)"),),
             grid=_grid("effective_beta", 0.99, 0.9, 0.999)),
    Strategy("undersample", "undersample", "ce",
             "majority classes cut to the minority count once per seed, cross-entropy"),
    Strategy("oversample-wrs", "wrs", "ce",
             "torch WeightedRandomSampler (1/n_c per sample, with replacement), cross-entropy"),
    Strategy("balanced", "balanced", "ce",
             "BalancedBatchSampler: equal-frequency batches from circular per-class buffers"),
    Strategy("balanced+finetune", "balanced", "ce",
             "balanced, then the last epochs at the true frequencies (FineTuneSchedule)",
             finetune=True,
             settings=(Setting("finetune_epochs", 1,
                               "balanced+finetune's epochs at true frequencies"),
                       Setting("finetune_lr_scale", 0.1, "balanced+finetune's learning-rate "
                                                         "factor in the fine-tune phase"),
                       # "train", as in the library: the pinned results and the shipped
                       # tuning records were made with it; --tune chooses on validation.
                       Setting("finetune_batchnorm", "train",
                               "BatchNorm in the fine-tune phase of balanced+finetune: frozen "
                               "(running statistics of the balanced phase) or train (re-estimated "
                               "at the true frequencies), see balancer.set_train_mode; with "
                               "--multilabel, of label-balanced+finetune",
                               choices=BATCHNORM_POLICIES)),
             # The full learning rate (x1.0) left the grid for the BatchNorm point: every shipped
             # tuning record had rejected it.
             grid=({"finetune_epochs": 1, "finetune_lr_scale": 0.1, "finetune_batchnorm": "train"},
                   {"finetune_epochs": 3, "finetune_lr_scale": 0.1, "finetune_batchnorm": "train"},
                   {"finetune_epochs": 1, "finetune_lr_scale": 0.1,
                    "finetune_batchnorm": "frozen"}),
             phase=("finetune_epochs", "balanced")),
    Strategy("focal", "shuffle", "focal", "focal loss (Lin et al. 2017), shuffled batches",
             settings=(Setting("focal_gamma", 2.0, "focal's gamma (0 is cross-entropy)"),),
             grid=_grid("focal_gamma", 2.0, 0.5, 1.0)),
    Strategy("ldam-drw", "shuffle", "ldam",
             "LDAM margins on a cosine head (Cao et al. 2019), class-balanced re-weighting in the "
             "last epochs", deferred_reweighting=True, cosine_head=True,
             settings=(Setting("drw_epochs", 3,
                               "ldam-drw's last epochs with class-balanced weights"),),
             grid=_grid("drw_epochs", 3, 1, 6),
             phase=("drw_epochs", "LDAM without deferred re-weighting")),
    Strategy("logit-adjusted", "shuffle", "logit-adjusted",
             "logit-adjusted cross-entropy (Menon et al. 2021), shuffled batches",
             settings=(Setting("la_tau", 1.0, "logit-adjusted's tau (0 is cross-entropy)"),),
             grid=_grid("la_tau", 1.0, 0.5, 1.5)),
    Strategy("hinge", "shuffle", "hinge", "multi-class hinge (margin) loss, shuffled batches"),
    Strategy("drs", "deferred", "ce",
             "deferred re-sampling (Cao et al. 2019): shuffled batches, then BalancedBatchSampler "
             "batches for the last epochs, cross-entropy",
             settings=(Setting("drs_epochs", 3, "drs's last epochs on balanced batches"),),
             grid=_grid("drs_epochs", 3, 1, 6), phase=("drs_epochs", "plain")),
    Strategy("crt", "deferred", "ce",
             "classifier re-training (Kang et al. 2020): shuffled batches, then the classifier "
             "re-initialised and retrained alone on BalancedBatchSampler batches, backbone frozen",
             classifier_retrain=True,
             settings=(Setting("crt_epochs", 3, "crt's last epochs retraining the classifier on "
                                                "balanced batches"),),
             grid=_grid("crt_epochs", 3, 1, 6), phase=("crt_epochs", "plain")),
    # Post-hoc rows (balancer/study/_posthoc.py): derived from a trained row, no training.
    Strategy("plain+posthoc", "", "", "plain's runs, post-hoc logit adjustment", base="plain",
             settings=(Setting("posthoc_tau", None, "plain+posthoc's tau"),),
             grid=_grid("posthoc_tau", 1.0, 0.5, 1.5)),
    Strategy("balanced+posthoc", "", "", "balanced's runs, post-hoc logit adjustment",
             base="balanced",
             settings=(Setting("balanced_posthoc_tau", None, "balanced+posthoc's tau"),),
             grid=_grid("balanced_posthoc_tau", 1.0, 0.5, 1.5)),
    Strategy("plain+threshold", "", "", "plain's runs, a threshold on p(class 1)", base="plain",
             settings=(Setting("threshold", None, "plain+threshold's threshold on p(class 1)"),),
             grid=_grid("threshold", 0.5, 0.25, 0.75)),
    # The multi-label study (balancer study --multilabel).
    Strategy("plain", "shuffle", "bce", "shuffled batches, binary cross-entropy", task="multi"),
    Strategy("label-balanced", "label-balanced", "bce",
             "MultiLabelBalancedSampler: every label's positives as close to equal as "
             "co-occurrence allows, BCE", task="multi"),
    Strategy("label-balanced+finetune", "label-balanced", "bce",
             "label-balanced, then the last epochs at the true frequencies "
             "(FineTuneSchedule)", finetune=True, task="multi",
             phase=("finetune_epochs", "label-balanced")),
    Strategy("repeat-factor", "repeat-factor", "bce",
             "RepeatFactorSampler (LVIS repeat factors), BCE", task="multi"),
    Strategy("pos-weight", "shuffle", "pos-weight",
             "BCE with per-label pos_weight (N - n_j) / n_j, shuffled batches", task="multi"),
    Strategy("asl", "shuffle", "asl",
             "asymmetric loss (Ridnik et al. 2021), shuffled batches", task="multi"),
    Strategy("db", "shuffle", "db",
             "distribution-balanced loss (Wu et al. 2020), shuffled batches", task="multi"),
    Strategy("sigmoid-la", "shuffle", "sigmoid-la",
             "BCE on logits shifted by each label's prior log-odds (sigmoid logit "
             "adjustment), shuffled batches", task="multi"),
)

#: The trained rows of the single-label study, by name.
STRATEGIES: dict[str, Strategy] = {s.name: s for s in DECLARED
                                   if s.task == "single" and s.base is None}

#: The post-hoc rows of the single-label study, by name (see :mod:`balancer.study._posthoc`).
POSTHOC_ROWS: dict[str, Strategy] = {s.name: s for s in DECLARED if s.base is not None}

#: The rows of the multi-label study, by name.
ML_STRATEGIES: dict[str, Strategy] = {s.name: s for s in DECLARED if s.task == "multi"}

#: Every single-label row with key settings (trained, then post-hoc), by name.
TUNED_ROWS: dict[str, Strategy] = {s.name: s for s in DECLARED
                                   if s.task == "single" and s.settings}

#: Every strategy's own key settings: the ones ``balancer study --tune`` chooses on validation.
TUNABLE: dict[str, tuple[str, ...]] = {
    name: tuple(setting.field for setting in s.settings) for name, s in TUNED_ROWS.items()}

#: The key settings, by config field, in declaration order.
SETTINGS: dict[str, Setting] = {
    setting.field: setting for s in TUNED_ROWS.values() for setting in s.settings}

#: The values of the tunable settings without a tuned file (the papers' defaults; phase lengths
#: capped at ``epochs``). ``None`` for a post-hoc setting: chosen per seed on validation.
LIBRARY_DEFAULTS: dict[str, Any] = {field: s.default for field, s in SETTINGS.items()}


def seeded_generator(seed: int, *words: int) -> torch.Generator:
    """A torch generator that is a pure function of ``(seed, *words)``."""
    state = np.random.SeedSequence([seed, *words]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


# Purposes: the second word of every seeded generator of a run.
INIT, UNDERSAMPLE, PASSES, WRS, AUGMENT, GLOBAL, RETRAIN = 1, 2, 3, 4, 5, 6, 7


class EpochBatchSampler(Protocol):
    """What training needs of a batch sampler: batches of indices, their number, ``set_epoch``."""

    def __iter__(self) -> Iterator[list[int]]: ...

    def __len__(self) -> int: ...

    def set_epoch(self, epoch: int) -> None: ...


class _ShuffledPasses(Sampler[list[int]]):
    """``ceil(samples_per_epoch / batch_size)`` batches per epoch from back-to-back shuffled
    passes over ``pool``: epoch ``e`` takes draws ``[e * S, (e + 1) * S)`` of that endless stream.

    With ``pool`` all indices and ``S = N`` every epoch is exactly one shuffled pass.
    """

    def __init__(self, pool: np.ndarray, batch_size: int, samples_per_epoch: int,
                 seed: int) -> None:
        self.pool = np.asarray(pool, dtype=np.int64)
        self.batch_size = batch_size
        self.samples_per_epoch = samples_per_epoch
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _pass(self, k: int) -> np.ndarray:
        order = torch.randperm(len(self.pool), generator=seeded_generator(self.seed, PASSES, k))
        return self.pool[order.numpy()]

    def __iter__(self) -> Iterator[list[int]]:
        size, total = len(self.pool), self.samples_per_epoch
        start = self.epoch * total
        first, last = start // size, (start + total - 1) // size
        stream = np.concatenate([self._pass(k) for k in range(first, last + 1)])
        stream = stream[start - first * size: start - first * size + total]
        for begin in range(0, total, self.batch_size):
            yield stream[begin: begin + self.batch_size].tolist()

    def __len__(self) -> int:
        return -(-self.samples_per_epoch // self.batch_size)


class _WeightedBatches(Sampler[list[int]]):
    """torch's ``WeightedRandomSampler`` (with replacement) in batches, reseeded per epoch."""

    def __init__(self, weights: torch.Tensor, batch_size: int, num_samples: int,
                 seed: int) -> None:
        self.weights = weights
        self.batch_size = batch_size
        self.num_samples = num_samples
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        # torch's stub says Sequence[float]; a 1-D tensor of weights is what it documents and uses
        sampler = WeightedRandomSampler(
            self.weights,  # type: ignore[arg-type]
            self.num_samples, replacement=True,
            generator=seeded_generator(self.seed, WRS, self.epoch))
        yield from BatchSampler(sampler, self.batch_size, drop_last=False)

    def __len__(self) -> int:
        return -(-self.num_samples // self.batch_size)


class _Deferred(Sampler[list[int]]):
    """``first`` for epochs ``0 .. start - 1``, then ``second`` (its epochs counted from 0).

    Both yield ``ceil(N / batch_size)`` batches per epoch, so the switch keeps the step budget.
    """

    def __init__(self, first: _ShuffledPasses, second: BalancedBatchSampler,
                 start: int) -> None:
        self.first, self.second, self.start = first, second, start
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if epoch < self.start:
            self.first.set_epoch(epoch)
        else:
            self.second.set_epoch(epoch - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.first if self.epoch < self.start else self.second)

    def __len__(self) -> int:
        return len(self.first if self.epoch < self.start else self.second)


def undersample_indices(labels: np.ndarray, seed: int) -> np.ndarray:
    """Every class cut to the smallest class's count, chosen by a generator seeded with ``seed``."""
    counts = np.bincount(labels)
    keep = int(counts[counts > 0].min())
    generator = seeded_generator(seed, UNDERSAMPLE)
    chosen = []
    for cls in np.flatnonzero(counts):
        members = np.flatnonzero(labels == cls)
        chosen.append(members[torch.randperm(len(members), generator=generator)[:keep].numpy()])
    return np.sort(np.concatenate(chosen))


def make_batch_sampler(strategy: Strategy, labels: np.ndarray, *, batch_size: int, epochs: int,
                       finetune_epochs: int, seed: int,
                       deferred_epochs: int = 0) -> EpochBatchSampler:
    """The strategy's batch sampler: ``ceil(N / batch_size)`` batches per epoch (see the note).

    ``deferred_epochs`` is the length of the balanced last phase of the ``"deferred"`` sampling
    (drs, crt).
    """
    n = len(labels)
    if strategy.sampling == "shuffle":
        return _ShuffledPasses(np.arange(n), batch_size, n, seed)
    if strategy.sampling == "undersample":
        return _ShuffledPasses(undersample_indices(labels, seed), batch_size, n, seed)
    if strategy.sampling == "wrs":
        counts = np.bincount(labels)
        weights = torch.as_tensor(1.0 / counts[labels], dtype=torch.double)
        return _WeightedBatches(weights, batch_size, n, seed)
    if strategy.sampling == "balanced":
        schedule = FineTuneSchedule(epochs, finetune_epochs) if strategy.finetune else None
        return BalancedBatchSampler(labels, batch_size, seed=seed, samples_per_epoch=n,
                                    schedule=schedule)
    if strategy.sampling == "deferred":
        return _Deferred(_ShuffledPasses(np.arange(n), batch_size, n, seed),
                         BalancedBatchSampler(labels, batch_size, seed=seed, samples_per_epoch=n),
                         epochs - deferred_epochs)
    raise AssertionError(f"unknown sampling {strategy.sampling!r}")


def make_loss(strategy: Strategy, counts: np.ndarray, *, late_phase: bool,
              settings: dict[str, float]) -> nn.Module:
    """The loss the strategy trains with; ``late_phase`` is True in ldam-drw's last ``drw_epochs``.

    ``settings`` maps the config's fields to their values (``StudyConfig.to_dict()``); each
    loss reads its own (``focal_gamma``, ``effective_beta``, ``ldam_max_margin``, ``ldam_scale``,
    ``drw_beta``, ``la_tau``, ``hinge_margin``).
    """
    counts_t = torch.as_tensor(counts, dtype=torch.float64)
    kind = strategy.loss
    if kind == "ce":
        return nn.CrossEntropyLoss()
    if kind == "weighted":
        return losses.WeightedCrossEntropyLoss(losses.class_weights(counts_t, "inverse"))
    if kind == "effective":
        return losses.WeightedCrossEntropyLoss(
            losses.class_weights(counts_t, "effective", beta=settings["effective_beta"]))
    if kind == "focal":
        return losses.FocalLoss(gamma=settings["focal_gamma"])
    if kind == "ldam":
        weight = (losses.class_weights(counts_t, "effective", beta=settings["drw_beta"])
                  if late_phase and strategy.deferred_reweighting else None)
        return losses.LDAMLoss(counts_t, max_margin=settings["ldam_max_margin"],
                               scale=settings["ldam_scale"], weight=weight)
    if kind == "logit-adjusted":
        return losses.LogitAdjustedLoss(counts_t, tau=settings["la_tau"])
    if kind == "hinge":
        return losses.MarginLoss(kind="hinge", margin=settings["hinge_margin"])
    raise AssertionError(f"unknown loss {kind!r}")
