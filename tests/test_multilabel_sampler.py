"""Invariants of the multi-label samplers: determinism, random access to epochs, resume at every
position, equal shards per rank, coverage, repeat-factor rounding, the spread reached on
ChestX-ray14, fine-tune epochs and every error path."""

from __future__ import annotations

import collections
import math

import numpy as np
import pandas as pd
import pytest
import torch
from helpers.multilabel import check_resumes_everywhere, matrices
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, TensorDataset

from balancer import (
    FineTuneSchedule,
    MultiLabelBalancedSampler,
    RepeatFactorSampler,
    balance,
    labels_of,
    load_chestxray14_labels,
)
from balancer.labels import encode_multilabels
from balancer.samplers._label_balanced import Buckets, balanced_pattern


def epoch_batches(sampler, epoch):
    sampler.set_epoch(epoch)
    return list(sampler)


def global_plan(shards):
    """Interleave the ranks' batches back into the global plan (rank r took batches r, r+R...)."""
    replicas = len(shards)
    return [shards[g % replicas][g // replicas] for g in range(len(shards[0]) * replicas)]


def build(kind, labels, batch_size, **kwargs):
    if kind == "balanced":
        return MultiLabelBalancedSampler(labels, batch_size, **kwargs)
    return RepeatFactorSampler(labels, batch_size, threshold=0.3, **kwargs)


@pytest.fixture(scope="module")
def chestxray():
    return load_chestxray14_labels()["Finding Labels"]


# ---------------------------------------------------------------------- both samplers
@settings(max_examples=25, deadline=None)
@given(matrix=matrices(), batch_size=st.integers(1, 9), replicas=st.integers(1, 3),
       epoch=st.integers(0, 5), seed=st.integers(0, 2**64 - 1), drop_last=st.booleans(),
       kind=st.sampled_from(["balanced", "rfs"]))
def test_determinism_random_access_and_equal_shards(matrix, batch_size, replicas, epoch, seed,
                                                    drop_last, kind):
    kwargs = dict(seed=seed, drop_last=drop_last, num_replicas=replicas)
    shards = []
    for rank in range(replicas):
        fresh = build(kind, matrix, batch_size, rank=rank, **kwargs)
        walked = build(kind, matrix, batch_size, rank=rank, **kwargs)
        for earlier in range(epoch):  # history does not matter: epochs are addressed directly
            epoch_batches(walked, earlier)
        batches = epoch_batches(fresh, epoch)
        assert batches == epoch_batches(walked, epoch) == epoch_batches(fresh, epoch)
        assert len(batches) == len(fresh)
        assert all(0 <= i < len(matrix) for batch in batches for i in batch)
        shards.append(batches)
    assert len({len(shard) for shard in shards}) == 1, "every rank yields as many batches"
    plan = global_plan(shards)
    length = fresh._balanced_length(epoch)
    if replicas > 1 or drop_last:  # full batches, the epoch extended to whole ones per rank
        assert all(len(batch) == batch_size for batch in plan)
        assert len(plan) == -(-length // (batch_size * replicas)) * replicas
    else:
        assert sum(map(len, plan)) == length


@settings(max_examples=15, deadline=None)
@given(matrix=matrices(max_rows=25), batch_size=st.integers(1, 6), replicas=st.integers(1, 3),
       finetune=st.booleans(), kind=st.sampled_from(["balanced", "rfs"]))
def test_resume_at_every_position_yields_exactly_the_rest(matrix, batch_size, replicas, finetune,
                                                          kind):
    if kind == "rfs" and finetune:
        assume(RepeatFactorSampler(matrix, 1, threshold=0.3).repeat_factors.max() > 1)
    schedule = FineTuneSchedule(3, 1) if finetune else None
    epoch = 2 if finetune else 1

    def make(rank):
        return build(kind, matrix, batch_size, seed=5, num_replicas=replicas, rank=rank,
                     schedule=schedule)

    for rank in range(replicas):
        check_resumes_everywhere(lambda r=rank: make(r), epoch, epoch_batches(make(rank), epoch))


@pytest.mark.parametrize("kind", ["balanced", "rfs"])
def test_finetune_epochs_are_one_pass_at_true_frequencies(kind, chestxray):
    labels = chestxray[:5000]
    schedule = FineTuneSchedule(total_epochs=3, finetune_epochs=1)
    sampler = build(kind, labels, 64, seed=1, schedule=schedule)
    balanced = epoch_batches(sampler, 1)
    finetune = epoch_batches(sampler, 2)
    flat = [i for batch in finetune for i in batch]
    assert sorted(flat) == list(range(5000)) and flat != sorted(flat)
    assert len(finetune) == math.ceil(5000 / 64)
    assert sampler.phase == "finetune"
    assert sum(map(len, balanced)) == sampler._balanced_length(1)
    assert sampler.total_batches() == 2 * len(balanced) + len(finetune)


@pytest.mark.parametrize("kind", ["balanced", "rfs"])
def test_works_as_dataloader_batch_sampler_with_workers(kind, chestxray):
    labels = chestxray[:3000]
    dataset = TensorDataset(torch.arange(3000))
    sampler = build(kind, labels, 50, seed=0)
    sampler.set_epoch(3)
    expected = list(sampler)
    sampler.set_epoch(3)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=2)
    assert [indices.tolist() for (indices,) in loader] == expected


# ---------------------------------------------------------------------- label-balanced
@settings(max_examples=30, deadline=None)
@given(matrix=matrices(), batch_size=st.integers(1, 8), replicas=st.integers(1, 3),
       epochs=st.integers(1, 6), samples=st.one_of(st.none(), st.integers(8, 120)))
def test_coverage_rule(matrix, batch_size, replicas, epochs, samples):
    """After E balanced epochs of S slots, bucket k has drawn D_k = bucket_draws(E)[k] samples
    (the stream's first E S slots, D summing to E S), so every sample has been drawn at least
    floor(D_k / n_k) times for every bucket k holding it; without padding (one replica, the
    default drop_last) at most sum_k ceil(D_k / n_k) times."""
    samplers = [MultiLabelBalancedSampler(matrix, batch_size, seed=3, samples_per_epoch=samples,
                                          num_replicas=replicas, rank=r) for r in range(replicas)]
    used = np.zeros(len(matrix), dtype=np.int64)
    for epoch in range(epochs):
        plan = global_plan([epoch_batches(s, epoch) for s in samplers])
        np.add.at(used, [i for batch in plan for i in batch], 1)
    sampler = samplers[0]
    draws = sampler.bucket_draws(epochs)
    slots = sampler._balanced_length(0)
    assert draws.sum() == epochs * slots  # every slot of the stream is one bucket's draw
    assert sum(map(len, plan)) >= slots
    buckets = Buckets(encode_multilabels(matrix))
    lower = np.zeros(len(matrix), dtype=np.int64)
    upper = np.zeros(len(matrix), dtype=np.int64)
    for k in range(buckets.num_buckets):
        members = buckets.members[buckets.starts[k]: buckets.starts[k + 1]]
        n = len(members)
        lower[members] = np.maximum(lower[members], draws[k] // n)
        upper[members] += -(-draws[k] // n)
    assert (used >= lower).all()
    if replicas == 1:
        assert (used <= upper).all()


def test_buffers_draw_without_repeats_within_a_bucket_pass():
    """Without co-occurrence every slot's sample is its bucket's draw: a bucket's draws over
    consecutive epochs are whole permutations of its samples, one after the other, so after
    every batch the samples of a bucket have been used equally often, within one."""
    labels = ["a"] * 30 + ["b"] * 7 + ["No Finding"] * 50
    sampler = MultiLabelBalancedSampler(labels, 8, seed=2)
    members = (np.arange(30), np.arange(30, 37), np.arange(37, 87))
    usage = np.zeros(87, dtype=np.int64)
    for epoch in range(4):
        batches = epoch_batches(sampler, epoch)
        assert sum(map(len, batches)) == sampler.bucket_draws_per_epoch.sum() == 87
        for batch in batches:
            np.add.at(usage, batch, 1)
            for bucket in members:
                assert np.ptp(usage[bucket]) <= 1


def test_pattern_floor_gives_every_bucket_its_minimum_share():
    rng = np.random.default_rng(0)
    for _ in range(50):
        size = int(rng.integers(2, 10))
        shares = rng.random((size, size)) * (rng.random((size, size)) < 0.5)
        np.fill_diagonal(shares, 1.0)
        length = int(rng.integers(40, 2000))
        minimum = float(rng.random() / size)
        counts = np.bincount(balanced_pattern(shares, length, minimum), minlength=size)
        assert (counts >= math.floor(minimum * length) - 1).all()
        assert counts.sum() == length


def test_chestxray14_spread_is_bounded(chestxray):
    """On the real ChestX-ray14 labels: plain shuffling gives the labels positive rates from
    0.2% (Hernia) to 17.7% (Infiltration), 88x apart; the plan keeps them within 2.1x (every
    label at least 11%), and an epoch's batches reach the planned rates within 0.5 points."""
    targets = labels_of(pd.DataFrame({"f": chestxray}), "f", multilabel=True)
    plain = targets.counts / targets.num_samples
    assert plain.max() / plain.min() > 85
    sampler = MultiLabelBalancedSampler(targets, 64, seed=0)
    planned = sampler.label_positive_rate
    assert planned.min() >= 0.11 and planned.max() / planned.min() <= 2.1
    assert abs(sampler.no_finding_rate - np.median(planned)) < 0.01  # no finding is a bucket too
    flat = np.concatenate([np.asarray(b) for b in epoch_batches(sampler, 0)])
    assert len(flat) == targets.num_samples  # the default epoch: N slots
    rows = np.repeat(np.arange(targets.num_samples), targets.labels_per_sample)
    per_sample = np.zeros(targets.num_samples, dtype=np.int64)
    np.add.at(per_sample, flat, 1)
    reached = np.bincount(targets.indices, weights=per_sample[rows],
                          minlength=targets.num_labels) / len(flat)
    assert np.abs(reached - planned).max() < 0.005
    # Every batch of 64 holds a positive of each of the 14 findings, on average above 7.
    batches = epoch_batches(sampler, 1)[:200]
    dense = targets.dense(np.int8)
    per_batch = np.stack([dense[b].sum(axis=0) for b in batches])
    assert per_batch.mean(axis=0).min() > 7 and (per_batch.min(axis=0) >= 1).all()


def test_label_names_and_matrix_forms_agree(chestxray):
    labels = chestxray[:2000]
    targets = encode_multilabels(labels)
    dense = targets.dense(np.uint8)
    by_strings = MultiLabelBalancedSampler(labels, 16, seed=4)
    by_matrix = MultiLabelBalancedSampler(torch.from_numpy(dense), 16, seed=4,
                                          names=targets.names.tolist())
    assert by_strings.label_names.tolist() == by_matrix.label_names.tolist()
    assert epoch_batches(by_strings, 2) == epoch_batches(by_matrix, 2)
    assert by_strings.state_dict()["labels_fingerprint"] == by_matrix.state_dict()[
        "labels_fingerprint"]


# ---------------------------------------------------------------------- repeat-factor sampling
@settings(max_examples=30, deadline=None)
@given(matrix=matrices(min_labels=1), threshold=st.floats(0.01, 1.0), replicas=st.integers(1, 3),
       batch_size=st.integers(1, 7))
def test_repeat_factors_and_rounding(matrix, threshold, replicas, batch_size):
    n = len(matrix)
    samplers = [RepeatFactorSampler(matrix, batch_size, threshold=threshold, seed=9,
                                    num_replicas=replicas, rank=r) for r in range(replicas)]
    sampler = samplers[0]
    # r(c) = max(1, sqrt(t / f(c))), no finding its own category; r_i = max over i's categories.
    categories = np.concatenate((matrix, (matrix.sum(1) == 0)[:, None]), axis=1).astype(bool)
    categories = categories[:, categories.any(axis=0)]
    per_category = np.maximum(1.0, np.sqrt(threshold / categories.mean(axis=0)))
    np.testing.assert_allclose(sampler.category_repeat_factors, per_category)
    expected = np.array([per_category[row].max() for row in categories])
    np.testing.assert_allclose(sampler.repeat_factors, expected)
    whole = np.floor(expected)
    fraction = expected - whole
    extras = 0 if fraction.sum() <= 1e-12 else max(1, math.floor(fraction.sum() + 1e-9))
    assert sampler.samples_per_epoch == whole.sum() + extras
    epochs = 40
    total = np.zeros(n)
    for epoch in range(epochs):
        copies = sampler.copies(epoch)
        assert copies.sum() == sampler.samples_per_epoch  # every epoch the same length
        assert ((copies - whole >= 0) & (copies - whole <= 1)).all()
        plan = global_plan([epoch_batches(s, epoch) for s in samplers])
        drawn = np.bincount([i for batch in plan for i in batch], minlength=n)
        # The epoch holds exactly those copies, plus the slots that pad it to whole batches
        # per rank (its first slots again).
        padding = sum(map(len, plan)) - sampler.samples_per_epoch
        assert (drawn >= copies).all() and (drawn - copies).sum() == padding
        if replicas == 1:
            assert padding == 0
        total += copies
    if extras:
        # Over E epochs sample i gets E rho_i M / X extra copies, within the Weyl bound.
        target = epochs * (whole + fraction * extras / fraction.sum())
        assert np.abs(total - target).max() <= 2 + math.log(epochs)


@settings(max_examples=30, deadline=None)
@given(matrix=matrices(min_labels=1), batch_size=st.integers(2, 7), replicas=st.integers(1, 3),
       epoch=st.integers(0, 5), seed=st.integers(0, 2**32 - 1))
def test_repeat_factor_batches_are_slices_of_one_shuffled_epoch(matrix, batch_size, replicas,
                                                                epoch, seed):
    """An epoch is one shuffle of its copies, cut into batches as it comes: no second shuffle
    inside a batch. The epoch's order does not depend on the batch size, so batches of any size
    (every rank's, interleaved) laid end to end give the order of batches of size 1."""
    def order(size, ranks):
        shards = [epoch_batches(RepeatFactorSampler(matrix, size, threshold=0.5, seed=seed,
                                                    num_replicas=ranks, rank=r), epoch)
                  for r in range(ranks)]
        return [i for batch in global_plan(shards) for i in batch]

    one = order(1, 1)
    sized = order(batch_size, replicas)
    # Padding for whole batches per rank repeats the epoch's first slots (round and round).
    assert sized == np.resize(one, len(sized)).tolist()


def test_repeat_factor_state_of_the_first_revision_is_refused():
    """Revision 1 shuffled inside every batch again, so its batches differ: its state, saved
    without a revision, cannot resume here."""
    labels = ["a"] * 10 + ["b"] * 3 + ["a|b"] * 2
    rfs = RepeatFactorSampler(labels, 2, seed=1, threshold=0.5)
    state = rfs.state_dict()
    del state["settings"]["revision"]
    with pytest.raises(ValueError, match="revision: saved None, here 2"):
        RepeatFactorSampler(labels, 2, seed=1, threshold=0.5).load_state_dict(state)


def test_single_label_data_and_chestxray14_rates(chestxray):
    labels = np.repeat([0, 1, 2], [900, 90, 10])
    sampler = RepeatFactorSampler(labels, 10, threshold=0.1, seed=0)
    np.testing.assert_allclose(sampler.category_repeat_factors,
                               [1.0, math.sqrt(0.1 / 0.09), math.sqrt(0.1 / 0.01)])
    # 900 + 90 + 3 * 10 whole copies; fractional parts 90 * 0.054 + 10 * 0.162 = 6.49: 6 extras.
    assert sampler.samples_per_epoch == 1026
    for epoch in range(3):
        drawn = collections.Counter(labels[i] for b in epoch_batches(sampler, epoch) for i in b)
        assert drawn[0] == 900 and 90 <= drawn[1] <= 96 and 30 <= drawn[2] <= 36
    rfs = RepeatFactorSampler(chestxray, 64, threshold=0.1, seed=0)
    plain = encode_multilabels(chestxray).counts / len(chestxray)
    assert rfs.label_positive_rate.min() > 2 * plain.min()  # Hernia repeated 7x
    assert rfs.label_positive_rate.max() / rfs.label_positive_rate.min() < 17


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("labels, error, match", [
    (np.array([[0, 3], [1, 1]]), ValueError, r"labels should hold only 0 and 1"),
    (np.array([[1, 0], [1, 0]]), ValueError, r"label\(s\) \[1\] have no positive sample"),
    (np.ones((3, 1)), ValueError, r"L = 1 label\(s\).*use balancer.BalancedBatchSampler"),
    ([["a"], "a|b"], ValueError, r"labels mixes forms"),
    ([0, 1, 1, 2], TypeError, r"For one class per sample use balancer.BalancedBatchSampler"),
])
def test_bad_labels_for_label_balanced(labels, error, match):
    with pytest.raises(error, match=match):
        MultiLabelBalancedSampler(labels, 2)


@pytest.mark.parametrize("labels, error, match", [
    (np.array([[0, 3], [1, 1]]), ValueError, r"labels should hold only 0 and 1"),
    (np.array([[1, 0], [1, 0]]), ValueError, r"label\(s\) \[1\] have no positive sample"),
    ([["a"], "a|b"], ValueError, r"labels mixes forms"),
    ([0.5, 1.5], TypeError, r"labels\[0\] is a float"),
])
def test_bad_labels_for_repeat_factor(labels, error, match):
    with pytest.raises(error, match=match):
        RepeatFactorSampler(labels, 2)


def test_bad_settings():
    labels = ["a", "a|b", "No Finding", "b"]
    with pytest.raises(ValueError, match="samples_per_epoch should be an integer >= 4"):
        MultiLabelBalancedSampler(labels, 4, samples_per_epoch=3)
    with pytest.raises(ValueError, match=r"min_bucket_share should be in \[0, 1 / buckets\] = "
                                         r"\[0, 0.3333\] \(3 buckets: 2 labels and no finding\)"):
        MultiLabelBalancedSampler(labels, 2, min_bucket_share=0.5)
    with pytest.raises(TypeError, match="min_bucket_share should be a number"):
        MultiLabelBalancedSampler(labels, 2, min_bucket_share="1")
    with pytest.raises(ValueError, match="batch_size should be an integer >= 1"):
        MultiLabelBalancedSampler(labels, 0)
    with pytest.raises(ValueError, match=r"threshold should be in \(0, 1\], but got "
                                         r"threshold=0.0"):
        RepeatFactorSampler(labels, 2, threshold=0)
    with pytest.raises(TypeError, match="threshold should be a number"):
        RepeatFactorSampler(labels, 2, threshold="0.1")
    with pytest.raises(ValueError, match=r"L = 0 label\(s\)"):
        RepeatFactorSampler(["No Finding"] * 3, 2)
    with pytest.raises(ValueError, match=r"labels holds a single class"):
        RepeatFactorSampler([1, 1, 1], 2)


def test_finetune_schedule_on_rfs_where_it_does_not_apply():
    labels = ["a"] * 10 + ["b"] * 10
    with pytest.raises(ValueError, match=r"a fine-tune schedule does not apply here: with "
                       r"threshold=0.1 no category is rarer than the threshold \(the rarest has "
                       r"frequency 0.5\).*Raise threshold above 0.5, or use a schedule with "
                       r"finetune_epochs=0"):
        RepeatFactorSampler(labels, 2, threshold=0.1, schedule=FineTuneSchedule(3, 1))
    RepeatFactorSampler(labels, 2, threshold=0.1)  # without a schedule: a plain shuffled pass
    # A schedule with no fine-tune epoch only counts epochs: accepted, and every epoch is one
    # shuffled pass (what a framework adapter builds with finetune_epochs=0).
    counted = RepeatFactorSampler(labels, 2, threshold=0.1, schedule=FineTuneSchedule(3, 0))
    assert counted.total_batches() == 3 * 10
    for epoch in range(3):
        counted.set_epoch(epoch)
        assert sorted(i for batch in counted for i in batch) == list(range(20))


def test_state_from_another_plan_or_labels_is_refused():
    labels = ["a"] * 10 + ["b"] * 3 + ["a|b"] * 2
    balanced = MultiLabelBalancedSampler(labels, 2, seed=1)
    rfs = RepeatFactorSampler(labels, 2, seed=1, threshold=0.5)
    with pytest.raises(ValueError, match="plan: saved 'label-balanced', here 'repeat-factor'"):
        rfs.load_state_dict(balanced.state_dict())
    with pytest.raises(ValueError, match="different labels"):
        MultiLabelBalancedSampler(labels[::-1], 2, seed=1).load_state_dict(balanced.state_dict())
    with pytest.raises(ValueError, match="min_bucket_share: saved"):
        MultiLabelBalancedSampler(labels, 2, seed=1, min_bucket_share=0.0).load_state_dict(
            balanced.state_dict())


# ---------------------------------------------------------------------- balance()
class Scans(torch.utils.data.Dataset):
    """Stands in for an image dataset: item i is (i, its findings as a 0/1 vector)."""

    def __init__(self, findings):
        self.table = pd.DataFrame({"Finding Labels": findings})
        self.dense = torch.from_numpy(encode_multilabels(findings).dense())

    def __len__(self):
        return len(self.table)

    def __getitem__(self, index):
        return index, self.dense[index]


def test_balance_with_multilabel_samplers_resumes_exactly(chestxray):
    dataset = Scans(chestxray[:4000])
    plain = DataLoader(dataset, batch_size=32, shuffle=True, num_workers=1)
    loader = balance(plain, "Finding Labels", sampler="label-balanced", seed=3,
                     schedule=FineTuneSchedule(3, 1))
    assert isinstance(loader.batch_sampler, MultiLabelBalancedSampler)
    assert len(loader) == 125 and loader.batch_sampler.label_names[7] == "Hernia"
    loader.set_epoch(1)
    seen, positives = [], 0
    for step, (indices, targets) in enumerate(loader):
        seen.append(indices.tolist())
        positives = positives + targets.sum(dim=0)
        if step == 9:
            state = loader.state_dict()
    # Hernia: 23 of the 4,000 images, yet about 11% of the epoch's 4,000 slots (>= 400).
    assert positives[7] >= 400 and positives.min() >= 400
    resumed = balance(plain, "Finding Labels", sampler="label-balanced", seed=3,
                      schedule=FineTuneSchedule(3, 1))
    resumed.load_state_dict(state)
    assert [indices.tolist() for indices, _ in resumed] == seen[10:]
    rfs = balance(plain, labels=(dataset.table, "Finding Labels"), sampler=RepeatFactorSampler,
                  threshold=0.1)
    assert isinstance(rfs.batch_sampler, RepeatFactorSampler) and rfs.batch_sampler.threshold == 0.1
    with pytest.raises(ValueError, match="already balanced"):
        balance(rfs)


def test_balance_repeat_factor_on_single_label_targets():
    dataset = TensorDataset(torch.arange(100))
    dataset.targets = np.repeat([0, 1], [95, 5])
    loader = balance(DataLoader(dataset, batch_size=10), sampler="repeat-factor", threshold=0.2)
    assert loader.batch_sampler.category_repeat_factors.tolist() == [1.0, 2.0]
    assert sum(len(indices) for (indices,) in loader) == 105
    with pytest.raises(ValueError, match=r"sampler should be one of \['balanced', "
                                         r"'label-balanced', 'repeat-factor'\]"):
        balance(DataLoader(dataset, batch_size=10), sampler="rfs")
    with pytest.raises(TypeError, match=r"threshold is not an option of BalancedBatchSampler "
                                        r".*pass sampler='repeat-factor'"):
        balance(DataLoader(dataset, batch_size=10), threshold=0.2)


def chestxray_like(seed: int) -> np.ndarray:
    """Labels shaped like ChestX-ray14's: half the images have no finding, the other half carry
    each of L findings independently, frequencies decaying 10-100x from the commonest."""
    rng = np.random.default_rng(seed)
    num_labels, n = int(rng.integers(3, 15)), int(rng.integers(2000, 12000))
    top, ratio = rng.uniform(0.05, 0.2), rng.uniform(10, 100)
    frequency = top * np.exp(-np.log(ratio) * np.arange(num_labels) / (num_labels - 1))
    sick = rng.random(n) < 0.5
    matrix = (rng.random((n, num_labels)) < frequency / 0.5) & sick[:, None]
    matrix[0] = True  # every finding has a positive
    return matrix.astype(np.uint8)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_every_bucket_gets_its_share_on_chestxray_like_labels(seed):
    """The greedy raises the lowest count at every free slot, so with K buckets and a floor s,
    every label and no finding get at least (1 - K s) / K of the slots; the spread stays
    below 4x on these labels (co-occurrence is what lifts the common findings above target)."""
    matrix = chestxray_like(seed)
    sampler = MultiLabelBalancedSampler(matrix, 32, seed=0)
    buckets = matrix.shape[1] + 1
    floor_share = sampler.min_bucket_share
    rates = np.append(sampler.label_positive_rate, sampler.no_finding_rate)
    assert rates.min() >= 0.95 * (1 - buckets * floor_share) / buckets
    assert rates.max() / rates.min() < 4
    plain = matrix.mean(axis=0)
    assert rates[:-1].min() > plain.min()  # the rarest finding is drawn more than plainly


def test_floor_keeps_findings_that_come_with_others_in_the_plan(chestxray):
    """Without a floor the greedy never draws Atelectasis, Effusion or Infiltration directly
    (their positives arrive with other findings), so the 9,547 images whose only finding is
    Infiltration would never be seen in a balanced epoch; the default floor draws every bucket,
    and over 12 balanced epochs every image is drawn at least once."""
    targets = encode_multilabels(chestxray)
    names = targets.names.tolist()
    bare = MultiLabelBalancedSampler(targets, 64, seed=0, min_bucket_share=0.0)
    never = {names[k] for k in np.flatnonzero(bare.bucket_draws_per_epoch[:-1] == 0)}
    assert never == {"Atelectasis", "Effusion", "Infiltration"}
    sampler = MultiLabelBalancedSampler(targets, 64, seed=0)
    per_round, length = sampler.bucket_draws_per_round, sampler.pattern_length
    share = sampler.min_bucket_share
    assert share == 1 / 60 and length == 1024 and (per_round >= share * length - 1).all()
    buckets = Buckets(targets)
    epochs = 12  # ceil(R ceil(n_k / m_k) / S) <= 12 for every bucket
    assert all(math.ceil(length * math.ceil(n / m) / len(chestxray)) <= epochs
               for n, m in zip(buckets.counts, per_round, strict=True))
    used = np.zeros(len(chestxray), dtype=np.int64)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in sampler:
            used[batch] += 1  # repeats inside a batch are rare; coverage is what is checked
    assert (used >= 1).all()
