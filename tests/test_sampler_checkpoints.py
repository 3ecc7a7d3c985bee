"""Checkpoint and resume of BalancedBatchSampler and balance() loaders (README "Checkpoint and
resume"): a state taken anywhere, mid-epoch, at an epoch's end or at the end of the run, with
workers, extreme seeds or several replicas, restores exactly the batches not yet yielded."""

from __future__ import annotations

import io

import pytest
import torch
from helpers.sampler import ADVERSARIAL_COUNTS, SEEDS, Alternating, Indexed, as_lists, make_labels
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, DistributedSampler

from balancer import BalancedBatchSampler, FineTuneSchedule, balance


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(counts=ADVERSARIAL_COUNTS, batch_size=st.sampled_from([1, 3, 16]),
       num_replicas=st.sampled_from([1, 2, 8]), drop_last=st.booleans(),
       epoch=st.integers(0, 12), alternate=st.booleans(), seed=SEEDS,
       batch_type=st.sampled_from(["list", "numpy", "tensor"]))
def test_direct_epochs_resume_everywhere_batch_types_and_total_batches(
        counts, batch_size, num_replicas, drop_last, epoch, alternate, seed, batch_type):
    labels = make_labels(counts)
    schedule = Alternating(["balanced", "finetune", "balanced"]) if alternate else None
    rank = epoch % num_replicas

    def build(kind="list"):
        return BalancedBatchSampler(labels, batch_size, seed=seed, drop_last=drop_last,
                                    schedule=schedule, num_replicas=num_replicas, rank=rank,
                                    batch_type=kind)

    try:
        walked, lengths = build(), []
    except ValueError as error:  # refused up front, as promised: a fine-tune epoch of no batch
        assert drop_last and schedule is not None and "gives no batch" in str(error)
        return
    for e in range(epoch + 1):
        walked.set_epoch(e)
        full = as_lists(walked)
        lengths.append(len(full))
    assert build().total_batches(epoch + 1) == sum(lengths)
    direct = build(batch_type)
    direct.set_epoch(epoch)
    assert as_lists(direct) == full
    if len(full) > 60:
        positions = [0, 1, len(full) // 2, len(full) - 1]
    else:
        positions = range(len(full))
    for done in positions:
        walked.set_epoch(epoch)
        iterator = iter(walked)
        for _ in range(done):
            next(iterator)
        restored = build(batch_type)
        restored.load_state_dict(walked.state_dict())
        assert len(restored) == len(full) - done
        restored.set_epoch(epoch)  # the README loop calls it: the resume must survive it
        assert as_lists(restored) == full[done:]


def test_resuming_a_resumed_iteration_at_every_pair_of_positions():
    """A checkpoint taken inside an iteration that was itself resumed (rank 1 of 2,
    drop_last, extreme seed, a schedule): the second restore yields exactly what is left."""
    labels = make_labels([31, 7, 2])

    def build():
        return BalancedBatchSampler(labels, 3, seed=2**64 - 1, num_replicas=2, rank=1,
                                    drop_last=True, schedule=FineTuneSchedule(4, 1))

    for epoch in (1, 3):
        reference = build()
        reference.set_epoch(epoch)
        full = as_lists(reference)
        for first in range(len(full)):
            for second in range(len(full) - first - 1):
                a = build()
                a.set_epoch(epoch)
                iterator = iter(a)
                for _ in range(first):
                    next(iterator)
                b = build()
                b.load_state_dict(a.state_dict())
                iterator = iter(b)
                for _ in range(second):
                    next(iterator)
                c = build()
                c.load_state_dict(b.state_dict())
                c.set_epoch(c.epoch)
                assert as_lists(c) == full[first + second:]


def test_end_of_epoch_checkpoint_points_at_the_next_epoch():
    labels = make_labels([9, 2])
    sampler = BalancedBatchSampler(labels, 4, schedule=FineTuneSchedule(3, 1))
    sampler.set_epoch(1)
    list(sampler)
    state = sampler.state_dict()
    assert (state["epoch"], state["batches_done"]) == (2, 0)
    restored = BalancedBatchSampler(labels, 4, schedule=FineTuneSchedule(3, 1))
    restored.load_state_dict(state)
    assert restored.epoch == 2 and restored.phase == "finetune"


def test_a_restored_end_of_run_checkpoint_saves_again_and_has_no_batches():
    """Promise (README "Checkpoint and resume"): "A checkpoint taken after the last batch of an
    epoch points at the start of the next epoch (`loader.epoch` is then `epoch + 1`), so the
    loop above neither repeats a finished epoch nor skips one."

    Reproduction: schedule = FineTuneSchedule(3, 1); train all 3 epochs; save
    loader.state_dict() (epoch 3, batches_done 0); in a new process build the loader and
    load_state_dict(state) -- accepted. Then loader.state_dict() (e.g. the script's final
    checkpoint save, or a job that is requeued after it finished) and len(loader) raise
    ValueError("epoch should be an integer <= 2 ... the schedule covers epochs 0..2").

    Expected: a restored end-of-run position can be saved again (it is the same position), and
    len() is 0 or at least does not raise. Before the fix: ValueError from the schedule.
    """
    labels = make_labels([7, 3])
    schedule = FineTuneSchedule(3, 1)
    loader = balance(DataLoader(Indexed(labels), batch_size=4), schedule=schedule)
    for epoch in range(3):
        loader.set_epoch(epoch)
        list(loader)
    state = loader.state_dict()
    assert (state["epoch"], state["batches_done"]) == (3, 0)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    restored = balance(DataLoader(Indexed(labels), batch_size=4), schedule=schedule)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.epoch == 3
    for epoch in range(restored.epoch, 3):  # the README loop: runs nothing, correctly
        restored.set_epoch(epoch)
    assert restored.state_dict()["epoch"] == 3  # raised ValueError before the fix
    assert len(restored) == 0


def test_set_epoch_after_restoring_the_end_of_run_state_is_accepted():
    """Promise (README "Checkpoint and resume" and "Misuse is loud": errors name the argument
    and *the value*): after the end-of-run checkpoint is restored (epoch 3 of a 3-epoch
    schedule), the loader must still take the user's calls.

    Reproduction: as in the test above, restored.load_state_dict(end_state), then
    restored.set_epoch(2) (e.g. to re-run the last epoch) or restored.phase.

    Expected: set_epoch(2) works (2 is a valid epoch; the sampler itself accepts it), phase
    reports something or a clear error. Before the fix: ValueError "epoch should be an integer <= 2,
    but got epoch=3" -- BalancedDataLoader.set_epoch asks the schedule about the *previous*
    epoch 3, so the message names a value the caller never passed.
    """
    labels = make_labels([7, 3])
    schedule = FineTuneSchedule(3, 1)
    loader = balance(DataLoader(Indexed(labels), batch_size=4), schedule=schedule)
    for epoch in range(3):
        loader.set_epoch(epoch)
        list(loader)
    restored = balance(DataLoader(Indexed(labels), batch_size=4), schedule=schedule)
    restored.load_state_dict(loader.state_dict())
    sampler = BalancedBatchSampler(labels, 4, schedule=schedule)
    sampler.load_state_dict(loader.state_dict())
    sampler.set_epoch(2)  # the sampler takes it
    restored.set_epoch(2)  # the loader raised ValueError about epoch=3
    assert restored.phase == "finetune" and len(restored) == len(sampler)


def test_extreme_seed_survives_torch_save_weights_only():
    labels = make_labels([9, 2])
    sampler = BalancedBatchSampler(labels, 4, seed=2**64 - 1)
    iterator = iter(sampler)
    next(iterator)
    buffer = io.BytesIO()
    torch.save(sampler.state_dict(), buffer)
    buffer.seek(0)
    restored = BalancedBatchSampler(labels, 4, seed=2**64 - 1)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert list(restored) == list(iterator)
    assert BalancedBatchSampler(labels, 4, seed=0).state_dict()["settings"]["seed"] == 0


def test_loader_resume_with_persistent_prefetching_workers():
    """Checkpoint mid-epoch with 2 persistent workers and prefetch_factor=4: a fresh loader
    yields exactly the batches the loop had not received, then the following epochs."""
    labels = make_labels([13, 5, 2]).tolist()
    schedule = FineTuneSchedule(3, 1)

    def build():
        return balance(DataLoader(Indexed(labels), batch_size=4, num_workers=2,
                                  prefetch_factor=4, persistent_workers=True),
                       schedule=schedule)

    reference = balance(DataLoader(Indexed(labels), batch_size=4), schedule=schedule)
    epochs = []
    for epoch in range(3):
        reference.set_epoch(epoch)
        epochs.append([batch.tolist() for batch in reference])
    loader = build()
    loader.set_epoch(1)
    iterator = iter(loader)
    for _ in range(3):
        next(iterator)
    state = loader.state_dict()
    assert (state["epoch"], state["batches_done"]) == (1, 3)
    del iterator, loader
    resumed = build()
    resumed.load_state_dict(state)
    got = []
    for epoch in range(resumed.epoch, 3):
        resumed.set_epoch(epoch)
        got.append([batch.tolist() for batch in resumed])
    assert got == [epochs[1][3:], epochs[2]]


def test_seed_none_resume_is_refused_until_the_seed_is_given():
    labels = make_labels([9, 2])
    loader = balance(DataLoader(Indexed(labels), batch_size=4), seed=None)
    iterator = iter(loader)
    next(iterator)
    state = loader.state_dict()
    with pytest.raises(ValueError, match=r"seed=None.*state\['settings'\]\['seed'\]"):
        balance(DataLoader(Indexed(labels), batch_size=4), seed=None).load_state_dict(state)
    fixed = balance(DataLoader(Indexed(labels), batch_size=4), seed=state["settings"]["seed"])
    fixed.load_state_dict(state)
    assert [b.tolist() for b in fixed] == [b.tolist() for b in iterator]


def test_every_rank_resumes_from_rank_0s_checkpoint():
    """README "Distributed training": "Save the checkpoint from rank 0; every rank loads the
    same file." Three ranks (via DistributedSampler), checkpoint of rank 0 mid-epoch: each
    rank continues with exactly its own remaining batches."""
    labels = make_labels([13, 5, 2])

    def build(rank):
        dataset = Indexed(labels)
        return balance(DataLoader(dataset, batch_size=2, sampler=DistributedSampler(
            dataset, num_replicas=3, rank=rank)), seed=11, schedule=FineTuneSchedule(3, 1))

    full = []
    for rank in range(3):
        loader = build(rank)
        loader.set_epoch(1)
        full.append([batch.tolist() for batch in loader])
    rank0 = build(0)
    rank0.set_epoch(1)
    iterator = iter(rank0)
    for _ in range(4):
        next(iterator)
    state = rank0.state_dict()
    for rank in range(3):
        restored = build(rank)
        restored.load_state_dict(state)
        restored.set_epoch(restored.epoch)
        assert [batch.tolist() for batch in restored] == full[rank][4:]
