"""The multi-label study's training: each strategy's sampler and loss, and the one loop of every run.

# Design note: one step budget, as in the single-label study
# Every strategy runs ``epochs * ceil(N / batch_size)`` optimizer steps for ``N`` training rows.
# Shuffled strategies take one shuffled pass per epoch; the label-balanced sampler is built
# with ``samples_per_epoch=N`` (its fine-tune epochs are one pass at the true frequencies); a
# repeat-factor epoch holds ``sum_i r_i > N`` slots, so the study reads the sampler's epochs
# back to back as one stream and cuts it into study epochs of ``N`` slots (study epoch ``e`` is
# slots ``[e N, (e + 1) N)`` of that stream): the same draws, the same step count as everyone.
# Thresholds for F1 are chosen per run and per label on validation (see
# :mod:`balancer.study._metrics`); test data tunes nothing.

Example::

    from balancer.study import MultiLabelStudyConfig, run_study

    config = MultiLabelStudyConfig(strategies=("plain", "label-balanced"), seeds=(0, 1, 2))
    results = run_study(config)   # long DataFrame: strategy, seed, split, metric, value
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Sampler

import losses
from balancer import (
    FineTuneSchedule,
    MultiLabelBalancedSampler,
    RepeatFactorSampler,
    set_train_mode,
)
from balancer._schedule import BatchNormPolicy
from balancer.study._config import MultiLabelStrategy, MultiLabelStudyConfig
from balancer.study._data import MultiLabelData
from balancer.study._metrics import (
    choose_thresholds,
    multilabel_metrics,
)
from balancer.study._model import MLP
from balancer.study._strategies import (
    GLOBAL,
    INIT,
    EpochBatchSampler,
    _ShuffledPasses,
    seeded_generator,
)

__all__ = ["make_multilabel_loss", "make_multilabel_sampler", "rarest_labels",
           "train_multilabel_run"]


class _RepeatFactorEpochs(Sampler[list[int]]):
    """Study epochs of ``samples`` slots cut from the back-to-back epochs of a
    :class:`~balancer.RepeatFactorSampler` (see the design note)."""

    def __init__(self, sampler: RepeatFactorSampler, samples: int, batch_size: int) -> None:
        self.sampler = sampler
        self.samples = samples
        self.batch_size = batch_size
        self.epoch = 0
        self._streams: dict[int, np.ndarray] = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _stream(self, k: int) -> np.ndarray:
        if k not in self._streams:  # an RFS epoch straddling two study epochs is read once
            self.sampler.set_epoch(k)
            self._streams = {k: np.concatenate([np.asarray(b, dtype=np.int64)
                                                for b in self.sampler]),
                             **{j: v for j, v in self._streams.items() if j == k - 1}}
        return self._streams[k]

    def __iter__(self) -> Iterator[list[int]]:
        size = self.sampler.samples_per_epoch
        start = self.epoch * self.samples
        first, last = start // size, (start + self.samples - 1) // size
        stream = np.concatenate([self._stream(k) for k in range(first, last + 1)])
        stream = stream[start - first * size: start - first * size + self.samples]
        for begin in range(0, self.samples, self.batch_size):
            yield stream[begin: begin + self.batch_size].tolist()

    def __len__(self) -> int:
        return -(-self.samples // self.batch_size)


def make_multilabel_sampler(strategy: MultiLabelStrategy, targets: np.ndarray, *,
                            batch_size: int, epochs: int, finetune_epochs: int, seed: int,
                            rfs_threshold: float) -> EpochBatchSampler:
    """The strategy's batch sampler: ``ceil(N / batch_size)`` batches per epoch."""
    n = len(targets)
    if strategy.sampling == "shuffle":
        return _ShuffledPasses(np.arange(n), batch_size, n, seed)
    if strategy.sampling == "label-balanced":
        schedule = FineTuneSchedule(epochs, finetune_epochs) if strategy.finetune else None
        return MultiLabelBalancedSampler(targets, batch_size, seed=seed, samples_per_epoch=n,
                                         schedule=schedule)
    if strategy.sampling == "repeat-factor":
        sampler = RepeatFactorSampler(targets, batch_size, threshold=rfs_threshold, seed=seed)
        return _RepeatFactorEpochs(sampler, n, batch_size)
    raise AssertionError(f"unknown sampling {strategy.sampling!r}")


def make_multilabel_loss(strategy: MultiLabelStrategy, counts: np.ndarray, num_samples: int,
                         config: MultiLabelStudyConfig) -> nn.Module:
    """The loss the strategy trains with; per-label ``counts`` are the train positives."""
    kind = strategy.loss
    counts_t = torch.as_tensor(counts, dtype=torch.float64)
    if kind == "bce":
        return nn.BCEWithLogitsLoss()
    if kind == "pos-weight":
        return losses.PosWeightedBCELoss(counts_t, num_samples=num_samples)
    if kind == "asl":
        return losses.AsymmetricLoss(config.asl_gamma_neg, config.asl_gamma_pos, config.asl_clip)
    if kind == "db":
        return losses.DistributionBalancedLoss(counts_t, num_samples=num_samples)
    if kind == "sigmoid-la":
        return losses.SigmoidLogitAdjustedLoss(counts_t, num_samples=num_samples,
                                               tau=config.la_tau)
    raise AssertionError(f"unknown loss {kind!r}")


@torch.no_grad()
def _predict(model: nn.Module, features: Tensor, batch_size: int = 1024) -> np.ndarray:
    model.eval()
    logits = torch.cat([model(features[i: i + batch_size])
                        for i in range(0, len(features), batch_size)])
    return torch.sigmoid(logits.double()).cpu().numpy()


def _train_one(data: MultiLabelData, strategy: MultiLabelStrategy, seed: int,
               config: MultiLabelStudyConfig, device: torch.device) -> dict[str, Any]:
    start, cpu_start = time.perf_counter(), time.process_time()
    names = list(data.label_names)
    train_x = data.features["train"].to(device)
    train_y = data.targets["train"].to(device)
    targets = data.targets["train"].numpy()
    n = len(targets)
    model = MLP(data.num_features, data.num_labels, width=config.width,
                generator=seeded_generator(seed, INIT)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    finetune_epochs = config.finetune_epochs
    assert finetune_epochs is not None  # validate() filled it in when it was left unset
    sampler = make_multilabel_sampler(strategy, targets, batch_size=config.batch_size,
                                      epochs=config.epochs,
                                      finetune_epochs=finetune_epochs, seed=seed,
                                      rfs_threshold=config.rfs_threshold)
    criterion = make_multilabel_loss(strategy, targets.sum(0), n, config).to(device)
    val_x = data.features["val"].to(device)
    val_y = data.targets["val"].numpy()
    batchnorm = cast(BatchNormPolicy, config.finetune_batchnorm)  # validate() checked it
    best: tuple[float, int, dict[str, Tensor] | None] = (-1.0, -1, None)
    steps = 0
    phase_steps: dict[bool, int] = {}  # per phase: False the first, True the fine-tune phase
    for epoch in range(config.epochs):
        finetuning = strategy.finetune and epoch >= config.epochs - finetune_epochs
        sampler.set_epoch(epoch)
        for group in optimizer.param_groups:
            group["lr"] = config.lr * (config.finetune_lr_scale if finetuning else 1.0)
        freeze = finetuning and config.finetune_freeze
        for parameter in model.backbone.parameters():
            parameter.requires_grad_(not freeze)
        set_train_mode(model, "finetune" if finetuning else "balanced", batchnorm=batchnorm)
        if freeze:
            model.backbone.eval()  # frozen batch-norm statistics, too
        for batch in sampler:
            index = torch.as_tensor(batch, dtype=torch.long, device=device)
            loss = criterion(model(train_x[index]), train_y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
            phase_steps[finetuning] = phase_steps.get(finetuning, 0) + 1
        if config.select == "best" or epoch == config.epochs - 1:
            val_probs = _predict(model, val_x)
            score = multilabel_metrics(val_probs, val_y, np.full(len(names), 0.5),
                                       names)["macro_auprc"]
            if config.select == "last" or score >= best[0]:
                best = (score, epoch, {k: v.detach().clone()
                                       for k, v in model.state_dict().items()})
    expected = config.epochs * -(-n // config.batch_size)
    assert steps == expected, (strategy.name, steps, expected)
    assert best[2] is not None  # the last epoch always evaluates
    model.load_state_dict(best[2])
    probs = {split: _predict(model, data.features[split].to(device)) for split in ("val", "test")}
    thresholds = choose_thresholds(probs["val"], val_y)
    evaluated = {split: multilabel_metrics(probs[split], data.targets[split].numpy(),
                                           thresholds, names) for split in ("val", "test")}
    return {"metrics": evaluated, "selected_epoch": best[1], "steps": steps,
            "shortest_phase_steps": min(phase_steps.values()),
            "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu_start,
            "arrays": {"val": probs["val"], "test": probs["test"], "thresholds": thresholds}}


def train_multilabel_run(data: MultiLabelData, strategy: MultiLabelStrategy, seed: int,
                         config: MultiLabelStudyConfig, *, device: torch.device
                         ) -> dict[str, Any]:
    """Train one (strategy, seed) pair; the run is a function of ``seed`` (torch's global
    generator is forked and reseeded from it, and restored afterwards)."""
    state = int(torch.randint(2**62, (1,), generator=seeded_generator(seed, GLOBAL)))
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(state)
        return _train_one(data, strategy, seed, config, device)


def rarest_labels(data: MultiLabelData, count: int) -> list[str]:
    """The ``count`` labels with the fewest train positives (ties in label order)."""
    order = np.argsort(data.counts("train"), kind="stable")[:count]
    return [data.label_names[j] for j in order]
