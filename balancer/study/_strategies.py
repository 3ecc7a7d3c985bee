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

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, Sampler, WeightedRandomSampler

import losses
from balancer import BalancedBatchSampler, FineTuneSchedule

__all__ = ["DEFERRED_EPOCHS", "STRATEGIES", "Strategy", "make_batch_sampler", "make_loss", "seeded_generator"]


@dataclass(frozen=True)
class Strategy:
    """How one row of the study trains.

    Attributes:
        name: the row's name.
        sampling: ``"shuffle"``, ``"undersample"``, ``"wrs"``, ``"balanced"`` or
            ``"deferred"`` (shuffled passes, then balanced batches for the last epochs).
        loss: ``"ce"``, ``"weighted"``, ``"effective"``, ``"focal"``, ``"ldam"``,
            ``"logit-adjusted"`` or ``"hinge"``.
        finetune: the last ``finetune_epochs`` run at the true frequencies, with the fine-tune
            learning rate and (optionally) a frozen backbone.
        deferred_reweighting: the last ``drw_epochs`` add class-balanced weights to the loss.
        cosine_head: the model's classifier is a cosine head (LDAM is defined on cosines).
        classifier_retrain: when the deferred balanced phase starts, the classifier is
            re-initialised and retrained alone, the backbone frozen (cRT).
        description: one line for the report.
    """

    name: str
    sampling: str
    loss: str
    description: str
    finetune: bool = False
    deferred_reweighting: bool = False
    cosine_head: bool = False
    classifier_retrain: bool = False


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (
    Strategy("plain", "shuffle", "ce", "shuffled batches, cross-entropy"),
    Strategy("weighted", "shuffle", "weighted",
             "cross-entropy with inverse-frequency class weights"),
    Strategy("effective", "shuffle", "effective",
             "cross-entropy with class-balanced weights (effective number of samples, Cui et al. 2019)"),
    Strategy("undersample", "undersample", "ce",
             "majority classes cut to the minority count once per seed, cross-entropy"),
    Strategy("oversample-wrs", "wrs", "ce",
             "torch WeightedRandomSampler (1/n_c per sample, with replacement), cross-entropy"),
    Strategy("balanced", "balanced", "ce",
             "BalancedBatchSampler: equal-frequency batches from circular per-class buffers"),
    Strategy("balanced+finetune", "balanced", "ce",
             "balanced, then the last epochs at the true frequencies (FineTuneSchedule)",
             finetune=True),
    Strategy("focal", "shuffle", "focal", "focal loss (Lin et al. 2017), shuffled batches"),
    Strategy("ldam-drw", "shuffle", "ldam",
             "LDAM margins on a cosine head (Cao et al. 2019), class-balanced re-weighting in the "
             "last epochs", deferred_reweighting=True, cosine_head=True),
    Strategy("logit-adjusted", "shuffle", "logit-adjusted",
             "logit-adjusted cross-entropy (Menon et al. 2021), shuffled batches"),
    Strategy("hinge", "shuffle", "hinge", "multi-class hinge (margin) loss, shuffled batches"),
    Strategy("drs", "deferred", "ce",
             "deferred re-sampling (Cao et al. 2019): shuffled batches, then BalancedBatchSampler "
             "batches for the last epochs, cross-entropy"),
    Strategy("crt", "deferred", "ce",
             "classifier re-training (Kang et al. 2020): shuffled batches, then the classifier "
             "re-initialised and retrained alone on BalancedBatchSampler batches, backbone frozen",
             classifier_retrain=True),
)}

#: The strategies whose deferred phase length is which setting of :class:`StudyConfig`.
DEFERRED_EPOCHS = {"drs": "drs_epochs", "crt": "crt_epochs"}


def seeded_generator(seed: int, *words: int) -> torch.Generator:
    """A torch generator that is a pure function of ``(seed, *words)``."""
    state = np.random.SeedSequence([seed, *words]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


# Purposes: the second word of every seeded generator of a run.
INIT, UNDERSAMPLE, PASSES, WRS, AUGMENT, GLOBAL, RETRAIN = 1, 2, 3, 4, 5, 6, 7


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
        sampler = WeightedRandomSampler(self.weights, self.num_samples, replacement=True,
                                        generator=seeded_generator(self.seed, WRS, self.epoch))
        yield from BatchSampler(sampler, self.batch_size, drop_last=False)

    def __len__(self) -> int:
        return -(-self.num_samples // self.batch_size)


class _Deferred(Sampler[list[int]]):
    """``first`` for epochs ``0 .. start - 1``, then ``second`` (its epochs counted from 0).

    Both yield ``ceil(N / batch_size)`` batches per epoch, so the switch keeps the step budget.
    """

    def __init__(self, first: Sampler[list[int]], second: BalancedBatchSampler,
                 start: int) -> None:
        self.first, self.second, self.start = first, second, start
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if epoch < self.start:
            self.first.set_epoch(epoch)  # type: ignore[attr-defined]
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
                       deferred_epochs: int = 0) -> Sampler[list[int]]:
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

    ``settings`` holds ``focal_gamma``, ``effective_beta``, ``ldam_max_margin``, ``ldam_scale``,
    ``drw_beta``, ``la_tau`` and ``hinge_margin``.
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
