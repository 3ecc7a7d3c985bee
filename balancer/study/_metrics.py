"""Test-split metrics of one trained model: scikit-learn for the classics, ECE written here."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    f1_score,
    log_loss,
    recall_score,
    roc_auc_score,
    roc_curve,
)

__all__ = ["HEADLINE", "TASK_METRICS", "classification_metrics", "expected_calibration_error",
           "quadratic_weighted_kappa", "sensitivity_at_specificity"]

#: Metrics that only some tasks have: AUPRC (all), sensitivity at 95% specificity (binary) and
#: quadratic weighted kappa (ordinal classes), with whether higher is better.
TASK_METRICS: dict[str, bool] = {"auprc": True, "sens@95spec": True, "qwk": True}

#: The metrics of the report's main table, in order, with whether higher is better.
HEADLINE: dict[str, bool] = {
    "accuracy": True,
    "balanced_accuracy": True,
    "macro_f1": True,
    "macro_auc": True,
    "nll": False,
    "ece": False,
}


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, *, bins: int = 15) -> float:
    r"""Top-label expected calibration error with equal-width confidence bins (Guo et al. 2017,
    https://arxiv.org/abs/1706.04599).

    With :math:`B_m` the samples whose confidence :math:`\max_c p_{n,c}` falls in
    :math:`(\frac{m-1}{M}, \frac{m}{M}]` (the first bin also holds confidence 0):

    .. math::
        \mathrm{ECE} = \sum_{m=1}^{M} \frac{|B_m|}{N}
            \big|\mathrm{acc}(B_m) - \mathrm{conf}(B_m)\big|

    where :math:`\mathrm{acc}` is the fraction of correct top-1 predictions and
    :math:`\mathrm{conf}` the mean confidence of the bin. 0 is perfect calibration.

    Args:
        probs: ``(N, C)`` predicted probabilities (rows sum to 1).
        labels: ``(N,)`` true class indices.
        bins: ``M``, the number of equal-width bins over ``[0, 1]`` (15, as Guo et al.).

    Example:
        Four predictions, each alone in its bin, right, wrong, right, right:
        (|1 - 0.95| + |0 - 0.85| + |1 - 0.75| + |1 - 0.65|) / 4 = 0.375.

        >>> probs = np.array([[0.95, 0.05], [0.85, 0.15], [0.25, 0.75], [0.65, 0.35]])
        >>> round(expected_calibration_error(probs, np.array([0, 1, 1, 0]), bins=10), 4)
        0.375
    """
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    # Bin m holds (m/M, (m+1)/M]: ceil(conf * M) - 1, with confidence 0 put in the first bin.
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    size = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, correct, minlength=bins)
                 - np.bincount(which, confidence, minlength=bins))
    # sum_m |B_m|/N * |acc_m - conf_m| = sum_m |sum_correct_m - sum_conf_m| / N
    return float(gap[size > 0].sum() / len(labels))


def sensitivity_at_specificity(probs: np.ndarray, labels: np.ndarray, *,
                               specificity: float = 0.95) -> float:
    """The highest sensitivity (recall of class 1) of any threshold on class 1's probability
    whose specificity (recall of class 0) is at least ``specificity``.

    Binary tasks only: with more classes "positive" is not defined, and that is an error.

    Example:
        Negatives score 0.1, 0.2, 0.3, 0.4 and positives 0.35, 0.8: no negative may be above
        the threshold at specificity 1, so only the positive at 0.8 is found.

        >>> p1 = np.array([0.1, 0.2, 0.3, 0.4, 0.35, 0.8])
        >>> sensitivity_at_specificity(np.stack([1 - p1, p1], 1), np.array([0, 0, 0, 0, 1, 1]),
        ...                            specificity=1.0)
        0.5
    """
    if probs.ndim != 2 or probs.shape[1] != 2:
        raise ValueError(f"sensitivity at specificity applies to binary tasks, but the "
                         f"probabilities have {probs.shape[1] if probs.ndim == 2 else '?'} "
                         f"classes; use balanced accuracy or per-class recall for multi-class "
                         f"data")
    if not 0.0 <= specificity <= 1.0:
        raise ValueError(f"specificity should be in [0, 1], but got specificity={specificity}")
    fpr, tpr, _ = roc_curve(labels, probs[:, 1])
    return float(tpr[fpr <= 1.0 - specificity + 1e-12].max())


def quadratic_weighted_kappa(probs: np.ndarray, labels: np.ndarray, *, ordinal: bool) -> float:
    r"""Cohen's kappa with quadratic weights between the true and the predicted class:
    :math:`\kappa = 1 - \frac{\sum_{ij} w_{ij} O_{ij}}{\sum_{ij} w_{ij} E_{ij}}`, with
    :math:`w_{ij} = (i - j)^2 / (C - 1)^2`, :math:`O` the confusion matrix and :math:`E` the
    outer product of its marginals over N. A miss by two grades costs four times a miss by one,
    so it only means something when the classes are ordered grades: ``ordinal=False`` is an error.

    Example:
        >>> probs = np.eye(3)[[0, 1, 2, 2]]
        >>> quadratic_weighted_kappa(probs, np.array([0, 1, 2, 1]), ordinal=True)
        0.8
    """
    if not ordinal:
        raise ValueError("quadratic weighted kappa applies to ordinal classes (ordered grades, "
                         "e.g. RetinaMNIST's retinopathy grades), but these classes are not "
                         "marked ordinal; pass ordinal=True (--ordinal) if their order means "
                         "something, or leave kappa out")
    return float(cohen_kappa_score(labels, probs.argmax(axis=1), weights="quadratic"))


def classification_metrics(probs: np.ndarray, labels: np.ndarray, *, num_classes: int,
                           ece_bins: int = 15, ordinal: bool = False) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro-F1, per-class recall, macro AUC, NLL, ECE and AUPRC;
    for two classes also the sensitivity at 95% specificity, for ordinal classes the quadratic
    weighted kappa (``qwk``).

    AUC is one-vs-rest averaged over classes (``roc_auc_score(multi_class="ovr")``), or the
    ordinary binary AUC of class 1's probability for two classes; AUPRC likewise
    (``average_precision_score``: of class 1 for two classes, else the one-vs-rest macro mean).
    NLL is the mean negative log-likelihood of the true class (``log_loss``). Per-class recall
    is ``recall[c]``.
    """
    classes = np.arange(num_classes)
    predicted = probs.argmax(axis=1)
    metrics = {
        "accuracy": accuracy_score(labels, predicted),
        "balanced_accuracy": balanced_accuracy_score(labels, predicted),
        "macro_f1": f1_score(labels, predicted, labels=classes, average="macro", zero_division=0),
        "macro_auc": (roc_auc_score(labels, probs[:, 1]) if num_classes == 2 else
                      roc_auc_score(labels, probs, multi_class="ovr", average="macro",
                                    labels=classes)),
        "nll": log_loss(labels, probs, labels=classes),
        "ece": expected_calibration_error(probs, labels, bins=ece_bins),
    }
    if num_classes == 2:
        metrics["auprc"] = average_precision_score(labels, probs[:, 1])
        metrics["sens@95spec"] = sensitivity_at_specificity(probs, labels)
    else:
        metrics["auprc"] = average_precision_score(np.eye(num_classes)[labels], probs,
                                                   average="macro")
    if ordinal:
        metrics["qwk"] = quadratic_weighted_kappa(probs, labels, ordinal=True)
    recall = recall_score(labels, predicted, labels=classes, average=None, zero_division=0)
    metrics.update({f"recall[{c}]": value for c, value in enumerate(recall)})
    return {name: float(value) for name, value in metrics.items()}
