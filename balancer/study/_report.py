"""The study's outputs: CSV, Markdown report, plots and the configuration as JSON."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from balancer.study._config import MultiLabelStudyConfig, StudyConfig, whole_run_phases
from balancer.study._data import SEMISYNTHETIC
from balancer.study._environment import describe_environment, environment_lines
from balancer.study._metrics import HEADLINE, ML_HEADLINE
from balancer.study._outputs import (
    ACROSS_FILES,
    ML_OUTPUT_FILES,
    OUTPUT_FILES,
    atomic_text,
    atomic_write,
)
from balancer.study._strategies import ML_STRATEGIES, STRATEGIES

if TYPE_CHECKING:  # matplotlib is imported where a plot is drawn; _study imports this module
    from matplotlib.figure import Figure

    from balancer.study._metrics import Predictions

__all__ = ["OUTPUT_FILES", "format_multilabel_table", "format_table", "summarize",
           "summarize_multilabel", "write_across", "write_multilabel_outputs", "write_outputs"]

_LABELS = {"accuracy": "accuracy", "balanced_accuracy": "balanced acc.", "macro_f1": "macro-F1",
           "macro_auc": "macro AUC", "nll": "NLL", "ece": "ECE"}

#: Published test accuracies of MedMNIST v2's ResNet-18 (28x28), for context only.
REFERENCE_ACCURACY = {"pneumoniamnist": 0.854, "retinamnist": 0.524}

FAIRNESS_RULE = (
    "Every strategy runs the same number of optimizer steps, `epochs x ceil(N_train / "
    "batch_size)`, with the same model, initialisation (per seed), optimizer, learning rate, "
    "augmentation and batch size. Each sampler yields exactly `ceil(N_train / batch_size)` "
    "batches per epoch: one shuffled pass (plain and the loss-based strategies), `N_train` "
    "draws with replacement (oversample-wrs), `N_train` slots of the circular per-class buffers "
    "(balanced, balanced+finetune, and the last phase of drs and crt) or repeated shuffled "
    "passes over the undersampled subset (undersample). Phase changes (fine-tune, deferred "
    "re-weighting, deferred re-sampling, classifier re-training) happen inside this budget."
)


def summarize(results: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Mean and sample standard deviation (ddof=1) over seeds of every metric of ``split``.

    Returns a frame indexed by strategy (in run order) with columns ``(metric, "mean"|"std")``.
    """
    test = results[results["split"] == split]
    order = list(dict.fromkeys(test["strategy"]))
    grouped = test.groupby(["strategy", "metric"], sort=False)["value"]
    table = pd.concat({"mean": grouped.mean(), "std": grouped.std(ddof=1)}, axis=1)
    table = table.unstack("metric").swaplevel(0, 1, axis=1).sort_index(axis=1)
    return table.reindex(order)


def _cell(mean: float, std: float, seeds: int) -> str:
    return f"{mean:.3f}" if seeds < 2 or np.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def format_table(results: pd.DataFrame, metrics: list[str] | None = None,
                 labels: dict[str, str] | None = None, *, split: str = "test") -> str:
    """The main table as Markdown: one row per strategy, ``mean ± std`` over seeds."""
    summary = summarize(results, split)
    seeds = results["seed"].nunique()
    metrics = list(HEADLINE) if metrics is None else metrics
    labels = {**{m: m for m in metrics}, **_LABELS, **(labels or {})}
    frame = pd.DataFrame({"strategy": summary.index})
    for metric in metrics:
        frame[labels[metric]] = [_cell(m, s, seeds) for m, s in
                                 zip(summary[(metric, "mean")], summary[(metric, "std")],
                                     strict=True)]
    return _markdown(frame)


def _recall_metrics(results: pd.DataFrame) -> list[str]:
    names = results.loc[results["metric"].str.startswith("recall["), "metric"].unique()
    return sorted(names, key=lambda m: int(m[len("recall["):-1]))


def _plot_recall(results: pd.DataFrame, class_names: list[str], path: Path,
                 counts: dict[str, list[int]] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarize(results)
    recalls = _recall_metrics(results)
    strategies = list(summary.index)
    width = 0.8 / len(recalls)
    x = np.arange(len(strategies))
    figure, axes = plt.subplots(figsize=(max(8.0, 0.9 * len(strategies)), 4.5))
    for k, metric in enumerate(recalls):
        axes.bar(x + (k - (len(recalls) - 1) / 2) * width, summary[(metric, "mean")],
                 width, yerr=summary[(metric, "std")].fillna(0.0), capsize=2,
                 label=f"class {class_names[k]}" + (
                     f" (train {counts['train'][k]}, test {counts['test'][k]})" if counts else ""))
    axes.set_xticks(x, strategies, rotation=30, ha="right")
    axes.set_ylabel("test recall (mean ± std over seeds)")
    axes.set_ylim(0, 1.05)
    axes.set_title("Per-class recall by strategy")
    axes.legend(fontsize="small", ncol=min(5, len(recalls)))
    figure.tight_layout()
    _save(figure, path)


#: Saturated colours (tab10's) and filled markers: row k gets colour k % 10 and marker k % 9,
#: a pair no other row of the first 90 shares. No pale or pastel tints (tab20 pairs each colour
#: with one), which vanish on white and read as the same row as their dark twin.
_ROW_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                "#7f7f7f", "#bcbd22", "#17becf")
_ROW_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h")


def row_style(k: int) -> tuple[str, str]:
    """The colour and marker of the ``k``-th row in the study's scatter plots."""
    return _ROW_COLOURS[k % len(_ROW_COLOURS)], _ROW_MARKERS[k % len(_ROW_MARKERS)]


def _place_labels(anchors: list[tuple[float, float]], sizes: list[tuple[float, float]],
                  gap: float) -> list[tuple[float, float]]:
    """Label positions (lower-left corners, display pixels) that do not overlap each other.

    Each label starts just right of its point and, if it would cover a label already placed,
    moves up or down in steps of its height (the nearest free slot), so that it stays next to
    its point and a leader line can join them. Placed from the top down; the points' markers
    (``gap`` pixels around each) are obstacles too.
    """
    placed = [(x - gap, y - gap, x + gap, y + gap) for x, y in anchors]
    result: list[tuple[float, float]] = [(0.0, 0.0)] * len(anchors)
    for i in sorted(range(len(anchors)), key=lambda j: -anchors[j][1]):
        (x, y), (w, h) = anchors[i], sizes[i]
        left = x + gap
        for step in [0, *[s * sign for s in range(1, 60) for sign in (-1, 1)]]:
            bottom = y - h / 2 + step * h
            if not any(left < r and left + w > lft and bottom < top and bottom + h > btm
                       for lft, btm, r, top in placed):
                break
        placed.append((left, bottom, left + w, bottom + h))
        result[i] = (left, bottom)
    return result


def tradeoff_figure(summary: pd.DataFrame) -> Figure:
    """Test balanced accuracy against accuracy, one point per row of ``summary`` (mean ± std
    over seeds): a colour and marker per row, named in the legend and beside the point.

    Rows at the same point (runs a short budget made identical, e.g. drs and balanced) get one
    label naming them all, as their markers hide each other.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 6))
    points: dict[tuple[float, float], list[str]] = {}
    for k, strategy in enumerate(summary.index):
        row = summary.loc[strategy]
        x, y = float(row[("accuracy", "mean")]), float(row[("balanced_accuracy", "mean")])
        colour, marker = row_style(k)
        axes.errorbar(x, y, xerr=np.nan_to_num(row[("accuracy", "std")]),
                      yerr=np.nan_to_num(row[("balanced_accuracy", "std")]), fmt=marker,
                      color=colour, markersize=10 if marker == "*" else 7,
                      markeredgecolor="black", markeredgewidth=0.5,
                      capsize=3, elinewidth=0.8, label=strategy)
        points.setdefault((round(x, 9), round(y, 9)), []).append(strategy)
    axes.margins(x=0.25, y=0.12)  # room for the labels right of the outermost points
    axes.set_xlabel("test accuracy")
    axes.set_ylabel("test balanced accuracy")
    axes.set_title("Balanced accuracy vs accuracy (mean ± std over seeds)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.02, 0.5),
                title="strategy")
    figure.tight_layout()
    # Labels are placed in pixels once the layout is final; then the figure is not resized.
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    texts = [" = ".join(names) for names in points.values()]
    anchors = [tuple(axes.transData.transform(xy)) for xy in points]
    sizes = []
    for text in texts:
        probe = axes.text(0, 0, text, fontsize=7.5)
        box = probe.get_window_extent(renderer)
        sizes.append((box.width, box.height))
        probe.remove()
    spots = _place_labels([(float(a), float(b)) for a, b in anchors], sizes, gap=7.0)
    to_data = axes.transData.inverted()
    for text, xy, spot, (_, h) in zip(texts, points, spots, sizes, strict=True):
        where = to_data.transform((spot[0], spot[1] + h / 2))
        moved = abs(axes.transData.transform(xy)[1] - (spot[1] + h / 2)) > 1
        axes.annotate(text, xy=xy, xytext=(float(where[0]), float(where[1])), fontsize=7.5,
                      va="center", ha="left",
                      arrowprops={"arrowstyle": "-", "color": "grey", "linewidth": 0.5,
                                  "shrinkA": 0, "shrinkB": 4} if moved else None)
    return figure


def _plot_tradeoff(results: pd.DataFrame, path: Path) -> None:
    _save(tradeoff_figure(summarize(results)), path)


def _grid(count: int) -> tuple[Figure, np.ndarray]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(4, count)
    rows = -(-count // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.0 * rows),
                                squeeze=False)
    for extra in axes.ravel()[count:]:
        extra.axis("off")
    return figure, axes.ravel()


def _plot_confusions(predictions: Predictions, strategies: list[str], class_names: list[str],
                     path: Path) -> None:
    """Row-normalised test confusion matrices, pooled over seeds, one panel per strategy."""
    labels = predictions.labels["test"]
    c = len(class_names)
    figure, axes = _grid(len(strategies))
    for ax, name in zip(axes, strategies, strict=False):
        matrix = np.zeros((c, c))
        for (strategy, _seed), probs in predictions.probs.items():
            if strategy == name:
                np.add.at(matrix, (labels, probs["test"].argmax(1)), 1)
        rates = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
        ax.imshow(rates, vmin=0, vmax=1, cmap="Blues")
        for i in range(c):
            for j in range(c):
                ax.text(j, i, f"{rates[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.6 else "black")
        ax.set_xticks(range(c), class_names, fontsize=7)
        ax.set_yticks(range(c), class_names, fontsize=7)
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("true", fontsize=7)
        ax.set_title(name, fontsize=8)
    figure.suptitle("Test confusion matrices (rows: true class, share of its samples; "
                    "pooled over seeds)", fontsize=9)
    figure.tight_layout()
    _save(figure, path)


def reliability_figure(predictions: Predictions, strategies: list[str], bins: int) -> Figure:
    """Top-label reliability diagrams on the test split, pooled over seeds, one panel per
    strategy: per confidence bin the accuracy (bars), the share of predictions in it (grey bars,
    with the count above) and, in the title, the ECE of the pooled predictions (the bins drawn)."""
    from balancer.study._metrics import expected_calibration_error

    labels = predictions.labels["test"]
    figure, axes = _grid(len(strategies))
    edges = np.linspace(0, 1, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    for ax, name in zip(axes, strategies, strict=False):
        runs = [p["test"] for (s, _), p in predictions.probs.items() if s == name]
        probs = np.concatenate(runs)
        truth = np.concatenate([labels] * len(runs))
        confidence = probs.max(1)
        correct = probs.argmax(1) == truth
        which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
        size = np.bincount(which, minlength=bins)
        accuracy = np.bincount(which, correct, minlength=bins) / np.maximum(size, 1)
        filled = size > 0
        share = size / size.sum()
        # A bin of 3 predictions says little about calibration: the grey bars and counts show
        # how much each accuracy bar stands on.
        ax.bar(centres, share, width=1 / bins, color="lightgrey", edgecolor="grey",
               linewidth=0.3, gid="share")
        ax.bar(centres[filled], accuracy[filled], width=0.6 / bins, color="tab:blue",
               edgecolor="black", linewidth=0.3, alpha=0.85, gid="accuracy")
        for centre, count in zip(centres[filled], size[filled], strict=True):
            ax.text(centre, 1.01, str(int(count)), ha="center", va="bottom", fontsize=5,
                    rotation=90)
        ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.12)
        ax.set_yticks(np.linspace(0, 1, 6))
        ece = expected_calibration_error(probs, truth, bins=bins)
        ax.set_title(f"{name}: ECE {ece:.3f}", fontsize=8)
        ax.set_xlabel("confidence", fontsize=7)
        ax.set_ylabel("accuracy / share", fontsize=7)
        ax.tick_params(labelsize=6)
    figure.suptitle(f"Reliability diagrams (test, {bins} bins, pooled over seeds; blue: accuracy, "
                    f"grey: share of predictions, count above each bin; the dashed line is "
                    f"perfect calibration; ECE of the pooled predictions)", fontsize=8)
    figure.tight_layout()
    return figure


def _plot_reliability(predictions: Predictions, strategies: list[str], bins: int,
                      path: Path) -> None:
    _save(reliability_figure(predictions, strategies, bins), path)


def _save(figure: Figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    atomic_write(path, lambda tmp: figure.savefig(tmp, dpi=110, format="png"))
    plt.close(figure)


def _posthoc_lines(chosen: pd.DataFrame, config: StudyConfig) -> list[str]:
    from balancer.study._posthoc import POSTHOC, TAU_GRID, THRESHOLDS

    lines = []
    for name, group in chosen.groupby("strategy", sort=False):
        fixed = getattr(config, POSTHOC[name][1], None) if name in POSTHOC else None
        if fixed is not None:
            how = f"fixed at {fixed:g} for every seed (see Tuned settings)"
        else:
            grid = (str(list(TAU_GRID)) if name.endswith("+posthoc") else
                    f"{THRESHOLDS[0]}..{THRESHOLDS[-1]} in steps of 0.05")
            values = ", ".join(f"seed {int(s)}: {v:g}"
                               for s, v in zip(group["seed"], group["value"], strict=True))
            how = f"from {grid} by validation balanced accuracy per seed (chosen: {values})"
        if name.endswith("+posthoc"):
            lines.append(f"- `{name}`: `{name.split('+')[0]}`'s trained runs, logits shifted "
                         f"by -tau log(train prior) (post-hoc logit adjustment, Menon et al. "
                         f"2021); tau {how}. No training, no test label.")
        else:
            lines.append(f"- `{name}`: `plain`'s trained runs, class 1 predicted when p1 >= t; "
                         f"t {how}. No training, no test label.")
    return lines


def _tuned_lines(config: StudyConfig) -> list[str]:
    """Which settings came from which tuning run, with its grid and choices."""
    from balancer.study._config import TUNABLE, load_tuned, read_tuning_record

    tuned = config.tuned_from or {}
    taken = tuned.get("settings") or {}
    record = (None if not tuned.get("file") else
              read_tuning_record(config.tuned_file) if config.tuned_file else
              load_tuned(config.shipped_key()))
    names = [n for n in TUNABLE if n in config.strategies or "+" in n]
    if record is None or not taken:
        why = ("the data set has no shipped tuning record" if record is None else
               "the shipped tuning record was made for another budget "
               f"({', '.join(f'{k}={v}' for k, v in record['budget'].items())})"
               if not tuned.get("applies") else "every setting was given")
        if not config.tuned:
            why = "`--no-tuned` was given"
        return ["## Tuned settings", "",
                f"None of this run's settings came from a tuning run ({why}): the key settings "
                f"are the ones given or the library defaults listed under Settings. "
                f"`balancer study --tune` chooses them on the validation split.", ""]
    lines = ["## Tuned settings", "",
             f"From `{tuned['file']}`: the tuning run `{record.get('run')}` "
             f"(`{record['command']}`, {record['date']}), on the validation split only, seeds "
             f"{record['seeds']} (not this study's), {record['grid_points']} grid points for "
             f"every strategy with a key setting; {record['criterion']}.", "",
             "| strategy | grid | chosen | used here |", "|---|---|---|---|"]
    for name in names:
        if name not in record["grid"]:
            continue
        grid = "; ".join(", ".join(f"{k}={v}" for k, v in p.items())
                         for p in record["grid"][name])
        choice = ", ".join(f"{k}={v}" for k, v in record["choices"][name].items())
        used = ", ".join(f"{k}={getattr(config, k)}" for k in TUNABLE[name])
        lines.append(f"| {name} | {grid} | {choice} | {used} |")
    untuned = [n for n in config.strategies if n not in TUNABLE]
    lines += ["", f"Strategies without a key setting (no grid): {', '.join(untuned) or 'none'}.",
              ""]
    return lines


def _task_section(results: pd.DataFrame) -> list[str]:
    from balancer.study._metrics import TASK_METRICS

    present = [m for m in TASK_METRICS if m in set(results["metric"])]
    if not present:
        return []
    labels = {"auprc": "AUPRC", "sens@95spec": "sensitivity at 95% specificity",
              "qwk": "quadratic weighted kappa"}
    return ["## Task metrics (test split)", "",
            "AUPRC: average precision of class 1 (binary) or the one-vs-rest macro mean; "
            "sensitivity at 95% specificity: binary tasks only; quadratic weighted kappa: "
            "ordinal classes only (`--ordinal`).", "",
            format_table(results, present, labels), ""]


_METRIC_WORDS = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy",
                 "macro_f1": "macro-F1", "macro_auc": "macro AUC", "nll": "NLL", "ece": "ECE"}


def format_p(p: float) -> str:
    """A p-value as every report prints it: ``n/a`` where no test ran, ``< 0.001`` below 0.001
    (three decimals would print a misleading ``0.000``), three significant digits below 0.1 (so
    0.0504 and 0.0495 do not both print as 0.050 next to the rule p < 0.05), else three
    decimals."""
    if not np.isfinite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3g}" if p < 0.1 else f"{p:.3f}"


def _p_phrase(p: float) -> str:
    """``p = 0.012``, ``p < 0.001`` or ``p n/a``: a p-value inside a sentence."""
    text = format_p(p)
    return f"p {text}" if text == "n/a" or text.startswith("<") else f"p = {text}"


#: p-values between these are *fragile* verdicts: 5 seeds cannot hold a verdict near p = 0.05,
#: and another CPU or torch build moves p by that much (an outside run of the default study
#: swapped two verdicts at p = 0.046 and 0.058).
FRAGILE = (0.01, 0.1)


def is_fragile(p_value: float) -> bool:
    """Whether a verdict at ``p_value`` is fragile (``FRAGILE[0] < p < FRAGILE[1]``)."""
    return bool(FRAGILE[0] < p_value < FRAGILE[1])


def verdict_lines(means: pd.DataFrame, paired: pd.DataFrame | None, *, reference: str,
                  headline: dict[str, bool], words: dict[str, str], seeds: int,
                  min_seeds: int) -> list[str]:
    """The report's opening section: per headline metric, the best row by mean, its paired
    difference to ``reference`` (interval and p) and whether that is significant by the
    report's rule (the interval excludes 0 and p < 0.05); then, plainly, whether any row is
    significantly better than ``reference`` at all.

    Args:
        means: test means, indexed by strategy (run order), one column per metric.
        paired: the paired table (``strategy, metric, difference, ci_low, ci_high, p_value,
            better, significant``), or ``None`` where no paired statistics were computed.
        headline: the metrics, with whether higher is better; ``words`` names them.
        seeds: seeds run; ``min_seeds``: the fewest the paired test needs.
    """
    rule = ("*Significant* means the paired 95% bootstrap interval of the difference excludes "
            "0 **and** the paired t-test over seeds has p < 0.05 (no correction for multiple "
            "comparisons); the best row by mean is not a winner unless it is significant. "
            f"A verdict with {FRAGILE[0]} < p < {FRAGILE[1]} is marked *fragile*: on either "
            "side of the line, it can flip with other seeds, or on another CPU or torch build "
            "(which change the last digits of every run).")
    lines = ["## What wins (test split)", "", rule, ""]
    if paired is None or len(means.index) < 2:
        only = ("only one row was run" if len(means.index) < 2 else
                "no paired statistics were computed for this report")
        return [*lines, f"Nothing is compared with the reference row `{reference}`: {only}.",
                ""]
    any_better: list[str] = []
    for metric, higher in headline.items():
        if metric not in means.columns:
            continue
        column = means[metric].dropna()
        if column.empty:
            continue
        best_value = column.max() if higher else column.min()
        # Rows equal to the best (shared runs, e.g. drs at a budget inside its first phase)
        # are named together: picking one would be arbitrary.
        tied = [s for s, v in column.items() if np.isclose(v, best_value, rtol=0, atol=1e-12)]
        best = reference if reference in tied else tied[0]
        others = [s for s in tied if s != best]
        name = f"`{best}`" + (f" (tied with {', '.join(f'`{s}`' for s in others)})"
                              if others else "")
        direction = "highest" if higher else "lowest"
        rows = paired[paired["metric"] == metric]
        better = rows[rows["significant"] & rows["better"]]["strategy"].tolist()
        any_better += [s for s in better if s not in any_better]
        text = f"- **{words.get(metric, metric)}** ({direction} is best): "
        if best == reference:
            text += (f"{name}, the reference row, has the {direction} mean "
                     f"({best_value:.3f}).")
        else:
            row = rows[rows["strategy"] == best].iloc[0]
            verdict = (f"**significantly better** than `{reference}`"
                       if row["significant"] and row["better"] else "not significant")
            if is_fragile(row["p_value"]):
                verdict += " (*fragile*)"
            text += (f"{name} has the {direction} mean ({best_value:.3f}): "
                     f"{row['difference']:+.3f} vs `{reference}`, 95% CI "
                     f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}], "
                     f"{_p_phrase(row['p_value'])}: {verdict}.")
        others_better = [s for s in better if s not in tied]
        if others_better:
            text += (f" Also significantly better than `{reference}`: "
                     f"{', '.join(f'`{s}`' for s in others_better)}.")
        lines.append(text)
    lines.append("")
    if seeds < min_seeds:
        lines += [f"**No row is significantly better than `{reference}`**: with {seeds} "
                  f"seed(s) the paired test over seeds cannot run (it needs at least "
                  f"{min_seeds}), so this run cannot call any difference significant. Run more "
                  f"seeds (e.g. --seeds 0,1,2,3,4).", ""]
    elif not any_better:
        lines += [f"**No row is significantly better than `{reference}`** on any of these "
                  f"metrics with {seeds} seeds.", ""]
    return lines


def _paired_table(results: pd.DataFrame, config: StudyConfig,
                  info: dict[str, Any]) -> pd.DataFrame | None:
    """The paired differences of every row to the reference row (``None`` where there is
    nothing to pair: no predictions, one row, or the reference not run)."""
    from balancer.study._stats import paired_differences

    predictions = info.get("predictions")
    strategies = list(dict.fromkeys(results["strategy"]))
    reference = config.reference_row()
    if predictions is None or len(strategies) < 2 or reference not in strategies:
        return None
    seeds = sorted(results["seed"].unique().tolist())
    return paired_differences({key: value["test"] for key, value in predictions.probs.items()},
                              predictions.labels["test"], strategies=strategies, seeds=seeds,
                              reference=reference, resamples=config.bootstrap,
                              ece_bins=config.ece_bins)


def _paired_section(results: pd.DataFrame, config: StudyConfig,
                    table: pd.DataFrame | None) -> list[str]:
    """The paired differences to the reference row, as a table and in words."""
    from balancer.study._stats import BOOTSTRAP_METRICS, MIN_SEEDS

    if table is None:
        return []
    strategies = list(dict.fromkeys(results["strategy"]))
    reference = config.reference_row()
    seeds = sorted(results["seed"].unique().tolist())
    cells = {}
    for row in table.itertuples(index=False):
        shown = format_p(row.p_value)  # compact in a cell: "p=0.012", "p<0.001"
        p = "" if shown == "n/a" else ", p<0.001" if shown.startswith("<") else f", p={shown}"
        mark = " **sig.**" if row.significant else ""
        cells[(row.strategy, row.metric)] = (f"{row.difference:+.3f} [{row.ci_low:+.3f}, "
                                             f"{row.ci_high:+.3f}]{p}{mark}")
    frame = pd.DataFrame({"strategy": [s for s in strategies if s != reference]})
    for metric in BOOTSTRAP_METRICS:
        frame[_LABELS[metric]] = [cells[(s, metric)] for s in frame["strategy"]]
    k = len(seeds)
    lines = [f"## Paired differences to `{reference}` (test split)", "",
             f"Each cell: strategy minus `{reference}`, mean over the {k} seed(s) of the paired "
             f"difference; in brackets a 95% paired-bootstrap interval ({config.bootstrap} "
             f"replicates drawing seeds and test samples with replacement, both rows on the same "
             f"draws); p: paired t-test over seeds. **sig.**: the interval excludes 0 and "
             f"p < 0.05. For NLL and ECE lower is better, so a negative difference favours the "
             f"strategy.", "", _markdown(frame), ""]
    if k < MIN_SEEDS:
        excluded = table[(table["ci_low"] > 0) | (table["ci_high"] < 0)]
        lines += [f"**Too few seeds for a test.** With {k} seed(s) the paired test over seeds "
                  f"cannot run (it needs at least {MIN_SEEDS}), so no difference is called "
                  f"significant here. The intervals reflect the test samples"
                  f"{' only' if k == 1 else ' and the seeds drawn'}; "
                  f"{len(excluded)} of {len(table)} exclude 0. Run more seeds "
                  f"(e.g. --seeds 0,1,2,3,4) before reading anything into this table.", ""]
        return lines
    words = []
    for metric in BOOTSTRAP_METRICS:
        rows = table[table["metric"] == metric]
        better = rows[rows["significant"] & rows["better"]]["strategy"].tolist()
        worse = rows[rows["significant"] & ~rows["better"]]["strategy"].tolist()
        text = f"- {_METRIC_WORDS[metric]}: "
        if not better and not worse:
            text += f"no strategy differs significantly from `{reference}`."
        else:
            parts = []
            if better:
                parts.append("significantly better than "
                             f"`{reference}`: {', '.join(f'`{s}`' for s in better)}")
            if worse:
                parts.append(f"significantly worse: {', '.join(f'`{s}`' for s in worse)}")
            text += "; ".join(parts) + f"; the other {len(rows) - len(better) - len(worse)} are " \
                                       f"not distinguishable from `{reference}` with {k} seeds."
        words.append(text)
    return [*lines, "In words (interval excludes 0 and p < 0.05, no correction for the "
                    f"{len(BOOTSTRAP_METRICS)} metrics and {len(frame)} comparisons):", "",
            *words, ""]


# Config fields that are not training settings: the data, the rows run, where settings came
# from and what the report shows (each has its own section).
_NOT_SETTINGS = {"dataset", "data", "csv", "table", "group_col", "image_col", "label_col",
                 "split_col", "image_size", "strategies", "seeds", "tuned", "tuned_from",
                 "ordinal", "posthoc", "progress"}


# The multi-label study's data and report fields (its model is always the MLP).
_ML_NOT_SETTINGS = _NOT_SETTINGS | {"label_cols", "samples", "rarest"}


def _wall_time_line(results: pd.DataFrame, info: dict[str, Any]) -> str:
    """The invocation's wall time and the runs' own: under ``--resume`` the invocation may have
    trained nothing (its time is then only the data and the report), so both are given."""
    runs = results[(results["split"] == "run") & (results["metric"] == "seconds")]["value"]
    return (f"Wall time of this invocation: {info['seconds']:.0f} s; the runs' own wall time "
            f"sums to {float(runs.sum()):.0f} s over {len(runs)} runs (runs loaded by `--resume` "
            f"from an earlier invocation included).")


def _settings_lines(config: StudyConfig | MultiLabelStudyConfig,
                    info: dict[str, Any] | None = None) -> list[str]:
    """Every training setting of ``config`` (a strategy's own ones included), in field order,
    as the model trained uses them: a table's MLP has no augmentation and ``width`` sizes its
    hidden layers; a caller's own model (``compare``) uses neither."""
    info = info or {}
    multilabel = isinstance(config, MultiLabelStudyConfig)
    skipped = set(_ML_NOT_SETTINGS if multilabel else _NOT_SETTINGS)
    notes: dict[str, str] = {}
    if multilabel:
        notes["width"] = "units per hidden layer of the MLP"
    elif info.get("own_model"):
        skipped |= {"width", "augment"}  # model_fn's model: the study builds no model
    elif info.get("tabular"):
        skipped.add("augment")  # images only: a table's features are not augmented
        notes["width"] = (f"the MLP's two hidden layers have 4 x width = {4 * config.width} "
                          f"units")
    else:
        notes["width"] = "channels of the CNN's first block"
    keys = [field.name for field in dataclasses.fields(config) if field.name not in skipped]
    notes["impute"] = ("missing feature values filled with the train split's statistic only; "
                       "val and test use the train one" if getattr(config, "impute", None)
                       else "missing feature values are refused")
    if config.reference is None:  # None means "the default row": say which row that is
        notes["reference"] = "the default: `plain` when it is run, else the first strategy"
    values = {key: getattr(config, key) for key in keys}
    values["reference"] = config.reference_row()
    return [f"- `{key}` = `{values[key]}`"
            + (f" ({notes[key]})" if key in notes else "") for key in keys]


def _whole_run_lines(config: StudyConfig) -> list[str]:
    """Rows whose phase a short budget stretched over the whole run (``--quick``'s 2 epochs, or
    ``epochs`` below a default phase length): they never change phase, so the row is another
    strategy under its name, and the report says so."""
    phased = whole_run_phases(config, STRATEGIES)
    if not phased:
        return []
    rows = ", ".join(f"`{strategy}` (`{field}` = {config.epochs})" for strategy, field in phased)
    return [f"**Phases that cover the whole run.** With `epochs` = {config.epochs}"
            f"{' (--quick)' if config.quick else ''}, these rows never change phase, so each "
            f"trains as a single-phase strategy under its own name (for example drs as "
            f"balanced): {rows}. Compare them only at a budget longer than their phase.", ""]


def _budget_lines(results: pd.DataFrame,
                  config: StudyConfig | MultiLabelStudyConfig) -> list[str]:
    """The report's lines on the runs' budget in optimizer steps: how ``--min-steps`` raised
    the epochs, and a warning naming every strategy whose runs fell below the floor
    (:data:`~balancer.study._config.MIN_RUN_STEPS` steps in all or
    :data:`~balancer.study._config.MIN_PHASE_STEPS` in a phase), with the fix."""
    from balancer.study._config import MIN_PHASE_STEPS, MIN_RUN_STEPS, below_floor

    lines: list[str] = []
    raised = config.budget_from
    if raised is not None:
        phases = ", ".join(f"`{name}` {old} -> {new}"
                           for name, (old, new) in raised["phases"].items() if old != new)
        lines += [f"**Budget raised by `--min-steps {raised['min_steps']}`:** {raised['epochs']} "
                  f"-> {config.epochs} epochs of {raised['steps_per_epoch']} optimizer steps; "
                  f"phase lengths keep their share of the run"
                  f"{' (' + phases + ')' if phases else ''}.", ""]
    run = results[results["split"].eq("run")]
    steps = run[run["metric"].isin(["steps", "shortest_phase_steps"])].pivot_table(
        index="strategy", columns="metric", values="value", aggfunc="min", sort=False)
    if steps.empty:
        return lines
    if "shortest_phase_steps" not in steps:  # a run folder written before the row existed
        steps["shortest_phase_steps"] = steps["steps"]
    low = [(name, int(row["steps"]), int(row["shortest_phase_steps"]))
           for name, row in steps.iterrows() if below_floor(row["steps"],
                                                            row["shortest_phase_steps"])]
    if low:
        lines += [f"**Warning: short runs.** {len(low)} strategy(ies) trained below the floor of "
                  f"{MIN_RUN_STEPS} optimizer steps per run and {MIN_PHASE_STEPS} per phase, "
                  f"too few for their figures to say much about the strategy: "
                  + ", ".join(f"`{name}` ({total} steps, shortest phase {shortest})"
                              for name, total, shortest in low)
                  + f". Pass `--min-steps {MIN_RUN_STEPS}` (or more) to raise the epochs; "
                    f"phases keep their share of the run.", ""]
    return lines


def _majority_positive_text(class_names: Any, train_counts: Any, positive: int) -> str:
    """The report's sentence when the positive class is the common one (see
    :func:`~balancer.study._config.majority_positive`), flags in backticks."""
    from balancer.study._config import majority_positive

    note = majority_positive(class_names, train_counts, positive)
    if note is None:
        return ""
    head, flag = note.rsplit("pass ", 1)
    flag, tail = flag.split(" to ", 1)
    return f" {head[0].upper()}{head[1:]}pass `{flag}` to {tail}."


def _model_text(config: StudyConfig, info: dict[str, Any]) -> str:
    """The model this study trained (as ``default_model`` builds it), in words: a table's MLP
    is not the images' CNN, and ``augment`` means nothing for features."""
    if info.get("own_model"):
        return ("The caller's own model (`compare(..., model_fn)`), a fresh one per run; the "
                "study's `width` and `augment` do not apply to it.")
    if info.get("tabular"):
        return (f"An MLP of two hidden layers of {4 * config.width} units (4 x width = "
                f"{config.width}; batch norm, ReLU) on the standardised features; no "
                f"augmentation (it applies to images only, so `augment` has no effect here).")
    augmented = ("random shifts of up to 2 pixels and horizontal flips in training"
                 if config.augment else "no augmentation")
    return (f"A small CNN: three 3x3 conv blocks of {config.width}, {2 * config.width} and "
            f"{4 * config.width} channels (batch norm, ReLU), global pooling and a linear head; "
            f"{augmented}.")


def _environment(info: dict[str, Any],
                 config: StudyConfig | MultiLabelStudyConfig) -> tuple[dict[str, Any], str]:
    """The environment the runner recorded as the run started, or (a report written from
    results without it) this process's now; with the words saying when the load was read."""
    recorded = info.get("environment")
    if recorded is not None:
        return recorded, "when the run started"
    return (describe_environment(device=config.device, threads=config.threads,
                                 jobs=config.jobs), "when this report was written")


def write_outputs(results: pd.DataFrame, config: StudyConfig | MultiLabelStudyConfig,
                  out: str | Path, *, command: str,
                  info: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write the files of a study's run folder into ``out`` (atomically) and return their paths:
    :data:`~balancer.study._outputs.OUTPUT_FILES` for a single-label study,
    :data:`~balancer.study._outputs.ML_OUTPUT_FILES` for a multi-label one (``config`` says
    which). ``info`` defaults to ``results.attrs`` (where the runners store it).
    """
    info = results.attrs if info is None else info
    if isinstance(config, MultiLabelStudyConfig):
        return write_multilabel_outputs(results, config, out, command=command)
    return _write_single_label(results, config, out, command=command, info=info)


#: What the runs tables' time columns are (both reports).
CPU_TIME_NOTE = (
    "*CPU s per run*: CPU time of the process that trained the run (`time.process_time`, user "
    "and system time of all its threads), mean over seeds: it compares the strategies' costs, "
    "since it barely changes with the machine's load. *wall s per run*: elapsed time, which "
    "stretches when other processes share the CPUs. Both cover training and evaluation; both "
    "are in results.csv (`cpu_seconds`, `seconds`). The first run in a process also pays "
    "one-time start-up costs (imports, first calls of each kernel).")


def _run_means(run_rows: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Per strategy (run order), the mean over seeds of the run rows ``metrics``; a metric no
    run recorded (``cpu_seconds`` in a folder resumed from before it was measured) is NaN."""
    runs = run_rows[run_rows["metric"].isin(metrics)].pivot_table(
        index="strategy", columns="metric", values="value", aggfunc="mean", sort=False)
    return runs.reindex(columns=metrics)


def _time_columns(runs: pd.DataFrame) -> dict[str, list[str]]:
    def shown(values: pd.Series) -> list[str]:
        return ["n/a" if not np.isfinite(v) else f"{v:.1f}" for v in values]

    return {"CPU s per run": shown(runs["cpu_seconds"]),
            "wall s per run": shown(runs["seconds"])}


def _write_single_label(results: pd.DataFrame, config: StudyConfig, out: str | Path, *,
                        command: str, info: dict[str, Any]) -> dict[str, Path]:
    """Write every file of :data:`OUTPUT_FILES` into ``out`` and return their paths.

    ``info`` holds ``class_names``, ``source``, ``counts`` (per split), ``dataset_key`` and
    ``seconds`` (as ``run_study`` stores them in ``results.attrs``).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in OUTPUT_FILES}
    atomic_write(paths["results.csv"], lambda tmp: results.to_csv(tmp, index=False))
    summary = summarize(results)
    summary.columns = [f"{metric}_{stat}" for metric, stat in summary.columns]
    atomic_write(paths["summary.csv"], summary.to_csv)

    class_names = list(info["class_names"])
    _plot_recall(results, class_names, paths["recall_by_class.png"], info.get("counts"))
    _plot_tradeoff(results, paths["balanced_vs_accuracy.png"])
    predictions = info.get("predictions")
    strategies = list(dict.fromkeys(results["strategy"]))
    extra_plots = []
    if predictions is not None:
        for name, plot in (("confusion_matrices.png", lambda p: _plot_confusions(
                predictions, strategies, class_names, p)),
                ("reliability.png", lambda p: _plot_reliability(
                    predictions, strategies, config.ece_bins, p))):
            paths[name] = out / name
            plot(paths[name])
            extra_plots.append(name)

    seeds = sorted(results["seed"].unique().tolist())
    recalls = _recall_metrics(results)
    recall_table = format_table(results, recalls, {metric: f"recall {class_names[k]}"
                                                   for k, metric in enumerate(recalls)})
    run_rows = results[results["split"] == "run"]
    chosen = run_rows[run_rows["metric"].isin(["posthoc_tau", "threshold"])]
    runs = _run_means(run_rows, ["selected_epoch", "steps", "seconds", "cpu_seconds"])
    run_frame = pd.DataFrame({
        "strategy": runs.index,
        f"epoch evaluated (1-based, of {config.epochs}; mean)":
            [f"{v + 1:.1f}" for v in runs["selected_epoch"]],
        "optimizer steps": [f"{v:.0f}" for v in runs["steps"]],
        **_time_columns(runs),
    })
    counts = info["counts"]
    count_lines = [f"- {split}: " + ", ".join(f"{class_names[c]}: {int(n)}"
                                               for c, n in enumerate(counts[split]))
                   for split in ("train", "val", "test")]
    reference = REFERENCE_ACCURACY.get(info.get("dataset_key") or "")
    banner = ([f"> **Smoke run (`--quick`)**: {len(seeds)} seed, {config.epochs} epochs on "
               f"{sum(counts['train'])} training samples. These numbers only show that the study "
               f"runs; they are not evidence for or against any strategy.", ""]
              if config.quick else [])
    from balancer.study._stats import MIN_SEEDS

    paired = _paired_table(results, config, info)
    if paired is not None:
        atomic_write(paths["paired.csv"], lambda tmp: paired.to_csv(tmp, index=False))
    test_means = summarize(results).xs("mean", axis=1, level=1)
    environment, when = _environment(info, config)
    lines = [
        "# Comparison study: weighting vs resampling",
        "",
        *banner,
        *verdict_lines(test_means, paired, reference=config.reference_row(),
                       headline=HEADLINE, words=_METRIC_WORDS, seeds=len(seeds),
                       min_seeds=MIN_SEEDS),
        f"Data: {info['source']}; {len(class_names)} classes; "
        f"{len(seeds)} seed(s) {seeds}; test-split metrics, mean ± sample std (ddof=1) over seeds.",
        "",
        "Command:",
        "",
        "```bash",
        command,
        "```",
        "",
        "## Results (test split)",
        "",
        format_table(results),
        "",
        "![balanced accuracy vs accuracy](balanced_vs_accuracy.png)",
        "",
        *_task_section(results),
        *_paired_section(results, config, paired),
        "## Per-class recall (test split)",
        "",
        recall_table,
        "",
        "![per-class recall](recall_by_class.png)",
        "",
        *(["## Confusion matrices and calibration (test split)", "",
           "![confusion matrices](confusion_matrices.png)", "",
           "![reliability diagrams](reliability.png)", ""] if extra_plots else []),
        "## Validation split (the selected weights; the only split any choice looked at)",
        "",
        format_table(results, split="val"),
        "",
        "## Runs",
        "",
        _markdown(run_frame),
        "",
        CPU_TIME_NOTE,
        "",
        _wall_time_line(results, info),
    ]
    if reference is not None:
        lines += ["", f"For context: MedMNIST v2 reports a test accuracy of {reference} for a "
                      f"ResNet-18 at 28x28 on this data set (a much larger model and budget)."]
    lines += [
        "",
        "## Protocol",
        "",
        f"**Fairness rule.** {FAIRNESS_RULE} Here: {config.epochs} x "
        f"ceil({sum(counts['train'])} / {config.batch_size}) = "
        f"{config.epochs * -(-sum(counts['train']) // config.batch_size)} steps per run.",
        "",
        f"**Model.** {_model_text(config, info)}",
        "",
        *_whole_run_lines(config),
        *_budget_lines(results, config),
        "**Model selection.** " + (
            "After every epoch the model is evaluated on the validation split; the weights with "
            "the highest validation balanced accuracy (the latest on ties) are evaluated once on "
            "the test split." if config.select == "best" else
            "The weights after the last epoch are evaluated once on the test split; the "
            "validation split is only reported.")
        + " No setting was chosen by looking at the test split: the key settings come from "
        "the validation-only tuning run below, or are the library defaults.",
        "",
        f"**Metrics.** scikit-learn's accuracy, balanced accuracy (mean per-class recall), "
        f"macro-F1, per-class recall, macro AUC (one-vs-rest; the binary AUC for two classes) "
        f"and NLL (`log_loss`). ECE is the top-label expected calibration error with "
        f"{config.ece_bins} equal-width confidence bins (Guo et al. 2017). Probabilities are the "
        f"softmax of the model's outputs (for ldam-drw, of the cosines times s = "
        f"{config.ldam_scale}; for hinge, of the raw margin scores, which are not trained to be "
        f"probabilities, so its NLL and ECE say little)."
        + (f" AUPRC and sensitivity at 95% specificity take **{class_names[config.positive_class]}"
           f"** (class {config.positive_class}) as the positive class (`--positive-class`)."
           + _majority_positive_text(class_names, counts["train"], config.positive_class)
           if len(class_names) == 2 else ""),
        "",
        "**Data.** Class counts per split:",
        "",
        *count_lines,
        "",
        "## Strategies",
        "",
        *[f"- `{name}`: {STRATEGIES[name].description}" for name in config.strategies],
        *_posthoc_lines(chosen, config),
        "",
        *_tuned_lines(config),
        "## Settings",
        "",
        *_settings_lines(config, info),
        "",
        *environment_lines(environment, when=when),
        f"Files: {', '.join(OUTPUT_FILES)}.",
        "",
    ]
    payload = {"command": command, "config": config.to_dict(),
               "data": {"source": info["source"], "class_names": class_names,
                        "counts": {s: [int(n) for n in counts[s]] for s in counts}},
               "torch": torch.__version__, "environment": environment}
    atomic_text(paths["config.json"], json.dumps(payload, indent=2, default=str) + "\n")
    # The report last: its presence says the folder holds a finished study.
    atomic_text(paths["report.md"], "\n".join(lines))
    return paths


def _plot_critical_difference(ranks: pd.Series, cd: float, path: Path, title: str) -> None:
    """Demšar's critical-difference diagram: mean ranks on an axis (1 = best), a bar of length
    CD, and a thick line joining each maximal group of rows whose ranks differ by less."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(ranks)
    figure, axes = plt.subplots(figsize=(8, 1.6 + 0.28 * k))
    axes.set_xlim(0.5, k + 0.5)
    axes.set_ylim(-(k + 2), 2.2)
    axes.hlines(0, 1, k, color="black")
    for r in range(1, k + 1):
        axes.vlines(r, -0.1, 0.1, color="black")
        axes.text(r, 0.25, str(r), ha="center", va="bottom", fontsize=8)
    axes.plot([1, 1 + cd], [1.4, 1.4], color="black", linewidth=2)
    axes.text(1 + cd / 2, 1.55, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=8)
    for position, (name, rank) in enumerate(ranks.items()):
        y = -(position + 1) * 0.9
        left = position < (k + 1) // 2
        end = 0.6 if left else k + 0.4
        axes.plot([rank, rank, end], [0, y, y], color="tab:blue", linewidth=0.8)
        axes.text(end, y, f"{name} ({rank:.2f})", ha="left" if not left else "right",
                  va="center", fontsize=8)
    values = ranks.to_numpy()
    groups: list[tuple[int, int]] = []
    for i in range(k):
        j = max(j for j in range(i, k) if values[j] - values[i] < cd)
        if j > i and not any(a <= i and j <= b for a, b in groups):
            groups.append((i, j))
    for level, (i, j) in enumerate(groups):
        axes.plot([values[i] - 0.03, values[j] + 0.03], [-0.3 - 0.2 * level] * 2,
                  color="tab:red", linewidth=3)
    axes.axis("off")
    axes.set_title(title, fontsize=9)
    figure.tight_layout()
    _save(figure, path)


def write_across(per_dataset: dict[str, pd.DataFrame], config: StudyConfig, out: str | Path, *,
                 command: str) -> dict[str, Path]:
    """Mean ranks, Friedman and Holm-adjusted Wilcoxon tests over data sets (``across.md``,
    ``across.csv``, ``critical_difference.png``); each data set is one unit, its score the mean
    over seeds of the test metric."""
    from balancer.study._stats import MIN_DATASETS, rank_datasets

    out = Path(out)
    reference = config.reference_row()
    records, sections = [], []
    names = list(per_dataset)
    left_out: set[str] = set()
    for metric, higher in HEADLINE.items():
        scores = pd.DataFrame({name: summarize(frame)[(metric, "mean")]
                               for name, frame in per_dataset.items()}).T
        # A rank needs a score on every data set: rows that exist on some only (plain+threshold,
        # two classes only) are left out of the ranking rather than poisoning it with NaN.
        missing = scores.columns[scores.isna().any()]
        left_out.update(missing)
        scores = scores.drop(columns=missing)
        result = rank_datasets(scores, reference=reference, higher=higher)
        wilcoxon = result["wilcoxon"].set_index("strategy")
        for strategy, rank in result["ranks"].items():
            row = wilcoxon.loc[strategy] if strategy in wilcoxon.index else None
            records.append({"metric": metric, "strategy": strategy, "mean_rank": rank,
                            "p_wilcoxon": None if row is None else row["p_value"],
                            "p_holm": None if row is None else row["p_holm"]})
        friedman = result["friedman"]
        test = (f"Friedman chi2 = {friedman[0]:.2f}, {_p_phrase(friedman[1])}" if friedman else
                f"no Friedman test: it needs at least {MIN_DATASETS} data sets, this run has "
                f"{result['datasets']}")
        ranked = ", ".join(f"`{s}` {r:.2f}" for s, r in result["ranks"].items())
        sections += [f"- **{_LABELS[metric]}**: mean ranks {ranked}; {test}; Nemenyi CD = "
                     f"{result['critical_difference']:.2f}."]
        if metric == "balanced_accuracy":
            headline = result
    frame = pd.DataFrame.from_records(records)
    paths = {name: out / name for name in ACROSS_FILES}
    atomic_write(paths["across.csv"], lambda tmp: frame.to_csv(tmp, index=False))
    _plot_critical_difference(headline["ranks"], headline["critical_difference"],
                              paths["critical_difference.png"],
                              f"Balanced accuracy: mean rank over {len(names)} data sets")
    table = headline["wilcoxon"]
    significant = table[table["significant"]]["strategy"].tolist()
    if headline["friedman"] is None:
        verdict = (f"With {len(names)} data set(s) no test over data sets can run (Friedman and "
                   f"Wilcoxon need at least {MIN_DATASETS}); the ranks below are descriptive "
                   f"only.")
    elif not significant:
        verdict = (f"On balanced accuracy no strategy differs from `{reference}` after Holm's "
                   f"adjustment (Friedman {_p_phrase(headline['friedman'][1])}). With "
                   f"{len(names)} data sets the Wilcoxon test's smallest possible two-sided p "
                   f"is {2 / 2 ** len(names):.3f}.")
    else:
        verdict = (f"On balanced accuracy, after Holm's adjustment, these differ from "
                   f"`{reference}`: {', '.join(f'`{s}`' for s in significant)}.")
    wilcoxon_rows = pd.DataFrame({
        "strategy": table["strategy"],
        "p (Wilcoxon)": [format_p(p) for p in table["p_value"]],
        "p (Holm)": [format_p(p) for p in table["p_holm"]],
    })
    lines = ["# Comparison study across data sets", "", "Command:", "", "```bash", command,
             "```", "", f"Data sets: {', '.join(names)} (each one unit: its test metric's mean "
             f"over seeds {list(config.seeds)}). Per-data-set reports: "
             + ", ".join(f"[{n}]({n}/report.md)" for n in names) + ".", "",
             *([f"Left out of the ranks (not run on every data set): "
                f"{', '.join(f'`{s}`' for s in sorted(left_out))}.", ""] if left_out else []),
             verdict, "",
             "## Mean ranks (1 = best)", "", *sections, "",
             f"## Balanced accuracy: Wilcoxon signed-rank against `{reference}`, Holm-adjusted",
             "", _markdown(wilcoxon_rows), "",
             "![critical-difference diagram](critical_difference.png)", "",
             "Critical-difference diagram (Demšar 2006): rows joined by a red line are within "
             "the Nemenyi critical difference of each other.", ""]
    atomic_text(paths["across.md"], "\n".join(lines))
    return paths


# ------------------------------------------------------------------ the multi-label study
def summarize_multilabel(results: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """:func:`summarize` of a multi-label study's results, whose ``attrs`` hold data frames
    (``pd.concat`` would compare them)."""
    rows = results[results["split"] == split]
    order = list(dict.fromkeys(rows["strategy"]))
    table = rows.groupby(["strategy", "metric"], sort=False)["value"].agg(["mean", "std"])
    table = table.unstack("metric")
    table = table.reindex(order)
    return table.swaplevel(axis=1).sort_index(axis=1)


_ML_WORDS = {"macro_auroc": "macro AUROC", "macro_auprc": "macro AUPRC", "macro_f1": "macro-F1",
             "micro_f1": "micro-F1"}


def _ml_cell(mean: float, std: float) -> str:
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.3f}" if not np.isfinite(std) else f"{mean:.3f} ± {std:.3f}"


def format_multilabel_table(results: pd.DataFrame, metrics: list[str] | None = None) -> str:
    """A Markdown table of test ``metrics`` (default the headline ones), mean ± std over seeds."""
    summary = summarize_multilabel(results)
    metrics = list(ML_HEADLINE) if metrics is None else metrics
    frame = pd.DataFrame({"strategy": summary.index})
    for metric in metrics:
        frame[metric] = [_ml_cell(summary.loc[s, (metric, "mean")], summary.loc[s, (metric, "std")])
                         for s in summary.index]
    return _markdown(frame)


def _ml_paired_lines(paired: pd.DataFrame, reference: str, seeds: int) -> list[str]:
    if paired.empty:
        return [f"Only the reference row ({reference}) was run: nothing to compare."]
    shown = paired.copy()
    shown["difference"] = shown["difference"].map(lambda v: f"{v:+.3f}")
    shown["95% CI"] = [f"[{lo:+.3f}, {hi:+.3f}]" for lo, hi in zip(paired["ci_low"],
                                                                   paired["ci_high"],
                                                                   strict=True)]
    shown["p (paired t, seeds)"] = paired["p_value"].map(format_p)
    shown["significant"] = paired["significant"].map({True: "yes", False: "no"})
    lines = [f"Each strategy minus **{reference}**, test split: mean over {seeds} seed(s) of "
             f"the paired difference, a 95% paired-bootstrap interval over seeds and test "
             f"samples (thresholds fixed as chosen on validation), and a paired t-test over "
             f"seeds (needs at least 3). *Significant* = interval excludes 0 and p < 0.05.", ""]
    lines.append(_markdown(shown[["strategy", "metric", "difference", "95% CI",
                                  "p (paired t, seeds)", "significant"]]))
    return lines


def write_multilabel_outputs(results: pd.DataFrame, config: MultiLabelStudyConfig,
                             out: str | Path, *, command: str) -> dict[str, Path]:
    """Write every file of :data:`~balancer.study._outputs.ML_OUTPUT_FILES` into ``out``
    (atomically) and return them."""
    out = Path(out)
    paths = {name: out / name for name in ML_OUTPUT_FILES}
    info = results.attrs
    atomic_write(paths["results.csv"], lambda tmp: results.to_csv(tmp, index=False))
    summary = summarize_multilabel(results)
    flat = summary.copy()
    flat.columns = [f"{metric}_{stat}" for metric, stat in flat.columns]
    atomic_write(paths["summary.csv"], flat.to_csv)
    paired: pd.DataFrame = info["paired"]
    atomic_write(paths["paired.csv"], lambda tmp: paired.to_csv(tmp, index=False))
    names, counts = info["label_names"], info["counts"]
    per_label = pd.DataFrame({"label": names, **{f"{s}_positives": counts[s]
                                                 for s in ("train", "val", "test")}})
    for strategy in summary.index:
        for kind in ("auroc", "auprc", "f1"):
            per_label[f"{strategy}:{kind}"] = [summary.loc[strategy, (f"{kind}[{n}]", "mean")]
                                               for n in names]
    atomic_write(paths["per_label.csv"], lambda tmp: per_label.to_csv(tmp, index=False))
    environment, when = _environment(info, config)
    # The settings stay top-level (as before); the environment is a record beside them.
    atomic_text(paths["config.json"], json.dumps({**config.to_dict(), "environment": environment},
                                                 indent=2, default=str) + "\n")

    from balancer.study._stats import MIN_SEEDS

    seeds = list(config.seeds)
    rows = info["rows"]
    test_means = summarize_multilabel(results).xs("mean", axis=1, level=1)
    lines = ["# Multi-label study", "",
             *verdict_lines(test_means, paired, reference=config.reference_row(),
                            headline=ML_HEADLINE, words=_ML_WORDS, seeds=len(seeds),
                            min_seeds=MIN_SEEDS),
             f"Command: `{command}`", "",
             f"Data: {info['source']}.", "",
             f"Rows: train {rows['train']}, val {rows['val']}, test {rows['test']}; "
             f"{len(names)} labels. Every strategy trains the same MLP (two hidden layers of "
             f"{config.width} units, batch norm, ReLU; no augmentation) for "
             f"{config.epochs} epochs of ceil(N / {config.batch_size}) optimizer steps "
             f"(AdamW, lr {config.lr}); seeds {seeds}; weights: {config.select}. F1 uses per-label "
             f"thresholds chosen on the validation split only.", "",
             *_budget_lines(results, config)]
    if config.data is None and config.table is None:
        lines += [f"**Semi-synthetic data ({SEMISYNTHETIC}):** the label rows and patient ids "
                  f"are real (NIH ChestX-ray14 table), the features are generated from the "
                  f"labels by a seeded generator. These figures say how the strategies handle "
                  f"real label imbalance and co-occurrence, not how they do on X-ray images.", ""]
    lines += ["## Strategies", ""]
    lines += [f"- **{s}**: {ML_STRATEGIES[s].description}" for s in config.strategies]
    lines += ["", "## Test metrics (mean ± std over seeds)", "", format_multilabel_table(results),
              ""]
    rarest = info["rarest"]
    if rarest:
        lines += [f"## The {len(rarest)} rarest labels (train / val / test positives)", ""]
        index = {n: j for j, n in enumerate(names)}
        for label in rarest:
            j = index[label]
            lines += [f"**{label}** ({counts['train'][j]} / {counts['val'][j]} / "
                      f"{counts['test'][j]})", "",
                      format_multilabel_table(results, [f"auroc[{label}]", f"auprc[{label}]",
                                                        f"f1[{label}]"]), ""]
    lines += ["## Paired differences", ""]
    lines += [*_ml_paired_lines(paired, config.reference_row(), len(seeds)), ""]
    rates: pd.DataFrame = info["positive_rates"]
    if rates.shape[1] > 2:
        lines += ["## Planned share of training slots carrying each label", "",
                  "`plain` is the label's frequency in the train split; the samplers' columns are "
                  "their planned rates (`label_positive_rate`).", "",
                  _markdown(rates.map(lambda v: f"{v:.3f}" if isinstance(v, float) else v)),
                  ""]
    runs = _run_means(results[results["split"] == "run"], ["steps", "seconds", "cpu_seconds"])
    lines += ["## Runs", "",
              _markdown(pd.DataFrame({"strategy": runs.index,
                                      "optimizer steps": [f"{v:.0f}" for v in runs["steps"]],
                                      **_time_columns(runs)})),
              "", CPU_TIME_NOTE, ""]
    lines += [f"{_wall_time_line(results, info)} Per-label figures of every strategy: "
              f"per_label.csv.", "", "## Settings", "", *_settings_lines(config), "",
              *environment_lines(environment, when=when)]
    atomic_text(paths["report.md"], "\n".join(lines))
    return paths
