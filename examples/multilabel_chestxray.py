"""Multi-label balancing on the real NIH ChestX-ray14 label table: what each sampler feeds a
training loop, finding by finding.

    python examples/multilabel_chestxray.py                        # all 112,120 images, seconds
    python examples/multilabel_chestxray.py --epochs 3 --threshold 0.2
    python examples/multilabel_chestxray.py --limit 5000 --epochs 1   # quick

The label table ships with balancer (``balancer.load_chestxray14_labels()``: 14 findings,
``No Finding`` on 60,361 images, Hernia on 227; Wang et al., CVPR 2017). No images can be had
offline, so the dataset below returns each image's index and its 0/1 finding vector: exactly
what a training loop receives as targets, with the image left out. Three loaders over it:

1. plain shuffling (``DataLoader(shuffle=True)``): findings at their true frequencies;
2. repeat-factor sampling (``balance(..., sampler="repeat-factor", threshold=t)``, LVIS):
   images with a finding rarer than ``t`` repeat ``sqrt(t / f)`` times per epoch;
3. label-balanced batches (``balance(..., sampler="label-balanced")``): every finding, and no
   finding, gets as close to the same share of the slots as co-occurrence allows.

For each it runs the epochs as a training loop would (``set_epoch``, iterate, read targets)
and prints the share of slots that carried each finding, next to the plan's own figure
(``label_positive_rate``) for the two balanced loaders.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from balancer import balance, labels_of, load_chestxray14_labels

BATCH_SIZE = 64
EPOCHS = 2
THRESHOLD = 0.1  # repeat-factor threshold t: findings on fewer than 10% of images repeat
SEED = 0


class FindingVectors(Dataset):
    """Item ``i``: ``(i, the 0/1 vector of image i's findings)`` -- a training loop's targets."""

    def __init__(self, table) -> None:
        self.table = table  # balance() reads the "Finding Labels" column from here
        self.findings = labels_of(table, "Finding Labels", multilabel=True)
        self.targets = torch.from_numpy(self.findings.dense(np.float32))

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor]:
        return index, self.targets[index]


def reached_rates(loader, epochs: int) -> tuple[np.ndarray, float, int]:
    """Per-finding share of the slots over ``epochs`` epochs, the no-finding share, slots."""
    positives, empty, slots = 0, 0, 0
    for epoch in range(epochs):
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        for _, targets in loader:  # a training step would use the images and targets here
            positives = positives + targets.sum(dim=0)
            empty += int((targets.sum(dim=1) == 0).sum())
            slots += len(targets)
    return (positives / slots).numpy(), empty / slots, slots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--threshold", type=float, default=THRESHOLD)
    parser.add_argument("--limit", type=int, default=None, help="use the first N images only")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()

    table = load_chestxray14_labels()
    if args.limit is not None:
        table = table.iloc[: args.limit].reset_index(drop=True)
    dataset = FindingVectors(table)
    findings = dataset.findings
    print(f"ChestX-ray14 labels: {findings.num_samples} images, {findings.num_labels} findings, "
          f"{int(findings.no_finding.sum())} with no finding, {len(findings.indices)} positives")

    plain = DataLoader(dataset, batch_size=args.batch_size, shuffle=True,
                       generator=torch.Generator().manual_seed(args.seed))
    rfs = balance(plain, "Finding Labels", sampler="repeat-factor", threshold=args.threshold,
                  seed=args.seed)
    balanced = balance(plain, "Finding Labels", sampler="label-balanced", seed=args.seed)
    runs = {"plain": plain, "repeat-factor": rfs, "label-balanced": balanced}
    reached = {name: reached_rates(loader, args.epochs) for name, loader in runs.items()}
    for name, (_, _, slots) in reached.items():
        print(f"{name:>14}: {slots} slots over {args.epochs} epoch(s), "
              f"{len(runs[name])} batches per epoch")

    print(f"\nshare of slots carrying each finding (repeat-factor threshold={args.threshold}; "
          f"'plan' = the sampler's label_positive_rate)")
    print(f"{'finding':<19}{'images':>7}{'plain':>8}{'rfs':>8}{'rfs plan':>9}"
          f"{'balanced':>9}{'plan':>7}")
    rows = [(findings.names[k], int(findings.counts[k]), k) for k in range(findings.num_labels)]
    for name, count, k in sorted(rows, key=lambda row: row[1]):
        print(f"{name:<19}{count:>7}{reached['plain'][0][k]:>8.3f}"
              f"{reached['repeat-factor'][0][k]:>8.3f}"
              f"{rfs.batch_sampler.label_positive_rate[k]:>9.3f}"
              f"{reached['label-balanced'][0][k]:>9.3f}"
              f"{balanced.batch_sampler.label_positive_rate[k]:>7.3f}")
    print(f"{'(no finding)':<19}{int(findings.no_finding.sum()):>7}{reached['plain'][1]:>8.3f}"
          f"{reached['repeat-factor'][1]:>8.3f}{'':>9}{reached['label-balanced'][1]:>9.3f}"
          f"{balanced.batch_sampler.no_finding_rate:>7.3f}")
    for name, (rates, _, _) in reached.items():
        print(f"{name:>14}: rarest / most frequent finding share = "
              f"{rates.min():.3f} / {rates.max():.3f} (x{rates.max() / rates.min():.1f} apart)")


if __name__ == "__main__":
    main()
