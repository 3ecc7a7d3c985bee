"""The benchmarks' references compute what they claim to: the same batches as the sampler."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from balancer import BalancedBatchSampler, FineTuneSchedule

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from reference_plan import reference_epoch, reference_tail


@pytest.mark.parametrize("counts, batch_size", [((300, 41, 7, 2), 13), ((50, 50), 8),
                                                 ((1000, 800, 50), 64), ((9, 1, 1), 1)])
@pytest.mark.parametrize("epoch", [0, 1, 4])
def test_reference_epoch_is_the_samplers_epoch(counts, batch_size, epoch):
    labels = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(0).shuffle(labels)
    sampler = BalancedBatchSampler(labels, batch_size, seed=3)
    sampler.set_epoch(epoch)
    batches = list(sampler)
    full = reference_epoch(sampler, epoch)
    tail = reference_tail(sampler, epoch)
    expected = full.tolist() + ([tail.tolist()] if tail.size else [])
    assert expected == batches


def test_reference_covers_large_batches_shuffled_one_by_one(monkeypatch):
    monkeypatch.setattr(BalancedBatchSampler, "_ORDER_POOL_MAX_BATCH", 4)
    labels = np.repeat([0, 1, 2], [40, 9, 3])
    sampler = BalancedBatchSampler(labels, 6, seed=1, drop_last=True)
    sampler.set_epoch(2)
    assert reference_epoch(sampler, 2).tolist() == list(sampler)


def test_reference_refuses_what_it_does_not_cover():
    sampler = BalancedBatchSampler([0, 0, 1], 2, schedule=FineTuneSchedule(2, 1))
    with pytest.raises(ValueError, match="single-process balanced epochs only"):
        reference_epoch(sampler, 1)


def _bench_losses(*args: str, threads: str) -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, OMP_NUM_THREADS=threads, PYTHONPATH=str(root))
    return subprocess.run([sys.executable, str(root / "benchmarks" / "bench_losses.py"), *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_bench_losses_multilabel_part_runs_on_either_clock():
    """A smoke run of the multi-label part on the CPU-time clock: every multi-label loss gets a
    row with a ratio, and the CPU clock refuses what it cannot time (several threads)."""
    done = _bench_losses("--quick", "--only", "multilabel", "--clock", "cpu", "--repeats", "1",
                         threads="1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "clock cpu" in done.stdout
    for name in ("asymmetric", "pos_weighted_bce", "sigmoid_logit_adjusted",
                 "distribution_balanced"):
        rows = [line.split() for line in done.stdout.splitlines() if line.startswith(name + " ")]
        assert len(rows) == 2 and all(float(row[1]) > 0 for row in rows), (name, done.stdout)
    refused = _bench_losses("--quick", "--only", "multilabel", "--clock", "cpu", threads="2")
    assert refused.returncode != 0
    assert "--clock cpu times this thread only" in refused.stderr
