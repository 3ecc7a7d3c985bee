"""BalancedBatchSampler's plan keeps the README's guarantees in every epoch: G1 (full
coverage, n_max draws per class), G2 (use counts within a class never differ by more than one),
G3 (equal batch counts per rank) and the floor/ceil class composition of every batch, with
adversarial class counts, batch sizes, replicas, seeds, caps and schedules."""

from __future__ import annotations

import pytest
from helpers.sampler import (
    ADVERSARIAL_COUNTS,
    SEEDS,
    Alternating,
    Usage,
    check_epoch,
    check_finetune_epoch,
    global_plan,
    make_labels,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from balancer import BalancedBatchSampler


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(counts=ADVERSARIAL_COUNTS, batch_size=st.sampled_from([1, 2, 3, 7, 16, 33, 64, 1000]),
       num_replicas=st.sampled_from([1, 2, 3, 5, 8]), drop_last=st.booleans(), seed=SEEDS,
       epochs=st.integers(3, 8), alternate=st.booleans())
def test_g1_g2_g3_and_composition_in_every_epoch(counts, batch_size, num_replicas,
                                                       drop_last, seed, epochs, alternate):
    """G1 coverage, G2 use counts after every global batch (across epochs and across fine-tune
    epochs placed between balanced ones), G3 equal batch counts, floor/ceil composition, with
    adversarial class counts, batch sizes 1 and > N, up to 8 replicas and extreme seeds."""
    labels = make_labels(counts, seed % 5)
    schedule = Alternating(["balanced", "finetune", "balanced", "balanced", "finetune"]) \
        if alternate else None
    try:
        samplers = [BalancedBatchSampler(labels, batch_size, seed=seed, drop_last=drop_last,
                                         num_replicas=num_replicas, rank=rank,
                                         schedule=schedule)
                    for rank in range(num_replicas)]
    except ValueError as error:  # refused up front, as promised: a fine-tune epoch of no batch
        assert drop_last and schedule is not None and "gives no batch" in str(error)
        return
    if len(samplers[0]) * num_replicas * batch_size > 40_000:
        return
    usage = Usage(labels)
    for epoch in range(epochs):
        plan = global_plan(samplers, epoch)
        if schedule is not None and schedule.phase(epoch) == "finetune":
            check_finetune_epoch(len(labels), plan, batch_size, num_replicas, drop_last)
            continue
        check_epoch(labels, plan, batch_size, strict_size=drop_last or num_replicas > 1)
        usage.add(plan)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(counts=ADVERSARIAL_COUNTS, batch_size=st.sampled_from([1, 2, 5, 16, 64]),
       num_replicas=st.sampled_from([1, 2, 8]), drop_last=st.booleans(),
       cap_fraction=st.floats(0.01, 2.0), seed=SEEDS)
def test_samples_per_epoch_cap_keeps_g2_and_covers_small_classes(
        counts, batch_size, num_replicas, drop_last, cap_fraction, seed):
    labels = make_labels(counts)
    cap = max(batch_size, int(cap_fraction * len(counts) * max(counts)))
    samplers = [BalancedBatchSampler(labels, batch_size, seed=seed, drop_last=drop_last,
                                     samples_per_epoch=cap, num_replicas=num_replicas, rank=r)
                for r in range(num_replicas)]
    usage = Usage(labels)
    for epoch in range(6):
        plan = global_plan(samplers, epoch)
        check_epoch(labels, plan, batch_size, full=False, cap=cap,
                    strict_size=drop_last or num_replicas > 1)
        usage.add(plan)


def test_g1_g2_over_many_epochs_near_half_the_largest_class():
    """Classes of n_max / 2 +- 1 and n_max - 1 over 40 epochs (cycle groups of the small
    classes roll over several times, and every straddling chain is exercised)."""
    counts = [61, 31, 30, 29, 60, 1]
    labels = make_labels(counts, 3)
    samplers = [BalancedBatchSampler(labels, 7, seed=2**64 - 1, num_replicas=3, rank=r)
                for r in range(3)]
    usage = Usage(labels)
    for epoch in range(40):
        plan = global_plan(samplers, epoch)
        check_epoch(labels, plan, 7, strict_size=True)
        usage.add(plan)


def test_batches_larger_than_the_in_batch_order_pool():
    """B > 16384 takes the per-row shuffle path; G1 and composition still hold."""
    labels = make_labels([20000, 20000, 3])
    samplers = [BalancedBatchSampler(labels, 16385, seed=1, num_replicas=2, rank=r,
                                     drop_last=True) for r in range(2)]
    for epoch in range(2):
        check_epoch(labels, global_plan(samplers, epoch), 16385, strict_size=True)


@pytest.mark.parametrize("num_replicas", [1, 2, 3])
def test_a_drop_last_finetune_epoch_covers_all_but_the_dropped_tail(num_replicas):
    """Before, the fine-tune check was switched off whenever drop_last was set (`... or
    drop_last`), so a fine-tune epoch that lost or repeated samples passed it. 17 samples,
    batch_size=3: the epoch holds 17 - 17 % (3 * num_replicas) distinct samples."""
    labels = make_labels([13, 4])
    schedule = Alternating(["finetune"])
    samplers = [BalancedBatchSampler(labels, 3, seed=0, drop_last=True, num_replicas=num_replicas,
                                     rank=rank, schedule=schedule) for rank in range(num_replicas)]
    plan = global_plan(samplers, 0)
    check_finetune_epoch(len(labels), plan, 3, num_replicas, drop_last=True)
    assert len(plan) * 3 == 17 - 17 % (3 * num_replicas)
    repeated = [plan[0], *plan[:-1]]
    for broken in (plan[:-num_replicas], repeated, [*plan[:-1], plan[-1][:2]]):
        with pytest.raises(AssertionError):
            check_finetune_epoch(len(labels), broken, 3, num_replicas, drop_last=True)
