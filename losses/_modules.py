"""Loss modules: thin wrappers that store settings and call :mod:`losses.functional`.

Per-class tensors (weights, alpha, margins, log-priors) are registered buffers, so ``.to(device)``
and ``state_dict`` carry them. Move the module to the logits' device once (``criterion.to(device)``):
a buffer on another device raises a ``ValueError`` instead of being copied on every call. Settings
are checked once, here, at construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from losses import _sigmoid_kernels as S
from losses import _validation as V
from losses import functional as LF
from losses._common import _class_view, _upcast
from losses._weights import class_weights

Vector = Tensor | Sequence[float]


class _ClassWeightedLoss(nn.Module):
    """Shared storage of ``weight``, ``ignore_index``, ``reduction`` and ``normalization``."""

    weight: Tensor | None

    def __init__(
        self,
        weight: Vector | None,
        *,
        ignore_index: int,
        reduction: str,
        normalization: str,
        weight_name: str = "weight",
    ) -> None:
        super().__init__()
        self.register_buffer(weight_name, V.class_vector_buffer(weight, name=weight_name))
        self.ignore_index = V.check_ignore_index(ignore_index)
        self.reduction = V.check_reduction(reduction)
        self.normalization = V.check_normalization(normalization)

    def extra_repr(self) -> str:
        return (
            f"reduction={self.reduction!r}, normalization={self.normalization!r}, "
            f"ignore_index={self.ignore_index}"
        )


_Loss = TypeVar("_Loss", bound="_WeightedIndexLoss")


class _WeightedIndexLoss(_ClassWeightedLoss):
    """The public constructor shared by the class-weighted NLL and cross-entropy modules."""

    def __init__(
        self,
        weight: Vector | None = None,
        *,
        ignore_index: int = -100,
        reduction: str = "mean",
        normalization: str = "weights",
    ) -> None:
        super().__init__(
            weight, ignore_index=ignore_index, reduction=reduction, normalization=normalization
        )

    @classmethod
    def from_counts(
        cls: type[_Loss], counts: Vector, *, scheme: str = "inverse", beta: float = 0.999,
        **kwargs: Any,
    ) -> _Loss:
        """The loss with ``weight = class_weights(counts, scheme, beta=beta)``."""
        return cls(class_weights(counts, scheme, beta=beta), **kwargs)


class WeightedNLLLoss(_WeightedIndexLoss):
    r"""Class-weighted NLL on log-probabilities; see :func:`losses.functional.weighted_nll_loss`.

    .. math::
        l_n = -w_{y_n} \, x_{n, y_n}

    ``reduction="mean"`` divides by :math:`\sum_n w_{y_n}` (``normalization="weights"``, equal to
    ``nn.NLLLoss(weight=)``) or by the number of counted targets (``"samples"``).

    Shape:
        - input: (N, C) or (N, C, d1, ...) log-probabilities; target: (N,) or (N, d1, ...)

    Example::

        >>> import torch
        >>> loss = WeightedNLLLoss.from_counts([90, 10])  # weights (0.2, 1.8)
        >>> loss(torch.log(torch.tensor([[0.5, 0.5]])), torch.tensor([1]))
        tensor(0.6931)
    """

    def forward(self, log_probs: Tensor, target: Tensor) -> Tensor:
        return LF.weighted_nll_loss(
            log_probs, target, self.weight, ignore_index=self.ignore_index,
            reduction=self.reduction, normalization=self.normalization,
        )


class WeightedCrossEntropyLoss(_WeightedIndexLoss):
    r"""Class-weighted cross-entropy; see :func:`losses.functional.weighted_cross_entropy`.

    .. math::
        l_n = -w_{y_n} \log \mathrm{softmax}(z_n)_{y_n}

    ``reduction="mean"`` divides by :math:`\sum_n w_{y_n}` (``normalization="weights"``, equal to
    ``nn.CrossEntropyLoss(weight=)``) or by the number of counted targets (``"samples"``: a
    sample's contribution no longer depends on the classes of the rest of its batch).

    Shape:
        - logits: (N, C) or (N, C, d1, ...); target: (N,) or (N, d1, ...)

    Example::

        >>> import torch
        >>> loss = WeightedCrossEntropyLoss.from_counts([90, 10], normalization="samples")
        >>> loss(torch.tensor([[0.0, 0.0]]), torch.tensor([1]))  # 1.8 * log 2
        tensor(1.2477)
    """

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return LF.weighted_cross_entropy(
            logits, target, self.weight, ignore_index=self.ignore_index,
            reduction=self.reduction, normalization=self.normalization,
        )


class FocalLoss(_ClassWeightedLoss):
    r"""Softmax focal loss (Lin et al. 2017, https://arxiv.org/abs/1708.02002); see
    :func:`losses.functional.focal_loss`.

    .. math::
        l_n = -\alpha_{y_n} (1 - p_{n, y_n})^{\gamma} \log p_{n, y_n}

    ``reduction="mean"`` divides by the number of counted targets (``normalization="samples"``,
    the default) or by :math:`\sum_n \alpha_{y_n}` (``"weights"``). ``gamma=0, alpha=None`` is
    cross-entropy.

    Shape:
        - logits: (N, C) or (N, C, d1, ...); target: (N,) or (N, d1, ...)

    Example::

        >>> import torch
        >>> loss = FocalLoss(gamma=2.0)
        >>> loss(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1]))
        tensor(0.0122)
    """

    alpha: Tensor | None

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: Vector | None = None,
        *,
        ignore_index: int = -100,
        reduction: str = "mean",
        normalization: str = "samples",
    ) -> None:
        super().__init__(
            alpha, ignore_index=ignore_index, reduction=reduction, normalization=normalization,
            weight_name="alpha",
        )
        self.gamma = V.check_gamma(gamma)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return LF.focal_loss(
            logits, target, self.alpha, gamma=self.gamma, ignore_index=self.ignore_index,
            reduction=self.reduction, normalization=self.normalization,
        )

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, " + super().extra_repr()


class BinaryFocalLoss(nn.Module):
    r"""Sigmoid focal loss for binary and multi-label targets; see
    :func:`losses.functional.binary_focal_loss`.

    .. math::
        l = -\alpha_t (1 - p_t)^{\gamma} \log p_t

    per element, averaged over all elements for ``reduction="mean"``.

    Shape:
        - logits: (*); target: (*), float 0/1 labels of the same shape

    Example::

        >>> import torch
        >>> loss = BinaryFocalLoss(gamma=2.0, alpha=0.25)
        >>> loss(torch.tensor([2.0, -1.0]), torch.tensor([1.0, 1.0]))
        tensor(0.0880)
    """

    def __init__(
        self, gamma: float = 2.0, alpha: float | None = None, *, reduction: str = "mean"
    ) -> None:
        super().__init__()
        self.gamma = V.check_gamma(gamma)
        self.alpha = V.check_binary_alpha(alpha)
        self.reduction = V.check_reduction(reduction)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return LF.binary_focal_loss(
            logits, target, gamma=self.gamma, alpha=self.alpha, reduction=self.reduction
        )

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, alpha={self.alpha}, reduction={self.reduction!r}"


class MarginLoss(_ClassWeightedLoss):
    r"""Margin losses on scores: hinge, log (soft hinge) and square-square; see
    :func:`losses.functional.margin_loss`.

    With :math:`\bar s` the most offending incorrect score (or a sum over all incorrect classes
    for ``against="all"``) and :math:`m = m_y`:

    .. math::
        \text{hinge: } \max(0, m - (s_y - \bar s)) \quad
        \text{log: } \log(1 + e^{\bar s - s_y}) \quad
        \text{square\_square: } s_y^2 + \max(0, m + \bar s)^2

    Shape:
        - scores: (N, C) or (N, C, d1, ...), C >= 2; target: (N,) or (N, d1, ...)

    Example::

        >>> import torch
        >>> loss = MarginLoss(kind="hinge", margin=1.0)
        >>> loss(torch.tensor([[2.0, 1.5, -1.0]]), torch.tensor([0]))
        tensor(0.5000)
    """

    class_margins: Tensor | None

    def __init__(
        self,
        *,
        kind: str = "hinge",
        margin: float = 1.0,
        against: str = "most_offending",
        class_margins: Vector | None = None,
        weight: Vector | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        normalization: str = "weights",
    ) -> None:
        super().__init__(
            weight, ignore_index=ignore_index, reduction=reduction, normalization=normalization
        )
        V.check_margin_settings(kind, against, margin, class_margins)
        self.kind = kind
        self.margin = float(margin)
        self.against = against
        self.register_buffer(
            "class_margins",
            V.class_vector_buffer(class_margins, name="class_margins", nonnegative=False),
        )

    def forward(self, scores: Tensor, target: Tensor) -> Tensor:
        return LF.margin_loss(
            scores, target, kind=self.kind, margin=self.margin, against=self.against,
            class_margins=self.class_margins, weight=self.weight,
            ignore_index=self.ignore_index, reduction=self.reduction,
            normalization=self.normalization,
        )

    def extra_repr(self) -> str:
        return (
            f"kind={self.kind!r}, margin={self.margin}, against={self.against!r}, "
            + super().extra_repr()
        )


class LDAMLoss(_ClassWeightedLoss):
    r"""LDAM loss (Cao et al. 2019, https://arxiv.org/abs/1906.07413); see
    :func:`losses.functional.ldam_loss`.

    Margins :math:`m_c \propto n_c^{-1/4}` with the rarest class at ``max_margin``, then
    cross-entropy on :math:`s\,(z - m_y e_y)`:

    .. math::
        l_n = -w_{y_n} \log \mathrm{softmax}\big(s\,(z_n - m_{y_n} e_{y_n})\big)_{y_n}

    Shape:
        - logits: (N, C) or (N, C, d1, ...); target: (N,) or (N, d1, ...)

    Example::

        >>> import torch
        >>> loss = LDAMLoss([100, 10], max_margin=0.5, scale=30.0)
        >>> loss.margins
        tensor([0.2812, 0.5000])
        >>> loss(torch.tensor([[0.0, 0.1]]), torch.tensor([1]))
        tensor(12.0000)
    """

    margins: Tensor

    def __init__(
        self,
        counts: Vector,
        *,
        max_margin: float = 0.5,
        scale: float = 30.0,
        weight: Vector | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        normalization: str = "weights",
    ) -> None:
        super().__init__(
            weight, ignore_index=ignore_index, reduction=reduction, normalization=normalization
        )
        self.scale = V.check_positive(scale, "scale", "30.0")
        self.max_margin = V.check_positive(max_margin, "max_margin", "0.5")
        self.register_buffer("margins", LF._ldam_margins(counts, max_margin, always_check=True))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        V.check_reduction(self.reduction)
        target = V.check_index_target(logits, target, self.ignore_index)
        V.check_class_vector(self.margins, logits.shape[1], name="counts")
        V.check_class_vector(self.weight, logits.shape[1], name="weight")
        return LF._ldam_from_margins(
            logits, target, self.margins, self.scale, self.weight, self.ignore_index,
            self.reduction, self.normalization,
        )

    def extra_repr(self) -> str:
        return f"max_margin={self.max_margin}, scale={self.scale}, " + super().extra_repr()


class LogitAdjustedLoss(_ClassWeightedLoss):
    r"""Logit-adjusted cross-entropy (Menon et al. 2021, https://arxiv.org/abs/2007.07314); see
    :func:`losses.functional.logit_adjusted_cross_entropy`.

    .. math::
        l_n = -w_{y_n} \log \mathrm{softmax}\big(z_n + \tau \log \pi\big)_{y_n}

    ``tau=1`` is the balanced softmax (Ren et al. 2020). The log-prior is computed once from
    ``prior_or_counts`` (normalised to sum to 1) and stored as the buffer ``log_prior``.
    :meth:`posthoc_adjust` gives :math:`z - \tau \log \pi` for evaluating a model trained with
    plain cross-entropy.

    Shape:
        - logits: (N, C) or (N, C, d1, ...); target: (N,) or (N, d1, ...)

    Example::

        >>> import torch
        >>> loss = LogitAdjustedLoss([90, 10], tau=1.0)
        >>> loss(torch.tensor([[1.0, 1.0]]), torch.tensor([1]))
        tensor(2.3026)
    """

    log_prior: Tensor

    def __init__(
        self,
        prior_or_counts: Vector,
        tau: float = 1.0,
        *,
        weight: Vector | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        normalization: str = "weights",
    ) -> None:
        super().__init__(
            weight, ignore_index=ignore_index, reduction=reduction, normalization=normalization
        )
        self.tau = V.check_tau(tau)
        self.register_buffer("log_prior", V.log_prior(prior_or_counts, always_check=True))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        target = V.check_index_target(logits, target, self.ignore_index)
        V.check_class_vector(self.log_prior, logits.shape[1], name="prior_or_counts")
        V.check_class_vector(self.weight, logits.shape[1], name="weight")
        return LF._logit_adjusted_from_log_prior(
            logits, target, self.log_prior, self.tau, self.weight, self.ignore_index,
            self.reduction, self.normalization,
        )

    def posthoc_adjust(self, logits: Tensor) -> Tensor:
        """:math:`z - \\tau \\log \\pi` with this loss's prior and ``tau``."""
        V.check_logits(logits)
        V.check_class_vector(self.log_prior, logits.shape[1], name="prior_or_counts")
        V.check_device(self.log_prior, logits, name="log_prior")
        x = _upcast(logits)
        return x - self.tau * _class_view(self.log_prior.to(dtype=x.dtype), x.dim())

    def extra_repr(self) -> str:
        return f"tau={self.tau}, " + super().extra_repr()


# ----------------------------------------------------------------------------- multi-label

_CountsLoss = TypeVar("_CountsLoss", bound="_LabelCountsLoss")


class _LabelCountsLoss(nn.Module):
    """Shared storage of a multi-label loss built on label counts: the per-label vectors are
    computed once, here, and kept as buffers; ``from_labels`` counts a training label matrix."""

    def __init__(self, counts: Vector, *, num_samples: int, reduction: str) -> None:
        super().__init__()
        self.reduction = V.check_reduction(reduction)
        self.num_samples = V.check_num_samples(num_samples)
        self._counts = V.label_counts(counts, num_samples, always_check=True).cpu()

    @classmethod
    def from_labels(cls: type[_CountsLoss], labels: Any, **kwargs: Any) -> _CountsLoss:
        """The loss with ``counts`` and ``num_samples`` counted from an (N, L) 0/1 label matrix
        (e.g. the training set's targets): a tensor, numpy array, nested list or DataFrame of
        0/1 columns, or the row-compressed targets of ``balancer.labels_of(...,
        multilabel=True)`` (their counts are read as they are, without a dense matrix), or a
        torch (COO, CSR, ...) or scipy sparse matrix (counted from its stored entries)."""
        if all(hasattr(labels, a) for a in ("indptr", "indices", "counts", "num_samples")):
            # balancer.MultiLabels (duck-typed: this package does not import balancer).
            counts = torch.as_tensor(labels.counts, dtype=torch.float64)
            return cls(counts, num_samples=int(labels.num_samples), **kwargs)
        if hasattr(labels, "tocoo") and not isinstance(labels, Tensor):  # scipy.sparse
            coo = labels.tocoo()
            labels = torch.sparse_coo_tensor(
                torch.as_tensor(np.vstack([coo.row, coo.col]).astype(np.int64)),
                coo.data, coo.shape, check_invariants=True)
        if isinstance(labels, Tensor) and labels.layout != torch.strided:
            return cls._from_sparse_labels(labels, **kwargs)
        if not isinstance(labels, Tensor):
            given = type(labels).__name__
            if hasattr(labels, "to_numpy") and not isinstance(labels, np.ndarray):
                labels = np.array(labels.to_numpy())  # a DataFrame of 0/1 columns (a writable copy)
            try:
                labels = torch.as_tensor(labels)
            except (TypeError, ValueError, RuntimeError):
                raise TypeError(
                    f"labels should be an (N, L) 0/1 label matrix (a tensor, numpy array, "
                    f"nested list or DataFrame of 0/1 columns), but got a {given} that does "
                    "not convert to one; for findings given "
                    "as names or '|'-joined strings, pass balancer.labels_of(table, column, "
                    "multilabel=True)."
                ) from None
        if labels.dim() != 2:
            raise ValueError(
                f"labels should be an (N, L) 0/1 label matrix, but got shape "
                f"{tuple(labels.shape)}; stack the training targets into one tensor."
            )
        labels = labels.detach().to(torch.float64)
        # Counted once, at construction, so checking every entry is free; a -1 (CheXpert's
        # "uncertain") or a 2 would otherwise turn into a wrong count without a word.
        bad = ((labels != 0) & (labels != 1)).nonzero()
        if bad.numel():
            row, col = (int(v) for v in bad[0])
            raise ValueError(
                f"labels should hold only 0 and 1, but got labels[{row}, {col}] = "
                f"{labels[row, col].item():g} ({bad.shape[0]} such entries); map uncertain or "
                "missing labels to 0 or 1 (or drop those rows) before counting."
            )
        return cls(labels.sum(dim=0), num_samples=int(labels.shape[0]), **kwargs)

    @classmethod
    def _from_sparse_labels(cls: type[_CountsLoss], labels: Tensor,
                            **kwargs: Any) -> _CountsLoss:
        """``from_labels`` of a sparse (N, L) 0/1 matrix, never made dense."""
        coo = labels.detach().cpu().to_sparse_coo().coalesce()  # a repeated entry is summed
        if labels.dim() != 2 or coo.values().dim() != 1:
            raise ValueError(
                f"labels should be an (N, L) 0/1 label matrix, but got a sparse tensor of shape "
                f"{tuple(labels.shape)} with {coo.values().dim() - 1} dense dimension(s); pass a "
                "2-D sparse tensor of the training targets."
            )
        values = coo.values().to(torch.float64)
        bad = ((values != 0) & (values != 1)).nonzero()
        if bad.numel():
            first = int(bad[0, 0])
            row, col = (int(v) for v in coo.indices()[:, first])
            raise ValueError(
                f"labels should hold only 0 and 1, but got labels[{row}, {col}] = "
                f"{values[first].item():g} ({bad.shape[0]} such entries); map uncertain or "
                "missing labels to 0 or 1 (or drop those rows) before counting."
            )
        counts = torch.zeros(labels.shape[1], dtype=torch.float64)
        counts.index_add_(0, coo.indices()[1], values)
        return cls(counts, num_samples=int(labels.shape[0]), **kwargs)

    def _check(self, logits: Tensor, target: Tensor, buffer: Tensor, name: str) -> None:
        V.check_multilabel_target(logits, target)
        V.check_label_vector(buffer, logits.shape[1], name="counts")
        V.check_device(buffer, logits, name=name)


class AsymmetricLoss(nn.Module):
    r"""Asymmetric loss for multi-label classification (Ridnik et al. 2021,
    https://arxiv.org/abs/2009.14119); see :func:`losses.functional.asymmetric_loss`.

    .. math::
        l = -t\,(1 - p)^{\gamma_+} \log p - (1 - t)\, p_m^{\gamma_-} \log(1 - p_m),
        \qquad p_m = \max(p - m, 0)

    Shape:
        - logits: (N, L); target: (N, L), floating 0/1

    Example::

        >>> import torch
        >>> loss = AsymmetricLoss(gamma_neg=4.0, gamma_pos=0.0, clip=0.05)
        >>> loss(torch.tensor([[2.0, -1.0, -3.0]]), torch.tensor([[1.0, 0.0, 0.0]]))
        tensor(0.0425)
    """

    def __init__(
        self, gamma_neg: float = 4.0, gamma_pos: float = 0.0, clip: float = 0.05, *,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.gamma_neg = V.check_nonnegative(gamma_neg, "gamma_neg", "4.0")
        self.gamma_pos = V.check_nonnegative(gamma_pos, "gamma_pos", "0.0")
        self.clip = V.check_clip(clip)
        self.reduction = V.check_reduction(reduction)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return LF.asymmetric_loss(
            logits, target, gamma_neg=self.gamma_neg, gamma_pos=self.gamma_pos, clip=self.clip,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return (f"gamma_neg={self.gamma_neg}, gamma_pos={self.gamma_pos}, clip={self.clip}, "
                f"reduction={self.reduction!r}")


class PosWeightedBCELoss(_LabelCountsLoss):
    r"""BCE with per-label ``pos_weight`` :math:`c_k = (N - n_k) / n_k` from label counts; see
    :func:`losses.functional.pos_weighted_bce`. Equal to
    ``nn.BCEWithLogitsLoss(pos_weight=loss.pos_weight)``.

    Shape:
        - logits: (N, L); target: (N, L), floating 0/1

    Example::

        >>> import torch
        >>> loss = PosWeightedBCELoss([10, 50], num_samples=100)
        >>> loss.pos_weight
        tensor([9., 1.])
        >>> loss(torch.zeros(1, 2), torch.tensor([[1.0, 1.0]]))  # (9 log 2 + log 2) / 2
        tensor(3.4657)
    """

    pos_weight: Tensor

    def __init__(self, counts: Vector, *, num_samples: int, reduction: str = "mean") -> None:
        super().__init__(counts, num_samples=num_samples, reduction=reduction)
        self.register_buffer(
            "pos_weight", LF._pos_weight(self._counts, num_samples).to(torch.float32)
        )

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        self._check(logits, target, self.pos_weight, "pos_weight")
        x, t = LF._multilabel_input(logits, target)
        spec = S.ShiftedBCE(pos_weight=self.pos_weight.to(x.dtype))
        return S.sigmoid_loss(spec, x, t, self.reduction)


class SigmoidLogitAdjustedLoss(_LabelCountsLoss):
    r"""BCE on logits shifted by :math:`\tau \log(\pi_k / (1 - \pi_k))`, each label's prior
    log-odds; see :func:`losses.functional.sigmoid_logit_adjusted_bce`. :meth:`posthoc_adjust`
    gives :math:`z - \tau \log(\pi / (1 - \pi))` for a model trained with plain BCE.

    Shape:
        - logits: (N, L); target: (N, L), floating 0/1

    Example::

        >>> import torch
        >>> loss = SigmoidLogitAdjustedLoss([10, 50], num_samples=100)
        >>> loss.log_odds
        tensor([-2.1972,  0.0000])
        >>> loss(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]))  # (2.3026 + 0.6931) / 2
        tensor(1.4979)
    """

    log_odds: Tensor

    def __init__(
        self, counts: Vector, *, num_samples: int, tau: float = 1.0, reduction: str = "mean"
    ) -> None:
        super().__init__(counts, num_samples=num_samples, reduction=reduction)
        self.tau = V.check_tau(tau)
        self.register_buffer(
            "log_odds", LF._log_odds(self._counts, num_samples).to(torch.float32)
        )

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        self._check(logits, target, self.log_odds, "log_odds")
        x, t = LF._multilabel_input(logits, target)
        shift = None if self.tau == 0.0 else self.tau * self.log_odds.to(x.dtype)
        return S.sigmoid_loss(S.ShiftedBCE(shift=shift), x, t, self.reduction)

    def posthoc_adjust(self, logits: Tensor) -> Tensor:
        r""":math:`z - \tau \log(\pi / (1 - \pi))` with this loss's counts and ``tau``."""
        V.check_logits_any_shape(logits)
        V.check_label_vector(self.log_odds, logits.shape[-1], name="counts")
        V.check_device(self.log_odds, logits, name="log_odds")
        x = _upcast(logits)
        return x - self.tau * self.log_odds.to(x.dtype)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, num_samples={self.num_samples}, reduction={self.reduction!r}"


class DistributionBalancedLoss(_LabelCountsLoss):
    r"""Distribution-balanced loss (Wu et al. 2020, https://arxiv.org/abs/2007.09654):
    re-balanced weights and negative-tolerant regularisation; see
    :func:`losses.functional.distribution_balanced_loss`.

    .. math::
        l_{ik} = \hat r_{ik} \Big( t_{ik} \log(1 + e^{-(z_{ik} + \nu_k)})
            + \frac{1 - t_{ik}}{\lambda} \log(1 + e^{\lambda (z_{ik} + \nu_k)}) \Big)

    Shape:
        - logits: (N, L); target: (N, L), floating 0/1

    Example::

        >>> import torch
        >>> loss = DistributionBalancedLoss([50, 10], num_samples=100)
        >>> loss(torch.zeros(2, 2), torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
        tensor(0.5661)
    """

    inv_counts: Tensor
    shift: Tensor

    def __init__(
        self, counts: Vector, *, num_samples: int, alpha: float = 0.1, beta: float = 10.0,
        mu: float = 0.2, kappa: float = 0.05, neg_scale: float = 2.0, reduction: str = "mean",
    ) -> None:
        super().__init__(counts, num_samples=num_samples, reduction=reduction)
        self.alpha = V.check_nonnegative(alpha, "alpha", "0.1")
        self.beta = V.check_nonnegative(beta, "beta", "10.0")
        self.mu = V.check_finite(mu, "mu", "0.2")
        self.kappa = V.check_finite(kappa, "kappa", "0.05")
        self.neg_scale = V.check_positive(neg_scale, "neg_scale", "2.0")
        self.register_buffer("inv_counts", (1.0 / self._counts).to(torch.float32))
        self.register_buffer(
            "shift",
            ((self.kappa / self.neg_scale) * LF._log_odds(self._counts, num_samples)).to(
                torch.float32
            ),
        )

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        self._check(logits, target, self.inv_counts, "inv_counts")
        x, t = LF._multilabel_input(logits, target)
        spec = S.ShiftedBCE(
            shift=None if self.kappa == 0.0 else self.shift.to(x.dtype),
            neg_scale=self.neg_scale,
            weight=S.RebalanceWeight(
                self.inv_counts.to(x.dtype), alpha=self.alpha, beta=self.beta, mu=self.mu
            ),
        )
        return S.sigmoid_loss(spec, x, t, self.reduction)

    def extra_repr(self) -> str:
        return (f"alpha={self.alpha}, beta={self.beta}, mu={self.mu}, kappa={self.kappa}, "
                f"neg_scale={self.neg_scale}, num_samples={self.num_samples}, "
                f"reduction={self.reduction!r}")
