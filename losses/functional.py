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
  compile with ``torch.compile(fullgraph=True)`` (given per-class tensors on the logits'
  device). Value checks (target indices in range, zero counts) run only in eager mode on CPU
  and outside ``torch.func`` transforms; see :mod:`losses._validation`.
* **Layout.** This module holds each loss's formula, docstring and checks. Where a loss has a
  fast path (CPU kernels, custom autograd Functions), it calls one dispatch function in
  :mod:`losses._kernels`, which holds those kernels and their design notes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor

from losses import _kernels as K
from losses import _sigmoid_kernels as S
from losses import _validation as V
from losses._common import (
    _cast,
    _class_view,
    _safe_target,
    _torch_ce_like,
    _upcast,
    _weight_and_reduce,
)

__all__ = [
    "asymmetric_loss",
    "binary_focal_loss",
    "distribution_balanced_loss",
    "focal_loss",
    "ldam_loss",
    "logit_adjusted_cross_entropy",
    "margin_loss",
    "pos_weighted_bce",
    "posthoc_adjust",
    "sigmoid_logit_adjusted_bce",
    "sigmoid_posthoc_adjust",
    "weighted_cross_entropy",
    "weighted_nll_loss",
]

MARGIN_KINDS = V.MARGIN_KINDS
MARGIN_AGAINST = V.MARGIN_AGAINST


def _check_common(reduction: str, normalization: str) -> None:
    V.check_reduction(reduction)
    V.check_normalization(normalization)


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

    Computed from :math:`\log p_{n,y_n}` = log-softmax at the target (no one-hot (N, C)
    tensor; on CPU a row-chunked kernel that keeps no (N, C) log-softmax, see
    :mod:`losses._kernels`); :math:`1 - p = -\mathrm{expm1}(\log p)` keeps precision as
    :math:`p \to 1`, and it is clamped at the smallest normal float before the power, so that
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
    logp_y = K.target_log_prob(logits, x, safe.unsqueeze(1))
    # An ignored row's logits may be -inf or NaN (padding): 0 in place of its stand-in class's
    # log-probability keeps its (discarded) loss and its zero gradient finite.
    logp_y = torch.where(valid, logp_y, 0.0)
    loss = -logp_y
    if gamma != 0.0:
        tiny = torch.finfo(x.dtype).tiny
        loss = loss * (-torch.expm1(logp_y)).clamp_min(tiny).pow(gamma)
    return _weight_and_reduce(loss, safe, valid, _cast(alpha, x), reduction, normalization)


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
    ``F.binary_cross_entropy_with_logits``. No gradient flows to ``target``. There is no
    ``ignore_index`` (targets are not indices); give ignored elements a zero weight by
    multiplying the ``"none"`` output.

    Target values are not checked, as torch's ``binary_cross_entropy_with_logits`` does not
    check them: 2.0, -1 or NaN give a number (NaN for NaN) that is no focal loss. Checking would
    cost a full pass over the target on every call (about 8% of ``F.cross_entropy``'s forward +
    backward at (16384, 1000) on CPU) and a host synchronisation on an accelerator; map
    "uncertain" labels (e.g. CheXpert's -1) to 0/1 or mask them before the loss.

    On CPU the loss and its gradient are computed together in cache-sized chunks (one saved
    buffer of the logits' size); elsewhere the closed-form gradient is recomputed in backward;
    see :mod:`losses._kernels`. They agree with the formula above to rounding, and a double
    backward differentiates the formula itself.

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
    alpha = V.check_binary_alpha(alpha)
    V.check_binary_target(logits, target)
    x = _upcast(logits)
    return K.binary_focal(x, target.to(x.dtype).detach(), gamma, alpha, reduction)


# ----------------------------------------------------------------------------- margins



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
        ignore_index, reduction, normalization: as in :func:`weighted_nll_loss`.

    ``class_margins`` and ``weight`` are tensors on the device of ``scores`` or sequences
    (copied there on every call; tensors already on the device avoid that transfer). Hinge and
    square-square are piecewise polynomial: their second derivatives (``create_graph=True``)
    are those of the formula away from its kinks, e.g. 0 almost everywhere for the hinge.

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
    V.check_margin_settings(kind, against, margin, class_margins)
    target = V.check_index_target(scores, target, ignore_index, name="scores")
    V.check_at_least_two_classes(scores)
    class_margins = V.class_vector(
        class_margins, scores, name="class_margins", like_name="scores", nonnegative=False
    )
    weight = V.class_vector(weight, scores, name="weight", like_name="scores")
    s = _upcast(scores)
    safe, valid = _safe_target(target, ignore_index)
    idx = safe.unsqueeze(1)
    cm = _cast(class_margins, s)
    m_y: Tensor | float = float(margin) if cm is None else cm[safe]

    if against == "most_offending":
        # The best wrong class is the first of the top two that is not the target. Finding it
        # on detached scores and gathering (s_y, s_bar) in one go keeps the backward to a single
        # scatter, instead of a masked (N, C) copy and an amax backward.
        top = s.detach().topk(2, dim=1).indices
        first = top.narrow(1, 0, 1)
        bar = torch.where(first == idx, top.narrow(1, 1, 1), first)
        s_y, s_bar = s.gather(1, torch.cat([idx, bar], dim=1)).unbind(1)
        # An ignored row's scores may be -inf or NaN (padding): 0 in their place keeps its
        # (discarded) loss and its zero gradient finite.
        s_y, s_bar = torch.where(valid, s_y, 0.0), torch.where(valid, s_bar, 0.0)
        if kind == "hinge":
            loss = F.relu(m_y - s_y + s_bar)
        elif kind == "log":
            loss = F.softplus(s_bar - s_y)
        else:
            loss = s_y.square() + F.relu(m_y + s_bar).square()
    else:
        m_b = m_y if cm is None else cast(Tensor, m_y).unsqueeze(1)
        if kind == "hinge":
            loss = K.hinge_all(scores, s, idx, m_b, valid.unsqueeze(1))
        else:
            s_y = torch.where(valid, s.gather(1, idx).squeeze(1), 0.0)
            if kind == "log":  # minus the j == y term, softplus(0) = log 2 exactly
                loss = F.softplus(s - s_y.unsqueeze(1)).sum(dim=1) - math.log(2.0)
            else:
                # The j == y term relu(m + s_y)^2 can dwarf the rest; mask it instead of
                # subtracting it, which would cancel catastrophically.
                wrong = F.relu(s + m_b).square().scatter(1, idx, 0.0)
                loss = s_y.square() + wrong.sum(dim=1)
    return _weight_and_reduce(loss, safe, valid, _cast(weight, s), reduction, normalization)


# ----------------------------------------------------------------------------- LDAM


def _ldam_margins(
    counts: Tensor | Sequence[float], max_margin: float, *, always_check: bool,
    like: Tensor | None = None,
) -> Tensor:
    r"""float32 margins :math:`m_c = \text{max\_margin} (n_c / \min_k n_k)^{-1/4}`. With
    ``like`` (the functional form), a counts tensor must be on like's device, and margins from a
    sequence are computed on the host and copied there."""
    n = V.positive_counts(
        counts, name="counts", always_check=always_check, like=like,
        why="LDAM's margin n^(-1/4) would be infinite",
    )
    max_margin = V.check_positive(max_margin, "max_margin", "0.5")
    m = n.pow(-0.25)
    m = (m * (max_margin / m.max())).to(torch.float32)
    return m if like is None else m.to(like.device)


def _ldam_from_margins(
    logits: Tensor, target: Tensor, margins: Tensor, scale: float, weight: Tensor | None,
    ignore_index: int, reduction: str, normalization: str,
) -> Tensor:
    r"""Cross-entropy on :math:`s\,z - s\,m_y e_y` (the shift is added at the target only)."""
    V.check_device(margins, logits, name="margins")
    if weight is not None:
        V.check_device(weight, logits, name="weight")
    x = _upcast(logits)
    safe, valid = _safe_target(target, ignore_index)
    shift = _cast(margins, x)[safe.unsqueeze(1)].mul_(-scale)
    return K.ldam(logits, x, target, safe, valid, scale, shift, _cast(weight, x), ignore_index,
                  reduction, normalization)


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

    On CUDA and under ``torch.compile`` this is ``F.cross_entropy`` on the adjusted logits. On
    CPU a dedicated kernel (see :mod:`losses._kernels`) counts each term of the softmax
    denominator below :math:`e^{-60}` times the row's largest as :math:`e^{-60}` times it (the
    target's own term is never clamped): the loss's absolute error is below
    :math:`(C - 1)\,e^{-60} \approx C \cdot 8.8 \times 10^{-27}`. A double backward
    (``create_graph=True``) differentiates the unclamped formula.

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
    scale = V.check_positive(scale, "scale", "30.0")
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
    r"""Cross-entropy on :math:`z + \tau \log \pi` (plain cross-entropy for ``tau=0``)."""
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
    nll = K.logit_adjusted_nll(logits, x, safe.unsqueeze(1), shift)
    return _weight_and_reduce(nll, safe, valid, _cast(weight, x), reduction, normalization)


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
    tau = V.check_tau(tau)
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
    tau = V.check_tau(tau)
    V.check_logits(logits)
    lp = V.log_prior(prior_or_counts, like=logits)
    V.check_class_vector(lp, logits.shape[1], name="prior_or_counts")
    x = _upcast(logits)
    return x - tau * _class_view(_cast(lp, x), x.dim())


# ----------------------------------------------------------------------------- multi-label
# Multi-label losses take logits and 0/1 float targets of shape (N, L), one column per label.
# Those built on label counts take ``counts`` (positives per label, each in (0, num_samples))
# and ``num_samples``; :math:`\pi_k = n_k / N` is label k's prior.


def _multilabel_input(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """(upcast logits, target in their dtype, detached: no gradient flows to targets)."""
    V.check_multilabel_target(logits, target)
    x = _upcast(logits)
    return x, target.to(x.dtype).detach()


def _label_stats(
    counts: Tensor | Sequence[float], num_samples: int, num_labels: int, like: Tensor
) -> Tensor:
    """Label counts as float64 on the host or like's device, checked against L."""
    n = V.label_counts(counts, num_samples, always_check=False, like=like)
    V.check_label_vector(n, num_labels, name="counts")
    return n


def _log_odds(n: Tensor, num_samples: int) -> Tensor:
    r""":math:`\log(\pi / (1 - \pi)) = \log n - \log(N - n)`, in n's dtype (float64)."""
    return n.log() - (num_samples - n).log()


def asymmetric_loss(
    logits: Tensor,
    target: Tensor,
    *,
    gamma_neg: float = 4.0,
    gamma_pos: float = 0.0,
    clip: float = 0.05,
    reduction: str = "mean",
) -> Tensor:
    r"""Asymmetric loss for multi-label classification (ASL, Ridnik et al. 2021,
    https://arxiv.org/abs/2009.14119).

    Per element, with :math:`p = \sigma(z)` and the shifted probability
    :math:`p_m = \max(p - m, 0)` (``clip`` :math:`= m`):

    .. math::
        l = -t\,(1 - p)^{\gamma_+} \log p \;-\; (1 - t)\, p_m^{\gamma_-} \log(1 - p_m)

    Focusing the negatives harder (:math:`\gamma_- > \gamma_+`) and discarding easy negatives
    (:math:`p \le m` contributes nothing) keeps the many negatives of each label from
    dominating. ``reduction="mean"`` averages over all N * L elements (the paper sums: use
    ``"sum"``). ``gamma_neg=gamma_pos=clip=0`` is ``F.binary_cross_entropy_with_logits``,
    values and gradients. Both powers act on values clamped at the smallest normal float, so
    exponents below 1 keep gradients finite; the gradient of the focusing factors is kept
    (the authors' code can detach them). Target values are not checked (see
    :func:`binary_focal_loss`).

    Shape:
        - logits: (N, L); target: (N, L), floating 0/1
        - output: scalar, or (N, L) for ``reduction="none"``

    Example::

        >>> import torch
        >>> logits = torch.tensor([[2.0, -1.0, -3.0]])  # p = 0.8808, 0.2689, 0.0474
        >>> target = torch.tensor([[1.0, 0.0, 0.0]])
        >>> asymmetric_loss(logits, target, reduction="none")  # p <= 0.05: the clip zeroes it
        tensor([[0.1269, 0.0006, 0.0000]])
        >>> # 0.0006 = (0.2689 - 0.05)^4 * -log(1 - 0.2189)
        >>> asymmetric_loss(logits, target, gamma_neg=0.0, clip=0.0, reduction="none")  # BCE
        tensor([[0.1269, 0.3133, 0.0486]])
    """
    V.check_reduction(reduction)
    gamma_neg = V.check_nonnegative(gamma_neg, "gamma_neg", "4.0")
    gamma_pos = V.check_nonnegative(gamma_pos, "gamma_pos", "0.0")
    clip = V.check_clip(clip)
    x, t = _multilabel_input(logits, target)
    spec = S.Asymmetric(gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip)
    return S.sigmoid_loss(spec, x, t, reduction)


def _pos_weight(n: Tensor, num_samples: int) -> Tensor:
    return (num_samples - n) / n


def pos_weighted_bce(
    logits: Tensor,
    target: Tensor,
    counts: Tensor | Sequence[float],
    *,
    num_samples: int,
    reduction: str = "mean",
) -> Tensor:
    r"""Binary cross-entropy with a per-label positive weight from label counts.

    With :math:`n_k` positives of label k among :math:`N` samples, the positives are weighted
    by :math:`c_k = (N - n_k) / n_k`, so each label's positives and negatives weigh alike:

    .. math::
        l_{ik} = -c_k\, t_{ik} \log \sigma(z_{ik}) - (1 - t_{ik}) \log \sigma(-z_{ik})

    Equal to ``F.binary_cross_entropy_with_logits(logits, target, pos_weight=c)``, values and
    gradients (the ``pos_weight`` of ``nn.BCEWithLogitsLoss``), computed without the temporary
    buffers torch's own keeps on CPU. ``counts`` is a tensor on the logits' device or a sequence
    (copied there on every call; :class:`losses.PosWeightedBCELoss` stores ``c`` once).
    ``reduction="mean"`` averages over all N * L elements.

    Shape:
        - logits: (N, L); target: (N, L), floating 0/1; counts: (L,)
        - output: scalar, or (N, L) for ``reduction="none"``

    Example::

        >>> import torch
        >>> logits, target = torch.zeros(1, 2), torch.tensor([[1.0, 1.0]])
        >>> pos_weighted_bce(logits, target, [10, 50], num_samples=100, reduction="none")
        tensor([[6.2383, 0.6931]])
        >>> # label 0: c = 90 / 10 = 9, 9 log 2; label 1: c = 1, log 2
    """
    V.check_reduction(reduction)
    x, t = _multilabel_input(logits, target)
    n = _label_stats(counts, num_samples, x.shape[1], logits)
    spec = S.ShiftedBCE(pos_weight=_pos_weight(n, num_samples).to(x))
    return S.sigmoid_loss(spec, x, t, reduction)


def sigmoid_logit_adjusted_bce(
    logits: Tensor,
    target: Tensor,
    counts: Tensor | Sequence[float],
    *,
    num_samples: int,
    tau: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    r"""Sigmoid logit adjustment: BCE on logits shifted by each label's prior log-odds, the
    per-label sigmoid form of Menon et al. 2021 (https://arxiv.org/abs/2007.07314).

    With :math:`\pi_k = n_k / N` the prior of label k and
    :math:`b_k = \log(\pi_k / (1 - \pi_k))`:

    .. math::
        l_{ik} = \mathrm{BCE}\big(z_{ik} + \tau\, b_k,\; t_{ik}\big)

    The model is trained through logits that already carry the prior, so its own logits
    :math:`z` learn the prior-free part (the optimum of :math:`\sigma(z + \tau b)` is the label's
    posterior); evaluate on the raw logits. For a model trained with plain BCE, use
    :func:`sigmoid_posthoc_adjust` instead. ``tau=0`` is plain BCE. ``counts`` is a tensor on
    the logits' device or a sequence (copied there on every call).

    Shape:
        - logits: (N, L); target: (N, L), floating 0/1; counts: (L,)
        - output: scalar, or (N, L) for ``reduction="none"``

    Example::

        >>> import torch
        >>> logits, target = torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])
        >>> # b = log(10 / 90) = -2.1972 for both labels
        >>> sigmoid_logit_adjusted_bce(logits, target, [10, 10], num_samples=100,
        ...                            reduction="none")
        tensor([[2.3026, 0.1054]])
    """
    V.check_reduction(reduction)
    tau = V.check_tau(tau)
    x, t = _multilabel_input(logits, target)
    n = _label_stats(counts, num_samples, x.shape[1], logits)
    spec = S.ShiftedBCE(shift=None if tau == 0.0 else (tau * _log_odds(n, num_samples)).to(x))
    return S.sigmoid_loss(spec, x, t, reduction)


def sigmoid_posthoc_adjust(
    logits: Tensor, counts: Tensor | Sequence[float], *, num_samples: int, tau: float = 1.0
) -> Tensor:
    r"""Post-hoc sigmoid logit adjustment: :math:`z_{ik} - \tau \log(\pi_k / (1 - \pi_k))`.

    For a model trained with plain BCE on imbalanced labels, thresholding the adjusted logits
    at 0 removes each label's prior (a rare label's logits move up). Returned in the compute
    dtype (float32 for half logits).

    Shape:
        - logits: (N, L); counts: (L,); output: (N, L)

    Example::

        >>> import torch
        >>> sigmoid_posthoc_adjust(torch.zeros(1, 2), [10, 50], num_samples=100)
        tensor([[2.1972, 0.0000]])
    """
    tau = V.check_tau(tau)
    V.check_logits_any_shape(logits)
    if logits.dim() != 2:
        raise ValueError(
            f"logits should have shape (N, L), one column per label, but got shape "
            f"{tuple(logits.shape)}."
        )
    x = _upcast(logits)
    n = _label_stats(counts, num_samples, x.shape[1], logits)
    return x - tau * _log_odds(n, num_samples).to(x)


def distribution_balanced_loss(
    logits: Tensor,
    target: Tensor,
    counts: Tensor | Sequence[float],
    *,
    num_samples: int,
    alpha: float = 0.1,
    beta: float = 10.0,
    mu: float = 0.2,
    kappa: float = 0.05,
    neg_scale: float = 2.0,
    reduction: str = "mean",
) -> Tensor:
    r"""Distribution-balanced loss (DB, Wu et al. 2020, https://arxiv.org/abs/2007.09654):
    re-balanced weights and negative-tolerant regularisation, without the focal term.

    **Re-balancing.** A sample is drawn for label k about as often as its rarest label's
    frequency says, so label k's share is over-counted by the sample's other labels. With
    :math:`P^C_k \propto 1 / n_k` and :math:`P^I_i \propto \sum_{j : t_{ij} = 1} 1 / n_j`, the
    ratio :math:`r_{ik} = P^C_k / P^I_i` is smoothed to
    :math:`\hat r_{ik} = \alpha + \sigma(\beta (r_{ik} - \mu))`. A sample with no positive label
    has :math:`P^I_i = 0`: it gets the limit :math:`r \to \infty`, :math:`\hat r = \alpha + 1`
    (for :math:`\beta > 0`).

    **Negative-tolerant regularisation.** Logits are shifted by
    :math:`\nu_k = \kappa\, b_k / \lambda` with :math:`b_k = \log(\pi_k / (1 - \pi_k))` (the
    convention of the authors' code), and the negatives' term is sharpened by
    :math:`\lambda` (``neg_scale``) but scaled by :math:`1 / \lambda`, so easy negatives stop
    pulling rare labels' logits down:

    .. math::
        l_{ik} = \hat r_{ik} \Big( t_{ik} \log\big(1 + e^{-(z_{ik} + \nu_k)}\big)
            + \frac{1 - t_{ik}}{\lambda} \log\big(1 + e^{\lambda (z_{ik} + \nu_k)}\big) \Big)

    ``alpha=0.5, beta=0, kappa=0, neg_scale=1`` is plain BCE, values and gradients. The
    defaults are the paper's (:math:`\alpha = 0.1, \beta = 10, \mu = 0.2, \kappa = 0.05,
    \lambda = 2`). ``reduction="mean"`` averages over all N * L elements.

    Shape:
        - logits: (N, L); target: (N, L), floating 0/1; counts: (L,)
        - output: scalar, or (N, L) for ``reduction="none"``

    Example::

        >>> import torch
        >>> logits, target = torch.zeros(2, 2), torch.tensor([[1.0, 0.0], [1.0, 1.0]])
        >>> distribution_balanced_loss(logits, target, [50, 10], num_samples=100,
        ...                            reduction="none")
        tensor([[0.7622, 0.3518],
                [0.3587, 0.7918]])
        >>> # row 0: r = (1, 5), r_hat = (1.0997, 1.1000); row 1: r = (1/6, 5/6),
        >>> # r_hat = (0.5175, 1.0982); nu = (0, 0.05 * log(1/9) / 2) = (0, -0.0549)
    """
    V.check_reduction(reduction)
    alpha = V.check_nonnegative(alpha, "alpha", "0.1")
    beta = V.check_nonnegative(beta, "beta", "10.0")
    mu = V.check_finite(mu, "mu", "0.2")
    kappa = V.check_finite(kappa, "kappa", "0.05")
    neg_scale = V.check_positive(neg_scale, "neg_scale", "2.0")
    x, t = _multilabel_input(logits, target)
    n = _label_stats(counts, num_samples, x.shape[1], logits)
    shift = (kappa / neg_scale) * _log_odds(n, num_samples)
    spec = S.ShiftedBCE(
        shift=None if kappa == 0.0 else shift.to(x), neg_scale=neg_scale,
        weight=S.RebalanceWeight((1.0 / n).to(x), alpha=alpha, beta=beta, mu=mu),
    )
    return S.sigmoid_loss(spec, x, t, reduction)
