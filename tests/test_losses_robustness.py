"""Losses: stability, empty batches, bad input, modules and buffers, class weights, compile."""

from __future__ import annotations

import doctest
import math
import time

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

import losses
from losses import _modules, _weights
from losses import functional as LF

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
    ),
]
COUNTS = [50.0, 10.0, 5.0, 2.0]


def every_loss(device="cpu"):
    """(name, loss module, target builder) for every index-target loss, C = 4."""
    w = torch.tensor([0.5, 1.0, 2.0, 1.5])
    return {
        "weighted_ce": losses.WeightedCrossEntropyLoss(w),
        "weighted_ce_samples": losses.WeightedCrossEntropyLoss(w, normalization="samples"),
        "focal": losses.FocalLoss(gamma=2.0, alpha=w),
        "focal_small_gamma": losses.FocalLoss(gamma=0.3),
        "hinge": losses.MarginLoss(kind="hinge", weight=w),
        "log": losses.MarginLoss(kind="log"),
        "square_square": losses.MarginLoss(kind="square_square"),
        "hinge_all": losses.MarginLoss(kind="hinge", against="all"),
        "ldam": losses.LDAMLoss(COUNTS),
        "logit_adjusted": losses.LogitAdjustedLoss(COUNTS),
    }


# --------------------------------------------------------------------------- stability


@pytest.mark.parametrize("gamma", [0.0, 0.05, 0.5, 0.99, 1.0, 2.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_focal_finite_with_saturated_logits(gamma, dtype, device):
    big = 1e4 if dtype != torch.float16 else 6e4
    logits = torch.tensor([[big, -big, 0.0], [-big, big, 0.0], [0.0, 0.0, 0.0]], dtype=dtype)
    logits = logits.to(device).requires_grad_(True)
    target = torch.tensor([0, 0, 2], device=device)  # p_y -> 1, p_y -> 0, p_y = 1/3
    out = LF.focal_loss(logits, target, gamma=gamma, reduction="none")
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(logits.grad).all()
    assert out[0] == 0 and out[1] > 1e3


def test_naive_focal_would_give_nan_gradient_here():
    """The case the clamp guards against: (1 - p)^gamma with gamma < 1 at p == 1."""
    logits = torch.tensor([[30.0, -30.0]], requires_grad=True)
    p = logits.softmax(1)[0, 0]
    ((1 - p) ** 0.5 * -torch.log(p)).backward()
    assert not torch.isfinite(logits.grad).all()
    logits.grad = None
    LF.focal_loss(logits, torch.tensor([0]), gamma=0.5).backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("gamma", [0.0, 0.3, 2.0])
def test_binary_focal_finite_with_saturated_logits(gamma):
    logits = torch.tensor([1e4, -1e4, 1e4, -1e4, 0.0], requires_grad=True)
    target = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0])
    out = LF.binary_focal_loss(logits, target, gamma=gamma, reduction="none")
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(logits.grad).all()
    assert out[0] == 0 and out[2] > 1e3


@pytest.mark.parametrize("name", list(every_loss()))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_every_loss_finite_at_extreme_logits(name, dtype):
    big = 1e4 if dtype == torch.float32 else 6e4
    g = torch.Generator().manual_seed(0)
    logits = (big * torch.randn(8, 4, generator=g).sign()).to(dtype).requires_grad_(True)
    target = torch.randint(0, 4, (8,), generator=g)
    out = every_loss()[name](logits, target)
    out.backward()
    assert out.dtype == torch.float32
    assert torch.isfinite(out) and torch.isfinite(logits.grad).all()


# --------------------------------------------------------------------------- ignore_index


@pytest.mark.parametrize("name", list(every_loss()))
@pytest.mark.parametrize("device", DEVICES)
def test_all_ignored_batch_gives_zero_with_gradient(name, device):
    loss = every_loss()[name].to(device)
    logits = torch.randn(6, 4, device=device, requires_grad=True)
    target = torch.full((6,), -100, device=device)
    out = loss(logits, target)
    out.backward()
    assert out.item() == 0.0
    assert logits.grad is not None and (logits.grad == 0).all()


@pytest.mark.parametrize("name", list(every_loss()))
def test_ignored_targets_do_not_contribute(name):
    loss = every_loss()[name]
    # Small seeded logits: every hinge term is active (margin 1), so the counted rows'
    # gradients cannot be 0 by chance (unseeded N(0, 1) logits made hinge_all's zero about 1%
    # of the time, whenever the global RNG state of the run landed there).
    g = torch.Generator().manual_seed(0)
    logits = (0.1 * torch.randn(6, 4, generator=g)).requires_grad_()
    target = torch.tensor([0, 1, -100, 3, -100, 2])
    per = loss.__class__.__new__(loss.__class__)
    per.__dict__.update(loss.__dict__)
    per.reduction = "none"
    assert (per(logits, target)[[2, 4]] == 0).all()
    loss(logits, target).backward()
    assert (logits.grad[[2, 4]] == 0).all() and (logits.grad[[0, 1]] != 0).any()


# --------------------------------------------------------------------------- bad input


def test_error_target_out_of_range_names_value_and_c():
    with pytest.raises(ValueError, match=r"class index 7, outside \[0, 4\) for C=4"):
        LF.focal_loss(torch.randn(3, 4), torch.tensor([0, 7, 1]))


def test_error_negative_target_that_is_not_ignore_index():
    with pytest.raises(ValueError, match=r"class index -1"):
        LF.weighted_cross_entropy(torch.randn(3, 4), torch.tensor([0, -1, 1]))


def test_error_target_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"target shape \(5,\) does not match logits shape \(3, 4\)"):
        LF.weighted_cross_entropy(torch.randn(3, 4), torch.zeros(5, dtype=torch.long))


def test_error_float_target_where_indices_expected():
    with pytest.raises(TypeError, match=r"target should hold class indices.*torch.float32"):
        losses.FocalLoss()(torch.randn(3, 4), torch.zeros(3))


def test_error_index_target_where_floats_expected():
    with pytest.raises(TypeError, match=r"target should be a floating tensor.*torch.int64"):
        losses.BinaryFocalLoss()(torch.randn(3, 4), torch.zeros(3, 4, dtype=torch.long))


def test_error_binary_target_shape_mismatch():
    with pytest.raises(ValueError, match=r"target shape \(3,\) does not match logits shape \(3, 4\)"):
        losses.BinaryFocalLoss()(torch.randn(3, 4), torch.zeros(3))


@pytest.mark.parametrize("gamma", [-0.5, math.inf, math.nan])
@pytest.mark.parametrize("make", [lambda g: losses.FocalLoss(gamma=g),
                                  lambda g: losses.BinaryFocalLoss(gamma=g)])
def test_error_gamma_negative_or_not_finite(make, gamma):
    with pytest.raises(ValueError, match=rf"gamma should be a finite number >= 0, but got "
                                         rf"gamma={gamma!r}; .*focal paper uses gamma=2"):
        make(gamma)


def test_error_gamma_not_a_number():
    with pytest.raises(TypeError, match=r"gamma should be a non-negative float, but got "
                                        r"gamma='2' \(str\); pass a number such as gamma=2.0"):
        losses.FocalLoss(gamma="2")


def test_error_weight_wrong_length():
    loss = losses.WeightedCrossEntropyLoss([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"weight should have one entry per class \(C=4\).*length 3"):
        loss(torch.randn(2, 4), torch.tensor([0, 1]))


def test_error_alpha_wrong_length():
    with pytest.raises(ValueError, match=r"alpha should have one entry per class \(C=4\).*length 2"):
        losses.FocalLoss(alpha=[0.5, 0.5])(torch.randn(2, 4), torch.tensor([0, 1]))


def test_error_log_prior_from_zero_count():
    with pytest.raises(ValueError, match=r"prior_or_counts has 0 for class 1.*pseudo-count"):
        losses.LogitAdjustedLoss([10, 0, 3])


def test_error_functional_log_prior_from_zero_count():
    with pytest.raises(ValueError, match=r"prior_or_counts has 0 for class 2"):
        LF.logit_adjusted_cross_entropy(torch.randn(2, 3), torch.tensor([0, 1]), [4, 1, 0])


def test_error_ldam_zero_count():
    with pytest.raises(ValueError, match=r"counts has 0 for class 0"):
        losses.LDAMLoss([0, 5])


def test_error_unknown_reduction():
    with pytest.raises(ValueError, match=r"reduction should be one of .* reduction='avg'"):
        losses.FocalLoss(reduction="avg")
    with pytest.raises(ValueError, match=r"reduction='avg'"):
        LF.weighted_cross_entropy(torch.randn(2, 3), torch.tensor([0, 1]), reduction="avg")


def test_error_unknown_kind_lists_valid_ones():
    with pytest.raises(ValueError, match=r"kind should be one of \('hinge', 'log', 'square_square'\)"):
        losses.MarginLoss(kind="squared")


def test_error_unknown_normalization():
    with pytest.raises(ValueError, match=r"normalization='batch'"):
        losses.WeightedCrossEntropyLoss(normalization="batch")


def test_error_class_margins_with_log_kind():
    with pytest.raises(ValueError, match=r"class_margins has no effect with kind='log'"):
        losses.MarginLoss(kind="log", class_margins=[1.0, 2.0])


def test_error_unknown_class_weight_scheme():
    with pytest.raises(ValueError, match=r"scheme should be one of .* scheme='inv'"):
        losses.class_weights([1, 2], "inv")


def test_error_class_weight_zero_count():
    with pytest.raises(ValueError, match=r"class 1 has a count of 0"):
        losses.class_weights([3, 0, 1])


# --------------------------------------------------------------------------- modules


def test_buffers_travel_with_state_dict_and_to():
    loss = losses.LogitAdjustedLoss(COUNTS, weight=[1.0, 2.0, 3.0, 4.0])
    assert set(loss.state_dict()) == {"weight", "log_prior"}
    assert set(losses.LDAMLoss(COUNTS).state_dict()) == {"margins"}
    assert set(losses.FocalLoss(alpha=[1.0, 2.0]).state_dict()) == {"alpha"}
    assert set(losses.MarginLoss(class_margins=[1.0, 2.0]).state_dict()) == {"class_margins"}
    loss64 = loss.to(torch.float64)
    assert loss64.log_prior.dtype == torch.float64
    fresh = losses.LogitAdjustedLoss([1.0, 1.0, 1.0, 1.0], weight=[0.0, 0.0, 0.0, 0.0])
    fresh.load_state_dict(loss.state_dict())
    z, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 3, 0])
    assert_close(fresh(z, y), loss(z, y))


def test_modules_equal_functionals():
    z, y = torch.randn(7, 4), torch.tensor([0, 1, 2, 3, 0, 1, -100])
    assert_close(losses.FocalLoss(gamma=1.5)(z, y), LF.focal_loss(z, y, gamma=1.5))
    assert_close(
        losses.MarginLoss(kind="square_square", margin=0.5)(z, y),
        LF.margin_loss(z, y, kind="square_square", margin=0.5),
    )
    assert_close(losses.LDAMLoss(COUNTS)(z, y), LF.ldam_loss(z, y, COUNTS))
    assert_close(losses.LogitAdjustedLoss(COUNTS)(z, y),
                 LF.logit_adjusted_cross_entropy(z, y, COUNTS))


def test_from_counts_uses_class_weights():
    loss = losses.WeightedCrossEntropyLoss.from_counts([90, 10], scheme="inverse_sqrt")
    assert_close(loss.weight, torch.tensor([0.5, 1.5]))
    assert isinstance(losses.WeightedNLLLoss.from_counts([1, 1]), losses.WeightedNLLLoss)


def test_public_names():
    assert set(losses.__all__) >= {
        "WeightedNLLLoss", "WeightedCrossEntropyLoss", "FocalLoss", "BinaryFocalLoss",
        "MarginLoss", "LDAMLoss", "LogitAdjustedLoss", "class_weights",
        "AsymmetricLoss", "DistributionBalancedLoss", "PosWeightedBCELoss",
        "SigmoidLogitAdjustedLoss",
    }
    assert set(LF.__all__) == {
        "weighted_nll_loss", "weighted_cross_entropy", "focal_loss", "binary_focal_loss",
        "margin_loss", "ldam_loss", "logit_adjusted_cross_entropy", "posthoc_adjust",
        "asymmetric_loss", "distribution_balanced_loss", "pos_weighted_bce",
        "sigmoid_logit_adjusted_bce", "sigmoid_posthoc_adjust",
    }


# --------------------------------------------------------------------------- class weights


def test_class_weight_schemes():
    counts = torch.tensor([100.0, 25.0, 4.0])
    inv = torch.tensor([0.01, 0.04, 0.25])
    assert_close(losses.class_weights(counts), inv * 3 / inv.sum())
    isq = torch.tensor([0.1, 0.2, 0.5])
    assert_close(losses.class_weights(counts, "inverse_sqrt"), isq * 3 / isq.sum())
    eff = (1 - 0.9) / (1 - 0.9 ** counts.double())
    assert_close(losses.class_weights(counts, "effective", beta=0.9),
                 (eff * 3 / eff.sum()).float())
    assert_close(losses.class_weights(counts, "none"), torch.ones(3))
    assert_close(losses.class_weights(counts, "effective", beta=0.0), torch.ones(3))


def test_class_weights_from_labels_equal_from_counts():
    labels = torch.tensor([0, 2, 2, 1, 2, 2, 0, 2])
    assert_close(losses.class_weights(labels, num_classes=4, scheme="none"), torch.ones(4))
    assert_close(losses.class_weights(labels, num_classes=3), losses.class_weights([2, 1, 5]))
    with pytest.raises(ValueError, match=r"class 3 has a count of 0"):
        losses.class_weights(labels, num_classes=4)


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(1, 10_000), min_size=1, max_size=20),
    scheme=st.sampled_from(_weights.SCHEMES),
    beta=st.floats(0.0, 0.9999),
)
def test_class_weights_average_one_and_order_reversed(counts, scheme, beta):
    w = losses.class_weights(counts, scheme, beta=beta)
    assert_close(w.mean(), torch.tensor(1.0))
    c = torch.tensor(counts, dtype=torch.float64)
    # rarer classes never get a smaller weight
    order = torch.argsort(c)
    assert (w[order].diff() <= 1e-5).all()


# --------------------------------------------------------------------------- properties


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    gamma=st.floats(0.0, 5.0),
    scale=st.sampled_from([0.1, 1.0, 10.0, 100.0]),
)
def test_focal_between_zero_and_cross_entropy(seed, gamma, scale):
    g = torch.Generator().manual_seed(seed)
    z = scale * torch.randn(16, 5, generator=g)
    y = torch.randint(0, 5, (16,), generator=g)
    focal = LF.focal_loss(z, y, gamma=gamma, reduction="none").double()
    # Against the exact (float64) cross-entropy: float32 F.cross_entropy rounds a confident
    # row's log(1 + r) to about 1e-7 absolute, more than our log1p(r) does.
    ce = F.cross_entropy(z.double(), y, reduction="none")
    assert (focal >= 0).all() and (focal <= ce * (1 + 1e-6) + 1e-7).all()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), shift=st.floats(-50.0, 50.0))
def test_margin_losses_invariant_to_shifting_all_scores_except_square(seed, shift):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(8, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (8,), generator=g)
    for kind in ("hinge", "log"):
        for against in ("most_offending", "all"):
            a = LF.margin_loss(z, y, kind=kind, against=against)
            b = LF.margin_loss(z + shift, y, kind=kind, against=against)
            assert_close(a, b)


# --------------------------------------------------------------------------- compile, docs


def test_losses_compile_fullgraph_on_cpu():
    """fullgraph=True fails on any graph break, e.g. a host sync or a data-dependent shape."""
    torch._dynamo.reset()
    z = torch.randn(16, 5, requires_grad=True)
    y = torch.randint(0, 5, (16,))
    y[3] = -100
    w = torch.rand(5) + 0.5
    cases = [
        (lambda z, y: LF.focal_loss(z, y, w, gamma=0.5), "inductor"),
        (lambda z, y: LF.margin_loss(z, y, kind="hinge", weight=w), "aot_eager"),
        (lambda z, y: LF.weighted_cross_entropy(z, y, w, normalization="samples"), "aot_eager"),
        (lambda z, y: LF.ldam_loss(z, y, [9.0, 5.0, 3.0, 2.0, 1.0]), "aot_eager"),
        # the three custom autograd Functions
        (lambda z, y: LF.margin_loss(z, y, against="all"), "aot_eager"),
        (lambda z, y: LF.logit_adjusted_cross_entropy(z, y, [9.0, 5.0, 3.0, 2.0, 1.0]),
         "aot_eager"),
        (lambda z, y: LF.binary_focal_loss(z, (z.detach() > 0).float(), gamma=0.5), "aot_eager"),
    ]
    start = time.perf_counter()
    for fn, backend in cases:
        compiled = torch.compile(fn, fullgraph=True, backend=backend)
        out = compiled(z, y)
        (grad,) = torch.autograd.grad(out, z)
        (ref_grad,) = torch.autograd.grad(fn(z, y), z)
        assert_close(out, fn(z, y))
        assert_close(grad, ref_grad)
    assert time.perf_counter() - start < 120


@pytest.mark.parametrize("module", [LF, _modules, _weights], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, globs=vars(module).copy()):
        runner.run(test)
    assert runner.failures == 0
    assert runner.tries > 0


def test_result_dtype_rule():
    y = torch.tensor([0, 1])
    for dtype, expected in [(torch.float16, torch.float32), (torch.bfloat16, torch.float32),
                            (torch.float32, torch.float32), (torch.float64, torch.float64)]:
        z = torch.randn(2, 3).to(dtype)
        for name, loss in every_loss().items():
            if name in ("hinge", "focal", "weighted_ce", "weighted_ce_samples"):
                continue  # per-class tensors of length 4
            assert loss(torch.randn(2, 4).to(dtype), y).dtype == expected, name
        assert LF.binary_focal_loss(z, torch.zeros(2, 3)).dtype == expected
        assert not math.isnan(LF.focal_loss(z, y).item())
