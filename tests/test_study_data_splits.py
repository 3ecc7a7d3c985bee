"""Issue 22: the automatic split's fractions (--split), and what a split error says to do."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from balancer.__main__ import main
from balancer.study._config import StudyConfig
from balancer.study._data import auto_split, load_table


def _table(path, counts=(40, 30, 20), groups=False):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(len(counts)), counts)
    frame = pd.DataFrame({"a": rng.standard_normal(len(y)) + y, "y": y})
    if groups:
        frame["patient"] = [f"p{i // 2}" for i in range(len(y))]
    frame.to_csv(path, index=False)
    return frame


def _cli_error(argv, capsys) -> str:
    with pytest.raises(SystemExit):
        main(["study", "--no-progress", *argv])
    return capsys.readouterr().err


def test_split_fractions_are_used_stratified_and_grouped(tmp_path):
    _table(tmp_path / "t.csv", counts=(100, 100))
    data = load_table(tmp_path / "t.csv", label_col="y", fractions=(0.5, 0.2, 0.3))
    assert [len(data.labels[s]) for s in ("train", "val", "test")] == [100, 40, 60]
    assert [data.counts(s).tolist() for s in ("val", "test")] == [[20, 20], [30, 30]]
    codes = np.repeat([0, 1], 60)
    groups = np.array([f"g{i // 3}" for i in range(120)])
    splits = auto_split(codes, 0, groups=groups, fractions=(0.4, 0.3, 0.3))
    frame = pd.DataFrame({"g": groups, "s": splits})
    assert (frame.groupby("g")["s"].nunique() == 1).all()
    assert 0.25 <= np.mean(splits == "test") <= 0.35 and 0.25 <= np.mean(splits == "val") <= 0.35


@pytest.mark.parametrize("value, words", [
    ("0.7,0.1", "three numbers"), ("0.7,0.3,0.0", "val and test above 0"),
    ("0.8,-0.1,0.3", "non-negative"), ("0.7,0.2,0.2", "sum to 1"), ("a,b,c", "three numbers")])
def test_a_bad_split_is_refused_naming_the_flag_and_value(tmp_path, capsys, value, words):
    _table(tmp_path / "t.csv")
    err = _cli_error(["--table", str(tmp_path / "t.csv"), "--label-col", "y", "--split", value,
                      "--out", str(tmp_path / "o")], capsys)
    assert "--split" in err and value in err and words in err
    with pytest.raises(ValueError, match="split"):
        StudyConfig(table="t.csv", split=value)


def test_the_split_flag_reaches_the_config():
    import argparse

    from balancer.study._cli import _config, add_study_parser

    parser = add_study_parser(argparse.ArgumentParser().add_subparsers())
    args = parser.parse_args(["--table", "t.csv", "--split", "0.6,0.2,0.2"])
    assert _config(args).split == (0.6, 0.2, 0.2)
    assert _config(parser.parse_args(["--table", "t.csv"])).split == (0.7, 0.1, 0.2)


def test_a_class_too_small_for_three_splits_names_the_flag_that_fixes_it(tmp_path):
    """A class of 2 samples failed with "the val split has class(es) [...] that are absent
    from the train split" and no word on the automatic split or its flags."""
    _table(tmp_path / "t.csv", counts=(40, 30, 2))
    with pytest.raises(ValueError) as error:
        load_table(tmp_path / "t.csv", label_col="y")
    message = str(error.value)
    assert "--split" in message and "--split-col" in message and "['2']" in message
    assert "fewer than 3 samples" in message


def test_split_is_not_ignored_for_an_npz_with_its_own_image_split(tmp_path):
    from balancer.study._data import load_npz

    images = {f"{s}_images": np.zeros((6, 4, 4), np.uint8) for s in ("train", "val", "test")}
    labels = {f"{s}_labels": np.array([0, 1] * 3) for s in ("train", "val", "test")}
    np.savez(tmp_path / "m.npz", **images, **labels)
    assert load_npz(tmp_path / "m.npz").num_classes == 2
    with pytest.raises(ValueError, match="--split applies to a table"):
        load_npz(tmp_path / "m.npz", fractions=(0.6, 0.2, 0.2))
