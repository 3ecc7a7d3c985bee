"""Throughput of a balanced stream against the raw stream through the same ``DataLoader``
settings, and the most items its buffers held against the bound its docstring states, measured
in one run.

    python benchmarks/bench_stream.py            # 40,000 items per pass (about 2 minutes)
    python benchmarks/bench_stream.py --quick    # 4,000 items per pass (seconds)

- Source: an ``IterableDataset`` of long-tailed labels (10 classes, imbalance ratio 100) that
  splits its items between ``DataLoader`` workers by itself, as a webdataset or a Hugging Face
  streaming data set does. Two per-item costs: ``decode`` (each item a zlib-compressed 32x32x3
  uint8 image, decompressed and turned into a float tensor in the source, as a real stream
  decodes its records) and ``trivial`` (each item an int and its label, so the figure is the
  stream's own overhead).
- Throughput: one pass of ``balance(DataLoader(source, batch_size=64, num_workers=W),
  labels="cls", classes=10, split="source")`` against ``DataLoader(source, batch_size=64,
  num_workers=W)``, for W = 0 and 2. A balanced pass serves more items than the source holds
  (the small classes repeat), so two ratios: *served*, items served per second (the cost per
  batch, balanced / raw; goal >= 0.9), and *pass*, passes per second over the same source.
  Passes alternate between the two (ABBA order), and each figure is the median over pairs of
  back-to-back passes.
  With ``num_workers=0`` everything runs in this process, so that row uses this process's CPU
  time, which the other processes on a shared machine do not disturb; with workers the wall
  clock.
- Ranks in step: the time of the one all-reduced flag per batch that
  ``balancer.streams.BalancedStreamLoader`` makes under several ranks (2 gloo
  processes on this machine), against the raw decode loader's time per batch.
- Memory: the most items alive at once during a balanced pass with ``num_workers=0`` (every
  item the source makes is counted while it exists, so this counts what the buffers hold plus
  the batch being collated), against the bound the stream states.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from balancer import balance

BATCH_SIZE = 64
NUM_CLASSES = 10
SIDE = 32


def long_tailed_labels(num_items: int, num_classes: int, ratio: float) -> np.ndarray:
    """Class ``c`` has about ``ratio ** (-c / (C - 1))`` of the largest class's items, in a
    seeded random order (every class has at least one item)."""
    weights = ratio ** (-np.arange(num_classes) / (num_classes - 1))
    counts = np.maximum(1, np.round(weights / weights.sum() * num_items)).astype(int)
    labels = np.repeat(np.arange(num_classes), counts)[:num_items]
    np.random.default_rng(0).shuffle(labels)
    return labels


class Live:
    """Counts the source's items that exist right now, and the most that ever did."""

    now = 0
    peak = 0

    @classmethod
    def reset(cls) -> None:
        cls.now = cls.peak = 0


class Image:
    """One decoded record; counted in :class:`Live` while it exists."""

    __slots__ = ("pixels",)

    def __init__(self, pixels: torch.Tensor) -> None:
        self.pixels = pixels
        Live.now += 1
        Live.peak = max(Live.peak, Live.now)

    def __del__(self) -> None:
        Live.now -= 1


def collate(items: list[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    images = [item["image"] for item in items]
    if isinstance(images[0], Image):
        stacked = torch.stack([image.pixels for image in images])
    else:
        stacked = torch.tensor(images)
    return stacked, torch.tensor([item["cls"] for item in items])


class Records(IterableDataset):
    """A stream of ``{"image": ..., "cls": label, "key": i}`` records, split between the
    ``DataLoader``'s workers by itself (worker ``w`` of ``W`` reads records ``w, w + W, ...``).

    ``decode=True``: each record is a zlib-compressed ``SIDE x SIDE x 3`` uint8 image, decoded
    into a float tensor when read; ``decode=False``: the image is the record's index.
    """

    def __init__(self, labels: np.ndarray, *, decode: bool) -> None:
        self.labels = labels.tolist()
        self.decode = decode
        if decode:
            generator = np.random.default_rng(1)
            # A few distinct images, stored compressed (smooth, so zlib has work to do).
            base = generator.integers(0, 256, (16, SIDE, SIDE, 3), dtype=np.uint8)
            self.blobs = [zlib.compress(np.sort(image, axis=1).tobytes()) for image in base]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        for index in range(start, len(self.labels), step):
            if self.decode:
                raw = zlib.decompress(self.blobs[index % len(self.blobs)])
                array = np.frombuffer(raw, dtype=np.uint8).reshape(SIDE, SIDE, 3)
                image: Any = Image(torch.from_numpy(array.copy()).permute(2, 0, 1).float()
                                   .div_(255.0))
            else:
                image = index
            yield {"image": image, "cls": self.labels[index], "key": index}


def timed_pass(loader: Any, epoch: int, clock: Callable[[], float]) -> tuple[int, float]:
    """One pass: (items served, seconds)."""
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    start = clock()
    count = 0
    for images, _ in loader:
        count += len(images)
    return count, clock() - start


def paired_passes(loaders: dict[str, Any], repeats: int,
                  clock: Callable[[], float]) -> dict[str, list[tuple[int, float]]]:
    """Passes of the two loaders back to back, in ABBA order, ``repeats`` times each."""
    passes: dict[str, list[tuple[int, float]]] = {name: [] for name in loaders}
    for repeat in range(repeats):
        order = list(loaders.items())
        for name, loader in order if repeat % 2 == 0 else order[::-1]:
            passes[name].append(timed_pass(loader, repeat + 1, clock))
    return passes


def build(source: Records, workers: int, **stream_options: Any) -> dict[str, Any]:
    # Without persistent_workers, as the figures in docs/benchmarks.md were measured: both
    # loaders start their workers at every pass. The source splits itself
    # between the workers, so the stream is told so (split="source"); the default for a plain
    # IterableDataset, split="position", has every worker read the whole source.
    settings: dict[str, Any] = dict(batch_size=BATCH_SIZE, num_workers=workers,
                                    collate_fn=collate)
    return {
        "raw": DataLoader(source, **settings),
        "balanced": balance(DataLoader(source, **settings), labels="cls", classes=NUM_CLASSES,
                            split="source", **stream_options),
    }


def bench_throughput(labels: np.ndarray, repeats: int) -> None:
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    print(f"throughput: N={len(labels):,} items per pass, C={NUM_CLASSES} classes (largest "
          f"{counts.max():,}, smallest {counts.min():,}), batch_size={BATCH_SIZE}, median of "
          f"{repeats} paired passes; served = items served per second, balanced / raw (goal >= "
          f"0.9x); pass = passes per second over the same source, balanced / raw (a balanced "
          f"pass serves more items than it reads: the small classes repeat)")
    for cost in ("decode", "trivial"):
        source = Records(labels, decode=cost == "decode")
        for workers in (0, 2):
            loaders = build(source, workers)
            for loader in loaders.values():  # warm up
                timed_pass(loader, 0, time.perf_counter)
            clock = time.process_time if workers == 0 else time.perf_counter
            passes = paired_passes(loaders, repeats, clock)
            pairs = list(zip(passes["balanced"], passes["raw"], strict=True))
            # Each pair ran back to back, so its ratio cancels slow changes in the load of a
            # shared machine; the median of the pairs' ratios is the figure.
            served = statistics.median((b[0] / b[1]) / (r[0] / r[1]) for b, r in pairs)
            per_pass = statistics.median(r[1] / b[1] for b, r in pairs)
            rate = {name: statistics.median(n / t for n, t in runs)
                    for name, runs in passes.items()}
            what = "CPU time" if workers == 0 else "wall clock"
            print(f"  {cost:7s} num_workers={workers} ({what}): balanced {rate['balanced']:,.0f} "
                  f"items/s served, raw {rate['raw']:,.0f}; served {served:.3f}x, pass "
                  f"{per_pass:.3f}x")
            if workers:
                peaks = loaders["balanced"].peak_items_held
                print(f"    most items held by one worker's buffers: {max(peaks.values()):,} "
                      f"(bound {memory_bound(loaders['balanced']):,})")


def bench_memory(labels: np.ndarray) -> None:
    source = Records(labels, decode=True)
    print(f"memory: one balanced pass of N={len(labels):,} decoded items, num_workers=0")
    for buffer_size in (16, 256):
        loader = build(source, 0, buffer_size=buffer_size)["balanced"]
        bound = memory_bound(loader)
        Live.reset()
        with warnings.catch_warnings():  # a rare class missing from the warm-up is expected
            warnings.simplefilter("ignore", UserWarning)
            served, _ = timed_pass(loader, 0, time.perf_counter)
        held = loader.peak_items_held[0]
        print(f"  buffer_size={buffer_size}: {served:,} items served; the most held by the "
              f"buffers {held:,} (stream.peak_held), the most alive at once {Live.peak:,} "
              f"(counted on the items: buffers plus the batch being collated); the stated bound "
              f"C * buffer_size + max(wait, L * max(B, C)) = {bound:,}: {held / bound:.2f}x of it")
        assert held <= bound and Live.peak <= bound + BATCH_SIZE, (held, Live.peak, bound)


def memory_bound(loader: Any) -> int:
    """The bound on the items the buffers hold that the stream's docstring states:
    ``C * buffer_size + max(wait, lookahead * max(B, C))``."""
    stream = loader.stream
    return int(stream.num_classes * stream.buffer_size
               + max(stream.wait, stream.lookahead * max(stream.batch_size, stream.num_classes)))


def _flag_rounds(rank: int, port: int, rounds: int, out: Any) -> None:
    """One of two gloo processes: the seconds ``rounds`` all-reduced flags take, as the
    BalancedStreamLoader makes them (one per batch, MAX of one int32)."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=2)
    group = dist.new_group(backend="gloo")
    flag = torch.tensor([1], dtype=torch.int32)
    for _ in range(50):  # warm up the connection
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=group)
    dist.barrier()
    start = time.perf_counter()
    for _ in range(rounds):
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=group)
        bool(flag.item())
    if rank == 0:
        out.put(time.perf_counter() - start)
    dist.barrier()
    dist.destroy_process_group()


def bench_lockstep(labels: np.ndarray, rounds: int) -> None:
    """The cost of keeping two ranks in step, per batch, against the raw loader's time per batch
    of the decode source (one process, no workers, wall clock)."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = mp.get_context("spawn")
    out = context.Queue()
    processes = [context.Process(target=_flag_rounds, args=(rank, port, rounds, out))
                 for rank in range(2)]
    for process in processes:
        process.start()
    seconds = out.get(timeout=300)
    for process in processes:
        process.join()
    raw = DataLoader(Records(labels, decode=True), batch_size=BATCH_SIZE, collate_fn=collate)
    count, elapsed = timed_pass(raw, 0, time.perf_counter)
    per_batch = elapsed / (count / BATCH_SIZE)
    flag = seconds / rounds
    print(f"ranks in step (BalancedStreamLoader): one all-reduced flag per batch, 2 gloo processes "
          f"on this machine: {flag * 1e6:,.0f} us per batch (mean of {rounds:,}); "
          f"the raw decode loader's time per batch of {BATCH_SIZE}: {per_batch * 1e6:,.0f} us; "
          f"ratio {flag / per_batch:.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--repeats", type=int, default=6, help="timed passes per loader")
    args = parser.parse_args()
    torch.set_num_threads(1)
    # The rarest classes (16 items in 4,000) may miss the warm-up: said once per pass, expected.
    warnings.filterwarnings("ignore", message=".*no item of class", category=UserWarning)
    labels = long_tailed_labels(4_000 if args.quick else 40_000, NUM_CLASSES, 100.0)
    bench_throughput(labels, 2 if args.quick else args.repeats)
    bench_memory(labels)
    bench_lockstep(labels, 200 if args.quick else 2_000)
    return None


if __name__ == "__main__":
    sys.exit(main())
