"""balance() wraps an existing DataLoader (README "Wrap an existing DataLoader"): it keeps the
loader's settings, finds the labels without loading an item, and takes num_replicas and rank
from a DistributedSampler."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from helpers.sampler import Indexed, NoLoad, global_plan, make_labels
from torch.utils.data import ConcatDataset, DataLoader, DistributedSampler, Subset

from balancer import BalancedBatchSampler, balance, balanced_loader, labels_of


def test_balance_keeps_settings_and_finds_labels_without_loading():
    def init_worker(worker_id):
        del worker_id

    def collate(batch):
        return batch

    generator = torch.Generator().manual_seed(3)
    dataset = NoLoad([0, 0, 0, 1, 1, 2])
    plain = DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate, timeout=7,
                       worker_init_fn=init_worker, generator=generator, prefetch_factor=5,
                       persistent_workers=True, drop_last=True)
    loader = balance(plain)
    for name in ("num_workers", "collate_fn", "timeout", "worker_init_fn", "generator",
                 "prefetch_factor", "persistent_workers", "pin_memory"):
        assert getattr(loader, name) == getattr(plain, name), name
    assert loader.batch_sampler.drop_last and loader.batch_sampler.batch_size == 2
    table = pd.DataFrame({"dx": ["a", "b", "b", "a", "c", "c"]})
    assert labels_of(dataset, (table, "dx")).tolist() == table["dx"].tolist()
    assert labels_of(dataset, ([{"k": i % 2} for i in range(6)], "k")).tolist() == [0, 1] * 3
    assert labels_of(dataset, lambda index: index % 3).tolist() == [0, 1, 2] * 2
    nested = Subset(ConcatDataset([Subset(dataset, [0, 3]), NoLoad([5, 6], "labels")]),
                    torch.tensor([3, 0, 1]))
    assert labels_of(nested).tolist() == [6, 0, 1]
    assert labels_of(Subset(dataset, [-1, 0])).tolist() == [2, 0]
    with pytest.raises(ValueError, match=r"in_order=False with num_workers > 0"):
        balanced_loader(dataset, 2, num_workers=1, in_order=False)
    with pytest.raises(ValueError, match=r"custom sampler \(WeightedRandomSampler\)"):
        balance(DataLoader(dataset, batch_size=2, sampler=torch.utils.data.WeightedRandomSampler(
            [1.0] * 6, 6)))


def test_distributed_sampler_lends_replicas_to_balance():
    """Without a process group, a DistributedSampler's num_replicas/rank shard one plan: equal
    batch counts per rank, and together the single global plan of a 3-replica sampler."""
    labels = make_labels([13, 5, 2])
    shards = []
    for rank in range(3):
        dataset = Indexed(labels)
        loader = balance(DataLoader(dataset, batch_size=4, sampler=DistributedSampler(
            dataset, num_replicas=3, rank=rank)), seed=5)
        loader.set_epoch(1)
        shards.append([batch.tolist() for batch in loader])
    samplers = [BalancedBatchSampler(labels, 4, seed=5, num_replicas=3, rank=r)
                for r in range(3)]
    plan = global_plan(samplers, 1)
    assert [shards[g % 3][g // 3] for g in range(len(plan))] == plan
