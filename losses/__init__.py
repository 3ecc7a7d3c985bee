"""Imbalance-aware classification losses, each as a function and a module.

The math lives in :mod:`losses.functional`; the modules here store settings (per-class tensors
as buffers) and call it. Every loss is called as ``loss(logits, target)``: single-label losses
with class-index targets, multi-label losses (asymmetric, distribution-balanced, pos-weighted
BCE, sigmoid logit adjustment) with (N, L) 0/1 float targets.
"""

from losses import functional
from losses._modules import (
    AsymmetricLoss,
    BinaryFocalLoss,
    DistributionBalancedLoss,
    FocalLoss,
    LDAMLoss,
    LogitAdjustedLoss,
    MarginLoss,
    PosWeightedBCELoss,
    SigmoidLogitAdjustedLoss,
    WeightedCrossEntropyLoss,
    WeightedNLLLoss,
)
from losses._weights import class_weights

__all__ = [
    "AsymmetricLoss",
    "BinaryFocalLoss",
    "DistributionBalancedLoss",
    "FocalLoss",
    "LDAMLoss",
    "LogitAdjustedLoss",
    "MarginLoss",
    "PosWeightedBCELoss",
    "SigmoidLogitAdjustedLoss",
    "WeightedCrossEntropyLoss",
    "WeightedNLLLoss",
    "class_weights",
    "functional",
]
