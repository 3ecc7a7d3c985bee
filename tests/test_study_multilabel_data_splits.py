"""The multi-label study's splits work as the single-label study's: ``--split`` fractions, a
validation split carved from train when the data has none (groups kept together), an npz's own
``is_train`` and ``label_names``, and splits that share a group refused."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from balancer.__main__ import main
from balancer.study import MultiLabelStudyConfig, prepare_data
from balancer.study._data import load_multilabel_data

N = 400


def _arrays(seed=0, groups=True):
    rng = np.random.default_rng(seed)
    Y = (rng.random((N, 3)) < [0.4, 0.3, 0.25]).astype(int)
    X = Y @ rng.standard_normal((3, 4)) + rng.standard_normal((N, 4))
    arrays = {"X": X, "Y": Y}
    if groups:
        arrays["groups"] = np.repeat([f"p{i}" for i in range(N // 2)], 2)
    return arrays


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def _rows(data):
    return {split: len(data.targets[split]) for split in ("train", "val", "test")}


def _groups_disjoint(data):
    sets = {split: set(data.groups[split].tolist()) for split in ("train", "val", "test")}
    return all(not sets[a] & sets[b] for a, b in (("train", "val"), ("train", "test"),
                                                  ("val", "test")))


@pytest.mark.parametrize("fractions", [(0.5, 0.2, 0.3), (0.8, 0.1, 0.1)])
def test_split_fractions_set_the_automatic_split(tmp_path, fractions):
    path = _npz(tmp_path / "m.npz", **_arrays(groups=False))
    data = load_multilabel_data(data=path, fractions=fractions)
    rows = _rows(data)
    for split, share in zip(("train", "val", "test"), fractions, strict=True):
        assert abs(rows[split] / N - share) < 0.03, (split, rows)
    # The default is what it was: 70/10/20.
    default = _rows(load_multilabel_data(data=path))
    assert abs(default["val"] / N - 0.1) < 0.03 and abs(default["test"] / N - 0.2) < 0.03


def test_split_fractions_come_from_the_config_and_are_checked(tmp_path):
    path = _npz(tmp_path / "m.npz", **_arrays(groups=False))
    data = prepare_data(MultiLabelStudyConfig(data=path, split="0.5,0.2,0.3", batch_size=16))
    assert abs(_rows(data)["test"] / N - 0.3) < 0.03
    with pytest.raises(ValueError, match=r"split='0.5,0.2,0.2' sums to 0.9"):
        MultiLabelStudyConfig(data=path, split="0.5,0.2,0.2")


def test_a_train_test_split_gets_val_carved_from_train_by_group(tmp_path, capsys):
    arrays = _arrays()
    patient = np.arange(N) // 2
    split = np.where(patient % 5 == 0, "test", "train")
    path = _npz(tmp_path / "m.npz", **arrays, split=split)
    data = load_multilabel_data(data=path, fractions=(0.6, 0.2, 0.2))
    rows = _rows(data)
    assert rows["test"] == int(np.sum(split == "test"))  # test is unchanged
    assert abs(rows["val"] / (rows["train"] + rows["val"]) - 0.25) < 0.05  # 0.2 / (0.6 + 0.2)
    assert _groups_disjoint(data)
    assert (data.targets["val"].sum(0) > 0).all()  # every label reaches the carved split
    assert "became the validation split (whole groups" in capsys.readouterr().err
    assert "became the validation split" in data.source


def test_an_is_train_mask_and_label_names_are_read(tmp_path):
    arrays = _arrays()
    is_train = (np.arange(N) // 2) % 4 != 0
    path = _npz(tmp_path / "m.npz", **arrays, is_train=is_train,
                label_names=np.array(["effusion", "mass", "nodule"]))
    data = load_multilabel_data(data=path)
    assert data.label_names == ("effusion", "mass", "nodule")
    rows = _rows(data)
    assert rows["test"] == int(np.sum(~is_train)) and rows["val"] > 0
    assert _groups_disjoint(data)


def test_splits_that_share_a_group_are_refused(tmp_path):
    arrays = _arrays()
    split = np.where(np.arange(N) % 5 == 0, "test", "train")  # patient 0: rows 0 and 1 differ
    path = _npz(tmp_path / "m.npz", **arrays, split=split)
    with pytest.raises(ValueError, match=r"group\(s\) appear in more than one split"):
        load_multilabel_data(data=path)


@pytest.mark.parametrize(("extra", "match"), [
    ({"names": np.array(["a", "b", "c"]), "label_names": np.array(["a", "b", "c"])},
     "both 'names' and 'label_names'"),
    ({"split": np.array(["train"] * N), "is_train": np.ones(N, bool)},
     "both 'split' and 'is_train'"),
    ({"is_train": np.zeros(3, bool)}, r"is_train should hold True/False per row, shape \(400,\)"),
    ({"train_mask": np.ones(N, bool)}, r"array\(s\) \['train_mask'\] that a multi-label table "
                                       r"does not use"),
    ({"label_names": np.array(["a", "a", "c"])}, r"'label_names' has the duplicate label name"),
])
def test_bad_npz_arrays_are_refused(tmp_path, extra, match):
    path = _npz(tmp_path / "m.npz", **_arrays(), **extra)
    with pytest.raises(ValueError, match=match):
        load_multilabel_data(data=path)


def test_a_table_with_a_train_test_column_and_split_fractions(tmp_path):
    arrays = _arrays()
    frame = pd.DataFrame(arrays["X"], columns=[f"f{i}" for i in range(4)])
    for j, name in enumerate("abc"):
        frame[name] = arrays["Y"][:, j]
    frame["patient"] = arrays["groups"]
    frame["split"] = np.where((np.arange(N) // 2) % 5 == 0, "test", "train")
    frame.to_csv(tmp_path / "t.csv", index=False)
    data = load_multilabel_data(table=str(tmp_path / "t.csv"), label_cols=("a", "b", "c"),
                                group_col="patient", fractions=(0.5, 0.3, 0.2))
    rows = _rows(data)
    assert abs(rows["val"] / (rows["train"] + rows["val"]) - 0.375) < 0.05  # 0.3 / 0.8
    assert _groups_disjoint(data)


def test_the_command_line_takes_split_with_multilabel(tmp_path):
    path = _npz(tmp_path / "m.npz", **_arrays(groups=False))
    out = tmp_path / "run"
    assert main(["study", "--multilabel", "--data", path, "--split", "0.5,0.2,0.3",
                 "--strategies", "plain", "--seeds", "0", "--epochs", "1", "--batch-size", "32",
                 "--bootstrap", "100", "--no-progress", "--out", str(out)]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert list(saved.get("config", saved)["split"]) == [0.5, 0.2, 0.3]
    report = (out / "report.md").read_text()
    rows = _rows(load_multilabel_data(data=path, fractions=(0.5, 0.2, 0.3)))
    assert f"Rows: train {rows['train']}, val {rows['val']}, test {rows['test']}" in report
