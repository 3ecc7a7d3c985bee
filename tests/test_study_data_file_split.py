"""Issue 22: a file's own split (is_train / split) and label names are used, never ignored; a
train/test-only split gets a validation split carved from train."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from balancer.study._data import load_npz, load_table


def _xy(n=120, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    return rng.standard_normal((n, 4)) + y[:, None], y


def test_is_train_and_label_names_of_an_npz_are_used(tmp_path, capsys):
    X, y = _xy()
    is_train = np.arange(len(y)) % 4 != 0  # 90 train, 30 test
    np.savez(tmp_path / "d.npz", X=X, y=y, is_train=is_train,
             label_names=np.array(["benign", "malignant", "other"]))
    data = load_npz(tmp_path / "d.npz")
    assert data.class_names == ("benign", "malignant", "other")
    assert len(data.labels["test"]) == 30  # the file's test rows, all of them
    assert len(data.labels["train"]) + len(data.labels["val"]) == 90
    assert data.counts("val").min() >= 1 and 8 <= len(data.labels["val"]) <= 14
    assert np.allclose(np.sort(data.images["test"].numpy()[:, 0]),
                       np.sort(data.images["test"].numpy()[:, 0]))
    assert "validation split" in capsys.readouterr().err  # the one-line notice


def test_a_train_test_split_column_gets_val_carved_by_group(tmp_path, capsys):
    """Today: "the val split is empty" for a table whose split column has train and test only."""
    X, _ = _xy(n=240)
    frame = pd.DataFrame(X, columns=list("abcd"))
    frame["y"] = np.arange(240) // 3 % 3  # one class per patient
    y = frame["y"].to_numpy()
    frame["patient"] = [f"p{i // 3}" for i in range(len(y))]
    frame["split"] = np.where(np.arange(len(y)) // 9 % 5 == 0, "test", "train")
    frame.to_csv(tmp_path / "t.csv", index=False)
    data = load_table(tmp_path / "t.csv", label_col="y", group_col="patient")
    assert len(data.labels["val"]) > 0 and len(data.labels["test"]) == int((frame.split ==
                                                                             "test").sum())
    assert capsys.readouterr().err.count("\n") == 1


def test_what_an_npz_holds_is_never_ignored(tmp_path):
    X, y = _xy()
    np.savez(tmp_path / "a.npz", X=X, y=y, train_mask=np.ones(len(y), bool))
    with pytest.raises(ValueError, match=r"\['train_mask'\].*is_train"):
        load_npz(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", X=X, y=y, is_train=np.ones(len(y), bool),
             split=np.array(["train"] * len(y)))
    with pytest.raises(ValueError, match="both 'split' and 'is_train'"):
        load_npz(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", X=X, y=y, label_names=np.array(["a", "b", "a"]))
    with pytest.raises(ValueError, match=r"duplicate name\(s\) \['a'\]"):
        load_npz(tmp_path / "c.npz")
