"""Numerical edge cases of the multi-label losses: small ASL clips keep float32 precision, a
logit past the log-sigmoid's floor changes no other sample's loss, infinite logits give what
the plain formulas give, and degenerate settings equal binary cross-entropy exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.loss_cases import (
    MULTILABEL_LOSS_NAMES,
    N_TRAIN,
    REDUCTIONS,
    fast_cpu,
    label_counts,
    loss_table,
    random_inputs,
    run_loss,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch.testing import assert_close

import losses
import losses.functional as LF


@pytest.mark.parametrize("clip", [0.001, 0.005])
@pytest.mark.parametrize("gamma_neg", [0.5, 1.0, 4.0])
def test_asl_gradient_with_a_small_clip_keeps_float32_precision(clip, gamma_neg):
    """Broke: for clip < 0.01 the CPU kernel took p (1 - p) as p - p^2 (absolute precision)
    and then divided by 1 - p_m ~ clip: float32 gradients of confident negatives were up to
    7.7e-5 off (clip 0.001) where the plain formula is within 2e-6 of float64, and 12% off at
    z = 14.7. Now sigma(-z), already computed for these clips, gives p (1 - p)."""
    z, t = random_inputs(2000, 14, seed=5)
    reference = z.clone().requires_grad_()
    LF.asymmetric_loss(reference, t, gamma_neg=gamma_neg, clip=clip, reduction="sum").backward()
    for fast in (True, False):
        with fast_cpu(fast):
            x = z.float().requires_grad_()
            LF.asymmetric_loss(x, t.float(), gamma_neg=gamma_neg, clip=clip,
                               reduction="sum").backward()
        error = (x.grad.double() - reference.grad).abs()
        assert error.max() < 3e-6, (fast, float(error.max()))
    # A confident wrong negative: relative precision of its (small) gradient.
    one = torch.tensor([[14.6682]], dtype=torch.float64)
    want = torch.autograd.grad(LF.asymmetric_loss(one.requires_grad_(), torch.zeros(1, 1),
                                                  gamma_neg=gamma_neg, clip=clip), one)[0]
    x = one.detach().float().requires_grad_()
    got = torch.autograd.grad(LF.asymmetric_loss(x, torch.zeros(1, 1), gamma_neg=gamma_neg,
                                                 clip=clip), x)[0]
    assert abs(float(got) / float(want) - 1) < 1e-4


@pytest.mark.parametrize("name", MULTILABEL_LOSS_NAMES)
def test_a_logit_past_the_floor_elsewhere_leaves_the_other_losses_alone(name):
    """Broke: a logit below -87 anywhere in the batch sent every element through the
    log-sigmoid's floor clamp, computed as (log s + u) - u, which rounded each loss to the
    spacing of its logit: float32 BCE-like losses of 4.54e-5 (z = 10) became 4.58e-5 and of
    3.6e-7 (z = 15) became 0, only because another sample was far off. Now the clamp adds
    min(u, F) - F, exactly 0 above the floor."""
    z = torch.tensor([[10.0, -10.0, 15.0, -15.0], [2.0, -3.0, 0.5, 7.0]])
    t = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]])
    fn = loss_table(4)[name]
    alone_value, alone_grad, _ = run_loss(fn, z, t, "none", True)
    for outlier in (-100.0, -1e4, -math.inf):
        with_outlier = torch.cat([z, torch.full((1, 4), outlier)])
        target = torch.cat([t, torch.tensor([[1.0, 0.0, 1.0, 0.0]])])
        value, grad, again = run_loss(fn, with_outlier, target, "none", True)
        assert torch.equal(value[:2], alone_value), (outlier, value[:2], alone_value)
        assert torch.equal(grad[:2], alone_grad)
        assert_close(grad, again, rtol=0, atol=0, equal_nan=True)  # a second backward


@pytest.mark.parametrize("name", MULTILABEL_LOSS_NAMES)
def test_infinite_logits_give_what_the_plain_formulas_give(name):
    """Broke: with both an infinite positive and a logit below the floor in the batch, the
    clamp's log sigma(F) + (u - F) was inf - inf = NaN at u = +inf: ASL's loss of a positive
    at z = +inf (which is 0) came out NaN, and so did the whole mean. Now the kernel gives
    what the plain formula gives, elementwise and reduced (NaN where that is NaN)."""
    values = [math.inf, -math.inf, 1e4, -1e4, 100.0, -100.0, 88.5, -88.5, 0.0]
    z = torch.tensor([[v, v] for v in values for _ in (0, 1)])
    t = torch.tensor([[1.0, 0.0] if i % 2 == 0 else [0.0, 1.0] for i in range(len(z))])
    fn = loss_table(2)[name]
    for reduction in ("none", "sum"):
        fast, plain = run_loss(fn, z, t, reduction, True), run_loss(fn, z, t, reduction, False)
        for got, want in zip(fast, plain, strict=True):
            assert_close(got, want, equal_nan=True)


finite = st.floats(-1e4, 1e4, allow_nan=False, width=32)


@settings(max_examples=40, deadline=None)
@given(matrix=st.integers(1, 12).flatmap(lambda n: st.integers(1, 6).flatmap(
           lambda width: st.tuples(hnp.arrays(np.float32, (n, width), elements=finite),
                                   hnp.arrays(np.float32, (n, width),
                                              elements=st.sampled_from([0.0, 1.0]))))),
       dtype=st.sampled_from([torch.float32, torch.float64]), fast=st.booleans(),
       reduction=st.sampled_from(REDUCTIONS))
def test_degenerate_settings_equal_bce_in_values_and_gradients(matrix, dtype, fast,
                                                               reduction):
    """Held (hypothesis, logits up to +-1e4, kernel and plain paths): ASL with
    gamma_neg=gamma_pos=clip=0, DB with alpha=0.5, beta=0, kappa=0, neg_scale=1, pos-weighted
    BCE with pos_weight=1 and sigmoid logit adjustment with tau=0 equal
    F.binary_cross_entropy_with_logits, values and gradients."""
    z = torch.from_numpy(matrix[0]).to(dtype)
    t = torch.from_numpy(matrix[1]).to(dtype)
    width = z.shape[1]
    half = [N_TRAIN / 2] * width  # pos_weight (N - n) / n = 1
    degenerate = [
        lambda x, r: LF.asymmetric_loss(x, t, gamma_neg=0.0, gamma_pos=0.0, clip=0.0,
                                        reduction=r),
        lambda x, r: LF.distribution_balanced_loss(x, t, half, num_samples=N_TRAIN, alpha=0.5,
                                                   beta=0.0, kappa=0.0, neg_scale=1.0,
                                                   reduction=r),
        lambda x, r: LF.pos_weighted_bce(x, t, half, num_samples=N_TRAIN, reduction=r),
        lambda x, r: LF.sigmoid_logit_adjusted_bce(x, t, label_counts(width), num_samples=N_TRAIN,
                                                   tau=0.0, reduction=r),
        lambda x, r: losses.PosWeightedBCELoss(half, num_samples=N_TRAIN, reduction=r)(x, t),
    ]
    y = z.clone().requires_grad_()
    want = F.binary_cross_entropy_with_logits(y, t, reduction=reduction)
    (want_grad,) = torch.autograd.grad(want.sum(), y)
    for loss in degenerate:
        with fast_cpu(fast):
            x = z.clone().requires_grad_()
            got = loss(x, reduction)
            (grad,) = torch.autograd.grad(got.sum(), x)
        assert_close(got, want)
        assert_close(grad, want_grad)
