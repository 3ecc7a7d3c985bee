"""torch.func transforms over the losses built on custom autograd Functions, and ignored
positions whose logits are not finite (padding)."""

from __future__ import annotations

import math

import pytest
import torch

from losses import _kernels as K
from losses import functional as LF

COUNTS = [10.0, 5.0, 2.0]
TARGET = torch.tensor([0, 1, 2, 1, 0])
BINARY = (torch.rand(5, 3, generator=torch.Generator().manual_seed(3)) < 0.5).float()

LOSSES = {
    "ldam": lambda z: LF.ldam_loss(z, TARGET, COUNTS),
    "logit_adjusted": lambda z: LF.logit_adjusted_cross_entropy(z, TARGET, COUNTS),
    "binary_focal_g0": lambda z: LF.binary_focal_loss(z, BINARY, gamma=0.0),
    "binary_focal_g2": lambda z: LF.binary_focal_loss(z, BINARY, gamma=2.0, alpha=0.25),
}


@pytest.fixture(params=[True, False], ids=["cpu-kernels", "plain-paths"])
def fast_cpu(request, monkeypatch):
    monkeypatch.setattr(K, "_FAST_CPU", request.param)


@pytest.mark.parametrize("name", list(LOSSES))
def test_torch_func_grad_and_vmap_match_autograd(fast_cpu, name):
    loss = LOSSES[name]
    z = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    leaf = z.clone().requires_grad_()
    loss(leaf).backward()
    torch.testing.assert_close(torch.func.grad(loss)(z), leaf.grad)
    # Per-sample losses with vmap: each row on its own equals the unbatched call.
    per_row = torch.func.vmap(lambda row: loss(row.expand(5, 3)))(z)
    torch.testing.assert_close(per_row, torch.stack([loss(row.expand(5, 3)) for row in z]))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", ["ldam", "logit_adjusted"])
def test_ignored_rows_with_non_finite_logits_do_not_poison_the_loss(fast_cpu, name, reduction):
    fn = {"ldam": LF.ldam_loss, "logit_adjusted": LF.logit_adjusted_cross_entropy}[name]
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    z[1, 0] = -math.inf
    z[2] = math.nan
    target = torch.tensor([0, -100, -100, 2])
    leaf = z.clone().requires_grad_()
    got = fn(leaf, target, COUNTS, reduction=reduction)
    kept = torch.tensor([0, 3])
    rows = z[kept].clone().requires_grad_()
    want = fn(rows, target[kept], COUNTS, reduction=reduction)
    if reduction == "none":
        torch.testing.assert_close(got[kept], want)
        assert got[1] == 0 and got[2] == 0
        got, want = got.sum(), want.sum()
    else:
        torch.testing.assert_close(got, want)
    got.backward()
    want.backward()
    torch.testing.assert_close(leaf.grad[kept], rows.grad)
    assert torch.isfinite(leaf.grad[1]).all()  # -inf logit in an ignored row: zero gradient
