"""Invariants of BalancedBatchSampler: counts, coverage, buffers, composition, determinism,
resume, sharding and every error path."""

from __future__ import annotations

import collections
import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, TensorDataset

from balancer import BalancedBatchSampler, FineTuneSchedule


def make_labels(counts, seed=0):
    labels = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(seed).shuffle(labels)
    return labels


def epoch_batches(sampler, epoch):
    sampler.set_epoch(epoch)
    return list(sampler)


def class_counts_of(labels, batches):
    counts = collections.Counter(labels[i] for batch in batches for i in batch)
    return np.array([counts.get(c, 0) for c in np.unique(labels)])


def assert_buffer_invariant(labels, batches, usage):
    """After every batch, the samples of each class have been used equally often, within one."""
    for batch in batches:
        for i in batch:
            usage[i] += 1
        for cls in np.unique(labels):
            used = usage[labels == cls]
            assert used.max() - used.min() <= 1, f"class {cls} usage spread {used.min()}..{used.max()}"


COUNTS = [(50, 7, 20, 1), (30, 30, 3), (17, 2), (100, 40, 40, 9, 9, 3)]


@pytest.mark.parametrize("counts", COUNTS)
@pytest.mark.parametrize("batch_size", [1, 3, 8, 13])
@pytest.mark.parametrize("seed", [0, 5])
def test_balanced_epoch_counts_and_coverage(counts, batch_size, seed):
    labels = make_labels(counts, seed)
    sampler = BalancedBatchSampler(labels, batch_size, seed=seed)
    n_max, num_classes = max(counts), len(counts)
    for epoch in range(3):
        batches = epoch_batches(sampler, epoch)
        assert len(batches) == len(sampler) == math.ceil(num_classes * n_max / batch_size)
        # Exactly n_max draws of every class, C * n_max in all.
        assert class_counts_of(labels, batches).tolist() == [n_max] * num_classes
        used = collections.Counter(i for batch in batches for i in batch)
        for cls, count in enumerate(counts):
            members = np.flatnonzero(labels == cls)
            # Every sample of every class is used; those of a largest class exactly once.
            assert all(used[i] >= 1 for i in members)
            if count == n_max:
                assert all(used[i] == 1 for i in members)
        # Batches hold distinct dataset indices only where a class has enough samples.
        assert all(len(b) == batch_size for b in batches[:-1])
        assert 1 <= len(batches[-1]) <= batch_size


@pytest.mark.parametrize("counts", COUNTS)
@pytest.mark.parametrize("batch_size", [2, 4, 9, 16])
def test_batch_composition(counts, batch_size):
    labels = make_labels(counts)
    num_classes = len(counts)
    sampler = BalancedBatchSampler(labels, batch_size, seed=3, drop_last=True)
    for batch in epoch_batches(sampler, 1):
        per_class = collections.Counter(labels[i] for i in batch)
        if batch_size >= num_classes:
            assert set(per_class) == set(range(num_classes))
            assert set(per_class.values()) <= {batch_size // num_classes,
                                              -(-batch_size // num_classes)}
        else:
            assert len(per_class) == batch_size  # distinct classes


def test_order_inside_batches_is_shuffled():
    labels = make_labels([400, 400, 400, 400])
    sampler = BalancedBatchSampler(labels, 8, seed=0)
    patterns = {tuple(labels[i] for i in batch) for batch in sampler}
    assert len(patterns) > 50  # a round-robin layout left unshuffled would give a handful


def test_batches_above_the_pool_size_are_shuffled_one_by_one(monkeypatch):
    monkeypatch.setattr(BalancedBatchSampler, "_ORDER_POOL_MAX_BATCH", 4)
    labels = make_labels([400, 400, 400, 400])
    sampler = BalancedBatchSampler(labels, 8, seed=0)
    batches = epoch_batches(sampler, 0)
    assert len({tuple(labels[i] for i in batch) for batch in batches}) > 50
    assert all(collections.Counter(labels[i] for i in b) == {0: 2, 1: 2, 2: 2, 3: 2}
               for b in batches)
    assert class_counts_of(labels, batches).tolist() == [400] * 4
    sampler.set_epoch(0)
    iterator = iter(sampler)
    next(iterator)
    restored = BalancedBatchSampler(labels, 8, seed=0)
    restored.load_state_dict(sampler.state_dict())
    assert list(restored) == batches[1:]


@pytest.mark.parametrize("counts, batch_size, samples_per_epoch",
                         [((50, 7, 20, 1), 8, 40), ((30, 30, 3), 4, 11), ((17, 2), 1, 5),
                          ((100, 40, 9), 16, 250)])
def test_buffers_carry_over_epochs(counts, batch_size, samples_per_epoch):
    labels = make_labels(counts)
    sampler = BalancedBatchSampler(labels, batch_size, seed=1, samples_per_epoch=samples_per_epoch)
    usage = np.zeros(len(labels), dtype=np.int64)
    totals = np.zeros(len(counts), dtype=np.int64)
    epochs = 12
    for epoch in range(epochs):
        batches = epoch_batches(sampler, epoch)
        assert sum(map(len, batches)) == samples_per_epoch
        assert_buffer_invariant(labels, batches, usage)
        totals += class_counts_of(labels, batches)
    # Classes get the same number of draws, within one, over the run.
    assert totals.max() - totals.min() <= 1
    assert totals.sum() == epochs * samples_per_epoch


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(1, 40), min_size=2, max_size=7),
       batch_size=st.integers(1, 20), seed=st.integers(0, 2**64 - 1), cap=st.integers(0, 300),
       drop_last=st.booleans())
def test_properties_hold_for_random_label_sets(counts, batch_size, seed, cap, drop_last):
    labels = make_labels(counts)
    full = len(counts) * max(counts)
    samples = None if cap < batch_size else cap
    sampler = BalancedBatchSampler(labels, batch_size, seed=seed, samples_per_epoch=samples,
                                   drop_last=drop_last)
    expected = samples or full
    # drop_last extends a balanced epoch to whole batches (the buffers continue) instead of
    # dropping samples.
    expected_batches = -(-expected // batch_size)
    usage = np.zeros(len(labels), dtype=np.int64)
    for epoch in range(3):
        batches = epoch_batches(sampler, epoch)
        assert len(batches) == len(sampler) == expected_batches
        if drop_last:
            assert all(len(b) == batch_size for b in batches)
        assert all(0 <= i < len(labels) for b in batches for i in b)
        assert_buffer_invariant(labels, batches, usage)
        got = class_counts_of(labels, batches)
        assert got.max() - got.min() <= 1


def test_labels_of_any_hashable_kind():
    names = np.array(["flu", "cancer", "flu", "flu", "cold", "cold"], dtype=object)
    for labels in (names, list(names), pd.Series(names)):
        sampler = BalancedBatchSampler(labels, 3)
        assert sampler.classes.tolist() == ["cancer", "cold", "flu"]
        assert sampler.class_counts.tolist() == [1, 2, 3]
    sparse = [10, 10, 300, -4, 300, 10]
    sampler = BalancedBatchSampler(torch.tensor(sparse), 2)
    assert sampler.classes.tolist() == [-4, 10, 300]
    assert sampler.class_counts.tolist() == [1, 3, 2]
    column = np.array([[0], [1], [1], [1]])  # MedMNIST ships labels as (N, 1)
    assert BalancedBatchSampler(column, 2).class_counts.tolist() == [1, 3]
    mixed = BalancedBatchSampler(["a", 1, "1", 1], 2)  # 1 and "1" stay distinct classes
    assert mixed.class_counts.tolist() == [2, 1, 1] and set(mixed.classes) == {1, "1", "a"}
    huge_ids = np.array([2**40, 7, 2**40, 7, 7])  # too spread for a lookup table
    assert BalancedBatchSampler(huge_ids, 2).classes.tolist() == [7, 2**40]


def test_same_seed_same_batches_any_history():
    labels = make_labels([60, 9, 25, 4])
    fresh = BalancedBatchSampler(labels, 10, seed=42)
    walked = BalancedBatchSampler(labels, 10, seed=42)
    for epoch in range(7):
        epoch_batches(walked, epoch)
    assert epoch_batches(fresh, 7) == epoch_batches(walked, 7)
    assert epoch_batches(fresh, 7) == epoch_batches(fresh, 7)  # iterating twice
    assert epoch_batches(fresh, 7) != epoch_batches(fresh, 8)
    other_seed = BalancedBatchSampler(labels, 10, seed=43)
    assert epoch_batches(other_seed, 7) != epoch_batches(fresh, 7)


def test_seed_none_draws_a_recorded_fresh_seed():
    labels = make_labels([20, 5])
    first = BalancedBatchSampler(labels, 4, seed=None)
    second = BalancedBatchSampler(labels, 4, seed=None)
    assert isinstance(first.seed, int) and first.seed != second.seed
    same = BalancedBatchSampler(labels, 4, seed=first.seed)
    assert list(same) == list(first)
    assert first.state_dict()["settings"]["seed"] == first.seed


def test_large_epochs_match_small_block_generation():
    """The plan does not depend on the internal block size used to build it."""
    labels = make_labels([3000, 250, 40, 7, 1])
    sampler = BalancedBatchSampler(labels, 32, seed=9)
    expected = epoch_batches(sampler, 3)
    small = BalancedBatchSampler(labels, 32, seed=9)
    small._BLOCK_SLOTS = 64
    assert epoch_batches(small, 3) == expected


@pytest.mark.parametrize("num_replicas", [1, 2, 3])
@pytest.mark.parametrize("samples_per_epoch", [None, 70])
def test_resume_mid_epoch_yields_exactly_the_remaining_batches(num_replicas, samples_per_epoch):
    labels = make_labels([90, 12, 30, 5])
    kwargs = dict(seed=7, samples_per_epoch=samples_per_epoch, num_replicas=num_replicas)
    for rank in range(num_replicas):
        reference = BalancedBatchSampler(labels, 4, rank=rank, **kwargs)
        full = epoch_batches(reference, 2)
        for taken in (0, 1, 5, len(full) - 1, len(full)):
            sampler = BalancedBatchSampler(labels, 4, rank=rank, **kwargs)
            sampler.set_epoch(2)
            iterator = iter(sampler)
            for _ in range(taken):
                next(iterator)
            state = sampler.state_dict()
            restored = BalancedBatchSampler(labels, 4, rank=rank, **kwargs)
            restored.load_state_dict(state)
            if taken == len(full):  # a finished epoch: the position is the next epoch's start
                assert (state["epoch"], state["batches_done"]) == (3, 0)
                assert list(restored) == epoch_batches(reference, 3)
                continue
            assert (state["epoch"], state["batches_done"]) == (2, taken)
            assert restored.epoch == 2 and len(restored) == len(full) - taken
            restored.set_epoch(2)  # the usual loop calls set_epoch: the resume survives it
            assert list(restored) == full[taken:]
            # The next iteration of the same epoch is whole again, and set_epoch moves on.
            assert list(restored) == full
            restored.set_epoch(3)
            assert len(restored) == len(epoch_batches(reference, 3))


def test_len_of_a_resumed_iteration_stays_the_remaining_count():
    labels = make_labels([40, 8, 3])
    sampler = BalancedBatchSampler(labels, 5, seed=2)
    full = len(sampler)
    iterator = iter(sampler)
    for _ in range(10):
        next(iterator)
    restored = BalancedBatchSampler(labels, 5, seed=2)
    restored.load_state_dict(sampler.state_dict())
    assert len(restored) == full - 10
    resumed = iter(restored)
    next(resumed)
    assert len(restored) == full - 10  # during the resumed iteration
    assert len(list(resumed)) == full - 11
    assert len(restored) == full  # the next iteration is whole


def test_checkpoint_after_the_last_epoch_resumes_to_nothing():
    labels = make_labels([12, 3])
    schedule = FineTuneSchedule(total_epochs=2, finetune_epochs=1)
    sampler = BalancedBatchSampler(labels, 4, schedule=schedule)
    for epoch in range(2):
        epoch_batches(sampler, epoch)
    state = sampler.state_dict()
    assert (state["epoch"], state["batches_done"]) == (2, 0)
    restored = BalancedBatchSampler(labels, 4, schedule=FineTuneSchedule(2, 1))
    restored.load_state_dict(state)
    assert list(range(restored.epoch, schedule.total_epochs)) == []  # nothing is run twice


def test_custom_schedule_without_state_dict_can_be_resumed():
    class EveryThird:
        def phase(self, epoch):
            return "finetune" if epoch % 3 == 2 else "balanced"

    labels = make_labels([30, 5])
    sampler = BalancedBatchSampler(labels, 4, schedule=EveryThird())
    sampler.set_epoch(2)
    iterator = iter(sampler)
    next(iterator)
    restored = BalancedBatchSampler(labels, 4, schedule=EveryThird())
    restored.load_state_dict(sampler.state_dict())
    assert list(restored) == list(iterator)

    class Other(EveryThird):
        pass

    with pytest.raises(ValueError, match="schedule: saved 'test_custom_schedule"):
        BalancedBatchSampler(labels, 4, schedule=Other()).load_state_dict(sampler.state_dict())


def test_resume_in_finetune_epoch_and_set_epoch_discards_resume():
    labels = make_labels([40, 8, 3])
    schedule = FineTuneSchedule(total_epochs=4, finetune_epochs=1)
    sampler = BalancedBatchSampler(labels, 5, seed=2, schedule=schedule)
    full = epoch_batches(sampler, 3)
    sampler.set_epoch(3)
    iterator = iter(sampler)
    next(iterator), next(iterator)
    state = sampler.state_dict()
    restored = BalancedBatchSampler(labels, 5, seed=2, schedule=FineTuneSchedule(4, 1))
    restored.load_state_dict(state)
    assert list(restored) == full[2:]
    restored.load_state_dict(state)
    restored.set_epoch(0)  # another epoch: start it from its beginning
    assert list(restored) == epoch_batches(BalancedBatchSampler(labels, 5, seed=2,
                                                                schedule=schedule), 0)


@pytest.mark.parametrize("num_replicas", [2, 3, 4])
@pytest.mark.parametrize("drop_last", [False, True])
def test_distributed_shards_whole_balanced_batches(num_replicas, drop_last):
    counts = [45, 11, 20, 3]
    labels = make_labels(counts)
    batch_size = 6
    samplers = [BalancedBatchSampler(labels, batch_size, seed=11, drop_last=drop_last,
                                     num_replicas=num_replicas, rank=rank)
                for rank in range(num_replicas)]
    usage = np.zeros(len(labels), dtype=np.int64)
    for epoch in range(4):
        check_distributed_epoch(labels, counts, samplers, epoch, usage)


def check_distributed_epoch(labels, counts, samplers, epoch, usage):
    num_replicas, batch_size = len(samplers), samplers[0].batch_size
    shards = [epoch_batches(sampler, epoch) for sampler in samplers]
    lengths = {len(shard) for shard in shards}
    assert len(lengths) == 1, "every rank yields the same number of batches"
    per_rank = lengths.pop()
    full = len(counts) * max(counts)
    assert per_rank == -(-full // (batch_size * num_replicas))  # extended, whatever drop_last
    # Interleaving the ranks rebuilds the global plan: whole, full, balanced batches.
    plan = [shards[g % num_replicas][g // num_replicas] for g in range(per_rank * num_replicas)]
    assert all(len(batch) == batch_size for batch in plan)
    for batch in plan:
        per_class = collections.Counter(labels[i] for i in batch)
        assert set(per_class.values()) <= {1, 2}
    totals = class_counts_of(labels, plan)
    assert totals.max() - totals.min() <= 1 and totals.sum() == per_rank * num_replicas * batch_size
    used = collections.Counter(i for batch in plan for i in batch)
    assert all(used[i] >= 1 for i in range(len(labels))), "every sample, in every epoch"
    assert_buffer_invariant(labels, plan, usage)


def test_finetune_epochs_run_at_true_frequencies():
    counts = [70, 20, 5]
    labels = make_labels(counts)
    schedule = FineTuneSchedule(total_epochs=5, finetune_epochs=2)
    sampler = BalancedBatchSampler(labels, 8, seed=0, schedule=schedule)
    phases = []
    for epoch in range(5):
        sampler.set_epoch(epoch)
        phases.append(sampler.phase)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        if sampler.phase == "finetune":
            flat = [i for b in batches for i in b]
            assert sorted(flat) == list(range(len(labels)))  # one pass, no replacement
            assert len(batches) == math.ceil(len(labels) / 8)
            assert flat != sorted(flat)  # shuffled
        else:
            assert class_counts_of(labels, batches).tolist() == [70, 70, 70]
    assert phases == ["balanced"] * 3 + ["finetune"] * 2
    sampler.set_epoch(3)
    sampler_4 = list(sampler)
    sampler.set_epoch(4)
    assert list(sampler) != sampler_4


def test_finetune_sharding_pads_to_whole_batches():
    labels = make_labels([23, 7])
    schedule = FineTuneSchedule(total_epochs=1, finetune_epochs=1)
    shards = [epoch_batches(BalancedBatchSampler(labels, 4, schedule=schedule, num_replicas=3,
                                                 rank=rank), 0) for rank in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]
    flat = [i for shard in shards for batch in shard for i in batch]
    assert len(flat) == 36 and set(flat) == set(range(30))  # all 30 once, 6 padded repeats
    assert collections.Counter(collections.Counter(flat).values()) == {1: 24, 2: 6}


def test_balanced_epochs_before_finetune_advance_the_buffers():
    """Buffers only move in balanced epochs: a run with a fine-tune epoch in the middle
    (custom schedule) continues the buffers where the previous balanced epoch stopped."""

    class Alternating:
        def phase(self, epoch):
            return "finetune" if epoch % 2 else "balanced"

    labels = make_labels([30, 4, 9])
    sampler = BalancedBatchSampler(labels, 3, seed=4, schedule=Alternating(), samples_per_epoch=21)
    usage = np.zeros(len(labels), dtype=np.int64)
    for epoch in range(0, 12, 2):
        assert_buffer_invariant(labels, epoch_batches(sampler, epoch), usage)


def test_works_as_dataloader_batch_sampler_with_workers():
    labels = make_labels([64, 8, 16])
    dataset = TensorDataset(torch.arange(len(labels)), torch.from_numpy(labels))
    sampler = BalancedBatchSampler(labels, 12, seed=0)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=2)
    sampler.set_epoch(1)
    expected = list(sampler)
    seen = [indices.tolist() for indices, _ in loader]
    assert seen == expected
    assert len(loader) == len(sampler)


def test_state_dict_roundtrip_through_torch_save(tmp_path):
    labels = make_labels([20, 5])
    sampler = BalancedBatchSampler(labels, 4, seed=3)
    sampler.set_epoch(2)
    iterator = iter(sampler)
    next(iterator)
    torch.save({"sampler": sampler.state_dict()}, tmp_path / "ckpt.pt")
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)["sampler"]
    restored = BalancedBatchSampler(labels, 4, seed=3)
    restored.load_state_dict(state)
    assert list(restored) == list(iterator)


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("labels, error, match", [
    ([], ValueError, "labels is empty"),
    ([3, 3, 3], ValueError,
     r"labels holds a single class \(3\); balancing needs at least two: pass the labels of a "
     r"data set with two or more classes \(for a subset, take a larger or stratified one\)"),
    (np.array([3, 3]), ValueError, r"single class \(3\)"),  # not np.int64(3)
    (torch.tensor([5, 5]), ValueError, r"single class \(5\)"),
    (np.array(["a", "a"]), ValueError, r"single class \('a'\)"),  # not np.str_('a')
    ([0, 1, None, 1], ValueError, r"missing label \(None\) at position 2"),
    ([0.0, 1.0, float("nan")], ValueError, r"missing label \(nan\) at position 2"),
    (np.array([0.0, np.nan]), ValueError, r"missing label \(nan\) at position 1"),
    ([0, 1, pd.NA], ValueError, r"missing label \(<NA>\) at position 2"),
    (pd.Series([0, pd.NA, 1], dtype="Int64"), ValueError, r"missing label \(<NA>\) at position 1"),
    (pd.Series([True, pd.NA], dtype="boolean"), ValueError, r"missing label \(<NA>\) at"),
    (pd.Series(["a", None], dtype="string[python]"), ValueError, r"missing label \(<NA>\) at"),
    (np.zeros((4, 2)), ValueError, "Multi-label targets are not supported"),
    ([[0, 1], [1]], ValueError, "Multi-label targets are not supported"),
    (np.zeros((2, 2, 2)), ValueError, r"shape \(2, 2, 2\)"),
    (pd.DataFrame({"a": [0, 1]}), TypeError, "pass one column"),
    (5, TypeError, "1-D sequence of labels"),
    ({0: 1}, TypeError, "1-D sequence of labels"),
])
def test_bad_labels(labels, error, match):
    with pytest.raises(error, match=match):
        BalancedBatchSampler(labels, 2)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(batch_size=0), ValueError, "batch_size should be an integer >= 1, but got batch_size=0"),
    (dict(batch_size=-3), ValueError, "batch_size=-3"),
    (dict(batch_size=2.5), TypeError, "batch_size should be an integer, but got batch_size=2.5"),
    (dict(batch_size=True), TypeError, "batch_size should be an integer"),
    (dict(batch_size=4, seed=-1), ValueError, "seed=-1"),
    (dict(batch_size=4, seed="1"), TypeError, "seed should be an integer"),
    (dict(batch_size=4, drop_last=1), TypeError, "drop_last should be True or False"),
    (dict(batch_size=4, samples_per_epoch=3), ValueError,
     "samples_per_epoch should be an integer >= 4, but got samples_per_epoch=3"),
    (dict(batch_size=4, num_replicas=0), ValueError,
     r"num_replicas should be an integer >= 1, but got num_replicas=0; pass the number of "
     r"processes sharing the data \(the world size\), or None to read it from the initialised "
     r"process group"),
    (dict(batch_size=4, num_replicas=2, rank=1.0), TypeError,
     r"rank should be an integer, but got rank=1.0 of type float; pass the process's rank"),
    (dict(batch_size=4, num_replicas=2, rank=2), ValueError,
     r"rank should be in \[0, num_replicas\) = \[0, 2\), but got rank=2"),
    (dict(batch_size=4, num_replicas=2, rank=-1), ValueError, "rank=-1"),
    (dict(batch_size=4, schedule="finetune"), TypeError, "schedule should have a phase"),
    (dict(batch_size=8, num_replicas=4, drop_last=True, schedule=FineTuneSchedule(2, 1)),
     ValueError, "a fine-tune epoch of 6 samples gives no batch per replica"),
])
def test_bad_settings(kwargs, error, match):
    with pytest.raises(error, match=match):
        BalancedBatchSampler([0, 0, 0, 1, 1, 2], **kwargs)


def test_bad_epochs():
    sampler = BalancedBatchSampler([0, 1, 1], 2, schedule=FineTuneSchedule(3, 1))
    with pytest.raises(ValueError, match=r"epoch should be an integer >= 0, but got epoch=-1; "
                       r"pass the 0-based number of the epoch about to start"):
        sampler.set_epoch(-1)
    with pytest.raises(ValueError, match="schedule covers epochs 0..2"):
        sampler.set_epoch(3)
    with pytest.raises(TypeError, match="epoch should be an integer"):
        sampler.set_epoch(1.0)

    class Broken:
        def phase(self, epoch):
            return "warmup"

    with pytest.raises(ValueError, match="returned 'warmup'"):
        BalancedBatchSampler([0, 1, 1], 2, schedule=Broken()).set_epoch(0)


def test_bad_state_dicts():
    labels = make_labels([10, 3])
    sampler = BalancedBatchSampler(labels, 2, seed=1)
    state = sampler.state_dict()
    with pytest.raises(ValueError, match="different labels"):
        BalancedBatchSampler(make_labels([10, 3], seed=1), 2, seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="other settings .*batch_size: saved 2, here 3"):
        BalancedBatchSampler(labels, 3, seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="seed: saved 1, here 2"):
        BalancedBatchSampler(labels, 2, seed=2).load_state_dict(state)
    with pytest.raises(ValueError, match="schedule"):
        BalancedBatchSampler(labels, 2, seed=1,
                             schedule=FineTuneSchedule(3, 1)).load_state_dict(state)
    with pytest.raises(ValueError, match=r"missing \['epoch'\]"):
        sampler.load_state_dict({k: v for k, v in state.items() if k != "epoch"})
    with pytest.raises(TypeError, match="state should be a dict"):
        sampler.load_state_dict([("epoch", 1)])
    with pytest.raises(ValueError, match="version"):
        sampler.load_state_dict({**state, "version": 99})
    with pytest.raises(ValueError, match="batches_done.*epoch 0 has 10 batches"):
        sampler.load_state_dict({**state, "batches_done": 10})
    with pytest.raises(ValueError, match=r"state\['batches_done'\] should be an integer >= 0, "
                       r"but got state\['batches_done'\]=-1; pass the dict that state_dict\(\) "
                       r"returned, unchanged"):
        sampler.load_state_dict({**state, "batches_done": -1})
    with pytest.raises(ValueError, match=r"state\['epoch'\]=-2; pass the dict that state_dict"):
        sampler.load_state_dict({**state, "epoch": -2})


def test_reshuffles_are_uniform_permutations():
    """Every reshuffle of a class is a uniformly random order: over 6,000 reshuffles of a class of
    4, each of the 24 orders appears about 250 times (chi-square, 23 degrees of freedom; the
    bound 60 is exceeded with probability about 4e-5 by a uniform shuffle, and by any shuffle
    that favours some orders by a few percent)."""
    labels = np.array([0] * 4 + [1] * 24000)  # class 0 is reshuffled 6,000 times per epoch
    sampler = BalancedBatchSampler(labels, 2, seed=3)
    order = [i for batch in epoch_batches(sampler, 0) for i in batch if labels[i] == 0]
    cycles = [tuple(order[k: k + 4]) for k in range(0, len(order), 4)]
    assert len(cycles) == 6000 and all(sorted(c) == [0, 1, 2, 3] for c in cycles)
    observed = np.array(list(collections.Counter(cycles).values()))
    assert len(observed) == 24
    chi2 = ((observed - 250.0) ** 2 / 250.0).sum()
    assert chi2 < 60, f"chi-square {chi2:.1f} over 24 orders"
    # Consecutive reshuffles are independent: the first element of the next order does not
    # depend on the last element of the previous one (16 cells, 5,999 pairs).
    pairs = collections.Counter((a[-1], b[0]) for a, b in itertools.pairwise(cycles))
    observed = np.array([pairs.get((x, y), 0) for x in range(4) for y in range(4)])
    expected = 5999 / 16
    assert ((observed - expected) ** 2 / expected).sum() < 45  # 15 dof, p about 1e-4


@pytest.mark.parametrize("split", [True, False])
def test_both_key_layouts_give_uniform_valid_reshuffles(monkeypatch, split):
    """Datasets above 2^32 samples take one raw word per sort key instead of half of one; that
    path is forced here on small data: the plan is still a valid balanced plan and its
    reshuffles are still uniform."""
    from balancer.samplers import _balanced

    if not split:
        monkeypatch.setattr(_balanced.ClassCycles, "_SPLIT_MAX_BITS", 0)
    labels = np.array([0] * 3 + [1] * 6000 + [2] * 5)
    sampler = BalancedBatchSampler(labels, 3, seed=11)  # one sample of each class per batch
    batches = epoch_batches(sampler, 1)
    assert class_counts_of(labels, batches).tolist() == [6000] * 3
    assert sampler._buffers()._split is split
    order = [i for batch in batches for i in batch if labels[i] == 0]
    cycles = collections.Counter(tuple(order[k: k + 3]) for k in range(0, 6000, 3))
    observed = np.array([cycles[p] for p in itertools.permutations(range(3))])
    assert observed.sum() == 2000
    chi2 = ((observed - 2000 / 6) ** 2 / (2000 / 6)).sum()
    assert chi2 < 25  # 5 degrees of freedom: p about 1e-4 for a uniform shuffle


def test_uint64_labels_beyond_int64_keep_their_values_and_order():
    big = np.uint64(2**63 + 5)
    labels = np.array([big, 3, big, 3, 7], dtype=np.uint64)
    sampler = BalancedBatchSampler(labels, 3, seed=0)
    assert sampler.classes.dtype == np.uint64
    assert sampler.classes.tolist() == [3, 7, 2**63 + 5]
    assert sampler.class_counts.tolist() == [2, 1, 2]
    batches = epoch_batches(sampler, 0)
    drawn = collections.Counter(int(labels[i]) for batch in batches for i in batch)
    assert drawn == {3: 2, 7: 2, 2**63 + 5: 2}
