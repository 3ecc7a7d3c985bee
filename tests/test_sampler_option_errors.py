"""An option of another sampler given to balance() or the accelerate adapter is a TypeError
that names the sampler given and every sampler that takes the option, instead of Python's bare
"unexpected keyword argument"."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from balancer import RepeatFactorSampler


def _multilabel_loader():
    from torch.utils.data import DataLoader, TensorDataset

    targets = torch.zeros(40, 3)
    targets[:10, 0], targets[5:25, 1], targets[30:, 2] = 1, 1, 1
    return DataLoader(TensorDataset(torch.randn(40, 2), targets), batch_size=8), targets


@pytest.mark.parametrize(("sampler", "options", "match"), [
    ("label-balanced", {"threshold": 0.1},
     r"threshold is not an option of MultiLabelBalancedSampler \(sampler='label-balanced'\), "
     r"but got threshold=0.1; pass sampler='repeat-factor' or remove threshold="),
    ("repeat-factor", {"min_bucket_share": 0.1},
     r"min_bucket_share is not an option of RepeatFactorSampler .*pass "
     r"sampler='label-balanced'"),
    ("repeat-factor", {"samples_per_epoch": 50},
     r"samples_per_epoch is not an option of RepeatFactorSampler .*pass sampler='balanced'"),
    ("label-balanced", {"gamma": 2}, r"gamma is not an option of MultiLabelBalancedSampler "
                                     r".*got gamma=2; remove gamma="),
])
def test_an_option_of_another_sampler_names_the_sampler_that_takes_it(sampler, options, match):
    """README: the adapters "take sampler=... and that sampler's options (threshold=...)".
    An option of the other sampler used to surface as Python's bare "__init__() got an
    unexpected keyword argument", with no fix."""
    from balancer import balance

    loader, targets = _multilabel_loader()
    with pytest.raises(TypeError, match=match):
        balance(loader, labels=targets, sampler=sampler, **options)


def test_accelerate_prepare_checks_the_sampler_options_too():
    pytest.importorskip("accelerate")
    from accelerate import Accelerator

    from balancer.integrations.accelerate import prepare

    loader, targets = _multilabel_loader()
    with pytest.raises(TypeError, match=r"threshold is not an option of "
                                        r"MultiLabelBalancedSampler.*sampler='repeat-factor'"):
        prepare(Accelerator(cpu=True), loader, labels=targets, sampler="label-balanced",
                threshold=0.1)
    prepared = prepare(Accelerator(cpu=True), loader, labels=targets, sampler="repeat-factor",
                       threshold=0.5)

    assert isinstance(prepared.balanced_sampler, RepeatFactorSampler)
    assert prepared.balanced_sampler.threshold == 0.5


def test_an_option_of_two_other_samplers_names_both():
    """Broke: balance(sampler="repeat-factor", samples_per_epoch=...) said "pass
    sampler='balanced'", though the label-balanced sampler (the multi-label one, the likelier
    fix for multi-label data) takes samples_per_epoch too. Now every sampler taking it is
    named."""
    from torch.utils.data import DataLoader, TensorDataset

    from balancer import balance
    table = pd.DataFrame({"F": ["a", "a|b", "No Finding", "b"] * 5})
    loader = DataLoader(TensorDataset(torch.arange(20)), batch_size=4)
    with pytest.raises(TypeError, match=r"samples_per_epoch is not an option of "
                                        r"RepeatFactorSampler \(sampler='repeat-factor'\), but "
                                        r"got samples_per_epoch=10; pass sampler='balanced' or "
                                        r"sampler='label-balanced' or remove samples_per_epoch="):
        balance(loader, labels=(table, "F"), sampler="repeat-factor", samples_per_epoch=10)
    balanced = balance(loader, labels=(table, "F"), sampler="label-balanced",
                       samples_per_epoch=8)
    assert balanced.batch_sampler.samples_per_epoch == 8
