"""Speed and memory of the multi-label samplers against the single-label sampler, in one run.

    python benchmarks/bench_multilabel.py            # ChestX-ray14 + synthetic 10M x 100 (minutes)
    python benchmarks/bench_multilabel.py --quick    # ChestX-ray14 + synthetic 1M x 100

Two label sets:

- the real NIH ChestX-ray14 labels shipped with balancer: 112,120 images x 14 findings;
- a synthetic ``N x 100`` table (default N = 10,000,000), built directly in compressed form:
  label frequencies decay exponentially from 20% to 0.02% (imbalance 1,000), each sample
  carries each label independently (2.96 labels per sample on average, 4% with none).

Every figure is a ratio to a baseline measured in the same run (the machines are shared):

- indices per second over one epoch of ``MultiLabelBalancedSampler`` and of
  ``RepeatFactorSampler`` vs ``BalancedBatchSampler`` on the same N (single-label labels: each
  sample's rarest label, or "none"), all with epochs of N slots for the balanced ones, batches
  as lists (what a ``DataLoader`` takes); medians of ``--repeats`` alternating timings
  (goal >= 0.5x);
- peak resident-memory growth of building the label-balanced sampler from the compressed
  labels and iterating one epoch, in a fresh process, vs the compressed labels' own size
  (N + 1 row offsets and P label ids), and vs a dense ``N x L`` float32 matrix (never built).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from balancer import (
    BalancedBatchSampler,
    MultiLabelBalancedSampler,
    MultiLabels,
    RepeatFactorSampler,
    labels_of,
    load_chestxray14_labels,
)


def synthetic(num_samples: int, num_labels: int, seed: int = 0) -> MultiLabels:
    """Independent labels with frequencies from 20% down to 0.02%, built row-compressed."""
    rng = np.random.default_rng(seed)
    frequency = 0.2 * np.exp(np.log(1e-3) * np.arange(num_labels) / (num_labels - 1))
    rows, columns = [], []
    for label, f in enumerate(frequency):  # one label at a time: memory O(positives)
        members = np.flatnonzero(rng.random(num_samples, dtype=np.float32) < f)
        rows.append(members.astype(np.int32))
        columns.append(np.full(len(members), label, dtype=np.int32))
    rows, columns = np.concatenate(rows), np.concatenate(columns)
    order = np.lexsort((columns, rows))
    indptr = np.zeros(num_samples + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=num_samples), out=indptr[1:])
    return MultiLabels(names=np.array([f"L{k}" for k in range(num_labels)]), indptr=indptr,
                       indices=columns[order])


def rarest_label(targets: MultiLabels) -> np.ndarray:
    """One class per sample for the single-label baseline: its rarest label, or L for none."""
    counts = targets.counts
    codes = np.full(targets.num_samples, targets.num_labels, dtype=np.int64)
    nonempty = ~targets.no_finding
    rarity = counts[targets.indices].astype(np.float64) * targets.num_labels + targets.indices
    smallest = np.minimum.reduceat(rarity, targets.indptr[:-1][nonempty])
    codes[nonempty] = (smallest % targets.num_labels).astype(np.int64)
    return codes


def rate(sampler, epoch: int) -> float:
    sampler.set_epoch(epoch)
    start = time.perf_counter()
    total = 0
    for batch in sampler:
        total += len(batch)
    return total / (time.perf_counter() - start)


def peak_growth_mib(kind: str, num_samples: int, num_labels: int, batch_size: int) -> float:
    """Peak RSS growth (MiB) of building a sampler from the labels and one epoch, fresh process."""
    code = f"""
import sys
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
from bench_multilabel import synthetic
from balancer import MultiLabelBalancedSampler, RepeatFactorSampler
targets = synthetic({num_samples}, {num_labels})
def rss(field):
    for line in open('/proc/self/status'):
        if line.startswith(field):
            return int(line.split()[1])
with open('/proc/self/clear_refs', 'w') as f:
    f.write('5')  # reset the peak (VmHWM) to now: building the labels above does not count
before = rss('VmRSS:')
if {kind!r} == 'balanced':
    s = MultiLabelBalancedSampler(targets, {batch_size}, seed=1)
else:
    s = RepeatFactorSampler(targets, {batch_size}, threshold=0.05, seed=1)
s.set_epoch(1)
for batch in s:
    pass
print((rss('VmHWM:') - before) / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    return float(out.stdout.strip().splitlines()[-1])


def compare(name: str, targets: MultiLabels, batch_size: int, repeats: int) -> list[tuple]:
    n = targets.num_samples
    start = time.perf_counter()
    balanced = MultiLabelBalancedSampler(targets, batch_size, seed=1)
    built = time.perf_counter() - start
    rfs = RepeatFactorSampler(targets, batch_size, threshold=0.05, seed=1)
    single = BalancedBatchSampler(rarest_label(targets), batch_size, seed=1, samples_per_epoch=n)
    print(f"\n{name}: N={n:,} L={targets.num_labels} positives={len(targets.indices):,} "
          f"no finding={int(targets.no_finding.sum()):,}; label-balanced sampler built in "
          f"{built:.2f} s; RFS epoch {rfs.samples_per_epoch:,} slots")
    ours, theirs, repeat_rates = [], [], []
    for repeat in range(repeats):  # alternate, so load changes hit all three alike
        theirs.append(rate(single, 2 + repeat))
        ours.append(rate(balanced, 2 + repeat))
        repeat_rates.append(rate(rfs, 2 + repeat))
    base = statistics.median(theirs)
    return [(f"{name}: label-balanced idx/s vs single-label", statistics.median(ours), base),
            (f"{name}: repeat-factor idx/s vs single-label", statistics.median(repeat_rates), base)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000_000)
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="synthetic N = 1,000,000")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.samples = 1_000_000
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"(1, 5, 15 min) on {os.cpu_count()} CPUs")
    chest = labels_of(load_chestxray14_labels(), "Finding Labels", multilabel=True)
    rows = compare("ChestX-ray14 112,120 x 14", chest, args.batch_size, args.repeats)
    start = time.perf_counter()
    targets = synthetic(args.samples, args.labels)
    print(f"\nsynthetic labels generated in {time.perf_counter() - start:.1f} s")
    rows += compare(f"synthetic {args.samples:,} x {args.labels}", targets, args.batch_size,
                    args.repeats)
    print(f"\n{'figure':62s} {'ours':>10s} {'baseline':>10s} {'ratio':>7s}  goal")
    for name, value, base in rows:
        print(f"{name:62s} {value:10.3g} {base:10.3g} {value / base:6.2f}x  >= 0.5x")
    if not args.skip_memory:
        compressed = (targets.indptr.nbytes + targets.indices.nbytes) / 2**20
        dense = args.samples * args.labels * 4 / 2**20
        for kind in ("balanced", "repeat-factor"):
            grow = peak_growth_mib(kind, args.samples, args.labels, args.batch_size)
            print(f"{kind + ': peak RSS growth (MiB) build + epoch vs CSR labels':62s} "
                  f"{grow:10.1f} {compressed:10.1f} {grow / compressed:6.2f}x  O(N + P)")
            print(f"{kind + ': same vs a dense N x L float32 matrix (never built)':62s} "
                  f"{grow:10.1f} {dense:10.1f} {grow / dense:6.3f}x")
    print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
          f"{os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
