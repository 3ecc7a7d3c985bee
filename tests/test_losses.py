"""Losses against torch references (values and gradients), hand-computed examples, stability."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import losses
from losses import functional as LF

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
    ),
]
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
REDUCTIONS = ["none", "mean", "sum"]
SEEDS = [0, 1]

parametrize_dtype = pytest.mark.parametrize("dtype", DTYPES, ids=str)
parametrize_reduction = pytest.mark.parametrize("reduction", REDUCTIONS)
parametrize_seed = pytest.mark.parametrize("seed", SEEDS)
parametrize_device = pytest.mark.parametrize("device", DEVICES)


def make_batch(seed, dtype, device, *, n=12, c=5, dense=(), ignore=True, scale=2.0):
    """Logits (requires grad) and integer targets, every fourth target ignored."""
    g = torch.Generator().manual_seed(seed)
    logits = (scale * torch.randn(n, c, *dense, generator=g)).to(dtype).to(device)
    target = torch.randint(0, c, (n, *dense), generator=g)
    if ignore:
        target.view(-1)[::4] = -100
    return logits.requires_grad_(True), target.to(device)


def value_and_grad(fn, logits, seed=0):
    """fn(x) and d<fn(x), cotangent>/dx on a fresh leaf copy of logits."""
    x = logits.detach().clone().requires_grad_(True)
    out = fn(x)
    g = torch.Generator().manual_seed(seed + 100)
    cot = torch.rand(out.shape, generator=g, dtype=out.dtype).to(out.device)
    (out * cot).sum().backward()
    return out, x.grad


def check_against(ours, ref, logits, seed):
    """ours on logits vs ref on the float32/float64 upcast, values and gradients."""
    up = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
    v, g = value_and_grad(ours, logits, seed)
    rv, rg = value_and_grad(ref, up, seed)
    assert v.dtype == torch.promote_types(logits.dtype, torch.float32)
    assert_close(v, rv)
    assert g.dtype == logits.dtype
    assert_close(g, rg.to(g.dtype))


def random_weight(c, seed, device):
    g = torch.Generator().manual_seed(seed + 7)
    return (0.2 + torch.rand(c, generator=g)).to(device)


# --------------------------------------------------------------------------- CE / NLL vs torch


@parametrize_dtype
@parametrize_reduction
@parametrize_seed
@parametrize_device
def test_weighted_cross_entropy_matches_torch(dtype, reduction, seed, device):
    logits, target = make_batch(seed, dtype, device)
    w = random_weight(5, seed, device)
    check_against(
        lambda x: LF.weighted_cross_entropy(x, target, w, reduction=reduction),
        lambda x: F.cross_entropy(x, target, weight=w.to(x.dtype), reduction=reduction),
        logits, seed,
    )
    module = losses.WeightedCrossEntropyLoss(w, reduction=reduction).to(device)
    check_against(
        lambda x: module(x, target),
        lambda x: F.cross_entropy(x, target, weight=w.to(x.dtype), reduction=reduction),
        logits, seed,
    )


@parametrize_dtype
@parametrize_reduction
@parametrize_seed
@parametrize_device
def test_weighted_nll_matches_torch(dtype, reduction, seed, device):
    logits, target = make_batch(seed, dtype, device)
    w = random_weight(5, seed, device)
    check_against(
        lambda x: losses.WeightedNLLLoss(w, reduction=reduction).to(device)(
            F.log_softmax(x.float() if x.dtype != torch.float64 else x, 1), target
        ),
        lambda x: F.nll_loss(
            F.log_softmax(x, 1), target, weight=w.to(x.dtype), reduction=reduction
        ),
        logits, seed,
    )


@parametrize_reduction
@parametrize_device
def test_cross_entropy_dense_prediction_matches_torch(reduction, device):
    logits, target = make_batch(3, torch.float64, device, n=3, c=4, dense=(5, 2))
    w = random_weight(4, 3, device).double()
    check_against(
        lambda x: LF.weighted_cross_entropy(x, target, w, reduction=reduction),
        lambda x: F.cross_entropy(x, target, weight=w, reduction=reduction),
        logits, 3,
    )


@parametrize_seed
@parametrize_device
def test_samples_normalization_divides_by_counted_targets(seed, device):
    logits, target = make_batch(seed, torch.float64, device)
    w = random_weight(5, seed, device).double()
    counted = (target != -100).sum()
    check_against(
        lambda x: LF.weighted_cross_entropy(x, target, w, normalization="samples"),
        lambda x: F.cross_entropy(x, target, weight=w, reduction="sum") / counted,
        logits, seed,
    )


def test_samples_normalization_keeps_the_weight_at_batch_size_one():
    z, y = torch.tensor([[0.0, 0.0]]), torch.tensor([1])
    w = torch.tensor([1.0, 3.0])
    by_weights = LF.weighted_cross_entropy(z, y, w)
    by_samples = LF.weighted_cross_entropy(z, y, w, normalization="samples")
    assert_close(by_weights, torch.tensor(math.log(2)))  # the weight cancels out
    assert_close(by_samples, torch.tensor(3 * math.log(2)))


# --------------------------------------------------------------------------- focal


@parametrize_dtype
@parametrize_reduction
@parametrize_seed
@parametrize_device
def test_focal_gamma0_is_cross_entropy(dtype, reduction, seed, device):
    logits, target = make_batch(seed, dtype, device)
    check_against(
        lambda x: losses.FocalLoss(gamma=0.0, reduction=reduction)(x, target),
        lambda x: F.cross_entropy(x, target, reduction=reduction),
        logits, seed,
    )


@parametrize_reduction
@parametrize_device
def test_focal_gamma0_dense_is_cross_entropy(reduction, device):
    logits, target = make_batch(5, torch.float32, device, n=2, c=3, dense=(4, 3))
    check_against(
        lambda x: LF.focal_loss(x, target, gamma=0.0, reduction=reduction),
        lambda x: F.cross_entropy(x, target, reduction=reduction),
        logits, 5,
    )


@parametrize_reduction
@parametrize_seed
@parametrize_device
def test_focal_alpha_with_weights_normalization_is_weighted_ce(reduction, seed, device):
    logits, target = make_batch(seed, torch.float64, device)
    alpha = random_weight(5, seed, device).double()
    check_against(
        lambda x: LF.focal_loss(x, target, alpha, gamma=0.0, reduction=reduction,
                                normalization="weights"),
        lambda x: F.cross_entropy(x, target, weight=alpha, reduction=reduction),
        logits, seed,
    )


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 3.5])
@parametrize_seed
@parametrize_device
def test_focal_matches_naive_formula_in_float64(gamma, seed, device):
    logits, target = make_batch(seed, torch.float64, device)
    alpha = random_weight(5, seed, device).double()

    def naive(x):
        p = x.softmax(1)
        valid = target != -100
        y = target.clamp_min(0)
        p_y = p[torch.arange(len(y)), y]
        per = -alpha[y] * (1 - p_y) ** gamma * torch.log(p_y)
        return (per * valid).sum() / valid.sum()

    check_against(lambda x: LF.focal_loss(x, target, alpha, gamma=gamma), naive, logits, seed)


# --------------------------------------------------------------------------- binary focal


@parametrize_dtype
@parametrize_reduction
@parametrize_seed
@parametrize_device
def test_binary_focal_gamma0_is_bce(dtype, reduction, seed, device):
    logits, _ = make_batch(seed, dtype, device, ignore=False)
    g = torch.Generator().manual_seed(seed)
    t = (torch.rand(logits.shape, generator=g) < 0.3).float().to(device)
    check_against(
        lambda x: losses.BinaryFocalLoss(gamma=0.0, reduction=reduction)(x, t),
        lambda x: F.binary_cross_entropy_with_logits(x, t.to(x.dtype), reduction=reduction),
        logits, seed,
    )


@pytest.mark.parametrize("gamma", [0.5, 2.0])
@parametrize_seed
def test_binary_focal_matches_naive_formula(gamma, seed):
    logits, _ = make_batch(seed, torch.float64, "cpu", ignore=False)
    t = (torch.rand(logits.shape, generator=torch.Generator().manual_seed(seed)) < 0.3).double()

    def naive(x):
        p = torch.sigmoid(x)
        p_t = t * p + (1 - t) * (1 - p)
        a_t = 0.25 * t + 0.75 * (1 - t)
        return (-a_t * (1 - p_t) ** gamma * torch.log(p_t)).mean()

    check_against(lambda x: LF.binary_focal_loss(x, t, gamma=gamma, alpha=0.25), naive, logits,
                  seed)


# --------------------------------------------------------------------------- margins


@parametrize_dtype
@parametrize_reduction
@parametrize_seed
@parametrize_device
def test_hinge_against_all_is_c_times_multimargin(dtype, reduction, seed, device):
    logits, target = make_batch(seed, dtype, device, ignore=False, scale=0.7)
    w = random_weight(5, seed, device)
    c = logits.shape[1]

    def ref(x):
        mm = torch.nn.MultiMarginLoss(margin=0.8, weight=w.to(x.dtype), reduction=reduction)
        return c * mm(x, target)

    check_against(
        lambda x: losses.MarginLoss(kind="hinge", margin=0.8, against="all", weight=w,
                                    reduction=reduction, normalization="samples")(x, target),
        ref, logits, seed,
    )


def test_most_offending_margin_kinds_hand_computed():
    scores = torch.tensor([[2.0, 1.5, -1.0], [0.0, 3.0, 1.0]], requires_grad=True)
    target = torch.tensor([0, 2])  # s_y = 2, 1; s_bar = 1.5, 3
    expected = {
        "hinge": ([0.5, 3.0], [[-1.0, 1.0, 0.0], [0.0, 1.0, -1.0]]),
        "log": (
            [math.log1p(math.exp(-0.5)), math.log1p(math.exp(2.0))],
            [[-1 / (1 + math.exp(0.5)), 1 / (1 + math.exp(0.5)), 0.0],
             [0.0, 1 / (1 + math.exp(-2.0)), -1 / (1 + math.exp(-2.0))]],
        ),
        # s_y^2 + relu(m + s_bar)^2: 4 + 2.5^2 and 1 + 4^2; gradients 2 s_y and 2 relu(m + s_bar)
        "square_square": ([10.25, 17.0], [[4.0, 5.0, 0.0], [0.0, 8.0, 2.0]]),
    }
    for kind, (values, grad) in expected.items():
        scores.grad = None
        out = LF.margin_loss(scores, target, kind=kind, margin=1.0, reduction="none")
        out.sum().backward()
        assert_close(out, torch.tensor(values), msg=kind)
        assert_close(scores.grad, torch.tensor(grad), msg=kind)


def test_class_margins_replace_the_shared_margin():
    scores = torch.tensor([[2.0, 1.5, -1.0], [0.0, 3.0, 1.0]])
    target = torch.tensor([0, 2])
    out = LF.margin_loss(scores, target, class_margins=torch.tensor([0.25, 9.0, 2.0]),
                         reduction="none")
    assert_close(out, torch.tensor([0.0, 4.0]))  # relu(0.25 - 0.5), relu(2 - (1 - 3))


@pytest.mark.parametrize("kind", ["log", "square_square"])
@parametrize_seed
def test_margin_against_all_matches_loop(kind, seed):
    logits, target = make_batch(seed, torch.float64, "cpu", ignore=False)

    def loop(x):
        rows = []
        for n in range(x.shape[0]):
            y = int(target[n])
            wrong = [j for j in range(x.shape[1]) if j != y]
            if kind == "log":
                rows.append(sum(F.softplus(x[n, j] - x[n, y]) for j in wrong))
            else:
                rows.append(x[n, y] ** 2 + sum(F.relu(0.7 + x[n, j]) ** 2 for j in wrong))
        return torch.stack(rows).mean()

    check_against(lambda x: LF.margin_loss(x, target, kind=kind, margin=0.7, against="all"),
                  loop, logits, seed)


@pytest.mark.parametrize("kind", ["hinge", "log", "square_square"])
def test_most_offending_margin_dense_matches_flattened(kind):
    logits, target = make_batch(2, torch.float64, "cpu", n=2, c=4, dense=(3,))
    flat_logits = logits.movedim(1, -1).reshape(-1, 4)
    out = LF.margin_loss(logits, target, kind=kind, reduction="none")
    ref = LF.margin_loss(flat_logits, target.reshape(-1), kind=kind, reduction="none")
    assert_close(out.reshape(-1), ref)


# --------------------------------------------------------------------------- LDAM, logit adjust


@parametrize_reduction
@parametrize_seed
@parametrize_device
def test_ldam_is_scaled_ce_with_target_margins(reduction, seed, device):
    logits, target = make_batch(seed, torch.float64, device, scale=0.3)
    counts = torch.tensor([400.0, 100.0, 25.0, 50.0, 5.0])
    m = counts.pow(-0.25)
    m = (0.5 * m / m.max()).double().to(device)
    w = random_weight(5, seed, device).double()
    module = losses.LDAMLoss(counts, max_margin=0.5, scale=10.0, weight=w, reduction=reduction)
    assert_close(module.margins.double(), m.cpu(), rtol=1e-6, atol=0)
    m = module.margins.double().to(device)  # the float32 buffer, so only the loss is compared

    def ref(x):
        one_hot = F.one_hot(target.clamp_min(0), 5).to(x.dtype)
        return F.cross_entropy(10.0 * (x - m * one_hot), target, weight=w, reduction=reduction)

    check_against(lambda x: module.to(device)(x, target), ref, logits, seed)


@parametrize_dtype
@parametrize_reduction
@parametrize_seed
@parametrize_device
def test_logit_adjusted_tau0_is_cross_entropy(dtype, reduction, seed, device):
    logits, target = make_batch(seed, dtype, device)
    check_against(
        lambda x: losses.LogitAdjustedLoss([5, 1, 9, 2, 3], tau=0.0, reduction=reduction)
        .to(device)(x, target),
        lambda x: F.cross_entropy(x, target, reduction=reduction),
        logits, seed,
    )


@parametrize_seed
def test_logit_adjusted_adds_tau_log_prior(seed):
    logits, target = make_batch(seed, torch.float64, "cpu", n=4, c=3, dense=(2,))
    counts = torch.tensor([6.0, 3.0, 1.0])
    # The log-prior is stored in float32; round the float64 reference the same way.
    log_prior = torch.log(counts.double() / 10).float().double().view(3, 1)
    check_against(
        lambda x: LF.logit_adjusted_cross_entropy(x, target, counts, tau=1.5),
        lambda x: F.cross_entropy(x + 1.5 * log_prior, target),
        logits, seed,
    )
    module = losses.LogitAdjustedLoss(counts / 10, tau=1.5)  # a prior gives the same buffer
    assert_close(module.posthoc_adjust(logits), logits - 1.5 * log_prior)
    assert_close(LF.posthoc_adjust(logits, counts, tau=1.5), logits - 1.5 * log_prior)


# --------------------------------------------------------------------------- custom backward


@pytest.mark.parametrize("margin", [1.0, 0.0, -0.5])
@pytest.mark.parametrize("per_class", [False, True])
def test_hinge_all_custom_backward_matches_autograd(margin, per_class):
    logits, target = make_batch(4, torch.float64, "cpu", n=6, c=4, dense=(3,), scale=0.8)
    cm = torch.tensor([margin, 0.3, 1.2, 0.0], dtype=torch.float64) if per_class else None

    def ref(x):
        safe = target.clamp_min(0)
        m = margin if cm is None else cm[safe].unsqueeze(1)
        s_y = x.gather(1, safe.unsqueeze(1))
        terms = F.relu(x - s_y + m)
        own = terms.gather(1, safe.unsqueeze(1)).squeeze(1)
        per = (terms.sum(1) - own) * (target != -100)
        return per.sum() / (target != -100).sum()

    check_against(
        lambda x: LF.margin_loss(x, target, margin=margin, against="all", class_margins=cm),
        ref, logits, 4,
    )


@pytest.mark.parametrize("alpha", [None, 0.25])
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_binary_focal_custom_backward_gradcheck(alpha, gamma):
    g = torch.Generator().manual_seed(0)
    x = (3 * torch.randn(4, 3, generator=g, dtype=torch.float64)).requires_grad_(True)
    t = torch.rand(4, 3, generator=g, dtype=torch.float64)  # soft targets too
    assert torch.autograd.gradcheck(
        lambda z: LF.binary_focal_loss(z, t, gamma=gamma, alpha=alpha, reduction="none"), (x,)
    )
