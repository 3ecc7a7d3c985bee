"""The bulk reference of a balanced epoch (``helpers.reference_plan``, which
``benchmarks/bench_sampler.py`` times the sampler against) gives exactly the sampler's batches."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.reference_plan import reference_epoch, reference_tail

from balancer import BalancedBatchSampler, FineTuneSchedule


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

