"""A complete imbalanced medical-imaging pipeline: PneumoniaMNIST chest X-rays, balanced batches,
a fine-tune phase at the true frequencies, and a class-imbalance-aware evaluation.

    python examples/medical_imaging.py                      # about a minute on 2 CPU cores
    python examples/medical_imaging.py --loss focal         # ce | weighted | focal | ldam |
                                                            # logit-adjusted | hinge
    python examples/medical_imaging.py --epochs 2 --finetune-epochs 1 --limit 400   # seconds
    python examples/medical_imaging.py --finetune-batchnorm train   # re-estimate BatchNorm
                                                            # statistics in the fine-tune phase

What it does, in the order a study would:

1. An ordinary ``Dataset`` (``balancer.MedMNIST``: 28x28 chest X-rays, 1,214 normal vs 3,494
   pneumonia in training) and an ordinary ``DataLoader``, wrapped with ``balancer.balance()``:
   the labels come from ``dataset.labels``, no image is read to find them. Each batch is fetched
   in one gather (the ``DataLoader`` calls ``MedMNIST.__getitems__`` with the batch's indices,
   also through the ``Subset`` of ``--limit``), and augmented once per batch: random flips and
   shifts of up to 2 pixels (``balancer.RandomFlipShift``, seeded; ``--augment 0`` turns it off).
2. A small CNN (a convolutional backbone and a linear head).
3. A ``FineTuneSchedule``: balanced epochs first, then the last epoch at the true class
   frequencies with the learning rate x0.1, every layer still trained, so the head's biases
   learn how rare each class really is. These are the settings the comparison study's tuning
   chose on the validation splits of the shipped data sets (``balancer study --tune``, see
   docs/study.md): it preferred 1 fine-tune epoch at x0.1 over 3 epochs and over
   the full learning rate, and an earlier grid (``experiments/study_finetune_validation.py``)
   rejected a frozen backbone. ``--freeze-backbone 1`` freezes it anyway.
4. A loss from the ``losses`` package. A loss that corrects for class frequencies is given the
   frequencies its batches actually have: equal in balanced epochs (where ``weighted`` and
   ``logit-adjusted`` reduce to plain cross-entropy), the true counts in fine-tune epochs, so
   the imbalance is never corrected twice. ``ldam`` keeps its count-based margins throughout
   and is re-weighted (effective number of samples) in the fine-tune phase, as in LDAM-DRW.
5. Evaluation on the held-out test split: accuracy, balanced accuracy and per-class recall
   (scikit-learn). The validation split is printed per epoch; the test split is only read at
   the end.

Settings sit at the top; override any of them on the command line (``--batch-size 64``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score, recall_score
from torch import nn
from torch.utils.data import DataLoader, Subset

import balancer
import losses

# ----------------------------------------------------------------------------- settings
dataset = "pneumoniamnist"
loss = "ce"  # ce | weighted | focal | ldam | logit-adjusted | hinge
epochs = 6  # all epochs, the fine-tune ones included
finetune_epochs = 1  # last epochs at the true frequencies (the study's validated setting)
batch_size = 128
learning_rate = 2e-3
finetune_lr_factor = 0.1  # the learning rate in the fine-tune phase, relative
freeze_backbone = 0  # 1: train only the head in the fine-tune phase (validation rejected it)
finetune_batchnorm = "train"  # train | frozen: BatchNorm statistics in the fine-tune phase
seed = 0
limit = 0  # train on the first `limit` images only (0: all); for quick runs
num_workers = 0
augment = 1  # 1: random flips and shifts of up to 2 pixels, drawn once per batch; 0: none
device = "cuda" if torch.cuda.is_available() else "cpu"
# ----------------------------------------------------------------------------- command line
SETTINGS = {k: v for k, v in dict(globals()).items()
            if not k.startswith("_") and isinstance(v, (int, float, str))}
LOSSES = ("ce", "weighted", "focal", "ldam", "logit-adjusted", "hinge")
CLASS_NAMES = {"pneumoniamnist": ("normal", "pneumonia")}


def parse_settings() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in SETTINGS.items():
        choices = LOSSES if name == "loss" else None
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default,
                            choices=choices)
    return parser.parse_args()


class SmallCNN(nn.Module):
    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(64, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


def make_loss(name: str, batch_counts: torch.Tensor, true_counts: torch.Tensor,
              finetune: bool) -> nn.Module:
    """The loss for one phase; ``batch_counts`` are the class frequencies its batches have."""
    if name == "ce":
        return nn.CrossEntropyLoss()
    if name == "weighted":
        return losses.WeightedCrossEntropyLoss.from_counts(batch_counts)
    if name == "focal":
        return losses.FocalLoss(gamma=2.0)
    if name == "ldam":
        weight = losses.class_weights(true_counts, "effective") if finetune else None
        return losses.LDAMLoss(true_counts, max_margin=0.5, scale=30.0, weight=weight)
    if name == "logit-adjusted":
        return losses.LogitAdjustedLoss(batch_counts, tau=1.0)
    if name == "hinge":
        return losses.MarginLoss(kind="hinge", margin=1.0)
    raise ValueError(f"loss should be one of {LOSSES}, but got loss={name!r}")


@torch.no_grad()
def predict(model: nn.Module, data: balancer.MedMNIST, device: torch.device) -> np.ndarray:
    model.eval()
    loader = DataLoader(data, batch_size=512)
    return torch.cat([model(images.to(device)).argmax(1).cpu() for images, _ in loader]).numpy()


def main() -> None:
    args = parse_settings()
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    # Per batch, not per item: one call augments the whole (B, C, 28, 28) batch.
    augmentation = balancer.RandomFlipShift(shift=2, seed=args.seed) if args.augment else None
    train_set = balancer.MedMNIST(args.dataset, "train", batch_transform=augmentation)
    val_set = balancer.MedMNIST(args.dataset, "val")
    test_set = balancer.MedMNIST(args.dataset, "test")
    num_classes, channels = test_set.num_classes, test_set.images.shape[1]
    if args.limit:
        train_set = Subset(train_set, range(min(args.limit, len(train_set))))
    names = CLASS_NAMES.get(args.dataset, tuple(str(c) for c in range(num_classes)))

    schedule = balancer.FineTuneSchedule(args.epochs, args.finetune_epochs,
                                         batchnorm=args.finetune_batchnorm)
    loader = balancer.balance(
        DataLoader(train_set, batch_size=args.batch_size, shuffle=True,
                   num_workers=args.num_workers),
        schedule=schedule, seed=args.seed,
    )
    # The sampler counts the classes present in the training images (sampler.classes, sorted);
    # the losses need one count per output unit, i.e. per label 0..C-1. A class absent from a
    # small --limit subset counts 0 and is never sampled; it gets a pseudo-count of 1 in the
    # losses, since LDAM's margins and the logit adjustment need a positive count per class.
    sampler = loader.batch_sampler
    label_counts = torch.zeros(num_classes)
    label_counts[torch.as_tensor(sampler.classes, dtype=torch.long)] = torch.as_tensor(
        sampler.class_counts, dtype=torch.float32)
    true_counts = label_counts.clamp_min(1.0)
    equal_counts = torch.full_like(true_counts, float(true_counts.max()))
    print(f"{args.dataset}: {len(train_set)} training images, counts "
          f"{dict(zip(names, label_counts.int().tolist(), strict=True))}; "
          f"{schedule.balanced_epochs} balanced + {schedule.finetune_epochs} fine-tune epochs, "
          f"loss {args.loss!r}, {'flips and shifts per batch' if augmentation else 'no augmentation'}, "
          f"on {device}")
    absent = [names[c] for c in range(num_classes) if label_counts[c] == 0]
    if absent:
        print(f"note: no training image of class(es) {', '.join(absent)} in the first "
              f"{len(train_set)} images: never sampled, and counted as 1 by the losses; raise "
              f"--limit to train on every class")

    model = SmallCNN(channels, num_classes).to(device)
    optimizer = torch.optim.AdamW([
        {"params": model.backbone.parameters(), "lr": args.learning_rate},
        {"params": model.head.parameters(), "lr": args.learning_rate},
    ])
    started = time.perf_counter()
    for epoch in range(schedule.total_epochs):
        loader.set_epoch(epoch)
        if augmentation is not None:
            augmentation.set_epoch(epoch)  # fresh draws, a pure function of (seed, epoch)
        finetune = loader.phase == "finetune"
        if finetune:
            # Slow every layer down: the features were learnt on balanced batches; the decision
            # (mostly the head's biases) needs the true priors. Optionally freeze the backbone
            # (BatchNorm statistics included) and train the head alone.
            frozen = bool(args.freeze_backbone)
            model.backbone.requires_grad_(not frozen)
            optimizer.param_groups[0]["lr"] = (0.0 if frozen else
                                               args.learning_rate * args.finetune_lr_factor)
            optimizer.param_groups[1]["lr"] = args.learning_rate * args.finetune_lr_factor
        criterion = make_loss(args.loss, true_counts if finetune else equal_counts, true_counts,
                              finetune).to(device)
        # model.train(); with the schedule's batchnorm="frozen" the BatchNorm statistics of the
        # balanced phase are kept in the fine-tune phase (more accuracy, less rare-class recall;
        # experiments/results/finetune_batchnorm.md).
        loader.train_mode(model)
        if finetune and args.freeze_backbone:
            model.backbone.eval()
        total, batches = 0.0, 0
        for images, targets in loader:
            images, targets = images.to(device), targets.to(device)
            batch_loss = criterion(model(images), targets)
            optimizer.zero_grad(set_to_none=True)
            batch_loss.backward()
            optimizer.step()
            total, batches = total + batch_loss.item(), batches + 1
        val_bacc = balanced_accuracy_score(val_set.labels, predict(model, val_set, device))
        print(f"epoch {epoch} ({loader.phase:8s}) {batches:3d} batches, loss "
              f"{total / max(batches, 1):.4f}, val balanced accuracy {val_bacc:.3f}, "
              f"{time.perf_counter() - started:.0f} s")

    predicted, truth = predict(model, test_set, device), test_set.labels
    recalls = recall_score(truth, predicted, average=None, labels=range(num_classes))
    print(f"test ({len(truth)} images): accuracy {np.mean(predicted == truth):.3f}, balanced "
          f"accuracy {balanced_accuracy_score(truth, predicted):.3f}")
    print("per-class recall: " + ", ".join(f"{n} {r:.3f}" for n, r in zip(names, recalls, strict=True)))


if __name__ == "__main__":
    main()
