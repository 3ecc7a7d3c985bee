"""Multi-label losses (issue 10): references against F.binary_cross_entropy_with_logits,
the CPU kernel against the plain formulas, stability, transforms, compile, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

import losses
from losses import _kernels as K
from losses import functional as LF

COUNTS = [30.0, 5.0, 60.0, 1.0]
N_TRAIN = 100
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
REDUCTIONS = ["none", "mean", "sum"]
CUDA = pytest.param(
    "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
)


@pytest.fixture(params=[True, False], ids=["cpu-kernel", "plain-path"])
def fast_cpu(request, monkeypatch):
    monkeypatch.setattr(K, "_FAST_CPU", request.param)
    return request.param


def batch(seed=0, n=9, labels=4, dtype=torch.float64, scale=3.0, soft=False):
    g = torch.Generator().manual_seed(seed)
    z = (scale * torch.randn(n, labels, generator=g, dtype=torch.float64)).to(dtype)
    t = torch.rand(n, labels, generator=g, dtype=torch.float64)
    t = t if soft else (t < 0.35).to(torch.float64)
    t[0] = 0.0  # a sample with no positive label
    return z, t.to(dtype)


def value_and_grad(fn, z, t, seed=0):
    x = z.detach().clone().requires_grad_(True)
    out = fn(x, t)
    cot = torch.rand(out.shape, generator=torch.Generator().manual_seed(seed + 9),
                     dtype=torch.float64).to(out.dtype)
    (out * cot).sum().backward()
    return out, x.grad


def log_odds(counts=COUNTS, n=N_TRAIN):
    c = torch.tensor(counts, dtype=torch.float64)
    return torch.log(c / (n - c))


def reference_db(z, t, counts=COUNTS, n=N_TRAIN, alpha=0.1, beta=10.0, mu=0.2, kappa=0.05,
                 lam=2.0, reduction="mean"):
    """Distribution-balanced loss as the paper's two terms with torch's BCE and its weight=."""
    c = torch.tensor(counts, dtype=z.dtype)
    inv = 1.0 / c
    p_i = (t * inv).sum(dim=1, keepdim=True)
    r = inv / p_i  # inf for a row without positives
    r_hat = alpha + torch.sigmoid(beta * (r - mu))
    if beta == 0.0:
        r_hat = torch.full_like(r, alpha + 0.5)
    u = z + kappa * torch.log(c / (n - c)).to(z.dtype) / lam
    pos = F.binary_cross_entropy_with_logits(u, torch.ones_like(t), reduction="none")
    neg = F.binary_cross_entropy_with_logits(lam * u, torch.zeros_like(t), reduction="none") / lam
    loss = r_hat * (t * pos + (1 - t) * neg)
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


def reference_asl(z, t, gamma_neg, gamma_pos, clip, reduction="mean"):
    """ASL from its definition in float64, on probabilities (fine away from saturation)."""
    p = torch.sigmoid(z)
    p_m = (p - clip).clamp_min(0)
    loss = -(t * (1 - p) ** gamma_pos * torch.log(p)
             + (1 - t) * p_m ** gamma_neg * torch.log(1 - p_m))
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


# (name, ours with degenerate settings); each must equal BCE, values and gradients.
DEGENERATE = {
    "asymmetric": lambda z, t, r: LF.asymmetric_loss(
        z, t, gamma_neg=0.0, gamma_pos=0.0, clip=0.0, reduction=r),
    "asymmetric_module": lambda z, t, r: losses.AsymmetricLoss(0.0, 0.0, 0.0, reduction=r)(z, t),
    "pos_weighted": lambda z, t, r: LF.pos_weighted_bce(z, t, [50.0] * 4, num_samples=100,
                                                        reduction=r),
    "sigmoid_la_tau0": lambda z, t, r: LF.sigmoid_logit_adjusted_bce(
        z, t, COUNTS, num_samples=N_TRAIN, tau=0.0, reduction=r),
    "db": lambda z, t, r: LF.distribution_balanced_loss(
        z, t, COUNTS, num_samples=N_TRAIN, alpha=0.5, beta=0.0, kappa=0.0, neg_scale=1.0,
        reduction=r),
    "db_module": lambda z, t, r: losses.DistributionBalancedLoss(
        COUNTS, num_samples=N_TRAIN, alpha=0.5, beta=0.0, kappa=0.0, neg_scale=1.0,
        reduction=r)(z, t),
}


@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", list(DEGENERATE))
def test_degenerate_settings_equal_bce(fast_cpu, name, dtype, reduction, soft):
    z, t = batch(1, dtype=dtype, soft=soft)
    up = z.float() if dtype in (torch.float16, torch.bfloat16) else z
    v, g = value_and_grad(lambda x, y: DEGENERATE[name](x, y, reduction), z, t)
    rv, rg = value_and_grad(
        lambda x, y: F.binary_cross_entropy_with_logits(x, y.to(x.dtype), reduction=reduction),
        up, t)
    assert v.dtype == torch.promote_types(dtype, torch.float32)
    assert g.dtype == dtype
    assert_close(v, rv)
    assert_close(g, rg.to(dtype))


# (name, ours, independent reference), general settings, float64.
REFERENCES = [
    ("pos_weighted", lambda z, t, r: LF.pos_weighted_bce(z, t, COUNTS, num_samples=N_TRAIN,
                                                         reduction=r),
     lambda z, t, r: F.binary_cross_entropy_with_logits(
         z, t, pos_weight=(N_TRAIN - torch.tensor(COUNTS, dtype=z.dtype))
         / torch.tensor(COUNTS, dtype=z.dtype), reduction=r)),
    ("pos_weighted_module", lambda z, t, r: losses.PosWeightedBCELoss(
        COUNTS, num_samples=N_TRAIN, reduction=r).double()(z, t),
     lambda z, t, r: F.binary_cross_entropy_with_logits(
         z, t, pos_weight=(N_TRAIN - torch.tensor(COUNTS, dtype=z.dtype))
         / torch.tensor(COUNTS, dtype=z.dtype), reduction=r)),
    ("sigmoid_la", lambda z, t, r: LF.sigmoid_logit_adjusted_bce(
        z, t, COUNTS, num_samples=N_TRAIN, tau=1.5, reduction=r),
     lambda z, t, r: F.binary_cross_entropy_with_logits(z + 1.5 * log_odds(), t, reduction=r)),
    ("sigmoid_la_module", lambda z, t, r: losses.SigmoidLogitAdjustedLoss(
        COUNTS, num_samples=N_TRAIN, reduction=r).double()(z, t),
     lambda z, t, r: F.binary_cross_entropy_with_logits(z + log_odds(), t, reduction=r)),
    ("db", lambda z, t, r: LF.distribution_balanced_loss(z, t, COUNTS, num_samples=N_TRAIN,
                                                         reduction=r),
     lambda z, t, r: reference_db(z, t, reduction=r)),
    ("db_beta0", lambda z, t, r: LF.distribution_balanced_loss(
        z, t, COUNTS, num_samples=N_TRAIN, beta=0.0, kappa=0.3, neg_scale=5.0, reduction=r),
     lambda z, t, r: reference_db(z, t, beta=0.0, kappa=0.3, lam=5.0, reduction=r)),
    ("asl_default", lambda z, t, r: LF.asymmetric_loss(z, t, reduction=r),
     lambda z, t, r: reference_asl(z, t, 4.0, 0.0, 0.05, r)),
    ("asl_gammas_below_one", lambda z, t, r: LF.asymmetric_loss(
        z, t, gamma_neg=0.5, gamma_pos=0.3, clip=0.1, reduction=r),
     lambda z, t, r: reference_asl(z, t, 0.5, 0.3, 0.1, r)),
    ("asl_no_clip", lambda z, t, r: LF.asymmetric_loss(
        z, t, gamma_neg=2.0, gamma_pos=1.0, clip=0.0, reduction=r),
     lambda z, t, r: reference_asl(z, t, 2.0, 1.0, 0.0, r)),
    ("asl_module", lambda z, t, r: losses.AsymmetricLoss(3.0, 1.0, 0.02, reduction=r)(z, t),
     lambda z, t, r: reference_asl(z, t, 3.0, 1.0, 0.02, r)),
]


@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("name", "ours", "ref"), REFERENCES, ids=[c[0] for c in REFERENCES])
def test_against_independent_references(fast_cpu, name, ours, ref, reduction, soft):
    z, t = batch(2, soft=soft)
    v, g = value_and_grad(lambda x, y: ours(x, y, reduction), z, t)
    rv, rg = value_and_grad(lambda x, y: ref(x, y, reduction), z, t)
    assert_close(v, rv)
    assert_close(g, rg)


ALL = {name: ours for name, ours, _ in REFERENCES}


@pytest.mark.parametrize("name", [n for n in ALL if not n.endswith("_module")])
def test_cpu_kernel_equals_the_plain_formula_over_many_chunks(monkeypatch, name):
    """Rows split over many blocks (and a block narrower than a row) give the same loss and
    gradient as the plain autograd formula, extreme logits and soft targets included."""
    z, t = batch(3, n=37, labels=6, scale=8.0, soft=True)
    z[1, :3] = torch.tensor([40.0, -40.0, 1e4])
    counts = [30.0, 5.0, 60.0, 1.0, 7.0, 99.0]

    def fn(x, y, r):
        return {
            "pos_weighted": lambda: LF.pos_weighted_bce(x, y, counts, num_samples=N_TRAIN,
                                                        reduction=r),
            "sigmoid_la": lambda: LF.sigmoid_logit_adjusted_bce(x, y, counts,
                                                                num_samples=N_TRAIN, reduction=r),
            "db": lambda: LF.distribution_balanced_loss(x, y, counts, num_samples=N_TRAIN,
                                                        reduction=r),
        }.get(name.removesuffix("_beta0"),
              lambda: ALL[name](x, y, r))()

    for chunk_bytes in (8, 8 * 6 * 5, 1 << 19):
        monkeypatch.setattr(K, "_chunk_bytes", lambda size=chunk_bytes: size)
        for reduction in REDUCTIONS:
            monkeypatch.setattr(K, "_FAST_CPU", True)
            v, g = value_and_grad(lambda x, y, r=reduction: fn(x, y, r), z, t)
            monkeypatch.setattr(K, "_FAST_CPU", False)
            rv, rg = value_and_grad(lambda x, y, r=reduction: fn(x, y, r), z, t)
            assert_close(v, rv)
            assert_close(g, rg)


@pytest.mark.parametrize("name", list(ALL))
def test_gradcheck_and_gradgradcheck(fast_cpu, name):
    z, t = batch(4, n=5, labels=4, scale=2.0, soft=True)
    x = z.clone().requires_grad_()
    fn = ALL[name]
    assert torch.autograd.gradcheck(lambda a: fn(a, t, "sum"), (x,))
    assert torch.autograd.gradgradcheck(lambda a: fn(a, t, "sum"), (x,))


def test_retain_graph_second_backward_gives_the_same_gradient():
    z, t = batch(5)
    x = z.clone().requires_grad_()
    loss = LF.asymmetric_loss(x, t)
    (g1,) = torch.autograd.grad(loss, x, retain_graph=True)
    (g2,) = torch.autograd.grad(loss, x)
    assert_close(g1, g2)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", list(ALL))
def test_finite_for_extreme_logits(fast_cpu, name, dtype):
    big = 6e4 if dtype == torch.float16 else 1e4
    z = torch.tensor([[big, -big, 50.0, -50.0], [-big, big, -90.0, 90.0],
                      [0.0, 1e-3, 20.0, -20.0]]).to(dtype)
    t = torch.tensor([[1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    x = z.clone().requires_grad_()
    out = ALL[name](x, t.to(dtype), "none")
    out.sum().backward()
    assert torch.isfinite(out).all() and (out >= 0).all()
    assert torch.isfinite(x.grad).all()


COMPILE_MODULES = {
    "asl_module": lambda: losses.AsymmetricLoss(3.0, 1.0, 0.02),
    "pos_weighted_module": lambda: losses.PosWeightedBCELoss(COUNTS, num_samples=N_TRAIN),
    "sigmoid_la_module": lambda: losses.SigmoidLogitAdjustedLoss(COUNTS, num_samples=N_TRAIN),
    "db_module": lambda: losses.DistributionBalancedLoss(COUNTS, num_samples=N_TRAIN),
}


@pytest.mark.parametrize("name", [n for n in ALL if not n.endswith("_module")]
                         + list(COMPILE_MODULES))
def test_torch_compile_fullgraph_matches_eager(name):
    z, t = batch(6, dtype=torch.float32)
    if name in COMPILE_MODULES:
        module = COMPILE_MODULES[name]()

        def fn(a, b):
            return module(a, b)
    else:
        def fn(a, b):
            return ALL[name](a, b, "mean")
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    x = z.clone().requires_grad_()
    out = compiled(x, t)
    (grad,) = torch.autograd.grad(out, x)
    x = z.clone().requires_grad_()
    want = fn(x, t)
    (want_grad,) = torch.autograd.grad(want, x)
    assert_close(out, want)
    assert_close(grad, want_grad)


@pytest.mark.parametrize("name", list(ALL))
def test_per_sample_gradients_with_vmap(fast_cpu, name):
    z, t = batch(7, dtype=torch.float32)
    fn = ALL[name]
    per = torch.func.vmap(torch.func.grad(
        lambda a, b: fn(a.unsqueeze(0), b.unsqueeze(0), "sum")))(z, t)
    for i in range(z.shape[0]):
        x = z[i:i + 1].clone().requires_grad_()
        fn(x, t[i:i + 1], "sum").backward()
        assert_close(per[i], x.grad[0])


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_modules_move_their_buffers_and_do_not_sync_on_cuda(device):
    mods = [losses.AsymmetricLoss(), losses.PosWeightedBCELoss(COUNTS, num_samples=N_TRAIN),
            losses.SigmoidLogitAdjustedLoss(COUNTS, num_samples=N_TRAIN),
            losses.DistributionBalancedLoss(COUNTS, num_samples=N_TRAIN)]
    z, t = batch(8, dtype=torch.float32)
    z, t = z.to(device).requires_grad_(), t.to(device)
    if device == "cuda":
        torch.cuda.set_sync_debug_mode("error")
    try:
        for m in mods:
            m.to(device)(z, t).backward()
    finally:
        if device == "cuda":
            torch.cuda.set_sync_debug_mode(0)
    assert torch.isfinite(z.grad).all()
    sd = losses.DistributionBalancedLoss(COUNTS, num_samples=N_TRAIN).state_dict()
    assert set(sd) == {"inv_counts", "shift"}


def test_from_labels_counts_the_label_matrix():
    labels = torch.tensor([[1, 0], [1, 1], [0, 0], [1, 0]])
    a = losses.PosWeightedBCELoss.from_labels(labels)
    assert_close(a.pos_weight, torch.tensor([1 / 3, 3.0]))
    b = losses.SigmoidLogitAdjustedLoss.from_labels(labels, tau=0.5)
    assert b.num_samples == 4 and b.tau == 0.5
    with pytest.raises(ValueError, match=r"labels should be an \(N, L\) 0/1 label matrix"):
        losses.PosWeightedBCELoss.from_labels(torch.ones(4))


def test_sigmoid_posthoc_adjust_undoes_the_training_shift():
    z, _ = batch(9)
    shifted = z + 2.0 * log_odds()
    assert_close(LF.sigmoid_posthoc_adjust(shifted, COUNTS, num_samples=N_TRAIN, tau=2.0), z)
    m = losses.SigmoidLogitAdjustedLoss(COUNTS, num_samples=N_TRAIN, tau=2.0).double()
    assert_close(m.posthoc_adjust(shifted), z, atol=1e-6, rtol=1e-6)  # a float32 buffer


@settings(max_examples=40, deadline=None)
@given(gamma_neg=st.floats(0.0, 6.0), gamma_pos=st.floats(0.0, 3.0),
       clip=st.floats(0.0, 0.5), seed=st.integers(0, 2**16))
def test_asl_is_nonnegative_and_at_most_bce_elementwise(gamma_neg, gamma_pos, clip, seed):
    """Both focusing factors are <= 1 and the clip only lowers -log(1 - p): ASL <= BCE."""
    z, t = batch(seed, n=6, scale=6.0)
    asl = LF.asymmetric_loss(z, t, gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip,
                             reduction="none")
    bce = F.binary_cross_entropy_with_logits(z, t, reduction="none")
    assert (asl >= 0).all()
    # Slack: torch's BCE sums z - z + log1p(e^-|z|) for a negative, a few ulps of |z| off.
    assert (asl <= bce + 1e-14 * (1 + z.abs())).all()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), alpha=st.floats(0.0, 1.0), beta=st.floats(0.0, 20.0))
def test_db_weights_lie_between_alpha_and_alpha_plus_one(seed, alpha, beta):
    """With kappa=0 and neg_scale=1 the DB loss is BCE times r_hat in [alpha, alpha + 1]."""
    z, t = batch(seed, n=7)
    db = LF.distribution_balanced_loss(z, t, COUNTS, num_samples=N_TRAIN, alpha=alpha, beta=beta,
                                       kappa=0.0, neg_scale=1.0, reduction="none")
    bce = F.binary_cross_entropy_with_logits(z, t, reduction="none")
    ratio = db / bce
    assert (ratio >= alpha - 1e-9).all() and (ratio <= alpha + 1 + 1e-9).all()


# --------------------------------------------------------------------------- bad input

ML_FUNCS = {
    "asymmetric": lambda z, t: LF.asymmetric_loss(z, t),
    "pos_weighted": lambda z, t: LF.pos_weighted_bce(z, t, COUNTS, num_samples=N_TRAIN),
    "sigmoid_la": lambda z, t: LF.sigmoid_logit_adjusted_bce(z, t, COUNTS, num_samples=N_TRAIN),
    "db": lambda z, t: LF.distribution_balanced_loss(z, t, COUNTS, num_samples=N_TRAIN),
    "db_module": lambda z, t: losses.DistributionBalancedLoss(COUNTS, num_samples=N_TRAIN)(z, t),
}


@pytest.mark.parametrize("name", list(ML_FUNCS))
def test_wrong_target_shapes_and_dtypes_name_the_argument_value_and_fix(name):
    fn = ML_FUNCS[name]
    z = torch.randn(5, 4)
    with pytest.raises(TypeError, match=r"target should be a floating \(N, L\) tensor .* got "
                                        r"dtype torch.int64 and shape \(5,\)\. A 1-D integer "
                                        r"target holds class indices"):
        fn(z, torch.tensor([0, 1, 2, 3, 0]))
    with pytest.raises(TypeError, match=r"got dtype torch.int64 and shape \(5, 4\)\. Call "
                                        r"target.float\(\)"):
        fn(z, torch.zeros(5, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"target shape \(5, 3\) does not match logits shape "
                                         r"\(5, 4\)"):
        fn(z, torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"logits should have shape \(N, L\).*got shape \(5,\)"):
        fn(torch.randn(5), torch.zeros(5))
    with pytest.raises(TypeError, match="target should be a torch.Tensor"):
        fn(z, [[0.0] * 4] * 5)


@pytest.mark.parametrize("name", ["pos_weighted", "sigmoid_la", "db", "db_module"])
def test_counts_of_the_wrong_length_are_rejected(name):
    with pytest.raises(ValueError, match=r"counts should have one entry per label \(L=5\), but "
                                         r"got counts of length 4"):
        ML_FUNCS[name](torch.randn(3, 5), torch.zeros(3, 5))


@pytest.mark.parametrize("make", [
    lambda c, n: LF.pos_weighted_bce(torch.zeros(2, 3), torch.zeros(2, 3), c, num_samples=n),
    lambda c, n: losses.SigmoidLogitAdjustedLoss(c, num_samples=n),
    lambda c, n: losses.DistributionBalancedLoss(c, num_samples=n),
], ids=["function", "la_module", "db_module"])
def test_bad_counts_and_num_samples(make):
    with pytest.raises(ValueError, match=r"counts has 0 for class 1; its prior .* add a "
                                         r"pseudo-count"):
        make([3.0, 0.0, 2.0], 10)
    with pytest.raises(ValueError, match=r"counts has 10 for label 2, not below num_samples=10"):
        make([3.0, 1.0, 10.0], 10)
    with pytest.raises(ValueError, match=r"counts should be finite"):
        make([3.0, math.nan, 1.0], 10)
    with pytest.raises(TypeError, match=r"num_samples should be an int .* pass len"):
        make([3.0, 1.0, 2.0], 10.0)
    with pytest.raises(ValueError, match=r"num_samples should be >= 2"):
        make([3.0, 1.0, 2.0], 1)


def test_bad_settings_are_rejected():
    z, t = torch.zeros(2, 3), torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"clip should be in \[0, 1\).*clip=1.0"):
        LF.asymmetric_loss(z, t, clip=1.0)
    with pytest.raises(ValueError, match=r"gamma_neg should be a finite number >= 0, but got "
                                         r"gamma_neg=-1"):
        losses.AsymmetricLoss(gamma_neg=-1.0)
    with pytest.raises(TypeError, match=r"gamma_pos should be a non-negative float"):
        LF.asymmetric_loss(z, t, gamma_pos="1")
    with pytest.raises(ValueError, match=r"neg_scale should be a positive, finite float"):
        LF.distribution_balanced_loss(z, t, [1, 2, 3], num_samples=10, neg_scale=0.0)
    with pytest.raises(ValueError, match=r"reduction should be one of"):
        LF.pos_weighted_bce(z, t, [1, 2, 3], num_samples=10, reduction="avg")
    with pytest.raises(ValueError, match=r"tau should be finite"):
        LF.sigmoid_logit_adjusted_bce(z, t, [1, 2, 3], num_samples=10, tau=math.inf)


def test_counts_tensor_on_another_device_is_rejected():
    meta = torch.tensor([1.0, 2.0, 3.0], device="meta")
    with pytest.raises(ValueError, match=r"counts is on meta but logits is on cpu"):
        LF.pos_weighted_bce(torch.zeros(2, 3), torch.zeros(2, 3), meta, num_samples=10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name", list(ALL))
def test_loss_is_nonnegative_on_a_dense_grid_of_logits(fast_cpu, name, dtype):
    """Every element of every loss is >= 0 and finite, for logits swept densely through the
    ranges where sigmoids saturate and log-sigmoids pass their floors (there the kernels'
    terms cancel to within an ulp, which must never leave a negative loss)."""
    grid = torch.linspace(-800.0, 800.0, 64001, dtype=torch.float64)
    z = grid.to(dtype).reshape(-1, 1).expand(-1, 4).contiguous()
    for hard in (0.0, 1.0):
        t = torch.full_like(z, hard)
        t[:, 0] = 1.0 - hard  # every row carries both kinds, so DB's weights are finite
        x = z.clone().requires_grad_()
        out = ALL[name](x, t, "none")
        out.sum().backward()
        assert torch.isfinite(out).all() and (out >= 0).all(), name
        assert torch.isfinite(x.grad).all()
        # The reduced loss skips the logits' range check and redoes the blocks it must: the same
        # sum and gradient as the elementwise loss.
        y = z.clone().requires_grad_()
        total = ALL[name](y, t, "sum")
        total.backward()
        assert_close(total, out.sum())
        assert_close(y.grad, x.grad)


@pytest.mark.parametrize(("gamma_neg", "gamma_pos", "clip"), [
    (1.0, 0.0, 0.0), (1.0, 1.0, 0.0), (0.0, 0.0, 0.0), (3.0, 2.0, 0.0), (4.0, 0.0, 0.005),
    (0.5, 0.0, 0.001), (1.0, 0.0, 0.3), (0.0, 1.5, 0.2), (2.0, 4.0, 0.05), (4.0, 0.0, 0.05),
])
def test_asl_kernel_gradient_equals_the_plain_formula_for_every_branch(
        monkeypatch, gamma_neg, gamma_pos, clip):
    """Each (gamma, clip) branch of the closed-form gradient against autograd on the formula;
    gamma_neg=1 with clip=0 once lost its -p (1 - p) log(1 - p) term (off by 0.26 here)."""
    z, t = batch(11, n=50, labels=6, scale=3.0)
    grads = []
    for fast in (True, False):
        monkeypatch.setattr(K, "_FAST_CPU", fast)
        grads.append(value_and_grad(lambda x, y: LF.asymmetric_loss(
            x, y, gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip, reduction="sum"), z, t))
    assert_close(grads[0][0], grads[1][0])
    assert_close(grads[0][1], grads[1][1])
