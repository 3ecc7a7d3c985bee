"""The balanced epoch's guarantees, in every epoch, for any number of replicas (issue 8).

G1: every sample of every class is drawn at least once per full balanced epoch; every sample of
    a largest class exactly once, plus at most the padding's extra draws.
G2: a class's draws are consecutive cycles (each a permutation of the class), across epochs,
    so after every global batch the use counts inside a class differ by at most one.
G3: padding for replicas never breaks G1 or G2 in later epochs.
Plus: random access (an epoch built directly equals the same epoch after its predecessors),
exact resume at every position, and loud misuse (set_epoch forgotten or called mid-iteration).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, Dataset

from balancer import BalancedBatchSampler, FineTuneSchedule, balance


def make_labels(counts, seed=0):
    labels = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(seed).shuffle(labels)
    return labels


def shards_of(samplers, epoch):
    shards = []
    for sampler in samplers:
        sampler.set_epoch(epoch)
        shards.append(list(sampler))
    return shards


def interleave(shards):
    """The global plan: rank r serves global batches r, r + R, r + 2R, ..."""
    assert len({len(shard) for shard in shards}) == 1, "every rank yields as many batches"
    return [shards[g % len(shards)][g // len(shards)] for g in range(len(shards[0]) * len(shards))]


def check_balanced_epoch(labels, counts, plan, usage, *, full_epoch=True):
    """G1 (if ``full_epoch``) on one epoch's global plan, and G2 batch by batch."""
    counts = np.asarray(counts)
    used = np.bincount([i for batch in plan for i in batch], minlength=len(labels))
    if full_epoch:
        assert used.min() >= 1, f"samples never drawn: {np.flatnonzero(used == 0).tolist()}"
        padding = used.sum() - len(counts) * counts.max()
        for cls in np.flatnonzero(counts == counts.max()):
            members = used[labels == cls]
            extra = int(members.sum()) - len(members)  # the padding's draws of this class
            assert 0 <= extra <= -(-padding // len(counts))
            if padding == 0:
                assert (members == 1).all()
    for batch in plan:
        np.add.at(usage, batch, 1)  # a batch may hold a small class's sample twice
        for cls in range(len(counts)):
            within = usage[labels == cls]
            assert within.max() - within.min() <= 1, f"class {cls} uses {within.min()}..{within.max()}"


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(1, 60), min_size=2, max_size=6),
       batch_size=st.integers(1, 16), num_replicas=st.integers(1, 4),
       drop_last=st.booleans(), seed=st.integers(0, 2**32))
def test_every_epoch_covers_every_sample_for_any_replicas(counts, batch_size, num_replicas,
                                                          drop_last, seed):
    labels = make_labels(counts, seed % 7)
    samplers = [BalancedBatchSampler(labels, batch_size, seed=seed, drop_last=drop_last,
                                     num_replicas=num_replicas, rank=rank)
                for rank in range(num_replicas)]
    usage = np.zeros(len(labels), dtype=np.int64)
    for epoch in range(5):
        plan = interleave(shards_of(samplers, epoch))
        if num_replicas > 1 or drop_last:
            assert all(len(batch) == batch_size for batch in plan)
        check_balanced_epoch(labels, counts, plan, usage)


@pytest.mark.parametrize("num_replicas", [1, 2, 3])
def test_reported_ddp_case_covers_the_largest_class_in_later_epochs(num_replicas):
    # Before the fix, 9 / 17 / 23 of the 301 were never drawn in epochs 1 / 2 / 3 (2 replicas).
    counts = [301, 50, 13]
    labels = make_labels(counts)
    samplers = [BalancedBatchSampler(labels, 15, seed=0, num_replicas=num_replicas, rank=r)
                for r in range(num_replicas)]
    usage = np.zeros(len(labels), dtype=np.int64)
    for epoch in range(4):
        check_balanced_epoch(labels, counts, interleave(shards_of(samplers, epoch)), usage)


def test_reported_large_second_class_is_covered_in_every_epoch():
    # Before the fix, 93-110 of the 800 were never drawn in epochs 1, 2 and 5.
    counts = [1000, 800, 50]
    labels = make_labels(counts)
    sampler = BalancedBatchSampler(labels, 8, seed=0)
    usage = np.zeros(len(labels), dtype=np.int64)
    for epoch in range(6):
        sampler.set_epoch(epoch)
        check_balanced_epoch(labels, counts, list(sampler), usage)


@settings(max_examples=25, deadline=None)
@given(counts=st.lists(st.integers(1, 40), min_size=2, max_size=5),
       batch_size=st.integers(1, 9), num_replicas=st.integers(1, 3),
       finetune_epochs=st.integers(0, 2), balanced_epochs=st.integers(1, 4))
def test_guarantees_hold_across_a_schedule(counts, batch_size, num_replicas, finetune_epochs,
                                           balanced_epochs):
    labels = make_labels(counts)
    schedule = FineTuneSchedule(balanced_epochs + finetune_epochs, finetune_epochs)
    samplers = [BalancedBatchSampler(labels, batch_size, seed=1, schedule=schedule,
                                     num_replicas=num_replicas, rank=r)
                for r in range(num_replicas)]
    usage = np.zeros(len(labels), dtype=np.int64)
    for epoch in range(schedule.total_epochs):
        plan = interleave(shards_of(samplers, epoch))
        if schedule.phase(epoch) == "balanced":
            check_balanced_epoch(labels, counts, plan, usage)
        else:  # one pass at the true frequencies, padded by repeating its first samples
            flat = [i for batch in plan for i in batch]
            assert sorted(flat[:len(labels)]) == list(range(len(labels)))
            assert flat[len(labels):] == flat[:len(flat) - len(labels)]


@settings(max_examples=25, deadline=None)
@given(counts=st.lists(st.integers(1, 30), min_size=2, max_size=5),
       batch_size=st.integers(1, 8), cap=st.integers(8, 120), num_replicas=st.integers(1, 3))
def test_capped_epochs_cover_the_classes_that_fit(counts, batch_size, cap, num_replicas):
    """With samples_per_epoch = S, every class of at most S // C samples is still covered in
    every epoch; G2 holds for all classes."""
    labels = make_labels(counts)
    cap = max(cap, batch_size)
    samplers = [BalancedBatchSampler(labels, batch_size, seed=2, samples_per_epoch=cap,
                                     num_replicas=num_replicas, rank=r)
                for r in range(num_replicas)]
    usage = np.zeros(len(labels), dtype=np.int64)
    for epoch in range(4):
        plan = interleave(shards_of(samplers, epoch))
        check_balanced_epoch(labels, counts, plan, usage, full_epoch=False)
        used = np.bincount([i for batch in plan for i in batch], minlength=len(labels))
        for cls, count in enumerate(counts):
            if count <= cap // len(counts):
                assert used[labels == cls].min() >= 1


@settings(max_examples=30, deadline=None)
@given(counts=st.lists(st.integers(1, 50), min_size=2, max_size=5),
       batch_size=st.integers(1, 12), num_replicas=st.integers(1, 3), epoch=st.integers(0, 6))
def test_any_epoch_directly_equals_the_same_epoch_after_its_predecessors(counts, batch_size,
                                                                         num_replicas, epoch):
    labels = make_labels(counts)
    for rank in range(num_replicas):
        walked = BalancedBatchSampler(labels, batch_size, seed=9, num_replicas=num_replicas,
                                      rank=rank)
        for e in range(epoch + 1):
            walked.set_epoch(e)
            batches = list(walked)
        direct = BalancedBatchSampler(labels, batch_size, seed=9, num_replicas=num_replicas,
                                      rank=rank)
        direct.set_epoch(epoch)
        assert list(direct) == batches


@settings(max_examples=15, deadline=None)
@given(counts=st.lists(st.integers(1, 40), min_size=2, max_size=4),
       batch_size=st.integers(1, 8), num_replicas=st.integers(1, 3))
def test_resume_at_every_position_of_several_epochs(counts, batch_size, num_replicas):
    labels = make_labels(counts)
    schedule = FineTuneSchedule(3, 1)

    def build(rank):
        return BalancedBatchSampler(labels, batch_size, seed=4, schedule=schedule,
                                    num_replicas=num_replicas, rank=rank)

    for rank in range(num_replicas):
        sampler = build(rank)
        for epoch in range(3):
            sampler.set_epoch(epoch)
            full = list(sampler)
            for done in range(len(full)):
                sampler.set_epoch(epoch)
                iterator = iter(sampler)
                for _ in range(done):
                    next(iterator)
                restored = build(rank)
                restored.load_state_dict(sampler.state_dict())
                assert restored.epoch == epoch and len(restored) == len(full) - done
                assert list(restored) == full[done:]


# ---------------------------------------------------------------------- misuse made loud
def test_iterating_an_epoch_again_without_set_epoch_warns_once():
    sampler = BalancedBatchSampler(make_labels([10, 3]), 4, schedule=FineTuneSchedule(3, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first = list(sampler)  # epoch 0, no set_epoch: the default epoch, no warning
    with pytest.warns(UserWarning, match=r"epoch 0 is being iterated again without set_epoch\(\)"
                                         r".*never reaches its fine-tune phase.*"
                                         r"loader.set_epoch\(epoch\)"):
        assert list(sampler) == first
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        list(sampler)  # once is enough
        for epoch in range(3):  # the right loop never warns
            sampler.set_epoch(epoch)
            list(sampler)


def test_the_loop_with_set_epoch_and_a_resumed_loop_do_not_warn():
    labels = make_labels([10, 3])
    sampler = BalancedBatchSampler(labels, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sampler.set_epoch(0)
        list(sampler)
        sampler.set_epoch(0)  # an explicit set_epoch, even to the same epoch, is intent
        list(sampler)
        sampler.set_epoch(1)
        iterator = iter(sampler)
        next(iterator)
        restored = BalancedBatchSampler(labels, 4)
        restored.load_state_dict(sampler.state_dict())
        list(restored)


class Indexed(Dataset):
    def __init__(self, labels):
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return index


def test_loader_warns_when_set_epoch_is_forgotten():
    loader = balance(DataLoader(Indexed(make_labels([10, 3])), batch_size=4))
    list(loader)
    with pytest.warns(UserWarning, match="without set_epoch"):
        list(loader)


def test_set_epoch_during_an_iteration_keeps_the_state_consistent():
    labels = make_labels([20, 5])
    sampler = BalancedBatchSampler(labels, 4)
    iterator = iter(sampler)
    next(iterator)
    next(iterator)
    sampler.set_epoch(1)
    state = sampler.state_dict()
    assert (state["epoch"], state["batches_done"]) == (1, 0)
    with pytest.raises(RuntimeError, match=r"ended by set_epoch\(1\).*start a new iteration"):
        next(iterator)
    assert sampler.state_dict()["batches_done"] == 0  # the refused batch was not counted
    restored = BalancedBatchSampler(labels, 4)
    restored.load_state_dict(state)
    sampler.set_epoch(1)
    assert list(restored) == list(sampler)  # nothing of epoch 1 is skipped


@pytest.mark.parametrize("num_workers", [0, 2])
def test_loader_set_epoch_during_an_iteration_keeps_the_state_consistent(num_workers):
    labels = make_labels([20, 5])
    loader = balance(DataLoader(Indexed(labels), batch_size=4, num_workers=num_workers))
    iterator = iter(loader)
    next(iterator)
    loader.set_epoch(1)
    with pytest.raises(RuntimeError, match=r"ended by set_epoch\(1\)"):
        next(iterator)
    state = loader.state_dict()
    assert (state["epoch"], state["batches_done"]) == (1, 0)
    del iterator


def test_in_order_false_with_workers_is_refused():
    plain = DataLoader(Indexed(make_labels([10, 3])), batch_size=4, num_workers=2,
                       in_order=False)
    with pytest.raises(ValueError, match=r"in_order=False with num_workers > 0.*in_order=True"):
        balance(plain)
    balance(DataLoader(Indexed(make_labels([10, 3])), batch_size=4, in_order=False))  # no workers


# ---------------------------------------------------------------------- labels
def test_bfloat16_and_whole_float_labels_are_class_indices():
    labels = [0, 2, 2, 1, 0, 2]
    for form in (torch.tensor(labels, dtype=torch.bfloat16), torch.tensor(labels).half(),
                 np.asarray(labels, dtype=np.float32)):
        sampler = BalancedBatchSampler(form, 3)
        assert sampler.classes.tolist() == [0, 1, 2]
        assert sampler.class_counts.tolist() == [2, 1, 3]


@pytest.mark.parametrize("labels, match", [
    (torch.rand(100, generator=torch.Generator().manual_seed(0)),
     r"labels holds non-integer floats \(0\.49.* at position 0, 100 in all\).*continuous.*"
     r"labels\.round\(\)\.long\(\)"),
    (np.array([0.0, 1.0, 0.5]), r"non-integer floats \(0\.5 at position 2, 1 in all\)"),
    (np.array([0.0, 1.0, np.inf]), r"non-integer floats \(inf at position 2"),
    (pd.Series([["Effusion", "Mass"], ["Mass"], []]),
     r"labels holds a list at position 0 \(\['Effusion', 'Mass'\]\).*multi-label"),
])
def test_labels_that_are_not_classes_get_clear_errors(labels, match):
    with pytest.raises(ValueError, match=match):
        BalancedBatchSampler(labels, 2)


# ---------------------------------------------------------------------- index arrays
@pytest.mark.parametrize("num_replicas", [1, 3])
def test_index_arrays_are_the_list_batches(num_replicas):
    labels = make_labels([300, 41, 7, 2])
    schedule = FineTuneSchedule(3, 1)

    def batches(batch_type, rank):
        sampler = BalancedBatchSampler(labels, 13, seed=5, schedule=schedule,
                                       num_replicas=num_replicas, rank=rank,
                                       batch_type=batch_type)
        out = []
        for epoch in range(3):
            sampler.set_epoch(epoch)
            out.append(list(sampler))
        return out

    for rank in range(num_replicas):
        lists = batches("list", rank)
        for batch_type, kind in (("numpy", np.ndarray), ("tensor", torch.Tensor)):
            arrays = batches(batch_type, rank)
            for epoch_lists, epoch_arrays in zip(lists, arrays, strict=True):
                assert all(isinstance(b, kind) and b.dtype in (np.int64, torch.int64)
                           for b in epoch_arrays)
                assert [b.tolist() for b in epoch_arrays] == epoch_lists


class ArrayIndexed(Indexed):
    supports_index_arrays = True

    def __getitems__(self, indices):
        assert isinstance(indices, np.ndarray)
        return [int(i) for i in indices]


def test_balance_hands_index_arrays_only_to_datasets_that_declare_it():
    labels = make_labels([30, 7])
    declared = balance(DataLoader(ArrayIndexed(labels), batch_size=4))
    assert declared.batch_sampler.batch_type == "numpy"
    plain = balance(DataLoader(Indexed(labels), batch_size=4))
    assert plain.batch_sampler.batch_type == "list"
    declared.set_epoch(0)
    plain.set_epoch(0)
    assert [b.tolist() for b in declared] == [b.tolist() for b in plain]
    forced = balance(DataLoader(ArrayIndexed(labels), batch_size=4), batch_type="list")
    assert forced.batch_sampler.batch_type == "list"


def test_bad_batch_type():
    with pytest.raises(ValueError, match=r"batch_type should be one of \('list', 'numpy', "
                                         r"'tensor'\), but got batch_type='array'"):
        BalancedBatchSampler([0, 1, 1], 2, batch_type="array")


@pytest.mark.parametrize("num_replicas", [1, 2])
def test_total_batches_is_what_the_epochs_yield(num_replicas):
    labels = make_labels([50, 9, 4])
    schedule = FineTuneSchedule(4, 2)
    loader = balance(DataLoader(Indexed(labels), batch_size=5), schedule=schedule)
    samplers = [BalancedBatchSampler(labels, 5, schedule=schedule, num_replicas=num_replicas,
                                     rank=r) for r in range(num_replicas)]
    for sampler in samplers:
        yielded = sum(len(shard) for shard in [shards_of([sampler], e)[0] for e in range(4)])
        assert sampler.total_batches() == sampler.total_batches(4) == yielded
        # 150 balanced samples in batches of 5, dealt to the ranks
        assert sampler.total_batches(2) == 2 * 30 // num_replicas
    loader.set_epoch(0)
    assert loader.total_batches() == 2 * 30 + 2 * 13  # 63 samples in a fine-tune epoch: 13
    assert loader.total_batches() != len(loader) * 4  # the phase changes the length
    with pytest.raises(ValueError, match=r"total_batches\(\) needs epochs=N"):
        BalancedBatchSampler(labels, 5).total_batches()
    with pytest.raises(ValueError, match=r"epochs should be an integer >= 0, but got epochs=-1"):
        samplers[0].total_batches(-1)


def test_set_epoch_to_the_running_epoch_keeps_the_position():
    labels = make_labels([20, 5])
    sampler = BalancedBatchSampler(labels, 4)
    full = list(sampler)
    sampler.set_epoch(0)
    iterator = iter(sampler)
    next(iterator)
    next(iterator)
    sampler.set_epoch(0)  # the running epoch: nothing changes, the iteration goes on
    assert sampler.state_dict()["batches_done"] == 2
    assert list(iterator) == full[2:]
