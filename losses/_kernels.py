r"""Fast paths of the losses: CPU kernels, custom autograd Functions and their design notes.

:mod:`losses.functional` holds the math; each loss that has a fast path calls one dispatch
function here (:func:`target_log_prob` for the focal loss, :func:`ldam`, :func:`logit_adjusted_nll`,
:func:`binary_focal`, :func:`hinge_all`), which picks the kernel for the call and falls back to a
plain autograd formula of the same loss where a kernel does not apply (the multi-label losses
have theirs in :mod:`losses._sigmoid_kernels`):

==========================  ===============================  ==================================
call                        focal, LDAM, binary focal         logit adjustment, hinge over all
==========================  ===============================  ==================================
eager, CPU                  CPU kernel (this module)          autograd Function (this module)
eager, CUDA                 plain formula / Function          autograd Function
``torch.compile``           plain formula (the compiler       autograd Function (traced)
                            fuses it)
``torch.func`` transform    plain formula                     plain formula
``create_graph=True``       plain formula, differentiated     plain formula, differentiated
                            again (see "Double backward")     again
==========================  ===============================  ==================================

Every kernel and Function is tested against its plain formula (tests/test_losses_cpu_kernels.py
sets :data:`_FAST_CPU` to False to take the plain paths on CPU).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from losses._common import _torch_ce_like, _upcast, _weight_and_reduce

# Private switch for the CPU kernels of LDAM and the binary focal loss (see their design notes).
# Tests set it to False to compare them with the device-independent paths, which are exact.
_FAST_CPU = True


def _use_fast_cpu(x: Tensor) -> bool:
    """Whether x takes a CPU-specific kernel: eager CPU only (under torch.compile the compiler
    fuses the plain path; on CUDA the caching allocator and fast exponentials make the plain
    path the fast one)."""
    return (_FAST_CPU and x.device.type == "cpu" and not torch.compiler.is_compiling()
            and not _functorch_active())


def _functorch_active() -> bool:
    """Whether a torch.func transform (grad, vmap, jvp, ...) is running: the custom autograd
    Functions here define no vmap or forward-mode rules, so those calls take plain formulas."""
    return not torch.compiler.is_compiling() and torch._C._are_functorch_transforms_active()


# ----------------------------------------------------------------------------- dispatch
# One function per loss with a fast path: which kernel a call takes (see the module docstring).


def ldam(
    logits: Tensor, x: Tensor, target: Tensor, safe: Tensor, valid: Tensor, scale: float,
    shift: Tensor, weight: Tensor | None, ignore_index: int, reduction: str, normalization: str,
) -> Tensor:
    r"""Reduced LDAM loss: cross-entropy on ``scale * x + shift e_y`` (``shift`` (N, 1, ...) is
    :math:`-s\,m_y`), from the CPU kernel or from ``F.cross_entropy``."""
    idx = safe.unsqueeze(1)
    if _use_fast_cpu(x):
        nll = _LDAMSoftmaxCPU.apply(x, idx, scale, shift, _source(logits, x))
        return _weight_and_reduce(nll, safe, valid, weight, reduction, normalization)
    # Not _ShiftedNLL: its backward's torch.exp of scale-30 log-probabilities (down to about
    # -1e3) is slower on CPU than the exp inside cross-entropy's fused backward kernel.
    # x * scale is a fresh tensor that mul does not save, so the in-place scatter is safe.
    adjusted = torch.mul(x, scale).scatter_add_(1, idx, shift)
    return _torch_ce_like(
        F.cross_entropy, adjusted, target, weight, ignore_index, reduction, normalization
    )


def logit_adjusted_nll(logits: Tensor, x: Tensor, idx: Tensor, shift: Tensor) -> Tensor:
    r"""Per-element :math:`-\log \mathrm{softmax}(z + \text{shift})_y`."""
    if _functorch_active():
        return _shifted_nll_plain(x, idx, 1.0, shift, None)
    return _ShiftedNLL.apply(x, idx, 1.0, shift, None, _source(logits, x))


def hinge_all(
    scores: Tensor, s: Tensor, idx: Tensor, m_b: Tensor | float, valid: Tensor
) -> Tensor:
    r"""Per-element :math:`\sum_{j \ne y} \max(0, m - s_y + s_j)`; ``valid`` (N, 1) marks
    counted rows (an ignored row's :math:`s_y` is taken as 0)."""
    if _functorch_active():
        return _hinge_all_plain(s, idx, m_b, valid)
    return _HingeAll.apply(s, idx, m_b, valid, _source(scores, s))


def target_log_prob(logits: Tensor, x: Tensor, idx: Tensor) -> Tensor:
    r""":math:`\log \mathrm{softmax}(x)_y` per element (the focal loss's :math:`\log p_y`), from the
    row-chunked CPU kernel for (N, C) logits, else from ``log_softmax`` and ``gather``."""
    if _use_fast_cpu(x) and x.dim() == 2 and x.shape[1] > 1:
        return _TargetLogProbCPU.apply(x, idx, _source(logits, x))
    return _target_log_prob_plain(x, idx)


def _target_log_prob_plain(x: Tensor, idx: Tensor) -> Tensor:
    return F.log_softmax(_upcast(x), dim=1).gather(1, idx).squeeze(1)


def binary_focal(x: Tensor, t: Tensor, gamma: float, alpha: float | None, reduction: str) -> Tensor:
    """The binary focal loss of upcast logits ``x``, reduced as ``reduction``."""
    if _use_fast_cpu(x):
        need_grad = torch.is_grad_enabled() and x.requires_grad
        return _BinaryFocalCPU.apply(x, t, gamma, alpha, reduction, need_grad)
    if gamma == 0.0:
        loss = F.binary_cross_entropy_with_logits(x, t, reduction="none")
        if alpha is not None:
            loss = loss * (t * alpha + (1.0 - t) * (1.0 - alpha))
    elif _functorch_active():
        loss = _binary_focal_plain(x, t, gamma, alpha)
    else:
        loss = _BinaryFocal.apply(x, t, gamma, alpha)
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()



# Double backward (design note)
# ------------------------------
# The custom autograd Functions below compute their gradients with in-place, closed-form
# arithmetic that autograd cannot differentiate again. ``torch.autograd.grad(...,
# create_graph=True)`` (gradient penalties, MAML, Hessian-vector products) runs a backward with
# grad mode on; then each Function differentiates a plain autograd formula of the same loss,
# recomputed from its saved input, so second derivatives are exact instead of silently
# dropped (which is what ``once_differentiable`` does when the upstream gradient does not
# itself require grad). Only that backward pays for the plain formula. The price: the saved
# logits make modifying them in place between the loss and its backward an error for
# logit-adjusted cross-entropy (and LDAM on CPU), where it used to pass.


def _source(logits: Tensor, x: Tensor) -> Tensor | None:
    """The caller's logits when x is an upcast copy of them, else None (x is the logits: a
    tensor passed twice to a Function would stop torch.compile)."""
    return None if x is logits else logits


def _graph_grad(loss_of: Callable[[Tensor], Tensor], source: Tensor, grad_out: Tensor) -> Tensor:
    """d loss_of(source) / d source, times grad_out, with a graph for higher derivatives."""
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(loss_of(source), source, grad_out, create_graph=True)
    return grad


def _shifted_nll_graph_backward(
    ctx: Any, grad_out: Tensor, idx: Tensor, source: Tensor, class_shift: Tensor | None,
    target_shift: Tensor | None,
) -> tuple:
    """The create_graph backward of a shifted-NLL Function whose inputs are (x, ..., source):
    the gradient of the plain formula goes to source when it was given (x was upcast from it),
    else to x (source was None and x is the caller's logits)."""
    grad = _graph_grad(
        lambda z: _shifted_nll_plain(z, idx, ctx.scale, class_shift, target_shift),
        source, grad_out,
    )
    outputs: list[Tensor | None] = [None] * len(ctx.needs_input_grad)
    outputs[-1 if ctx.needs_input_grad[-1] else 0] = grad
    return tuple(outputs)


def _binary_focal_plain(x: Tensor, t: Tensor, gamma: float, alpha: float | None) -> Tensor:
    """Elementwise binary focal loss from autograd primitives (the double-backward path)."""
    bce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    if gamma != 0.0:
        q = torch.lerp(torch.sigmoid(x), torch.sigmoid(-x), t).clamp_min(torch.finfo(x.dtype).tiny)
        bce = q.pow(gamma) * bce
    return bce if alpha is None else bce * (t * (2.0 * alpha - 1.0) + (1.0 - alpha))


def _shifted_nll_plain(
    source: Tensor, idx: Tensor, scale: float, class_shift: Tensor | None,
    target_shift: Tensor | None,
) -> Tensor:
    """-log softmax(scale * (z + class_shift) + target_shift e_y)_y from autograd primitives."""
    x = _upcast(source)
    adjusted = x if class_shift is None else x + class_shift
    if scale != 1.0:
        adjusted = adjusted * scale
    if target_shift is not None:
        adjusted = adjusted.scatter_add(1, idx, target_shift)
    return -torch.log_softmax(adjusted, dim=1).gather(1, idx).squeeze(1)


def _bce_value(x: Tensor, t: Tensor) -> Tensor:
    """Elementwise BCE with logits, (1 - t) x + max(-x, 0) + log1p(exp(-|x|)), for values only
    (no autograd: its subgradients at x = 0 would be wrong). The terms are summed in that order,
    so a confident element keeps its tiny loss in float32 (torch's own gives 0 at x = -20,
    t = 0 where the loss is 2e-9). One fresh buffer, the rest in place."""
    value = torch.addcmul(x, x, t, value=-1.0)
    value.add_(torch.neg(x).clamp_min_(0.0))
    return value.add_(torch.abs(x).neg_().exp_().log1p_())


def _one_minus_pt(x: Tensor, t: Tensor, p: Tensor) -> Tensor:
    """1 - p_t = t * sigmoid(-x) + (1 - t) * p, clamped at the smallest normal float.

    ``lerp`` returns its end points exactly at weights 0 and 1, so for 0/1 targets this is
    sigmoid(-x) or p with no cancellation as p_t -> 1 (``(sigmoid(-x) - p) * t + p`` gives 0
    for x = 20, t = 1 in float32). One fresh buffer, written in place.
    """
    q = torch.neg(x).sigmoid_()
    return torch.lerp(p, q, t, out=q).clamp_min_(torch.finfo(x.dtype).tiny)


class _BinaryFocal(torch.autograd.Function):
    r"""Elementwise sigmoid focal loss whose backward recomputes from (logits, target).

    Design note: built from autograd primitives, this loss keeps about seven (N, C)
    intermediates alive until backward, and on CPU every fresh (N, C) buffer costs about
    three in-place passes (page faults). Here only the inputs are saved, the closed-form
    gradient is recomputed with in-place arithmetic, and no gradient flows to the target.
    With :math:`q = 1 - p_t` (clamped) and :math:`p = \sigma(z)`:

    .. math::
        \frac{\partial l}{\partial z} = \alpha_t \big( \gamma\, q^{\gamma - 1}
            (1 - 2t)\, p (1 - p)\, \mathrm{BCE} + q^{\gamma} (p - t) \big)
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, t: Tensor, gamma: float, alpha: float | None) -> Tensor:
        ctx.save_for_backward(x, t)
        ctx.gamma, ctx.alpha = gamma, alpha
        q = _one_minus_pt(x, t, torch.sigmoid(x))
        loss = q.pow_(gamma).mul_(_bce_value(x, t))
        if alpha is not None:
            loss.mul_(torch.mul(t, 2.0 * alpha - 1.0).add_(1.0 - alpha))
        return loss

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, t = ctx.saved_tensors
        gamma, alpha = ctx.gamma, ctx.alpha
        if torch.is_grad_enabled():  # create_graph=True: see "Double backward"
            grad = _graph_grad(lambda z: _binary_focal_plain(z, t, gamma, alpha), x, grad_out)
            return grad, None, None, None
        p = torch.sigmoid(x)
        q = _one_minus_pt(x, t, p)
        qg = q.pow(gamma)
        # focus = gamma * q^(gamma - 1) * BCE * p * (1 - p) * (1 - 2t), built in q's buffer
        focus = q.reciprocal_().mul_(qg).mul_(gamma)
        focus.mul_(_bce_value(x, t)).mul_(p)
        grad = qg.mul_(torch.sub(p, t))  # q^gamma * (p - t)
        focus.mul_(p.neg_().add_(1.0))
        focus.addcmul_(focus, t, value=-2.0)
        grad.add_(focus)
        if alpha is not None:
            grad.mul_(torch.mul(t, 2.0 * alpha - 1.0).add_(1.0 - alpha))
        return grad.mul_(grad_out), None, None, None


# Binary focal loss on CPU (design note)
# ---------------------------------------
# On CPU a fresh buffer of the logits' size costs about ten in-place passes over one (the
# allocator maps memory this large afresh on every call and each first touch page-faults),
# and the elementwise loss needs about fifteen passes with several transcendental functions.
# _BinaryFocal recomputes everything in backward with six fresh buffers. Here the work runs
# over chunks of _CHUNK_BYTES: a chunk's temporaries stay in the L2 cache and below the
# allocator's mmap threshold, and per-op dispatch overhead is spread over enough elements.
# Forward computes the loss and the gradient for a unit upstream gradient in the same pass,
# sharing sigmoid(+-x), 1 - p_t and the BCE; the only buffers of the logits' size are that
# gradient (saved, in place of the log-softmax cross-entropy saves) and the "none" output.
# Backward scales the saved gradient in place by the upstream gradient and returns it, so it
# allocates nothing. That consumes the saved gradient: a second backward through the same
# graph (retain_graph=True) recomputes it from the saved inputs, so results never depend on
# how often backward runs. 128 KB per chunk: on the project's shared 2-core machine 512 KB
# measured 1.41x and 128 KB 1.17x F.cross_entropy at (16384, 1000) in one run (256 KB 1.18x,
# 64 KB 1.29x, per-op overhead taking over); the row-chunked sigmoid kernels gain alike.
_CHUNK_BYTES = 1 << 17


def _chunk_bytes() -> int:
    """Bytes per chunk for the current intra-op thread count. With one thread, _CHUNK_BYTES.
    With T > 1 threads each elementwise op of a chunk is split across the threads only when the
    chunk holds more elements than torch's parallel grain (32768), so a 128 KB float32 chunk would
    run on one core while torch's own BCE or cross-entropy uses all T: chunks are then 2 T times
    larger (T halves of 256 KB, still in a core's L2). On the project's 2-core machine (2 threads)
    this took ASL from 2.55x to 1.47x BCE at (65536, 14), DB from 3.56x to 1.79x and the binary
    focal loss from 2.79x to 1.36x (benchmarks/bench_losses.py, the first run before and after);
    256 KB and 768 KB chunks were slower in a scan of sizes."""
    threads = torch.get_num_threads()
    return _CHUNK_BYTES if threads <= 1 else _CHUNK_BYTES * 2 * threads


def _binary_focal_chunk(
    x: Tensor, t: Tensor, gamma: float, alpha: float | None, loss_out: Tensor | None,
    grad_out: Tensor | None,
) -> None:
    r"""Binary focal loss of one 1-D chunk and its gradient, written into ``loss_out`` (the
    elementwise loss, or its sum when 0-dim) and ``grad_out``; either may be None.

    With :math:`\bar B = -\mathrm{BCE} = \log \sigma(-z) + t z`, :math:`q = 1 - p_t`,
    :math:`f = \alpha_t q^{\gamma}` and :math:`d = \alpha_t q^{\gamma - 1}`:
    :math:`l = -f \bar B` and :math:`\partial l / \partial z = f (p - t)
    - \gamma d\,(1 - 2t)\,p (1 - p)\,\bar B`.

    Precision: :math:`\bar B` is summed as torch's ``binary_cross_entropy_with_logits``
    sums it, :math:`(1 - t) z + \max(-z, 0) + \log(1 + e^{-|z|})`, so its relative error is a
    few float epsilons, confident positives and negatives included (tested against float64 in
    tests/test_losses_cpu_kernels.py).
    """
    tiny = torch.finfo(x.dtype).tiny
    # sigma(-x) = 1 - p without cancellation.
    sn = torch.neg(x).sigmoid_()
    p = torch.sigmoid(x)
    # -BCE = log1p(-sigma(-|x|)) - (max(x, 0) - t x): the bracket is exactly 0 for a confident
    # positive (x - x * 1), so its tiny loss survives (summing log sigma(-x) + t x cancels).
    nb = torch.minimum(p, sn).neg_().log1p_()
    nb.sub_(torch.clamp_min(x, 0.0).addcmul_(x, t, value=-1.0))
    sn.clamp_min_(tiny)  # 1 - p from here on, clamped at the smallest normal float
    w = None if alpha is None else torch.mul(t, 2.0 * alpha - 1.0).add_(1.0 - alpha)
    f: Tensor | None = w
    d: Tensor | None = None
    if gamma != 0.0:
        q = torch.lerp(p, sn, t).clamp_min_(tiny)  # 1 - p_t, see _one_minus_pt
        d = q if gamma == 2.0 else torch.pow(q, gamma - 1.0)
        if w is not None:
            d = torch.mul(d, w)
        f = torch.mul(d, q)
    if loss_out is not None:
        if loss_out.dim() == 0:
            if f is None:
                torch.sum(nb, dim=0, out=loss_out)
            else:
                torch.dot(f, nb, out=loss_out)
        elif f is None:
            loss_out.copy_(nb)
        else:
            torch.mul(f, nb, out=loss_out)
        loss_out.neg_()
    if grad_out is None:
        return
    if d is not None:
        nb.mul_(p).mul_(sn)
        nb.addcmul_(nb, t, value=-2.0)  # (1 - 2t) p (1 - p) B-bar
    p.sub_(t)
    if f is None:
        grad_out.copy_(p)
    else:
        torch.mul(p, f, out=grad_out)
    if d is not None:
        grad_out.addcmul_(d, nb, value=-gamma)


def _binary_focal_chunks(
    x: Tensor, t: Tensor, gamma: float, alpha: float | None, reduction: str | None,
    with_grad: bool,
) -> tuple[Tensor | None, Tensor | None]:
    """(loss reduced as ``reduction``, or None when ``reduction`` is None; elementwise gradient
    for a unit upstream gradient, or None), computed chunk by chunk."""
    flat_x, flat_t = x.reshape(-1), t.reshape(-1)
    n = flat_x.numel()
    step = max(1, _chunk_bytes() // x.element_size())
    starts = range(0, n, step)
    loss = None
    if reduction == "none":
        loss = torch.empty_like(flat_x)
    elif reduction is not None:
        loss = flat_x.new_empty(len(starts))  # one partial sum per chunk
    grad = torch.empty_like(flat_x) if with_grad else None
    for i, start in enumerate(starts):
        chunk = slice(start, start + step)
        _binary_focal_chunk(
            flat_x[chunk], flat_t[chunk], gamma, alpha,
            None if loss is None else (loss[chunk] if reduction == "none" else loss[i]),
            None if grad is None else grad[chunk],
        )
    if loss is not None:
        if reduction == "none":
            loss = loss.view(x.shape)
        else:
            loss = loss.sum()
            if reduction == "mean":
                loss = loss / n  # an empty input gives NaN, as Tensor.mean does
    return loss, None if grad is None else grad.view(x.shape)


class _BinaryFocalCPU(torch.autograd.Function):
    """Binary focal loss whose forward also computes the gradient; see the design note above."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, t: Tensor, gamma: float, alpha: float | None, reduction: str,
        need_grad: bool,
    ) -> Tensor:
        loss, grad = _binary_focal_chunks(x, t, gamma, alpha, reduction, need_grad)
        if grad is not None:
            ctx.save_for_backward(grad, x, t)
            ctx.grad_intact = True
        ctx.gamma, ctx.alpha, ctx.reduction = gamma, alpha, reduction
        assert loss is not None
        return loss

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        grad, x, t = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: see "Double backward"
            reductions: dict[str, Callable[[Tensor], Tensor]] = {
                "none": lambda v: v, "sum": torch.sum, "mean": torch.mean
            }
            reduce = reductions[ctx.reduction]
            grad = _graph_grad(
                lambda z: reduce(_binary_focal_plain(z, t, ctx.gamma, ctx.alpha)), x, grad_out
            )
            return grad, None, None, None, None, None
        if ctx.reduction == "mean":
            grad_out = grad_out / max(x.numel(), 1)
        if ctx.grad_intact:
            ctx.grad_intact = False
            # Scaled in place through .data, so the saved tensor's version is unchanged and
            # its unpacking in a second backward does not raise; grad_intact sends that
            # backward to the recomputation instead.
            grad = grad.data.mul_(grad_out)
        else:
            grad = _binary_focal_chunks(x, t, ctx.gamma, ctx.alpha, None, True)[1]
            assert grad is not None
            grad.mul_(grad_out)
        return grad, None, None, None, None, None


def _hinge_all_plain(
    source: Tensor, idx: Tensor, m_b: Tensor | float, valid: Tensor
) -> Tensor:
    """The hinge over all classes from autograd primitives (transforms and double backward)."""
    s = _upcast(source)
    s_y = torch.where(valid, s.gather(1, idx), 0.0)
    return F.relu(s - s_y + m_b).sum(dim=1) - _hinge_self_term(m_b)


def _hinge_self_term(m_b: Tensor | float) -> Tensor | float:
    """The j == y term of the hinge over all classes, max(0, m) exactly (s_y - s_y is 0)."""
    return max(m_b, 0.0) if isinstance(m_b, float) else F.relu(m_b).squeeze(1)


class _HingeAll(torch.autograd.Function):
    r"""Hinge summed over every wrong class, :math:`\sum_{j \ne y} \max(0, m - s_y + s_j)`.

    Design note: the j == y term is exactly :math:`\max(0, m)` (:math:`s_y - s_y` is exactly 0),
    so it is subtracted instead of masked. On CPU a fresh (N, C) buffer costs about three
    in-place passes (page faults), so this allocates one buffer in forward (the clamped terms,
    saved like cross-entropy saves its log-softmax) and one in backward (their sign, which is
    the gradient up to the count of active terms at the target), against five for the autograd
    graph of ``relu(s - s_y + m).sum(1)``. In an ignored row (``valid`` False) :math:`s_y` is
    taken as 0, so a padding row of ``-inf`` gives finite terms and a zero gradient.
    The second derivative is 0 almost everywhere (the loss is piecewise linear); a
    ``create_graph=True`` backward differentiates :func:`_hinge_all_plain` to get it.
    """

    @staticmethod
    def forward(
        ctx: Any, s: Tensor, idx: Tensor, m_b: Tensor | float, valid: Tensor, source: Tensor | None
    ) -> Tensor:
        s_y = torch.where(valid, s.gather(1, idx), 0.0)
        terms = torch.sub(s, s_y - m_b).clamp_min_(0)
        # For a double backward only: the caller's scores (see _ShiftedNLL).
        ctx.save_for_backward(terms, idx, valid, s if source is None else source,
                              m_b if isinstance(m_b, Tensor) else None)
        ctx.m_float = m_b if isinstance(m_b, float) else None
        return terms.sum(dim=1) - _hinge_self_term(m_b)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        terms, idx, valid, source, m_tensor = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: see "Double backward"
            m_b = ctx.m_float if m_tensor is None else m_tensor
            grad = _graph_grad(lambda z: _hinge_all_plain(z, idx, m_b, valid), source, grad_out)
            outputs: list[Tensor | None] = [None] * 5
            outputs[-1 if ctx.needs_input_grad[-1] else 0] = grad
            return tuple(outputs)
        g = grad_out.unsqueeze(1)
        grad = torch.sign(terms)
        # d/ds_y of every active term j != y is -1; the j == y term's own +1 and -1 cancel,
        # so the target entry becomes sign_y - count = -(number of active j != y).
        count = grad.sum(dim=1, keepdim=True)
        grad.scatter_add_(1, idx, -count)
        return grad.mul_(g), None, None, None, None


class _ShiftedNLL(torch.autograd.Function):
    r"""Per-element :math:`-\log \mathrm{softmax}(a\,z + b + c\,e_y)_y` (logit adjustment).

    Design note: ``F.cross_entropy`` on a shifted copy of the logits allocates four (N, C)
    buffers (the copy, the log-softmax, and two in backward); on CPU each fresh buffer costs
    about three in-place passes (page faults). This allocates three: the shifted copy (freed
    after forward), the log-softmax (saved, as cross-entropy saves it) and the gradient
    :math:`a\,(\mathrm{softmax} - e_y)`, written in place.
    """

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, idx: Tensor, scale: float, class_shift: Tensor | None,
        target_shift: Tensor | None, source: Tensor | None,
    ) -> Tensor:
        adjusted = torch.mul(x, scale) if class_shift is None else torch.add(x, class_shift)
        if class_shift is not None and scale != 1.0:
            adjusted.mul_(scale)
        if target_shift is not None:
            adjusted.scatter_add_(1, idx, target_shift)
        log_probs = torch.log_softmax(adjusted, dim=1)
        del adjusted
        # For a double backward only: the caller's logits (x itself, or what x was upcast
        # from, passed as source). Usually no extra memory (the caller's tensor), but like any
        # saved input they make an in-place change of the logits before backward an error
        # (as with F.binary_cross_entropy_with_logits), and saved-tensor hooks such as
        # save_on_cpu copy them.
        ctx.save_for_backward(log_probs, idx, x if source is None else source, class_shift,
                              target_shift)
        ctx.scale = scale
        return log_probs.gather(1, idx).squeeze(1).neg_()

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        log_probs, idx, source, class_shift, target_shift = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: see "Double backward"
            return _shifted_nll_graph_backward(ctx, grad_out, idx, source, class_shift,
                                               target_shift)
        grad = log_probs.exp()
        grad.scatter_add_(1, idx, torch.full_like(idx, -1, dtype=grad.dtype))
        return grad.mul_(grad_out.unsqueeze(1) * ctx.scale), None, None, None, None, None


# LDAM on CPU (design note)
# -------------------------
# LDAM is cross-entropy on s * (z - m_y e_y) with s = 30: shifted by their row maximum, most
# of those logits lie far below -87, where torch.exp on CPU leaves its vectorised path (its
# result is subnormal or zero) and runs many times slower, so F.cross_entropy on them costs
# about three times F.cross_entropy on z. On CPU a fresh (N, C) buffer also costs about ten
# in-place passes (page faults). _LDAMSoftmaxCPU allocates one buffer in forward and one in
# backward, against four for cross-entropy on a scaled copy, and clamps the shifted logits at
# _LDAM_FLOOR before exp. Every clamped term contributes e^floor instead of less, while the
# row maximum contributes exactly 1, so the softmax denominator has relative error below
# (C - 1) e^floor, i.e. C * 8.8e-27 (far below float64 rounding for any C < 10^9), the loss
# the same absolute error, and each gradient entry an absolute error below s * 8.8e-27. The
# target's own shifted logit enters the loss unclamped, so badly misclassified targets keep
# their exact, large loss. -60 rather than -87 keeps e^floor times the backward's scale
# (s * upstream / denominator) clear of subnormal numbers, which are slow too.
_LDAM_FLOOR = -60.0


class _LDAMSoftmaxCPU(torch.autograd.Function):
    r"""Per-element :math:`-\log \mathrm{softmax}(s z + b\,e_y)_y` along dim 1 (LDAM: b = -s m_y),
    with the shifted logits clamped at ``_LDAM_FLOOR`` inside the denominator only; see the
    design note above for the bound."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, idx: Tensor, scale: float, target_shift: Tensor, source: Tensor | None
    ) -> Tensor:
        a = torch.mul(x, scale).scatter_add_(1, idx, target_shift)
        a.sub_(a.amax(dim=1, keepdim=True))
        a_y = a.gather(1, idx)
        denom = a.clamp_min_(_LDAM_FLOOR).exp_().sum(dim=1, keepdim=True)
        # For a double backward only: the caller's logits (see _ShiftedNLL).
        ctx.save_for_backward(a, denom, idx, x if source is None else source, target_shift)
        ctx.scale = scale
        return denom.log().sub_(a_y).squeeze(1)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        exp_a, denom, idx, source, target_shift = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: see "Double backward"
            return _shifted_nll_graph_backward(ctx, grad_out, idx, source, None, target_shift)
        g = grad_out.unsqueeze(1) * ctx.scale
        grad = torch.mul(exp_a, g / denom)  # s * softmax * upstream
        grad.scatter_add_(1, idx, g.neg_())
        return grad, None, None, None, None




# Target log-probability on CPU (design note)
# --------------------------------------------
# The focal loss needs only log p_y per row, yet log_softmax writes a fresh (N, C) buffer in
# forward (kept for backward) and its backward another: on CPU each fresh buffer of that size
# costs about ten in-place passes (page faults). _TargetLogProbCPU computes each row's
# maximum and log-sum-exp block of rows by block (a block's temporaries stay in the L2 cache),
# keeps only those (N,) vectors and the logits, and in backward writes the gradient
# g * (e_y - softmax) = g * (e_y - exp(z - lse)) into the one buffer it returns. Values are
# log_softmax's to rounding (the same max-shifted sum, the maximum's own term 1 added by
# log1p, which keeps a confident row's tiny loss exact where log(1 + r) rounds it); a row whose
# logits are all -inf is NaN as with log_softmax.


# Blocks of about 2 MB: fewer, longer ops (reductions along short rows of C = 10 pay per row);
# measured faster than 512 KB here, unlike the binary focal kernel's many temporaries.
_TARGET_CHUNK_BYTES = 1 << 21


class _TargetLogProbCPU(torch.autograd.Function):
    r""":math:`z_y - \log \sum_j e^{z_j}` per row of (N, C) logits; see the design note above."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, idx: Tensor, source: Tensor | None) -> Tensor:
        n, c = x.shape
        rows = max(1, _TARGET_CHUNK_BYTES // (x.element_size() * c))
        tops, rest = x.new_empty(n, 1), x.new_empty(n)
        arg = idx.new_empty(n, 1)
        for start in range(0, n, rows):
            block = slice(start, start + rows)
            torch.max(x[block], dim=1, keepdim=True, out=(tops[block], arg[block]))
            # sum_j exp(z_j - top) = 1 + rest, with the top term left out of rest, so that
            # log1p(rest) keeps a confident row's tiny loss to full relative precision. A row
            # with NaN, +inf or only -inf logits gives NaN, as log_softmax does.
            terms = torch.sub(x[block], tops[block]).exp_().scatter_(1, arg[block], 0.0)
            torch.sum(terms, dim=1, out=rest[block])
        tops = tops.squeeze(1)
        log_sums = rest.log1p_()
        # The caller's logits (x itself, or what x was upcast from: less memory for half
        # logits, upcast again in backward), as in _ShiftedNLL.
        ctx.save_for_backward(x if source is None else source, idx, tops, log_sums)
        # (z_y - top) - log sum, in log_softmax's order, so the two round alike.
        return x.gather(1, idx).squeeze(1).sub_(tops).sub_(log_sums)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        source, idx, tops, log_sums = ctx.saved_tensors
        lse = torch.add(tops, log_sums).unsqueeze(1)
        if torch.is_grad_enabled():  # create_graph=True: see "Double backward"
            grad = _graph_grad(lambda z: _target_log_prob_plain(z, idx), source, grad_out)
            outputs: list[Tensor | None] = [None] * 3
            outputs[-1 if ctx.needs_input_grad[-1] else 0] = grad
            return tuple(outputs)
        x = _upcast(source)
        n, c = x.shape
        rows = max(1, _TARGET_CHUNK_BYTES // (x.element_size() * c))
        grad = torch.empty_like(x)
        g = grad_out.unsqueeze(1)
        for start in range(0, n, rows):
            block = slice(start, start + rows)
            out = grad[block]
            torch.sub(x[block], lse[block], out=out)
            out.exp_().mul_(g[block].neg())
        grad.scatter_add_(1, idx, g)
        return grad, None, None
