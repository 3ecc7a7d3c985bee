"""Issue 22: --min-positives drops rare labels by name; the error about labels without a
positive in a split lists all of them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from balancer.__main__ import main
from balancer.study._data import load_multilabel_table


def _table(path, rare=6):
    """Labels a, b common; r0..r{rare-1} with a single positive each."""
    rng = np.random.default_rng(0)
    n = 90
    frame = pd.DataFrame({"f": rng.standard_normal(n), "a": np.arange(n) % 2,
                          "b": (np.arange(n) // 2) % 2})
    for j in range(rare):
        frame[f"r{j}"] = (np.arange(n) == j).astype(int)
    frame.to_csv(path, index=False)
    return [f"r{j}" for j in range(rare)]


def test_the_error_lists_every_label_without_a_positive(tmp_path):
    """Today it stops at five: "label(s) r0, r1, r2, r3, r4, ..."."""
    rare = _table(tmp_path / "t.csv", rare=8)
    with pytest.raises(ValueError) as error:
        load_multilabel_table(tmp_path / "t.csv", label_cols=("a", "b", *rare))
    message = str(error.value)
    assert all(f"'{name}'" in message for name in rare) or all(name in message for name in rare)
    assert "..." not in message and "--min-positives" in message


def test_min_positives_drops_the_rare_labels_naming_them(tmp_path, capsys):
    rare = _table(tmp_path / "t.csv")
    data = load_multilabel_table(tmp_path / "t.csv", label_cols=("a", "b", *rare),
                                 min_positives=2)
    assert data.label_names == ("a", "b")
    notice = capsys.readouterr().err
    assert "--min-positives 2" in notice and all(name in notice for name in rare)
    with pytest.raises(ValueError, match="at least 2"):
        load_multilabel_table(tmp_path / "t.csv", label_cols=("a", "b", *rare),
                              min_positives=100)


def test_min_positives_is_a_multilabel_flag(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["study", "--table", "t.csv", "--min-positives", "2"])
    assert "--min-positives applies only to the multi-label study" in capsys.readouterr().err
    import argparse

    from balancer.study._cli import _given, _multilabel_config, add_study_parser

    parser = add_study_parser(argparse.ArgumentParser().add_subparsers())
    argv = ["--multilabel", "--min-positives", "3"]
    config = _multilabel_config(parser.parse_args(argv), _given(parser, argv))
    assert config.min_positives == 3
