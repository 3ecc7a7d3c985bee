"""Helpers shared by the losses and their kernels: compute dtype, ignored targets, reductions."""

from __future__ import annotations

from collections.abc import Callable
from typing import overload

import torch
from torch import Tensor


def _upcast(x: Tensor) -> Tensor:
    """x in its compute dtype: float32 for half types, unchanged otherwise."""
    dtype = torch.promote_types(x.dtype, torch.float32)
    return x if x.dtype == dtype else x.to(dtype)


def _safe_target(target: Tensor, ignore_index: int) -> tuple[Tensor, Tensor]:
    """(target with ignored entries replaced by class 0, mask of counted entries)."""
    valid = target != ignore_index
    return target.masked_fill(~valid, 0), valid


@overload
def _cast(vec: Tensor, like: Tensor) -> Tensor: ...
@overload
def _cast(vec: None, like: Tensor) -> None: ...
@overload
def _cast(vec: Tensor | None, like: Tensor) -> Tensor | None: ...
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


def _class_view(vec: Tensor, ndim: int) -> Tensor:
    """A (C,) vector shaped to broadcast along dim 1 of an (N, C, d1, ...) tensor."""
    return vec.view(-1, *([1] * (ndim - 2)))


def _torch_ce_like(
    fn: Callable[..., Tensor], x: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int, reduction: str,
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
        den = (weight[safe] * valid).sum()
    else:
        den = valid.sum().to(total.dtype)
    return total / torch.where(den == 0, torch.ones_like(den), den)


def _weight_and_reduce(
    loss: Tensor, safe: Tensor, valid: Tensor, weight: Tensor | None, reduction: str,
    normalization: str,
) -> Tensor:
    """Multiply a per-element loss by its target's weight (0 where ignored) and reduce.

    Ignored positions are zeroed with ``where``, not only multiplied by 0: their loss was
    computed for a stand-in class and is inf or NaN when their logits are (padding).
    """
    w_y = valid.to(loss.dtype) if weight is None else weight[safe] * valid
    loss = torch.where(valid, loss * w_y, 0.0)
    return _reduce(loss, reduction, valid, None if weight is None else w_y, normalization)

