"""Speed and memory of BalancedBatchSampler against torch's samplers, measured in one run.

    python benchmarks/bench_sampler.py            # N = 10,000,000, C = 1,000 (about 3 minutes)
    python benchmarks/bench_sampler.py --quick    # N = 1,000,000, C = 1,000 (seconds)

Labels are long-tailed: class sizes decay exponentially over C classes with an imbalance ratio
of 100 (largest / smallest), shuffled over the dataset. Every figure is printed as a ratio to a
baseline timed in the same run, because the machines this runs on are shared and noisy:

- indices per second over a whole balanced epoch (C * n_max indices, lists of batch_size) vs
  torch's ``BatchSampler(RandomSampler(N), batch_size)`` over its epoch (goal >= 5x), and vs
  ``BatchSampler(WeightedRandomSampler(1 / n_c, C * n_max), batch_size)`` (goal >= 25x);
  ours and the plain baseline are medians of ``--repeats`` alternating timings;
- the same epoch as int64 index arrays (``batch_type="numpy"``) vs as lists (goal >= 1.8x),
  and the list path vs ``tests/helpers/reference_plan.py``, a bulk numpy build of the same
  batches converted to lists 64 batches at a time (goal: the list path's idx/s >= 1 / 1.2 =
  0.83x the reference's), medians of alternating timings;
- time to the first batch of an epoch vs one ``np.random.permutation(N)`` (goal <= 2x);
- peak resident-memory growth of building the sampler and iterating an epoch, vs that of one
  int64 permutation of N (goal <= 3x), each measured in a fresh subprocess.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import BatchSampler, RandomSampler, WeightedRandomSampler

from balancer import BalancedBatchSampler

# The bulk reference of a balanced epoch is a test oracle (tests/test_reference_plan.py checks it
# yields the sampler's batches), so it lives in the tests' helper package, which is no installed
# package: its folder, found from this file's place in the repository, goes on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.reference_plan import reference_epoch


def long_tailed_labels(num_samples: int, num_classes: int, ratio: float, seed: int = 0) -> np.ndarray:
    decay = np.exp(-np.log(ratio) * np.arange(num_classes) / (num_classes - 1))
    counts = np.maximum(1, np.round(decay / decay.sum() * num_samples)).astype(np.int64)
    counts[0] += num_samples - counts.sum()
    labels = np.repeat(np.arange(num_classes), counts)
    np.random.default_rng(seed).shuffle(labels)
    return labels


def consume(batches) -> int:
    total = 0
    for batch in batches:
        total += len(batch)
    return total


def as_lists(batches: np.ndarray):
    """The reference's batches as lists, converted 64 at a time as a loop would take them."""
    for start in range(0, len(batches), 64):
        yield from batches[start: start + 64].tolist()


def rate(make_iterable) -> float:
    start = time.perf_counter()
    count = consume(make_iterable())
    return count / (time.perf_counter() - start)


def peak_growth_mib(kind: str, num_samples: int, num_classes: int, batch_size: int) -> float:
    """Peak RSS growth (MiB) of one operation, in a fresh interpreter."""
    code = f"""
import numpy as np, sys
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from bench_sampler import long_tailed_labels
from balancer import BalancedBatchSampler
labels = long_tailed_labels({num_samples}, {num_classes}, 100.0)
def rss(field):
    for line in open('/proc/self/status'):
        if line.startswith(field):
            return int(line.split()[1])
before = rss('VmRSS:')
if {kind!r} == 'permutation':
    p = np.random.permutation({num_samples})
else:
    s = BalancedBatchSampler(labels, {batch_size}, seed=1)
    s.set_epoch(1)
    for batch in s:
        pass
print((rss('VmHWM:') - before) / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000_000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3,
                        help="repeats of the throughput and first-batch timings (medians)")
    parser.add_argument("--quick", action="store_true", help="N = 1,000,000")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.samples = 1_000_000
    n, c, b = args.samples, args.classes, args.batch_size
    torch.manual_seed(0)  # the baselines draw from torch's global generator
    labels = long_tailed_labels(n, c, 100.0)
    counts = np.bincount(labels)
    epoch_len = c * int(counts.max())
    print(f"N={n:,} C={c} batch_size={b} imbalance={counts.max() / counts.min():.0f} "
          f"balanced epoch C*n_max={epoch_len:,} torch {torch.__version__}")

    start = time.perf_counter()
    sampler = BalancedBatchSampler(labels, b, seed=1)
    print(f"build sampler: {time.perf_counter() - start:.2f} s (once per run)")

    rows = []
    # Ours and the plain baseline alternate, each timed --repeats times (ours on a different
    # epoch each time); the ratio uses the medians. The weighted baseline is ~20x slower and
    # runs once.
    arrays = BalancedBatchSampler(labels, b, seed=1, batch_type="numpy")
    ours_rates, plain_rates, array_rates, reference_rates = [], [], [], []
    for repeat in range(args.repeats):
        sampler.set_epoch(10 + repeat)
        ours_rates.append(rate(lambda: sampler))
        plain_rates.append(rate(lambda: BatchSampler(RandomSampler(range(n)), b, drop_last=False)))
        arrays.set_epoch(10 + repeat)
        array_rates.append(rate(lambda: arrays))
        epoch = 10 + repeat
        reference_rates.append(rate(lambda e=epoch: as_lists(reference_epoch(sampler, e))))
    ours, plain = statistics.median(ours_rates), statistics.median(plain_rates)
    print(f"ours idx/s per repeat: {', '.join(f'{r:.3g}' for r in ours_rates)}; "
          f"plain: {', '.join(f'{r:.3g}' for r in plain_rates)}; "
          f"ours as arrays: {', '.join(f'{r:.3g}' for r in array_rates)}")
    rows.append(("balanced epoch idx/s vs BatchSampler(RandomSampler)", ours, plain, ">= 5x"))
    weights = torch.from_numpy(1.0 / counts[labels])
    weighted = rate(lambda: BatchSampler(WeightedRandomSampler(weights, epoch_len), b, False))
    rows.append(("balanced epoch idx/s vs WeightedRandomSampler", ours, weighted, ">= 25x"))
    rows.append(("index arrays idx/s vs lists (same plan)", statistics.median(array_rates), ours,
                 ">= 1.8x"))
    rows.append(("lists idx/s vs numpy reference of the plan, as lists", ours,
                 statistics.median(reference_rates), ">= 0.83x"))

    firsts, perms = [], []
    for repeat in range(args.repeats):
        sampler.set_epoch(2 + repeat)
        start = time.perf_counter()
        next(iter(sampler))
        firsts.append(time.perf_counter() - start)
        start = time.perf_counter()
        np.random.permutation(n)  # noqa: NPY002 -- the baseline named by the goal
        perms.append(time.perf_counter() - start)
    first, perm = statistics.median(firsts), statistics.median(perms)

    if n != 10_000_000 or c != 1000 or b != 256:
        print("\nNote: the goals are set for N=10,000,000, C=1000, batch_size=256; at other "
              "sizes the ratios differ (fewer draws per reshuffle, a smaller baseline cost).")
    print(f"\n{'figure':55s} {'ours':>12s} {'baseline':>12s} {'ratio':>8s}  goal")
    for name, value, base, goal in rows:
        print(f"{name:55s} {value:12.3g} {base:12.3g} {value / base:7.2f}x  {goal}")
    print(f"{'time to first batch (s) vs np.random.permutation(N)':55s} {first:12.3g} {perm:12.3g} "
          f"{first / perm:7.2f}x  <= 2x")
    if not args.skip_memory:
        grow = peak_growth_mib("sampler", n, c, b)
        base = peak_growth_mib("permutation", n, c, b)
        print(f"{'peak RSS growth (MiB): build + epoch vs one permutation':55s} {grow:12.1f} "
              f"{base:12.1f} {grow / base:7.2f}x  <= 3x")


if __name__ == "__main__":
    main()
