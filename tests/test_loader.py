"""balance() and balanced_loader(): settings carried over, batches from the sampler, the
consumed-batch count behind state_dict(), and every error path."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
import torch
from helpers.sampler import make_labels
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    TensorDataset,
    WeightedRandomSampler,
)

from balancer import (
    BalancedBatchSampler,
    BalancedDataLoader,
    FineTuneSchedule,
    MedMNIST,
    balance,
    balanced_loader,
)


class Indexed(Dataset):
    """Items are ``(index, label)``; labels exposed as ``targets``."""

    def __init__(self, labels):
        self.targets = np.asarray(labels)

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        return index, int(self.targets[index])


def indices_of(loader):
    return [batch[0].tolist() for batch in loader]


def collate_pairs(items):
    return [i for i, _ in items], [c for _, c in items]


def init_worker(worker_id):
    torch.set_num_threads(1)


def test_balance_copies_settings_and_replaces_the_sampler():
    dataset = Indexed(make_labels([40, 10, 5]))
    generator = torch.Generator().manual_seed(3)
    context = multiprocessing.get_context("fork")
    original = DataLoader(dataset, batch_size=6, shuffle=True, num_workers=2,
                          collate_fn=collate_pairs, pin_memory=False, drop_last=True, timeout=30,
                          worker_init_fn=init_worker, multiprocessing_context=context,
                          generator=generator, prefetch_factor=3, persistent_workers=True,
                          in_order=True)
    loader = balance(original, seed=4)
    assert isinstance(loader, BalancedDataLoader) and loader.dataset is dataset
    for name in ("num_workers", "collate_fn", "pin_memory", "timeout", "worker_init_fn",
                 "multiprocessing_context", "generator", "prefetch_factor", "persistent_workers",
                 "in_order"):
        assert getattr(loader, name) == getattr(original, name), name
    sampler = loader.batch_sampler
    assert isinstance(sampler, BalancedBatchSampler)
    assert (sampler.batch_size, sampler.seed, sampler.drop_last) == (6, 4, True)
    assert len(loader) == len(sampler) == 3 * 40 // 6


@pytest.mark.parametrize("num_workers", [0, 2])
def test_batches_are_the_samplers_and_len_follows_the_phase(num_workers):
    labels = make_labels([50, 12, 3])
    dataset = Indexed(labels)
    schedule = FineTuneSchedule(total_epochs=3, finetune_epochs=1)
    loader = balance(DataLoader(dataset, batch_size=8, num_workers=num_workers),
                     schedule=schedule, seed=5)
    reference = BalancedBatchSampler(labels, 8, seed=5, schedule=schedule)
    for epoch, phase, batches in ((0, "balanced", 19), (2, "finetune", 9)):
        loader.set_epoch(epoch)
        reference.set_epoch(epoch)
        assert (loader.epoch, loader.phase, len(loader)) == (epoch, phase, batches)
        assert indices_of(loader) == list(reference)


def test_explicit_labels_and_medmnist_attribute():
    dataset = TensorDataset(torch.arange(12))
    labels = ["a"] * 8 + ["b"] * 4
    loader = balance(DataLoader(dataset, batch_size=4), labels)
    seen = [labels[i] for (batch,) in loader for i in batch.tolist()]
    assert seen.count("a") == seen.count("b") == 8
    pneumonia = MedMNIST("pneumoniamnist", "train")
    loader = balance(DataLoader(pneumonia, batch_size=64, shuffle=True))
    assert len(loader) == -(-2 * 3494 // 64)
    images, targets = next(iter(loader))
    assert images.shape == (64, 1, 28, 28) and targets.bincount().tolist() == [32, 32]


def test_loader_from_batch_sampler_and_distributed_sampler():
    dataset = Indexed(make_labels([30, 6]))
    plain = DataLoader(dataset, batch_sampler=BatchSampler(RandomSampler(dataset), 5, True))
    loader = balance(plain)
    assert (loader.batch_sampler.batch_size, loader.batch_sampler.drop_last) == (5, True)
    shard = DistributedSampler(dataset, num_replicas=3, rank=2)
    loader = balance(DataLoader(dataset, batch_size=4, sampler=shard), drop_last=False)
    assert (loader.batch_sampler.num_replicas, loader.batch_sampler.rank) == (3, 2)


def test_state_dict_counts_batches_the_loop_received_not_prefetched():
    labels = make_labels([60, 20, 7])
    dataset = Indexed(labels)

    def build():
        return balance(DataLoader(dataset, batch_size=4, num_workers=2, prefetch_factor=4),
                       schedule=FineTuneSchedule(3, 1), seed=2)

    loader = build()
    loader.set_epoch(1)
    full = indices_of(loader)
    iterator = iter(loader)
    received = [next(iterator)[0].tolist() for _ in range(5)]
    state = loader.state_dict()
    # The workers asked the sampler for more than the loop took: the loader's count is the loop's.
    assert loader.batch_sampler.state_dict()["batches_done"] > 5
    assert state["batches_done"] == 5 and state["epoch"] == 1
    del iterator
    restored = build()
    restored.load_state_dict(state)
    assert (restored.epoch, len(restored)) == (1, len(full) - 5)
    assert restored.state_dict()["batches_done"] == 5
    restored.set_epoch(1)  # the usual loop: the resume position survives set_epoch(same epoch)
    assert received + indices_of(restored) == full
    state = restored.state_dict()  # after the last batch: the start of the next epoch
    assert (state["epoch"], state["batches_done"]) == (2, 0)
    restored.set_epoch(2)
    assert restored.state_dict()["batches_done"] == 0 and restored.phase == "finetune"


def test_persistent_workers_resume():
    dataset = Indexed(make_labels([30, 5]))
    loader = balance(DataLoader(dataset, batch_size=4, num_workers=1, persistent_workers=True))
    full = indices_of(loader)
    iterator = iter(loader)
    next(iterator), next(iterator)
    state = loader.state_dict()
    loader.load_state_dict(state)
    assert indices_of(loader) == full[2:]
    assert indices_of(loader) == full


def test_balanced_loader_from_a_dataset():
    labels = make_labels([20, 4])
    loader = balanced_loader(Indexed(labels), 6, num_workers=0, seed=3, drop_last=True,
                             schedule=FineTuneSchedule(2, 1), collate_fn=collate_pairs)
    assert loader.collate_fn is collate_pairs and loader.batch_sampler.seed == 3
    assert len(loader) == 7  # 40 balanced samples, extended to whole batches of 6
    _, classes = next(iter(loader))
    assert sorted(classes) == [0, 0, 0, 1, 1, 1]


def test_seed_none_draws_a_fresh_seed_and_resume_needs_it():
    dataset = Indexed(make_labels([20, 4]))
    first = balance(DataLoader(dataset, batch_size=4), seed=None)
    second = balance(DataLoader(dataset, batch_size=4), seed=None)
    assert first.seed != second.seed  # 63 random bits each
    full = indices_of(first)
    assert full != indices_of(second)
    iterator = iter(first)
    next(iterator), next(iterator)
    state = first.state_dict()
    with pytest.raises(ValueError, match=r"state was saved with seed=\d+, but this loader was "
                                         r"built with seed=None and drew seed=\d+; rebuild it "
                                         r"with balance\(\.\.\., seed=state\['settings'\]"):
        second.load_state_dict(state)
    again = balance(DataLoader(dataset, batch_size=4), seed=state["settings"]["seed"])
    again.load_state_dict(state)
    assert indices_of(again) == full[2:]


# ---------------------------------------------------------------------- errors
class Stream(IterableDataset):
    def __iter__(self):
        yield from range(4)


def test_balance_errors():
    dataset = Indexed(make_labels([8, 4]))
    with pytest.raises(TypeError, match="loader should be a torch.utils.data.DataLoader, but got "
                                        "Indexed; .*balancer.balanced_loader"):
        balance(dataset)
    # A stream is balanced item by item (tests/test_stream_*.py): a list of labels is refused.
    with pytest.raises(TypeError, match=r"labels should be a key of the item .* but got "
                                        r"labels=\[0, 1, 0, 1\] .* a stream's labels are read "
                                        r"from each item as it arrives"):
        balance(DataLoader(Stream(), batch_size=2), labels=[0, 1, 0, 1], classes=2)
    custom = BalancedBatchSampler(dataset.targets, 4)
    with pytest.raises(ValueError, match="already balanced"):
        balance(DataLoader(dataset, batch_sampler=custom))
    with pytest.raises(ValueError, match="already balanced"):
        balance(balance(DataLoader(dataset, batch_size=2)))
    batches = [[0, 1], [2, 3]]
    with pytest.raises(ValueError, match=r"custom batch_sampler \(list\), which balance\(\) would "
                                         r"replace; build the DataLoader with batch_size=N"):
        balance(DataLoader(dataset, batch_sampler=batches))
    with pytest.raises(ValueError, match=r"loader has batch_size=None .*build the DataLoader with "
                                         r"batch_size=N"):
        balance(DataLoader(dataset, batch_size=None))
    weighted = WeightedRandomSampler([1.0] * 12, 12)
    with pytest.raises(ValueError, match=r"custom sampler \(WeightedRandomSampler\).*shuffle=True"):
        balance(DataLoader(dataset, batch_size=2, sampler=weighted))
    with pytest.raises(ValueError, match="labels has 11 entries but the dataset has 12 items"):
        balance(DataLoader(dataset, batch_size=2), labels=[0, 1] * 5 + [0])
    with pytest.raises(ValueError, match="found no class labels on dataset of type TensorDataset"):
        balance(DataLoader(TensorDataset(torch.zeros(4)), batch_size=2))
    with pytest.raises(ValueError, match="seed should be an integer >= 0, but got seed=-1"):
        balance(DataLoader(dataset, batch_size=2), seed=-1)
    with pytest.raises(TypeError, match="drop_last should be True or False, but got drop_last=1"):
        balance(DataLoader(dataset, batch_size=2), drop_last=1)
    with pytest.raises(TypeError, match="batch_sampler should be a balancer.BalancedBatchSampler"):
        BalancedDataLoader(dataset, BatchSampler(RandomSampler(dataset), 2, False))


def test_balanced_loader_errors():
    dataset = Indexed(make_labels([8, 4]))
    with pytest.raises(ValueError, match="batch_size=None disables batching; .*pass batch_size=N"):
        balanced_loader(dataset, None)
    with pytest.raises(ValueError, match="batch_size should be an integer >= 1, but got "
                                         "batch_size=0"):
        balanced_loader(dataset, 0)
    with pytest.raises(TypeError, match=r"got shuffle=, but .*remove shuffle"):
        balanced_loader(dataset, 4, shuffle=True)
    with pytest.raises(TypeError, match=r"got batch_sampler=, sampler=, .*remove batch_sampler, "
                                        r"sampler"):
        balanced_loader(dataset, 4, sampler=None, batch_sampler=None)
    with pytest.raises(TypeError, match=r"unexpected keyword\(s\) \['num_replica'\]"):
        balanced_loader(dataset, 4, num_replica=2)
