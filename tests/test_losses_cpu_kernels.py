"""The CPU kernels of LDAM and the binary focal loss against the device-independent paths.

``losses._kernels._FAST_CPU`` selects the kernels; with it False the same calls take the
paths used on CUDA (cross-entropy on shifted logits, the recomputing ``_BinaryFocal``). Every
comparison also checks which autograd node ran, so that a dispatch bug cannot make both sides
take the same path and pass trivially.
"""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import losses
from losses import _kernels as K
from losses import functional as LF

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
REDUCTIONS = ["none", "mean", "sum"]
LDAM_NODE = "_LDAMSoftmaxCPUBackward"
FOCAL_NODE = "_BinaryFocalCPUBackward"


@contextlib.contextmanager
def fast_cpu(enabled: bool):
    old = K._FAST_CPU
    K._FAST_CPU = enabled
    try:
        yield
    finally:
        K._FAST_CPU = old


def node_names(t: torch.Tensor) -> set[str]:
    names, stack = set(), [t.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is not None and type(fn).__name__ not in names:
            names.add(type(fn).__name__)
            stack.extend(f for f, _ in fn.next_functions)
    return names


def run(fn, logits, seed=0):
    """(fn(x), gradient of <fn(x), random cotangent>, names of the autograd nodes)."""
    x = logits.detach().clone().requires_grad_(True)
    out = fn(x)
    g = torch.Generator().manual_seed(seed + 100)
    cot = torch.rand(out.shape, generator=g, dtype=torch.float64).to(out.dtype)
    (out * cot).sum().backward()
    return out.detach(), x.grad, node_names(out)


def tolerances(dtype):
    if dtype == torch.float64:
        return {"rtol": 1e-12, "atol": 1e-12}
    if dtype == torch.float32:
        return {"rtol": 1e-5, "atol": 1e-6}
    # half logits are computed in float32; only the gradient is rounded back to half
    return {"rtol": 1e-5, "atol": 1e-6}


def assert_paths_agree(fn, logits, node, seed=0, **tol):
    """The CPU kernel and the exact path: same values and gradients, each path really taken."""
    with fast_cpu(True):
        v, g, nodes = run(fn, logits, seed)
    with fast_cpu(False):
        rv, rg, ref_nodes = run(fn, logits, seed)
    assert node in nodes, nodes
    assert node not in ref_nodes, ref_nodes
    tol = tol or tolerances(logits.dtype)
    assert v.dtype == rv.dtype and g.dtype == rg.dtype == logits.dtype
    assert_close(v, rv, **tol)
    grad_tol = tol if logits.dtype in (torch.float32, torch.float64) else {}
    assert_close(g, rg, **grad_tol)
    return v, g


def batch(seed, dtype, *, n=12, c=5, dense=(), scale=0.5, ignore=True):
    g = torch.Generator().manual_seed(seed)
    logits = (scale * torch.randn(n, c, *dense, generator=g)).to(dtype)
    target = torch.randint(0, c, (n, *dense), generator=g)
    if ignore:
        target.view(-1)[::4] = -100
    return logits, target


# --------------------------------------------------------------------------- LDAM


COUNTS = [400.0, 100.0, 25.0, 50.0, 5.0]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("normalization", ["weights", "samples"])
@pytest.mark.parametrize("weighted", [False, True])
def test_ldam_kernel_matches_cross_entropy_path(dtype, reduction, normalization, weighted):
    logits, target = batch(0, dtype)
    w = torch.tensor([0.5, 1.0, 2.0, 1.5, 3.0]) if weighted else None
    assert_paths_agree(
        lambda x: LF.ldam_loss(x, target, COUNTS, weight=w, reduction=reduction,
                               normalization=normalization),
        logits, LDAM_NODE,
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_ldam_kernel_dense_prediction(reduction):
    logits, target = batch(1, torch.float64, n=3, c=5, dense=(4, 2))
    module = losses.LDAMLoss(COUNTS, weight=[1.0, 2.0, 0.5, 1.0, 1.0], reduction=reduction)
    assert_paths_agree(lambda x: module(x, target), logits, LDAM_NODE)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_ldam_kernel_badly_misclassified_targets(dtype):
    """The target's shifted logit (here -3000) is never clamped: its loss stays exact."""
    logits, target = batch(2, dtype, ignore=False)
    rows = torch.arange(len(target))
    logits[rows, target] = logits.max(1).values - 100.0
    v, _ = assert_paths_agree(
        lambda x: LF.ldam_loss(x, target, COUNTS, reduction="none"), logits, LDAM_NODE
    )
    m = losses.LDAMLoss(COUNTS).margins.double()
    z = 30.0 * (logits.double() - m[target].unsqueeze(1) * F.one_hot(target, 5))
    exact = torch.logsumexp(z, 1) - z[rows, target]
    assert (exact > 2900).all()
    assert_close(v.double(), exact, rtol=1e-6, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_ldam_kernel_extreme_logits(dtype):
    g = torch.Generator().manual_seed(3)
    logits = (1e4 * torch.randn(8, 5, generator=g).sign()).to(dtype)
    target = torch.randint(0, 5, (8,), generator=g)
    v, g = assert_paths_agree(
        lambda x: LF.ldam_loss(x, target, COUNTS, reduction="none"), logits, LDAM_NODE
    )
    assert torch.isfinite(v).all() and torch.isfinite(g).all()


def test_ldam_kernel_clamp_error_is_within_its_bound():
    """Many classes far below the floor: the clamp adds at most (C - 1) e^-60 to the
    denominator relative to its exact value, measured against float64 cross-entropy."""
    c = 4000
    g = torch.Generator().manual_seed(4)
    logits = torch.full((6, c), -5.0, dtype=torch.float64)  # 30 * -5 = -150, below the floor
    logits[:, :3] = torch.randn(6, 3, generator=g, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 0, 10, 3999])
    counts = torch.arange(1, c + 1, dtype=torch.float64)
    with fast_cpu(True):
        fast = LF.ldam_loss(logits, target, counts, reduction="none")
    with fast_cpu(False):
        exact = LF.ldam_loss(logits, target, counts, reduction="none")
    bound = (c - 1) * math.exp(K._LDAM_FLOOR)
    diff = (fast - exact).abs()
    assert (diff <= bound + 1e-13 * exact.abs()).all(), diff


def test_ldam_kernel_float32_against_float64():
    logits, target = batch(5, torch.float32, n=64, c=50, scale=2.0)
    counts = torch.arange(1, 51, dtype=torch.float32)
    with fast_cpu(True):
        v32, g32, nodes = run(lambda x: LF.ldam_loss(x, target, counts), logits)
    with fast_cpu(False):
        v64, g64, _ = run(lambda x: LF.ldam_loss(x, target, counts), logits.double())
    assert LDAM_NODE in nodes
    assert_close(v32.double(), v64, rtol=1e-6, atol=1e-6)
    assert_close(g32.double(), g64, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("n", [0, 4], ids=["empty", "all_ignored"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_ldam_kernel_empty_and_all_ignored_batches(n, reduction):
    logits = torch.randn(n, 5, dtype=torch.float64)
    target = torch.full((n,), -100)
    v, g = assert_paths_agree(
        lambda x: LF.ldam_loss(x, target, COUNTS, reduction=reduction), logits, LDAM_NODE
    )
    assert g.shape == (n, 5) and (g == 0).all()
    if reduction != "none":
        assert v == 0


@pytest.mark.parametrize("scale,max_margin", [(1.0, 0.5), (30.0, 0.5), (64.0, 2.0)])
def test_ldam_kernel_gradcheck(scale, max_margin):
    logits, target = batch(6, torch.float64, n=6, c=4, scale=0.3)
    w = torch.tensor([0.5, 2.0, 1.0, 1.5], dtype=torch.float64)

    def fn(x):
        return LF.ldam_loss(x, target, COUNTS[:4], scale=scale, max_margin=max_margin,
                            weight=w, reduction="none")

    x = logits.requires_grad_(True)
    with fast_cpu(True):
        assert LDAM_NODE in node_names(fn(x))
        assert torch.autograd.gradcheck(fn, (x,))


# --------------------------------------------------------------------------- binary focal


def focal_inputs(seed, dtype, shape=(12, 5), scale=3.0):
    """Logits with extremes mixed in, and 0/1 targets on half of them, soft on the rest."""
    g = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(shape, generator=g, dtype=torch.float64)
    flat = logits.view(-1)
    extremes = torch.tensor([1e4, -1e4, 100.0, -100.0, 30.0, -30.0, 0.0, 20.0, -20.0])
    flat[: len(extremes)] = extremes[: flat.numel()].double()
    target = torch.rand(shape, generator=g, dtype=torch.float64)
    target.view(-1)[::2] = target.view(-1)[::2].round()
    limit = torch.finfo(dtype).max if dtype != torch.float64 else math.inf
    return logits.clamp(-limit, limit).to(dtype), target.to(dtype)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 3.5])
@pytest.mark.parametrize("alpha", [None, 0.0, 0.25, 1.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_binary_focal_kernel_matches_recomputing_path(gamma, alpha, reduction, dtype):
    logits, target = focal_inputs(0, dtype)
    assert_paths_agree(
        lambda x: LF.binary_focal_loss(x, target, gamma=gamma, alpha=alpha, reduction=reduction),
        logits, FOCAL_NODE,
    )


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_focal_kernel_half_logits(dtype, reduction):
    logits, target = focal_inputs(1, dtype, scale=2.0)
    assert_paths_agree(
        lambda x: LF.binary_focal_loss(x, target, gamma=2.0, alpha=0.25, reduction=reduction),
        logits, FOCAL_NODE,
    )


@pytest.mark.parametrize("shape", [(7,), (12, 5), (3, 4, 5)], ids=str)
@pytest.mark.parametrize("chunk_bytes", [64, 1 << 19])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_focal_kernel_chunking_and_shapes(shape, chunk_bytes, reduction, monkeypatch):
    """64-byte chunks (8 float64 elements) split every shape, with a ragged last chunk."""
    monkeypatch.setattr(K, "_chunk_bytes", lambda: chunk_bytes)
    logits, target = focal_inputs(2, torch.float64, shape)
    assert_paths_agree(
        lambda x: LF.binary_focal_loss(x, target, gamma=2.0, reduction=reduction),
        logits, FOCAL_NODE,
    )


def test_binary_focal_kernel_non_contiguous_logits(monkeypatch):
    monkeypatch.setattr(K, "_chunk_bytes", lambda: 64)
    logits, target = focal_inputs(3, torch.float64, (5, 12))

    def fn(x):
        return LF.binary_focal_loss(x.t(), target.t(), gamma=0.5, alpha=0.25, reduction="none")

    assert_paths_agree(fn, logits, FOCAL_NODE)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_focal_kernel_empty_input(reduction):
    logits = torch.zeros(0, 5, dtype=torch.float64)

    def fn(x):
        return LF.binary_focal_loss(x, x.detach(), reduction=reduction)

    with fast_cpu(True):
        v, g, nodes = run(fn, logits)
    with fast_cpu(False):
        rv, _, _ = run(fn, logits)
    assert FOCAL_NODE in nodes and g.shape == (0, 5)
    assert_close(v, rv, equal_nan=True)  # the mean of nothing is NaN, as Tensor.mean
    assert math.isnan(v) if reduction == "mean" else v.sum() == 0


@pytest.mark.parametrize("gamma", [0.0, 0.3, 2.0])
@pytest.mark.parametrize("t_value", [0.0, 0.3, 1.0])
def test_binary_focal_kernel_loss_is_nonnegative_and_finite(gamma, t_value):
    x = torch.linspace(-200.0, 200.0, 4001)
    t = torch.full_like(x, t_value)
    with fast_cpu(True):
        v, g, nodes = run(lambda z: LF.binary_focal_loss(z, t, gamma=gamma, reduction="none"), x)
    assert FOCAL_NODE in nodes
    assert (v >= 0).all() and torch.isfinite(v).all() and torch.isfinite(g).all()


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_focal_kernel_backward_twice_with_retained_graph(reduction):
    """Backward scales the saved gradient in place; a second backward must recompute it."""
    logits, target = focal_inputs(4, torch.float64)

    def fn(z):
        return LF.binary_focal_loss(z, target, gamma=2.0, alpha=0.25, reduction=reduction)

    with fast_cpu(False):
        _, ref, _ = run(fn, logits)  # gradient of <fn, cot>, cot as run() draws it
    x = logits.clone().requires_grad_(True)
    with fast_cpu(True):
        loss = fn(x)
    assert FOCAL_NODE in node_names(loss)
    g = torch.Generator().manual_seed(100)
    cot = torch.rand(loss.shape, generator=g, dtype=torch.float64)
    (first,) = torch.autograd.grad(loss, x, 3.0 * cot, retain_graph=True)
    (second,) = torch.autograd.grad(loss, x, 5.0 * cot, retain_graph=True)
    (loss * cot).sum().backward()
    assert_close(first, 3.0 * ref)
    assert_close(second, 5.0 * ref)
    assert_close(x.grad, ref)


def test_binary_focal_kernel_without_grad():
    logits, target = focal_inputs(5, torch.float32)
    with fast_cpu(True):
        with torch.no_grad():
            a = LF.binary_focal_loss(logits.requires_grad_(True), target)
        b = LF.binary_focal_loss(logits.detach(), target)
    with fast_cpu(False):
        ref = LF.binary_focal_loss(logits.detach(), target)
    assert a.grad_fn is None and b.grad_fn is None
    assert_close(a, ref)
    assert_close(b, ref)


@pytest.mark.parametrize("alpha", [None, 0.25])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 3.5])
def test_binary_focal_kernel_gradcheck(alpha, gamma, monkeypatch):
    monkeypatch.setattr(K, "_chunk_bytes", lambda: 40)  # 5 float64 elements: several chunks
    g = torch.Generator().manual_seed(6)
    x = (3 * torch.randn(4, 3, generator=g, dtype=torch.float64)).requires_grad_(True)
    t = torch.rand(4, 3, generator=g, dtype=torch.float64)
    t[0] = t[0].round()

    def fn(z):
        return LF.binary_focal_loss(z, t, gamma=gamma, alpha=alpha, reduction="none")

    with fast_cpu(True):
        assert FOCAL_NODE in node_names(fn(x))
        assert torch.autograd.gradcheck(fn, (x,))


def test_one_minus_pt_is_exact_for_hard_targets():
    """1 - p_t for confidently right 0/1 targets, where sigma(-z) - p + p would give 0."""
    x = torch.tensor([20.0, 30.0, -20.0, -30.0])
    t = torch.tensor([1.0, 1.0, 0.0, 0.0])
    q = K._one_minus_pt(x, t, torch.sigmoid(x))
    assert_close(q, torch.sigmoid(-x.abs()), rtol=1e-6, atol=0)


def test_binary_focal_kernel_against_float64_reference():
    """float32 kernel against the naive formula in float64, away from the saturated tails."""
    g = torch.Generator().manual_seed(7)
    x = 4 * torch.randn(64, 50, generator=g)
    t = (torch.rand(64, 50, generator=g) < 0.2).float()
    t[::3] = torch.rand(t[::3].shape, generator=g)

    def naive(z):
        tt = t.to(z.dtype)
        p = torch.sigmoid(z)
        p_t = tt * p + (1 - tt) * (1 - p)
        bce = F.binary_cross_entropy_with_logits(z, tt, reduction="none")
        return ((0.25 * tt + 0.75 * (1 - tt)) * (1 - p_t) ** 2 * bce).mean()

    with fast_cpu(True):
        v, grad, nodes = run(lambda z: LF.binary_focal_loss(z, t, alpha=0.25), x)
    rv, rg, _ = run(naive, x.double())
    assert FOCAL_NODE in nodes
    assert_close(v.double(), rv, rtol=1e-6, atol=0)
    assert_close(grad.double(), rg, rtol=1e-5, atol=1e-10)


@pytest.mark.parametrize("fast", [True, False], ids=["cpu-kernel", "plain-path"])
@pytest.mark.parametrize("gamma", [0.0, 2.0])
@pytest.mark.parametrize("shift", [-20.0, -14.0, 12.0, 16.0, 20.0])
def test_binary_focal_confident_elements_keep_relative_precision(monkeypatch, fast, gamma, shift):
    """Confidently right elements have tiny losses; summing -BCE as log sigma(-z) + t z lost
    them to cancellation (58% low at z ~ 16, t = 1). Relative error against float64 now."""
    monkeypatch.setattr(K, "_FAST_CPU", fast)
    z = torch.randn(20000, generator=torch.Generator().manual_seed(0)) + shift
    t = torch.full_like(z, 1.0 if shift > 0 else 0.0)
    got = LF.binary_focal_loss(z, t, gamma=gamma, alpha=0.25)
    if gamma == 0.0 and not fast:  # the plain path is torch's own BCE, documented as such
        want = F.binary_cross_entropy_with_logits(z, t, reduction="none") * 0.75 if shift < 0 \
            else F.binary_cross_entropy_with_logits(z, t, reduction="none") * 0.25
        assert_close(got, want.mean())
        return
    want = K._binary_focal_plain(z.double(), t.double(), gamma, 0.25).mean()
    assert want > 0
    assert abs(got.double() / want - 1) < 1e-5
    single = LF.binary_focal_loss(torch.tensor([abs(shift)]), torch.ones(1), gamma=gamma,
                                  reduction="none")
    assert single.item() > 0  # not rounded to 0


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_chunks_grow_with_the_thread_count_and_results_still_agree(threads, monkeypatch):
    """With T > 1 intra-op threads a chunk is 2 T times _CHUNK_BYTES (so each of its ops is
    split across the threads); the kernels over such chunks still agree with the plain paths."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert torch.get_num_threads() == threads
        monkeypatch.setattr(K, "_CHUNK_BYTES", 16)  # 2 float64 elements per thread's share
        expected = 16 if threads == 1 else 16 * 2 * threads
        assert K._chunk_bytes() == expected
        logits, target = focal_inputs(4, torch.float64, (9, 7))
        assert_paths_agree(
            lambda x: LF.binary_focal_loss(x, target, gamma=2.0, reduction="sum"),
            logits, FOCAL_NODE,
        )
        z = logits.detach()
        t = (target > 0.5).to(z.dtype)
        fast = z.clone().requires_grad_()
        with fast_cpu(True):
            LF.asymmetric_loss(fast, t).backward()
        plain = z.clone().requires_grad_()
        with fast_cpu(False):
            LF.asymmetric_loss(plain, t).backward()
        assert_close(fast.grad, plain.grad)
    finally:
        torch.set_num_threads(before)
