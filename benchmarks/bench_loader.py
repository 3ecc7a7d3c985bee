"""Throughput of a balance()d DataLoader against the same DataLoader with shuffle=True, of the
batched fetch of MedMNIST against per-item access, and the time labels_of() takes to find
1,000,000 labels, measured in one run.

    python benchmarks/bench_loader.py            # 100,000 images, 1,000,000 labels (about 1 minute)
    python benchmarks/bench_loader.py --quick    # 20,000 images, 100,000 labels (seconds)

- Loader: an in-memory dataset of 28x28 uint8 images with long-tailed labels (10 classes,
  imbalance ratio 100), items converted to float tensors in ``__getitem__`` as a real dataset
  would, batch size 256, ``num_workers=2``, persistent workers. Both loaders serve N samples per
  epoch (the balanced one with ``samples_per_epoch=N``); epochs alternate between the two
  (ABBA order), and the figure is the median over pairs of back-to-back epochs of the ratio of
  samples per second. Goal: >= 0.95. On a shared machine the wall clock is noisy, so the same
  comparison also runs with ``num_workers=0`` on this process's CPU time.
- Batched fetch: ``balance(DataLoader(MedMNIST("pneumoniamnist"), batch_size=256,
  shuffle=True), samples_per_epoch=E)`` (each batch fetched by ``MedMNIST.__getitems__`` in one
  gather) against ``DataLoader(MedMNIST(...), batch_size=256, shuffle=True)`` with per-item
  access (``dataset[i]`` for every index, as without ``__getitems__``) over the same 4,708
  in-memory images, no workers, E = 4,708, five epochs per loader per round. Rounds alternate
  (ABBA); the figure is the median over back-to-back pairs of the ratio of samples per second,
  on this process's CPU time (wall clock alongside). Goal: >= 5. A second line adds the same
  augmentation to both (random flips and shifts of up to 2 pixels): per batch with
  ``batch_transform=RandomFlipShift()`` against a lean per-item ``transform``.
- Labels: ``labels_of`` on a dataset with a 1,000,000-entry ``targets`` list (torchvision
  style) and on a 1,000,000-row CSV manifest (``image,dx``), each against the least work that
  produces the same array (``np.asarray(targets)``; ``pd.read_csv(path, usecols=["dx"])``).
  Goal: well under a second.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from balancer import MedMNIST, RandomFlipShift, balance, labels_of

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sampler import long_tailed_labels


class InMemoryImages(Dataset):
    def __init__(self, num_samples: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (num_samples, 1, 28, 28), dtype=torch.uint8,
                                    generator=generator)
        self.targets = long_tailed_labels(num_samples, 10, 100.0)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index].float().div_(255.0), int(self.targets[index])


def samples_per_second(loader: DataLoader, epoch: int, clock=time.perf_counter) -> float:
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    start = clock()
    count = 0
    for images, _ in loader:
        count += len(images)
    return count / (clock() - start)


def paired_rates(loaders: dict[str, DataLoader], repeats: int,
                 clock=time.perf_counter) -> dict[str, list[float]]:
    """Epochs of the two loaders back to back, in ABBA order, ``repeats`` times each."""
    rates: dict[str, list[float]] = {name: [] for name in loaders}
    for repeat in range(repeats):
        order = list(loaders.items())
        for name, loader in order if repeat % 2 == 0 else order[::-1]:
            rates[name].append(samples_per_second(loader, repeat + 1, clock))
    return rates


def report(rates: dict[str, list[float]], what: str) -> None:
    ours, base = rates["balanced"], rates["shuffled"]
    # Each pair of epochs ran back to back, so their ratio cancels slow changes in the load of
    # a shared machine; the median of the pairs' ratios is the figure.
    ratio = statistics.median(a / b for a, b in zip(ours, base, strict=True))
    print(f"  {what}: balanced {statistics.median(ours):,.0f} samples/s "
          f"({min(ours):,.0f}..{max(ours):,.0f}), shuffle=True {statistics.median(base):,.0f} "
          f"({min(base):,.0f}..{max(base):,.0f}); median of {len(ours)} paired ratios "
          f"{ratio:.3f}x (goal >= 0.95x)")


def best_of(function, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_loaders(num_samples: int, repeats: int) -> None:
    dataset = InMemoryImages(num_samples)
    counts = np.bincount(dataset.targets)
    print(f"loader: N={num_samples:,} images 28x28, C={len(counts)} classes (largest "
          f"{counts.max():,}, smallest {counts.min():,}), batch_size=256, an epoch of N samples")
    for workers in (2, 0):
        settings = dict(batch_size=256, num_workers=workers, persistent_workers=workers > 0)
        loaders = {
            "shuffled": DataLoader(dataset, shuffle=True, **settings),
            "balanced": balance(DataLoader(dataset, shuffle=True, **settings),
                                samples_per_epoch=num_samples),
        }
        for loader in loaders.values():  # start the workers, warm up
            samples_per_second(loader, 0)
        if workers:
            report(paired_rates(loaders, repeats), "num_workers=2, wall clock")
        else:
            # Without workers everything runs in this process, so its CPU time is a measure of
            # the loaders' own cost that the other processes on a shared machine do not disturb.
            report(paired_rates(loaders, max(2, repeats // 2), time.process_time),
                   "num_workers=0, CPU time")


class PerItemMedMNIST(MedMNIST):
    """MedMNIST as it was before its batched fetch: the DataLoader's fetcher skips a falsy
    ``__getitems__`` and calls ``dataset[i]`` once per index."""

    __getitems__ = None


class PerItemFlipShift:
    """The same augmentation as a lean per-item transform: one draw picks the flip and the
    shift together (2 x 5 x 5 outcomes), then a pad and a slice."""

    def __init__(self, seed: int = 0, shift: int = 2) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.shift = shift

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        side = 2 * self.shift + 1
        code = int(torch.randint(0, 2 * side * side, (), generator=self.generator))
        if code >= side * side:
            image, code = image.flip(2), code - side * side
        dy, dx = divmod(code, side)
        h, w = image.shape[1:]
        padded = torch.nn.functional.pad(image, (self.shift,) * 4)
        return padded[:, dy: dy + h, dx: dx + w].contiguous()


def epoch_rates(loader: DataLoader, epochs: int, round_: int) -> tuple[float, float]:
    """Samples per second over ``epochs`` epochs: (CPU time of this process, wall clock)."""
    count = 0
    cpu, wall = time.process_time(), time.perf_counter()
    for epoch in range(epochs):
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(round_ * epochs + epoch)
        for images, _ in loader:
            count += len(images)
    return count / (time.process_time() - cpu), count / (time.perf_counter() - wall)


def bench_batched_fetch(rounds: int, batch_size: int = 256) -> None:
    name, repeat = "pneumoniamnist", 5
    size = len(MedMNIST(name))
    print(f"batched fetch: MedMNIST({name!r}) train, {size:,} in-memory images, batch_size="
          f"{batch_size}, no workers, {repeat * size:,} samples per loader per round")
    for augmented in (False, True):
        batched = MedMNIST(name, batch_transform=RandomFlipShift(seed=0) if augmented else None)
        per_item = PerItemMedMNIST(name, transform=PerItemFlipShift() if augmented else None)
        plain = torch.Generator().manual_seed(0)
        loaders = {  # (loader, epochs per round)
            "balanced": (balance(DataLoader(batched, batch_size=batch_size, shuffle=True),
                                 samples_per_epoch=size), repeat),
            "per-item": (DataLoader(per_item, batch_size=batch_size, shuffle=True,
                                    generator=plain), repeat),
        }
        for loader, epochs in loaders.values():  # warm up
            epoch_rates(loader, epochs, 0)
        cpu: dict[str, list[float]] = {k: [] for k in loaders}
        wall: dict[str, list[float]] = {k: [] for k in loaders}
        for round_ in range(rounds):
            order = list(loaders.items())
            for key, (loader, epochs) in order if round_ % 2 == 0 else order[::-1]:
                on_cpu, on_wall = epoch_rates(loader, epochs, round_ + 1)
                cpu[key].append(on_cpu)
                wall[key].append(on_wall)
        ratio = statistics.median(a / b for a, b in zip(cpu["balanced"], cpu["per-item"],
                                                         strict=True))
        wall_ratio = statistics.median(a / b for a, b in zip(wall["balanced"], wall["per-item"],
                                                              strict=True))
        what = ("flips and shifts, per batch vs per item" if augmented
                else "no augmentation")
        print(f"  {what}: balanced + __getitems__ {statistics.median(cpu['balanced']):,.0f} "
              f"samples/s, shuffle=True per item {statistics.median(cpu['per-item']):,.0f} (CPU "
              f"time); median of {rounds} paired ratios {ratio:.2f}x (goal >= 5x), wall clock "
              f"{wall_ratio:.2f}x")


def bench_labels(num_labels: int) -> None:
    targets = long_tailed_labels(num_labels, 10, 100.0).tolist()

    class TorchvisionStyle(Dataset):
        def __init__(self) -> None:
            self.targets = targets

        def __len__(self) -> int:
            return len(targets)

        def __getitem__(self, index: int):
            raise AssertionError("labels_of must not read items")

    print(f"labels: {num_labels:,} items")
    ours = best_of(lambda: labels_of(TorchvisionStyle()))
    base = best_of(lambda: np.asarray(targets))
    print(f"  attribute `targets` (list): labels_of {ours:.3f} s, np.asarray {base:.3f} s, "
          f"ratio {ours / base:.2f}x; {ours:.3f} s = {ours:.2f}x of the 1 s budget")
    names = np.array(["nv", "mel", "bkl", "bcc", "akiec", "vasc", "df", "scc", "ak", "unk"])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "manifest.csv"
        pd.DataFrame({"image": [f"ISIC_{i:07d}.jpg" for i in range(num_labels)],
                      "dx": names[np.asarray(targets)]}).to_csv(path, index=False)
        ours = best_of(lambda: labels_of(path, "dx"))
        base = best_of(lambda: pd.read_csv(path, usecols=["dx"]))
    print(f"  CSV column `dx` (strings): labels_of {ours:.3f} s, pd.read_csv(usecols) "
          f"{base:.3f} s, ratio {ours / base:.2f}x; {ours:.3f} s = {ours:.2f}x of the 1 s budget")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--repeats", type=int, default=10, help="timed epochs per loader")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bench_loaders(20_000 if args.quick else 100_000, 2 if args.quick else args.repeats)
    bench_batched_fetch(2 if args.quick else args.repeats)
    bench_labels(100_000 if args.quick else 1_000_000)


if __name__ == "__main__":
    main()
