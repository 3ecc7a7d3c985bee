"""Paired statistics: bootstrap metrics equal scikit-learn's, paired differences and their
intervals behave as they must, ranks across data sets follow Demšar (2006) (issue 11)."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balancer.study import classification_metrics
from balancer.study._stats import (
    MIN_SEEDS,
    _holm,
    bootstrap_metrics,
    paired_differences,
    rank_datasets,
)


def _probs(n, c, seed, skill=1.0):
    generator = np.random.default_rng(seed)
    labels = generator.integers(0, c, n)
    labels[:c] = np.arange(c)
    logits = generator.normal(size=(n, c)) + skill * np.eye(c)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs, labels


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([2, 3, 5]))
def test_bootstrap_metrics_with_unit_weights_equal_sklearn(seed, c):
    probs, labels = _probs(120, c, seed)
    ours = bootstrap_metrics(probs, labels, np.ones((1, 120)))
    theirs = classification_metrics(probs, labels, num_classes=c)
    for metric, values in ours.items():
        assert values[0] == pytest.approx(theirs[metric], abs=1e-9), metric


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000))
def test_bootstrap_weights_equal_repeating_the_samples(seed):
    probs, labels = _probs(60, 3, seed)
    counts = np.random.default_rng(seed).integers(0, 3, 60)
    counts[:3] = 1  # every class present
    ours = bootstrap_metrics(probs, labels, counts[None, :].astype(float))
    repeated = np.repeat(np.arange(60), counts)
    theirs = classification_metrics(probs[repeated], labels[repeated], num_classes=3)
    for metric, values in ours.items():
        assert values[0] == pytest.approx(theirs[metric], abs=1e-9), metric


def _study(seeds, gain):
    """Two rows on one test set: 'better' moves probability mass to the true class."""
    predictions = {}
    _, labels = _probs(300, 3, 99)
    for s in seeds:
        base, _ = _probs(300, 3, 1000 + s)
        generator = np.random.default_rng(s)
        logits = np.log(base) + generator.normal(scale=0.3, size=base.shape)
        for name, boost in (("plain", 0.0), ("better", gain), ("same", 0.0)):
            shifted = logits + boost * np.eye(3)[labels]
            predictions[(name, s)] = np.exp(shifted) / np.exp(shifted).sum(1, keepdims=True)
    predictions.update({("same", s): predictions[("plain", s)] for s in seeds})
    return predictions, labels


def test_identical_rows_differ_by_zero_and_are_not_significant():
    predictions, labels = _study(range(5), 1.0)
    table = paired_differences(predictions, labels, strategies=["plain", "better", "same"],
                               seeds=list(range(5)), resamples=200)
    same = table[table["strategy"] == "same"]
    assert (same["difference"] == 0).all() and (same["ci_low"] == 0).all()
    assert (same["ci_high"] == 0).all() and not same["significant"].any()
    assert set(table["strategy"]) == {"better", "same"}  # the reference is not compared


def test_a_clearly_better_row_is_significant_with_enough_seeds():
    predictions, labels = _study(range(5), 1.5)
    table = paired_differences(predictions, labels, strategies=["plain", "better"],
                               seeds=list(range(5)), resamples=300).set_index("metric")
    for metric in ("accuracy", "balanced_accuracy", "macro_auc"):
        row = table.loc[metric]
        assert row["difference"] > 0 and row["ci_low"] > 0 and row["p_value"] < 0.05
        assert row["significant"] and row["better"]
    nll = table.loc["nll"]
    assert nll["difference"] < 0 and nll["better"]  # lower NLL is better
    # The interval contains the point estimate.
    assert ((table["ci_low"] <= table["difference"] + 1e-12)
            & (table["difference"] <= table["ci_high"] + 1e-12)).all()


def test_too_few_seeds_give_no_p_value_and_no_significance():
    predictions, labels = _study(range(2), 1.5)
    table = paired_differences(predictions, labels, strategies=["plain", "better"],
                               seeds=[0, 1], resamples=200)
    assert MIN_SEEDS == 3
    assert table["p_value"].isna().all() and not table["significant"].any()
    assert (table["ci_low"] > 0).any()  # the bootstrap still runs


def test_bootstrap_is_a_function_of_its_seed():
    predictions, labels = _study(range(3), 0.5)
    args = dict(strategies=["plain", "better"], seeds=[0, 1, 2], resamples=200)
    a = paired_differences(predictions, labels, seed=1, **args)
    b = paired_differences(predictions, labels, seed=1, **args)
    c = paired_differences(predictions, labels, seed=2, **args)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["ci_low"], c["ci_low"])


def test_unknown_reference_and_too_few_resamples():
    predictions, labels = _study(range(3), 0.5)
    with pytest.raises(ValueError, match=r"reference='balanced' is not one of the study's "
                                         r"strategies \['plain', 'better'\]"):
        paired_differences(predictions, labels, strategies=["plain", "better"], seeds=[0, 1, 2],
                           reference="balanced")
    with pytest.raises(ValueError, match=r"resamples should be at least 100"):
        paired_differences(predictions, labels, strategies=["plain", "better"], seeds=[0, 1, 2],
                           resamples=10)


def test_rank_datasets_matches_scipy_and_demsar():
    from scipy import stats

    scores = pd.DataFrame({"plain": [0.50, 0.60, 0.70, 0.65, 0.55, 0.52],
                           "a": [0.55, 0.66, 0.72, 0.70, 0.60, 0.58],
                           "b": [0.49, 0.61, 0.69, 0.64, 0.56, 0.50]})
    result = rank_datasets(scores)
    assert result["ranks"].index[0] == "a" and result["ranks"]["a"] == 1.0
    assert result["friedman"][1] == pytest.approx(
        stats.friedmanchisquare(scores["plain"], scores["a"], scores["b"]).pvalue)
    wilcoxon = result["wilcoxon"].set_index("strategy")
    assert wilcoxon.loc["a", "p_value"] == pytest.approx(
        stats.wilcoxon(scores["a"] - scores["plain"]).pvalue)
    # Demšar 2006, Table 5(a): q_0.05 = 2.343 for k = 3; CD = q sqrt(k (k+1) / 6N).
    assert result["critical_difference"] == pytest.approx(2.343 * np.sqrt(3 * 4 / 36), abs=2e-3)
    lower = rank_datasets(-scores, higher=False)
    pd.testing.assert_series_equal(lower["ranks"], result["ranks"])


def test_rank_datasets_with_two_data_sets_runs_no_test():
    scores = pd.DataFrame({"plain": [0.5, 0.6], "a": [0.6, 0.7], "b": [0.4, 0.5]})
    result = rank_datasets(scores)
    assert result["friedman"] is None and result["wilcoxon"]["p_value"].isna().all()
    with pytest.raises(ValueError, match=r"reference='x' is not one of the strategies"):
        rank_datasets(scores, reference="x")


def test_holm_adjustment():
    p = np.array([0.01, 0.04, 0.03, np.nan])
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, max(0.03, 2*0.03), max(0.06, 1*0.04)
    np.testing.assert_allclose(_holm(p)[:3], [0.03, 0.06, 0.06])
    assert np.isnan(_holm(p)[3])


# ----------------------------------------------------------------------------- in the report
def _tabular(tmp_path, seeds, **settings):
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    from balancer.study import compare

    generator = np.random.default_rng(0)
    parts = []
    for n in (200, 80, 120):
        y = (generator.random(n) < 0.25).astype(np.int64)
        X = generator.normal(size=(n, 4)) + 1.2 * y[:, None]
        parts.append(TensorDataset(torch.tensor(X, dtype=torch.float32), torch.tensor(y)))
    out = tmp_path / "run"
    compare(*parts, lambda c: nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, c)),
            strategies=("plain", "weighted", "balanced"), seeds=seeds, epochs=2, batch_size=32,
            out=out, bootstrap=200, **settings)
    return out


def test_report_states_in_words_what_is_and_is_not_significant(tmp_path):
    from balancer.study._report import format_p

    out = _tabular(tmp_path, (0, 1, 2))
    report = (out / "report.md").read_text()
    assert "## Paired differences to `plain` (test split)" in report
    assert "In words (interval excludes 0 and p < 0.05" in report
    for metric in ("accuracy", "balanced accuracy", "macro-F1", "macro AUC", "NLL", "ECE"):
        line = next(text for text in report.splitlines() if text.startswith(f"- {metric}: "))
        assert ("no strategy differs significantly" in line
                or "significantly better" in line or "significantly worse" in line)
    paired = pd.read_csv(out / "paired.csv")
    assert set(paired["strategy"]) == {"weighted", "balanced", "plain+posthoc",
                                       "balanced+posthoc", "plain+threshold"}
    assert paired["p_value"].notna().all()
    # The table's cells are the CSV's numbers.
    row = paired[(paired["strategy"] == "weighted") & (paired["metric"] == "accuracy")].iloc[0]
    assert f"{row.difference:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}], " \
           f"p={format_p(row.p_value)}" in report


def test_report_with_too_few_seeds_says_so_instead_of_a_p_value(tmp_path):
    out = _tabular(tmp_path, (0,), reference="weighted")
    report = (out / "report.md").read_text()
    assert "## Paired differences to `weighted`" in report
    assert "**Too few seeds for a test.** With 1 seed(s) the paired test over seeds cannot run" \
        in report
    assert "p=" not in report.split("## Paired differences")[1].split("##")[0]


def test_unknown_reference_strategy_is_refused_before_training(capsys):
    from balancer.__main__ import main
    from balancer.study import StudyConfig

    with pytest.raises(ValueError, match=r"unknown reference strategy reference='balanced': it "
                                         r"must be one of the strategies run, \['plain', "
                                         r"'focal'\]"):
        StudyConfig(strategies=("plain", "focal"), reference="balanced")
    with pytest.raises(ValueError, match=r"reference='smote' \(not a strategy at all\)"):
        StudyConfig(reference="smote")
    with pytest.raises(SystemExit):
        main(["study", "--reference", "nope", "--no-progress"])
    assert capsys.readouterr().err.startswith("balancer study: error: unknown reference strategy")
    assert StudyConfig(strategies=("focal", "balanced")).reference_row() == "focal"
    assert StudyConfig().reference_row() == "plain"
    # A default is not carried into a copy with other strategies.
    copied = StudyConfig(**{**StudyConfig().to_dict(), "strategies": ("balanced",)})
    assert copied.reference_row() == "balanced"


def test_quick_report_has_a_smoke_run_banner(tmp_path):
    from balancer.__main__ import main

    out = tmp_path / "q"
    assert main(["study", "--quick", "--no-progress", "--strategies", "plain,balanced",
                 "--train-limit", "64", "--batch-size", "32", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "> **Smoke run (`--quick`)**: 1 seed, 2 epochs on 64 training samples." in report
    assert "they are not evidence" in report
    assert "epoch evaluated (1-based, of 2; mean)" in report and "| 2.0 |" in report


def test_several_data_sets_give_ranks_friedman_holm_and_a_cd_diagram(tmp_path, capsys):
    from balancer.__main__ import main

    out = tmp_path / "across"
    assert main(["study", "--quick", "--no-progress", "--dataset",
                 "retinamnist,pneumoniamnist,breastmnist", "--strategies", "plain,balanced,focal",
                 "--seeds", "0", "--train-limit", "64", "--batch-size", "32",
                 "--bootstrap", "100", "--no-posthoc", "--out", str(out)]) == 0
    for name in ("retinamnist", "pneumoniamnist", "breastmnist"):
        assert (out / name / "report.md").is_file()
    across = pd.read_csv(out / "across.csv")
    ranks = across[across["metric"] == "balanced_accuracy"].set_index("strategy")["mean_rank"]
    assert ranks.sum() == pytest.approx(1 + 2 + 3)  # three rows ranked on every data set
    report = (out / "across.md").read_text()
    assert "Friedman chi2 = " in report and "Holm-adjusted" in report
    assert "smallest possible two-sided p is 0.250" in report or "differ from `plain`" in report
    assert "![critical-difference diagram](critical_difference.png)" in report
    assert (out / "critical_difference.png").read_bytes()[:4] == b"\x89PNG"


def test_a_data_set_named_twice_is_refused(capsys):
    from balancer.__main__ import main

    with pytest.raises(SystemExit):
        main(["study", "--dataset", "breastmnist,breastmnist", "--no-progress"])
    assert "names a data set twice" in capsys.readouterr().err
