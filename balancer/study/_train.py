"""Train one (strategy, seed) pair and evaluate it: the same loop for every strategy."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from balancer import set_train_mode
from balancer._schedule import BatchNormPolicy
from balancer.study._config import StudyConfig
from balancer.study._data import StudyData
from balancer.study._metrics import classification_metrics
from balancer.study._model import MLP, SmallCNN, init_from
from balancer.study._strategies import (
    AUGMENT,
    GLOBAL,
    INIT,
    RETRAIN,
    EpochBatchSampler,
    Strategy,
    make_batch_sampler,
    make_loss,
    seeded_generator,
)
from balancer.transforms import random_flip_shift

__all__ = ["DatasetSource", "RunResult", "augment", "default_model", "train_and_evaluate",
           "train_run"]

_SHIFT = 2  # augmentation: random translations of up to this many pixels


@dataclass(frozen=True)
class RunResult:
    """One trained model's numbers.

    Attributes:
        test: test-split metrics of the selected weights (see ``classification_metrics``).
        val: the same metrics on the validation split (what any tuning may look at).
        selected_epoch: the epoch (0-based) whose weights were evaluated on test.
        steps: optimizer steps taken (the same for every strategy).
        shortest_phase_steps: the optimizer steps of the run's shortest phase (all of
            ``steps`` for a single-phase strategy), e.g. crt's retraining of its new head.
        seconds: wall time of training and evaluation.
        cpu_seconds: CPU time (``time.process_time``: every thread of the training process,
            user and system) of the same span: unlike wall time, it does not stretch with
            other processes' load, so it compares the strategies' costs.
        probs: per split (``"val"``, ``"test"``), the ``(N, C)`` predicted probabilities, kept
            for the paired statistics over test samples.
    """

    test: dict[str, float]
    val: dict[str, float]
    selected_epoch: int
    steps: int
    shortest_phase_steps: int
    seconds: float
    probs: dict[str, np.ndarray] = field(default_factory=dict)
    cpu_seconds: float = float("nan")


class _Indices(Dataset):
    """A dataset whose batches are their own indices: the training loop gathers the images from
    tensors already on the device, so a ``DataLoader`` drives the batch sampler (and its
    ``set_epoch``) without copying samples one by one."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        return index

    def __getitems__(self, indices: list[int]) -> Tensor:
        return torch.as_tensor(indices, dtype=torch.long)


def _keep(batch: Tensor) -> Tensor:
    return batch


def augment(images: Tensor, generator: torch.Generator, shift: int = _SHIFT) -> Tensor:
    """Random horizontal flips and translations of up to ``shift`` pixels (zero padding):
    :func:`balancer.transforms.random_flip_shift`, one gather per batch.

    All draws come from ``generator`` (on the CPU), so the result is a function of its state.
    It replaced a flip-then-pad-then-index version with the same draws in the same order, bit
    for bit (``tests/test_transforms.py`` checks it against per-image slicing).
    """
    return random_flip_shift(images, generator, shift=shift)


class _Normalise:
    """uint8 images to float, centred and scaled by the train split's per-channel statistics."""

    def __init__(self, train_images: Tensor) -> None:
        pixels = train_images.double().div(255.0).transpose(0, 1).reshape(train_images.shape[1], -1)
        self.mean = pixels.mean(1).float()[None, :, None, None]
        self.std = pixels.std(1).clamp_min(1e-3).float()[None, :, None, None]

    def __call__(self, images: Tensor) -> Tensor:
        mean, std = self.mean.to(images.device), self.std.to(images.device)
        return (images.float().div(255.0) - mean) / std


class _TensorSource:
    """Batches gathered from tensors already on the device (the study's own data): images are
    normalised with the train split's statistics and, if asked, augmented; features (already
    standardised on train) are used as they are."""

    def __init__(self, data: StudyData, config: StudyConfig, device: torch.device) -> None:
        self.inputs = {split: data.images[split].to(device) for split in data.images}
        self.labels = {split: data.labels[split].numpy() for split in data.labels}
        self.targets = data.labels["train"].to(device)
        self.normalise = (_identity if data.tabular else _Normalise(data.images["train"]))
        self.augment = config.augment and not data.tabular
        self.device = device

    def loader(self, sampler: EpochBatchSampler) -> DataLoader:
        return DataLoader(_Indices(len(self.labels["train"])), batch_sampler=sampler,
                          # torch's stub says collate_fn takes a list; _Indices.__getitems__
                          # hands it one index tensor
                          collate_fn=_keep)  # type: ignore[arg-type]

    def batch(self, batch: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        batch = batch.to(self.device)
        inputs = self.normalise(self.inputs["train"][batch])
        if self.augment:
            inputs = augment(inputs, generator)
        return inputs, self.targets[batch]

    def logits(self, model: nn.Module, split: str, batch_size: int = 512) -> Tensor:
        inputs = self.inputs[split]
        return torch.cat([model(self.normalise(inputs[i: i + batch_size]))
                          for i in range(0, len(inputs), batch_size)])


def _identity(inputs: Tensor) -> Tensor:
    return inputs


class _Indexed(Dataset):
    """``(input, index)`` for each item of a user's dataset: the targets come from the labels
    found once by ``labels_of`` (encoded to class indices), whatever form the item's own label
    has."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[object, int]:
        item = self.dataset[index]
        if isinstance(item, (tuple, list)) and len(item) >= 1:
            return item[0], index
        if isinstance(item, dict):
            for key in ("image", "input", "inputs", "x", "features"):
                if key in item:
                    return item[key], index
        raise TypeError(f"dataset[{index}] should be an (input, label) pair or a dict with an "
                        f"'image'/'input'/'x' key, but got {type(item).__name__}")


class DatasetSource:
    """Batches from map-style datasets through a ``DataLoader`` (the user's transforms and
    normalisation apply; the study adds none)."""

    def __init__(self, datasets: dict[str, Dataset], labels: dict[str, np.ndarray], *,
                 device: torch.device, num_workers: int = 0, eval_batch_size: int = 256) -> None:
        self.datasets = {split: _Indexed(ds) for split, ds in datasets.items()}
        self.labels = labels
        self.targets = torch.as_tensor(labels["train"], dtype=torch.long)
        self.device = device
        self.num_workers = num_workers
        self.eval_batch_size = eval_batch_size

    def loader(self, sampler: EpochBatchSampler) -> DataLoader:
        return DataLoader(self.datasets["train"], batch_sampler=sampler,
                          num_workers=self.num_workers)

    def batch(self, batch: tuple[Tensor, Tensor], generator: torch.Generator
              ) -> tuple[Tensor, Tensor]:
        inputs, index = batch
        return inputs.to(self.device), self.targets[index].to(self.device)

    def logits(self, model: nn.Module, split: str) -> Tensor:
        loader = DataLoader(self.datasets[split], batch_size=self.eval_batch_size,
                            num_workers=self.num_workers)
        return torch.cat([model(inputs.to(self.device)) for inputs, _ in loader])


#: Where a run's batches and evaluation inputs come from.
Source = _TensorSource | DatasetSource


@torch.no_grad()
def predict(model: nn.Module, source: Source, split: str, logit_scale: float) -> np.ndarray:
    """Class probabilities ``(N, C)`` in float64."""
    model.eval()
    logits = source.logits(model, split)
    return torch.softmax(logits.double() * logit_scale, dim=1).cpu().numpy()


def _balanced_accuracy(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    recall = [np.mean(probs[labels == c].argmax(1) == c) for c in range(num_classes)
              if np.any(labels == c)]
    return float(np.mean(recall))


def default_model(data: StudyData, strategy: Strategy, seed: int, config: StudyConfig
                  ) -> nn.Module:
    """The study's own model: :class:`SmallCNN` for images, :class:`MLP` for tables."""
    generator = seeded_generator(seed, INIT)
    if data.tabular:
        return MLP(data.channels, data.num_classes, width=4 * config.width,
                   cosine_head=strategy.cosine_head, generator=generator)
    return SmallCNN(data.channels, data.num_classes, width=config.width,
                    cosine_head=strategy.cosine_head, generator=generator)


def train_and_evaluate(data: StudyData, strategy: Strategy, seed: int, config: StudyConfig, *,
                       device: torch.device, position: int = 1,
                       evaluate: tuple[str, ...] = ("val", "test")) -> RunResult:
    """Train ``strategy`` with ``seed`` for ``config.epochs`` epochs on the study's own model,
    select on validation, evaluate on the ``evaluate`` splits (the tuning mode passes
    ``("val",)`` and data without a test split)."""
    return train_run(_TensorSource(data, config, device),
                     lambda: default_model(data, strategy, seed, config), data.num_classes,
                     strategy, seed, config, device=device, position=position,
                     evaluate=evaluate)


def train_run(source: Source, make_model: Callable[[], nn.Module], num_classes: int,
              strategy: Strategy, seed: int, config: StudyConfig, *, device: torch.device,
              position: int = 1, evaluate: tuple[str, ...] = ("val", "test")) -> RunResult:
    """The one training loop of every run: ``config.epochs`` epochs of
    ``ceil(N / batch_size)`` steps from the strategy's batch sampler, then validation
    selection and evaluation on val and test.

    The run is a function of ``seed``: anything that draws from torch's global generator (a
    ``DataLoader``'s base seed, a user's random transforms, dropout) draws from a forked copy
    seeded from ``seed``, and the caller's generator state is left as it was.
    """
    state = int(torch.randint(2**62, (1,), generator=seeded_generator(seed, GLOBAL)))
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(state)
        return _train_run(source, make_model, num_classes, strategy, seed, config,
                          device=device, position=position, evaluate=evaluate)


def _train_run(source: Source, make_model: Callable[[], nn.Module], num_classes: int,
               strategy: Strategy, seed: int, config: StudyConfig, *, device: torch.device,
               position: int, evaluate: tuple[str, ...]) -> RunResult:
    start, cpu_start = time.perf_counter(), time.process_time()
    train_labels = source.labels["train"]
    counts = np.bincount(train_labels, minlength=num_classes)
    model = make_model().to(device)
    # LDAM's loss scales the cosines by s; probabilities use the same scale.
    logit_scale = config.ldam_scale if strategy.cosine_head else 1.0
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    # drs and crt: the length of the balanced last phase of their "deferred" sampling.
    deferred = (getattr(config, strategy.phase[0])
                if strategy.sampling == "deferred" and strategy.phase is not None else 0)
    # validate() filled every phase setting left unset (None) from the tuned or library defaults.
    finetune_epochs, drw_epochs = config.finetune_epochs, config.drw_epochs
    lr_scale, batchnorm = config.finetune_lr_scale, config.finetune_batchnorm
    assert finetune_epochs is not None and drw_epochs is not None
    assert lr_scale is not None and batchnorm is not None
    sampler = make_batch_sampler(strategy, train_labels, batch_size=config.batch_size,
                                 epochs=config.epochs, finetune_epochs=finetune_epochs,
                                 seed=seed, deferred_epochs=deferred)
    loader = source.loader(sampler)
    settings = config.to_dict()  # the loss reads its own settings from it
    steps_per_epoch = -(-len(train_labels) // config.batch_size)

    best_score, best_epoch, best_state = -1.0, -1, None
    steps = 0
    # Steps counted per phase (False: the first, True: the last phase of a phased strategy).
    phase_steps: dict[bool, int] = {}
    bar = tqdm(range(config.epochs), desc=f"{strategy.name} seed {seed}", unit="epoch",
               leave=False, position=position, disable=not config.progress)
    for epoch in bar:
        finetuning = strategy.finetune and epoch >= config.epochs - finetune_epochs
        reweighting = (strategy.deferred_reweighting
                       and epoch >= config.epochs - drw_epochs)
        retraining = strategy.classifier_retrain and epoch >= config.epochs - deferred
        sampler.set_epoch(epoch)
        if retraining and epoch == config.epochs - deferred:
            # cRT: a fresh classifier (seeded) and a fresh optimizer over it alone; the
            # backbone's features stay as plain training left them.
            head = cast(nn.Module, model.head)  # nn.Module.__getattr__ also allows a Tensor
            init_from(head, seeded_generator(seed, RETRAIN))
            optimizer = torch.optim.AdamW(head.parameters(), lr=config.lr,
                                          weight_decay=config.weight_decay)
        for group in optimizer.param_groups:
            group["lr"] = config.lr * (lr_scale if finetuning else 1.0)
        freeze = (finetuning and config.finetune_freeze) or retraining
        # model.backbone is read only when used (a user's model may have none); cast: nn.Module's
        # __getattr__ is typed to return a Tensor, too
        for parameter in (cast(nn.Module, model.backbone).parameters()
                          if freeze or config.finetune_freeze else ()):
            parameter.requires_grad_(not freeze)
        set_train_mode(model, "finetune" if finetuning else "balanced",
                       batchnorm=cast(BatchNormPolicy, batchnorm))  # validate() checked it
        if freeze:
            cast(nn.Module, model.backbone).eval()  # frozen batch-norm statistics, too
        criterion = make_loss(strategy, counts, late_phase=reweighting, settings=settings).to(device)
        generator = seeded_generator(seed, AUGMENT, epoch)
        late = finetuning or reweighting or (strategy.sampling == "deferred"
                                             and epoch >= config.epochs - deferred)
        for batch in loader:
            inputs, targets = source.batch(batch, generator)
            loss = criterion(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
            phase_steps[late] = phase_steps.get(late, 0) + 1

        val_probs = predict(model, source, "val", logit_scale)
        score = _balanced_accuracy(val_probs, source.labels["val"], num_classes)
        bar.set_postfix(val_bacc=f"{score:.3f}")
        if config.select == "last" or score >= best_score:
            best_score, best_epoch = score, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    assert steps == config.epochs * steps_per_epoch, (strategy.name, steps)

    assert best_state is not None
    model.load_state_dict(best_state)
    probs = {split: predict(model, source, split, logit_scale) for split in evaluate}
    evaluated = {
        split: classification_metrics(probs[split], source.labels[split],
                                      num_classes=num_classes, ece_bins=config.ece_bins,
                                      ordinal=config.is_ordinal(),
                                      positive=getattr(config, "positive_class", 1))
        for split in evaluate}
    return RunResult(shortest_phase_steps=min(phase_steps.values()),
                     test=evaluated.get("test", {}), val=evaluated["val"],
                     selected_epoch=best_epoch,
                     steps=steps, seconds=time.perf_counter() - start, probs=probs,
                     cpu_seconds=time.process_time() - cpu_start)
