"""load_state_dict refuses a state it cannot resume, naming why: a position past the
schedule (the sampler keeps its own), a state of another kind of sampler, a corrupt plan."""

from __future__ import annotations

import numpy as np
import pytest

from balancer import (
    BalancedBatchSampler,
    FineTuneSchedule,
    MultiLabelBalancedSampler,
    RepeatFactorSampler,
)


def test_a_state_past_the_schedule_is_refused_and_leaves_the_sampler_as_it_was():
    """Broke: load_state_dict() took state['epoch'] = 4 for a 3-epoch schedule without a word
    (batches_done 0 skipped the only check); len(), state_dict() and iteration then raised the
    schedule's error, far from the load. Now the load names state['epoch'] and the schedule,
    and the sampler keeps its position. state['batches_done'] > 0 just past the last epoch
    said "should be an integer <= -1"; now it says that epoch has no batches."""
    labels = ["a"] * 10 + ["b"] * 3 + ["a|b"] * 2 + ["No Finding"] * 5
    schedule = FineTuneSchedule(3, 1)
    for sampler in (RepeatFactorSampler(labels, 2, seed=1, threshold=0.5, schedule=schedule),
                    MultiLabelBalancedSampler(labels, 2, seed=1, schedule=schedule)):
        sampler.set_epoch(1)
        state = sampler.state_dict()
        bad = dict(state, epoch=4)
        with pytest.raises(ValueError, match=r"state\['epoch'\]=4 is outside the schedule of "
                                             r"this sampler.*total_epochs=3"):
            sampler.load_state_dict(bad)
        assert sampler.epoch == 1 and sampler.state_dict() == state
        assert len(sampler) == sampler._batches_per_replica(1)
        past = dict(state, epoch=3, batches_done=1)
        with pytest.raises(ValueError, match=r"state\['batches_done'\]=1 but epoch 3 has no "
                                             r"batches"):
            sampler.load_state_dict(past)
        sampler.load_state_dict(dict(state, epoch=3))  # a finished run's position: valid
        assert len(sampler) == 0 and list(sampler) == []


def test_a_state_of_another_kind_of_sampler_is_named_as_such():
    """Broke: the state of a BalancedBatchSampler loaded into a RepeatFactorSampler built on
    the same single-label data (and the other way round) was refused because "the labels
    differ" (each kind fingerprints labels its own way), which sends one hunting for a data
    bug. Now the error names both kinds; settings of the same kind are still named one by
    one."""
    classes = [0] * 15 + [1] * 5
    single = BalancedBatchSampler(classes, 2, seed=1)
    rfs = RepeatFactorSampler(classes, 2, seed=1, threshold=0.5)
    balanced = MultiLabelBalancedSampler(np.eye(2, dtype=int)[classes], 2, seed=1)
    with pytest.raises(ValueError, match=r"state was taken from a BalancedBatchSampler, not "
                                         r"from a RepeatFactorSampler \(plan: saved None, here "
                                         r"'repeat-factor'\)"):
        rfs.load_state_dict(single.state_dict())
    with pytest.raises(ValueError, match=r"taken from a RepeatFactorSampler, not from a "
                                         r"BalancedBatchSampler"):
        single.load_state_dict(rfs.state_dict())
    with pytest.raises(ValueError, match=r"taken from a MultiLabelBalancedSampler, not from a "
                                         r"RepeatFactorSampler"):
        rfs.load_state_dict(balanced.state_dict())
    other = RepeatFactorSampler(classes, 2, seed=1, threshold=0.4)
    with pytest.raises(ValueError, match=r"threshold: saved 0.4, here 0.5"):
        rfs.load_state_dict(other.state_dict())
    with pytest.raises(ValueError, match="different labels"):
        rfs.load_state_dict(RepeatFactorSampler(classes[::-1], 2, seed=1,
                                                threshold=0.5).state_dict())


def test_a_corrupt_plan_in_a_state_is_named_not_a_crash():
    sampler = RepeatFactorSampler(["a"] * 5 + ["b"] * 2, 2, threshold=0.5)
    state = sampler.state_dict()
    state["settings"]["plan"] = ["x"]  # unhashable: not any sampler's plan
    with pytest.raises(ValueError, match=r"taken from a sampler with plan \['x'\], not from a "
                                         r"RepeatFactorSampler"):
        sampler.load_state_dict(state)
