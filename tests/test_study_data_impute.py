"""Issue 22: --impute fills missing feature values from the train split only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from balancer.__main__ import main
from balancer.study._config import StudyConfig
from balancer.study._data import load_features, load_multilabel_table, load_table
from balancer.study._report import _settings_lines


def _frame(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    split = np.array((["train"] * 4 + ["val", "test"]) * (n // 6))
    rng.shuffle(split)
    return pd.DataFrame({"a": rng.standard_normal(n) + y, "b": rng.standard_normal(n),
                         "y": y, "split": split})


@pytest.mark.parametrize("impute", ["median", "mean"])
def test_missing_values_get_the_train_statistic_never_the_val_or_test_one(tmp_path, impute):
    frame = _frame()
    frame.loc[frame.index[:10], "a"] = np.nan  # missing cells in every split
    frame.to_csv(tmp_path / "t.csv", index=False)
    data = load_table(tmp_path / "t.csv", label_col="y", impute=impute)
    # the same data with val/test values changed wildly: train features do not move, and
    # the filled val/test cells hold the train statistic (standardised), not their own
    changed = frame.copy()
    others = changed["split"] != "train"
    changed.loc[others, "a"] = changed.loc[others, "a"] * 1000 + 500
    changed.to_csv(tmp_path / "c.csv", index=False)
    again = load_table(tmp_path / "c.csv", label_col="y", impute=impute)
    assert np.allclose(data.images["train"].numpy(), again.images["train"].numpy())
    train = frame.loc[frame["split"] == "train", "a"]
    fill = train.median() if impute == "median" else train.mean()
    expected = (fill - train.fillna(fill).mean()) / train.fillna(fill).std(ddof=0)
    for split in ("val", "test"):
        rows = frame.loc[frame["split"] == split, "a"].isna().to_numpy()
        if rows.any():
            assert np.allclose(again.images[split].numpy()[rows, 0], expected, atol=1e-5)


def test_without_impute_missing_values_are_refused_naming_the_flag(tmp_path):
    frame = _frame()
    frame.loc[3, "a"] = np.nan
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ValueError, match="--impute median"):
        load_table(tmp_path / "t.csv", label_col="y")
    X = np.ones((30, 2))
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="--impute median"):
        load_features(X, np.repeat([0, 1, 2], 10))
    X[:, 0] = np.random.default_rng(0).standard_normal(30)
    X[0, 0] = np.nan
    data = load_features(X, np.repeat([0, 1, 2], 10), impute="mean")
    assert all(np.isfinite(data.images[s].numpy()).all() for s in ("train", "val", "test"))


def test_multilabel_table_imputes_too(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"f": rng.standard_normal(60), "a": [1, 0, 0] * 20,
                          "b": [0, 1, 0] * 20})
    frame.loc[5, "f"] = np.nan
    frame.to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(ValueError, match="--impute"):
        load_multilabel_table(tmp_path / "m.csv", label_cols=("a", "b"))
    data = load_multilabel_table(tmp_path / "m.csv", label_cols=("a", "b"), impute="median")
    assert all(np.isfinite(data.features[s].numpy()).all() for s in ("train", "val", "test"))


def test_the_flag_reaches_the_config_and_the_report_states_it(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["study", "--table", "t.csv", "--impute", "mode"])
    assert "--impute" in capsys.readouterr().err
    lines = "\n".join(_settings_lines(StudyConfig(table="t.csv", impute="median")))
    assert "`impute` = `median`" in lines and "train split" in lines
    with pytest.raises(ValueError, match="impute"):
        StudyConfig(table="t.csv", impute="mode")
