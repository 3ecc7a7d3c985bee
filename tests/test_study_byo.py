"""The study on the user's own model and data: compare(), tables, npz X/y, grouped splits
(issue 12, "bring your own model and data")."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from balancer.__main__ import main
from balancer.study import OUTPUT_FILES, compare, load_study_data
from balancer.study._data import auto_split, load_features
from balancer.study._study import TIMING_METRICS


def _blobs(n, seed, minority=0.2):
    generator = np.random.default_rng(seed)
    y = (generator.random(n) < minority).astype(np.int64)
    X = generator.normal(size=(n, 4)) + y[:, None] * 1.5
    return X.astype(np.float32), y


def _datasets(seed=0):
    parts = [_blobs(n, seed + k) for k, n in enumerate((160, 60, 60))]
    return [TensorDataset(torch.from_numpy(X), torch.from_numpy(y)) for X, y in parts]


def model_fn(num_classes):
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, num_classes))


class Strings(Dataset):
    """A user dataset whose labels are strings and whose items are dicts."""

    def __init__(self, X, y):
        self.X, self.targets = torch.from_numpy(X), ["rare" if v else "common" for v in y]

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return {"x": self.X[i], "label": self.targets[i]}


def test_compare_runs_every_strategy_with_equal_steps_and_writes_outputs(tmp_path):
    train, val, test = _datasets()
    out = tmp_path / "mine"
    results = compare(train, val, test, model_fn, strategies=("plain", "balanced", "focal"),
                      seeds=(0, 1), epochs=3, batch_size=32, out=out)
    steps = results[results["metric"] == "steps"]["value"]
    assert steps.nunique() == 1 and steps.iloc[0] == 3 * math.ceil(160 / 32)
    assert set(results["strategy"]) == {"plain", "balanced", "focal", "plain+posthoc",
                                        "balanced+posthoc", "plain+threshold"}
    assert set(results["seed"]) == {0, 1}
    for name in OUTPUT_FILES:
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    assert "user datasets (160 / 60 / 60 samples), model_fn=model_fn" in report
    test_rows = results[results["split"] == "test"]
    assert test_rows["value"].notna().all()


def test_compare_is_a_function_of_the_seed_and_leaves_the_global_rng_alone():
    train, val, test = _datasets()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = compare(train, val, test, model_fn, strategies=("plain",), seeds=(4,), epochs=2,
                    batch_size=32)
    assert torch.equal(torch.get_rng_state(), state)
    second = compare(train, val, test, model_fn, strategies=("plain",), seeds=(4,), epochs=2,
                     batch_size=32)
    keep = lambda f: f[~f["metric"].isin(TIMING_METRICS)].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(keep(first), keep(second))
    other = compare(train, val, test, model_fn, strategies=("plain",), seeds=(5,), epochs=2,
                    batch_size=32)
    assert not np.allclose(keep(first)["value"], keep(other)["value"])


def test_compare_with_string_labels_and_dict_items():
    parts = [_blobs(n, k) for k, n in enumerate((120, 40, 40))]
    train, val, test = (Strings(X, y) for X, y in parts)
    results = compare(train, val, test, model_fn, strategies=("plain", "weighted"), seeds=(0,),
                      epochs=2, batch_size=32)
    assert results.attrs["class_names"] == ["common", "rare"]
    assert set(results["metric"]) >= {"recall[0]", "recall[1]"}


@pytest.mark.parametrize("kwargs, error, match", [
    ({"strategies": ("plain", "ldam-drw")}, ValueError,
     r"includes 'ldam-drw', whose LDAM margins are defined on a cosine classifier"),
    ({"finetune_freeze": True}, ValueError,
     r"finetune_freeze=True freezes model.backbone, but model_fn's model has no 'backbone'"),
    ({"batch_size": 500}, ValueError, r"batch_size=500 is larger than the train split \(160"),
    ({"data": "x.npz"}, ValueError, r"compare\(\) takes the data as datasets; data='x.npz'"),
    ({"lr": float("nan")}, ValueError, r"lr should be a finite number"),
])
def test_compare_bad_settings_fail_before_training(kwargs, error, match):
    train, val, test = _datasets()
    with pytest.raises(error, match=match):
        compare(train, val, test, model_fn, **{"seeds": (0,), "epochs": 1, **kwargs})


def test_compare_bad_model_and_data_fail_before_training():
    train, val, test = _datasets()
    with pytest.raises(ValueError, match=r"model_fn\(2\) maps one input to shape \(1, 3\), but "
                                         r"the study needs logits of shape \(1, 2\)"):
        compare(train, val, test, lambda c: nn.Linear(4, 3), seeds=(0,), epochs=1)
    with pytest.raises(TypeError, match=r"model_fn\(2\) should return a torch.nn.Module"):
        compare(train, val, test, lambda c: "not a model", seeds=(0,), epochs=1)
    with pytest.raises(TypeError, match=r"model_fn should be a callable"):
        compare(train, val, test, "resnet", seeds=(0,), epochs=1)
    one_class = TensorDataset(torch.zeros(10, 4), torch.zeros(10, dtype=torch.long))
    with pytest.raises(ValueError, match=r"the val split holds a single class"):
        compare(train, one_class, test, model_fn, seeds=(0,), epochs=1)


# ----------------------------------------------------------------------------- tables
def _table(tmp_path, n=240, groups=False, seed=0):
    X, y = _blobs(n, seed)
    frame = pd.DataFrame(X, columns=["age", "bmi", "sbp", "ldl"])
    frame["site"] = np.where(np.arange(n) % 3 == 0, "north", "south")
    frame["y"] = np.where(y == 1, "sick", "well")
    if groups:
        frame["patient"] = [f"p{k // 3}" for k in range(n)]  # three rows per patient
    frame.to_csv(tmp_path / "t.csv", index=False)
    return tmp_path / "t.csv", frame


def test_table_is_one_hot_encoded_and_standardised_on_train_only(tmp_path):
    path, frame = _table(tmp_path)
    data = load_study_data(table=path, label_col="y")
    assert data.tabular and data.channels == 6  # 4 numbers + site_north + site_south
    train = data.images["train"].double()
    torch.testing.assert_close(train.mean(0), torch.zeros(6, dtype=torch.double), atol=1e-6,
                               rtol=0)
    torch.testing.assert_close(train.std(0, unbiased=False), torch.ones(6, dtype=torch.double),
                               atol=1e-5, rtol=0)
    # Changing every validation and test row leaves the train features as they were.
    splits = auto_split(data_codes(frame), 0)
    changed = frame.copy()
    changed.loc[splits != "train", ["age", "bmi"]] += 100.0
    changed.to_csv(tmp_path / "t2.csv", index=False)
    again = load_study_data(table=tmp_path / "t2.csv", label_col="y")
    torch.testing.assert_close(again.images["train"], data.images["train"])
    assert not torch.allclose(again.images["val"], data.images["val"])


def data_codes(frame):
    return (frame["y"] == "well").to_numpy().astype(np.int64)  # "sick" < "well"


def test_cli_table_end_to_end_with_the_default_mlp(tmp_path, capsys):
    path, _ = _table(tmp_path)
    out = tmp_path / "run"
    assert main(["study", "--table", str(path), "--label-col", "y", "--quick", "--no-progress",
                 "--strategies", "plain,balanced+finetune,ldam-drw", "--batch-size", "32",
                 "--out", str(out)]) == 0
    results = pd.read_csv(out / "results.csv")
    assert set(results["strategy"]) == {"plain", "balanced+finetune", "ldam-drw",
                                        "plain+posthoc", "plain+threshold"}
    assert "recall sick" in (out / "report.md").read_text()


def test_table_bad_input(tmp_path):
    path, frame = _table(tmp_path)
    frame.loc[3, "bmi"] = np.nan
    frame.to_csv(tmp_path / "holes.csv", index=False)
    with pytest.raises(ValueError, match=r"feature column\(s\) \['bmi'\] have empty cells"):
        load_study_data(table=tmp_path / "holes.csv", label_col="y")
    with pytest.raises(ValueError, match=r"label_col='label' is not a column"):
        load_study_data(table=path)
    with pytest.raises(FileNotFoundError, match=r"table='nope.csv' does not exist"):
        load_study_data(table="nope.csv")
    frame[["y"]].to_csv(tmp_path / "labels_only.csv", index=False)
    with pytest.raises(ValueError, match=r"no feature columns besides label_col='y'"):
        load_study_data(table=tmp_path / "labels_only.csv", label_col="y")


def test_npz_table_with_X_and_y(tmp_path):
    X, y = _blobs(200, 3)
    np.savez(tmp_path / "xy.npz", X=X, y=y)
    data = load_study_data(data=tmp_path / "xy.npz")
    assert data.tabular and data.channels == 4 and data.class_names == ("0", "1")
    assert sum(len(data.labels[s]) for s in ("train", "val", "test")) == 200
    np.savez(tmp_path / "bad.npz", X=X, y=np.where(y == 1, 0.5, 0.0))
    with pytest.raises(ValueError, match=r"y: \d+ label\(s\) are not whole numbers"):
        load_study_data(data=tmp_path / "bad.npz")
    np.savez(tmp_path / "noy.npz", X=X)
    with pytest.raises(KeyError, match=r"has 'X' but no 'y'"):
        load_study_data(data=tmp_path / "noy.npz")
    with pytest.raises(ValueError, match=r"X has NaN or infinite values in 1 row"):
        load_features(np.where(np.arange(200)[:, None] == 7, np.nan, X), y)


# ----------------------------------------------------------------------------- groups
def test_group_col_keeps_each_patient_in_one_split(tmp_path):
    path, frame = _table(tmp_path, n=300, groups=True)
    data = load_study_data(table=path, label_col="y", group_col="patient")
    assert sum(len(data.labels[s]) for s in ("train", "val", "test")) == 300
    codes = data_codes(frame)
    splits = auto_split(codes, 0, groups=frame["patient"].to_numpy())
    for patient, rows in frame.groupby("patient").groups.items():
        assert len(set(splits[rows])) == 1, patient


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 4), st.integers(3, 6))
def test_grouped_split_is_disjoint_stratified_and_complete(seed, classes, per_group):
    generator = np.random.default_rng(seed)
    groups = np.repeat(np.arange(40 * classes), per_group).astype(str)
    group_class = generator.integers(0, classes, 40 * classes)
    group_class[:3 * classes] = np.repeat(np.arange(classes), 3)  # >= 3 groups per class
    codes = group_class[np.repeat(np.arange(40 * classes), per_group)]
    splits = auto_split(codes, seed, groups=groups)
    frame = pd.DataFrame({"g": groups, "s": splits})
    assert (frame.groupby("g")["s"].nunique() == 1).all()
    for split in ("train", "val", "test"):
        assert set(codes[splits == split]) == set(range(classes)), split
    assert np.mean(splits == "train") > 0.5 and np.mean(splits == "test") > 0.1


def test_group_errors(tmp_path):
    path, frame = _table(tmp_path, groups=True)
    frame["split"] = np.where(np.arange(len(frame)) % 2 == 0, "train", "test")
    frame.to_csv(tmp_path / "leak.csv", index=False)
    with pytest.raises(ValueError, match=r"group_col='patient'.*group\(s\) appear in more than "
                                         r"one split"):
        load_study_data(table=tmp_path / "leak.csv", label_col="y", group_col="patient")
    with pytest.raises(ValueError, match=r"group_col='id' is not a column"):
        load_study_data(table=path, label_col="y", group_col="id")
    few = pd.DataFrame({"a": np.arange(12.0), "y": [0] * 6 + [1] * 6,
                        "patient": ["p0"] * 6 + ["q0", "q0", "q1", "q1", "q2", "q2"]})
    few.to_csv(tmp_path / "few.csv", index=False)
    with pytest.raises(ValueError, match=r"class 0 is the main class of only 1 group\(s\); a "
                                         r"split by group needs at least 3"):
        load_study_data(table=tmp_path / "few.csv", label_col="y", group_col="patient")


def test_csv_manifest_with_group_col(tmp_path):
    from PIL import Image

    rows = []
    for k in range(60):
        name = f"i{k}.png"
        Image.fromarray(np.full((28, 28), k, np.uint8)).save(tmp_path / name)
        rows.append({"path": name, "label": "a" if k % 4 else "b", "patient": f"p{k // 2}"})
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    data = load_study_data(csv=tmp_path / "m.csv", group_col="patient")
    assert sum(len(data.labels[s]) for s in ("train", "val", "test")) == 60
    assert all(len(set(data.labels[s].tolist())) == 2 for s in ("train", "val", "test"))
