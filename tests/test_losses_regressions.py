"""Regressions of issue 13: ignored rows with non-finite logits, torch.func transforms and
second derivatives through the margin losses, per-sample gradients, binary targets' values.

Each test here failed before the fix it names.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import losses
from losses import _kernels as K
from losses import functional as LF

COUNTS = [10.0, 5.0, 2.0, 1.0]
MARGIN_KINDS = [(k, a) for k in ("hinge", "log", "square_square")
                for a in ("most_offending", "all")]

# Every index loss, as fn(logits, target, reduction=...).
INDEX_LOSSES = {
    "weighted_ce": lambda z, y, **kw: LF.weighted_cross_entropy(z, y, [1.0, 2.0, 3.0, 4.0], **kw),
    "focal_g0": lambda z, y, **kw: LF.focal_loss(z, y, gamma=0.0, **kw),
    "focal_g2": lambda z, y, **kw: LF.focal_loss(z, y, gamma=2.0, **kw),
    "focal_g0.5_alpha": lambda z, y, **kw: LF.focal_loss(
        z, y, [0.1, 0.2, 0.3, 0.4], gamma=0.5, **kw),
    "ldam": lambda z, y, **kw: LF.ldam_loss(z, y, COUNTS, **kw),
    "logit_adjusted": lambda z, y, **kw: LF.logit_adjusted_cross_entropy(z, y, COUNTS, **kw),
    **{f"margin_{k}_{a}": functools.partial(LF.margin_loss, kind=k, against=a)
       for k, a in MARGIN_KINDS},
    "margin_hinge_all_class_margins": lambda z, y, **kw: LF.margin_loss(
        z, y, against="all", class_margins=[0.5, 1.0, 1.5, 2.0], **kw),
}


@pytest.fixture(params=[True, False], ids=["cpu-kernels", "plain-paths"])
def fast_cpu(request, monkeypatch):
    monkeypatch.setattr(K, "_FAST_CPU", request.param)


def test_focal_gamma0_with_inf_in_an_ignored_row_equals_cross_entropy():
    """The reproduction of the issue: F.cross_entropy is finite, focal_loss was NaN."""
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    z[1, 0] = -math.inf
    t = torch.tensor([0, -100, 1, 2])
    want = F.cross_entropy(z, t)
    assert torch.isfinite(want)
    assert_close(LF.focal_loss(z, t, gamma=0.0), want)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("padding", ["minus_inf", "nan", "plus_inf"])
@pytest.mark.parametrize("name", list(INDEX_LOSSES))
def test_ignored_rows_never_change_the_loss_or_the_other_rows_gradients(
    fast_cpu, name, padding, reduction
):
    fn = INDEX_LOSSES[name]
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    target = torch.tensor([0, -100, 3, -100, 2])
    if padding == "minus_inf":
        z[1, 0] = -math.inf  # the stand-in class of an ignored target is 0
        z[3] = -math.inf
    elif padding == "nan":
        z[1] = math.nan
        z[3, 0] = math.nan
    else:
        z[1, 0] = math.inf
        z[3, 1] = math.inf
    kept = torch.tensor([0, 2, 4])
    leaf = z.clone().requires_grad_()
    got = fn(leaf, target, reduction=reduction)
    rows = z[kept].clone().requires_grad_()
    want = fn(rows, target[kept], reduction=reduction)
    if reduction == "none":
        assert_close(got[kept], want)
        assert (got[torch.tensor([1, 3])] == 0).all()
        got, want = got.sum(), want.sum()
    else:
        assert_close(got, want)
    got.backward()
    want.backward()
    assert_close(leaf.grad[kept], rows.grad)
    if padding == "minus_inf":
        # A -inf entry in an otherwise finite ignored row gets a zero gradient, as with
        # F.cross_entropy. (A row of -inf, or one with NaN or +inf, gets NaN in its own
        # entries with F.cross_entropy too, whose log-softmax is NaN there; only the loss and
        # the other rows are promised.)
        assert (leaf.grad[1] == 0).all(), name


@pytest.mark.parametrize("name", list(INDEX_LOSSES))
def test_per_sample_gradients_with_vmap_of_grad(fast_cpu, name):
    """vmap(grad(loss)) over samples, as Opacus and functorch users compute per-sample
    gradients: each row equals the gradient of the loss on that sample alone."""
    fn = INDEX_LOSSES[name]
    g = torch.Generator().manual_seed(2)
    z = torch.randn(6, 4, generator=g)
    y = torch.randint(0, 4, (6,), generator=g)

    def loss_of_one(zi, yi):
        return fn(zi.unsqueeze(0), yi.unsqueeze(0))

    per_sample = torch.func.vmap(torch.func.grad(loss_of_one))(z, y)
    for i in range(6):
        leaf = z[i:i + 1].clone().requires_grad_()
        fn(leaf, y[i:i + 1]).backward()
        assert_close(per_sample[i], leaf.grad[0])


def test_binary_focal_per_sample_gradients_with_vmap_of_grad(fast_cpu):
    g = torch.Generator().manual_seed(3)
    z = torch.randn(6, 5, generator=g)
    t = (torch.rand(6, 5, generator=g) < 0.3).float()
    per_sample = torch.func.vmap(torch.func.grad(
        lambda zi, ti: LF.binary_focal_loss(zi, ti, gamma=2.0, alpha=0.25)))(z, t)
    for i in range(6):
        leaf = z[i].clone().requires_grad_()
        LF.binary_focal_loss(leaf, t[i], gamma=2.0, alpha=0.25).backward()
        assert_close(per_sample[i], leaf.grad)


def test_out_of_range_target_still_raises_the_clear_error_in_eager_mode():
    z = torch.randn(3, 4)
    with pytest.raises(ValueError, match=r"class index 4, outside \[0, 4\)"):
        LF.focal_loss(z, torch.tensor([0, 4, 1]))


@pytest.mark.parametrize("fn", [F.cross_entropy, INDEX_LOSSES["focal_g2"],
                                INDEX_LOSSES["weighted_ce"]])
def test_out_of_range_target_under_vmap_raises_as_torch_does(fn):
    """Under vmap the range check would be data-dependent control flow: the index error of
    gather (or nll_loss) surfaces instead, as for torch's own losses."""
    z = torch.randn(3, 4)
    y = torch.tensor([0, 7, 1])
    with pytest.raises((RuntimeError, IndexError)):
        torch.func.vmap(lambda zi, yi: fn(zi.unsqueeze(0), yi.unsqueeze(0)))(z, y)


# ----------------------------------------------------------------------------- margin Hessians


def reference_margin(s, y, kind, against, m):
    """The margin losses from a one-hot mask, independent of the implementation."""
    one_hot = F.one_hot(y, s.shape[1]).bool()
    s_y = s.gather(1, y.unsqueeze(1)).squeeze(1)
    if against == "most_offending":
        s_bar = s.masked_fill(one_hot, -math.inf).amax(dim=1)
        if kind == "hinge":
            return F.relu(m - s_y + s_bar).mean()
        if kind == "log":
            return F.softplus(s_bar - s_y).mean()
        return (s_y.square() + F.relu(m + s_bar).square()).mean()
    diff = s - s_y.unsqueeze(1)
    if kind == "hinge":
        terms = F.relu(m + diff)
    elif kind == "log":
        terms = F.softplus(diff)
    else:
        terms = F.relu(m + s).square()
    wrong = terms.masked_fill(one_hot, 0.0).sum(dim=1)
    return (wrong + (s_y.square() if kind == "square_square" else 0.0)).mean()


@pytest.mark.parametrize(("kind", "against"), MARGIN_KINDS)
def test_margin_torch_func_grad_matches_autograd_and_the_reference(kind, against):
    g = torch.Generator().manual_seed(4)
    s = torch.randn(8, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (8,), generator=g)
    module = losses.MarginLoss(kind=kind, against=against, margin=0.7)
    got = torch.func.grad(lambda z: module(z, y))(s)
    want = torch.func.grad(lambda z: reference_margin(z, y, kind, against, 0.7))(s)
    assert_close(got, want)
    leaf = s.clone().requires_grad_()
    module(leaf, y).backward()
    assert_close(leaf.grad, want)


@pytest.mark.parametrize(("kind", "against"), MARGIN_KINDS)
def test_margin_hessian_vector_products_are_exact(kind, against):
    """A create_graph HVP through every margin kind equals the reference's and the central
    difference of gradients; for the piecewise-linear hinge that is 0 (its Hessian is zero
    almost everywhere), for log and square-square it is not."""
    g = torch.Generator().manual_seed(5)
    s = torch.randn(8, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (8,), generator=g)
    v = torch.randn(8, 5, generator=g, dtype=torch.float64)

    def ours(z):
        return LF.margin_loss(z, y, kind=kind, against=against, margin=0.7)

    def hvp(fn, z):
        z = z.clone().requires_grad_()
        (grad,) = torch.autograd.grad(fn(z), z, create_graph=True)
        (out,) = torch.autograd.grad(grad, z, v)
        return out

    def grad_at(z):
        z = z.clone().requires_grad_()
        (grad,) = torch.autograd.grad(ours(z), z)
        return grad

    got = hvp(ours, s)
    assert_close(got, hvp(lambda z: reference_margin(z, y, kind, against, 0.7), s))
    eps = 1e-6  # small enough not to cross a kink at these random points
    central = (grad_at(s + eps * v) - grad_at(s - eps * v)) / (2 * eps)
    assert_close(got, central, atol=1e-6, rtol=1e-5)
    if kind == "hinge":
        assert (got == 0).all()
    else:
        assert got.abs().max() > 1e-3
    # torch.func's Hessian agrees too.
    hess = torch.func.hessian(ours)(s)
    assert_close(torch.einsum("ijkl,kl->ij", hess, v), got)


def test_hinge_all_hvp_with_class_margins_and_half_precision():
    g = torch.Generator().manual_seed(6)
    s = torch.randn(6, 4, generator=g).to(torch.bfloat16).requires_grad_()
    y = torch.randint(0, 4, (6,), generator=g)
    loss = LF.margin_loss(s, y, against="all", class_margins=torch.tensor([0.5, 1.0, 1.5, 2.0]))
    (grad,) = torch.autograd.grad(loss, s, create_graph=True)
    assert grad.requires_grad and grad.dtype == torch.bfloat16
    (hvp,) = torch.autograd.grad(grad.float().sum(), s)
    assert (hvp == 0).all()


# ----------------------------------------------------------------------------- binary targets


def test_binary_focal_target_values_are_not_checked_as_documented():
    """As torch's BCE: no error for 2.0 or -1; a NaN target makes its element NaN, visibly."""
    z = torch.tensor([0.5, -0.5, 1.0])
    t = torch.tensor([2.0, -1.0, math.nan])
    got = LF.binary_focal_loss(z, t, gamma=0.0, reduction="none")
    want = F.binary_cross_entropy_with_logits(z, t, reduction="none")
    assert_close(got, want, equal_nan=True)
    assert torch.isnan(got[2]) and torch.isfinite(got[:2]).all()
    assert "Target values are not checked" in LF.binary_focal_loss.__doc__
