"""Single-label plan checks, index-only datasets and hypothesis strategies shared by the tests
of ``BalancedBatchSampler`` and ``balance()``.

The guarantees checked are those of docs/samplers.md: G1, every sample of a balanced epoch is drawn and every
class gets ``n_max`` draws (plus its share of the padding); G2, within a class the use counts of
two samples never differ by more than one, after any global batch, across epochs; G3, every rank
yields the same number of batches.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from torch.utils.data import Dataset


def make_labels(counts, seed=0):
    labels = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(seed).shuffle(labels)
    return labels


class Indexed(Dataset):
    """Items are their own index; ``targets`` are the labels; never loads anything else."""

    def __init__(self, labels):
        self.targets = list(np.asarray(labels).tolist())

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        return index


class NoLoad(Dataset):
    """A dataset whose items must never be read (labels come from metadata only)."""

    def __init__(self, labels, attribute="targets"):
        setattr(self, attribute, labels)
        self._length = len(labels)

    def __len__(self):
        return self._length

    def __getitem__(self, index):
        raise AssertionError(f"item {index} was loaded")


class Alternating:
    """A custom schedule with fine-tune epochs *between* balanced ones (no
    ``balanced_epochs_before``, so the sampler has to count them itself)."""

    def __init__(self, pattern):
        self.pattern = pattern

    def phase(self, epoch):
        return self.pattern[epoch % len(self.pattern)]


def as_lists(batches):
    return [[int(i) for i in batch] for batch in batches]


def global_plan(samplers, epoch):
    """Every rank's batches of ``epoch``, interleaved into the global plan (rank r serves
    global batches r, r + R, ...); asserts G3's equal batch count per rank."""
    shards = []
    for sampler in samplers:
        sampler.set_epoch(epoch)
        shards.append(as_lists(sampler))
    assert len({len(shard) for shard in shards}) == 1, "ranks yield different batch counts"
    replicas = len(shards)
    return [shards[g % replicas][g // replicas] for g in range(len(shards[0]) * replicas)]


def check_finetune_epoch(num_samples, plan, batch_size, num_replicas, drop_last):
    """A fine-tune epoch's global plan is one pass over the data in full batches per rank.

    Without ``drop_last`` it covers every sample once, then pads the last round by repeating
    the pass's first samples (with one replica, the last batch is short instead). With
    ``drop_last`` it covers all but the dropped tail: exactly ``num_samples - num_samples %
    (batch_size * num_replicas)`` distinct samples in full batches, nothing repeated.
    """
    flat = [i for batch in plan for i in batch]
    per_round = batch_size * num_replicas
    if drop_last:
        kept = num_samples - num_samples % per_round
        assert len(flat) == kept > 0, f"{len(flat)} samples, expected {kept}"
        assert len(set(flat)) == kept, "a drop_last fine-tune epoch repeats a sample"
        assert set(flat) <= set(range(num_samples))
        assert all(len(batch) == batch_size for batch in plan), "a short batch with drop_last"
        return
    assert sorted(flat[:num_samples]) == list(range(num_samples)), "a sample is missing"
    assert flat[num_samples:] == flat[:len(flat) - num_samples], "padding is not the pass's start"
    if num_replicas > 1:
        assert all(len(batch) == batch_size for batch in plan)
        assert len(flat) == -(-num_samples // per_round) * per_round


class Usage:
    """Per-sample use counts, checked against G2 after every global batch (vectorised)."""

    def __init__(self, labels):
        self.labels = np.asarray(labels)
        self.order = np.argsort(self.labels, kind="stable")
        counts = np.bincount(self.labels)
        self.starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        self.counts = np.zeros(len(labels), dtype=np.int64)

    def add(self, plan):
        for position, batch in enumerate(plan):
            np.add.at(self.counts, batch, 1)
            grouped = self.counts[self.order]
            spread = (np.maximum.reduceat(grouped, self.starts)
                      - np.minimum.reduceat(grouped, self.starts))
            assert spread.max() <= 1, (
                f"G2: after global batch {position} the use counts of class "
                f"{int(np.argmax(spread))} differ by {int(spread.max())}")


def check_epoch(labels, plan, batch_size, *, full=True, cap=None, strict_size=False):
    """G1 (full epochs), the cap's coverage rule, and the per-batch class composition."""
    labels = np.asarray(labels)
    counts = np.bincount(labels)
    classes, largest = len(counts), int(counts.max())
    used = np.bincount([i for batch in plan for i in batch], minlength=len(labels))
    if full:
        assert used.min() >= 1, f"G1: samples never drawn {np.flatnonzero(used == 0)[:8]}"
        padding = int(used.sum()) - classes * largest
        assert padding >= 0
        for cls in range(classes):
            draws = int(used[labels == cls].sum())
            assert largest <= draws <= largest + -(-padding // classes), (cls, draws, padding)
        if padding == 0:
            for cls in np.flatnonzero(counts == largest):
                assert (used[labels == cls] == 1).all(), "G1: largest class not exactly once"
    if cap is not None:
        for cls in range(classes):
            if counts[cls] <= cap // classes:
                assert used[labels == cls].min() >= 1, f"cap: class {cls} not covered"
    for position, batch in enumerate(plan):
        if len(batch) != batch_size:
            assert not strict_size and position == len(plan) - 1, "short batch not last"
            continue
        per_class = np.bincount(labels[batch], minlength=classes)
        if batch_size >= classes:
            assert per_class.min() >= batch_size // classes
            assert per_class.max() <= -(-batch_size // classes)
        else:
            assert per_class.max() <= 1, "B < C: a class repeats inside a batch"


# Class counts that stress the plan's edge cases.
ADVERSARIAL_COUNTS = st.one_of(
    # one huge class and many singletons
    st.builds(lambda n, k: [n] + [1] * k, st.integers(2, 120), st.integers(1, 10)),
    # two equal largest classes
    st.builds(lambda n, rest: [n, n, *rest], st.integers(1, 120),
              st.lists(st.integers(1, 120), max_size=3)),
    # n_c just above / below n_max / 2, and n_max - 1
    st.builds(lambda n, deltas: [n] + [max(1, n // 2 + d) for d in deltas] + [max(1, n - 1)],
              st.integers(2, 150), st.lists(st.integers(-1, 1), min_size=1, max_size=4)),
    st.lists(st.integers(1, 150), min_size=2, max_size=7),
)
SEEDS = st.sampled_from([0, 1, 2**32 + 5, 2**63, 2**64 - 1])
