"""Imbalance-aware classification losses, each as a function and a module.

The math lives in :mod:`losses.functional`; the modules here store settings (per-class tensors
as buffers) and call it. Every loss is called as ``loss(logits, target)``.
"""

from losses import functional
from losses._modules import (
    BinaryFocalLoss,
    FocalLoss,
    LDAMLoss,
    LogitAdjustedLoss,
    MarginLoss,
    WeightedCrossEntropyLoss,
    WeightedNLLLoss,
)
from losses._weights import class_weights

__all__ = [
    "BinaryFocalLoss",
    "FocalLoss",
    "LDAMLoss",
    "LogitAdjustedLoss",
    "MarginLoss",
    "WeightedCrossEntropyLoss",
    "WeightedNLLLoss",
    "class_weights",
    "functional",
]
