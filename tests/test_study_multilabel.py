"""The multi-label study (issue 10): metrics against scikit-learn, validation-only thresholds,
patient-grouped splits, one step budget for every strategy, the paired statistics, the data
sources, the run folder and the command line, each error path with its message."""

import argparse
import gzip
import json

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

import balancer.study._multilabel as ml
import balancer.study._study as study_runner
from balancer import RepeatFactorSampler
from balancer.__main__ import main
from balancer.datasets import load_chestxray14_labels
from balancer.study._config import MultiLabelStudyConfig
from balancer.study._data import (
    grouped_multilabel_split,
    load_arff,
    load_multilabel_data,
    load_multilabel_npz,
    load_multilabel_table,
    semisynthetic_chestxray14,
)
from balancer.study._metrics import (
    choose_thresholds,
    multilabel_metrics,
    paired_multilabel,
    weighted_auprc,
    weighted_auroc,
    weighted_f1,
)
from balancer.study._outputs import ML_OUTPUT_FILES
from balancer.study._strategies import ML_STRATEGIES
from balancer.study._study import TIMING_METRICS, run_study


@pytest.fixture(scope="module")
def chest():
    return semisynthetic_chestxray14()


def _features_table(n=240, labels=3, seed=0, groups=None):
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, labels)) < np.linspace(0.1, 0.4, labels)).astype(np.int64)
    Y[:6] = np.eye(labels, dtype=np.int64)[np.arange(6) % labels]  # a few of every label
    X = Y @ rng.standard_normal((labels, 5)) + rng.standard_normal((n, 5))
    return X, Y


# --------------------------------------------------------------------------- metrics
@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(5, 60), st.sampled_from([1, 2, 10]))
def test_weighted_areas_equal_sklearn_with_ties_and_weights(seed, n, levels):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.random(n) * levels) / levels  # few levels: many ties
    positive = rng.random(n) < 0.3
    positive[:2] = [True, False]
    weights = rng.integers(0, 4, size=(3, n)).astype(np.float64)
    weights[:, :2] = 1.0  # every weighting keeps a positive and a negative
    auroc = weighted_auroc(scores, positive, weights)
    auprc = weighted_auprc(scores, positive, weights)
    for b in range(3):
        np.testing.assert_allclose(auroc[b], roc_auc_score(positive, scores,
                                                           sample_weight=weights[b]), atol=1e-12)
        np.testing.assert_allclose(auprc[b], average_precision_score(
            positive, scores, sample_weight=weights[b]), atol=1e-12)


def test_areas_are_nan_without_positives_or_negatives():
    scores = np.array([0.1, 0.2, 0.3])
    assert np.isnan(weighted_auroc(scores, np.zeros(3, bool), np.ones((1, 3))))[0]
    assert np.isnan(weighted_auroc(scores, np.ones(3, bool), np.ones((1, 3))))[0]
    assert np.isnan(weighted_auprc(scores, np.zeros(3, bool), np.ones((1, 3))))[0]
    positive = np.array([True, False, False])
    weights = np.array([[0.0, 1.0, 1.0], [1.0, 1.0, 1.0]])  # a resample without the positive
    assert np.isnan(weighted_auroc(scores, positive, weights)[0])
    assert np.isnan(weighted_auprc(scores, positive, weights)[0])
    assert weighted_auroc(scores, positive, weights)[1] == 0.0
    assert weighted_auprc(scores, positive, weights)[1] == pytest.approx(1 / 3)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_f1_equals_sklearn_per_label_macro_and_micro(seed):
    rng = np.random.default_rng(seed)
    probs = rng.random((50, 4))
    targets = (rng.random((50, 4)) < 0.3).astype(int)
    thresholds = rng.random(4)
    weights = rng.integers(0, 3, size=(2, 50)).astype(np.float64)
    per_label, micro = weighted_f1(probs, targets, thresholds, weights)
    predicted = (probs >= thresholds).astype(int)
    for b in range(2):
        expected = f1_score(targets, predicted, average=None, sample_weight=weights[b],
                            zero_division=0)
        np.testing.assert_allclose(per_label[b], expected, atol=1e-12)
        np.testing.assert_allclose(micro[b], f1_score(targets, predicted, average="micro",
                                                      sample_weight=weights[b],
                                                      zero_division=0), atol=1e-12)
    metrics = multilabel_metrics(probs, targets, thresholds, list("abcd"))
    assert metrics["macro_f1"] == pytest.approx(f1_score(targets, predicted, average="macro",
                                                         zero_division=0))
    assert metrics["macro_auroc"] == pytest.approx(np.mean([
        roc_auc_score(targets[:, j], probs[:, j]) for j in range(4) if 0 < targets[:, j].sum() < 50]))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_chosen_threshold_maximises_validation_f1(seed):
    rng = np.random.default_rng(seed)
    probs = np.round(rng.random((40, 3)), 2)
    targets = (rng.random((40, 3)) < 0.3).astype(int)
    targets[0] = 1
    chosen = choose_thresholds(probs, targets)
    for j in range(3):
        candidates = np.unique(probs[:, j])
        best = max(f1_score(targets[:, j], probs[:, j] >= t) for t in candidates)
        assert f1_score(targets[:, j], probs[:, j] >= chosen[j]) == pytest.approx(best)
        assert chosen[j] in candidates


def test_a_label_without_validation_positives_gets_one_half():
    probs = np.array([[0.2, 0.9], [0.7, 0.1]])
    assert choose_thresholds(probs, np.array([[0, 1], [0, 0]])).tolist() == [0.5, 0.9]


def test_test_metrics_use_validation_thresholds_only(chest, monkeypatch):
    """Changing the test labels changes no threshold: thresholds see validation alone."""
    seen = []
    original = ml.choose_thresholds

    def spy(probs, targets):
        seen.append(targets.copy())
        return original(probs, targets)

    monkeypatch.setattr(ml, "choose_thresholds", spy)
    config = MultiLabelStudyConfig(strategies=("plain",), seeds=(0,), epochs=1, progress=False,
                                   bootstrap=100)
    run_study(config, chest)
    assert len(seen) == 1 and np.array_equal(seen[0], chest.targets["val"].numpy())


# --------------------------------------------------------------------------- paired statistics
def test_paired_differences_are_the_mean_of_seed_differences():
    rng = np.random.default_rng(0)
    targets = (rng.random((120, 3)) < 0.3).astype(int)
    targets[:3] = np.eye(3)
    predictions = {(s, k): np.clip(targets * (0.3 + 0.2 * (s == "b")) + rng.random((120, 3)) *
                                   0.7, 0, 1) for s in "ab" for k in (0, 1, 2)}
    thresholds = {key: np.full(3, 0.5) for key in predictions}
    names = ["x", "y", "z"]
    paired = paired_multilabel(predictions, targets, thresholds, strategies=["a", "b"],
                               seeds=[0, 1, 2], reference="a", resamples=200,
                               metrics=["macro_auroc", "auprc[z]", "micro_f1"], names=names)
    for metric in ("macro_auroc", "auprc[z]", "micro_f1"):
        row = paired[paired["metric"] == metric].iloc[0]
        per_seed = [multilabel_metrics(predictions[("b", k)], targets, thresholds[("b", k)],
                                       names)[metric]
                    - multilabel_metrics(predictions[("a", k)], targets, thresholds[("a", k)],
                                         names)[metric] for k in (0, 1, 2)]
        assert row["difference"] == pytest.approx(np.mean(per_seed))
        assert row["ci_low"] <= row["ci_high"]
    assert paired.loc[paired["metric"] == "macro_auroc", "better"].item()
    again = paired_multilabel(predictions, targets, thresholds, strategies=["a", "b"],
                              seeds=[0, 1, 2], reference="a", resamples=200,
                              metrics=["macro_auroc", "auprc[z]", "micro_f1"], names=names)
    pd.testing.assert_frame_equal(paired, again)  # the bootstrap is a function of its seed


def test_bootstrap_draws_the_same_kept_or_drawn_again(monkeypatch):
    import balancer.study._metrics as metrics_module

    rng = np.random.default_rng(2)
    targets = (rng.random((80, 2)) < 0.4).astype(int)
    predictions = {(s, k): rng.random((80, 2)) for s in "ab" for k in (0, 1)}
    thresholds = {key: np.full(2, 0.5) for key in predictions}
    options = dict(strategies=["a", "b"], seeds=[0, 1], reference="a", resamples=300,
                   metrics=["macro_auroc", "micro_f1"], names=["p", "q"])
    kept = paired_multilabel(predictions, targets, thresholds, **options)
    monkeypatch.setattr(metrics_module, "_CACHE_BYTES", 0)
    monkeypatch.setattr(metrics_module, "_CHUNK", 7)
    redrawn = paired_multilabel(predictions, targets, thresholds, **options)
    pd.testing.assert_frame_equal(kept, redrawn)


def test_identical_rows_differ_by_exactly_zero():
    rng = np.random.default_rng(1)
    targets = (rng.random((60, 2)) < 0.4).astype(int)
    same = rng.random((60, 2))
    predictions = {(s, k): same for s in "ab" for k in (0, 1, 2)}
    thresholds = {key: np.full(2, 0.5) for key in predictions}
    paired = paired_multilabel(predictions, targets, thresholds, strategies=["a", "b"],
                               seeds=[0, 1, 2], reference="a", metrics=["macro_auprc"],
                               names=["p", "q"], resamples=100)
    row = paired.iloc[0]
    assert (row["difference"], row["ci_low"], row["ci_high"], row["p_value"]) == (0, 0, 0, 1.0)
    assert not row["significant"]


def test_paired_errors_name_the_argument():
    with pytest.raises(ValueError, match="reference='c' is not one of the study's strategies"):
        paired_multilabel({}, np.zeros((2, 2)), {}, strategies=["a"], seeds=[0], reference="c",
                          metrics=[], names=[])
    with pytest.raises(ValueError, match="resamples should be at least 100"):
        paired_multilabel({}, np.zeros((2, 2)), {}, strategies=["a"], seeds=[0], reference="a",
                          metrics=[], names=[], resamples=10)


# --------------------------------------------------------------------------- splits
@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(20, 200), st.integers(2, 5), st.integers(0, 5))
def test_grouped_split_never_puts_a_group_in_two_splits(seed, n, labels, split_seed):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, max(3, n // 3), size=n)
    targets = rng.random((n, labels)) < rng.uniform(0.02, 0.5, size=labels)
    splits = grouped_multilabel_split(targets, groups=groups, seed=split_seed)
    frame = pd.DataFrame({"group": groups, "split": splits})
    assert (frame.groupby("group")["split"].nunique() == 1).all()
    assert set(splits) <= {"train", "val", "test"}
    spread = [len(np.unique(groups[targets[:, j]])) for j in range(labels)]
    first = int(np.lexsort((targets.sum(0), spread))[0])  # the label dealt first
    if spread[first] >= 3:
        assert set(splits[targets[:, first]]) == {"train", "val", "test"}
    assert np.array_equal(splits, grouped_multilabel_split(targets, groups=groups,
                                                           seed=split_seed))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(10, 80), st.integers(2, 5))
def test_grouped_split_reaches_every_split_when_groups_carry_one_label(seed, num_groups, labels):
    rng = np.random.default_rng(seed)
    group_label = rng.integers(-1, labels, size=num_groups)  # -1: a group without a finding
    groups = rng.integers(0, num_groups, size=4 * num_groups)
    rows = group_label[groups]
    targets = (rows[:, None] == np.arange(labels)) & (rng.random((len(rows), 1)) < 0.8)
    splits = grouped_multilabel_split(targets, groups=groups, seed=seed % 7)
    for j in range(labels):
        if len(np.unique(groups[targets[:, j]])) >= 3:
            assert set(splits[targets[:, j]]) == {"train", "val", "test"}


def test_ungrouped_split_is_near_70_10_20():
    rng = np.random.default_rng(0)
    targets = rng.random((2000, 4)) < 0.2
    splits = grouped_multilabel_split(targets, seed=3)
    shares = {s: float(np.mean(splits == s)) for s in ("train", "val", "test")}
    assert shares == pytest.approx({"train": 0.7, "val": 0.1, "test": 0.2}, abs=0.02)
    for j in range(4):
        share = np.mean(splits[targets[:, j]] == "test")
        assert share == pytest.approx(0.2, abs=0.03)


# --------------------------------------------------------------------------- data
def test_semisynthetic_rows_are_real_chestxray14_rows_of_whole_patients(chest):
    table = load_chestxray14_labels()
    groups = np.concatenate([chest.groups[s] for s in ("train", "val", "test")])
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not set(chest.groups[a]) & set(chest.groups[b])
    chosen = table[table["Patient ID"].astype(str).isin(set(groups))]
    assert len(chosen) == len(groups)  # every image of every chosen patient
    expected = {name: int(chosen["Finding Labels"].str.split("|").map(
        lambda f, n=name: n in f).sum()) for name in chest.label_names}
    got = sum(chest.counts(s) for s in ("train", "val", "test"))
    assert dict(zip(chest.label_names, got.tolist(), strict=True)) == expected
    assert len(chest.label_names) == 14 and 8000 <= len(groups) < 8100
    assert "semi-synthetic" in chest.source and "not real image data" in chest.source
    assert (chest.counts("val") > 0).all() and (chest.counts("test") > 0).all()


def test_semisynthetic_features_come_from_the_labels_and_the_seed(chest):
    again = semisynthetic_chestxray14()
    assert torch.equal(again.features["train"], chest.features["train"])
    other = semisynthetic_chestxray14(seed=1)
    assert not torch.equal(other.features["train"][:100], chest.features["train"][:100])
    # The features carry the labels: a least-squares probe recovers them well above chance.
    X, Y = chest.features["train"].numpy(), chest.targets["train"].numpy()
    coef, *_ = np.linalg.lstsq(np.c_[X, np.ones(len(X))], Y, rcond=None)
    Xt, Yt = chest.features["test"].numpy(), chest.targets["test"].numpy()
    scores = np.c_[Xt, np.ones(len(Xt))] @ coef
    assert np.mean([roc_auc_score(Yt[:, j], scores[:, j]) for j in range(14)]) > 0.7


def test_npz_with_groups_and_names(tmp_path):
    X, Y = _features_table()
    groups = np.arange(len(X)) // 2
    path = tmp_path / "mine.npz"
    np.savez(path, X=X, Y=Y, groups=groups, names=np.array(["a", "b", "c"]))
    data = load_multilabel_npz(path)
    assert data.label_names == ("a", "b", "c")
    assert not set(data.groups["train"]) & set(data.groups["test"])
    total = sum(len(data.targets[s]) for s in ("train", "val", "test"))
    assert total == len(X)
    train = data.features["train"].numpy()
    np.testing.assert_allclose(train.mean(0), 0, atol=1e-5)  # standardised on train


def test_npz_with_a_split_column_keeps_it(tmp_path):
    X, Y = _features_table()
    split = grouped_multilabel_split(Y, seed=5)
    path = tmp_path / "split.npz"
    np.savez(path, X=X, Y=Y, split=split)
    data = load_multilabel_npz(path)
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(data.targets[name].numpy(), Y[split == name])


def test_csv_with_label_columns_and_with_one_joined_column(tmp_path):
    X, Y = _features_table()
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    frame[["a", "b", "c"]] = Y
    frame["patient"] = np.arange(len(X)) // 3
    frame.to_csv(tmp_path / "cols.csv", index=False)
    data = load_multilabel_table(tmp_path / "cols.csv", label_cols=("a", "b", "c"),
                                 group_col="patient")
    assert data.label_names == ("a", "b", "c") and data.num_features == 5
    assert not set(data.groups["val"]) & set(data.groups["test"])
    joined = frame.drop(columns=["a", "b", "c", "patient"])
    joined["findings"] = ["|".join(n for n, v in zip("abc", row, strict=True) if v) or "No Finding"
                          for row in Y]
    joined.to_csv(tmp_path / "joined.csv", index=False)
    again = load_multilabel_table(tmp_path / "joined.csv", label_col="findings")
    assert again.label_names == ("a", "b", "c")
    assert sum(again.counts(s) for s in ("train", "val", "test")).tolist() == Y.sum(0).tolist()


def _arff_text(X, Y):
    lines = ["@relation tiny", ""]
    lines += [f"@attribute x{i} numeric" for i in range(X.shape[1])]
    lines += [f"@attribute L{j} {{0,1}}" for j in range(Y.shape[1])]
    lines += ["", "@data"]
    lines += [",".join([*(f"{v:.5f}" for v in x), *(str(int(v)) for v in y)])
              for x, y in zip(X, Y, strict=True)]
    return "\n".join(lines) + "\n"


def test_arff_in_mulan_layout(tmp_path):
    X, Y = _features_table()
    plain = tmp_path / "tiny.arff"
    plain.write_text(_arff_text(X, Y))
    packed = tmp_path / "tiny.arff.gz"
    packed.write_bytes(gzip.compress(_arff_text(X, Y).encode()))
    for path in (plain, packed):
        data = load_multilabel_data(data=str(path))
        assert data.label_names == ("L0", "L1", "L2") and data.num_features == 5
    chosen = load_arff(plain, label_cols=("L0", "L1"))
    assert chosen.label_names == ("L0", "L1")


# --------------------------------------------------------------------------- data errors
def test_data_errors_name_the_argument_and_the_fix(tmp_path):
    X, Y = _features_table()
    np.savez(tmp_path / "noy.npz", X=X)
    with pytest.raises(KeyError, match=r"lacks the array\(s\) \['Y'\]"):
        load_multilabel_npz(tmp_path / "noy.npz")
    np.savez(tmp_path / "flat.npz", X=X, Y=Y[:, 0])
    with pytest.raises(ValueError, match=r"Y should be an \(N, L\) 0/1 matrix"):
        load_multilabel_npz(tmp_path / "flat.npz")
    bad = Y.copy()
    bad[3, 1] = 2
    np.savez(tmp_path / "two.npz", X=X, Y=bad)
    with pytest.raises(ValueError, match="should hold only 0 and 1"):
        load_multilabel_npz(tmp_path / "two.npz")
    np.savez(tmp_path / "one.npz", X=X, Y=Y[:, :1])
    with pytest.raises(ValueError, match="needs at least 2"):
        load_multilabel_npz(tmp_path / "one.npz")
    rare = Y.copy()
    rare[:, 2] = 0
    rare[0, 2] = 1
    np.savez(tmp_path / "rare.npz", X=X, Y=rare)
    with pytest.raises(ValueError, match=r"split has no positive of label\(s\) 2"):
        load_multilabel_npz(tmp_path / "rare.npz")
    np.savez(tmp_path / "leak.npz", X=X, Y=Y, groups=np.zeros(len(X)),
             split=np.array(["train", "val", "test"] * 80))
    with pytest.raises(ValueError, match=r"group\(s\) appear in more than one split"):
        load_multilabel_npz(tmp_path / "leak.npz")
    Xn = X.copy()
    Xn[5, 0] = np.nan
    np.savez(tmp_path / "nan.npz", X=Xn, Y=Y)
    with pytest.raises(ValueError, match="X has NaN or infinite values"):
        load_multilabel_npz(tmp_path / "nan.npz")
    with pytest.raises(FileNotFoundError, match="data='/nope.npz' does not exist"):
        load_multilabel_data(data="/nope.npz")
    (tmp_path / "bad.arff").write_text("not an arff")
    with pytest.raises(ValueError, match="is not a readable ARFF file"):
        load_multilabel_data(data=str(tmp_path / "bad.arff"))
    with pytest.raises(ValueError, match="label_cols applies to a CSV table or an ARFF file"):
        load_multilabel_data(data=str(tmp_path / "noy.npz"), label_cols=("a", "b"))


def test_table_errors_name_the_argument_and_the_fix(tmp_path):
    X, Y = _features_table()
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    frame[["a", "b", "c"]] = Y
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ValueError, match="pass --label-cols A,B,C"):
        load_multilabel_table(tmp_path / "t.csv")
    with pytest.raises(ValueError, match=r"column\(s\) \['zz'\] are not in"):
        load_multilabel_table(tmp_path / "t.csv", label_cols=("a", "zz"))
    with pytest.raises(ValueError, match="names one label; a multi-label study needs at least 2"):
        load_multilabel_table(tmp_path / "t.csv", label_cols=("a",))
    with pytest.raises(ValueError, match="group_col='p' is not a column"):
        load_multilabel_table(tmp_path / "t.csv", label_cols=("a", "b"), group_col="p")
    with pytest.raises(FileNotFoundError, match="table='/none.csv' does not exist"):
        load_multilabel_table("/none.csv", label_cols=("a", "b"))
    grouped = frame.assign(p=[f"patient{i % 7}" for i in range(len(frame))])
    grouped.loc[2, "p"] = None
    grouped.to_csv(tmp_path / "g.csv", index=False)
    with pytest.raises(ValueError, match=r"group_col='p' is empty in row 2; give every row its "
                                         r"group"):
        load_multilabel_table(tmp_path / "g.csv", label_cols=("a", "b"), group_col="p")
    frame.loc[3, "f0"] = np.nan
    frame.to_csv(tmp_path / "gap.csv", index=False)
    with pytest.raises(ValueError, match=r"feature column\(s\) \['f0'\] have empty cells"):
        load_multilabel_table(tmp_path / "gap.csv", label_cols=("a", "b", "c"))


@pytest.mark.parametrize(("settings_", "match"), [
    ({"strategies": ("plain", "focal")}, "unknown multi-label strategy 'focal'"),
    ({"strategies": ()}, "strategies is empty"),
    ({"strategies": ("plain", "plain")}, "lists a strategy twice"),
    ({"seeds": (0, 0)}, "repeats a seed"),
    ({"reference": "asl", "strategies": ("plain",)}, "unknown reference strategy"),
    ({"rfs_threshold": 0.0}, "rfs_threshold should be > 0.0"),
    ({"rfs_threshold": 1.5}, r"rfs_threshold should be > 0.0 and <= 1.0"),
    ({"select": "first"}, "select should be 'best'"),
    ({"samples": 100}, "samples should be"),
    ({"bootstrap": 10}, "a 95% interval needs at least 100"),
    ({"finetune_epochs": 5, "epochs": 2}, r"it must lie in \[0, epochs=2\]"),
    ({"table": "t.csv"}, "a multi-label table needs its labels"),
    ({"label_col": "x"}, "label_col='x' applies only to a CSV table"),
    ({"group_col": "p"}, "group_col and split_col apply only to a CSV table"),
    ({"data": "a.npz", "table": "t.csv"}, "pass only one of data and table"),
    ({"device": "tpu"}, "device should be 'cpu' or 'cuda'"),
])
def test_config_errors(settings_, match):
    with pytest.raises(ValueError, match=match):
        MultiLabelStudyConfig(**settings_)


def test_config_type_errors():
    with pytest.raises(TypeError, match="lr should be a number"):
        MultiLabelStudyConfig(lr="fast")


# --------------------------------------------------------------------------- one step budget
@pytest.mark.parametrize("name", list(ML_STRATEGIES))
def test_every_sampler_yields_ceil_n_over_b_batches_every_epoch(chest, name):
    targets = chest.targets["train"].numpy()
    n, batch = len(targets), 128
    sampler = ml.make_multilabel_sampler(ML_STRATEGIES[name], targets, batch_size=batch,
                                         epochs=3, finetune_epochs=1, seed=0, rfs_threshold=0.1)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == -(-n // batch)
        assert sum(map(len, batches)) == n
        assert all(0 <= i < n for b in batches for i in b)
    if name == "label-balanced+finetune":  # the last epoch is one pass at the true frequencies
        assert sorted(i for b in batches for i in b) == list(range(n))


def test_repeat_factor_study_epochs_tile_the_samplers_epochs(chest):
    targets = chest.targets["train"].numpy()
    n = len(targets)
    study = ml.make_multilabel_sampler(ML_STRATEGIES["repeat-factor"], targets, batch_size=100,
                                       epochs=4, finetune_epochs=0, seed=3, rfs_threshold=0.1)
    cut = []
    for epoch in range(4):
        study.set_epoch(epoch)
        cut += [i for b in study for i in b]
    reference = RepeatFactorSampler(targets, 100, threshold=0.1, seed=3)
    stream = []
    for epoch in range(4):
        reference.set_epoch(epoch)
        stream += [i for b in reference for i in b]
    assert reference.samples_per_epoch > n  # rare labels are repeated
    assert cut == stream[: 4 * n]


def test_select_best_keeps_the_epoch_with_the_best_validation_auprc(chest, monkeypatch):
    scores = []
    original = ml.multilabel_metrics

    def spy(*args, **kwargs):
        values = original(*args, **kwargs)
        scores.append(values["macro_auprc"])
        return values

    monkeypatch.setattr(ml, "multilabel_metrics", spy)
    config = MultiLabelStudyConfig(strategies=("plain",), seeds=(0,), epochs=4, select="best",
                                   progress=False, lr=0.05)
    run = ml.train_multilabel_run(chest, ML_STRATEGIES["plain"], 0, config,
                                  device=torch.device("cpu"))
    per_epoch = scores[:4]  # then the selected weights on val and on test
    best = max(per_epoch)
    assert run["selected_epoch"] == max(e for e, v in enumerate(per_epoch) if v == best)
    assert run["metrics"]["val"]["macro_auprc"] == pytest.approx(best)
    assert run["steps"] == 4 * -(-5608 // 128)


def test_loss_of_each_strategy(chest):
    config = MultiLabelStudyConfig()
    counts = chest.counts("train")
    n = len(chest.targets["train"])
    kinds = {name: type(ml.make_multilabel_loss(s, counts, n, config)).__name__
             for name, s in ML_STRATEGIES.items()}
    assert kinds == {"plain": "BCEWithLogitsLoss", "label-balanced": "BCEWithLogitsLoss",
                     "label-balanced+finetune": "BCEWithLogitsLoss",
                     "repeat-factor": "BCEWithLogitsLoss", "pos-weight": "PosWeightedBCELoss",
                     "asl": "AsymmetricLoss", "db": "DistributionBalancedLoss",
                     "sigmoid-la": "SigmoidLogitAdjustedLoss"}


# --------------------------------------------------------------------------- the command line
FAST = ["study", "--multilabel", "--quick", "--no-progress", "--strategies",
        "plain,label-balanced,repeat-factor", "--seeds", "0,1", "--bootstrap", "100"]


def _error(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("training started before the inputs were checked")
    monkeypatch.setattr(ml, "train_multilabel_run", refuse)


def test_cli_runs_the_study_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*FAST, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "macro_auprc" in printed and "semi-synthetic ChestX-ray14" in printed
    results = pd.read_csv(out / "results.csv")
    steps = results[results["metric"] == "steps"]["value"]
    assert steps.nunique() == 1 and len(steps) == 6  # every run took the same steps
    train_rows = int(json.loads((out / "config.json").read_text())["epochs"]) * -(-5608 // 128)
    assert steps.iloc[0] == train_rows
    report = (out / "report.md").read_text()
    assert "**Semi-synthetic data (chestxray14-semisynthetic):**" in report
    assert "The 3 rarest labels" in report and "**Hernia** (8 / 1 / 2)" in report
    assert "Each strategy minus **plain**" in report
    paired = pd.read_csv(out / "paired.csv")
    assert set(paired["strategy"]) == {"label-balanced", "repeat-factor"}
    assert {"macro_auroc", "micro_f1", "auprc[Hernia]"} <= set(paired["metric"])
    per_label = pd.read_csv(out / "per_label.csv")
    assert len(per_label) == 14 and "repeat-factor:auprc" in per_label.columns
    for file in ML_OUTPUT_FILES:
        assert (out / file).is_file()


def test_same_seed_same_numbers_and_resume_trains_only_missing_runs(tmp_path, monkeypatch,
                                                                    capsys):
    out = tmp_path / "run"
    argv = [*FAST, "--strategies", "plain,asl", "--out", str(out)]
    assert main(argv) == 0
    first = pd.read_csv(out / "results.csv")
    (out / "runs" / "asl__seed1.csv").unlink()  # as if interrupted before the last run
    calls = []
    original = ml.train_multilabel_run

    def counting(data, strategy, seed, config, *, device):
        calls.append((strategy.name, seed))
        return original(data, strategy, seed, config, device=device)

    monkeypatch.setattr(ml, "train_multilabel_run", counting)
    assert main([*argv, "--resume"]) == 0
    assert calls == [("asl", 1)]
    again = pd.read_csv(out / "results.csv")
    keep = ~first["metric"].isin(TIMING_METRICS)
    pd.testing.assert_frame_equal(first[keep].reset_index(drop=True),
                                  again[~again["metric"].isin(TIMING_METRICS)].reset_index(drop=True))


def test_cli_refuses_a_previous_study_and_a_file_before_training(tmp_path, capsys, no_training):
    out = tmp_path / "run"
    out.mkdir()
    (out / "report.md").write_text("old")
    err = _error([*FAST, "--out", str(out)], capsys)
    assert "already holds a study (report.md); pass --overwrite" in err
    (tmp_path / "file").write_text("x")
    err = _error([*FAST, "--out", str(tmp_path / "file")], capsys)
    assert "is a file; pass a folder" in err


@pytest.mark.parametrize(("extra", "match"), [
    (["--focal-gamma", "1"], "--focal-gamma does not apply with --multilabel"),
    (["--no-posthoc"], "--posthoc does not apply with --multilabel"),
    (["--dataset", "retinamnist"], "--dataset does not apply with --multilabel"),
    (["--image-size", "32"], "--image-size does not apply with --multilabel"),
    (["--strategies", "plain,focal"], "unknown multi-label strategy 'focal'"),
    (["--resume"], "--resume continues the study in a run folder"),
    (["--data", "x.npz", "--synthetic-samples", "900"], "--synthetic-samples sizes the default"),
    (["--rfs-threshold", "2"], "--rfs-threshold should be > 0.0 and <= 1.0"),
    (["--batch-size", "100000"], "--batch-size 100000 is larger than the train split"),
    (["--table", "t.csv"], "a multi-label table needs its labels"),
    (["--synthetic-samples", "5"],
     "--synthetic-samples should be an integer >= 500, but got --synthetic-samples 5;"),
    (["--strategies", "plain,label-balanced+finetune", "--finetune-epochs", "0"],
     "--finetune-epochs 0 leaves label-balanced+finetune without its "
                                 "phase, so it would train as label-balanced; pass "
                                 "--finetune-epochs 1 or more"),
])
def test_cli_usage_errors_before_training(extra, match, tmp_path, capsys, no_training):
    out = [] if "--resume" in extra else ["--out", str(tmp_path / "o")]
    err = _error([*FAST, *extra, *out], capsys)
    assert match in err, err
    assert not (tmp_path / "o" / "runs").exists()


def test_every_single_label_option_is_used_or_refused_with_multilabel(tmp_path, capsys,
                                                                       no_training):
    """Each option of the study parser is either a setting the multi-label study reads, an
    option that steers the run, or an error with --multilabel: none is silently ignored."""
    from balancer.__main__ import build_parser
    from balancer.study import _cli

    study = next(action for action in build_parser()._actions
                 if isinstance(action, argparse._SubParsersAction)).choices["study"]
    kept = set(_cli._SHARED) | set(_cli._ONLY_HERE) | set(_cli._RUN) | {"help"}
    refused = [action for action in study._actions if action.dest not in kept]
    assert {"tune", "drs_epochs", "crt_epochs", "threshold"} <= {a.dest for a in refused}
    for action in refused:
        flag = action.option_strings[0]
        value = [] if action.nargs == 0 else [str(action.choices[0]) if action.choices else "1"]
        err = _error([*FAST, flag, *value, "--out", str(tmp_path / "o")], capsys)
        assert f"{flag.replace('--no-', '--')} does not apply with --multilabel" in err, (flag, err)
    assert not (tmp_path / "o" / "runs").exists()


def test_multilabel_options_without_multilabel_are_errors(capsys):
    err = _error(["study", "--quick", "--label-cols", "a,b"], capsys)
    assert "--label-cols applies only to the multi-label study; add --multilabel" in err
    err = _error(["study", "--quick", "--rarest", "2"], capsys)
    assert "--rarest applies only to the multi-label study" in err


@pytest.mark.parametrize(("extra", "expected"), [
    ([], (2e-3, 128, 10, 1000, 0.1)),
    (["--lr", "0.01", "--batch-size", "64"], (0.01, 64, 10, 1000, 0.1)),
    (["--quick"], (2e-3, 128, 2, 200, 0.1)),
    (["--quick", "--epochs", "3", "--bootstrap", "300", "--rfs-threshold", "0.2"],
     (2e-3, 128, 3, 300, 0.2)),
])
def test_cli_keeps_multilabel_defaults_unless_given(extra, expected, monkeypatch, capsys):
    """Options not passed take the multi-label defaults, not the single-label parser's."""
    seen = []

    def record(config):
        seen.append(config)
        raise ValueError("recorded")

    monkeypatch.setattr(study_runner, "prepare_data", record)
    err = _error(["study", "--multilabel", *extra], capsys)
    assert "recorded" in err
    config = seen[0]
    assert (config.lr, config.batch_size, config.epochs, config.bootstrap,
            config.rfs_threshold) == expected
    assert config.quick == ("--quick" in extra)


def test_the_study_package_exports_the_multilabel_study():
    import balancer.study as study

    assert study.run_multilabel_study is run_study
    assert study.MultiLabelStudyConfig is MultiLabelStudyConfig
    assert {"MultiLabelStudyConfig", "run_multilabel_study",
            "write_multilabel_outputs"} <= set(study.__all__)


def test_zero_finetune_epochs_is_accepted_without_the_finetune_row_and_asl_clip_below_one():
    config = MultiLabelStudyConfig(finetune_epochs=0, strategies=("plain", "label-balanced"))
    assert config.finetune_epochs == 0
    with pytest.raises(ValueError, match=r"finetune_epochs=0 leaves label-balanced\+finetune"):
        MultiLabelStudyConfig(finetune_epochs=0)
    with pytest.raises(ValueError, match=r"asl_clip should be >= 0.0 and < 1.0, but got "
                                         r"asl_clip=1.0; it is the probability margin"):
        MultiLabelStudyConfig(asl_clip=1.0)
    assert MultiLabelStudyConfig(asl_clip=0.5).asl_clip == 0.5
