"""Paired statistics of the study: each strategy against a reference row, and ranks across data
sets (Demšar 2006, https://jmlr.org/papers/v7/demsar06a.html).

# Design note: what is paired, and over what
# Every strategy is trained with the same seeds and evaluated on the same test images, so a
# strategy and the reference are compared on matched units. Per metric, the reported difference
# is the mean over seeds of ``metric(strategy, seed) - metric(reference, seed)``. Its confidence
# interval comes from a paired bootstrap over both sources of noise: each replicate draws seeds
# with replacement and, for each drawn seed, test samples with replacement, and recomputes the
# metric of both rows on the *same* drawn samples; the 2.5% and 97.5% quantiles of the mean
# difference over replicates bound a 95% percentile interval. The seed-level test is a paired
# t-test over seeds (scipy's ``ttest_rel``), which needs at least ``MIN_SEEDS`` seeds; with fewer
# the report says so instead of printing a p-value. Across data sets, each data set is one unit
# (its mean over seeds): mean ranks, the Friedman test over all rows and Wilcoxon signed-rank
# tests against the reference with Holm's step-down adjustment, as Demšar recommends.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["BOOTSTRAP_METRICS", "MIN_SEEDS", "bootstrap_metrics", "paired_differences",
           "rank_datasets"]

#: Fewest seeds for the paired test over seeds.
MIN_SEEDS = 3
#: Fewest data sets for the Friedman test (with two, the ranks are nearly all ties).
MIN_DATASETS = 3

#: Metrics the bootstrap recomputes from probabilities, with whether higher is better.
BOOTSTRAP_METRICS: dict[str, bool] = {"accuracy": True, "balanced_accuracy": True,
                                      "macro_f1": True, "macro_auc": True, "nll": False,
                                      "ece": False}



def check_paired(reference: str, strategies: Sequence[str], resamples: int) -> None:
    """The paired analysis needs its reference among the rows and enough replicates."""
    if reference not in strategies:
        raise ValueError(f"reference={reference!r} is not one of the study's strategies "
                         f"{strategies}; pass one of those (e.g. --reference plain)")
    if resamples < 100:
        raise ValueError(f"resamples should be at least 100 for a 95% interval, but got "
                         f"resamples={resamples}")

def _confusion(labels: np.ndarray, predicted: np.ndarray, weights: np.ndarray,
               num_classes: int) -> np.ndarray:
    """``(B, C, C)`` confusion counts (true, predicted) of ``B`` weighted resamples."""
    cells = labels * num_classes + predicted
    b = weights.shape[0]
    flat = (np.arange(b)[:, None] * num_classes**2 + cells[None, :]).ravel()
    counts = np.bincount(flat, weights=weights.ravel(), minlength=b * num_classes**2)
    return counts.reshape(b, num_classes, num_classes)


def _auc(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted Mann-Whitney AUC of ``scores`` for ``positive`` vs the rest, one per row of
    ``weights`` (ties count one half)."""
    values, group = np.unique(scores, return_inverse=True)
    g = len(values)
    b = weights.shape[0]
    offsets = (np.arange(b)[:, None] * g + group[None, :]).ravel()
    neg = np.bincount(offsets, weights=(weights * ~positive).ravel(), minlength=b * g).reshape(b, g)
    pos = np.bincount(offsets, weights=(weights * positive).ravel(), minlength=b * g).reshape(b, g)
    below = np.cumsum(neg, axis=1) - neg  # negative weight strictly below each score value
    wins = (pos * (below + 0.5 * neg)).sum(axis=1)
    total = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, wins / total, np.nan)


def bootstrap_metrics(probs: np.ndarray, labels: np.ndarray, weights: np.ndarray, *,
                      ece_bins: int = 15) -> dict[str, np.ndarray]:
    """The metrics of :data:`BOOTSTRAP_METRICS` for ``B`` resamples of one model's predictions.

    Args:
        probs: ``(N, C)`` probabilities; labels: ``(N,)`` classes.
        weights: ``(B, N)`` how often each sample is drawn in each resample (all ones gives the
            metrics of the data as it is; they equal scikit-learn's, see the tests).

    Returns:
        Per metric, ``(B,)`` values.
    """
    n, c = probs.shape
    predicted = probs.argmax(axis=1)
    confusion = _confusion(labels, predicted, weights, c)
    total = confusion.sum(axis=(1, 2))
    diagonal = np.einsum("bcc->bc", confusion)
    support = confusion.sum(axis=2)
    chosen = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, diagonal / support, np.nan)
        f1 = np.where(support + chosen > 0, 2 * diagonal / (support + chosen), 0.0)
    present = support > 0
    true_prob = np.clip(probs[np.arange(n), labels], 1e-15, 1.0)
    confidence = probs.max(axis=1)
    correct = (predicted == labels).astype(np.float64)
    which = np.clip(np.ceil(confidence * ece_bins).astype(np.int64) - 1, 0, ece_bins - 1)
    b = weights.shape[0]
    offsets = (np.arange(b)[:, None] * ece_bins + which[None, :]).ravel()
    gap = np.abs(np.bincount(offsets, (weights * correct).ravel(), b * ece_bins)
                 - np.bincount(offsets, (weights * confidence).ravel(), b * ece_bins))
    if c == 2:
        auc = _auc(probs[:, 1], labels == 1, weights)
    else:
        auc = np.nanmean(np.stack([_auc(probs[:, k], labels == k, weights) for k in range(c)]),
                         axis=0)
    return {
        "accuracy": diagonal.sum(axis=1) / total,
        "balanced_accuracy": np.nanmean(np.where(present, recall, np.nan), axis=1),
        "macro_f1": f1.mean(axis=1),
        "macro_auc": auc,
        "nll": (weights * -np.log(true_prob)).sum(axis=1) / total,
        "ece": gap.reshape(b, ece_bins).sum(axis=1) / total,
    }


def paired_differences(predictions: dict[tuple[str, int], np.ndarray], labels: np.ndarray, *,
                       strategies: list[str], seeds: list[int], reference: str = "plain",
                       resamples: int = 1000, seed: int = 0, ece_bins: int = 15,
                       alpha: float = 0.05) -> pd.DataFrame:
    """Every strategy minus ``reference``, per metric, with a paired-bootstrap CI and a paired
    t-test over seeds (see the design note).

    Args:
        predictions: ``{(strategy, seed): (N, C) test probabilities}``.
        labels: ``(N,)`` test classes.
        strategies, seeds: the rows and seeds to compare (``reference`` among the rows).
        resamples: bootstrap replicates.
        seed: seed of the bootstrap's generator.

    Returns:
        One row per (strategy, metric): ``difference`` (mean over seeds), ``ci_low``,
        ``ci_high``, ``p_value`` (NaN with fewer than :data:`MIN_SEEDS` seeds), ``seeds``,
        ``better`` (the difference favours the strategy) and ``significant`` (the CI excludes 0
        *and* the seed test has p < ``alpha``; False when the test could not run).
    """
    from scipy import stats

    check_paired(reference, strategies, resamples)
    generator = np.random.Generator(np.random.Philox(key=[seed, 0x626F6F74]))  # "boot"
    n = len(labels)
    k = len(seeds)
    # The same draws for every strategy: seeds drawn per replicate, samples per (replicate, slot).
    seed_draw = generator.integers(0, k, size=(resamples, k))
    sample_weights = np.stack([
        np.stack([np.bincount(generator.integers(0, n, n), minlength=n) for _ in range(k)])
        for _ in range(resamples)])  # (B, k slots, N)
    point = {}
    boot = {}
    for name in strategies:
        per_seed = [bootstrap_metrics(predictions[(name, s)], labels, np.ones((1, n)),
                                      ece_bins=ece_bins) for s in seeds]
        point[name] = {m: np.array([v[m][0] for v in per_seed]) for m in BOOTSTRAP_METRICS}
        draws = {m: np.zeros((resamples, k)) for m in BOOTSTRAP_METRICS}
        for slot in range(k):
            for j, s in enumerate(seeds):
                rows = np.flatnonzero(seed_draw[:, slot] == j)
                if rows.size == 0:
                    continue
                values = bootstrap_metrics(predictions[(name, s)], labels,
                                           sample_weights[rows, slot], ece_bins=ece_bins)
                for m in BOOTSTRAP_METRICS:
                    draws[m][rows, slot] = values[m]
        boot[name] = {m: draws[m].mean(axis=1) for m in BOOTSTRAP_METRICS}
    records = []
    for name in strategies:
        if name == reference:
            continue
        for metric, higher in BOOTSTRAP_METRICS.items():
            diffs = point[name][metric] - point[reference][metric]
            spread = boot[name][metric] - boot[reference][metric]
            low, high = np.nanquantile(spread, [alpha / 2, 1 - alpha / 2])
            p_value = np.nan
            if k >= MIN_SEEDS:
                p_value = (1.0 if np.allclose(diffs, 0) else
                           float(stats.ttest_rel(point[name][metric],
                                                 point[reference][metric]).pvalue))
            mean = float(diffs.mean())
            records.append({
                "strategy": name, "metric": metric, "difference": mean, "ci_low": float(low),
                "ci_high": float(high), "p_value": p_value, "seeds": k,
                "better": (mean > 0) == higher and mean != 0,
                "significant": bool((low > 0 or high < 0) and p_value < alpha),
            })
    return pd.DataFrame.from_records(records)


def rank_datasets(scores: pd.DataFrame, *, reference: str = "plain", higher: bool = True,
                  alpha: float = 0.05) -> dict:
    """Mean ranks, the Friedman test and Holm-adjusted Wilcoxon tests against ``reference``.

    Args:
        scores: one row per data set, one column per strategy: the metric's mean over seeds.
        higher: whether higher is better (rank 1 is the best).

    Returns:
        ``ranks`` (mean rank per strategy, best first), ``friedman`` (statistic, p-value, or
        None with fewer than :data:`MIN_DATASETS` data sets), ``wilcoxon`` (a frame of
        strategy, p-value, Holm-adjusted p-value, significant), ``critical_difference`` (the
        Nemenyi CD at ``alpha`` = 0.05) and ``datasets``.
    """
    from scipy import stats

    if reference not in scores.columns:
        raise ValueError(f"reference={reference!r} is not one of the strategies "
                         f"{list(scores.columns)}; pass one of those")
    n, k = scores.shape
    ranks = scores.rank(axis=1, ascending=not higher).mean(axis=0).sort_values()
    friedman = None
    if n >= MIN_DATASETS and k >= 3:
        result = stats.friedmanchisquare(*[scores[c].to_numpy() for c in scores.columns])
        friedman = (float(result.statistic), float(result.pvalue))
    rows = []
    for name in scores.columns:
        if name == reference:
            continue
        diff = (scores[name] - scores[reference]).to_numpy()
        p = (float(stats.wilcoxon(diff).pvalue) if n >= MIN_DATASETS and np.any(diff != 0)
             else np.nan)
        rows.append({"strategy": name, "p_value": p})
    table = pd.DataFrame(rows)
    table["p_holm"] = _holm(table["p_value"].to_numpy()) if len(table) else []
    table["significant"] = table["p_holm"] < alpha
    # Nemenyi critical difference: q_alpha * sqrt(k (k + 1) / (6 N)), q from the studentized
    # range at infinite degrees of freedom divided by sqrt(2) (Demšar 2006, Table 5).
    q = float(stats.studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2)) if k >= 2 else 0.0
    cd = q * np.sqrt(k * (k + 1) / (6.0 * n))
    return {"ranks": ranks, "friedman": friedman, "wilcoxon": table, "critical_difference": cd,
            "datasets": n}


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN entries stay NaN and are not counted)."""
    adjusted = np.full(len(p), np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid])]
    m = len(order)
    running = 0.0
    for position, index in enumerate(order):
        running = max(running, (m - position) * p[index])
        adjusted[index] = min(1.0, running)
    return adjusted
