"""Per-class weights from class counts or a label vector."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

from losses import _validation as V

SCHEMES = ("inverse", "inverse_sqrt", "effective", "none")


def class_weights(
    counts_or_labels: Tensor | Sequence[float],
    scheme: str = "inverse",
    *,
    beta: float = 0.999,
    num_classes: int | None = None,
) -> Tensor:
    r"""Per-class weights from class counts, or from a label vector when ``num_classes`` is given.

    Unnormalised weights for class :math:`c` with :math:`n_c` samples:

    .. math::
        \text{inverse: } \frac{1}{n_c} \qquad
        \text{inverse\_sqrt: } \frac{1}{\sqrt{n_c}} \qquad
        \text{effective: } \frac{1 - \beta}{1 - \beta^{n_c}} \qquad
        \text{none: } 1

    ("effective" is the effective number of samples of Cui et al. 2019,
    https://arxiv.org/abs/1901.05555; :math:`\beta \to 1` approaches "inverse",
    :math:`\beta = 0` gives "none"). The weights are then **normalised to average 1 over the
    classes** (they sum to C), so a balanced data set gets all ones and the loss keeps its scale.

    Args:
        counts_or_labels: per-class counts of length C; or, when ``num_classes`` is given, a
            vector of integer labels in ``[0, num_classes)`` that is counted first. Without
            ``num_classes`` the vector is always read as counts, even when it holds integers
            that look like labels (``[0, 0, 1, 1, 1]`` is five classes, two of them empty):
            pass ``num_classes`` to count labels.
        scheme: ``"inverse"``, ``"inverse_sqrt"``, ``"effective"`` or ``"none"``.
        beta: the "effective" scheme's parameter in [0, 1).
        num_classes: C, to read ``counts_or_labels`` as labels (classes absent from the labels
            then get a count of 0, which the inverse schemes reject).

    Returns:
        float32 tensor of shape (C,), on the input's device.

    Example::

        >>> import torch
        >>> class_weights(torch.tensor([90, 10]))
        tensor([0.2000, 1.8000])
        >>> class_weights(torch.tensor([90, 10]), "inverse_sqrt")
        tensor([0.5000, 1.5000])
        >>> class_weights(torch.tensor([0, 0, 1, 0]), num_classes=2)  # labels: counts (3, 1)
        tensor([0.5000, 1.5000])
    """
    if scheme not in SCHEMES:
        raise ValueError(
            f"scheme should be one of {SCHEMES}, but got scheme={scheme!r}; pick one of those."
        )
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real):
        raise TypeError(
            f"beta should be a float in [0, 1), but got beta={beta!r} ({type(beta).__name__}); "
            "Cui et al. use 0.9 to 0.9999."
        )
    if not 0.0 <= beta < 1.0:
        raise ValueError(
            f"beta should be in [0, 1), but got beta={beta!r}; Cui et al. use 0.9 to 0.9999."
        )
    beta = float(beta)
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
            raise TypeError(
                f"num_classes should be a positive integer, but got num_classes={num_classes!r} "
                f"({type(num_classes).__name__}); pass the number of classes as an int."
            )
        if num_classes < 1:
            raise ValueError(
                f"num_classes should be >= 1, but got num_classes={num_classes!r}; pass the "
                "number of classes."
            )
        num_classes = int(num_classes)
        labels = torch.as_tensor(counts_or_labels)
        if labels.is_floating_point() or labels.dim() != 1:
            raise TypeError(
                "with num_classes given, counts_or_labels should be a 1-D integer label vector, "
                f"but got dtype {labels.dtype} and shape {tuple(labels.shape)}."
            )
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"labels should lie in [0, {num_classes}) for num_classes={num_classes}, but "
                f"got values in [{int(labels.min())}, {int(labels.max())}]."
            )
        counts = torch.bincount(labels.long(), minlength=num_classes).to(torch.float64)
    else:
        integers = _holds_integers(counts_or_labels)
        vec = V.as_vector(counts_or_labels, name="counts_or_labels", dtype=torch.float64)
        assert vec is not None
        counts = vec.to(torch.float64)
    if counts.numel() == 0:
        raise ValueError("counts_or_labels should have one entry per class, but got none.")
    host = counts.cpu()  # a one-off read at set-up time, not inside a loss
    if not torch.isfinite(host).all() or (host < 0).any():
        raise ValueError(
            f"counts should be finite and non-negative, but got counts={host.tolist()}."
        )
    if scheme == "none":
        w = torch.ones_like(counts)
    else:
        zero = (host == 0).nonzero().flatten()
        if zero.numel():
            hint = ""
            if num_classes is None and integers:
                # The same call with labels instead of counts lands here: say how to tell them.
                hint = (
                    f" If counts_or_labels holds one class label per sample rather than one "
                    f"count per class (it was read as counts of {counts.numel()} classes), pass "
                    "num_classes=C to count the labels: class_weights(labels, num_classes=C)."
                )
            raise ValueError(
                f"class {int(zero[0])} has a count of 0, so scheme={scheme!r} would give it an "
                f"infinite weight; drop the class or add a pseudo-count (counts + 1).{hint}"
            )
        if scheme == "inverse":
            w = counts.reciprocal()
        elif scheme == "inverse_sqrt":
            w = counts.rsqrt()
        elif beta == 0.0:
            w = torch.ones_like(counts)  # 1 - 0^n = 1 for every n >= 1
        else:
            # 1 - beta^n via expm1 keeps precision for beta close to 1.
            w = (1.0 - beta) / -torch.expm1(counts * math.log(beta))
    return (w * (w.numel() / w.sum())).to(torch.float32)


def _holds_integers(value: object) -> bool:
    """Whether ``value`` (tensor, numpy array or sequence) holds integers, as labels do."""
    if isinstance(value, Tensor):
        return not (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool)
    kind = getattr(getattr(value, "dtype", None), "kind", None)  # a numpy array
    if kind is not None:
        return kind in ("i", "u")
    return isinstance(value, Sequence) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    )
