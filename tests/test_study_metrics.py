"""Task metrics (AUPRC, sensitivity at 95% specificity, quadratic weighted kappa), the metrics
that do not apply, and plots embedded in the report (issue 11)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score

from balancer.study import StudyConfig, classification_metrics
from balancer.study._metrics import quadratic_weighted_kappa, sensitivity_at_specificity


def _binary(seed, n=80):
    generator = np.random.default_rng(seed)
    labels = generator.integers(0, 2, n)
    labels[:2] = [0, 1]
    p1 = np.clip(generator.random(n) * 0.7 + 0.3 * labels, 0, 1)
    return np.stack([1 - p1, p1], 1), labels


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([0.8, 0.9, 0.95, 1.0]))
def test_sensitivity_at_specificity_is_the_best_threshold_meeting_the_specificity(seed, spec):
    probs, labels = _binary(seed)
    scores = probs[:, 1]
    best = 0.0
    for t in np.concatenate([np.unique(scores), [np.inf]]):  # predict positive when score >= t
        predicted = scores >= t
        specificity = np.mean(~predicted[labels == 0])
        if specificity >= spec - 1e-12:
            best = max(best, np.mean(predicted[labels == 1]))
    assert sensitivity_at_specificity(probs, labels, specificity=spec) == pytest.approx(best)


def test_quadratic_weighted_kappa_matches_its_formula():
    generator = np.random.default_rng(0)
    labels = generator.integers(0, 5, 200)
    predicted = np.clip(labels + generator.integers(-2, 3, 200), 0, 4)
    probs = np.eye(5)[predicted]
    observed = np.zeros((5, 5))
    np.add.at(observed, (labels, predicted), 1)
    expected = np.outer(observed.sum(1), observed.sum(0)) / 200
    weights = (np.arange(5)[:, None] - np.arange(5)[None, :]) ** 2 / 16
    kappa = 1 - (weights * observed).sum() / (weights * expected).sum()
    assert quadratic_weighted_kappa(probs, labels, ordinal=True) == pytest.approx(kappa)


def test_metrics_that_do_not_apply_are_named():
    probs3 = np.eye(3)[[0, 1, 2, 1]]
    with pytest.raises(ValueError, match=r"sensitivity at specificity applies to binary tasks, "
                                         r"but the probabilities have 3 classes"):
        sensitivity_at_specificity(probs3, np.array([0, 1, 2, 2]))
    with pytest.raises(ValueError, match=r"quadratic weighted kappa applies to ordinal classes"):
        quadratic_weighted_kappa(probs3, np.array([0, 1, 2, 2]), ordinal=False)
    with pytest.raises(ValueError, match=r"specificity should be in \[0, 1\]"):
        sensitivity_at_specificity(*_binary(0), specificity=1.5)


def test_task_metrics_by_task():
    probs, labels = _binary(1)
    binary = classification_metrics(probs, labels, num_classes=2)
    assert binary["auprc"] == pytest.approx(average_precision_score(labels, probs[:, 1]))
    assert "sens@95spec" in binary and "qwk" not in binary
    generator = np.random.default_rng(2)
    labels3 = np.concatenate([[0, 1, 2], generator.integers(0, 3, 57)])
    probs3 = generator.dirichlet(np.ones(3), 60)
    multi = classification_metrics(probs3, labels3, num_classes=3, ordinal=True)
    assert "sens@95spec" not in multi
    assert multi["auprc"] == pytest.approx(np.mean(
        [average_precision_score(labels3 == c, probs3[:, c]) for c in range(3)]))
    assert multi["qwk"] == pytest.approx(quadratic_weighted_kappa(probs3, labels3, ordinal=True))


def test_ordinal_is_a_property_of_the_data_set_unless_given():
    assert StudyConfig().is_ordinal() is True  # the default RetinaMNIST: grades of retinopathy
    assert StudyConfig(dataset="pneumoniamnist").is_ordinal() is False
    assert StudyConfig(data="x.npz").is_ordinal() is False
    assert StudyConfig(dataset="breastmnist", ordinal=True).is_ordinal() is True
    copied = StudyConfig(**{**StudyConfig().to_dict(), "dataset": "pneumoniamnist"})
    assert copied.is_ordinal() is False
    with pytest.raises(TypeError, match=r"ordinal should be True, False or None, but got "
                                        r"ordinal='yes'"):
        StudyConfig(ordinal="yes")


def test_binary_report_embeds_every_plot_and_the_task_metrics(tmp_path):
    from balancer.__main__ import main

    out = tmp_path / "b"
    assert main(["study", "--quick", "--no-progress", "--dataset", "breastmnist",
                 "--strategies", "plain,balanced", "--train-limit", "64", "--batch-size", "32",
                 "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    for png in out.glob("*.png"):
        assert f"]({png.name})" in report, png.name
    assert "## Task metrics (test split)" in report
    assert "| strategy | AUPRC | sensitivity at 95% specificity |" in report
    assert "quadratic weighted kappa |" not in report


# ----------------------------------------------------------------------------- post-hoc rows
def _runs(c, seeds, seed=0):
    from balancer.study._study import Predictions

    generator = np.random.default_rng(seed)
    labels = {s: np.concatenate([np.arange(c), generator.integers(0, c, 100 - c)]) for s in
              ("val", "test")}
    probs = {(name, k): {s: generator.dirichlet(np.ones(c) * 0.7, 100) for s in ("val", "test")}
             for name in ("plain", "balanced") for k in seeds}
    return Predictions(labels, probs)


def test_posthoc_tau_is_the_validation_best_and_uses_no_test_label():
    from balancer.study._posthoc import TAU_GRID, _balanced_accuracy, _shifted, posthoc_rows

    predictions = _runs(3, [0, 1])
    counts = np.array([70, 20, 10])
    rows, probs = posthoc_rows(predictions, counts, [0, 1])
    prior = counts / counts.sum()
    for seed in (0, 1):
        run = predictions.probs[("plain", seed)]
        scores = [_balanced_accuracy(_shifted(run["val"], -t * np.log(prior)),
                                     predictions.labels["val"]) for t in TAU_GRID]
        tau = TAU_GRID[int(np.argmax(scores))]
        chosen = rows[(rows["strategy"] == "plain+posthoc") & (rows["seed"] == seed)
                      & (rows["metric"] == "posthoc_tau")]["value"].item()
        assert chosen == tau
        expected = np.exp(np.log(run["test"]) - tau * np.log(prior))
        np.testing.assert_allclose(probs[("plain+posthoc", seed)]["test"],
                                   expected / expected.sum(1, keepdims=True), rtol=1e-10)
    # Other test labels: the same choices (only the test metrics change).
    shuffled = type(predictions)({**predictions.labels,
                                  "test": predictions.labels["test"][::-1].copy()},
                                 predictions.probs)
    again, _ = posthoc_rows(shuffled, counts, [0, 1])
    tau_rows = lambda f: f[f["metric"] == "posthoc_tau"]["value"].tolist()  # noqa: E731
    assert tau_rows(again) == tau_rows(rows)
    assert "plain+threshold" not in set(rows["strategy"])  # three classes: no threshold row


def test_threshold_row_predicts_class_one_above_the_chosen_threshold():
    from balancer.study._posthoc import posthoc_rows

    predictions = _runs(2, [0])
    rows, probs = posthoc_rows(predictions, np.array([80, 20]), [0])
    t = rows[rows["metric"] == "threshold"]["value"].item()
    test = predictions.probs[("plain", 0)]["test"]
    np.testing.assert_array_equal(probs[("plain+threshold", 0)]["test"].argmax(1),
                                  (test[:, 1] >= t - 1e-12).astype(int))
