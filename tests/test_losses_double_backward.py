"""Second derivatives (``create_graph=True``) of the losses built on custom autograd Functions.

Those Functions compute first derivatives in closed form; a double backward must differentiate
the loss again, exactly, or raise, never silently drop the second-order terms (gradient
penalties, MAML and Hessian-vector products depend on them). Every case runs both the CPU
kernels and the device-independent paths (``_FAST_CPU`` off).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from losses import _kernels as K
from losses import functional as LF

PRIOR = torch.tensor([0.6, 0.25, 0.15], dtype=torch.float64)
COUNTS = torch.tensor([60.0, 25.0, 15.0], dtype=torch.float64)


@pytest.fixture(params=[True, False], ids=["cpu-kernels", "plain-paths"])
def fast_cpu(request, monkeypatch):
    monkeypatch.setattr(K, "_FAST_CPU", request.param)
    return request.param


def binary_target(shape, seed=0):
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < 0.4).double()


def reference_ldam(z, t, scale=30.0):
    margins = LF._ldam_margins(COUNTS, 0.5, always_check=True).to(z.dtype)
    return F.cross_entropy(scale * (z - margins[t].unsqueeze(1) * F.one_hot(t, z.shape[1])), t)


# (name, ours, independent reference built from torch primitives)
CASES = [
    ("logit_adjusted", lambda z, t: LF.logit_adjusted_cross_entropy(z, t, PRIOR),
     lambda z, t: F.cross_entropy(z + PRIOR.log(), t)),
    ("logit_adjusted_tau2_sum", lambda z, t: LF.logit_adjusted_cross_entropy(
        z, t, PRIOR, tau=2.0, reduction="sum"),
     lambda z, t: F.cross_entropy(z + 2.0 * PRIOR.log(), t, reduction="sum")),
    ("ldam", lambda z, t: LF.ldam_loss(z, t, COUNTS), reference_ldam),
    ("binary_focal_g2_a25", lambda z, t: LF.binary_focal_loss(
        z, binary_target(z.shape), gamma=2.0, alpha=0.25),
     lambda z, t: K._binary_focal_plain(z, binary_target(z.shape), 2.0, 0.25).mean()),
    ("binary_focal_g0_sum", lambda z, t: LF.binary_focal_loss(
        z, binary_target(z.shape), gamma=0.0, reduction="sum"),
     lambda z, t: F.binary_cross_entropy_with_logits(z, binary_target(z.shape), reduction="sum")),
    ("binary_focal_g05_none", lambda z, t: LF.binary_focal_loss(
        z, binary_target(z.shape), gamma=0.5, reduction="none").sum(),
     lambda z, t: K._binary_focal_plain(z, binary_target(z.shape), 0.5, None).sum()),
]


@pytest.mark.parametrize(("name", "ours", "reference"), CASES, ids=[c[0] for c in CASES])
def test_gradient_penalty_matches_a_plain_torch_formulation(fast_cpu, name, ours, reference):
    """A gradient penalty ||d loss / d W||^2 backpropagated through the model: the
    parameters' gradients need the loss's Hessian. They match the same penalty computed with
    torch's own (twice-differentiable) functions."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    x = torch.randn(8, 4, dtype=torch.float64)
    t = torch.randint(0, 3, (8,))

    def penalised_grads(loss_fn, drop_loss_hessian=False):
        net.zero_grad()
        logits = net(x)
        loss = loss_fn(logits, t)
        if drop_loss_hessian:  # what a once-differentiable loss silently computed
            (upstream,) = torch.autograd.grad(loss, logits, retain_graph=True)
            (g,) = torch.autograd.grad(logits, net[0].weight, upstream, create_graph=True)
        else:
            (g,) = torch.autograd.grad(loss, net[0].weight, create_graph=True)
        (loss + g.square().sum()).backward()
        return [p.grad.clone() for p in net.parameters()]

    got, want = penalised_grads(ours), penalised_grads(reference)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)
    # The loss's Hessian matters here, so the comparison above can tell it was dropped.
    dropped = penalised_grads(reference, drop_loss_hessian=True)
    assert max((a - b).abs().max() for a, b in zip(dropped, want, strict=True)) > 1e-4


@pytest.mark.parametrize(("name", "ours", "reference"), CASES, ids=[c[0] for c in CASES])
def test_gradgradcheck(fast_cpu, name, ours, reference):
    z = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1),
                    requires_grad=True)
    t = torch.tensor([0, 2, 1, 1, 0])
    assert torch.autograd.gradgradcheck(lambda v: ours(v, t), (z,))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_double_backward_from_half_logits_reaches_the_half_tensor(fast_cpu, dtype):
    """Half logits are upcast inside the loss; the double backward differentiates through the
    upcast to the caller's tensor and matches the same computation in float32."""
    z32 = torch.randn(6, 3, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([0, 1, 2, 0, 1, 2])
    results = []
    for z in (z32.to(dtype).requires_grad_(), z32.to(dtype).float().requires_grad_()):
        loss = LF.logit_adjusted_cross_entropy(z, t, PRIOR.float())
        (g,) = torch.autograd.grad(loss, z, create_graph=True)
        (h,) = torch.autograd.grad(g.float().square().sum(), z)
        assert h.dtype == z.dtype
        results.append(h.float())
    torch.testing.assert_close(results[0], results[1], rtol=2e-2, atol=1e-3)


def test_in_place_change_of_the_logits_before_backward_is_an_error_not_a_wrong_gradient():
    """The logits are saved for a double backward, so changing them in place between the loss
    and its backward raises torch's version error instead of returning a gradient computed
    from other logits."""
    z = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    logits = z * 1.0
    loss = LF.logit_adjusted_cross_entropy(logits, torch.tensor([0, 1, 2, 0]), PRIOR)
    logits.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
