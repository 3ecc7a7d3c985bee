"""Issue 22: no group (patient) is in two splits of the data the study actually trains on, on
every path: the automatic split, a given split, a file's is_train and the carved validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from balancer.study._config import MultiLabelStudyConfig, StudyConfig
from balancer.study._data import SPLITS, load_features, load_npz
from balancer.study._study import prepare_data


def _disjoint(groups: dict[str, np.ndarray]) -> None:
    seen = {s: set(groups[s].tolist()) for s in SPLITS}
    assert not seen["train"] & seen["val"] and not seen["train"] & seen["test"]
    assert not seen["val"] & seen["test"]


@st.composite
def _layouts(draw):
    """Groups of 1..5 rows; each group's rows mostly of one class (a few mixed groups)."""
    classes = draw(st.integers(2, 3))
    per_class = draw(st.integers(4, 9))
    codes, groups = [], []
    for g in range(classes * per_class):
        size = draw(st.integers(1, 5))
        main = g % classes
        mixed = draw(st.booleans()) and size > 2
        codes += [main] * (size - 1) + [(main + 1) % classes if mixed else main]
        groups += [f"p{g}"] * size
    return np.array(codes), np.array(groups)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_layouts(), st.integers(0, 3), st.sampled_from(["auto", "is_train", "split"]))
def test_no_group_in_two_splits_of_the_loaded_data(tmp_path_factory, layout, seed, how):
    codes, groups = layout
    X = np.random.default_rng(seed).standard_normal((len(codes), 3))
    arrays = {"X": X, "y": codes, "groups": groups}
    classes = int(codes.max()) + 1
    count = len(np.unique(groups))  # group g's main class is g % classes: a quarter of each
    test_groups = {f"p{g}" for g in range(count) if (g // classes) % 4 == seed % 4}
    in_test = np.isin(groups, list(test_groups))
    if how == "is_train":
        arrays["is_train"] = ~in_test
    elif how == "split":
        arrays["split"] = np.where(in_test, "test", "train")
    path = tmp_path_factory.mktemp("d") / "d.npz"
    np.savez(path, **arrays)
    try:
        data = load_npz(path, seed=seed)
    except ValueError as error:  # a layout too small for the split is refused, never leaked
        assert "more than one split" not in str(error)
        event(f"{how}: refused")
        return
    event(f"{how}: loaded")
    _disjoint(data.groups)
    assert sum(len(data.groups[s]) for s in SPLITS) == len(codes)


def test_a_given_split_that_shares_a_patient_is_refused():
    codes = np.tile([0, 1], 30)
    groups = np.array([f"p{i // 2}" for i in range(60)])
    split = np.array(["train", "test", "val"] * 20)
    with pytest.raises(ValueError, match="more than one split"):
        load_features(np.ones((60, 2)), codes, split=split, groups=groups)


def test_the_data_the_runner_receives_keeps_patients_apart(tmp_path):
    rng = np.random.default_rng(0)
    patients = np.repeat([f"p{i}" for i in range(60)], 3)
    y = np.repeat(np.arange(60) % 3, 3)
    frame = pd.DataFrame({"a": rng.standard_normal(180) + y, "y": y, "patient": patients})
    frame.to_csv(tmp_path / "t.csv", index=False)
    data = prepare_data(StudyConfig(table=str(tmp_path / "t.csv"), label_col="y",
                                    group_col="patient", batch_size=8, quick=True))
    _disjoint(data.groups)
    labels = pd.DataFrame({"f": rng.standard_normal(180), "a": np.repeat(np.arange(60) % 2, 3),
                           "b": np.repeat(np.arange(60) // 2 % 2, 3), "patient": patients})
    labels.to_csv(tmp_path / "m.csv", index=False)
    multi = prepare_data(MultiLabelStudyConfig(table=str(tmp_path / "m.csv"),
                                               label_cols=("a", "b"), group_col="patient",
                                               batch_size=8))
    _disjoint(multi.groups)
