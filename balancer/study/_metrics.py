"""The study's test-split metrics, single-label and multi-label side by side.

Single-label (one class per sample): scikit-learn for the classics, the expected calibration
error written here (:func:`classification_metrics`). Multi-label (several 0/1 labels per sample):
per-label AUROC and AUPRC, macro and micro F1 at per-label thresholds chosen on validation, and
their paired-bootstrap differences against a reference row (:func:`multilabel_metrics`,
:func:`paired_multilabel`).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
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

from balancer.study._stats import MIN_SEEDS, check_paired

__all__ = ["HEADLINE", "ML_HEADLINE", "TASK_METRICS", "Predictions", "choose_thresholds",
           "classification_metrics", "expected_calibration_error", "multilabel_metrics",
           "paired_multilabel", "quadratic_weighted_kappa", "sensitivity_at_specificity",
           "weighted_auprc", "weighted_auroc", "weighted_f1"]

#: The metrics of the report's main table, in order, with whether higher is better: of the
#: single-label study (``HEADLINE``) and of the multi-label study (``ML_HEADLINE``).
HEADLINE: dict[str, bool] = {
    "accuracy": True,
    "balanced_accuracy": True,
    "macro_f1": True,
    "macro_auc": True,
    "nll": False,
    "ece": False,
}
ML_HEADLINE: dict[str, bool] = {
    "macro_auroc": True,
    "macro_auprc": True,
    "macro_f1": True,
    "micro_f1": True,
}

#: Single-label metrics that only some tasks have: AUPRC (all), sensitivity at 95% specificity
#: (binary) and quadratic weighted kappa (ordinal classes), with whether higher is better.
TASK_METRICS: dict[str, bool] = {"auprc": True, "sens@95spec": True, "qwk": True}


# ---------------------------------------------------------------------------------------------
# Single-label: probabilities (N, C), class indices (N,)
# ---------------------------------------------------------------------------------------------

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
                               specificity: float = 0.95, positive: int = 1) -> float:
    """The highest sensitivity (recall of class ``positive``, 1 by default) of any threshold on
    its probability whose specificity (recall of the other class) is at least
    ``specificity``.

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
    if positive not in (0, 1):
        raise ValueError(f"positive should be 0 or 1 (the positive class of a binary task), "
                         f"but got positive={positive!r}")
    fpr, tpr, _ = roc_curve(labels == positive, probs[:, positive])
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
                           ece_bins: int = 15, ordinal: bool = False,
                           positive: int = 1) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro-F1, per-class recall, macro AUC, NLL, ECE and AUPRC;
    for two classes also the sensitivity at 95% specificity, for ordinal classes the quadratic
    weighted kappa (``qwk``).

    AUC is one-vs-rest averaged over classes (``roc_auc_score(multi_class="ovr")``), or the
    ordinary binary AUC of class 1's probability for two classes; AUPRC likewise
    (``average_precision_score``: of class ``positive`` for two classes, 1 by default, as is the
    sensitivity at 95% specificity; else the one-vs-rest macro mean).
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
        metrics["auprc"] = average_precision_score(labels == positive, probs[:, positive])
        metrics["sens@95spec"] = sensitivity_at_specificity(probs, labels, positive=positive)
    else:
        metrics["auprc"] = average_precision_score(np.eye(num_classes)[labels], probs,
                                                   average="macro")
    if ordinal:
        metrics["qwk"] = quadratic_weighted_kappa(probs, labels, ordinal=True)
    recall = recall_score(labels, predicted, labels=classes, average=None, zero_division=0)
    metrics.update({f"recall[{c}]": value for c, value in enumerate(recall)})
    return {name: float(value) for name, value in metrics.items()}


# ---------------------------------------------------------------------------------------------
# Multi-label: probabilities (N, L), 0/1 targets (N, L)
# ---------------------------------------------------------------------------------------------
# Design note: thresholds come from validation, and stay fixed under the bootstrap
# F1 needs a decision per label. Each run picks, per label, the threshold that maximises that
# label's F1 on the validation split (choose_thresholds); the test F1 (macro: mean of the
# per-label F1; micro: one F1 over all labels' pooled counts) uses those thresholds unchanged, so
# nothing of the test split tunes anything. The paired bootstrap (the design of
# balancer.study._stats: the same seed draws and the same test-sample draws for every strategy)
# recomputes each metric on resampled test samples with each run's own, fixed, thresholds. Every
# multi-label metric accepts (B, N) sample weights, so B resamples are computed at once; with
# all-one weights the values equal scikit-learn's (see the tests).

_CHUNK = 256  # resamples computed together (bounds memory at _CHUNK x N floats)
_CACHE_BYTES = 256 << 20  # keep every bootstrap draw when they fit in this many bytes


def _tie_ends(sorted_scores: np.ndarray) -> np.ndarray:
    """Index of the last element of each run of equal values in a sorted array."""
    change = np.flatnonzero(sorted_scores[1:] != sorted_scores[:-1])
    return np.append(change, len(sorted_scores) - 1)


class _Sorted:
    r"""One label's scores sorted once (ascending), so that many weightings are evaluated
    without sorting again.

    Both areas need, per run :math:`g` of equal scores that holds a positive, its positive
    weight :math:`p_g`, the cumulative positive weight :math:`P_g` up to and including it, and
    the total weight :math:`A^{<}_g` below it and :math:`A^{\le}_g` up to its end (one
    cumulative sum over all samples; every other step touches the positive runs only). With
    :math:`N_g = A^{\le}_g - P_g` and :math:`n_g = A^{\le}_g - A^{<}_g - p_g`, the ROC area sums
    :math:`p_g (N_g - n_g / 2)` over :math:`P N`, and average precision, thresholds scanned
    from the top, sums :math:`p_g \cdot (P - P_g + p_g) / (A - A^{<}_g)` over :math:`P`."""

    def __init__(self, scores: np.ndarray, positive: np.ndarray) -> None:
        self.order = np.argsort(scores, kind="stable")
        ends = _tie_ends(scores[self.order])
        starts = np.append(0, ends[:-1] + 1)
        run_of = np.repeat(np.arange(len(ends)), ends - starts + 1)
        self.positives = np.flatnonzero(positive[self.order])  # sorted positions
        runs, self.first = np.unique(run_of[self.positives], return_index=True)
        self.end_rows = ends[runs]
        self.before_rows = starts[runs] - 1  # -1: nothing below the run

    def areas(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(B,)`` AUROC and ``(B,)`` AUPRC of the ``(B, N)`` weightings."""
        if self.positives.size == 0:
            missing = np.full(weights.shape[0], np.nan)
            return missing, missing
        w = weights.T[self.order]  # (N, B): the cumulative sum runs down contiguous rows
        cum = np.cumsum(w, axis=0)
        total = cum[-1]
        pos_g = np.add.reduceat(w[self.positives], self.first, axis=0)
        cum_pos = np.cumsum(pos_g, axis=0)
        total_pos = cum_pos[-1]
        upto = cum[self.end_rows]
        below = cum[np.maximum(self.before_rows, 0)] * (self.before_rows >= 0)[:, None]
        neg_g = upto - below - pos_g
        total_neg = total - total_pos
        wins = (pos_g * (upto - cum_pos - 0.5 * neg_g)).sum(axis=0)
        called = total - below  # weight at or above the run's score
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(called > 0, (total_pos - cum_pos + pos_g) / called, 0.0)
            auroc = np.where(total_pos * total_neg > 0, wins / (total_pos * total_neg), np.nan)
            auprc = np.where(total_pos > 0, (pos_g * precision).sum(axis=0) / total_pos, np.nan)
        return auroc, auprc


def weighted_auroc(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    r"""Area under the ROC curve of one label for ``B`` weightings of its samples.

    .. math::
        \mathrm{AUROC} = \frac{\sum_{i \in +} \sum_{j \in -} w_i w_j
            \big([s_i > s_j] + \tfrac12 [s_i = s_j]\big)}{\sum_{i \in +} w_i \sum_{j \in -} w_j}

    Args:
        scores: ``(N,)`` scores; positive: ``(N,)`` booleans; weights: ``(B, N)``.

    Returns:
        ``(B,)`` values, NaN where a weighting has no positive or no negative weight.

    Example:
        >>> weighted_auroc(np.array([0.1, 0.4, 0.4, 0.9]), np.array([0, 1, 0, 1], bool),
        ...                np.ones((1, 4)))
        array([0.875])
    """
    return _Sorted(np.asarray(scores), np.asarray(positive, bool)).areas(weights)[0]


def weighted_auprc(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    r"""Average precision (area under the precision-recall curve, step-wise as scikit-learn's
    ``average_precision_score``) of one label for ``B`` weightings of its samples.

    With the distinct scores :math:`t_1 > t_2 > \dots` as thresholds, precision :math:`P_k` and
    recall :math:`R_k` of predicting :math:`s \ge t_k`:
    :math:`\mathrm{AP} = \sum_k (R_k - R_{k-1}) P_k`.

    Returns:
        ``(B,)`` values, NaN where a weighting has no positive weight.

    Example:
        >>> weighted_auprc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1], bool),
        ...                np.ones((1, 4))).round(4)
        array([0.8333])
    """
    return _Sorted(np.asarray(scores), np.asarray(positive, bool)).areas(weights)[1]


def choose_thresholds(probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per label, the threshold ``t`` maximising that label's F1 of ``probs >= t`` (validation).

    The candidates are the label's distinct scores; among equal F1 the highest threshold wins
    (fewest positive calls). A label without a positive in ``targets`` gets 0.5.

    Args:
        probs: ``(N, L)`` probabilities; targets: ``(N, L)`` 0/1.

    Returns:
        ``(L,)`` thresholds.

    Example:
        >>> probs = np.array([[0.9, 0.2], [0.6, 0.3], [0.4, 0.8], [0.1, 0.1]])
        >>> targets = np.array([[1, 0], [1, 0], [0, 1], [0, 1]])
        >>> choose_thresholds(probs, targets).tolist()  # b: 0.8 and 0.1 both give F1 = 2/3
        [0.6, 0.8]
    """
    thresholds = np.full(probs.shape[1], 0.5)
    for label in range(probs.shape[1]):
        positive = targets[:, label] > 0
        total = int(positive.sum())
        if total == 0:
            continue
        scores = probs[:, label]
        order = np.argsort(-scores, kind="stable")
        ends = _tie_ends(scores[order])
        tp = np.cumsum(positive[order])[ends]
        called = ends + 1
        f1 = 2 * tp / (called + total)
        thresholds[label] = scores[order][ends[int(np.argmax(f1))]]  # first max: highest t
    return thresholds


def weighted_f1(probs: np.ndarray, targets: np.ndarray, thresholds: np.ndarray,
                weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Per-label F1 and micro F1 of ``probs >= thresholds`` for ``B`` weightings.

    .. math::
        F_1^{(j)} = \frac{2\,TP_j}{2\,TP_j + FP_j + FN_j}, \qquad
        F_1^{\mathrm{micro}} = \frac{2 \sum_j TP_j}{\sum_j (2\,TP_j + FP_j + FN_j)}

    (0 where the denominator is 0, as scikit-learn's ``zero_division=0``).

    Returns:
        ``(B, L)`` per-label F1 and ``(B,)`` micro F1.
    """
    called = (probs >= thresholds[None, :]).astype(np.float64)
    truth = (targets > 0).astype(np.float64)
    tp = weights @ (called * truth)
    fp = weights @ (called * (1.0 - truth))
    fn = weights @ ((1.0 - called) * truth)
    denominator = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        per_label = np.where(denominator > 0, 2 * tp / denominator, 0.0)
        pooled = denominator.sum(axis=1)
        micro = np.where(pooled > 0, 2 * tp.sum(axis=1) / pooled, 0.0)
    return per_label, micro


class _Run:
    """One model's split predictions prepared for many weightings: each label sorted once."""

    def __init__(self, probs: np.ndarray, targets: np.ndarray, thresholds: np.ndarray,
                 names: list[str]) -> None:
        truth = targets > 0
        self.labels = [_Sorted(probs[:, j], truth[:, j]) for j in range(probs.shape[1])]
        self.probs, self.targets, self.thresholds, self.names = probs, targets, thresholds, names

    def metrics(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        areas = [label.areas(weights) for label in self.labels]
        auroc = np.stack([a[0] for a in areas], axis=1)
        auprc = np.stack([a[1] for a in areas], axis=1)
        f1, micro = weighted_f1(self.probs, self.targets, self.thresholds, weights)
        with warnings.catch_warnings():  # a resample without any positive of a label: NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            out = {"macro_auroc": np.nanmean(auroc, axis=1),
                   "macro_auprc": np.nanmean(auprc, axis=1),
                   "macro_f1": f1.mean(axis=1), "micro_f1": micro}
        for j, name in enumerate(self.names):
            out[f"auroc[{name}]"] = auroc[:, j]
            out[f"auprc[{name}]"] = auprc[:, j]
            out[f"f1[{name}]"] = f1[:, j]
        return out


def multilabel_metrics(probs: np.ndarray, targets: np.ndarray, thresholds: np.ndarray,
                       names: list[str]) -> dict[str, float]:
    """Every metric of one model on one split: the :data:`ML_HEADLINE` metrics and, per label,
    ``auroc[name]``, ``auprc[name]`` and ``f1[name]`` (F1 at ``thresholds``).

    Macro AUROC and AUPRC average over the labels that have a positive (and, for AUROC, a
    negative) in the split.

    Example:
        >>> probs = np.array([[0.9, 0.2], [0.6, 0.3], [0.4, 0.8], [0.1, 0.1]])
        >>> targets = np.array([[1, 0], [1, 0], [0, 1], [0, 1]])
        >>> metrics = multilabel_metrics(probs, targets, np.array([0.5, 0.5]), ["a", "b"])
        >>> metrics["macro_auroc"], metrics["f1[a]"], round(metrics["micro_f1"], 4)  # (1 + 0.5) / 2
        (0.75, 1.0, 0.8571)
    """
    values = _Run(probs, targets, thresholds, names).metrics(np.ones((1, len(probs))))
    return {key: float(value[0]) for key, value in values.items()}


def paired_multilabel(predictions: dict, targets: np.ndarray, thresholds: dict, *,
                      strategies: list[str], seeds: list[int], reference: str,
                      metrics: list[str], names: list[str], resamples: int = 1000,
                      seed: int = 0, alpha: float = 0.05) -> pd.DataFrame:
    """Every strategy minus ``reference``, per metric, with a paired-bootstrap 95% interval over
    seeds and test samples and a paired t-test over seeds (the design of
    :func:`balancer.study._stats.paired_differences`, for multi-label metrics).

    Args:
        predictions: ``{(strategy, seed): (N, L) test probabilities}``.
        targets: ``(N, L)`` test labels.
        thresholds: ``{(strategy, seed): (L,) thresholds chosen on validation}``.
        metrics: names from :func:`multilabel_metrics` to compare (all higher-is-better).

    Returns:
        One row per (strategy, metric) with ``difference``, ``ci_low``, ``ci_high``,
        ``p_value`` (NaN with fewer than ``MIN_SEEDS`` seeds), ``seeds``, ``better`` and
        ``significant`` (the interval excludes 0 and p < ``alpha``).
    """
    from scipy import stats

    check_paired(reference, strategies, resamples)
    generator = np.random.Generator(np.random.Philox(key=[seed, 0x626F6F74]))  # "boot"
    n, k = len(targets), len(seeds)
    seed_draw = generator.integers(0, k, size=(resamples, k))

    def draw(replicate: int, slot: int) -> np.ndarray:
        # The test samples of (replicate, slot) come from a generator of their own, the same
        # for every strategy, so they can be drawn once for all or again when needed.
        generator = np.random.Generator(np.random.Philox(
            np.random.SeedSequence([seed, 0x626F6F74, replicate, slot])))
        return np.bincount(generator.integers(0, n, n), minlength=n).astype(np.int32)

    # Counts in float32 sum exactly (integers below 2**24) at half the traffic of float64.
    if resamples * k * n * 4 <= _CACHE_BYTES:  # every draw kept: drawn once, not per strategy
        cache = np.stack([np.stack([draw(b, c) for c in range(k)]) for b in range(resamples)])

        def sample_weights(replicate: np.ndarray, slot: np.ndarray) -> np.ndarray:
            return cache[replicate, slot].astype(np.float32)
    else:  # memory O(_CHUNK x N) instead of O(resamples x seeds x N)
        def sample_weights(replicate: np.ndarray, slot: np.ndarray) -> np.ndarray:
            return np.stack([draw(int(b), int(c)) for b, c in zip(replicate, slot, strict=True)
                             ]).astype(np.float32)

    point: dict[str, dict[str, np.ndarray]] = {}
    boot: dict[str, dict[str, np.ndarray]] = {}
    ones = np.ones((1, n))
    for name in strategies:
        draws = {m: np.zeros((resamples, k)) for m in metrics}
        point[name] = {m: np.zeros(k) for m in metrics}
        for j, s in enumerate(seeds):
            run = _Run(predictions[(name, s)], targets, thresholds[(name, s)], names)
            values = run.metrics(ones)
            for m in metrics:
                point[name][m][j] = values[m][0]
            replicate, slot = np.nonzero(seed_draw == j)  # every draw of this seed
            for begin in range(0, len(replicate), _CHUNK):
                b, sl = replicate[begin: begin + _CHUNK], slot[begin: begin + _CHUNK]
                values = run.metrics(sample_weights(b, sl))
                for m in metrics:
                    draws[m][b, sl] = values[m]
        boot[name] = {m: draws[m].mean(axis=1) for m in metrics}
    records = []
    for name in strategies:
        if name == reference:
            continue
        for metric in metrics:
            diffs = point[name][metric] - point[reference][metric]
            spread = boot[name][metric] - boot[reference][metric]
            low, high = (np.nanquantile(spread, [alpha / 2, 1 - alpha / 2])
                         if np.isfinite(spread).any() else (np.nan, np.nan))
            p_value = np.nan
            if k >= MIN_SEEDS and np.isfinite(diffs).all():
                p_value = (1.0 if np.allclose(diffs, 0) else
                           float(stats.ttest_rel(point[name][metric],
                                                 point[reference][metric]).pvalue))
            mean = float(np.mean(diffs))
            records.append({
                "strategy": name, "metric": metric, "difference": mean, "ci_low": float(low),
                "ci_high": float(high), "p_value": p_value, "seeds": k,
                "better": bool(mean > 0),
                "significant": bool((low > 0 or high < 0) and p_value < alpha),
            })
    return pd.DataFrame.from_records(records)


# ----------------------------------------------------------------- every run's predictions
class Predictions:
    """Every run's val and test probabilities and the true classes, for the paired statistics.

    Attributes:
        labels: per split (``"val"``, ``"test"``), the ``(N,)`` class indices.
        probs: per ``(strategy, seed)``, per split, the ``(N, C)`` probabilities.

    Compared by identity, so a DataFrame can carry it in ``attrs`` (pandas compares attrs with
    ``==``, which arrays do not answer with one bool).
    """

    def __init__(self, labels: dict[str, np.ndarray],
                 probs: dict[tuple[str, int], dict[str, np.ndarray]]) -> None:
        self.labels = labels
        self.probs = probs

    def __repr__(self) -> str:
        return f"Predictions({len(self.probs)} runs)"
