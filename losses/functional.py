r"""Imbalance-aware classification losses as functions: the math lives here.

Every loss takes raw scores ``logits`` of shape (N, C) (or (N, C, d1, ...) for dense prediction
where noted) and a ``target``, and is called as ``loss(logits, target, ...)``.

Conventions shared by every function (design note)
--------------------------------------------------
* **Precision.** float16 and bfloat16 logits are computed in float32, as torch's cross-entropy
  does under autocast; the returned loss is then **float32**. float32 and float64 logits are
  computed and returned in their own dtype. In short: the result dtype is
  ``torch.promote_types(logits.dtype, torch.float32)``. Gradients reach the logits in their own
  dtype.
* **ignore_index.** Targets equal to ``ignore_index`` contribute 0 to the loss and its gradient.
  ``reduction="none"`` puts 0 at their positions. A batch where every target is ignored gives a
  loss of 0 (with a zero gradient), never NaN: the mean's denominator is replaced by 1 when it is 0.
* **Weights and the mean.** For losses with per-class weights, ``normalization`` says what
  ``reduction="mean"`` divides by:

  ==================  ==================================  =========================================
  ``normalization``   mean                                 note
  ==================  ==================================  =========================================
  ``"weights"``       :math:`\sum_n w_{y_n} l_n / \sum_n w_{y_n}`  torch's ``F.cross_entropy(weight=)``;
                                                           a sample's share depends on the classes
                                                           of the rest of its batch (with batch
                                                           size 1 the weight cancels out)
  ``"samples"``       :math:`\sum_n w_{y_n} l_n / N'`       ``N'`` = number of counted (not ignored)
                                                           targets; a sample's share does not depend
                                                           on the others' classes, so gradient
                                                           accumulation and batch size 1 behave
  ==================  ==================================  =========================================

* **Per-class vectors and devices.** ``weight``, ``alpha``, ``class_margins``, ``counts`` and
  ``prior_or_counts`` are a tensor or a Python sequence of length C. A tensor must already be on
  the logits' device (another device raises ``ValueError``, as torch's losses do: it is never
  moved for you, since a hidden copy on every call would be a host synchronisation). A sequence is
  turned into a tensor on the logits' device, one host-to-device copy per call: pass a tensor
  already on the device to avoid it (the loss modules store theirs as buffers that ``.to(device)``
  moves once).
* **No host synchronisation.** Nothing here calls ``.item()``, indexes with a boolean mask or
  creates a tensor whose shape depends on values, so the losses queue asynchronously on GPU and
  compile with ``torch.compile(fullgraph=True)`` (given per-class tensors on the logits' device). Value checks (target indices in range, zero
  counts) run only in eager mode on CPU; see :mod:`losses._validation`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from losses import _validation as V

__all__ = [
    "binary_focal_loss",
    "focal_loss",
    "ldam_loss",
    "logit_adjusted_cross_entropy",
    "margin_loss",
    "posthoc_adjust",
    "weighted_cross_entropy",
    "weighted_nll_loss",
]

MARGIN_KINDS = ("hinge", "log", "square_square")
MARGIN_AGAINST = ("most_offending", "all")

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


# ----------------------------------------------------------------------------- helpers


def _upcast(x: Tensor) -> Tensor:
    """x in its compute dtype: float32 for half types, unchanged otherwise."""
    dtype = torch.promote_types(x.dtype, torch.float32)
    return x if x.dtype == dtype else x.to(dtype)


def _safe_target(target: Tensor, ignore_index: int) -> tuple[Tensor, Tensor]:
    """(target with ignored entries replaced by class 0, mask of counted entries)."""
    valid = target != ignore_index
    return target.masked_fill(~valid, 0), valid


def _cast(vec: Tensor | None, like: Tensor) -> Tensor | None:
    """vec in like's dtype. Never a device move: callers have checked the device already."""
    return None if vec is None else vec.to(dtype=like.dtype)


def _reduce(
    loss: Tensor, reduction: str, valid: Tensor, w_y: Tensor | None, normalization: str
) -> Tensor:
    """Reduce a per-element loss that is already 0 at ignored positions and already weighted.

    ``w_y`` is the per-element target weight (0 at ignored positions) or None.
    """
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    if normalization == "weights" and w_y is not None:
        den = w_y.sum()
    else:
        den = valid.sum().to(loss.dtype)
    # An all-ignored batch gives 0/0; dividing by 1 instead returns 0 with a (zero) gradient.
    return total / torch.where(den == 0, torch.ones_like(den), den)


def _check_common(reduction: str, normalization: str) -> None:
    V.check_reduction(reduction)
    V.check_normalization(normalization)


def _class_view(vec: Tensor, ndim: int) -> Tensor:
    """A (C,) vector shaped to broadcast along dim 1 of an (N, C, d1, ...) tensor."""
    return vec.view(-1, *([1] * (ndim - 2)))


def _torch_ce_like(
    fn, x: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int, reduction: str,
    normalization: str,
) -> Tensor:
    """F.cross_entropy / F.nll_loss with our mean (no NaN on empty batches, two normalisations)."""
    if reduction == "none":
        return fn(x, target, weight=weight, ignore_index=ignore_index, reduction="none")
    total = fn(x, target, weight=weight, ignore_index=ignore_index, reduction="sum")
    if reduction == "sum":
        return total
    safe, valid = _safe_target(target, ignore_index)
    if normalization == "weights" and weight is not None:
        den = (weight.take(safe) * valid).sum()
    else:
        den = valid.sum().to(total.dtype)
    return total / torch.where(den == 0, torch.ones_like(den), den)


# ----------------------------------------------------------------------------- NLL / CE


def weighted_nll_loss(
    log_probs: Tensor,
    target: Tensor,
    weight: Tensor | Sequence[float] | None = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    normalization: str = "weights",
) -> Tensor:
    r"""Class-weighted negative log-likelihood of log-probabilities.

    Unreduced, for sample :math:`n` with target :math:`y_n` and log-probabilities :math:`x_n`:

    .. math::
        l_n = -w_{y_n} \, x_{n, y_n}

    (0 where :math:`y_n` is ``ignore_index``). ``reduction="sum"`` gives :math:`\sum_n l_n`;
    ``reduction="mean"`` divides that sum by :math:`\sum_n w_{y_n}` when
    ``normalization="weights"`` (exactly ``F.nll_loss(weight=weight)``) or by the number of
    counted targets when ``normalization="samples"``; see the module docstring for when to prefer
    which. An all-ignored batch gives 0, not NaN.

    Args:
        log_probs: log-probabilities, e.g. the output of ``log_softmax(dim=1)``.
        target: class indices.
        weight: per-class weights of length C (e.g. from :func:`losses.class_weights`), or None:
            a tensor on the device of ``log_probs``, or a sequence (copied there on every call;
            pass a tensor already on the device to avoid that transfer).
        ignore_index: target value that is left out.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        normalization: ``"weights"`` or ``"samples"``, for ``reduction="mean"``.

    Shape:
        - log_probs: (N, C) or (N, C, d1, ...)
        - target: (N,) or (N, d1, ...), integer
        - output: scalar, or the target's shape for ``reduction="none"``

    Example::

        >>> import torch
        >>> log_probs = torch.log(torch.tensor([[0.5, 0.5], [0.9, 0.1]]))
        >>> target = torch.tensor([0, 1])
        >>> weight = torch.tensor([1.0, 3.0])
        >>> weighted_nll_loss(log_probs, target, weight, reduction="none")
        tensor([0.6931, 6.9078])
        >>> weighted_nll_loss(log_probs, target, weight)  # (0.6931 + 6.9078) / (1 + 3)
        tensor(1.9002)
        >>> weighted_nll_loss(log_probs, target, weight, normalization="samples")  # ... / 2
        tensor(3.8005)
    """
    _check_common(reduction, normalization)
    target = V.check_index_target(log_probs, target, ignore_index, name="log_probs")
    weight = V.class_vector(weight, log_probs, name="weight", like_name="log_probs")
    x = _upcast(log_probs)
    return _torch_ce_like(
        F.nll_loss, x, target, _cast(weight, x), ignore_index, reduction, normalization
    )


def weighted_cross_entropy(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | Sequence[float] | None = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    normalization: str = "weights",
) -> Tensor:
    r"""Class-weighted cross-entropy from logits.

    Unreduced, with :math:`p_{n} = \mathrm{softmax}(z_n)`:

    .. math::
        l_n = -w_{y_n} \log p_{n, y_n}
            = w_{y_n} \Big( \log \sum_j e^{z_{n,j}} - z_{n, y_n} \Big)

    Reductions as in :func:`weighted_nll_loss`: with ``normalization="weights"`` (default) this
    is exactly ``F.cross_entropy(logits, target, weight=weight)``; ``"samples"`` divides the sum
    by the number of counted targets instead. Built on torch's fused log-softmax + NLL, so it
    costs the same as ``F.cross_entropy``. ``weight`` is a tensor on the logits' device or a
    sequence (copied there on every call; pass a tensor already on the device to avoid that).

    Shape:
        - logits: (N, C) or (N, C, d1, ...)
        - target: (N,) or (N, d1, ...), integer
        - output: scalar, or the target's shape for ``reduction="none"``

    Example::

        >>> import torch
        >>> logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
        >>> target = torch.tensor([0, 1])
        >>> weighted_cross_entropy(logits, target, torch.tensor([1.0, 4.0]), reduction="none")
        tensor([0.1269, 1.2530])
        >>> weighted_cross_entropy(logits, target, torch.tensor([1.0, 4.0]))  # 1.3799 / 5
        tensor(0.2760)
    """
    _check_common(reduction, normalization)
    target = V.check_index_target(logits, target, ignore_index)
    weight = V.class_vector(weight, logits, name="weight")
    x = _upcast(logits)
    return _torch_ce_like(
        F.cross_entropy, x, target, _cast(weight, x), ignore_index, reduction, normalization
    )


# ----------------------------------------------------------------------------- focal


def focal_loss(
    logits: Tensor,
    target: Tensor,
    alpha: Tensor | Sequence[float] | None = None,
    *,
    gamma: float = 2.0,
    ignore_index: int = -100,
    reduction: str = "mean",
    normalization: str = "samples",
) -> Tensor:
    r"""Softmax focal loss (Lin et al. 2017, https://arxiv.org/abs/1708.02002).

    Unreduced, with :math:`p_{n} = \mathrm{softmax}(z_n)`:

    .. math::
        l_n = -\alpha_{y_n} \, (1 - p_{n, y_n})^{\gamma} \, \log p_{n, y_n}

    (:math:`\alpha \equiv 1` when ``alpha`` is None). ``reduction="sum"`` sums;
    ``reduction="mean"`` divides by the number of counted targets (``normalization="samples"``,
    the default and the paper's convention) or by :math:`\sum_n \alpha_{y_n}`
    (``"weights"``). With ``gamma=0`` and ``alpha=None`` this is cross-entropy, values and
    gradients.

    Computed from :math:`\log p_{n,y_n}` = log-softmax gathered at the target (no one-hot
    (N, C) tensor); :math:`1 - p = -\mathrm{expm1}(\log p)` keeps precision as :math:`p \to 1`,
    and it is clamped at the smallest normal float before the power, so that
    :math:`\gamma < 1` gives finite gradients even for saturated logits, where the naive
    :math:`(1-p)^{\gamma}` has an infinite derivative at :math:`p = 1`.

    Args:
        logits: raw scores.
        target: class indices.
        alpha: per-class weights of length C, or None: a tensor on the logits' device, or a
            sequence (copied there on every call; a tensor on the device avoids that transfer).
        gamma: focusing parameter, >= 0.
        ignore_index: target value that is left out.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        normalization: ``"samples"`` or ``"weights"``, for ``reduction="mean"``.

    Shape:
        - logits: (N, C) or (N, C, d1, ...)
        - target: (N,) or (N, d1, ...), integer
        - output: scalar, or the target's shape for ``reduction="none"``

    Example::

        >>> import torch
        >>> logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])  # p_y = 0.8808, 0.7311
        >>> target = torch.tensor([0, 1])
        >>> focal_loss(logits, target, gamma=2.0, reduction="none")  # (1-p)^2 * CE
        tensor([0.0018, 0.0227])
        >>> focal_loss(logits, target, gamma=0.0, reduction="none")  # cross-entropy
        tensor([0.1269, 0.3133])
    """
    _check_common(reduction, normalization)
    gamma = V.check_gamma(gamma)
    target = V.check_index_target(logits, target, ignore_index)
    alpha = V.class_vector(alpha, logits, name="alpha")
    x = _upcast(logits)
    safe, valid = _safe_target(target, ignore_index)
    logp_y = F.log_softmax(x, dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
    loss = -logp_y
    if gamma != 0.0:
        tiny = torch.finfo(x.dtype).tiny
        loss = loss * (-torch.expm1(logp_y)).clamp_min(tiny).pow(gamma)
    a = _cast(alpha, x)
    w_y = valid.to(x.dtype) if a is None else a.take(safe) * valid
    return _reduce(loss * w_y, reduction, valid, None if a is None else w_y, normalization)


def binary_focal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    gamma: float = 2.0,
    alpha: float | None = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Sigmoid focal loss for binary and multi-label targets (Lin et al. 2017,
    https://arxiv.org/abs/1708.02002).

    Unreduced, per element, with :math:`p = \sigma(z)`, target :math:`t \in [0, 1]`,
    :math:`p_t = t\,p + (1-t)(1-p)` and :math:`\alpha_t = t\,\alpha + (1-t)(1-\alpha)`:

    .. math::
        l = -\alpha_t \, (1 - p_t)^{\gamma} \,
            \big( t \log \sigma(z) + (1-t) \log \sigma(-z) \big)

    (:math:`\alpha_t \equiv 1` when ``alpha`` is None). The log term is the binary
    cross-entropy with logits, :math:`\mathrm{softplus}(z) - t z`; :math:`1 - p_t` is
    :math:`t\,\sigma(-z) + (1-t)\,\sigma(z)` (a ``lerp``, exact at :math:`t \in \{0, 1\}`
    however close :math:`p_t` is to 1), clamped at the smallest normal float before the power
    so that ``gamma < 1`` keeps gradients finite. ``reduction="mean"`` averages over all
    elements, ``"sum"`` sums. With ``gamma=0`` and ``alpha=None`` this is
    ``F.binary_cross_entropy_with_logits``. No gradient flows to ``target``. On CPU the loss
    and its closed-form gradient are computed together in forward, in cache-sized chunks, and
    the gradient (one buffer of the logits' size, as cross-entropy keeps its log-softmax) is
    saved. Elsewhere, for ``gamma > 0``, only the inputs are saved and the closed form is
    recomputed in backward. Under ``create_graph=True`` (double backward) both differentiate a
    plain autograd formula instead, so higher derivatives are exact.
    The two agree to rounding (see :func:`_binary_focal_chunk` for the BCE term's precision).
    There is no ``ignore_index`` (targets are not indices); give ignored elements a zero
    weight by multiplying the ``"none"`` output.

    Args:
        logits: raw scores, any shape.
        target: 0/1 labels (or probabilities) as floats, the logits' shape.
        gamma: focusing parameter, >= 0.
        alpha: weight of the positives in [0, 1] (negatives get ``1 - alpha``), or None.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Shape:
        - logits: (*), e.g. (N,) for binary or (N, C) for multi-label
        - target: (*), same shape, floating
        - output: scalar, or (*) for ``reduction="none"``

    Example::

        >>> import torch
        >>> logits = torch.tensor([2.0, -1.0])
        >>> target = torch.tensor([1.0, 1.0])  # p_t = 0.8808, 0.2689
        >>> binary_focal_loss(logits, target, gamma=2.0, alpha=0.25, reduction="none")
        tensor([0.0005, 0.1755])
    """
    V.check_reduction(reduction)
    gamma = V.check_gamma(gamma)
    alpha = _check_binary_alpha(alpha)
    V.check_binary_target(logits, target)
    x = _upcast(logits)
    t = target.to(x.dtype)
    if _use_fast_cpu(x):
        need_grad = torch.is_grad_enabled() and x.requires_grad
        return _BinaryFocalCPU.apply(x, t.detach(), gamma, alpha, reduction, need_grad)
    if gamma == 0.0:
        loss = F.binary_cross_entropy_with_logits(x, t, reduction="none")
        if alpha is not None:
            loss = loss * (t * alpha + (1.0 - t) * (1.0 - alpha))
    elif _functorch_active():
        loss = _binary_focal_plain(x, t.detach(), gamma, alpha)
    else:
        loss = _BinaryFocal.apply(x, t.detach(), gamma, alpha)
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def _check_binary_alpha(alpha: float | None) -> float | None:
    if alpha is None:
        return None
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise TypeError(
            f"alpha should be a float in [0, 1] (the weight of the positives) or None, but got "
            f"alpha={alpha!r} ({type(alpha).__name__}); pass a number such as alpha=0.25."
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(
            f"alpha should be in [0, 1] (the weight of the positives), but got alpha={alpha!r}; "
            "the focal paper uses alpha=0.25."
        )
    return float(alpha)


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
    ctx, grad_out: Tensor, idx: Tensor, source: Tensor, class_shift: Tensor | None,
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
    def forward(ctx, x: Tensor, t: Tensor, gamma: float, alpha: float | None) -> Tensor:
        ctx.save_for_backward(x, t)
        ctx.gamma, ctx.alpha = gamma, alpha
        q = _one_minus_pt(x, t, torch.sigmoid(x))
        loss = q.pow_(gamma).mul_(_bce_value(x, t))
        if alpha is not None:
            loss.mul_(torch.mul(t, 2.0 * alpha - 1.0).add_(1.0 - alpha))
        return loss

    @staticmethod
    def backward(ctx, grad_out: Tensor):
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
# how often backward runs.
_CHUNK_BYTES = 1 << 19


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
    step = max(1, _CHUNK_BYTES // x.element_size())
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
        ctx, x: Tensor, t: Tensor, gamma: float, alpha: float | None, reduction: str,
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
    def backward(ctx, grad_out: Tensor):
        grad, x, t = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: see "Double backward"
            reduce = {"none": lambda v: v, "sum": torch.sum, "mean": torch.mean}[ctx.reduction]
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


# ----------------------------------------------------------------------------- margins


def _check_margin_settings(kind: str, against: str, margin: float) -> None:
    if kind not in MARGIN_KINDS:
        raise ValueError(
            f"kind should be one of {MARGIN_KINDS}, but got kind={kind!r}; pick one of those."
        )
    if against not in MARGIN_AGAINST:
        raise ValueError(
            f"against should be one of {MARGIN_AGAINST}, but got against={against!r}; "
            "'most_offending' uses the best wrong class, 'all' sums over every wrong class."
        )
    _check_finite(margin, "margin", "1.0")


def margin_loss(
    scores: Tensor,
    target: Tensor,
    *,
    kind: str = "hinge",
    margin: float = 1.0,
    against: str = "most_offending",
    class_margins: Tensor | Sequence[float] | None = None,
    weight: Tensor | Sequence[float] | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    normalization: str = "weights",
) -> Tensor:
    r"""Margin losses on scores (higher is better), from LeCun's lecture on energy-based losses.

    With :math:`s_y` the correct score, :math:`\bar s = \max_{j \ne y} s_j` the most offending
    incorrect one, :math:`m = m_y` the margin (``class_margins[y]`` if given, else ``margin``)
    and energies :math:`E = -s`, the unreduced loss for ``against="most_offending"`` is

    .. math::
        \text{hinge:}\quad & l = \max(0,\; m - (s_y - \bar s)) \\
        \text{log:}\quad & l = \log\big(1 + e^{\bar s - s_y}\big) \\
        \text{square\_square:}\quad & l = E_y^2 + \max(0,\; m - \bar E)^2
            = s_y^2 + \max(0,\; m + \bar s)^2

    and for ``against="all"`` the terms with :math:`\bar s` are summed over every
    :math:`j \ne y` instead (hinge then equals ``C * torch.nn.MultiMarginLoss(margin=m)``).
    The ``"log"`` kind (soft hinge) has no margin: ``margin`` is unused and ``class_margins``
    is rejected. Each :math:`l_n` is multiplied by ``weight[y_n]`` if given; reductions as in
    :func:`weighted_nll_loss`.

    Args:
        scores: raw scores.
        target: class indices.
        kind: ``"hinge"``, ``"log"`` or ``"square_square"``.
        margin: the margin :math:`m` shared by all classes.
        against: ``"most_offending"`` or ``"all"``.
        class_margins: per-class margins of length C replacing ``margin`` (e.g. LDAM's
            :math:`\propto n_c^{-1/4}`), or None.
        weight: per-class weights of length C, or None.

    ``class_margins`` and ``weight`` are tensors on the device of ``scores`` or sequences
    (copied there on every call; tensors already on the device avoid that transfer).
        ignore_index, reduction, normalization: as in :func:`weighted_nll_loss`.

    Shape:
        - scores: (N, C) or (N, C, d1, ...), C >= 2
        - target: (N,) or (N, d1, ...), integer
        - output: scalar, or the target's shape for ``reduction="none"``

    Example::

        >>> import torch
        >>> scores = torch.tensor([[2.0, 1.5, -1.0]])  # s_y = 2, s_bar = 1.5
        >>> target = torch.tensor([0])
        >>> margin_loss(scores, target, kind="hinge")  # max(0, 1 - 0.5)
        tensor(0.5000)
        >>> margin_loss(scores, target, kind="log")  # log(1 + e^-0.5)
        tensor(0.4741)
        >>> margin_loss(scores, target, kind="square_square")  # 2^2 + (1 + 1.5)^2
        tensor(10.2500)
        >>> margin_loss(scores, target, kind="hinge", against="all")  # 0.5 + 0
        tensor(0.5000)
    """
    _check_common(reduction, normalization)
    _check_margin_settings(kind, against, margin)
    if kind == "log" and class_margins is not None:
        raise ValueError(
            "class_margins has no effect with kind='log' (the soft hinge has no margin); "
            "use kind='hinge' or kind='square_square', or drop class_margins."
        )
    target = V.check_index_target(scores, target, ignore_index, name="scores")
    num_classes = scores.shape[1]
    if num_classes < 2:
        raise ValueError(
            f"margin losses need C >= 2 classes, but got scores of shape {tuple(scores.shape)}."
        )
    class_margins = V.class_vector(
        class_margins, scores, name="class_margins", like_name="scores", nonnegative=False
    )
    weight = V.class_vector(weight, scores, name="weight", like_name="scores")
    s = _upcast(scores)
    safe, valid = _safe_target(target, ignore_index)
    idx = safe.unsqueeze(1)
    cm = _cast(class_margins, s)
    m_y: Tensor | float = float(margin) if cm is None else cm.take(safe)

    if against == "most_offending":
        # The best wrong class is the first of the top two that is not the target. Finding it
        # on detached scores and gathering (s_y, s_bar) in one go keeps the backward to a single
        # scatter, instead of a masked (N, C) copy and an amax backward.
        top = s.detach().topk(2, dim=1).indices
        first = top.narrow(1, 0, 1)
        bar = torch.where(first == idx, top.narrow(1, 1, 1), first)
        s_y, s_bar = s.gather(1, torch.cat([idx, bar], dim=1)).unbind(1)
        if kind == "hinge":
            loss = F.relu(m_y - s_y + s_bar)
        elif kind == "log":
            loss = F.softplus(s_bar - s_y)
        else:
            loss = s_y.square() + F.relu(m_y + s_bar).square()
    else:
        s_y = s.gather(1, idx).squeeze(1)
        m_b = m_y if cm is None else m_y.unsqueeze(1)
        if kind == "hinge":
            loss = _HingeAll.apply(s, idx, m_b)
        elif kind == "log":
            loss = F.softplus(s - s_y.unsqueeze(1)).sum(dim=1) - math.log(2.0)
        else:
            # The j == y term relu(m + s_y)^2 can dwarf the rest; mask it instead of
            # subtracting it, which would cancel catastrophically.
            wrong = F.relu(s + m_b).square().scatter(1, idx, 0.0)
            loss = s_y.square() + wrong.sum(dim=1)

    w = _cast(weight, s)
    w_y = valid.to(s.dtype) if w is None else w.take(safe) * valid
    return _reduce(loss * w_y, reduction, valid, None if w is None else w_y, normalization)


class _HingeAll(torch.autograd.Function):
    r"""Hinge summed over every wrong class, :math:`\sum_{j \ne y} \max(0, m - s_y + s_j)`.

    Design note: the j == y term is exactly :math:`\max(0, m)` (:math:`s_y - s_y` is exactly 0),
    so it is subtracted instead of masked. On CPU a fresh (N, C) buffer costs about three
    in-place passes (page faults), so this allocates one buffer in forward (the clamped terms,
    saved like cross-entropy saves its log-softmax) and one in backward (their sign, which is
    the gradient up to the count of active terms at the target), against five for the autograd
    graph of ``relu(s - s_y + m).sum(1)``.
    """

    @staticmethod
    def forward(ctx, s: Tensor, idx: Tensor, m_b: Tensor | float) -> Tensor:
        terms = torch.sub(s, s.gather(1, idx) - m_b).clamp_min_(0)
        ctx.save_for_backward(terms, idx)
        m_self = max(m_b, 0.0) if isinstance(m_b, float) else F.relu(m_b).squeeze(1)
        return terms.sum(dim=1) - m_self

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        terms, idx = ctx.saved_tensors
        g = grad_out.unsqueeze(1)
        grad = torch.sign(terms)
        # d/ds_y of every active term j != y is -1; the j == y term's own +1 and -1 cancel,
        # so the target entry becomes sign_y - count = -(number of active j != y).
        count = grad.sum(dim=1, keepdim=True)
        grad.scatter_add_(1, idx, -count)
        return grad.mul_(g), None, None


# ----------------------------------------------------------------------------- LDAM


def _check_positive(value: float, name: str, example: str) -> float:
    """A positive, finite Python number: TypeError for another type, ValueError for the value."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{name} should be a positive float, but got {name}={value!r} "
            f"({type(value).__name__}); pass a number such as {name}={example}."
        )
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(
            f"{name} should be a positive, finite float, but got {name}={value!r}; pass a number "
            f"such as {name}={example}."
        )
    return float(value)


def _ldam_margins(
    counts: Tensor | Sequence[float], max_margin: float, *, always_check: bool,
    like: Tensor | None = None,
):
    """LDAM margins from counts. With ``like`` (the functional form), a counts tensor must be on
    like's device, and margins from a sequence are computed on the host and copied there."""
    if like is not None and isinstance(counts, Tensor):
        V.check_device(counts, like, name="counts")
    n = V.as_vector(counts, name="counts", dtype=torch.float64)
    assert n is not None
    max_margin = _check_positive(max_margin, "max_margin", "0.5")
    if always_check or V.values_checkable(n):
        V.check_finite_values(
            n, name="counts", fix="pass a positive, finite count for every class."
        )
        zero = (n <= 0).nonzero().flatten()
        if zero.numel():
            c = int(zero[0])
            raise ValueError(
                f"counts has {n[c].item():g} for class {c}; LDAM's margin n^(-1/4) would be "
                "infinite. Every class needs a positive count: add a pseudo-count (counts + 1)."
            )
    m = n.to(torch.float64).pow(-0.25)
    m = (m * (max_margin / m.max())).to(torch.float32)
    return m if like is None else m.to(like.device)


def _ldam_from_margins(
    logits: Tensor, target: Tensor, margins: Tensor, scale: float, weight: Tensor | None,
    ignore_index: int, reduction: str, normalization: str,
) -> Tensor:
    V.check_device(margins, logits, name="margins")
    if weight is not None:
        V.check_device(weight, logits, name="weight")
    x = _upcast(logits)
    safe, valid = _safe_target(target, ignore_index)
    idx = safe.unsqueeze(1)
    shift = _cast(margins, x).take(idx).mul_(-scale)
    if _use_fast_cpu(x):
        nll = _LDAMSoftmaxCPU.apply(x, idx, scale, shift, _source(logits, x))
        return _weight_and_reduce(nll, safe, valid, _cast(weight, x), reduction, normalization)
    # Not _ShiftedNLL: its backward's torch.exp of scale-30 log-probabilities (down to about
    # -1e3) is slower on CPU than the exp inside cross-entropy's fused backward kernel.
    # x * scale is a fresh tensor that mul does not save, so the in-place scatter is safe.
    adjusted = torch.mul(x, scale).scatter_add_(1, idx, shift)
    return _torch_ce_like(
        F.cross_entropy, adjusted, target, _cast(weight, x), ignore_index, reduction, normalization
    )


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
        ctx, x: Tensor, idx: Tensor, scale: float, class_shift: Tensor | None,
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
    def backward(ctx, grad_out: Tensor):
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
        ctx, x: Tensor, idx: Tensor, scale: float, target_shift: Tensor, source: Tensor | None
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
    def backward(ctx, grad_out: Tensor):
        exp_a, denom, idx, source, target_shift = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: see "Double backward"
            return _shifted_nll_graph_backward(ctx, grad_out, idx, source, None, target_shift)
        g = grad_out.unsqueeze(1) * ctx.scale
        grad = torch.mul(exp_a, g / denom)  # s * softmax * upstream
        grad.scatter_add_(1, idx, g.neg_())
        return grad, None, None, None, None


def _weight_and_reduce(
    loss: Tensor, safe: Tensor, valid: Tensor, weight: Tensor | None, reduction: str,
    normalization: str,
) -> Tensor:
    """Multiply a per-element loss by its target's weight (0 where ignored) and reduce.

    Ignored positions are zeroed with ``where``, not only multiplied by 0: their loss was
    computed for a stand-in class and is inf or NaN when their logits are (padding).
    """
    w_y = valid.to(loss.dtype) if weight is None else weight.take(safe) * valid
    loss = torch.where(valid, loss * w_y, 0.0)
    return _reduce(loss, reduction, valid, None if weight is None else w_y, normalization)


def ldam_loss(
    logits: Tensor,
    target: Tensor,
    counts: Tensor | Sequence[float],
    *,
    max_margin: float = 0.5,
    scale: float = 30.0,
    weight: Tensor | Sequence[float] | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    normalization: str = "weights",
) -> Tensor:
    r"""Label-distribution-aware margin loss (LDAM, Cao et al. 2019,
    https://arxiv.org/abs/1906.07413).

    Per-class margins :math:`m_c = \text{max\_margin} \cdot (n_c / \min_k n_k)^{-1/4}`, so the
    rarest class gets ``max_margin``. Unreduced, with scale :math:`s`:

    .. math::
        l_n = -w_{y_n} \log \frac{e^{s (z_{n,y_n} - m_{y_n})}}
              {e^{s (z_{n,y_n} - m_{y_n})} + \sum_{j \ne y_n} e^{s z_{n,j}}}

    i.e. cross-entropy on :math:`s\,(z - m_{y} e_{y})`. Reductions and ``weight`` as in
    :func:`weighted_cross_entropy` (the paper pairs LDAM with deferred re-weighting: pass
    ``weight`` late in training). ``counts`` and ``weight`` are tensors on the logits' device or
    sequences; from a sequence the margins are computed on the host and copied to the device on
    every call, so in a training loop pass tensors already on the device, or use
    :class:`losses.LDAMLoss`, which computes the margins once.

    On CUDA (and under ``torch.compile``) this is ``F.cross_entropy`` on the adjusted logits.
    On CPU a dedicated kernel computes the same softmax, except that inside its denominator
    each term below :math:`e^{-60}` times the row's largest term counts as :math:`e^{-60}`
    times it: the denominator's relative error is below :math:`(C - 1)\,e^{-60} \approx C
    \cdot 8.8 \times 10^{-27}` (below float64 rounding for any :math:`C < 10^9`), and so is the
    loss's absolute error; the target's own term is never clamped. This keeps ``exp`` off its
    slow CPU path for arguments below about -87, which ``scale=30`` otherwise hits often.
    A double backward (``create_graph=True``) differentiates the unclamped formula instead.

    Shape:
        - logits: (N, C) or (N, C, d1, ...)
        - target: (N,) or (N, d1, ...), integer
        - output: scalar, or the target's shape for ``reduction="none"``

    Example::

        >>> import torch
        >>> counts = torch.tensor([100.0, 10.0])  # margins 0.2812, 0.5
        >>> logits = torch.tensor([[0.1, 0.0], [0.0, 0.1]])
        >>> ldam_loss(logits, torch.tensor([0, 1]), counts, reduction="none")
        tensor([ 5.4395, 12.0000])
    """
    _check_common(reduction, normalization)
    target = V.check_index_target(logits, target, ignore_index)
    scale = _check_positive(scale, "scale", "30.0")
    margins = _ldam_margins(counts, max_margin, always_check=False, like=logits)
    V.check_class_vector(margins, logits.shape[1], name="counts")
    weight = V.class_vector(weight, logits, name="weight")
    return _ldam_from_margins(
        logits, target, margins, scale, weight, ignore_index, reduction, normalization
    )


# ----------------------------------------------------------------------------- logit adjustment


def _logit_adjusted_from_log_prior(
    logits: Tensor, target: Tensor, log_prior: Tensor, tau: float, weight: Tensor | None,
    ignore_index: int, reduction: str, normalization: str,
) -> Tensor:
    V.check_device(log_prior, logits, name="log_prior")
    if weight is not None:
        V.check_device(weight, logits, name="weight")
    x = _upcast(logits)
    if tau == 0.0:
        return _torch_ce_like(
            F.cross_entropy, x, target, _cast(weight, x), ignore_index, reduction, normalization
        )
    safe, valid = _safe_target(target, ignore_index)
    shift = _class_view(_cast(log_prior, x) * tau, x.dim())
    if _functorch_active():
        nll = _shifted_nll_plain(x, safe.unsqueeze(1), 1.0, shift, None)
    else:
        nll = _ShiftedNLL.apply(x, safe.unsqueeze(1), 1.0, shift, None, _source(logits, x))
    return _weight_and_reduce(nll, safe, valid, _cast(weight, x), reduction, normalization)


def _check_finite(value: float, name: str, example: str) -> float:
    """A finite Python number: TypeError for another type, ValueError for inf or NaN."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{name} should be a finite float, but got {name}={value!r} "
            f"({type(value).__name__}); pass a number such as {name}={example}."
        )
    if not math.isfinite(value):
        raise ValueError(
            f"{name} should be finite, but got {name}={value!r}; pass a number such as "
            f"{name}={example}."
        )
    return float(value)


def _check_tau(tau: float) -> float:
    return _check_finite(tau, "tau", "1.0")


def logit_adjusted_cross_entropy(
    logits: Tensor,
    target: Tensor,
    prior_or_counts: Tensor | Sequence[float],
    *,
    tau: float = 1.0,
    weight: Tensor | Sequence[float] | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    normalization: str = "weights",
) -> Tensor:
    r"""Logit-adjusted cross-entropy (Menon et al. 2021, https://arxiv.org/abs/2007.07314).

    With :math:`\pi` the class prior (``prior_or_counts`` normalised to sum to 1):

    .. math::
        l_n = -w_{y_n} \log \mathrm{softmax}\big(z_n + \tau \log \pi\big)_{y_n}

    ``tau=1`` is the balanced softmax of Ren et al. 2020 (https://arxiv.org/abs/2007.10740);
    ``tau=0`` is plain cross-entropy. Reductions as in :func:`weighted_cross_entropy`. At
    evaluation use the raw logits, or :func:`posthoc_adjust` on a model trained with plain
    cross-entropy. Every class needs a positive count (a zero count has log-prior -inf).
    ``prior_or_counts`` and ``weight`` are tensors on the logits' device or sequences; from a
    sequence the log-prior is computed on the host and copied to the device on every call, so in
    a training loop pass tensors already on the device, or use :class:`losses.LogitAdjustedLoss`.

    Shape:
        - logits: (N, C) or (N, C, d1, ...)
        - target: (N,) or (N, d1, ...), integer
        - prior_or_counts: (C,)
        - output: scalar, or the target's shape for ``reduction="none"``

    Example::

        >>> import torch
        >>> logits = torch.tensor([[1.0, 1.0]])
        >>> counts = torch.tensor([90.0, 10.0])  # log prior = (-0.1054, -2.3026)
        >>> logit_adjusted_cross_entropy(logits, torch.tensor([1]), counts)  # rare class
        tensor(2.3026)
        >>> logit_adjusted_cross_entropy(logits, torch.tensor([1]), counts, tau=0.0)
        tensor(0.6931)
    """
    _check_common(reduction, normalization)
    tau = _check_tau(tau)
    target = V.check_index_target(logits, target, ignore_index)
    lp = V.log_prior(prior_or_counts, like=logits)
    V.check_class_vector(lp, logits.shape[1], name="prior_or_counts")
    weight = V.class_vector(weight, logits, name="weight")
    return _logit_adjusted_from_log_prior(
        logits, target, lp, tau, weight, ignore_index, reduction, normalization
    )


def posthoc_adjust(
    logits: Tensor, prior_or_counts: Tensor | Sequence[float], *, tau: float = 1.0
) -> Tensor:
    r"""Post-hoc logit adjustment for evaluation (Menon et al. 2021): :math:`z - \tau \log \pi`.

    For a model trained with plain (unadjusted) cross-entropy on imbalanced data, the argmax of
    the adjusted logits targets the balanced error. Returned in the compute dtype (float32 for
    half logits). ``prior_or_counts`` is a tensor on the logits' device or a sequence (copied
    there on every call).

    Shape:
        - logits: (N, C) or (N, C, d1, ...); prior_or_counts: (C,); output: the logits' shape

    Example::

        >>> import torch
        >>> logits = torch.tensor([[2.0, 0.5]])
        >>> posthoc_adjust(logits, torch.tensor([90.0, 10.0]))  # 2 + 0.1054, 0.5 + 2.3026
        tensor([[2.1054, 2.8026]])
    """
    tau = _check_tau(tau)
    V.check_logits(logits)
    lp = V.log_prior(prior_or_counts, like=logits)
    V.check_class_vector(lp, logits.shape[1], name="prior_or_counts")
    x = _upcast(logits)
    return x - tau * _class_view(_cast(lp, x), x.dim())
