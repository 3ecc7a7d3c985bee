"""Misuse of BalancedBatchSampler and balance() is loud (README "Misuse is loud"): bad settings
and epochs are refused naming the argument, forgetting set_epoch warns, and set_epoch or
load_state_dict during an iteration ends it; prefetching workers never leak a stale batch."""

from __future__ import annotations

import warnings

import pytest
from helpers.sampler import Indexed, as_lists, make_labels
from torch.utils.data import DataLoader

from balancer import BalancedBatchSampler, FineTuneSchedule, balance


@pytest.mark.parametrize("call, kind, match", [
    (lambda: BalancedBatchSampler([0, 1], 0), ValueError, "batch_size=0; pass a positive"),
    (lambda: BalancedBatchSampler([0, 1], 2.0), TypeError, "batch_size=2.0"),
    (lambda: BalancedBatchSampler([0, 1], 2, seed=-1), ValueError, "seed=-1"),
    (lambda: BalancedBatchSampler([0, 1], 2, seed=2**64), ValueError, "seed=18446744073709551616"),
    (lambda: BalancedBatchSampler([0, 1], 2, seed=True), TypeError, "seed=True"),
    (lambda: BalancedBatchSampler([0, 1], 2, drop_last=1), TypeError, "drop_last=1"),
    (lambda: BalancedBatchSampler([0, 1], 2, num_replicas=0), ValueError, "num_replicas=0"),
    (lambda: BalancedBatchSampler([0, 1], 2, num_replicas=8, rank=8), ValueError, "rank=8"),
    (lambda: BalancedBatchSampler([0, 1], 4, samples_per_epoch=3), ValueError,
     "samples_per_epoch=3"),
    (lambda: BalancedBatchSampler([0, 1], 2, schedule="last2"), TypeError, "phase"),
    (lambda: BalancedBatchSampler([0, 1], 2, batch_type="array"), ValueError, "batch_type"),
    (lambda: BalancedBatchSampler([0, 1], 2).set_epoch(-1), ValueError, "epoch=-1"),
    (lambda: BalancedBatchSampler([0, 1], 2).set_epoch(1.0), TypeError, "epoch=1.0"),
    (lambda: BalancedBatchSampler([0, 1], 2, schedule=FineTuneSchedule(3, 1)).set_epoch(3),
     ValueError, "covers epochs 0..2"),
    (lambda: BalancedBatchSampler([0, 1], 2).load_state_dict({}), ValueError, "missing"),
    (lambda: BalancedBatchSampler([0, 1] * 3, 2).load_state_dict(
        BalancedBatchSampler([1, 0] * 3, 2).state_dict()), ValueError, "different labels"),
    (lambda: BalancedBatchSampler([0, 1] * 3, 2).load_state_dict(
        BalancedBatchSampler([0, 1] * 3, 2, num_replicas=2).state_dict()), ValueError,
     "num_replicas: saved 2, here 1"),
    (lambda: BalancedBatchSampler([0, 1] * 3, 3, drop_last=True, num_replicas=4,
                                  schedule=FineTuneSchedule(2, 1)), ValueError,
     "fine-tune epoch of 6 samples gives no batch"),
    (lambda: FineTuneSchedule(5, 6), ValueError, "finetune_epochs=6"),
])
def test_bad_settings_are_refused_with_the_argument_named(call, kind, match):
    with pytest.raises(kind, match=match):
        call()


def test_an_epoch_too_large_for_the_plan_is_refused_naming_epoch():
    """Promise (README "Misuse is loud"): "bad settings raise a ValueError/TypeError that names
    the argument, the value and the fix."

    Reproduction: s = BalancedBatchSampler([0]*5 + [1]*2, 2); s.set_epoch(2**63) (accepted),
    then next(iter(s)); likewise set_epoch(2**64), and load_state_dict() of a state whose
    "epoch" is 2**70 (accepted without complaint).

    Expected: set_epoch / load_state_dict refuse an epoch the plan cannot address, with a
    ValueError naming `epoch`. Before the fix: accepted, then OverflowError("Python int too large to
    convert to C long") from balancer/samplers/_balanced.py / _rng.py at the first batch.
    """
    sampler = BalancedBatchSampler([0] * 5 + [1] * 2, 2)
    for epoch in (2**63, 2**64):
        try:
            sampler.set_epoch(epoch)
        except ValueError as error:
            assert "epoch" in str(error)
            continue
        with pytest.raises(ValueError, match="epoch"):
            next(iter(sampler))
    state = {**BalancedBatchSampler([0] * 5 + [1] * 2, 2).state_dict(), "epoch": 2**70}
    with pytest.raises(ValueError, match="epoch"):
        BalancedBatchSampler([0] * 5 + [1] * 2, 2).load_state_dict(state)


def test_misuse_warns_once_and_set_epoch_or_load_mid_iteration_raise():
    labels = make_labels([10, 3])
    sampler = BalancedBatchSampler(labels, 4, schedule=FineTuneSchedule(3, 1))
    list(sampler)
    with pytest.warns(UserWarning, match=r"without set_epoch\(\).*fine-tune.*set_epoch"):
        list(sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        list(sampler)  # once
    sampler.set_epoch(0)
    state = sampler.state_dict()
    iterator = iter(sampler)
    next(iterator)
    sampler.load_state_dict(state)
    with pytest.raises(RuntimeError, match="load_state_dict"):
        next(iterator)
    loader = balance(DataLoader(Indexed(labels), batch_size=4))
    iterator = iter(loader)
    next(iterator)
    loader.load_state_dict(loader.state_dict())
    with pytest.raises(RuntimeError, match="load_state_dict"):
        next(iterator)


def test_a_loop_that_breaks_early_without_set_epoch_is_warned():
    """Promise (README "Misuse is loud", its reason): forgetting set_epoch is loud "(otherwise
    every epoch would repeat epoch 0 and a schedule would never fine-tune)". This is a gap in
    the letter of the promise (which speaks of an epoch that *ended*), not of its purpose.

    Reproduction: loader = balance(DataLoader(ds, batch_size=4)); for 3 "epochs":
    for step, batch in enumerate(loader): if step == 2: break   (a steps-per-epoch cap, no
    set_epoch).

    Expected: the same UserWarning as for a finished epoch (the loop is in exactly the
    situation the warning exists for). Before the fix: no warning; every "epoch" trains on the same
    first three batches of epoch 0 forever.
    """
    loader = balance(DataLoader(Indexed(make_labels([30, 6])), batch_size=4))
    seen = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            got = []
            for step, batch in enumerate(loader):
                got.append(batch.tolist())
                if step == 2:
                    break
            seen.append(got)
    assert seen[0] == seen[1] == seen[2]  # the silent repetition
    assert any("set_epoch" in str(w.message) for w in caught), "no warning was given"


def test_set_epoch_mid_iteration_leaves_a_plain_dataloader_only_its_prefetched_batches():
    """Promise (README "Misuse is loud"): set_epoch while an iteration runs ends it.

    Found: with a plain DataLoader(batch_sampler=sampler, num_workers=1, prefetch_factor=8),
    batches the workers had already fetched still came out of the old iterator after
    set_epoch(1): the sampler cannot recall what a plain DataLoader prefetched. The README now
    says exactly that, and this test checks what it says: the sampler's state moves to the new
    epoch at once, the plain DataLoader may still hand out the prefetched batches of the old
    one (and no more than those), and a balance() loader refuses them.
    """
    labels = [0] * 7 + [1] * 3
    sampler = BalancedBatchSampler(labels, 4, seed=0)
    epoch0 = as_lists(sampler)
    sampler.set_epoch(0)
    loader = DataLoader(Indexed(labels), batch_sampler=sampler, num_workers=1,
                        prefetch_factor=8)
    iterator = iter(loader)
    assert next(iterator).tolist() == epoch0[0]
    sampler.set_epoch(1)
    assert (sampler.state_dict()["epoch"], sampler.state_dict()["batches_done"]) == (1, 0)
    stale = [batch.tolist() for batch in iterator]
    assert stale == epoch0[1: 1 + len(stale)]  # only old batches already fetched
    balanced = balance(DataLoader(Indexed(labels), batch_size=4, num_workers=1,
                                  prefetch_factor=8), seed=0)
    old = iter(balanced)
    next(old)
    balanced.set_epoch(1)
    with pytest.raises(RuntimeError, match=r"ended by set_epoch\(1\)"):
        next(old)
    del iterator, old


def test_persistent_workers_with_early_breaks_and_mid_iteration_set_epoch():
    """Persistent workers keep prefetched batches of the previous iteration; none of them may
    leak into the next epoch (early `break` each epoch, and set_epoch mid-iteration)."""
    labels = make_labels([40, 9, 3]).tolist()
    reference = balance(DataLoader(Indexed(labels), batch_size=4))
    want = []
    for epoch in range(3):
        reference.set_epoch(epoch)
        want.append([batch.tolist() for batch in reference])
    loader = balance(DataLoader(Indexed(labels), batch_size=4, num_workers=2,
                                persistent_workers=True, prefetch_factor=3))
    for epoch in range(2):
        loader.set_epoch(epoch)
        got = []
        for step, batch in enumerate(loader):
            got.append(batch.tolist())
            if step == 3 + epoch:
                break
        assert got == want[epoch][: len(got)]
        assert loader.state_dict()["batches_done"] == len(got)
    loader.set_epoch(0)
    iterator = iter(loader)
    next(iterator)
    loader.set_epoch(2)
    assert [batch.tolist() for batch in loader] == want[2]
    del iterator
