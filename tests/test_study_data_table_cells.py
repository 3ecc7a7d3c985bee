"""Issue 21 leftovers in loading: stray words in a numeric column, duplicate label names, an
empty findings cell."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from balancer.__main__ import main
from balancer.study._data import load_multilabel_npz, load_multilabel_table, load_table


def test_a_numeric_column_with_a_stray_word_is_refused_naming_the_cells(tmp_path):
    """Today the column is read as text and one-hot encoded: 60 features, one per number."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": rng.integers(20, 90, 60).astype(str), "y": np.arange(60) % 2})
    frame.loc[7, "age"] = "unknown"
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ValueError, match=r"'age' is numeric but for 1 cell\(s\) \(row 7: "
                                         r"'unknown'\)"):
        load_table(tmp_path / "t.csv", label_col="y")
    # a real text column is still one-hot encoded
    frame["age"] = ["young", "old", "mid"] * 20
    frame.to_csv(tmp_path / "t.csv", index=False)
    assert load_table(tmp_path / "t.csv", label_col="y").channels == 3


def _multilabel(path, findings=False):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"f": rng.standard_normal(60), "a": np.arange(60) % 2,
                          "b": np.arange(60) // 2 % 2})
    if findings:
        frame["dx"] = ["|".join(n for n, v in (("a", a), ("b", b)) if v) or "No Finding"
                       for a, b in zip(frame.a, frame.b, strict=True)]
        frame = frame.drop(columns=["a", "b"])
    frame.to_csv(path, index=False)
    return frame


def test_label_cols_named_twice_is_refused_naming_the_flag(tmp_path, capsys):
    _multilabel(tmp_path / "m.csv")
    with pytest.raises(ValueError, match=r"--label-cols a,a,b names the column\(s\) \['a'\]"):
        load_multilabel_table(tmp_path / "m.csv", label_cols=("a", "a", "b"))
    with pytest.raises(SystemExit):
        main(["study", "--multilabel", "--table", str(tmp_path / "m.csv"), "--label-cols",
              "a,a,b", "--no-progress"])
    assert "--label-cols a,a,b" in capsys.readouterr().err


def test_an_npz_with_a_duplicate_label_name_names_the_file(tmp_path):
    Y = np.stack([np.arange(60) % 2, np.arange(60) // 2 % 2, np.arange(60) % 3 == 0], 1)
    np.savez(tmp_path / "m.npz", X=np.ones((60, 2)), Y=Y.astype(int),
             names=np.array(["a", "a", "b"]))
    with pytest.raises(ValueError, match=r"m\.npz.*duplicate label name\(s\) \['a'\]"):
        load_multilabel_npz(tmp_path / "m.npz")


def test_an_empty_findings_cell_is_refused_naming_the_row(tmp_path):
    """Today an empty cell reads as "no finding", silently."""
    frame = _multilabel(tmp_path / "m.csv", findings=True)
    frame.loc[4, "dx"] = np.nan
    frame.to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(ValueError, match=r"label_col='dx' is empty in row 4 .*No Finding"):
        load_multilabel_table(tmp_path / "m.csv", label_col="dx")
