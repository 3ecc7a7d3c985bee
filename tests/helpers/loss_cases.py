"""Every multi-label loss as one table, random inputs, and switches for the CPU kernels, shared
by the tests that compare the chunked CPU kernels with the plain formulas."""

from __future__ import annotations

import contextlib

import torch
from torch.testing import assert_close

import losses.functional as LF
from losses import _kernels as K

N_TRAIN = 100


def label_counts(width):
    return [float(1 + (7 * k) % 50) for k in range(width)]


def loss_table(width):
    """Every multi-label loss (several settings of each) and the binary focal loss, as
    fn(logits, target, reduction)."""
    c = label_counts(width)
    return {
        "asl": lambda x, t, r: LF.asymmetric_loss(x, t, reduction=r),
        "asl_gamma_pos1": lambda x, t, r: LF.asymmetric_loss(x, t, gamma_pos=1.0, reduction=r),
        "asl_clip0": lambda x, t, r: LF.asymmetric_loss(x, t, clip=0.0, reduction=r),
        "asl_fractional": lambda x, t, r: LF.asymmetric_loss(
            x, t, gamma_neg=0.5, gamma_pos=0.3, clip=0.02, reduction=r),
        "pos_weighted": lambda x, t, r: LF.pos_weighted_bce(x, t, c, num_samples=N_TRAIN,
                                                            reduction=r),
        "sigmoid_la": lambda x, t, r: LF.sigmoid_logit_adjusted_bce(
            x, t, c, num_samples=N_TRAIN, reduction=r),
        "db": lambda x, t, r: LF.distribution_balanced_loss(x, t, c, num_samples=N_TRAIN,
                                                            reduction=r),
        "db_lambda1": lambda x, t, r: LF.distribution_balanced_loss(
            x, t, c, num_samples=N_TRAIN, neg_scale=1.0, reduction=r),
        "binary_focal": lambda x, t, r: LF.binary_focal_loss(x, t, reduction=r),
        "binary_focal_alpha": lambda x, t, r: LF.binary_focal_loss(x, t, gamma=0.5, alpha=0.25,
                                                                   reduction=r),
    }


LOSS_NAMES = list(loss_table(1))
MULTILABEL_LOSS_NAMES = [n for n in LOSS_NAMES if not n.startswith("binary_focal")]
REDUCTIONS = ("none", "mean", "sum")


@contextlib.contextmanager
def intra_op_threads(n):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        assert torch.get_num_threads() == n
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def fast_cpu(flag):
    before = K._FAST_CPU
    K._FAST_CPU = flag
    try:
        yield
    finally:
        K._FAST_CPU = before


def random_inputs(n, width, seed, scale=6.0):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, width, dtype=torch.float64, generator=gen) * scale
    t = (torch.rand(n, width, dtype=torch.float64, generator=gen) < 0.3).double()
    return z, t


def run_loss(fn, z, t, reduction, fast):
    """(loss, gradient of a first backward, gradient of a second backward through the retained
    graph), for a random upstream gradient."""
    with fast_cpu(fast):
        x = z.detach().clone().requires_grad_()
        out = fn(x, t, reduction)
        upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(1),
                               dtype=torch.float64).to(out.dtype)
        (first,) = torch.autograd.grad(out, x, upstream, retain_graph=True)
        (second,) = torch.autograd.grad(out, x, upstream)
    return out.detach(), first, second


def assert_kernel_agrees(fast, plain, dtype):
    """Loss and gradients of the kernel against the plain formula, to the dtype's rounding
    (absolute tolerance scaled by the largest entry: pos_weight reaches 99 here)."""
    tolerance = {torch.float64: (1e-7, 1e-9), torch.float32: (1.3e-6, 1e-5),
                 torch.bfloat16: (1.6e-2, 1e-5), torch.float16: (1e-3, 1e-5)}[dtype]
    for got, want in zip(fast, plain, strict=True):
        scale = max(1.0, float(want.double().abs().max())) if want.numel() else 1.0
        assert_close(got, want, rtol=tolerance[0], atol=tolerance[1] * scale)
    assert torch.equal(fast[1], fast[2]), "a second backward through the graph differs"
    assert torch.equal(plain[1], plain[2])
