"""Coverage of the label-balanced plan over many consecutive epochs, on sparse co-occurring
labels, and how the plans of 1, 2 and 3 replicas relate.

Balanced epochs are consecutive stretches of one stream of slots: the bucket pattern repeated
round after round, each slot filled from its bucket's circular buffer. Balanced epoch ``b``
(counting balanced epochs only) serves stream slots ``[b S, b S + P)``, ``S`` its slots and
``P`` those rounded up to whole batches per rank. Resume is checked where an epoch starts
inside a round.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers.multilabel import check_resumes_everywhere
from hypothesis import given, settings
from hypothesis import strategies as st

from balancer import FineTuneSchedule, MultiLabelBalancedSampler
from balancer.labels import encode_multilabels
from balancer.samplers._label_balanced import Buckets, pattern_length


def sparse_labels(rows: int, labels: int, seed: int, unlabelled: float = 0.15) -> np.ndarray:
    """An ``(rows, labels)`` 0/1 matrix: label ``j`` on row ``j`` (every label has a positive),
    then 1-3 labels per row at random, rare labels rarer, and a share of rows with none."""
    rng = np.random.default_rng(seed)
    matrix = np.zeros((rows, labels), dtype=np.uint8)
    matrix[np.arange(labels), np.arange(labels)] = 1
    weights = 1.0 / np.arange(1, labels + 1)  # Zipf-like: label 0 common, the last ones rare
    weights /= weights.sum()
    for row in range(labels, rows):
        if rng.random() < unlabelled:
            continue
        count = min(labels, int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1])))
        matrix[row, rng.choice(labels, size=count, replace=False, p=weights)] = 1
    return matrix


@st.composite
def sparse_matrices(draw, max_rows: int = 3000, max_labels: int = 200, min_rows: int = 2):
    labels = draw(st.integers(2, max_labels))
    rows = draw(st.integers(max(labels, min_rows), max(labels, min_rows, max_rows)))
    return sparse_labels(rows, labels, draw(st.integers(0, 2**32 - 1)),
                         draw(st.sampled_from([0.0, 0.15, 0.5])))


def epoch_plan(samplers, epoch):
    """The global plan of an epoch: the ranks' batches interleaved (rank r took r, r + R...)."""
    shards = []
    for sampler in samplers:
        sampler.set_epoch(epoch)
        shards.append([list(map(int, batch)) for batch in sampler])
    replicas = len(shards)
    return [shards[g % replicas][g // replicas] for g in range(len(shards[0]) * replicas)]


def members_of(matrix):
    buckets = Buckets(encode_multilabels(matrix))
    return buckets, [buckets.members[buckets.starts[k]: buckets.starts[k + 1]]
                     for k in range(buckets.num_buckets)]


def least_draws_per_round(sampler, num_buckets):
    """The floor's promise per round of the pattern: ``floor(min_bucket_share R) - 1``."""
    length = pattern_length(num_buckets)
    return length, math.floor(sampler.min_bucket_share * length) - 1


# ---------------------------------------------------------------------- the 200 x 60 repro
def test_sparse_200_by_60_draws_every_image_and_bucket_within_40_epochs():
    """Issue 21's case: 200 images, 60 sparse labels, about a fifth of them with two or three. The
    epoch (200 slots) is far shorter than a round of the pattern (3,904 slots); every epoch
    used to replay the round's first 200 slots, so buckets placed later were never drawn."""
    matrix = sparse_labels(200, 60, seed=21, unlabelled=0.15)
    buckets = Buckets(encode_multilabels(matrix))
    sampler = MultiLabelBalancedSampler(matrix, 8, seed=0)
    used = np.zeros(len(matrix), dtype=np.int64)
    for epoch in range(40):
        for batch in epoch_plan([sampler], epoch):
            np.add.at(used, batch, 1)
    assert (used > 0).all(), f"{int((used == 0).sum())} images never drawn in 40 epochs"
    length, least = least_draws_per_round(sampler, buckets.num_buckets)
    assert length == 3904 and least == 15
    drawn = sampler.bucket_draws(40)
    assert drawn.sum() == 40 * 200 and (drawn >= (40 * 200 // length) * least).all()


# ---------------------------------------------------------------------- coverage
@settings(max_examples=8, deadline=None)
@given(matrix=sparse_matrices(max_rows=3000), batch_size=st.integers(1, 16),
       replicas=st.integers(1, 3), drop_last=st.booleans(),
       samples=st.one_of(st.none(), st.integers(16, 400)))
def test_every_image_is_drawn_within_the_stated_epochs(matrix, batch_size, replicas, drop_last,
                                                      samples):
    """With ``R`` the pattern length and ``S`` the slots of a balanced epoch, bucket ``k`` draws
    ``m_k >= floor(min_bucket_share R) - 1`` slots of every round, so after ``E`` balanced
    epochs every sample of bucket ``k`` has been drawn at least ``floor(D_k / n_k)`` times,
    ``D_k = bucket_draws(E)[k] >= floor(E S / R) m_k``: every image is drawn within
    ``ceil(R ceil(n_k / m_k) / S)`` balanced epochs, whatever the batch size and replicas
    (checked over the first 60 epochs)."""
    buckets, members = members_of(matrix)
    samplers = [MultiLabelBalancedSampler(matrix, batch_size, seed=1, drop_last=drop_last,
                                          samples_per_epoch=samples, num_replicas=replicas,
                                          rank=rank) for rank in range(replicas)]
    slots = samplers[0]._balanced_length(0)
    length, least = least_draws_per_round(samplers[0], buckets.num_buckets)
    assert least >= 1 and (samplers[0].bucket_draws_per_round >= least).all()
    assert samplers[0].bucket_draws_per_round.sum() == length
    per_round = samplers[0].bucket_draws_per_round
    within = [math.ceil(length * math.ceil(len(m) / per_round[k]) / slots)
              for k, m in enumerate(members)]
    used = np.zeros(len(matrix), dtype=np.int64)
    for epoch in range(min(max(within), 60)):
        for batch in epoch_plan(samplers, epoch):
            np.add.at(used, batch, 1)
        done = epoch + 1
        exact = samplers[0].bucket_draws(done)
        assert exact.sum() == done * slots  # every stream slot is one bucket's draw
        for k, m in enumerate(members):
            assert exact[k] >= (done * slots // length) * per_round[k]
            assert used[m].min() >= exact[k] // len(m), (k, done)
            if done >= within[k]:
                assert used[m].min() >= 1


@settings(max_examples=10, deadline=None)
@given(matrix=sparse_matrices())
def test_every_bucket_gets_its_share_of_every_round(matrix):
    """With ``K`` buckets and the floor ``s``, every label, and no finding, is carried by at
    least ``(1 - K s) / K`` of a round's slots as planned (``label_positive_rate``)."""
    sampler = MultiLabelBalancedSampler(matrix, 8, seed=0)
    buckets = len(sampler.bucket_draws_per_round)
    rates = sampler.label_positive_rate
    if buckets > matrix.shape[1]:
        rates = np.append(rates, sampler.no_finding_rate)
    assert rates.min() >= (1 - buckets * sampler.min_bucket_share) / buckets


# ---------------------------------------------------------------------- replicas and padding
@settings(max_examples=12, deadline=None)
@given(matrix=sparse_matrices(max_rows=120, max_labels=12, min_rows=30),
       batch_size=st.integers(1, 9),
       replicas=st.integers(2, 3), drop_last=st.booleans(),
       samples=st.one_of(st.none(), st.integers(9, 80)), finetune=st.booleans())
def test_replicas_serve_the_single_process_plan_plus_the_next_slots(matrix, batch_size, replicas,
                                                                     drop_last, samples,
                                                                     finetune):
    """In every epoch, the plan of ``R`` replicas (any ``drop_last``) holds the single-process
    plan's (one replica, ``drop_last=False``) full batches at the same positions, in the same
    order; the slots after them are the stream's next ones: the single-process epoch's short
    last batch, then the first slots of the next balanced epoch."""
    epochs = 5
    schedule = FineTuneSchedule(epochs, 1) if finetune else None
    common = dict(seed=4, samples_per_epoch=samples, schedule=schedule)
    single = MultiLabelBalancedSampler(matrix, batch_size, **common)
    ranks = [MultiLabelBalancedSampler(matrix, batch_size, drop_last=drop_last,
                                       num_replicas=replicas, rank=rank, **common)
             for rank in range(replicas)]
    # The stream itself: batches of one slot are never reordered.
    stream_sampler = MultiLabelBalancedSampler(matrix, 1, seed=4, samples_per_epoch=samples)
    slots = single._balanced_length(0)
    needed = -(-(epochs * slots + replicas * batch_size) // slots)
    stream = [i for e in range(needed) for batch in epoch_plan([stream_sampler], e)
              for i in batch]
    for epoch in range(epochs):
        reference, plan = epoch_plan([single], epoch), epoch_plan(ranks, epoch)
        full = len(matrix if finetune and epoch == epochs - 1 else range(slots)) // batch_size
        shared = min(full, len(plan))
        assert plan[:shared] == reference[:shared], epoch
        if finetune and epoch == epochs - 1:
            continue
        start = epoch * slots
        flat = stream[start: start + len(plan) * batch_size]
        for g, batch in enumerate(plan):
            assert sorted(batch) == sorted(flat[g * batch_size: (g + 1) * batch_size]), (epoch, g)


# ---------------------------------------------------------------------- checkpoints
def test_state_of_the_first_plan_revision_is_refused():
    """Revision 1 replayed the start of the bucket pattern in every epoch, so its batches differ:
    its state, saved without a revision, cannot resume here."""
    sampler = MultiLabelBalancedSampler(["a", "b", "a|b", "No Finding"] * 5, 2, seed=1)
    state = sampler.state_dict()
    assert state["settings"]["revision"] == 2
    del state["settings"]["revision"]
    with pytest.raises(ValueError, match=r"revision: saved None, here 2"):
        MultiLabelBalancedSampler(["a", "b", "a|b", "No Finding"] * 5, 2,
                                  seed=1).load_state_dict(state)


def test_resume_mid_round_at_every_position_on_every_rank():
    """An epoch that starts inside a round (here at stream slot 7 x 60 = 420 of 1,024) resumes
    from a checkpoint after any batch with exactly the remaining batches, on every rank."""
    matrix = sparse_labels(60, 10, seed=5)

    def make(rank):
        return MultiLabelBalancedSampler(matrix, 4, seed=2, num_replicas=2, rank=rank,
                                         drop_last=True)

    for rank in range(2):
        full = epoch_plan([make(rank)], 7)
        check_resumes_everywhere(lambda r=rank: make(r), 7, full,
                                 convert=lambda batch: list(map(int, batch)))
